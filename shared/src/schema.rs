//! A backend-neutral model of a schema (tables, columns with type, nullability and default,
//! primary keys, unique constraints, indexes, check constraints, foreign keys with their
//! actions), read from a live database, and the comparison of two models that `diff` and
//! `squash` rest on. Bookkeeping `__*` tables are never part of a model.
//!
//! What the backends spell differently is normalised on the way in: types through
//! [`catalog::logical_type`], default and check expressions through [`normalise_expr`],
//! index column lists as the names (or expressions) of their key columns.

use std::collections::{BTreeMap, BTreeSet};

use diesel::sql_types::{Bool, Integer, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl};
use serde::Serialize;

use crate::catalog;
use crate::db::Conn;
use crate::store::{is_bookkeeping, OnDelete};

/// A column: its logical type, whether it accepts NULL, its default expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnModel {
    pub data_type: String,
    pub nullable: bool,
    pub default: Option<String>,
}

/// A foreign key of one column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ForeignKeyModel {
    pub column: String,
    pub ref_table: String,
    pub ref_column: String,
    pub on_delete: OnDelete,
}

/// An index that no constraint created (`CREATE [UNIQUE] INDEX`), by its key columns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct IndexModel {
    pub columns: Vec<String>,
    pub unique: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableModel {
    pub columns: BTreeMap<String, ColumnModel>,
    pub primary_key: Vec<String>,
    /// Column lists of UNIQUE constraints.
    pub uniques: BTreeSet<Vec<String>>,
    /// Indexes by key, with the name found for them (names are not compared).
    pub indexes: BTreeMap<IndexModel, String>,
    /// Normalised CHECK expressions.
    pub checks: BTreeSet<String>,
    pub foreign_keys: BTreeSet<ForeignKeyModel>,
}

/// Every table of a schema, bookkeeping aside.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SchemaModel {
    pub tables: BTreeMap<String, TableModel>,
}

/// One way in which a database differs from what its migrations produce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// `missing_table`, `unexpected_table`, `missing_column`, `unexpected_column`,
    /// `column_type`, `column_nullability`, `column_default`, `primary_key`,
    /// `missing_unique`, `unexpected_unique`, `missing_index`, `unexpected_index`,
    /// `missing_check`, `unexpected_check`, `missing_foreign_key`,
    /// `unexpected_foreign_key` or `foreign_key_action`.
    pub kind: &'static str,
    pub table: String,
    /// The column, constraint or index concerned (the table itself for table kinds).
    pub object: String,
    /// What the migrations produce (`null` when they do not produce it).
    pub expected: Option<String>,
    /// What the database holds (`null` when it does not hold it).
    pub found: Option<String>,
    /// What to do about it, in words.
    pub advice: String,
}

impl Difference {
    /// One line for people: `table: what differs: what to do`.
    pub fn describe(&self, store: &str) -> String {
        let what = match self.kind {
            "missing_table" => "the table is missing from the database".to_string(),
            "unexpected_table" => {
                "the table exists in the database but not in the migrations".into()
            }
            "missing_column" => format!("column `{}` is missing from the database", self.object),
            "unexpected_column" => format!(
                "column `{}` exists in the database but not in the migrations",
                self.object
            ),
            "missing_foreign_key" | "missing_index" | "missing_unique" | "missing_check" => {
                format!(
                    "{} {} is missing from the database",
                    kind_noun(self.kind),
                    self.object
                )
            }
            "unexpected_foreign_key"
            | "unexpected_index"
            | "unexpected_unique"
            | "unexpected_check" => format!(
                "{} {} exists in the database but not in the migrations",
                kind_noun(self.kind),
                self.object
            ),
            _ => format!(
                "{} of `{}` is {} in the database, the migrations say {}",
                kind_noun(self.kind),
                self.object,
                self.found.as_deref().unwrap_or("none"),
                self.expected.as_deref().unwrap_or("none")
            ),
        };
        format!("{store}.{}: {what}: {}", self.table, self.advice)
    }
}

