//! `orchestrator migrate`: apply pending migrations, auth before app. Each migration runs
//! in its own transaction; running it twice is a no-op.

use clap::Args;
use serde::Serialize;
use shared::history::{self, History};
use shared::migrations::{self, Applied};
use shared::schema;
use shared::{Backend, Conn, DatabaseUrl, DbError, Store};

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::output;

/// Apply pending migrations, auth before app.
///
/// Each migration runs in its own transaction with its checksum. --to stops after a
/// version; --dry-run prints the SQL instead and changes nothing.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator migrate\n  orchestrator migrate --store auth --auth-url postgres://postgres@127.0.0.1/auth\n  orchestrator migrate --dry-run\n  orchestrator migrate --store auth --to 2025-01-01-000002"
)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub store: crate::commands::args::StoreArg,

    /// Apply migrations up to and including this one (its version, folder name or the
    /// folder name's date part), needs --store
    #[arg(long, value_name = "VERSION", requires = "store")]
    pub to: Option<String>,

    /// Print the SQL each store would run, in order, and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Read the history from DIR/<backend>/ instead of the store's embedded migrations
    /// (needs --store; for fixtures and benchmarks)
    #[arg(long, value_name = "DIR", hide = true, requires = "store")]
    pub migrations_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize)]
struct MigrateReport {
    ok: bool,
    stores: Vec<StoreMigrated>,
}

#[derive(Debug, Serialize)]
struct StoreMigrated {
    store: &'static str,
    backend: Backend,
    url: String,
    applied: Vec<Applied>,
    already_applied: usize,
    /// The squash baseline this database was recognised at (its old history matched).
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline_recognised: Option<String>,
    /// Migrations another tool applied whose checksums were recorded, the schema proven.
    vouched: Vec<String>,
}

/// The version `--to` names for `store`, in diesel's form.
pub(super) fn target_version(
    args: &MigrateArgs,
    store: &Store,
    backend: Backend,
) -> CliResult<Option<String>> {
    let Some(given) = &args.to else {
        return Ok(None);
    };
    if args.migrations_dir.is_some() {
        // A folder's history: its own names, compared as diesel does.
        return Ok(Some(
            given.split('_').next().unwrap_or_default().replace('-', ""),
        ));
    }
    migrations::resolve_version(store, backend, given)
        .map(Some)
        .map_err(CliError::usage)
}

