//! `orchestrator restore DIR`: put a backup set back, all or nothing, guarded like reset.
//! The backup is checked (manifest, sha256, store, backend) before anything is touched,
//! and each store's row counts are checked against the manifest before it commits.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::backup;
use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::guard::{self, Contents};
use crate::output;
use crate::rebuild::{self, Allowed, Rebuild, Safety, Source, StoreOutcome};

/// Replace the stores' contents with a backup made by `backup` or `reset`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator restore .data/backups/20261121T101500.000Z\n  \
orchestrator restore /var/backups/orchestrator/20261121T101500.000Z --store auth --force"
)]
pub struct RestoreArgs {
    /// The backup folder (the one holding manifest.json)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    #[command(flatten)]
    pub store: crate::commands::args::StoreArg,

    #[command(flatten)]
    pub guard: crate::commands::args::GuardArgs,
}

#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    from: PathBuf,
    safety_backup: Option<PathBuf>,
    /// Rows of stores that were not restored which point at rows the backup lacked.
    dangling: Vec<crate::consequences::Dangling>,
    stores: Vec<Restored>,
}

#[derive(Debug, Serialize)]
struct Restored {
    store: &'static str,
    rows: i64,
    outcome: StoreOutcome,
}

pub fn run(ctx: &Context, args: &RestoreArgs) -> CliResult {
    let stores = ctx.selected(args.store.store.as_deref())?;
    guard::check_confirm_names(&args.guard.confirm)?;
    let names: Vec<&str> = stores.iter().map(|s| s.name).collect();
    let manifest = backup::load_checked(&args.dir, &names).map_err(CliError::usage)?;
    for store in &stores {
        let url = ctx.url(store)?;
        let entry = manifest
            .stores
            .iter()
            .find(|e| e.store == store.name)
            .ok_or_else(|| CliError::usage("unreachable"))?;
        if entry.backend != url.backend().as_str() {
            return Err(CliError::usage(format!(
                "the backup of {} is a {} backup and cannot be restored into {} ({})",
                store.name,
                entry.backend,
                url,
                url.backend()
            )));
        }
    }

    let (_locks, _) = crate::recovery::lock_and_settle(ctx, args.store.store.as_deref())?;

    // What each store holds is read once, under the write fence, where the guard decides
    // on exactly what is then replaced (see `rebuild`); protection is checked here.
    let contents: Vec<Contents> = guard::protection(ctx, &stores)?;
    let permission = guard::ask_on_terminal(ctx, &stores, args.guard.permission(), "restore over")?;
    guard::check(&contents, &permission, "restore over")?;
    // Rows of a store that is not restored which would point at rows the backup lacks.
    let dangling = crate::consequences::of_restore(ctx, &stores, &args.dir, &manifest)?;
    crate::consequences::check(&dangling, permission.force, "restore")?;

    let pin = |dir: &std::path::Path| {
        crate::run_record::BackupRef::pin(dir)
            .map_err(|e| CliError::new(Exit::Database, anyhow::anyhow!("{e}")))
    };
    let record = crate::run_record::RunRecord {
        restore_from: Some(pin(&args.dir)?),
        safety: None,
    };
    let sources = Source::from_set(&args.dir, &manifest, &stores);
    let engine = Rebuild {
        ctx,
        run: rebuild::new_run_id(),
        stores: stores.clone(),
        // Always, even of empty stores: without two-phase commit this is what puts a
        // store that committed back, should a later store fail.
        safety: Some(Safety {
            base: &ctx.settings.backup_dir,
            always: true,
        }),
        allowed: Allowed {
            data: permission.force,
            dependents: args.guard.drop_dependents,
        },
        fallback: None,
        record,
    };
    ctx.progress(format!("restoring from {}…", args.dir.display()));
    let finished = engine.execute(&sources)?;

    let report = Report {
        ok: true,
        from: args.dir.clone(),
        safety_backup: finished.backup,
        dangling,
        stores: finished
            .outcomes
            .into_iter()
            .map(|o| Restored {
                store: o.store,
                rows: manifest
                    .stores
                    .iter()
                    .find(|e| e.store == o.store)
                    .map(|e| e.total_rows())
                    .unwrap_or(0),
                outcome: o,
            })
            .collect(),
    };
    if ctx.json() {
        output::print_json(&report).map_err(|e| CliError::new(Exit::Usage, e))?;
    } else {
        for s in &report.stores {
            crate::say!(
                "{}: restored {} rows from {} (row counts match the manifest)",
                s.store,
                s.rows,
                report.from.display()
            );
        }
        for d in &report.dangling {
            crate::say!("consequence: {d}");
        }
        if let Some(dir) = &report.safety_backup {
            crate::say!("the replaced contents were backed up to {}", dir.display());
        }
    }
    Ok(())
}
