//! Schema drift through the real binary, on both backends: each kind of drift named by
//! `verify` and `diff` (kinds), every index the migrations create dropped one at a time,
//! a collation and a predicate changed (indexes), `lint` proving the two histories make
//! one schema (lint), and migrations that diesel_cli applied or re-ran, which `migrate`
//! vouches for only once the schema is proven (diesel_cli).
//!
//! The helpers here run the binary and find differences in its JSON; the modules hold the
//! tests.

use orch_tests::{exec, json_of, orchestrator, TestPair};
use serde_json::Value;
use shared::{Backend, Conn};

#[path = "drift/diesel_cli.rs"]
mod diesel_cli;
#[path = "drift/indexes.rs"]
mod indexes;
#[path = "drift/kinds.rs"]
mod kinds;
#[path = "drift/lint.rs"]
mod lint;

fn migrated(pair: &TestPair) {
    orchestrator(pair).arg("migrate").assert().success();
    // Each drift is made on stores holding rows, which its repair must keep.
    orch_tests::seed::contract_rows(pair);
}

/// `verify --format json` with `extra` arguments: exit code and report.
fn verify(pair: &TestPair, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["verify"];
    args.extend_from_slice(extra);
    json_of(orchestrator(pair), &args)
}

/// `diff --format json` with `extra` arguments: exit code and report.
fn diff(pair: &TestPair, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["diff"];
    args.extend_from_slice(extra);
    json_of(orchestrator(pair), &args)
}

/// The entry of `store` in a report's `stores`.
fn store<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["stores"]
        .as_array()
        .unwrap_or_else(|| panic!("no stores in {report}"))
        .iter()
        .find(|s| s["store"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

/// The schema differences `verify` reports for `store`.
fn verify_differences(report: &Value, name: &str) -> Vec<Value> {
    store(report, name)["schema"]["differences"]
        .as_array()
        .unwrap_or_else(|| panic!("no schema.differences for {name} in {report}"))
        .clone()
}

/// The differences `diff` reports for `store`.
fn diff_differences(report: &Value, name: &str) -> Vec<Value> {
    store(report, name)["differences"]
        .as_array()
        .unwrap_or_else(|| panic!("no differences for {name} in {report}"))
        .clone()
}

/// `(kind, table, object)` of each difference, sorted: what verify and diff must agree on.
fn triples(differences: &[Value]) -> Vec<(String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut out: Vec<_> = differences
        .iter()
        .map(|d| (text(&d["kind"]), text(&d["table"]), text(&d["object"])))
        .collect();
    out.sort();
    out
}

/// What a test expects to find: a difference of `kind` on `table` whose object contains
/// `object` (an index's object is "`name` (columns)", so its name is enough).
struct Expect<'a> {
    kind: &'a str,
    table: &'a str,
    object: &'a str,
}

impl Expect<'_> {
    fn find<'v>(&self, differences: &'v [Value]) -> Option<&'v Value> {
        differences.iter().find(|d| {
            d["kind"] == self.kind
                && d["table"] == self.table
                && d["object"]
                    .as_str()
                    .is_some_and(|o| o.contains(self.object))
        })
    }

    /// The matching difference; panics with everything that was reported otherwise.
    fn in_list<'v>(&self, differences: &'v [Value], who: &str) -> &'v Value {
        self.find(differences).unwrap_or_else(|| {
            panic!(
                "{who} does not name {} on {} ({}): {differences:#?}",
                self.kind, self.table, self.object
            )
        })
    }
}

/// Runs `verify --store S` and `diff --store S` on a drifted store and asserts that both
/// exit 1 and name each of `expects`, that every difference is on a table an expectation
/// names (the test made one change: nothing else may be reported), and that both list
/// the same differences (verify holds PostgreSQL to the recorded model, diff to a scratch
/// replay: they must not part). Returns the differences verify matched, in order.
fn assert_named_by_verify_and_diff(
    pair: &TestPair,
    store_name: &str,
    expects: &[Expect],
) -> Vec<Value> {
    let context = format!("{} {store_name}", pair.backend);
    let (code, report) = verify(pair, &["--store", store_name]);
    assert_eq!(code, 1, "{context}: verify must fail: {report}");
    assert_eq!(report["ok"], false, "{context}: {report}");
    let from_verify = verify_differences(&report, store_name);
    let found: Vec<Value> = expects
        .iter()
        .map(|e| {
            e.in_list(&from_verify, &format!("{context}: verify"))
                .clone()
        })
        .collect();
    for d in &from_verify {
        assert!(
            expects.iter().any(|e| d["table"] == e.table),
            "{context}: verify reports a difference on another table: {from_verify:#?}"
        );
    }

    let (code, report) = diff(pair, &["--store", store_name]);
    assert_eq!(code, 1, "{context}: diff must fail: {report}");
    assert_eq!(report["ok"], false, "{context}: {report}");
    let from_diff = diff_differences(&report, store_name);
    for e in expects {
        e.in_list(&from_diff, &format!("{context}: diff"));
    }
    assert_eq!(
        triples(&from_verify),
        triples(&from_diff),
        "{context}: verify and diff list different differences"
    );
    found
}

