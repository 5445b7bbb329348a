//! `orchestrator backups list|prune`: the backup sets piling up under the backup folder,
//! and removing the old ones under the same rules as every destructive command.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::backup::sets::{self, PrunePlan, SetInfo};
use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::output;

/// List the backup sets, or remove the old ones.
#[derive(Debug, Args)]
pub struct BackupsArgs {
    #[command(subcommand)]
    pub action: BackupsAction,
}

#[derive(Debug, Subcommand)]
pub enum BackupsAction {
    List(ListArgs),
    Prune(PruneArgs),
}

/// List the backup sets (newest last): complete or not, stores, size, when.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator backups list\n  orchestrator --format json backups list --dir /var/backups/orchestrator"
)]
pub struct ListArgs {
    /// Folder holding the sets (default: backup_dir of the profile, .data/backups)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Remove all but the newest N complete backup sets.
///
/// Backup sets are data: like every destructive command, prune shows its plan with
/// --dry-run, refuses (exit 3) without --force, and needs --confirm NAME for a set of a
/// protected store. Sets that did not finish are removed too, unless one may still be
/// being written. Nothing but this tool's set folders is ever touched.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator backups prune --keep 5 --dry-run\n  orchestrator backups prune --keep 5 --force"
)]
pub struct PruneArgs {
    /// How many of the newest complete sets to keep
    #[arg(long, value_name = "N")]
    pub keep: usize,

    /// Folder holding the sets (default: backup_dir of the profile, .data/backups)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Print what would be removed and kept; remove nothing
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub guard: crate::commands::args::GuardArgs,
}

#[derive(Debug, Serialize)]
struct ListReport {
    ok: bool,
    dir: PathBuf,
    sets: Vec<SetInfo>,
}

#[derive(Debug, Serialize)]
struct PruneReport {
    ok: bool,
    dry_run: bool,
    dir: PathBuf,
    #[serde(flatten)]
    plan: PrunePlan,
    bytes_freed: u64,
    /// Why the guard refuses, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
}

pub fn run(ctx: &Context, args: &BackupsArgs) -> CliResult {
    match &args.action {
        BackupsAction::List(list) => run_list(ctx, list),
        BackupsAction::Prune(prune) => run_prune(ctx, prune),
    }
}

fn folder(ctx: &Context, dir: &Option<PathBuf>) -> PathBuf {
    dir.clone()
        .unwrap_or_else(|| ctx.settings.backup_dir.clone())
}

fn read(dir: &std::path::Path) -> CliResult<Vec<SetInfo>> {
    sets::list(dir).map_err(|e| {
        CliError::new(
            Exit::Usage,
            anyhow::anyhow!("cannot read the backup folder {}: {e}", dir.display()),
        )
    })
}

fn run_list(ctx: &Context, args: &ListArgs) -> CliResult {
    let dir = folder(ctx, &args.dir);
    let sets = read(&dir)?;
    if ctx.json() {
        let report = ListReport {
            ok: true,
            dir,
            sets,
        };
        return output::print_json(&report).map_err(|e| CliError::new(Exit::Usage, e));
    }
    if sets.is_empty() {
        crate::say!("no backup sets in {}", dir.display());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = sets.iter().map(row).collect();
    crate::say!("backup sets in {}:", dir.display());
    crate::say!(
        "{}",
        output::table(&["set", "state", "stores", "size"], &rows)
    );
    let total: u64 = sets.iter().map(|s| s.bytes).sum();
    crate::say!("{} set(s), {}", sets.len(), output::size(total));
    Ok(())
}

/// The set's stores, `auth, app`.
fn store_names(set: &SetInfo) -> String {
    let stores: Vec<&str> = set.stores.iter().map(|s| s.store.as_str()).collect();
    stores.join(", ")
}

fn row(set: &SetInfo) -> Vec<String> {
    let stores = store_names(set);
    vec![
        set.name.clone(),
        if set.complete {
            output::paint("complete", output::Tone::Good)
        } else {
            output::paint("incomplete", output::Tone::Bad)
        },
        if stores.is_empty() {
            "?".into()
        } else {
            stores
        },
        output::size(set.bytes),
    ]
}

fn run_prune(ctx: &Context, args: &PruneArgs) -> CliResult {
    crate::guard::check_confirm_names(&args.guard.confirm)?;
    let dir = folder(ctx, &args.dir);
    let plan = sets::plan_prune(read(&dir)?, args.keep, std::time::SystemTime::now());
    let verdict = guard(ctx, &plan, &args.guard).err();
    let mut report = PruneReport {
        ok: verdict.is_none(),
        dry_run: args.dry_run,
        bytes_freed: 0,
        refused: verdict.as_ref().map(|e| e.to_string()),
        dir,
        plan,
    };
    if args.dry_run || verdict.is_some() {
        print(ctx, &report);
        return verdict.map_or(Ok(()), Err);
    }
    for set in &report.plan.delete {
        std::fs::remove_dir_all(&set.path).map_err(|e| {
            CliError::new(
                Exit::Usage,
                anyhow::anyhow!(
                    "cannot remove {}: {e}; the sets listed before it were removed",
                    set.path.display()
                ),
            )
        })?;
        report.bytes_freed += set.bytes;
    }
    print(ctx, &report);
    Ok(())
}

/// The rules of every destructive command, for backup sets: sets hold data, so removing
/// any needs `--force`; a set of a protected store (profile `protected = true`, or a
/// server that is not this machine by its URL) needs `--confirm <database>`.
fn guard(ctx: &Context, plan: &PrunePlan, flags: &crate::commands::args::GuardArgs) -> CliResult {
    let protected = |url: &str| {
        ctx.settings.protected || shared::DatabaseUrl::parse(url).is_ok_and(|u| !u.is_local())
    };
    crate::guard::check_protected(
        plan.delete.iter().flat_map(|set| {
            set.stores
                .iter()
                .map(|s| (s.store.as_str(), s.database.as_str(), protected(&s.url)))
        }),
        &flags.confirm,
        "prune backups of protected store(s)",
        "removed",
    )?;
    if !plan.delete.is_empty() && !flags.force {
        return Err(CliError::new(
            Exit::Refused,
            anyhow::anyhow!(
                "refusing to prune: {} backup set(s), {}, would be removed; nothing was removed. \
                 Add --force (see the plan with --dry-run)",
                plan.delete.len(),
                output::size(plan.bytes_freed())
            ),
        ));
    }
    Ok(())
}

fn print(ctx: &Context, report: &PruneReport) {
    if ctx.json() {
        let _ = output::print_json(report);
        return;
    }
    let verb = if report.dry_run || report.refused.is_some() {
        "would remove"
    } else {
        "removed"
    };
    for set in &report.plan.delete {
        crate::say!("{verb}: {}  {}", set.name, set_summary(set));
    }
    for set in &report.plan.keep {
        crate::say!("keep: {}  {}", set.name, set_summary(set));
    }
    for (set, why) in &report.plan.left {
        crate::say!("left alone: {}  ({why})", set.name);
    }
    if report.refused.is_none() && !report.dry_run {
        crate::say!("freed {}", output::size(report.bytes_freed));
    } else if report.refused.is_none() {
        crate::say!("would free {}", output::size(report.plan.bytes_freed()));
    }
}

fn set_summary(set: &SetInfo) -> String {
    let stores = store_names(set);
    format!(
        "{}, {}{}",
        output::size(set.bytes),
        if set.complete {
            "complete"
        } else {
            "incomplete"
        },
        if stores.is_empty() {
            String::new()
        } else {
            format!(", {stores}")
        }
    )
}
