//! The schema a store's code is compiled against: the diesel `table!` definitions of the
//! crate's `src/schema.rs` (embedded as [`Store::code_schema`](crate::store::Store)),
//! read back into tables and columns and checked against a live database.
//!
//! A database can hold every table its migrations' contract names and still break the
//! code: diesel selects every column `table!` declares, by name, and decodes each as the
//! declared type. So [`check`] asks what a read needs (the column exists, its type is of the
//! same family, a column declared never NULL holds no NULL), and [`mismatches`] asks the
//! stricter question the store crates' tests ask: is `schema.rs` exactly what the
//! migrations produce.

mod kind;
mod lex;
mod parse;

pub use kind::CodeProblemKind;

use std::collections::BTreeSet;

use serde::Serialize;

use crate::catalog;
use crate::schema::{ColumnModel, SchemaModel, TableModel};

pub use parse::parse;

/// A column as `table!` declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeColumn {
    /// The column's SQL name (a `#[sql_name = "…"]` wins over the Rust name).
    pub name: String,
    /// diesel's name of the type inside any `Nullable<…>`, paths dropped: `Text`, `Int8`,
    /// `Timestamp`, `Array<Text>`.
    pub sql_type: String,
    /// Declared `Nullable<…>`.
    pub nullable: bool,
}

/// A table as `table!` declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeTable {
    /// The table's SQL name, without a schema.
    pub name: String,
    /// SQL names of the primary key columns, in declared order (`id` when none is given,
    /// as diesel assumes).
    pub primary_key: Vec<String>,
    /// In declared order.
    pub columns: Vec<CodeColumn>,
}

/// One way in which a database does not hold what the code reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeProblem {
    /// What [`check`] reports, or with [`mismatches`] also the strict kinds.
    pub kind: CodeProblemKind,
    pub table: String,
    /// The column concerned; `null` for a table or its primary key.
    pub column: Option<String>,
    /// What the code declares (`null` when it declares nothing there).
    pub expected: Option<String>,
    /// What the database holds (`null` when it holds nothing there).
    pub found: Option<String>,
    /// One line for people, naming the table and column.
    pub message: String,
}

/// The family [`catalog::logical_type`] gives a live column whose type diesel names
/// `diesel_type` (`Int8` and `BigInt` are both `bigint`); `None` for a type it has no
/// family for (an array, a custom type), whose family cannot be checked.
pub fn logical_type(diesel_type: &str) -> Option<&'static str> {
    let name = diesel_type.trim();
    let name = name.rsplit("::").next().unwrap_or(name).trim();
    Some(match name {
        "Text" | "Varchar" | "VarChar" => "text",
        "Int8" | "BigInt" => "bigint",
        "Int4" | "Integer" => "integer",
        "Int2" | "SmallInt" | "Smallint" => "smallint",
        "Bool" => "boolean",
        "Timestamp" => "timestamp",
        "Timestamptz" | "TimestamptzSqlite" => "timestamptz",
        // The catalog calls PostgreSQL's `real` a double, being SQLite's 8-byte REAL.
        "Float8" | "Double" | "Float4" | "Float" => "double",
        "Numeric" | "Decimal" => "numeric",
        "Date" => "date",
        "Time" => "time",
        "Bytea" | "Binary" | "Blob" => "bytea",
        "Bpchar" => "character",
        "Uuid" => "uuid",
        "Json" => "json",
        "Jsonb" => "jsonb",
        "Interval" => "interval",
        _ => return None,
    })
}

/// A live column's family in the words of [`logical_type`]: the catalog's logical type
/// without its modifiers (`character varying(255)` is `text`, `numeric(10,2)` is
/// `numeric`), and the few names one backend spells differently from the other.
fn live_family(data_type: &str) -> String {
    let mut bare = String::with_capacity(data_type.len());
    let mut depth = 0u32;
    for c in data_type.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => bare.push(c),
            _ => {}
        }
    }
    let bare = bare.split_whitespace().collect::<Vec<_>>().join(" ");
    let family = catalog::logical_type(&bare);
    match family.as_str() {
        // SQLite's names for what PostgreSQL calls bytea, numeric, double and time.
        "blob" => "bytea".into(),
        "decimal" => "numeric".into(),
        "float" | "float4" => "double".into(),
        "time without time zone" => "time".into(),
        "bpchar" => "character".into(),
        _ => family,
    }
}

