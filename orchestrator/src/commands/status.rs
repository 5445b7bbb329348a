//! `orchestrator status`: per store, where it is, whether it answers, which migrations are
//! applied or pending, and how many rows each table holds. It reads only; it never creates
//! a database or a bookkeeping table.

use clap::Args;
use serde::Serialize;
use shared::catalog;
use shared::migrations::{self, MigrationState};
use shared::store::Store;
use shared::{Backend, DbError};

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::output::{self, paint, Tone};

/// Show reachability, applied, pending, unknown, modified and unchecked migrations, and row counts per table.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  orchestrator status\n  orchestrator --format json status | jq '.stores[].pending'"
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub store: crate::commands::args::StoreArg,
}

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub ok: bool,
    /// What interrupted runs left (status changes nothing; a writing command settles it).
    #[serde(flatten)]
    pub runs: crate::recovery::ReaderView,
    pub profile: String,
    pub stores: Vec<StoreStatus>,
}

#[derive(Debug, Serialize)]
pub struct StoreStatus {
    pub store: &'static str,
    pub backend: Backend,
    pub url: String,
    pub database: String,
    /// PostgreSQL: the schema the store lives in (configured, `public` by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub reachable: bool,
    /// False for a SQLite file that no command has created yet.
    pub exists: bool,
    /// A hot standby: it answers reads, and every command that writes refuses it.
    pub read_only_replica: bool,
    pub error: Option<String>,
    /// The newest applied migration this build ships; `null` for an empty store.
    pub current: Option<String>,
    /// Pending, unknown, modified or unchecked migrations: someone must act (exit 1).
    pub needs_attention: bool,
    #[serde(flatten)]
    pub migrations: MigrationState,
    pub tables: Vec<TableRows>,
}

#[derive(Debug, Serialize)]
pub struct TableRows {
    pub table: String,
    pub rows: i64,
}

pub fn run(ctx: &Context, args: &StatusArgs) -> CliResult {
    let stores = ctx.selected(args.store.store.as_deref())?;
    let runs = readers_view(ctx);
    // SQLite files are read under a shared lock (see `lock`); PostgreSQL is read as it is,
    // so that status answers at once even while a reset runs.
    let _read = crate::lock::read_all(ctx, &stores, false)?;
    // Both stores are read at once: the slowest connection sets the time, not the sum.
    let statuses: Vec<StoreStatus> = crate::context::all_at_once(&stores, "status", |store| {
        store_status(ctx, store, runs.held.contains(&store.name))
    })?;

    let report = StatusReport {
        ok: statuses.iter().all(|s| s.reachable) && !runs.needs_settling(),
        runs,
        profile: ctx.settings.profile.clone(),
        stores: statuses,
    };
    if ctx.json() {
        output::print_json(&report).map_err(|e| CliError::new(Exit::Usage, e))?;
    } else {
        print_text(&report);
    }
    if let Some(line) = report.runs.summary() {
        return Err(CliError::new(Exit::CheckFailed, anyhow::anyhow!("{line}")));
    }
    if report.ok {
        attention(&report.stores)
    } else {
        let failed: Vec<String> = report
            .stores
            .iter()
            .filter(|s| !s.reachable)
            .map(|s| s.error.clone().unwrap_or_else(|| s.store.to_string()))
            .collect();
        Err(CliError::new(
            Exit::Database,
            anyhow::anyhow!("{}", failed.join("; ")),
        ))
    }
}

/// Exit 1, like `prisma migrate status`, when a store needs someone to act; the message
/// names what and the command that does it.
fn attention(stores: &[StoreStatus]) -> CliResult {
    let needs: Vec<String> = stores
        .iter()
        .filter(|s| s.needs_attention)
        .map(|s| {
            let m = &s.migrations;
            let mut what = Vec::new();
            for (n, kind) in [
                (m.pending.len(), "pending"),
                (m.unknown.len(), "unknown"),
                (m.modified.len(), "modified"),
                (m.unchecked.len(), "unchecked"),
            ] {
                if n > 0 {
                    what.push(format!("{n} {kind}"));
                }
            }
            format!("{}: {}", s.store, what.join(", "))
        })
        .collect();
    if needs.is_empty() {
        return Ok(());
    }
    let only_pending = stores
        .iter()
        .all(|s| s.migrations.unknown.is_empty() && s.migrations.modified.is_empty());
    let hint = if only_pending {
        "run `orchestrator migrate`"
    } else {
        "see `orchestrator verify` and `orchestrator diff`"
    };
    Err(CliError::new(
        Exit::CheckFailed,
        anyhow::anyhow!("needs attention: {} ({hint})", needs.join("; ")),
    ))
}

/// What interrupted runs left, when every store can be read; it changes nothing and
/// creates no SQLite file (an unreachable store is reported on its own).
fn readers_view(ctx: &Context) -> crate::recovery::ReaderView {
    crate::recovery::for_readers(ctx).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not look for an interrupted run");
        crate::recovery::ReaderView::default()
    })
}

