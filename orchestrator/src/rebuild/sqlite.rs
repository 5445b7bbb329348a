//! The SQLite side of a rebuild, inside the live file and through SQLite: one
//! `BEGIN IMMEDIATE` transaction (SQLite's write lock, the fence) that drops every object
//! and rebuilds from the migrations or from the backup attached to the connection. SQLite
//! journals it like any write, so a crash rolls it back, a WAL or a hot journal left by
//! another process is SQLite's to recover, other connections see the new contents on
//! their next transaction, and the file keeps its identity (a symlink is followed, a hard
//! link stays one) and its settings (`user_version`, `application_id`, page size,
//! auto-vacuum, encoding, journal mode). No file is ever renamed over the database.

use std::path::Path;

use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl};
use shared::store::Store;
use shared::{admin, Conn};

use super::StepError;
use crate::backup::StoreBackup;
use crate::context::Context;

/// The name the backup being restored is attached under.
const SOURCE: &str = "orch_source";

/// Opens the rebuild's connection to the live file and takes SQLite's write lock,
/// waiting up to the run's lock timeout for other processes' transactions (then "database
/// is locked": the run is refused, exit 5). `restore_from`: a backup file attached
/// read-only first (SQLite cannot attach inside a transaction).
pub(crate) fn fence(
    ctx: &Context,
    store: &'static Store,
    restore_from: Option<&Path>,
) -> Result<Conn, StepError> {
    let mut conn = ctx
        .connect(store)
        .map_err(|e| ("connecting", e.to_string()))?;
    // Dropping tables in any order, and loading rows before their parents, is only
    // possible without enforcement; the connection is the rebuild's alone.
    conn.batch_execute("PRAGMA foreign_keys = OFF")
        .map_err(|e| ("PRAGMA foreign_keys", e.to_string()))?;
    if let Some(file) = restore_from {
        let uri = read_only_uri(file);
        conn.batch_execute(&format!(
            "ATTACH DATABASE {} AS {SOURCE}",
            shared::db::quote_literal(&uri)
        ))
        .map_err(|e| ("opening the backup", e.to_string()))?;
    }
    admin::begin(&mut conn).map_err(|e| {
        (
            "taking the write lock",
            format!("{e} (another process holds the file in a transaction; stop it or retry)"),
        )
    })?;
    Ok(conn)
}

/// A backup file as a `file:` URI SQLite opens read-only and immutable: never written,
/// not even a journal or a WAL beside it. Absolute, with `%`, `?` and `#` escaped.
pub(crate) fn read_only_uri(file: &Path) -> String {
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let path = absolute
        .to_string_lossy()
        .replace('%', "%25")
        .replace('?', "%3f")
        .replace('#', "%23");
    format!("file:{path}?mode=ro&immutable=1")
}

#[derive(QueryableByName)]
struct Entry {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    sql: String,
}

fn entries(conn: &mut Conn, schema: &str, sql_filter: &str) -> Result<Vec<Entry>, StepError> {
    let Conn::Sqlite(c) = conn else {
        return Err(("reading the schema", "not a SQLite connection".into()));
    };
    diesel::sql_query(format!(
        "SELECT type AS kind, name, COALESCE(sql, '') AS sql FROM {schema}.sqlite_schema \
         WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' {sql_filter} \
         ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'view' THEN 2 ELSE 3 END, rowid"
    ))
    .load(c)
    .map_err(|e| ("reading the schema", e.to_string()))
}

/// Drops every view and table of the file (indexes and triggers go with them) and
/// forgets AUTOINCREMENT counters, inside the rebuild's transaction.
pub(super) fn clear(conn: &mut Conn) -> Result<(), StepError> {
    let mut sql = String::new();
    for e in entries(conn, "main", "AND type IN ('table', 'view')")? {
        let name = shared::db::quote_ident(&e.name);
        match e.kind.as_str() {
            "view" => sql.push_str(&format!("DROP VIEW IF EXISTS main.{name};\n")),
            _ => sql.push_str(&format!("DROP TABLE IF EXISTS main.{name};\n")),
        }
    }
    if entries_named(conn, "main", "sqlite_sequence")? {
        sql.push_str("DELETE FROM main.sqlite_sequence;\n");
    }
    conn.batch_execute(&sql)
        .map_err(|e| ("dropping the old contents", e.to_string()))
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn entries_named(conn: &mut Conn, schema: &str, name: &str) -> Result<bool, StepError> {
    let Conn::Sqlite(c) = conn else {
        return Ok(false);
    };
    let found: Found = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM {schema}.sqlite_schema WHERE name = {}",
        shared::db::quote_literal(name)
    ))
    .get_result(c)
    .map_err(|e| ("reading the schema", e.to_string()))?;
    Ok(found.n > 0)
}

/// Recreates the attached backup's contents in the live file: tables, their rows and
/// AUTOINCREMENT counters, then indexes, views and triggers (after the rows, so that
/// no trigger fires on them and indexes are built once).
pub(super) fn copy_attached(
    conn: &mut Conn,
    progress: &dyn Fn(usize, usize, &str),
) -> Result<(), StepError> {
    let load = |conn: &mut Conn, sql: &str| {
        conn.batch_execute(sql)
            .map_err(|e| ("loading the backup", e.to_string()))
    };
    // Every object is created first (a table's rows go in table by table, which is what
    // the progress line counts); indexes and triggers come back with the tables' rows
    // already in, as SQLite's own `.dump` orders them.
    let all = entries(conn, SOURCE, "AND sql IS NOT NULL")?;
    let tables: Vec<&str> = all
        .iter()
        .filter(|e| e.kind == "table")
        .map(|e| e.name.as_str())
        .collect();
    let schema: String = all
        .iter()
        .filter(|e| e.kind == "table")
        .map(|e| format!("{};\n", e.sql))
        .collect();
    load(conn, &schema)?;
    for (i, table) in tables.iter().enumerate() {
        progress(i + 1, tables.len(), table);
        let name = shared::db::quote_ident(table);
        load(
            conn,
            &format!("INSERT INTO main.{name} SELECT * FROM {SOURCE}.{name};"),
        )?;
    }
    let rest: String = all
        .iter()
        .filter(|e| e.kind != "table")
        .map(|e| format!("{};\n", e.sql))
        .collect();
    load(conn, &rest)?;
    if entries_named(conn, SOURCE, "sqlite_sequence")? {
        load(
            conn,
            &format!("INSERT INTO main.sqlite_sequence SELECT * FROM {SOURCE}.sqlite_sequence;"),
        )?;
    }
    Ok(())
}

/// Checks the loaded rows against the manifest's counts, before the commit.
pub(super) fn check_counts(conn: &mut Conn, entry: &StoreBackup) -> Result<(), StepError> {
    let tables: Vec<String> = entry.row_counts.keys().cloned().collect();
    let counts =
        shared::catalog::row_counts(conn, &tables).map_err(|e| ("counting rows", e.to_string()))?;
    for (table, n) in counts {
        let want = entry.row_counts.get(&table).copied().unwrap_or(0);
        if n != want {
            return Err((
                "checking row counts",
                format!("{table} holds {n} rows, the manifest says {want}"),
            ));
        }
    }
    Ok(())
}