/// What `code` reads that `live` (the `store` database) does not hold: a table or column
/// that is missing, a type of another family, a column the code takes as never NULL that
/// the database lets be NULL (reading such a row would fail). A column the code does not
/// declare, or one it declares `Nullable` that the database keeps NOT NULL, is fine. A
/// type [`logical_type`] does not know is not checked.
pub fn check(store: &str, code: &[CodeTable], live: &SchemaModel) -> Vec<CodeProblem> {
    walk(store, code, live, false)
}

/// Every difference between `code` and `live`, both ways: what [`check`] reports, plus a
/// table or column of the database the code does not declare, a `Nullable` column the
/// database keeps NOT NULL, another primary key, and a type whose family is unknown.
/// Empty when `schema.rs` says exactly what the migrations produce.
pub fn mismatches(store: &str, code: &[CodeTable], live: &SchemaModel) -> Vec<CodeProblem> {
    walk(store, code, live, true)
}

fn problem(
    kind: CodeProblemKind,
    table: &str,
    column: Option<&str>,
    expected: Option<String>,
    found: Option<String>,
    message: String,
) -> CodeProblem {
    CodeProblem {
        kind,
        table: table.to_string(),
        column: column.map(str::to_string),
        expected,
        found,
        message,
    }
}

fn walk(store: &str, code: &[CodeTable], live: &SchemaModel, strict: bool) -> Vec<CodeProblem> {
    let mut out = Vec::new();
    for table in code {
        let t = table.name.as_str();
        let Some(found) = live.tables.get(t) else {
            out.push(problem(
                CodeProblemKind::MissingTable,
                t,
                None,
                Some(t.to_string()),
                None,
                format!("the code reads {t}; the {store} database has no such table"),
            ));
            continue;
        };
        for column in &table.columns {
            match found.columns.get(&column.name) {
                None => out.push(problem(
                    CodeProblemKind::MissingColumn,
                    t,
                    Some(&column.name),
                    Some(declared(column)),
                    None,
                    format!(
                        "the code reads {t}.{}; the {store} database has no such column",
                        column.name
                    ),
                )),
                Some(live_column) => {
                    check_column(store, t, column, live_column, strict, &mut out);
                }
            }
        }
        if strict {
            strict_table(store, table, found, &mut out);
        }
    }
    if strict {
        let declared: BTreeSet<&str> = code.iter().map(|t| t.name.as_str()).collect();
        for t in live
            .tables
            .keys()
            .filter(|t| !declared.contains(t.as_str()))
        {
            out.push(problem(
                CodeProblemKind::UndeclaredTable,
                t,
                None,
                None,
                Some(t.clone()),
                format!("the {store} database has table {t}; the code declares no such table"),
            ));
        }
    }
    out
}

fn declared(column: &CodeColumn) -> String {
    if column.nullable {
        format!("Nullable<{}>", column.sql_type)
    } else {
        column.sql_type.clone()
    }
}

fn null_word(nullable: bool) -> String {
    if nullable { "NULL" } else { "NOT NULL" }.to_string()
}

fn check_column(
    store: &str,
    t: &str,
    column: &CodeColumn,
    live: &ColumnModel,
    strict: bool,
    out: &mut Vec<CodeProblem>,
) {
    let c = column.name.as_str();
    let found = live_family(&live.data_type);
    match logical_type(&column.sql_type) {
        Some(family) if family != found => out.push(problem(
            CodeProblemKind::ColumnType,
            t,
            Some(c),
            Some(family.to_string()),
            Some(found.clone()),
            format!(
                "the code reads {t}.{c} as {} ({family}); the {store} database has it as {found}",
                column.sql_type
            ),
        )),
        Some(_) => {}
        None if strict => out.push(problem(
            CodeProblemKind::UnknownType,
            t,
            Some(c),
            Some(column.sql_type.clone()),
            Some(found.clone()),
            format!(
                "the code reads {t}.{c} as {}, a type shared::code_schema::logical_type has \
                 no family for; the {store} database has it as {found}",
                column.sql_type
            ),
        )),
        None => {}
    }
    if !column.nullable && live.nullable {
        out.push(problem(
            CodeProblemKind::ColumnNullability,
            t,
            Some(c),
            Some(null_word(false)),
            Some(null_word(true)),
            format!(
                "the code reads {t}.{c} as never NULL; the {store} database allows NULL there, \
                 and reading a row that holds one would fail"
            ),
        ));
    } else if strict && column.nullable && !live.nullable {
        out.push(problem(
            CodeProblemKind::ColumnNullability,
            t,
            Some(c),
            Some(null_word(true)),
            Some(null_word(false)),
            format!("the code reads {t}.{c} as Nullable; the {store} database has it NOT NULL"),
        ));
    }
}