fn store_status(ctx: &Context, store: &'static Store, held: bool) -> CliResult<StoreStatus> {
    let url = ctx.url(store)?;
    let mut status = StoreStatus {
        store: store.name,
        backend: url.backend(),
        url: url.redacted().to_string(),
        database: url.database_name(),
        schema: (url.backend() == Backend::Postgres).then(|| url.schema().to_string()),
        reachable: false,
        exists: true,
        read_only_replica: ctx.server_facts(store.name).read_only_replica,
        error: None,
        current: None,
        needs_attention: false,
        migrations: MigrationState::default(),
        tables: Vec::new(),
    };
    if let Some(path) = url.sqlite_path() {
        if !path.exists() {
            // Opening the file would create it; report what migrate would do instead.
            status.reachable = true;
            status.exists = false;
            let shipped = migrations::shipped(store, url.backend()).map_err(|e| {
                CliError::new(
                    Exit::Usage,
                    anyhow::anyhow!("{} migrations: {e}", store.name),
                )
            })?;
            status.migrations.pending = shipped.into_iter().map(|(_, name)| name).collect();
            status.needs_attention = status.migrations.needs_attention();
            return Ok(status);
        }
    }
    let mut conn = match ctx.connect(store) {
        Ok(conn) => conn,
        Err(e) => {
            status.error = Some(e.to_string());
            return Ok(status);
        }
    };
    status.reachable = true;
    if held {
        // Its old tables are locked by the prepared rebuild: reading them would only wait.
        status.error = Some(
            "a prepared rebuild of an interrupted run holds its tables; `orchestrator recover` settles it"
                .into(),
        );
        return Ok(status);
    }
    if url.backend() == Backend::Postgres {
        // A read that waits on a lock (a reset committing, a transaction another tool left
        // prepared) fails after the configured time instead of hanging.
        let _ = shared::admin::set_lock_timeout(&mut conn, ctx.settings.lock_timeout.as_secs());
    }
    let query_error = |action: &str, e: &dyn std::fmt::Display| DbError::Query {
        store: store.name.to_string(),
        url: url.redacted().to_string(),
        action: action.to_string(),
        reason: e.to_string(),
    };
    status.migrations =
        migrations::state(&mut conn, store).map_err(|e| query_error("reading migrations", &e))?;
    status.current = status.migrations.current().map(str::to_string);
    status.needs_attention = status.migrations.needs_attention();
    let tables = catalog::tables(&mut conn).map_err(|e| query_error("listing tables", &e))?;
    let counts = count_rows(&mut conn, &tables).map_err(|e| query_error("counting rows", &e))?;
    status.tables = counts
        .into_iter()
        .map(|(table, rows)| TableRows { table, rows })
        .collect();
    Ok(status)
}

/// Rows per table. On PostgreSQL one statement per table: status runs without our lock,
/// and one statement over every table would hold the tables it has counted while it waits
/// for the next, which deadlocks with a concurrent reset that drops them in another order
/// (the server then aborts whichever waited first, the reset as likely as this).
fn count_rows(
    conn: &mut shared::Conn,
    tables: &[String],
) -> diesel::QueryResult<Vec<(String, i64)>> {
    if conn.backend() != Backend::Postgres {
        return catalog::row_counts(conn, tables);
    }
    let mut counts = Vec::with_capacity(tables.len());
    for table in tables {
        counts.extend(catalog::row_counts(conn, std::slice::from_ref(table))?);
    }
    Ok(counts)
}

fn print_text(report: &StatusReport) {
    crate::say!("profile: {}", report.profile);
    for line in &report.runs.interrupted {
        crate::say!("{}: {line}", paint("interrupted", Tone::Bad));
    }
    if report.runs.run_in_progress {
        crate::say!("a run is in progress");
    }
    for s in &report.stores {
        let state = if !s.reachable {
            paint("unreachable", Tone::Bad)
        } else if !s.exists {
            paint("not created yet", Tone::Dim)
        } else if !s.needs_attention {
            paint("up to date", Tone::Good)
        } else {
            paint("needs attention", Tone::Bad)
        };
        let schema = s
            .schema
            .as_deref()
            .map(|name| format!(", schema {name}"))
            .unwrap_or_default();
        crate::say!("\n{} ({}, {}{schema}): {state}", s.store, s.backend, s.url);
        if s.read_only_replica {
            crate::say!("  {}", paint(crate::output::REPLICA_NOTE, Tone::Bad));
        }
        if let Some(error) = &s.error {
            crate::say!("  error: {error}");
            continue;
        }
        crate::say!(
            "  version: {}",
            s.current
                .as_deref()
                .unwrap_or("none (no migration applied)")
        );
        crate::say!(
            "  migrations: {} applied, {} pending, {} unknown, {} modified, {} unchecked",
            s.migrations.applied.len(),
            s.migrations.pending.len(),
            s.migrations.unknown.len(),
            s.migrations.modified.len(),
            s.migrations.unchecked.len()
        );
        for name in &s.migrations.pending {
            crate::say!("    pending  {name}");
        }
        for version in &s.migrations.unknown {
            crate::say!("    unknown  {version} (applied here, not shipped by this build)");
        }
        for name in &s.migrations.modified {
            crate::say!("    modified {name} (up.sql changed since it was applied)");
        }
        for name in &s.migrations.unchecked {
            crate::say!(
                "    unchecked {name} (applied by another tool: `orchestrator migrate` records it once the schema is proven)"
            );
        }
        if !s.tables.is_empty() {
            let rows: Vec<Vec<String>> = s
                .tables
                .iter()
                .map(|t| vec![t.table.clone(), t.rows.to_string()])
                .collect();
            crate::say!("{}", output::table(&["table", "rows"], &rows));
        }
    }
}
