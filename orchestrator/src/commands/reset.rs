//! `orchestrator reset`: drop and rebuild the stores from their migrations, all or
//! nothing, guarded, locked and backed up. See `rebuild` for the commit protocol.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use shared::migrations;

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::guard::{self, Contents};
use crate::output;
use crate::rebuild::{self, Allowed, Rebuild, Safety, Source, StoreOutcome};
use shared::inventory::Inventory;

/// Drop both stores and rebuild them from their migrations, all or nothing.
///
/// Takes each database's lock, refuses stores that hold rows (without --force) or are
/// protected (without --confirm), backs up what will be wiped, then rebuilds app's and
/// auth's schemas where nothing is visible until both are migrated and verified.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator reset --dry-run\n  orchestrator reset --force\n  \
orchestrator --profile production reset --force --confirm auth --confirm app"
)]
pub struct ResetArgs {
    #[command(flatten)]
    pub store: crate::commands::args::StoreArg,

    #[command(flatten)]
    pub guard: crate::commands::args::GuardArgs,

    /// Do not back up rows before wiping them
    #[arg(long)]
    pub no_backup: bool,

    /// Where to write the backup (default: backup_dir of the profile, .data/backups)
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,

    /// Print the plan (stores, guard result, backup target, migrations) and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    dry_run: bool,
    stores: Vec<StoreReport>,
    backup: Option<PathBuf>,
    /// Rows of stores that are not reset which will point at rows the reset removes.
    dangling: Vec<crate::consequences::Dangling>,
    /// The guard's verdict (`--dry-run`): why it would refuse.
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
    /// `--dry-run`: whether the guard would let the reset through, and why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    guard: Option<GuardVerdict>,
    recovered: Vec<String>,
    /// `--dry-run`: what interrupted runs left, which a real reset settles first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    would_settle: Vec<String>,
    timings_ms: Timings,
}

#[derive(Debug, Serialize)]
struct GuardVerdict {
    passes: bool,
    reason: Option<String>,
}

#[derive(Debug, Serialize)]
struct StoreReport {
    store: &'static str,
    url: String,
    /// False for a SQLite file that does not exist yet (the reset would create it).
    exists: bool,
    rows_before: i64,
    /// For --dry-run: what would be applied.
    migrations: Vec<String>,
    /// For --dry-run: everything the reset would destroy (the outcome carries it after).
    #[serde(skip_serializing_if = "Option::is_none")]
    inventory: Option<Inventory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<StoreOutcome>,
}

#[derive(Debug, Default, Serialize)]
struct Timings {
    lock: u128,
    guard: u128,
    backup: u128,
    rebuild: u128,
    total: u128,
}

