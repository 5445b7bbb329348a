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
    recovered: Vec<String>,
    timings_ms: Timings,
}

#[derive(Debug, Serialize)]
struct StoreReport {
    store: &'static str,
    url: String,
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
    // work in either, and it is settled first.
    let t = Instant::now();
    let (_locks, recovered) = crate::recovery::lock_and_settle(ctx)?;
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
    let guard_result = guard::check(&contents, &args.guard.permission(), "reset")
        .and_then(|()| crate::consequences::check(&dangling, args.guard.force, "reset"));
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
                    rows_before: c.total(),
                    migrations,
                    inventory: Some(c.inventory.clone()),
                    outcome: None,
                })
                .collect(),
            backup: will_back_up.then(|| backup_base.join("<UTC time>")),
            dangling: dangling.clone(),
            refused: guard_result.as_ref().err().map(|e| e.to_string()),
            recovered,
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
            data: args.guard.force,
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
                rows_before: o.inventory.total_rows(),
                migrations: o.applied.iter().map(|a| a.name.clone()).collect(),
                inventory: None,
                outcome: Some(o),
            })
            .collect(),
        backup: finished.backup,
        dangling,
        refused: None,
        recovered,
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
    println!(
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
        println!("    not made by the migrations: {}", foreign.join(", "));
    }
    for d in &inv.outside {
        println!(
            "    outside the schema, {}: {} (depends on {})",
            if d.dropped { "dropped" } else { "altered" },
            d.object,
            d.depends_on
        );
    }
    if inv.large_objects > 0 {
        println!(
            "    kept: {} large object(s) (database-wide; in the backup)",
            inv.large_objects
        );
    }
    for o in inv.objects.iter().filter(|o| o.unreadable) {
        println!(
            "    cannot count: {} {} (row-level security or privileges)",
            o.kind, o.name
        );
    }
}

fn print(ctx: &Context, report: &Report, refused: Option<&CliError>) {
    if ctx.json() {
        let _ = output::print_json(report);
        return;
    }
    for line in &report.recovered {
        println!("recovered: {line}");
    }
    if report.dry_run {
        println!("dry run: nothing will be changed");
        for s in &report.stores {
            println!(
                "  {} ({}): {} rows now; would apply {} migration(s)",
                s.store,
                s.url,
                s.rows_before,
                s.migrations.len()
            );
            for m in &s.migrations {
                println!("    {m}");
            }
            if let Some(inv) = &s.inventory {
                print_inventory(inv);
            }
        }
        for d in &report.dangling {
            println!("  consequence: {d}");
        }
        match &report.backup {
            Some(dir) => println!("  backup: {}", dir.display()),
            None => println!("  backup: none (no rows to keep, or --no-backup)"),
        }
        match refused {
            Some(e) => println!("  guard: would refuse: {e}"),
            None => println!("  guard: would pass"),
        }
        return;
    }
    for s in &report.stores {
        if let Some(o) = &s.outcome {
            println!(
                "{}: reset ({} rows before, {} table(s) dropped, {} migration(s) applied, verified{}) \
                 in {} ms (drop {}, migrate {}, verify {}, commit {})",
                s.store,
                s.rows_before,
                o.dropped.len(),
                o.applied.len(),
                if o.two_phase { ", two-phase commit" } else { "" },
                o.millis + o.phases.commit,
                o.phases.drop,
                o.phases.migrate,
                o.phases.verify,
                o.phases.commit
            );
        }
    }
    for s in &report.stores {
        if let Some(access) = s.outcome.as_ref().and_then(|o| o.access.as_ref()) {
            if access.schema.len() + access.reapplied.len() + access.without_counterpart.len() > 0 {
                println!(
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
        println!("consequence: {d}");
    }
    if let Some(dir) = &report.backup {
        println!("backup: {}", dir.display());
    }
    let t = &report.timings_ms;
    println!(
        "took {} ms (lock {}, guard {}, backup {}, rebuild {})",
        t.total, t.lock, t.guard, t.backup, t.rebuild
    );
}