fn kind_noun(kind: &str) -> &'static str {
    match kind {
        "missing_foreign_key" | "unexpected_foreign_key" => "foreign key",
        "missing_index" | "unexpected_index" => "index",
        "missing_unique" | "unexpected_unique" => "unique constraint",
        "missing_check" | "unexpected_check" => "check constraint",
        "column_type" => "the type",
        "column_nullability" => "nullability",
        "column_default" => "the default",
        "primary_key" => "the primary key",
        "foreign_key_action" => "ON DELETE",
        _ => "object",
    }
}

/// Normalises an SQL expression (a default, a check) so that spellings of the same thing
/// compare equal: lower case, no casts to text-like types, no redundant outer parentheses,
/// no whitespace, and a CHECK keyword dropped.
pub fn normalise_expr(expr: &str) -> String {
    let mut s: String = expr.trim().to_ascii_lowercase();
    if let Some(rest) = s.strip_prefix("check") {
        s = rest.trim().to_string();
    }
    for cast in [
        "::text[]",
        "::text",
        "::character varying",
        "::bigint",
        "::integer",
        "::boolean",
        "::timestamp without time zone",
    ] {
        s = s.replace(cast, "");
    }
    s.retain(|c| !c.is_whitespace());
    loop {
        let stripped = strip_outer_parens(&s);
        if stripped.len() == s.len() {
            break;
        }
        s = stripped.to_string();
    }
    s
}

fn strip_outer_parens(s: &str) -> &str {
    if !(s.starts_with('(') && s.ends_with(')')) {
        return s;
    }
    // Only when the first parenthesis closes at the very end: `(a)+(b)` keeps them.
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 && i != s.len() - 1 {
                    return s;
                }
            }
            _ => {}
        }
    }
    &s[1..s.len() - 1]
}

#[derive(QueryableByName)]
struct ColRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
    #[diesel(sql_type = Nullable<Text>)]
    dflt: Option<String>,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct IndexRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    index_name: String,
    /// `pk`, `u` (a UNIQUE constraint) or `c` (CREATE INDEX).
    #[diesel(sql_type = Text)]
    origin: String,
    #[diesel(sql_type = Bool)]
    is_unique: bool,
    #[diesel(sql_type = Integer)]
    seq: i32,
    #[diesel(sql_type = Text)]
    column_name: String,
}

#[derive(QueryableByName)]
struct CheckRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    def: String,
}

#[derive(QueryableByName)]
struct TableSqlRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    def: String,
}

const PG_COLUMNS: &str = "SELECT c.relname::text AS table_name, a.attname::text AS column_name, \
       format_type(a.atttypid, a.atttypmod) AS data_type, a.attnotnull AS not_null, \
       pg_get_expr(d.adbin, d.adrelid) AS dflt, \
       COALESCE(array_position(pk.conkey, a.attnum), 0)::int AS pk \
     FROM pg_catalog.pg_attribute a \
     JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
     LEFT JOIN pg_catalog.pg_constraint pk ON pk.conrelid = c.oid AND pk.contype = 'p' \
     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 \
       AND NOT a.attisdropped ORDER BY 1, 2";