pub fn run(ctx: &Context, args: &ResetArgs) -> CliResult {
    let started = Instant::now();
    let mut timings = Timings::default();
    let stores = ctx.selected(args.store.store.as_deref())?;
    guard::check_confirm_names(&args.guard.confirm)?;

    // Both databases are locked, whatever --store says: a crashed run may have left
    // work in either, and it is settled first. A dry run changes nothing: it reads under
    // the readers' locks, as `status` does, and names what a real run would settle.
    let t = Instant::now();
    let (_locks, _read, recovered, would_settle) = if args.dry_run {
        let (read, interrupted) = crate::recovery::read_settled(ctx, &stores, "reset --dry-run")?;
        (Vec::new(), read, Vec::new(), interrupted)
    } else {
        let (locks, recovered) =
            crate::recovery::lock_and_settle(ctx, args.store.store.as_deref())?;
        (locks, Vec::new(), recovered, Vec::new())
    };
    timings.lock = t.elapsed().as_millis();

    let t = Instant::now();
    // A dry run reads what each store holds now; a real run reads it once, under the
    // write fence, where the guard decides on exactly what is then dropped.
    let contents: Vec<Contents> = if args.dry_run {
        guard::inspect_all(ctx, &stores)?
    } else {
        guard::protection(ctx, &stores)?
    };
    let mut pending: Vec<Vec<String>> = Vec::new();
    for store in &stores {
        pending.push(shipped_names(store, ctx.url(store)?.backend())?);
    }
    let dangling = crate::consequences::of_reset(ctx, &stores)?;
    // A person at a terminal is asked rather than refused (never in a dry run).
    let permission = if args.dry_run {
        args.guard.permission()
    } else {
        guard::ask_on_terminal(ctx, &stores, args.guard.permission(), "reset")?
    };
    let guard_result = guard::check(&contents, &permission, "reset")
        .and_then(|()| crate::consequences::check(&dangling, permission.force, "reset"));
    timings.guard = t.elapsed().as_millis();

    let backup_base = args
        .backup_dir
        .clone()
        .unwrap_or_else(|| ctx.settings.backup_dir.clone());

    if args.dry_run {
        let will_back_up = contents.iter().any(Contents::holds_data) && !args.no_backup;
        let report = Report {
            ok: guard_result.is_ok(),
            dry_run: true,
            stores: stores
                .iter()
                .zip(&contents)
                .zip(pending)
                .map(|((store, c), migrations)| StoreReport {
                    store: store.name,
                    url: ctx
                        .url(store)
                        .map(|u| u.redacted().to_string())
                        .unwrap_or_default(),
                    exists: !ctx.url(store).is_ok_and(|u| u.is_missing_sqlite_file()),
                    rows_before: c.total(),
                    migrations,
                    inventory: Some(c.inventory.clone()),
                    outcome: None,
                })
                .collect(),
            // Where the backup would go if the reset ran now (the folder is named by the
            // time it starts).
            backup: will_back_up.then(|| crate::backup::unused_backup_dir(&backup_base)),
            dangling: dangling.clone(),
            refused: guard_result.as_ref().err().map(|e| e.to_string()),
            guard: Some(GuardVerdict {
                passes: guard_result.is_ok(),
                reason: guard_result.as_ref().err().map(|e| e.to_string()),
            }),
            recovered,
            would_settle,
            timings_ms: timings,
        };
        print(ctx, &report, guard_result.as_ref().err());
        return guard_result;
    }
    guard_result?;

    let t = Instant::now();
    let engine = Rebuild {
        ctx,
        run: rebuild::new_run_id(),
        stores: stores.clone(),
        // Taken under the fence, of exactly what is dropped (see `rebuild`).
        safety: (!args.no_backup).then_some(Safety {
            base: &backup_base,
            always: false,
        }),
        allowed: Allowed {
            data: permission.force,
            dependents: args.guard.drop_dependents,
        },
        fallback: None,
        record: crate::run_record::RunRecord {
            restore_from: None,
            safety: None,
        },
    };
    let sources = vec![Source::Migrations; stores.len()];
    let finished = engine.execute(&sources)?;
    // The backup is taken inside the rebuild, under its fence (the slower store's).
    timings.backup = finished
        .outcomes
        .iter()
        .map(|o| o.phases.backup)
        .max()
        .unwrap_or(0);
    timings.rebuild = t.elapsed().as_millis().saturating_sub(timings.backup);
    timings.total = started.elapsed().as_millis();

    let report = Report {
        ok: true,
        dry_run: false,
        stores: finished
            .outcomes
            .into_iter()
            .map(|o| StoreReport {
                store: o.store,
                url: o.url.clone(),
                exists: true,
                rows_before: o.inventory.total_rows(),
                migrations: o.applied.iter().map(|a| a.name.clone()).collect(),
                inventory: None,
                outcome: Some(o),
            })
            .collect(),
        backup: finished.backup,
        dangling,
        refused: None,
        guard: None,
        recovered,
        would_settle,
        timings_ms: timings,
    };
    print(ctx, &report, None);
    Ok(())
}

fn shipped_names(store: &shared::Store, backend: shared::Backend) -> CliResult<Vec<String>> {
    migrations::shipped(store, backend)
        .map(|v| v.into_iter().map(|(_, n)| n).collect())
        .map_err(|e| {
            CliError::new(
                Exit::Usage,
                anyhow::anyhow!("{} migrations: {e}", store.name),
            )
        })
}

