//! `orchestrator revert`: run the `down.sql` of applied migrations, newest first, app
//! before auth, each in its own transaction with its bookkeeping rows. Guarded like reset:
//! what the down migrations would destroy is found first (in a rolled-back transaction),
//! data is refused without `--force` and backed up with it, protected stores need
//! `--confirm`.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use shared::revert::{self, Loss, Step, Target};
use shared::{Backend, DbError, Store};

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::guard;

/// Revert applied migrations with their down.sql, newest first (app before auth).
///
/// Finds what the down migrations would destroy first: tables and columns holding data
/// are refused without --force and backed up with it; protected stores need --confirm.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator revert --store app --dry-run\n  orchestrator revert --store app\n  \
orchestrator revert --store auth --to 2025-01-01-000001 --force"
)]
pub struct RevertArgs {
    #[command(flatten)]
    pub store: crate::commands::args::StoreArg,

    /// Revert this many of each store's newest applied migrations [default: 1]
    #[arg(long, value_name = "N", conflicts_with = "to", value_parser = clap::value_parser!(u32).range(1..))]
    pub steps: Option<u32>,

    /// Revert every migration newer than this one, which stays applied (its version,
    /// folder name or the folder name's date part), needs --store
    #[arg(long, value_name = "VERSION", requires = "store")]
    pub to: Option<String>,

    /// Revert migrations that drop tables or columns holding data (backed up first)
    #[arg(long)]
    pub force: bool,

    /// Database name of a protected store, once per store, to confirm reverting it
    // A database name may start with `-`; it is still the value, never a flag.
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub confirm: Vec<String>,