/// Every value of every column, by table and column, keyed by the row's primary key.
pub(crate) fn column_values(
    conn: &mut Conn,
) -> std::collections::BTreeMap<(String, String), Vec<String>> {
    let model = shared::schema::introspect(conn).expect("model");
    let mut out = std::collections::BTreeMap::new();
    for (table, t) in &model.tables {
        // A table that lost its primary key is still read by its `id`.
        let fallback = vec!["id".to_string()];
        let key_columns = if t.primary_key.is_empty() && t.columns.contains_key("id") {
            &fallback
        } else {
            &t.primary_key
        };
        let key = key_columns
            .iter()
            .map(|c| format!("CAST({} AS TEXT)", shared::db::quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        for column in t.columns.keys() {
            let sql = format!(
                "SELECT {key} || '=' || COALESCE(CAST({c} AS TEXT), 'NULL') AS v FROM {t} ORDER BY 1",
                c = shared::db::quote_ident(column),
                t = shared::db::quote_ident(table)
            );
            out.insert((table.clone(), column.clone()), texts(conn, &sql));
        }
    }
    out
}

/// `repair --force` brings the drifted store back to what its migrations make, and every
/// value of every column it keeps is what it was.
fn assert_repaired(pair: &TestPair, store_name: &str) {
    let connect = || match store_name {
        "auth" => pair.auth.connect(),
        _ => pair.app.connect(),
    };
    let before = column_values(&mut connect());
    let (code, report) = json_of(
        orchestrator(pair),
        &["repair", "--store", store_name, "--force"],
    );
    if code == 3 {
        // Rows stand in the way (a NOT NULL column without a default, added to a table
        // holding rows): refused, the rows named, nothing changed.
        let blocked: Vec<&Value> = report["stores"][0]["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["class"] == "blocked_by_data")
            .collect();
        assert!(
            !blocked.is_empty()
                && blocked
                    .iter()
                    .all(|s| s["rows"].as_i64() > Some(0) && s["sample"][0].is_string()),
            "{} repair: {report}",
            pair.backend
        );
        assert_eq!(
            column_values(&mut connect()),
            before,
            "a refusal changes nothing"
        );
        return;
    }
    assert_eq!(code, 0, "{} repair: {report}", pair.backend);
    assert_clean(pair, store_name);
    let after = column_values(&mut connect());
    for (column, values) in &before {
        if let Some(kept) = after.get(column) {
            assert_eq!(kept, values, "{} {column:?} after repair", pair.backend);
        }
    }
}

/// Asserts that verify and diff both find `store_name` as its migrations make it.
fn assert_clean(pair: &TestPair, store_name: &str) {
    let (code, report) = verify(pair, &["--store", store_name]);
    assert_eq!(code, 0, "{} verify: {report}", pair.backend);
    assert_eq!(verify_differences(&report, store_name), Vec::<Value>::new());
    let (code, report) = diff(pair, &["--store", store_name]);
    assert_eq!(code, 0, "{} diff: {report}", pair.backend);
    assert_eq!(diff_differences(&report, store_name), Vec::<Value>::new());
}

/// Every row of a one-column text query.
fn texts(conn: &mut Conn, sql: &str) -> Vec<String> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let rows: Vec<Row> = match conn {
        Conn::Postgres(c) => diesel::sql_query(sql).load(c),
        Conn::Sqlite(c) => diesel::sql_query(sql).load(c),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter().map(|r| r.v).collect()
}

/// Quotes a value for SQL (test data only: names and versions without quotes).
fn literal(value: &str) -> String {
    assert!(!value.contains('\''), "unexpected quote in {value}");
    format!("'{value}'")
}

/// Rebuilds a SQLite table the way SQLite's documentation says a table is altered
/// (foreign keys off, create the new table, copy, drop, rename, recreate its indexes),
/// its `CREATE TABLE` statement changed by `edit`. SQLite cannot drop or change a
/// constraint or a column's type or nullability in place, so this is how such drift
/// happens there.
fn rebuild_sqlite_table(conn: &mut Conn, table: &str, edit: impl FnOnce(&str) -> String) {
    assert_eq!(conn.backend(), Backend::Sqlite);
    let create = texts(
        conn,
        &format!(
            "SELECT sql AS v FROM sqlite_schema WHERE type = 'table' AND name = {}",
            literal(table)
        ),
    );
    let create = create.first().unwrap_or_else(|| panic!("no table {table}"));
    let head = format!("CREATE TABLE {table} ");
    assert!(create.starts_with(&head), "{create}");
    let edited = edit(create);
    assert_ne!(&edited, create, "the edit of {table} changed nothing");
    let new_table = format!("{table}__rebuilt");
    let edited = format!("CREATE TABLE {new_table} {}", &edited[head.len()..]);
    // Its own indexes (not the automatic ones of its keys) go with the old table.
    let indexes = texts(
        conn,
        &format!(
            "SELECT sql AS v FROM sqlite_schema WHERE type = 'index' AND tbl_name = {} \
             AND sql IS NOT NULL ORDER BY rowid",
            literal(table)
        ),
    );
    exec(conn, "PRAGMA foreign_keys = OFF");
    exec(conn, &format!("BEGIN; {edited};"));
    let columns = texts(
        conn,
        &format!(
            "SELECT name AS v FROM pragma_table_info({}) ORDER BY cid",
            literal(&new_table)
        ),
    )
    .join(", ");
    let mut sql = format!(
        "INSERT INTO {new_table} ({columns}) SELECT {columns} FROM {table};
         DROP TABLE {table};
         ALTER TABLE {new_table} RENAME TO {table};"
    );
    for index in indexes {
        sql.push_str(&index);
        sql.push_str(";\n");
    }
    sql.push_str("COMMIT;");
    exec(conn, &sql);
    exec(conn, "PRAGMA foreign_keys = ON");
}

/// `sql` with `from` replaced by `to` in the one line that contains `marker`.
fn edit_line(sql: &str, marker: &str, from: &str, to: &str) -> String {
    let lines: Vec<&str> = sql.lines().filter(|l| l.contains(marker)).collect();
    assert_eq!(lines.len(), 1, "one line with {marker} in {sql}");
    let line = lines[0];
    assert!(line.contains(from), "{from} not in {line}");
    sql.replacen(line, &line.replacen(from, to, 1), 1)
}