pub fn run(ctx: &Context, args: &MigrateArgs) -> CliResult {
    if args.dry_run {
        return super::migrate_plan::run(ctx, args);
    }
    let mut report = MigrateReport {
        ok: true,
        stores: Vec::new(),
    };
    // One run at a time per database, and whatever a crashed run left is settled first.
    // The session holding a store's PostgreSQL lock is the run's pooled session of that
    // store, so the work below needs no connection of its own.
    let (_locks, _) = crate::recovery::lock_and_settle(ctx, args.store.store.as_deref())?;
    // Likewise a squash that crashed mid-swap in a history this run reads.
    if let Some(dir) = &args.migrations_dir {
        crate::squash_journal::settle_locked(dir).map_err(CliError::usage)?;
    }
    // Sequential on purpose: app may only move once auth is at its latest schema.
    for store in ctx.selected(args.store.store.as_deref())? {
        let url = ctx.url(store)?;
        let mut session = ctx.session(store)?;
        let conn: &mut shared::Conn = &mut session;
        if url.backend() == shared::Backend::Postgres {
            // A configured schema that does not exist yet is created for the store.
            conn.batch_execute(&shared::admin::ensure_schema_sql(url.schema()))
                .map_err(|e| DbError::Query {
                    store: store.name.to_string(),
                    url: url.redacted().to_string(),
                    action: format!("creating schema {}", url.schema()),
                    reason: e.to_string(),
                })?;
        }
        let dir = args
            .migrations_dir
            .as_deref()
            .map(|d| history::backend_dir(d, url.backend()));
        if let Some(dir) = &dir {
            history::check_dir(dir).map_err(CliError::usage)?;
        }
        let query_error = |e: String| DbError::Query {
            store: store.name.to_string(),
            url: url.redacted().to_string(),
            action: "reading migrations".into(),
            reason: e,
        };
        // A folder's history is not the store's embedded one: count what the database
        // records rather than what the store ships.
        let before = match &dir {
            Some(_) => None,
            None => Some(migrations::state(conn, store).map_err(|e| query_error(e.to_string()))?),
        };
        if let Some(before) = &before {
            refuse_unrecorded_tables(ctx, store, conn, before)?;
        }
        let (already_applied, pending) = match &before {
            Some(before) => (before.applied.len(), Some(before.pending.len())),
            None => (
                shared::catalog::applied_versions(conn)
                    .map_err(|e| query_error(e.to_string()))?
                    .len(),
                None,
            ),
        };
        match pending {
            Some(0) => {}
            Some(n) => ctx.step(store.name, format!("applying {n} migration(s)…")),
            None => ctx.step(store.name, "applying pending migrations…"),
        }
        let baseline_recognised = recognise_squash(ctx, store, url, conn, dir.as_deref())?;
        let vouched = match before {
            // A recognised baseline changed the history: it is read again.
            Some(before) => {
                let state = match baseline_recognised {
                    None => before,
                    Some(_) => {
                        migrations::state(conn, store).map_err(|e| query_error(e.to_string()))?
                    }
                };
                vouch_for_unchecked(ctx, store, url, conn, state)?
            }
            None => Vec::new(),
        };
        let on_applied = |m: &Applied| {
            ctx.step(
                store.name,
                format!("applied {} ({})", m.name, crate::output::duration(m.millis)),
            );
        };
        let to = target_version(args, store, url.backend())?;
        let applied = match &dir {
            Some(dir) => history::run(conn, History::Dir(dir), to.as_deref(), on_applied),
            None => migrations::run_pending_to(conn, store, to.as_deref(), on_applied),
        }
        .map_err(|f| DbError::Migration {
            store: store.name.to_string(),
            url: url.redacted().to_string(),
            migration: f.migration,
            reason: f.reason,
        })?;
        report.stores.push(StoreMigrated {
            store: store.name,
            backend: url.backend(),
            url: url.redacted().to_string(),
            already_applied,
            applied,
            baseline_recognised,
            vouched,
        });
    }
    if ctx.json() {
        output::print_json(&report).map_err(|e| CliError::new(Exit::Usage, e))?;
    } else {
        for s in &report.stores {
            if let Some(baseline) = &s.baseline_recognised {
                crate::say!(
                    "{}: schema matches the squashed history; baseline {baseline} marked as applied",
                    s.store
                );
            }
            if !s.vouched.is_empty() {
                crate::say!(
                    "{}: schema matches the migrations; recorded the checksums of {} migration(s) another tool applied: {}",
                    s.store,
                    s.vouched.len(),
                    s.vouched.join(", ")
                );
            }
            if s.applied.is_empty() {
                crate::say!(
                    "{}: up to date ({} migrations applied before)",
                    s.store,
                    s.already_applied
                );
            } else {
                crate::say!(
                    "{}: applied {} migration(s) on {}",
                    s.store,
                    s.applied.len(),
                    s.url
                );
                for m in &s.applied {
                    crate::say!("  {}  {}", m.name, crate::output::duration(m.millis));
                }
            }
        }
    }
    Ok(())
}

/// A database that holds the store's tables with no migration recorded was built by
/// another tool (or by hand): running the history on it would stop at the first
/// `CREATE TABLE`, part way. It is refused before anything runs, pointing at `adopt`.
fn refuse_unrecorded_tables(
    ctx: &Context,
    store: &Store,
    conn: &mut Conn,
    state: &migrations::MigrationState,
) -> CliResult {
    if !state.records_nothing() {
        return Ok(());
    }
    let tables =
        shared::catalog::tables(conn).map_err(|e| ctx.query_error(store, "listing tables", e))?;
    let ours: Vec<&str> = store
        .tables
        .iter()
        .copied()
        .filter(|t| tables.iter().any(|l| l == t))
        .collect();
    if ours.is_empty() {
        return Ok(());
    }
    Err(CliError::new(
        Exit::CheckFailed,
        anyhow::anyhow!(
            "{} holds its tables ({}) but no record of this tool's migrations: another tool built it. Nothing was run; `orchestrator adopt` records the migrations as applied once the schema is proven to be what they make",
            store.name,
            ours.join(", ")
        ),
    ))
}