    /// Print the down SQL each store would run, in order, and what it would destroy;
    /// change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct Report {
    pub ok: bool,
    pub dry_run: bool,
    pub stores: Vec<StoreReport>,
    /// The backup set taken before destroying data (`--force`).
    pub backup: Option<PathBuf>,
    /// The guard's verdict (`--dry-run`): why it would refuse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    pub recovered: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct StoreReport {
    pub store: &'static str,
    pub backend: Backend,
    pub url: String,
    /// The migrations reverted (or, with --dry-run, to revert), newest first.
    pub reverted: Vec<String>,
    /// With --dry-run: the down SQL, in the order it would run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<Vec<PlannedDown>>,
    pub destroys: Loss,
    /// The backup set holding this store's state before the revert, if one was taken.
    pub backup: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub(super) struct PlannedDown {
    pub name: String,
    pub sql: String,
}

/// One store's revert, worked out before anything changes.
struct Planned {
    store: &'static Store,
    steps: Vec<Step>,
    loss: Loss,
}

pub fn run(ctx: &Context, args: &RevertArgs) -> CliResult {
    guard::check_confirm_names(&args.confirm)?;
    // A dry run reads only: no lock, nothing settled.
    let (locks, recovered) = if args.dry_run {
        (Vec::new(), Vec::new())
    } else {
        crate::recovery::lock_and_settle(ctx, args.store.store.as_deref())?
    };
    // Reverse dependency order: app's schema may rest on auth's, never the other way.
    let mut stores = ctx.selected(args.store.store.as_deref())?;
    stores.reverse();
    let mut planned = Vec::with_capacity(stores.len());
    for store in stores {
        planned.push(plan_store(ctx, args, store)?);
    }
    let verdict = check_guard(ctx, args, &planned);
    if args.dry_run {
        let report = report_of(ctx, &planned, true, None, verdict.as_ref().err(), recovered);
        super::revert_output::print(ctx, &report);
        return verdict;
    }
    verdict?;

    let holding: Vec<&'static Store> = planned
        .iter()
        .filter(|p| !p.loss.holding().is_empty())
        .map(|p| p.store)
        .collect();
    // Data is only destroyed once a backup of every store it is in has been written.
    let backup = if holding.is_empty() {
        None
    } else {
        let set = crate::backup::write_set(ctx, &holding, &ctx.settings.backup_dir)?;
        ctx.progress(format!("backup: {}", set.display()));
        Some(set)
    };
    for p in &planned {
        revert_store(ctx, p)?;
    }
    drop(locks);
    let report = report_of(ctx, &planned, false, backup, None, recovered);
    super::revert_output::print(ctx, &report);
    Ok(())
}

/// What `store`'s revert covers and would destroy, read without changing anything.
fn plan_store(ctx: &Context, args: &RevertArgs, store: &'static Store) -> CliResult<Planned> {
    let url = ctx.url(store)?;
    // A SQLite file that does not exist yet has nothing applied; it is not made.
    if url.is_missing_sqlite_file() {
        return Ok(Planned {
            store,
            steps: Vec::new(),
            loss: Loss::default(),
        });
    }
    let target = match &args.to {
        Some(given) => Target::Keep(
            shared::migrations::resolve_version(store, url.backend(), given)
                .map_err(CliError::usage)?,
        ),
        None => Target::Steps(args.steps.unwrap_or(1) as usize),
    };
    let mut session = ctx.session(store)?;
    let steps = revert::plan(&mut session, store, &target).map_err(|e| {
        CliError::new(
            Exit::CheckFailed,
            anyhow::anyhow!("{e}; nothing was changed"),
        )
    })?;
    let loss = revert::rehearse(&mut session, &steps).map_err(|e| DbError::Query {
        store: store.name.to_string(),
        url: url.redacted().to_string(),
        action: "finding what the down migrations would destroy".into(),
        reason: e.to_string(),
    })?;
    Ok(Planned { store, steps, loss })
}

/// Protected stores need `--confirm`; tables and columns holding data need `--force`.
/// Only stores with something to revert are judged.
fn check_guard(ctx: &Context, args: &RevertArgs, planned: &[Planned]) -> CliResult {
    let touched: Vec<&'static Store> = planned
        .iter()
        .filter(|p| !p.steps.is_empty())
        .map(|p| p.store)
        .collect();
    let permission = guard::Permission {
        force: args.force,
        confirm: args.confirm.clone(),
        drop_dependents: false,
    };
    guard::check(&guard::protection(ctx, &touched)?, &permission, "revert")?;
    let holding: Vec<String> = planned
        .iter()
        .filter(|p| !p.loss.holding().is_empty())
        .map(|p| {
            format!(
                "{} would lose {}",
                p.store.name,
                p.loss.holding().join(", ")
            )
        })
        .collect();
    if !holding.is_empty() && !args.force {
        return Err(CliError::new(
            Exit::Refused,
            anyhow::anyhow!(
                "refusing to revert: {}; nothing was changed. Add --force to back them up and revert",
                holding.join("; ")
            ),
        ));
    }
    Ok(())
}

fn revert_store(ctx: &Context, p: &Planned) -> CliResult {
    if p.steps.is_empty() {
        return Ok(());
    }
    let url = ctx.url(p.store)?;
    let mut session = ctx.session(p.store)?;
    ctx.progress(format!(
        "{}: reverting {} migration(s)…",
        p.store.name,
        p.steps.len()
    ));
    for step in &p.steps {
        revert::revert_step(&mut session, step, &p.loss).map_err(|e| DbError::Migration {
            store: p.store.name.to_string(),
            url: url.redacted().to_string(),
            migration: step.name.clone(),
            reason: format!("reverting: {e}"),
        })?;
        tracing::info!(store = p.store.name, migration = %step.name, "reverted");
        ctx.progress(format!("  {} {} reverted", p.store.name, step.name));
    }
    Ok(())
}

fn report_of(
    ctx: &Context,
    planned: &[Planned],
    dry_run: bool,
    backup: Option<PathBuf>,
    refused: Option<&CliError>,
    recovered: Vec<String>,
) -> Report {
    let stores = planned
        .iter()
        .map(|p| {
            let url = ctx.url(p.store).ok();
            StoreReport {
                store: p.store.name,
                backend: url.map_or(Backend::Sqlite, |u| u.backend()),
                url: url.map(|u| u.redacted().to_string()).unwrap_or_default(),
                reverted: p.steps.iter().map(|s| s.name.clone()).collect(),
                sql: dry_run.then(|| {
                    p.steps
                        .iter()
                        .map(|s| PlannedDown {
                            name: s.name.clone(),
                            sql: s.down.clone(),
                        })
                        .collect()
                }),
                destroys: p.loss.clone(),
                backup: backup.clone().filter(|_| !p.loss.holding().is_empty()),
            }
        })
        .collect();
    Report {
        ok: refused.is_none(),
        dry_run,
        stores,
        backup,
        refused: refused.map(|e| e.to_string()),
        recovered,
    }
}
