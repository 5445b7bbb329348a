//! Catalog introspection for both backends: tables, columns and foreign keys with their
//! ON DELETE actions, read from `pg_catalog` or SQLite's pragmas, plus row counts.
//! Each of these is one query per store, whatever the number of tables.

use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl};
use serde::Serialize;

use crate::db::{quote_ident, quote_literal, Conn};
use crate::store::{is_bookkeeping, OnDelete};

mod postgres;
pub(crate) use postgres::{pg_foreign_keys, pg_schema_oid};
mod sqlite;

/// A foreign key as found in a live database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LiveForeignKey {
    pub table: String,
    pub column: String,
    pub ref_table: String,
    pub ref_column: String,
    pub on_delete: OnDelete,
}

/// A column as found in a live database, its type in backend-neutral words.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LiveColumn {
    pub table: String,
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
}

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct FkRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    ref_table: String,
    #[diesel(sql_type = Text)]
    ref_column: String,
    #[diesel(sql_type = Text)]
    on_delete: String,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = Nullable<Text>)]
    version: Option<String>,
}

fn pick(conn: &Conn, postgres: &'static str, sqlite: &'static str) -> &'static str {
    match conn {
        Conn::Postgres(_) => postgres,
        Conn::Sqlite(_) => sqlite,
    }
}

fn load<T>(conn: &mut Conn, sql: &str) -> diesel::QueryResult<Vec<T>>
where
    T: QueryableByName<diesel::pg::Pg> + QueryableByName<diesel::sqlite::Sqlite> + 'static,
{
    match conn {
        Conn::Postgres(c) => diesel::sql_query(sql).load(c),
        Conn::Sqlite(c) => diesel::sql_query(sql).load(c),
    }
}

/// Every table of the schema, bookkeeping tables included, sorted.
pub fn all_tables(conn: &mut Conn) -> diesel::QueryResult<Vec<String>> {
    let sql = pick(conn, postgres::TABLES, sqlite::TABLES);
    Ok(load::<NameRow>(conn, sql)?
        .into_iter()
        .map(|r| r.name)
        .collect())
}

/// Whether the schema has the table `name` (bookkeeping tables included).
pub fn has_table(conn: &mut Conn, name: &str) -> diesel::QueryResult<bool> {
    Ok(!tables_named(conn, &[name])?.is_empty())
}

/// Which of `names` are tables of the schema, in the database's order: for a question
/// about known tables, without listing every table (see `postgres::TABLES_NAMED`).
pub fn tables_named(conn: &mut Conn, names: &[&str]) -> diesel::QueryResult<Vec<String>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = names.iter().map(|n| quote_literal(n)).collect();
    let sql = pick(conn, postgres::TABLES_NAMED, sqlite::TABLES_NAMED)
        .replace("{names}", &list.join(", "));
    Ok(load::<NameRow>(conn, &sql)?
        .into_iter()
        .map(|r| r.name)
        .collect())
}

/// The tables that belong to the store's schema (bookkeeping `__*` tables aside), sorted.
pub fn tables(conn: &mut Conn) -> diesel::QueryResult<Vec<String>> {
    let mut tables = all_tables(conn)?;
    tables.retain(|t| !is_bookkeeping(t));
    Ok(tables)
}

/// Every foreign key of the schema, one entry per column pair, sorted.
pub fn foreign_keys(conn: &mut Conn) -> diesel::QueryResult<Vec<LiveForeignKey>> {
    let sql = pick(conn, postgres::FOREIGN_KEYS, sqlite::FOREIGN_KEYS);
    fk_rows(load::<FkRow>(conn, sql)?)
}

/// [`tables`] and [`foreign_keys`] in one round trip: a table is a row with no column.
pub fn tables_and_foreign_keys(
    conn: &mut Conn,
) -> diesel::QueryResult<(Vec<String>, Vec<LiveForeignKey>)> {
    let (tables, fks, text) = match conn {
        Conn::Postgres(_) => (postgres::TABLES, postgres::FOREIGN_KEYS, "::text"),
        Conn::Sqlite(_) => (sqlite::TABLES, sqlite::FOREIGN_KEYS, ""),
    };
    let sql = format!(
        "SELECT name AS table_name, ''{text} AS column_name, ''{text} AS ref_table, ''{text} AS ref_column, \
                ''{text} AS on_delete FROM ({tables}) AS t \
         UNION ALL SELECT * FROM ({fks}) AS f ORDER BY 1, 2"
    );
    let rows = load::<FkRow>(conn, &sql)?;
    let (table_rows, fk_rows_only): (Vec<FkRow>, Vec<FkRow>) =
        rows.into_iter().partition(|r| r.column_name.is_empty());
    let tables = table_rows
        .into_iter()
        .map(|r| r.table_name)
        .filter(|t| !is_bookkeeping(t))
        .collect();
    Ok((tables, fk_rows(fk_rows_only)?))
}

