//! `orchestrator lint`: each store's PostgreSQL and SQLite histories proven to be one
//! (see `shared::lint`), and the recorded PostgreSQL model that `verify` relies on kept
//! true (`--write`).

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;
use shared::expected;
use shared::history::{self, History};
use shared::lint::{self, Histories, HistoryReport};
use shared::{Backend, DatabaseUrl, Store};

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::output;

/// Prove each store's PostgreSQL and SQLite migration histories make the same schema.
///
/// Both histories must have the same versions and, after every version, the same logical
/// schema: tables, columns (type family, nullability), primary keys, uniques, foreign keys
/// with their ON DELETE actions, and indexes (columns, order, uniqueness, predicate).
/// Collations, defaults and check expressions are each backend's own. The recorded model
/// of the PostgreSQL history (migrations/postgres.schema.json, what `verify` holds
/// PostgreSQL stores to) must be what that history makes.
///
/// SQLite is replayed in memory. PostgreSQL is replayed in a scratch database, always
/// dropped, on --postgres-url or else the store's own server when it is PostgreSQL;
/// without a server, the PostgreSQL history is checked at its last version through its
/// recorded model. Exit 1 when the histories differ.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator lint\n  orchestrator lint --postgres-url postgres://postgres@127.0.0.1/postgres\n  orchestrator lint --store auth --postgres-url postgres://postgres@127.0.0.1/postgres --write"
)]
pub struct LintArgs {
    #[command(flatten)]
    pub store: crate::commands::args::StoreArg,

    /// PostgreSQL server to replay the PostgreSQL history on, as a URL of any database
    /// there; the role must be allowed to create databases
    #[arg(long, value_name = "URL")]
    pub postgres_url: Option<String>,

    /// Record the PostgreSQL history's model and exact definitions again, from a replay on
    /// the server, in migrations/postgres.schema.json and postgres.definitions.json (after
    /// changing a PostgreSQL migration)
    #[arg(long)]
    pub write: bool,

    /// Read the histories from DIR/postgres and DIR/sqlite instead of the store's
    /// embedded ones (needs --store)
    #[arg(
        long,
        value_name = "DIR",
        requires = "store",
        conflicts_with = "workspace"
    )]
    pub migrations_dir: Option<PathBuf>,

    /// The workspace `--write` records into (default: found from the current folder
    /// upward)
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct LintReport {
    ok: bool,
    stores: Vec<HistoryReport>,
    /// Files `--write` recorded.
    written: Vec<String>,
}

/// The server PostgreSQL histories are replayed on, if any.
fn server(ctx: &Context, args: &LintArgs, store: &Store) -> CliResult<Option<DatabaseUrl>> {
    if let Some(url) = &args.postgres_url {
        let url = DatabaseUrl::parse(url)?;
        if url.backend() != Backend::Postgres {
            return Err(CliError::usage(format!(
                "--postgres-url must be a PostgreSQL URL, not {}",
                url.redacted()
            )));
        }
        return Ok(Some(url));
    }
    let own = ctx.url(store)?;
    Ok((own.backend() == Backend::Postgres).then(|| own.clone()))
}

fn histories<'a>(
    store: &'a Store,
    dir: Option<&'a Path>,
    pg_dir: &'a Option<PathBuf>,
    lite_dir: &'a Option<PathBuf>,
) -> Histories<'a> {
    let mut histories = Histories::embedded(store);
    let (Some(dir), Some(pg_dir), Some(lite_dir)) = (dir, pg_dir, lite_dir) else {
        return histories;
    };
    let recorded = expected::recorded_path(dir);
    histories.recorded = std::fs::read_to_string(&recorded)
        .map_err(|e| format!("cannot read {}: {e}", recorded.display()))
        .and_then(|text| shared::schema::SchemaModel::from_json(&text).map_err(|e| e.to_string()));
    histories.postgres = History::Dir(pg_dir);
    histories.sqlite = History::Dir(lite_dir);
    histories.definitions =
        std::fs::read_to_string(dir.join(shared::repair::recorded::RECORDED_DEFINITIONS)).ok();
    // An unreadable folder is reported by the replay itself.
    histories.fingerprint = shared::repair::recorded::dir_fingerprint(pg_dir).unwrap_or_default();
    histories
}

pub fn run(ctx: &Context, args: &LintArgs) -> CliResult {
    let mut report = LintReport {
        ok: true,
        stores: Vec::new(),
        written: Vec::new(),
    };
    for store in ctx.selected(args.store.store.as_deref())? {
        let dir = args.migrations_dir.as_deref();
        let pg_dir = dir.map(|d| history::backend_dir(d, Backend::Postgres));
        let lite_dir = dir.map(|d| history::backend_dir(d, Backend::Sqlite));
        for d in pg_dir.iter().chain(&lite_dir) {
            history::check_dir(d).map_err(CliError::usage)?;
        }
        let server = server(ctx, args, store)?;
        let histories = histories(store, dir, &pg_dir, &lite_dir);
        if args.write {
            let Some(server) = &server else {
                return Err(CliError::usage(format!(
                    "--write replays the PostgreSQL history: give --postgres-url (the {} store is not on PostgreSQL)",
                    store.name
                )));
            };
            ctx.progress(format!("{}: replaying the PostgreSQL history…", store.name));
            let (model, definitions) = lint::postgres_record(&histories, server)
                .map_err(|e| CliError::new(Exit::Database, anyhow::anyhow!(e)))?;
            let target = match dir {
                Some(dir) => dir.to_path_buf(),
                None => crate::workspace::Workspace::store_migrations(
                    ctx,
                    args.workspace.as_deref(),
                    store,
                )?,
            };
            let files = [
                (expected::recorded_path(&target), model.to_json()),
                (
                    target.join(shared::repair::recorded::RECORDED_DEFINITIONS),
                    definitions.to_json(),
                ),
            ];
            for (path, text) in files {
                std::fs::write(&path, text).map_err(|e| {
                    CliError::new(
                        Exit::Usage,
                        anyhow::anyhow!("cannot write {}: {e}", path.display()),
                    )
                })?;
                report.written.push(path.display().to_string());
            }
            continue;
        }
        ctx.progress(format!("{}: replaying both histories…", store.name));
        let checked = lint::check(&histories, server.as_ref())
            .map_err(|e| CliError::new(Exit::Database, anyhow::anyhow!(e)))?;
        report.ok &= checked.ok();
        report.stores.push(checked);
    }
    if ctx.json() {
        output::print_json(&report).map_err(|e| CliError::new(Exit::Usage, e))?;
    } else {
        print_text(&report);
    }
    if report.ok {
        Ok(())
    } else {
        let problems: usize = report.stores.iter().map(|s| s.problems().len()).sum();
        Err(CliError::new(
            Exit::CheckFailed,
            anyhow::anyhow!("the histories differ: {problems} problem(s)"),
        ))
    }
}

fn print_text(report: &LintReport) {
    for path in &report.written {
        crate::say!("recorded {path} (it is built into the binary: rebuild for verify and repair to use it)");
    }
    for s in &report.stores {
        if s.ok() {
            let how = if s.postgres_replayed {
                "every version replayed on both backends"
            } else {
                "SQLite replayed; PostgreSQL through its recorded model (no server given)"
            };
            crate::say!("{}: the histories agree ({how})", s.store);
        } else {
            for line in s.problems() {
                crate::say!("{line}");
            }
        }
    }
}