/// What only the strict comparison asks of a table: the columns the code does not
/// declare, and the primary key.
fn strict_table(store: &str, table: &CodeTable, live: &TableModel, out: &mut Vec<CodeProblem>) {
    let t = table.name.as_str();
    for (c, column) in &live.columns {
        if !table.columns.iter().any(|d| &d.name == c) {
            out.push(problem(
                CodeProblemKind::UndeclaredColumn,
                t,
                Some(c),
                None,
                Some(format!(
                    "{} {}",
                    column.data_type,
                    null_word(column.nullable)
                )),
                format!(
                    "the {store} database has column {t}.{c}; the code declares no such column"
                ),
            ));
        }
    }
    if table.primary_key != live.primary_key {
        let (code_pk, live_pk) = (table.primary_key.join(", "), live.primary_key.join(", "));
        out.push(problem(
            CodeProblemKind::PrimaryKey,
            t,
            None,
            Some(format!("({code_pk})")),
            Some(format!("({live_pk})")),
            format!(
                "the code takes ({code_pk}) as {t}'s primary key; the {store} database has ({live_pk})"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Conn;
    use crate::url::DatabaseUrl;

    fn column(name: &str, sql_type: &str, nullable: bool) -> CodeColumn {
        CodeColumn {
            name: name.into(),
            sql_type: sql_type.into(),
            nullable,
        }
    }

    fn sessions_code() -> Vec<CodeTable> {
        vec![CodeTable {
            name: "sessions".into(),
            primary_key: vec!["id".into()],
            columns: vec![
                column("id", "Text", false),
                column("token", "Text", false),
                column("expires_at", "Timestamp", false),
                column("ip_address", "Text", true),
            ],
        }]
    }

    /// A real database's model, read back by the same introspection verify uses.
    fn sqlite(sql: &str) -> SchemaModel {
        let url = DatabaseUrl::sqlite_in_memory();
        let mut conn = Conn::establish("test", &url).expect("open");
        conn.batch_execute(sql).expect("schema");
        crate::schema::introspect(&mut conn).expect("introspect")
    }

    fn kinds(problems: &[CodeProblem]) -> Vec<(CodeProblemKind, &str, Option<&str>)> {
        problems
            .iter()
            .map(|p| (p.kind, p.table.as_str(), p.column.as_deref()))
            .collect()
    }

    #[test]
    fn diesel_types_map_to_the_catalog_families() {
        for (diesel, pg, sqlite) in [
            ("Text", "text", "TEXT"),
            ("Varchar", "character varying(255)", "VARCHAR(255)"),
            ("Int8", "bigint", "BIGINT"),
            ("BigInt", "bigint", "INT8"),
            ("Int4", "integer", "INTEGER"),
            ("Integer", "integer", "INT"),
            ("Bool", "boolean", "BOOLEAN"),
            ("Timestamp", "timestamp without time zone", "TIMESTAMP"),
            ("Timestamptz", "timestamp with time zone", "TIMESTAMPTZ"),
            ("Float8", "double precision", "DOUBLE"),
            ("Numeric", "numeric(10,2)", "DECIMAL(10,2)"),
            ("Binary", "bytea", "BLOB"),
            ("diesel::sql_types::Time", "time without time zone", "TIME"),
        ] {
            let family = logical_type(diesel).unwrap_or_else(|| panic!("{diesel}"));
            for live in [pg, sqlite] {
                assert_eq!(
                    live_family(&catalog::logical_type(live)),
                    family,
                    "{diesel} vs {live}"
                );
            }
        }
        assert_eq!(logical_type("Int8"), logical_type("BigInt"));
        assert_eq!(logical_type("Array<Text>"), None);
        assert_eq!(logical_type("crate::schema::sql_types::Mood"), None);
    }

    #[test]
    fn a_database_that_holds_what_the_code_reads_passes() {
        let live = sqlite(
            "CREATE TABLE sessions(id TEXT PRIMARY KEY NOT NULL, token TEXT NOT NULL, \
             expires_at TIMESTAMP NOT NULL, ip_address TEXT NOT NULL, extra BIGINT);",
        );
        // ip_address is Nullable in the code but NOT NULL here, and `extra` is not read:
        // both are fine for reading; only the strict comparison names them.
        assert_eq!(check("auth", &sessions_code(), &live), []);
        let strict = mismatches("auth", &sessions_code(), &live);
        assert_eq!(
            kinds(&strict),
            [
                (
                    CodeProblemKind::ColumnNullability,
                    "sessions",
                    Some("ip_address")
                ),
                (CodeProblemKind::UndeclaredColumn, "sessions", Some("extra")),
            ]
        );
    }

    #[test]
    fn each_way_of_breaking_a_read_is_reported_and_named() {
        let live = sqlite(
            "CREATE TABLE sessions(id TEXT PRIMARY KEY NOT NULL, expires_at BIGINT NOT NULL, \
             ip_address TEXT, token_hash TEXT);
             CREATE TABLE users(id TEXT PRIMARY KEY NOT NULL);",
        );
        let mut code = sessions_code();
        code.push(CodeTable {
            name: "teams".into(),
            primary_key: vec!["id".into()],
            columns: vec![column("id", "Text", false)],
        });
        let problems = check("auth", &code, &live);
        assert_eq!(
            kinds(&problems),
            [
                (CodeProblemKind::MissingColumn, "sessions", Some("token")),
                (CodeProblemKind::ColumnType, "sessions", Some("expires_at")),
                (CodeProblemKind::MissingTable, "teams", None),
            ]
        );
        assert_eq!(
            problems[0].message,
            "the code reads sessions.token; the auth database has no such column"
        );
        assert_eq!(
            (
                problems[1].expected.as_deref(),
                problems[1].found.as_deref()
            ),
            (Some("timestamp"), Some("bigint"))
        );
        assert_eq!(
            problems[2].message,
            "the code reads teams; the auth database has no such table"
        );
        let json = serde_json::to_value(&problems[0]).expect("json");
        assert_eq!(json["kind"], "code_missing_column");
        assert_eq!(json["column"], "token");
        assert!(json["found"].is_null());
    }

    #[test]
    fn a_column_the_code_takes_as_never_null_must_not_allow_null() {
        let live = sqlite(
            "CREATE TABLE sessions(id TEXT PRIMARY KEY NOT NULL, token TEXT, \
             expires_at TIMESTAMP NOT NULL, ip_address TEXT);",
        );
        let problems = check("auth", &sessions_code(), &live);
        assert_eq!(
            kinds(&problems),
            [(
                CodeProblemKind::ColumnNullability,
                "sessions",
                Some("token")
            )]
        );
        assert_eq!(
            (
                problems[0].expected.as_deref(),
                problems[0].found.as_deref()
            ),
            (Some("NOT NULL"), Some("NULL"))
        );
        assert!(problems[0].message.contains("sessions.token"));
    }

    #[test]
    fn the_strict_comparison_sees_both_directions_and_the_primary_key() {
        let live = sqlite(
            "CREATE TABLE sessions(id TEXT NOT NULL, token TEXT NOT NULL, \
             expires_at TIMESTAMP NOT NULL, ip_address TEXT, PRIMARY KEY (token, id));
             CREATE TABLE audit(id TEXT PRIMARY KEY NOT NULL);",
        );
        let mut code = sessions_code();
        code[0]
            .columns
            .push(column("mood", "crate::sql_types::Mood", true));
        let problems = mismatches("auth", &code, &live);
        assert_eq!(
            kinds(&problems),
            [
                (CodeProblemKind::MissingColumn, "sessions", Some("mood")),
                (CodeProblemKind::PrimaryKey, "sessions", None),
                (CodeProblemKind::UndeclaredTable, "audit", None),
            ]
        );
        assert_eq!(problems[1].found.as_deref(), Some("(token, id)"));
        // A type with no known family passes `check` but not the strict comparison.
        let live = sqlite(
            "CREATE TABLE sessions(id TEXT PRIMARY KEY NOT NULL, token TEXT NOT NULL, \
             expires_at TIMESTAMP NOT NULL, ip_address TEXT, mood TEXT);",
        );
        assert_eq!(check("auth", &code, &live), []);
        assert_eq!(
            kinds(&mismatches("auth", &code, &live)),
            [(CodeProblemKind::UnknownType, "sessions", Some("mood"))]
        );
    }
}