fn fk_rows(rows: Vec<FkRow>) -> diesel::QueryResult<Vec<LiveForeignKey>> {
    rows.into_iter()
        .map(|r| {
            let on_delete = OnDelete::from_catalog(&r.on_delete).ok_or_else(|| {
                diesel::result::Error::DeserializationError(
                    format!(
                        "unknown ON DELETE action `{}` on {}.{}",
                        r.on_delete, r.table_name, r.column_name
                    )
                    .into(),
                )
            })?;
            Ok(LiveForeignKey {
                table: r.table_name,
                column: r.column_name,
                ref_table: r.ref_table,
                ref_column: r.ref_column,
                on_delete,
            })
        })
        .collect()
}

/// Every column of the store's tables (bookkeeping aside), sorted by table and name.
pub fn columns(conn: &mut Conn) -> diesel::QueryResult<Vec<LiveColumn>> {
    let sql = pick(conn, postgres::COLUMNS, sqlite::COLUMNS);
    Ok(load::<ColumnRow>(conn, sql)?
        .into_iter()
        .filter(|r| !is_bookkeeping(&r.table_name))
        .map(|r| LiveColumn {
            data_type: logical_type(&r.data_type),
            table: r.table_name,
            name: r.column_name,
            nullable: !r.not_null,
        })
        .collect())
}