/// A database that ran the history a squash replaced gets the baseline marked as applied
/// instead of run, once its schema is proven equal to the baseline's; a database that has
/// drifted is refused (exit 1) and left alone.
fn recognise_squash(
    ctx: &Context,
    store: &Store,
    url: &DatabaseUrl,
    conn: &mut Conn,
    dir: Option<&std::path::Path>,
) -> CliResult<Option<String>> {
    let backend = url.backend();
    // The store's record is inside the binary (a deployed binary has no source tree); a
    // folder's is read from it.
    let map = match dir {
        Some(dir) => history::read_squash_map(dir).map_err(CliError::usage)?,
        None => store
            .migrations
            .squash_for(backend)
            .map(|text| {
                history::parse_squash_map(text, &format!("{}'s embedded squash.json", store.name))
            })
            .transpose()
            .map_err(CliError::usage)?,
    };
    let Some(map) = map else {
        return Ok(None);
    };
    let query_error = |action: &str, reason: String| DbError::Query {
        store: store.name.to_string(),
        url: url.redacted().to_string(),
        action: action.into(),
        reason,
    };
    let applied = shared::catalog::applied_versions(conn)
        .map_err(|e| query_error("reading migrations", e.to_string()))?;
    if applied.contains(&map.baseline) || !applied.iter().any(|v| map.replaces.contains(v)) {
        return Ok(None);
    }
    ctx.progress(format!(
        "{}: ran the history squashed into {}; comparing schemas…",
        store.name, map.baseline
    ));
    let history = crate::shadow::history_for(store, backend, dir);
    let expected =
        crate::shadow::expected_model(store, backend, Some(url), history, Some(&map.baseline))?;
    let found =
        schema::introspect(conn).map_err(|e| query_error("reading the schema", e.to_string()))?;
    let differences = schema::compare(&expected, &found);
    if !differences.is_empty() {
        let list: Vec<String> = differences.iter().map(|d| d.describe(store.name)).collect();
        return Err(CliError::new(
            Exit::CheckFailed,
            anyhow::anyhow!(
                "{} ran the migrations squashed into {} but its schema has drifted from them ({}); nothing was changed: fix the drift (see `orchestrator diff`), then migrate again",
                store.name,
                map.baseline,
                list.join("; ")
            ),
        ));
    }
    history::mark_squashed(conn, &map)
        .map_err(|e| query_error("marking the squash baseline as applied", e.to_string()))?;
    tracing::info!(store = store.name, baseline = %map.baseline, "squash baseline recognised");
    Ok(Some(map.baseline))
}

/// Migrations applied by another tool (diesel_cli, an older build) have no checksum of
/// what ran. They are vouched for, checksums recorded, only once the live schema is proven
/// to be what the migrations make; a schema that differs refuses the run (exit 1) with
/// nothing recorded and nothing applied. `state` is the store's migration state as it
/// stands now.
fn vouch_for_unchecked(
    ctx: &Context,
    store: &Store,
    url: &DatabaseUrl,
    conn: &mut Conn,
    state: migrations::MigrationState,
) -> CliResult<Vec<String>> {
    let query_error = |action: &str, reason: String| DbError::Query {
        store: store.name.to_string(),
        url: url.redacted().to_string(),
        action: action.into(),
        reason,
    };
    if state.unchecked.is_empty() {
        return Ok(Vec::new());
    }
    ctx.progress(format!(
        "{}: {} migration(s) applied by another tool; comparing the schema…",
        store.name,
        state.unchecked.len()
    ));
    let live = shared::schema::introspect(conn)
        .map_err(|e| query_error("reading the schema", e.to_string()))?;
    let drift = crate::drift::check(store, conn.backend(), &state, &live)
        .map_err(|e| query_error("comparing the schema", e))?;
    let differences = drift.map(|d| d.differences).unwrap_or_default();
    if !differences.is_empty() {
        let list: Vec<String> = differences.iter().map(|d| d.describe(store.name)).collect();
        return Err(CliError::new(
            Exit::CheckFailed,
            anyhow::anyhow!(
                "{} has {} migration(s) applied by another tool ({}) and its schema is not what the migrations make: {}; nothing was recorded or applied. Fix the drift (see `orchestrator diff`), then migrate again",
                store.name,
                state.unchecked.len(),
                state.unchecked.join(", "),
                list.join("; ")
            ),
        ));
    }
    migrations::record_checksums(conn, store, &state.unchecked)
        .map_err(|e| query_error("recording checksums", e.to_string()))?;
    Ok(state.unchecked)
}