const SQLITE_COLUMNS: &str =
    "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
       (p.\"notnull\" = 1 OR (p.pk > 0 AND lower(p.type) = 'integer')) AS not_null, \
       p.dflt_value AS dflt, p.pk AS pk \
     FROM sqlite_schema m, pragma_table_info(m.name) p \
     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY 1, 2";

/// Every index with its key columns (expressions spelled out), and whether a constraint
/// made it: primary key, unique constraint, or a `CREATE INDEX` of its own.
const PG_INDEXES: &str = "SELECT t.relname::text AS table_name, ic.relname::text AS index_name, \
       CASE WHEN con.contype = 'p' THEN 'pk' WHEN con.contype IN ('u', 'x') THEN 'u' ELSE 'c' END AS origin, \
       i.indisunique AS is_unique, k.n::int AS seq, \
       pg_get_indexdef(i.indexrelid, k.n::int, true) AS column_name \
     FROM pg_catalog.pg_index i \
     JOIN pg_catalog.pg_class t ON t.oid = i.indrelid \
     JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace \
     LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x') \
     CROSS JOIN LATERAL generate_series(1, i.indnkeyatts) AS k(n) \
     WHERE n.nspname = current_schema() AND t.relkind IN ('r', 'p') ORDER BY 1, 2, 5";

const SQLITE_INDEXES: &str = "SELECT m.name AS table_name, il.name AS index_name, il.origin AS origin, \
       il.\"unique\" = 1 AS is_unique, ii.seqno AS seq, COALESCE(ii.name, '<expression>') AS column_name \
     FROM sqlite_schema m, pragma_index_list(m.name) il, pragma_index_info(il.name) ii \
     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY 1, 2, 5";

const PG_CHECKS: &str =
    "SELECT cl.relname::text AS table_name, pg_get_constraintdef(con.oid, true) AS def \
     FROM pg_catalog.pg_constraint con \
     JOIN pg_catalog.pg_class cl ON cl.oid = con.conrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = cl.relnamespace \
     WHERE con.contype = 'c' AND n.nspname = current_schema() ORDER BY 1, 2";

/// SQLite keeps no catalog of CHECK constraints: they are read from each table's SQL.
const SQLITE_TABLE_SQL: &str = "SELECT name AS table_name, sql AS def FROM sqlite_schema \
     WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND sql IS NOT NULL ORDER BY 1";

fn load<T>(conn: &mut Conn, sql: &str) -> diesel::QueryResult<Vec<T>>
where
    T: QueryableByName<diesel::pg::Pg> + QueryableByName<diesel::sqlite::Sqlite> + 'static,
{
    crate::with_conn!(conn, |c| diesel::sql_query(sql).load(c))
}

/// Reads the model of the connection's schema (PostgreSQL: the current schema).
pub fn introspect(conn: &mut Conn) -> diesel::QueryResult<SchemaModel> {
    let postgres = matches!(conn, Conn::Postgres(_));
    let mut model = SchemaModel::default();
    for table in catalog::tables(conn)? {
        model.tables.insert(table, TableModel::default());
    }

    let columns: Vec<ColRow> = load(conn, if postgres { PG_COLUMNS } else { SQLITE_COLUMNS })?;
    let mut pks: BTreeMap<String, Vec<(i32, String)>> = BTreeMap::new();
    for r in columns {
        let Some(table) = model.tables.get_mut(&r.table_name) else {
            continue;
        };
        if r.pk > 0 {
            pks.entry(r.table_name.clone())
                .or_default()
                .push((r.pk, r.column_name.clone()));
        }
        table.columns.insert(
            r.column_name,
            ColumnModel {
                data_type: catalog::logical_type(&r.data_type),
                nullable: !r.not_null,
                default: r.dflt.as_deref().map(normalise_expr),
            },
        );
    }
    for (name, mut cols) in pks {
        cols.sort();
        if let Some(table) = model.tables.get_mut(&name) {
            table.primary_key = cols.into_iter().map(|(_, c)| c).collect();
        }
    }

    let rows: Vec<IndexRow> = load(conn, if postgres { PG_INDEXES } else { SQLITE_INDEXES })?;
    let mut indexes: BTreeMap<(String, String), (String, bool, Vec<String>)> = BTreeMap::new();
    for r in rows {
        let entry = indexes
            .entry((r.table_name, r.index_name))
            .or_insert_with(|| (r.origin.clone(), r.is_unique, Vec::new()));
        let _ = r.seq;
        entry.2.push(normalise_index_column(&r.column_name));
    }
    for ((table_name, index_name), (origin, unique, columns)) in indexes {
        let Some(table) = model.tables.get_mut(&table_name) else {
            continue;
        };
        match origin.as_str() {
            "pk" => {}
            "u" => {
                table.uniques.insert(columns);
            }
            _ => {
                table
                    .indexes
                    .insert(IndexModel { columns, unique }, index_name);
            }
        }
    }

    if postgres {
        for r in load::<CheckRow>(conn, PG_CHECKS)? {
            if let Some(table) = model.tables.get_mut(&r.table_name) {
                table.checks.insert(normalise_expr(&r.def));
            }
        }
    } else {
        for r in load::<TableSqlRow>(conn, SQLITE_TABLE_SQL)? {
            if let Some(table) = model.tables.get_mut(&r.table_name) {
                for check in check_clauses(&r.def) {
                    table.checks.insert(normalise_expr(&check));
                }
            }
        }
    }

    for fk in catalog::foreign_keys(conn)? {
        if let Some(table) = model.tables.get_mut(&fk.table) {
            table.foreign_keys.insert(ForeignKeyModel {
                column: fk.column,
                ref_table: fk.ref_table,
                ref_column: fk.ref_column,
                on_delete: fk.on_delete,
            });
        }
    }
    model.tables.retain(|t, _| !is_bookkeeping(t));
    Ok(model)
}

/// The statements that create a SQLite schema (tables first, then indexes, triggers and
/// views, each in creation order), bookkeeping and internal objects aside: a squash's
/// baseline.
pub fn sqlite_creation_sql(conn: &mut Conn) -> diesel::QueryResult<Vec<(String, String)>> {
    const SQL: &str = "SELECT name AS table_name, sql AS def FROM sqlite_schema \
         WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
           AND tbl_name NOT LIKE '\\_\\_%' ESCAPE '\\' \
         ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, rowid";
    Ok(load::<TableSqlRow>(conn, SQL)?
        .into_iter()
        .map(|r| (r.table_name, r.def))
        .collect())
}

fn normalise_index_column(col: &str) -> String {
    let c = col.trim();
    let unquoted = c
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(c);
    if unquoted.chars().all(|ch| ch.is_alphanumeric() || ch == '_') {
        unquoted.to_string()
    } else {
        normalise_expr(c)
    }
}

/// The `CHECK (…)` clauses of a `CREATE TABLE` statement, parentheses balanced, ignoring
/// the word inside string literals and quoted identifiers.
pub fn check_clauses(create_table: &str) -> Vec<String> {
    let bytes = create_table.as_bytes();
    let lower = create_table.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if b == b'\'' || b == b'"' || b == b'`' {
            quote = Some(b);
            i += 1;
            continue;
        }
        let word_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if word_start && lower[i..].starts_with("check") {
            let mut j = i + 5;
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == b'(' {
                let start = j;
                let mut depth = 0i32;
                let mut q: Option<u8> = None;
                while j < bytes.len() {
                    let c = bytes[j];
                    match q {
                        Some(qq) if c == qq => q = None,
                        Some(_) => {}
                        None if c == b'\'' || c == b'"' => q = Some(c),
                        None if c == b'(' => depth += 1,
                        None if c == b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        None => {}
                    }
                    j += 1;
                }
                out.push(create_table[start..=j.min(bytes.len() - 1)].to_string());
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

fn fk_text(fk: &ForeignKeyModel) -> String {
    format!(
        "({}) REFERENCES {}({}) ON DELETE {}",
        fk.column, fk.ref_table, fk.ref_column, fk.on_delete
    )
}

fn column_text(c: &ColumnModel) -> String {
    let mut s = c.data_type.clone();
    if !c.nullable {
        s.push_str(" NOT NULL");
    }
    if let Some(d) = &c.default {
        s.push_str(&format!(" DEFAULT {d}"));
    }
    s
}

fn index_text(ix: &IndexModel) -> String {
    format!(
        "{}({})",
        if ix.unique { "UNIQUE " } else { "" },
        ix.columns.join(", ")
    )
}

/// Compares a live database (`found`) with what the migrations produce (`expected`),
/// and says for each difference what to do. Sorted by table, then kind.
pub fn compare(expected: &SchemaModel, found: &SchemaModel) -> Vec<Difference> {
    let mut out = Vec::new();
    let diff = |kind: &'static str,
                table: &str,
                object: String,
                expected: Option<String>,
                found: Option<String>,
                advice: String| Difference {
        kind,
        table: table.to_string(),
        object,
        expected,
        found,
        advice,
    };
    for (name, exp) in &expected.tables {
        let Some(live) = found.tables.get(name) else {
            out.push(diff(
                "missing_table",
                name,
                name.clone(),
                Some(name.clone()),
                None,
                "run `orchestrator migrate`, or find the migration that should create it".into(),
            ));
            continue;
        };
        compare_table(name, exp, live, &mut out);
    }
    for name in found.tables.keys() {
        if !expected.tables.contains_key(name) {
            out.push(diff(
                "unexpected_table",
                name,
                name.clone(),
                None,
                Some(name.clone()),
                "write a migration that creates it, or drop it".into(),
            ));
        }
    }
    out
}

fn compare_table(table: &str, exp: &TableModel, live: &TableModel, out: &mut Vec<Difference>) {
    let mut push = |kind: &'static str,
                    object: String,
                    expected: Option<String>,
                    found: Option<String>,
                    advice: &str| {
        out.push(Difference {
            kind,
            table: table.to_string(),
            object,
            expected,
            found,
            advice: advice.to_string(),
        });
    };
    for (col, e) in &exp.columns {
        match live.columns.get(col) {
            None => push(
                "missing_column",
                col.clone(),
                Some(column_text(e)),
                None,
                "add it by hand or find why its migration did not run (`orchestrator status`)",
            ),
            Some(f) => {
                if e.data_type != f.data_type {
                    push(
                        "column_type",
                        col.clone(),
                        Some(e.data_type.clone()),
                        Some(f.data_type.clone()),
                        "write a migration that changes the type, or alter the column back",
                    );
                }
                if e.nullable != f.nullable {
                    let word = |n: bool| if n { "NULL" } else { "NOT NULL" }.to_string();
                    push(
                        "column_nullability",
                        col.clone(),
                        Some(word(e.nullable)),
                        Some(word(f.nullable)),
                        "write a migration that changes the nullability, or alter the column back",
                    );
                }
                if e.default != f.default {
                    push(
                        "column_default",
                        col.clone(),
                        e.default.clone(),
                        f.default.clone(),
                        "write a migration that sets this default, or set the column's default back",
                    );
                }
            }
        }
    }
    for (col, f) in &live.columns {
        if !exp.columns.contains_key(col) {
            push(
                "unexpected_column",
                col.clone(),
                None,
                Some(column_text(f)),
                "write a migration that adds it, or drop it",
            );
        }
    }
    if exp.primary_key != live.primary_key {
        push(
            "primary_key",
            "primary key".into(),
            Some(format!("({})", exp.primary_key.join(", "))),
            Some(format!("({})", live.primary_key.join(", "))),
            "write a migration that changes the primary key, or restore it",
        );
    }
    for u in exp.uniques.difference(&live.uniques) {
        push(
            "missing_unique",
            format!("UNIQUE ({})", u.join(", ")),
            Some(format!("UNIQUE ({})", u.join(", "))),
            None,
            "add the constraint back",
        );
    }
    for u in live.uniques.difference(&exp.uniques) {
        push(
            "unexpected_unique",
            format!("UNIQUE ({})", u.join(", ")),
            None,
            Some(format!("UNIQUE ({})", u.join(", "))),
            "write a migration that adds it, or drop it",
        );
    }
    for (ix, name) in &exp.indexes {
        if !live.indexes.contains_key(ix) {
            push(
                "missing_index",
                format!("`{name}` {}", index_text(ix)),
                Some(index_text(ix)),
                None,
                "create the index again",
            );
        }
    }
    for (ix, name) in &live.indexes {
        if !exp.indexes.contains_key(ix) {
            push(
                "unexpected_index",
                format!("`{name}` {}", index_text(ix)),
                None,
                Some(index_text(ix)),
                "write a migration that creates it, or drop it",
            );
        }
    }
    for c in exp.checks.difference(&live.checks) {
        push(
            "missing_check",
            format!("CHECK ({c})"),
            Some(c.clone()),
            None,
            "add the check constraint back",
        );
    }
    for c in live.checks.difference(&exp.checks) {
        push(
            "unexpected_check",
            format!("CHECK ({c})"),
            None,
            Some(c.clone()),
            "write a migration that adds it, or drop it",
        );
    }
    let key = |f: &ForeignKeyModel| (f.column.clone(), f.ref_table.clone(), f.ref_column.clone());
    let live_fks: BTreeMap<_, _> = live.foreign_keys.iter().map(|f| (key(f), f)).collect();
    let exp_fks: BTreeMap<_, _> = exp.foreign_keys.iter().map(|f| (key(f), f)).collect();
    for (k, e) in &exp_fks {
        match live_fks.get(k) {
            None => push(
                "missing_foreign_key",
                format!("{}.{} → {}.{}", table, k.0, k.1, k.2),
                Some(fk_text(e)),
                None,
                "add the foreign key back (clean up orphan rows first)",
            ),
            Some(f) if f.on_delete != e.on_delete => push(
                "foreign_key_action",
                format!("{}.{} → {}.{}", table, k.0, k.1, k.2),
                Some(e.on_delete.to_string()),
                Some(f.on_delete.to_string()),
                "recreate the foreign key with the action the migrations give it, or write a migration that changes it",
            ),
            Some(_) => {}
        }
    }
    for (k, f) in &live_fks {
        if !exp_fks.contains_key(k) {
            push(
                "unexpected_foreign_key",
                format!("{}.{} → {}.{}", table, k.0, k.1, k.2),
                None,
                Some(fk_text(f)),
                "write a migration that adds it, or drop it",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::DatabaseUrl;

    fn sqlite(sql: &str) -> SchemaModel {
        let url = DatabaseUrl::parse(":memory:").expect("url");
        let mut conn = Conn::establish("test", &url).expect("open");
        conn.batch_execute(sql).expect("schema");
        introspect(&mut conn).expect("introspect")
    }

    const BASE: &str = "CREATE TABLE p(id TEXT PRIMARY KEY NOT NULL, email TEXT NOT NULL UNIQUE, \
        n BIGINT NOT NULL DEFAULT 0 CHECK (n >= 0), status TEXT DEFAULT 'a');
        CREATE TABLE c(id TEXT PRIMARY KEY NOT NULL, p_id TEXT REFERENCES p(id) ON DELETE CASCADE);
        CREATE INDEX c_p_idx ON c (p_id);
        CREATE TABLE __orchestrator_resets(x TEXT);";

    #[test]
    fn a_model_reads_every_kind_of_object() {
        let m = sqlite(BASE);
        assert_eq!(m.tables.keys().collect::<Vec<_>>(), ["c", "p"]);
        let p = &m.tables["p"];
        assert_eq!(p.primary_key, ["id"]);
        assert!(p.uniques.contains(&vec!["email".to_string()]));
        assert_eq!(p.checks.iter().collect::<Vec<_>>(), ["n>=0"]);
        assert_eq!(p.columns["n"].default.as_deref(), Some("0"));
        assert_eq!(p.columns["status"].default.as_deref(), Some("'a'"));
        let c = &m.tables["c"];
        assert_eq!(c.indexes.values().collect::<Vec<_>>(), ["c_p_idx"]);
        assert_eq!(c.foreign_keys.len(), 1);
        assert!(compare(&m, &m).is_empty());
    }

    #[test]
    fn each_change_is_reported_and_named() {
        let expected = sqlite(BASE);
        let found = sqlite(
            "CREATE TABLE p(id TEXT PRIMARY KEY NOT NULL, email TEXT UNIQUE, \
             n BIGINT NOT NULL DEFAULT 0 CHECK (n >= 0), status TEXT DEFAULT 'a', x TEXT);
             CREATE TABLE c(id TEXT PRIMARY KEY NOT NULL, p_id TEXT REFERENCES p(id) ON DELETE SET NULL);
             CREATE INDEX c_p_idx ON c (p_id); CREATE INDEX c_id_p ON c (id, p_id);",
        );
        let kinds: Vec<_> = compare(&expected, &found)
            .into_iter()
            .map(|d| (d.kind, d.table, d.object))
            .collect();
        assert!(
            kinds.contains(&("unexpected_column", "p".into(), "x".into())),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("column_nullability", "p".into(), "email".into())),
            "{kinds:?}"
        );
        assert!(
            kinds
                .iter()
                .any(|k| k.0 == "foreign_key_action" && k.1 == "c"),
            "{kinds:?}"
        );
        assert!(
            kinds
                .iter()
                .any(|k| k.0 == "unexpected_index" && k.2.contains("c_id_p")),
            "{kinds:?}"
        );
        assert_eq!(kinds.len(), 4, "{kinds:?}");
    }

    #[test]
    fn expressions_normalise_across_spellings() {
        assert_eq!(normalise_expr("CHECK ((credits >= 0))"), "credits>=0");
        assert_eq!(normalise_expr("'queued'::text"), "'queued'");
        assert_eq!(normalise_expr("(a) + (b)"), "(a)+(b)");
        assert_eq!(
            check_clauses("CREATE TABLE t(a INT CHECK (a IN ('x)', 'y')), b INT, CHECK(b>0))"),
            ["(a IN ('x)', 'y'))", "(b>0)"]
        );
    }
}