/// Row counts of the given tables, in one query.
pub fn row_counts(conn: &mut Conn, tables: &[String]) -> diesel::QueryResult<Vec<(String, i64)>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let sql = tables
        .iter()
        .map(|t| {
            format!(
                "SELECT {} AS name, COUNT(*) AS n FROM {}",
                quote_literal(t),
                quote_ident(t)
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let rows = load::<CountRow>(conn, &sql)?;
    Ok(rows.into_iter().map(|r| (r.name, r.n)).collect())
}

/// The name of diesel's migration bookkeeping table.
pub const DIESEL_MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";

/// Versions recorded by diesel as applied, oldest first, read without creating diesel's
/// bookkeeping table when it is absent (reading status must not write).
pub fn applied_versions(conn: &mut Conn) -> diesel::QueryResult<Vec<String>> {
    if !has_table(conn, DIESEL_MIGRATIONS_TABLE)? {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT version FROM {DIESEL_MIGRATIONS_TABLE} ORDER BY version");
    Ok(load::<VersionRow>(conn, &sql)?
        .into_iter()
        .filter_map(|r| r.version)
        .collect())
}

/// The orchestrator's own bookkeeping table: the checksum of each migration's `up.sql`
/// as it was when the migration was applied, so that a file edited afterwards is caught.
pub const ORCHESTRATOR_MIGRATIONS_TABLE: &str = "__orchestrator_migrations";

#[derive(QueryableByName)]
struct StampRow {
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Text)]
    checksum: String,
    #[diesel(sql_type = Text)]
    at: String,
}

/// When each version diesel records was run (`run_on`), as the database prints it;
/// `present` is the schema's tables (see [`all_tables`]), so that a missing bookkeeping
/// table is read as empty and never created.
pub fn applied_runs(
    conn: &mut Conn,
    present: &[String],
) -> diesel::QueryResult<Vec<(String, String)>> {
    if !present.iter().any(|t| t == DIESEL_MIGRATIONS_TABLE) {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT version, '' AS checksum, CAST(run_on AS TEXT) AS at \
         FROM {DIESEL_MIGRATIONS_TABLE} ORDER BY version"
    );
    Ok(load::<StampRow>(conn, &sql)?
        .into_iter()
        .map(|r| (r.version, r.at))
        .collect())
}

/// `(version, checksum, applied_at)` of each recorded checksum; `present` as for
/// [`applied_runs`].
pub fn checksum_records(
    conn: &mut Conn,
    present: &[String],
) -> diesel::QueryResult<Vec<(String, String, String)>> {
    if !present.iter().any(|t| t == ORCHESTRATOR_MIGRATIONS_TABLE) {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT version, checksum, CAST(applied_at AS TEXT) AS at \
         FROM {ORCHESTRATOR_MIGRATIONS_TABLE} ORDER BY version"
    );
    Ok(load::<StampRow>(conn, &sql)?
        .into_iter()
        .map(|r| (r.version, r.checksum, r.at))
        .collect())
}

/// Names a column type the same way on both backends, so that the two histories can be
/// compared (`int8` and `BIGINT` are both `bigint`).
pub fn logical_type(declared: &str) -> String {
    let t = declared.trim().to_ascii_lowercase();
    match t.as_str() {
        "int8" | "bigint" => "bigint".into(),
        "int" | "int4" | "integer" => "integer".into(),
        "int2" | "smallint" => "smallint".into(),
        "bool" | "boolean" => "boolean".into(),
        "timestamp" | "timestamp without time zone" | "datetime" => "timestamp".into(),
        "timestamptz" | "timestamp with time zone" => "timestamptz".into(),
        "double precision" | "float8" | "double" | "real" => "double".into(),
        "text" | "character varying" | "varchar" => "text".into(),
        _ => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::DatabaseUrl;

    #[test]
    fn sqlite_catalog_reads_tables_fks_columns_and_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = DatabaseUrl::parse(&dir.path().join("c.db").to_string_lossy()).expect("url");
        let mut conn = Conn::establish("auth", &url).expect("open");
        conn.batch_execute(
            "CREATE TABLE p(id TEXT PRIMARY KEY NOT NULL, n BIGINT);
             CREATE TABLE c(id TEXT PRIMARY KEY NOT NULL, p_id TEXT REFERENCES p(id) ON DELETE SET NULL);
             CREATE TABLE __orchestrator_resets(x TEXT);
             INSERT INTO p VALUES ('a', 1), ('b', 2);",
        )
        .expect("schema");
        assert_eq!(tables(&mut conn).expect("tables"), ["c", "p"]);
        let fks = foreign_keys(&mut conn).expect("fks");
        assert_eq!(fks.len(), 1);
        assert_eq!(
            (fks[0].table.as_str(), fks[0].on_delete),
            ("c", OnDelete::SetNull)
        );
        let cols = columns(&mut conn).expect("columns");
        let n = cols
            .iter()
            .find(|c| c.table == "p" && c.name == "n")
            .expect("p.n");
        assert_eq!((n.data_type.as_str(), n.nullable), ("bigint", true));
        let counts = row_counts(&mut conn, &["p".into(), "c".into()]).expect("counts");
        assert_eq!(counts, [("p".to_string(), 2), ("c".to_string(), 0)]);
        assert!(applied_versions(&mut conn).expect("versions").is_empty());
        assert!(!all_tables(&mut conn)
            .expect("all")
            .contains(&DIESEL_MIGRATIONS_TABLE.to_string()));
        conn.batch_execute("CREATE VIEW v AS SELECT id FROM p")
            .expect("view");
        assert!(has_table(&mut conn, "p").expect("p"));
        assert!(has_table(&mut conn, "__orchestrator_resets").expect("bookkeeping"));
        assert!(!has_table(&mut conn, "v").expect("a view is not a table"));
        assert!(!has_table(&mut conn, "nope").expect("missing"));
        assert!(!has_table(&mut conn, "p' OR 'x' = 'x").expect("a name is a literal"));
    }

    /// On PostgreSQL (`ORCH_TEST_PG_URL`; with `ORCH_TEST_REQUIRE_PG=1` an unreachable
    /// server fails): a table is found in the connection's schema only, by its exact name.
    #[test]
    fn postgres_has_table_looks_in_the_current_schema_only() {
        let Some(mut server) = crate::test_pg::TestServer::connect() else {
            return;
        };
        let db = format!("orch_catalog_unit_{}", std::process::id());
        let mut conn = server.database(
            &db,
            "CREATE SCHEMA other; CREATE TABLE other.elsewhere (id int);
             CREATE TABLE here (id int); CREATE TABLE \"Mixed\" (id int);
             CREATE VIEW seen AS SELECT 1 AS one;",
        );
        let found = |conn: &mut Conn, name: &str| has_table(conn, name).expect(name);
        assert!(found(&mut conn, "here"));
        assert!(found(&mut conn, "Mixed"));
        assert!(!found(&mut conn, "mixed"));
        assert!(!found(&mut conn, "seen"), "a view is not a table");
        assert!(!found(&mut conn, "elsewhere"), "another schema's table");
        let mut named = tables_named(&mut conn, &["here", "seen", "elsewhere", "Mixed", "gone"])
            .expect("named");
        named.sort();
        assert_eq!(named, ["Mixed", "here"]);
        conn.batch_execute("SET search_path TO other")
            .expect("search_path");
        assert!(found(&mut conn, "elsewhere"));
        assert!(!found(&mut conn, "here"));
        drop(conn);
    }

    #[test]
    fn logical_types_agree_across_backends() {
        assert_eq!(logical_type("INT8"), logical_type("BIGINT"));
        assert_eq!(
            logical_type("timestamp without time zone"),
            logical_type("TIMESTAMP")
        );
        assert_eq!(logical_type("bool"), "boolean");
    }
}
