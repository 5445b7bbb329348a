//! SQLite's administrative SQL: a consistent copy (`VACUUM INTO`) and the file checks.

use diesel::RunQueryDsl;

use super::TextRow;
use crate::db::{quote_ident, quote_literal, Conn};

/// Writes a consistent copy of a SQLite database to `path` (which must not exist).
pub fn vacuum_into(conn: &mut Conn, path: &std::path::Path) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!(
        "VACUUM INTO {}",
        quote_literal(&path.to_string_lossy())
    ))
}

/// SQLite's `PRAGMA quick_check`: `Err` with its findings unless the file is sound.
pub fn sqlite_quick_check(conn: &mut Conn) -> Result<(), String> {
    sqlite_check(conn, "quick_check")
}

/// SQLite's full `PRAGMA integrity_check` (indexes against their tables too).
pub fn sqlite_integrity_check(conn: &mut Conn) -> Result<(), String> {
    sqlite_check(conn, "integrity_check")
}

fn sqlite_check(conn: &mut Conn, pragma: &str) -> Result<(), String> {
    let sql = format!("SELECT {pragma} AS v FROM pragma_{pragma}");
    let rows: Vec<TextRow> = match conn {
        Conn::Sqlite(c) => diesel::sql_query(sql).load(c),
        Conn::Postgres(_) => return Ok(()),
    }
    .map_err(|e| e.to_string())?;
    match rows.first() {
        Some(r) if r.v == "ok" => Ok(()),
        Some(r) => Err(r.v.clone()),
        None => Err(format!("no answer from {pragma}")),
    }
}

/// The rows that break a foreign key (`PRAGMA foreign_key_check`), as `table rowid →
/// parent`: what a change made with enforcement off must not leave behind. Empty on
/// PostgreSQL, which never lets them in.
pub fn foreign_key_violations(conn: &mut Conn) -> diesel::QueryResult<Vec<String>> {
    let Conn::Sqlite(c) = conn else {
        return Ok(Vec::new());
    };
    let rows: Vec<TextRow> = diesel::sql_query(
        "SELECT \"table\" || ' row ' || COALESCE(CAST(rowid AS TEXT), '?') || ' → ' || parent AS v \
         FROM pragma_foreign_key_check LIMIT 10",
    )
    .load(c)?;
    Ok(rows.into_iter().map(|r| r.v).collect())
}

/// The views that no longer read (a column or table they name is gone), each with
/// SQLite's reason: a table rebuilt or dropped with `legacy_alter_table` on leaves views
/// unchecked, and they would fail only when the application next reads them. Empty on
/// PostgreSQL, which refuses such a change.
pub fn broken_views(conn: &mut Conn) -> diesel::QueryResult<Vec<String>> {
    let Conn::Sqlite(c) = conn else {
        return Ok(Vec::new());
    };
    let views: Vec<TextRow> =
        diesel::sql_query("SELECT name AS v FROM sqlite_schema WHERE type = 'view' ORDER BY name")
            .load(c)?;
    let mut broken = Vec::new();
    for view in views {
        let probe = format!("SELECT * FROM {} LIMIT 0", quote_ident(&view.v));
        if let Err(e) = diesel::connection::SimpleConnection::batch_execute(c, &probe) {
            broken.push(format!("view {} ({e})", view.v));
        }
    }
    Ok(broken)
}
