//! What replacing some stores does to the others: rows of a store that is kept which
//! reference a store being reset will point at nothing afterwards (no foreign key spans
//! two databases, so nothing else would say so). Named in the plan and the report; without
//! `--force`, a refusal.

use serde::Serialize;
use shared::store::Store;
use shared::Conn;

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};

/// Rows of a kept store that will reference rows a reset removes.
#[derive(Debug, Clone, Serialize)]
pub struct Dangling {
    /// `app.datasets.owner_id`
    pub from: String,
    /// `auth.users.id`
    pub to: String,
    pub rows: i64,
}

impl std::fmt::Display for Dangling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows of {} would point at {} rows that no longer exist",
            self.rows, self.from, self.to
        )
    }
}

/// For a reset of `replaced`: every reference from a store that is not replaced into one
/// that is, with the rows that hold a value (all of them lose their target). One count
/// per reference, on the referencing store's session.
pub fn of_reset(ctx: &Context, replaced: &[&'static Store]) -> CliResult<Vec<Dangling>> {
    let mut found = Vec::new();
    for (kept, r) in references_into(&ctx.stores(), replaced) {
        let url = ctx.url(kept)?;
        if url.is_missing_sqlite_file() {
            continue;
        }
        let mut conn = ctx.session(kept)?;
        let Some(rows) = holding(&mut conn, r.table, r.column)
            .map_err(|e| crate::recovery::db_error(kept, Some(url), "counting references", e))?
        else {
            continue;
        };
        if rows > 0 {
            found.push(Dangling {
                from: format!("{}.{}.{}", kept.name, r.table, r.column),
                to: format!("{}.{}.{}", r.target_store, r.target_table, r.target_column),
                rows,
            });
        }
    }
    Ok(found)
}

/// Every reference from a store that is not in `replaced` into one that is.
fn references_into(
    all: &[&'static Store],
    replaced: &[&'static Store],
) -> Vec<(&'static Store, &'static shared::CrossReference)> {
    let is_replaced = |name: &str| replaced.iter().any(|s| s.name == name);
    all.iter()
        .copied()
        .filter(|kept| !is_replaced(kept.name))
        .flat_map(|kept| kept.references.iter().map(move |r| (kept, r)))
        .filter(|(_, r)| is_replaced(r.target_store))
        .collect()
}

/// Rows of `table` with a value in `column`; `None` when the table is not there.
fn holding(conn: &mut Conn, table: &str, column: &str) -> diesel::QueryResult<Option<i64>> {
    if !shared::catalog::has_table(conn, table)? {
        return Ok(None);
    }
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!(
        "SELECT count(*) AS n FROM {} WHERE {} IS NOT NULL",
        shared::db::quote_ident(table),
        shared::db::quote_ident(column)
    );
    let n: N = shared::with_conn!(conn, |c| diesel::RunQueryDsl::get_result(
        diesel::sql_query(&sql),
        c
    ))?;
    Ok(Some(n.n))
}

/// Refuses (exit 3) dangling references unless forced.
pub fn check(dangling: &[Dangling], force: bool, verb: &str) -> CliResult {
    if dangling.is_empty() || force {
        return Ok(());
    }
    let named: Vec<String> = dangling.iter().map(ToString::to_string).collect();
    Err(CliError::new(
        Exit::Refused,
        anyhow::anyhow!(
            "refusing to {verb}: {}; nothing was changed. Reset the referencing store too, or add --force",
            named.join("; ")
        ),
    ))
}

/// For a restore of `replaced` from the set in `dir`: every reference from a store that
/// is not replaced into one that is, with the rows whose value the backup does not hold.
/// The backup's target column is read into an in-memory SQLite table (from the SQLite
/// copy attached read-only, or from the dump's data through `pg_restore`) and compared
/// with the live referencing column, as `verify` compares two stores.
pub fn of_restore(
    ctx: &Context,
    replaced: &[&'static Store],
    dir: &std::path::Path,
    manifest: &crate::backup::Manifest,
) -> CliResult<Vec<Dangling>> {
    let mut found = Vec::new();
    for (kept, r) in references_into(&ctx.stores(), replaced) {
        let Some(entry) = manifest.stores.iter().find(|e| e.store == r.target_store) else {
            continue;
        };
        let url = ctx.url(kept)?;
        if url.is_missing_sqlite_file() {
            continue;
        }
        let fail = |e: String| {
            crate::recovery::db_error(kept, Some(url), "checking references against the backup", e)
        };
        let mut backed_up =
            backup_column(dir, entry, r.target_table, r.target_column).map_err(fail)?;
        let mut live = ctx.session(kept)?;
        if !shared::catalog::has_table(&mut live, r.table).map_err(|e| fail(e.to_string()))? {
            continue;
        }
        let check = shared::references::check(kept.name, r, &mut live, &mut backed_up)
            .map_err(|e| fail(e.to_string()))?;
        if check.orphans > 0 {
            found.push(Dangling {
                from: check.from,
                to: check.to,
                rows: check.orphans as i64,
            });
        }
    }
    Ok(found)
}

/// An in-memory SQLite database holding `table.column` as the backup has it.
fn backup_column(
    dir: &std::path::Path,
    entry: &crate::backup::StoreBackup,
    table: &str,
    column: &str,
) -> Result<Conn, String> {
    use diesel::Connection;
    let memory = diesel::SqliteConnection::establish(":memory:").map_err(|e| e.to_string())?;
    let mut conn = Conn::Sqlite(memory);
    let file = dir.join(&entry.file);
    let ident = shared::db::quote_ident;
    if entry.backend == shared::Backend::Sqlite.as_str() {
        let uri = crate::rebuild::read_only_uri(&file);
        conn.batch_execute(&format!(
            "ATTACH DATABASE {} AS backup; CREATE TABLE main.{t} AS SELECT {c} FROM backup.{t};",
            shared::db::quote_literal(&uri),
            t = ident(table),
            c = ident(column)
        ))
        .map_err(|e| format!("reading {}: {e}", file.display()))?;
        return Ok(conn);
    }
    let values = crate::pgtools::dump_column(&file, table, column)?;
    conn.batch_execute(&format!(
        "CREATE TABLE {} ({} TEXT)",
        ident(table),
        ident(column)
    ))
    .map_err(|e| e.to_string())?;
    for chunk in values.chunks(500) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|v| match v {
                Some(v) => format!("({})", shared::db::quote_literal(v)),
                None => "(NULL)".to_string(),
            })
            .collect();
        conn.batch_execute(&format!(
            "INSERT INTO {} VALUES {}",
            ident(table),
            rows.join(", ")
        ))
        .map_err(|e| e.to_string())?;
    }
    Ok(conn)
}
