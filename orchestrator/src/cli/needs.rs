//! What each command needs of the servers before it starts (the preflight's [`Plan`]),
//! counted from the command's code. The preflight itself (`crate::preflight`) knows no
//! command: it checks whatever plan it is given.

use shared::store::{dependency_order, Store};

use super::Command;
use crate::context::Context;
use crate::exit::CliResult;
use crate::preflight::Plan;

/// The plan of each command, counted from its code:
/// - `status`: the pooled session (which looks for interrupted runs) and one to read the
///   store;
/// - `verify`: the pooled session, which streams the first reference; every further
///   reference streams on a new connection to each store it joins;
/// - `backup`: the pooled session plus pg_dump;
/// - `reset`: the pooled session, which holds the write fence in the rebuild's
///   transaction, while a connection of the backup's own and pg_dump take the backup
///   (no probe connection is kept: the rebuild opens none of its own);
/// - `restore`: psql holding the write fence in its transaction, while the pooled session
///   and pg_dump take the safety backup; then psql loads (with two-phase commit a new
///   connection commits the prepared load once psql has exited);
/// - `migrate` and `adopt`: the pooled session alone;
/// - `revert`: the pooled session, plus pg_dump when `--force` backs up what it drops
///   (a dry run only reads, like status);
/// - `diff`: the pooled sessions (the preflight opened them) plus, on the same server,
///   the scratch database's connection and the one creating it, one store at a time;
/// - `smoke`: the pooled session plus the connection its rolled-back checklist runs on;
///   it commits nothing (an interrupted run is reported, not settled);
/// - `repair`: the pooled session (which also reads the owning store of a table found in
///   the wrong one), the transaction holding the write fence (the probe's connection),
///   and, when the recorded definitions cannot be used, on the same server the scratch
///   database's connection and the one creating it; plus pg_dump when `--force` backs up
///   what it drops;
/// - `recover`: as `restore` at most: settling may back a store up and rebuild it from a
///   backup set.
///
/// Every lock-taking command locks all stores, whatever `--store` says.
pub fn plan(ctx: &Context, command: &Command) -> CliResult<Option<Plan>> {
    let all = || dependency_order(&ctx.stores());
    let each = |stores: Vec<&'static Store>, n: u32| stores.into_iter().map(|s| (s, n)).collect();
    let (name, stores, commits, keeps_probe) = match command {
        Command::Status(_) => ("status", each(all(), 2), false, true),
        Command::Verify(args) => (
            "verify",
            verify_needs(ctx, args.store.store.as_deref())?,
            false,
            true,
        ),
        Command::Backup(_) => ("backup", each(all(), 2), true, false),
        Command::Reset(_) => ("reset", each(all(), 3), true, false),
        Command::Restore(_) => ("restore", each(all(), 3), true, true),
        // A dry run only reads, like status.
        Command::Migrate(args) => ("migrate", each(all(), 1), !args.dry_run, false),
        Command::Revert(args) => ("revert", each(all(), 2), !args.dry_run, false),
        Command::Adopt(_) => ("adopt", each(all(), 1), true, false),
        Command::Repair(args) => ("repair", each(all(), 4), !args.dry_run, true),
        Command::Diff(args) => (
            "diff",
            each(ctx.selected(args.store.store.as_deref())?, 2),
            false,
            false,
        ),
        Command::Smoke(_) => ("smoke", each(all(), 2), false, true),
        Command::Recover(_) => ("recover", each(all(), 3), true, true),
        // Backup sets are files: nothing of a server is needed.
        Command::Backups(_)
        | Command::Schema(_)
        | Command::Squash(_)
        | Command::Lint(_)
        | Command::Generate(_)
        | Command::Completions(_) => return Ok(None),
    };
    let writes = match command {
        Command::Backup(_) => false,
        Command::Smoke(_) => true,
        _ => commits,
    };
    let guards = matches!(
        command,
        Command::Reset(_) | Command::Restore(_) | Command::Revert(_) | Command::Repair(_)
    );
    let from_dir = |store: &crate::commands::args::StoreArg, dir: &Option<std::path::PathBuf>| {
        (dir.as_ref().and(store.store.as_deref()))
            .and_then(|name| ctx.store(name))
            .map(|s| s.name)
    };
    let history_from_dir = match command {
        Command::Migrate(args) => from_dir(&args.store, &args.migrations_dir),
        Command::Diff(args) => from_dir(&args.store, &args.migrations_dir),
        _ => None,
    };
    Ok(Some(Plan {
        command: name,
        stores,
        commits,
        keeps_probe,
        writes,
        guards,
        history_from_dir,
    }))
}

fn verify_needs(ctx: &Context, only: Option<&str>) -> CliResult<Vec<(&'static Store, u32)>> {
    let selected = ctx.selected(only)?;
    let mut needs: Vec<(&'static Store, u32)> = selected.iter().map(|s| (*s, 1)).collect();
    let references: Vec<_> = selected
        .iter()
        .flat_map(|s| s.references.iter().map(move |r| (s.name, r.target_store)))
        .collect();
    for (from, to) in &references {
        if !needs.iter().any(|(s, _)| s.name == *to) {
            if let Some(target) = ctx.store(to) {
                needs.push((target, 1));
            }
        }
        for (store, n) in &mut needs {
            if store.name == *from || store.name == *to {
                *n = (*n).max(references.len() as u32);
            }
        }
    }
    Ok(
        dependency_order(&needs.iter().map(|(s, _)| *s).collect::<Vec<_>>())
            .into_iter()
            .filter_map(|s| needs.iter().find(|(n, _)| n.name == s.name).copied())
            .collect(),
    )
}