/// What a reset of one store would destroy, and what it keeps, for people.
fn print_inventory(inv: &Inventory) {
    let foreign = inv.foreign_objects();
    let held = inv.holding();
    crate::say!(
        "    would drop schema {} with {} object(s); {}",
        inv.schema,
        inv.objects.len(),
        if held.is_empty() {
            "no data".to_string()
        } else {
            format!("data: {}", held.join(", "))
        }
    );
    if !foreign.is_empty() {
        crate::say!("    not made by the migrations: {}", foreign.join(", "));
    }
    for d in &inv.outside {
        crate::say!(
            "    outside the schema, {}: {} (depends on {})",
            if d.dropped { "dropped" } else { "altered" },
            d.object,
            d.depends_on
        );
    }
    if inv.large_objects > 0 {
        crate::say!(
            "    kept: {} large object(s) (database-wide; in the backup)",
            inv.large_objects
        );
    }
    for o in inv.objects.iter().filter(|o| o.unreadable) {
        crate::say!(
            "    cannot count: {} {} (row-level security or privileges)",
            o.kind,
            o.name
        );
    }
}

fn print(ctx: &Context, report: &Report, refused: Option<&CliError>) {
    if ctx.json() {
        let _ = output::print_json(report);
        return;
    }
    for line in &report.recovered {
        crate::say!("recovered: {line}");
    }
    if report.dry_run {
        crate::say!("dry run: nothing will be changed");
        for line in &report.would_settle {
            crate::say!("  first, the reset would settle an interrupted run: {line}");
        }
        for s in &report.stores {
            crate::say!(
                "  {} ({}): {} rows now; would apply {} migration(s)",
                s.store,
                s.url,
                s.rows_before,
                s.migrations.len()
            );
            for m in &s.migrations {
                crate::say!("    {m}");
            }
            if !s.exists {
                crate::say!(
                    "    not created yet: the reset creates it, as `orchestrator migrate` would"
                );
            } else if let Some(inv) = &s.inventory {
                print_inventory(inv);
            }
        }
        for d in &report.dangling {
            crate::say!("  consequence: {d}");
        }
        match &report.backup {
            Some(dir) => crate::say!("  backup: {}", dir.display()),
            None => crate::say!("  backup: none (no rows to keep, or --no-backup)"),
        }
        // The reason is the command's error line, printed once, on stderr.
        match refused {
            Some(_) => crate::say!("  guard: would refuse (the reason follows)"),
            None => crate::say!("  guard: would pass"),
        }
        return;
    }
    for s in &report.stores {
        if let Some(o) = &s.outcome {
            crate::say!(
                "{}: reset ({} rows before, {} table(s) dropped, {} migration(s) applied, verified{}) \
                 in {} (drop {}, migrate {}, verify {}, commit {})",
                s.store,
                s.rows_before,
                o.dropped.len(),
                o.applied.len(),
                if o.two_phase { ", two-phase commit" } else { "" },
                output::duration(o.millis + o.phases.commit),
                output::duration(o.phases.drop),
                output::duration(o.phases.migrate),
                output::duration(o.phases.verify),
                output::duration(o.phases.commit)
            );
        }
    }
    for s in &report.stores {
        if let Some(access) = s.outcome.as_ref().and_then(|o| o.access.as_ref()) {
            if access.schema.len() + access.reapplied.len() + access.without_counterpart.len() > 0 {
                crate::say!(
                    "{}: access rules: {} on the schema and {} grant(s) re-applied{}",
                    s.store,
                    access.schema.len(),
                    access.reapplied.len(),
                    if access.without_counterpart.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; not re-applied, no such object after the migrations: {}",
                            access.without_counterpart.join("; ")
                        )
                    }
                );
            }
        }
    }
    for d in &report.dangling {
        crate::say!("consequence: {d}");
    }
    if let Some(dir) = &report.backup {
        crate::say!("backup: {}", dir.display());
    }
    let t = &report.timings_ms;
    crate::say!(
        "took {} (lock {}, guard {}, backup {}, rebuild {})",
        output::duration(t.total),
        output::duration(t.lock),
        output::duration(t.guard),
        output::duration(t.backup),
        output::duration(t.rebuild)
    );
}
