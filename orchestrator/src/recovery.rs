//! Settling what a crashed run left: runs whose decision was recorded (a journal row
//! committed in some store) are finished; prepared transactions and staged SQLite files of
//! runs that never got that far are discarded. Called with every store's lock held.

use std::path::{Path, PathBuf};

use shared::store::Store;
use shared::{admin, Backend, DatabaseUrl};

use crate::context::{all_stores, Context};
use crate::exit::{CliError, CliResult, Exit};
use crate::rebuild::{parse_gid, swap_in, Rebuild, Source};

/// Takes every store's lock (in dependency order, whatever part of them a command
/// covers) and settles what a crashed run left; the locks are held until dropped.
pub fn lock_and_settle(ctx: &Context) -> CliResult<(Vec<crate::lock::StoreLock>, Vec<String>)> {
    let stores = shared::store::dependency_order(&all_stores());
    let locks = crate::lock::acquire_all(ctx, &stores)?;
    let settled = settle(ctx)?;
    Ok((locks, settled))
}

/// Settles what a crashed run left, before anything else touches the stores: finishes
/// runs whose decision was recorded (a journal row committed in some store) and discards
/// the leftovers of runs that never got that far. Returns what it did, in words.
pub fn settle(ctx: &Context) -> CliResult<Vec<String>> {
    let stores = all_stores();
    let ordered = shared::store::dependency_order(&stores);
    let mut done = Vec::new();
    let mut decided: Vec<(String, Vec<String>)> = Vec::new();
    let mut committed_in: Vec<(String, &'static str)> = Vec::new();
    let mut prepared: Vec<(String, &'static str, String)> = Vec::new();
    let mut staged: Vec<(String, &'static str, PathBuf)> = Vec::new();

    let mut conns: Vec<(&'static Store, crate::context::Session<'_>)> = Vec::new();
    for store in &ordered {
        let url = ctx.url(store)?;
        if let Some(live) = url.sqlite_path() {
            for (run, path) in staged_files(live) {
                staged.push((run, store.name, path));
            }
            if !live.exists() {
                continue;
            }
        }
        let mut conn = ctx.session(store)?;
        if url.backend() == Backend::Postgres {
            // Reading never waits long on locks; a prepared transaction holds some.
            let _ = admin::set_lock_timeout(&mut conn, ctx.settings.lock_timeout.as_secs());
            for gid in admin::prepared_transactions(&mut conn)
                .map_err(|e| db_error(store, Some(url), "reading prepared transactions", e))?
            {
                if let Some((run, _)) = parse_gid(&gid) {
                    prepared.push((run, store.name, gid));
                }
            }
        }
        conns.push((store, conn));
    }
    for (store, conn) in &mut conns {
        // A store with a prepared rebuild of ours has locked its old tables; its journal
        // row, if any, is inside that transaction and decides nothing yet.
        if prepared.iter().any(|(_, s, _)| s == &store.name) {
            continue;
        }
        let url = ctx.url(store)?;
        let entries = admin::journal_entries(conn)
            .map_err(|e| db_error(store, Some(url), "reading the journal", e))?;
        for (run, names) in entries {
            committed_in.push((run.clone(), store.name));
            // The run's first store (dependency order) commits first, so its row is the
            // decision; and a finished run clears that row first, so a row left only in
            // a later store belongs to a run that finished and was being tidied away.
            let decides = names.first().is_some_and(|first| first == store.name);
            if decides && !decided.iter().any(|(r, _)| r == &run) {
                decided.push((run, names));
            }
        }
    }
    drop(conns);

    for (run, name) in &committed_in {
        if decided.iter().any(|(r, _)| r == run) {
            continue;
        }
        if let Some(store) = ordered.iter().find(|s| s.name == *name) {
            let mut conn = ctx.session(store)?;
            admin::journal_clear(&mut conn, run)
                .map_err(|e| db_error(store, ctx.url(store).ok(), "clearing the journal", e))?;
            done.push(format!(
                "{name}: cleared the bookkeeping row of finished run {run}"
            ));
        }
    }

    for (run, names) in &decided {
        for name in names {
            let Some(store) = ordered.iter().find(|s| s.name == name) else {
                continue;
            };
            if committed_in.iter().any(|(r, s)| r == run && s == name) {
                continue;
            }
            if let Some((_, _, gid)) = prepared.iter().find(|(r, s, _)| r == run && s == name) {
                let mut conn = ctx.session(store)?;
                admin::commit_prepared(&mut conn, gid)
                    .map_err(|e| db_error(store, ctx.url(store).ok(), "COMMIT PREPARED", e))?;
                done.push(format!(
                    "{name}: committed the prepared rebuild of interrupted run {run}"
                ));
            } else if let Some((_, _, path)) = staged.iter().find(|(r, s, _)| r == run && s == name)
            {
                let live = ctx
                    .url(store)?
                    .sqlite_path()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                swap_in(path, &live)
                    .map_err(|e| CliError::new(Exit::Database, anyhow::anyhow!("{name}: {e}")))?;
                ctx.evict(store.name);
                done.push(format!(
                    "{name}: swapped in the rebuilt file of interrupted run {run}"
                ));
            } else {
                // The decision was made but this store's rebuild is gone with the crash:
                // finish the reset now, so both stores end in the new state.
                let redo = Rebuild {
                    ctx,
                    run: run.clone(),
                    stores: vec![store],
                    fallback: None,
                };
                redo.execute(&[Source::Migrations])?;
                done.push(format!(
                    "{name}: completed the reset of interrupted run {run}"
                ));
            }
        }
        // The deciding store's row first, as a finished run clears them.
        for name in names {
            if let Some(store) = ordered.iter().find(|s| s.name == name) {
                let mut conn = ctx.session(store)?;
                let _ = admin::journal_clear(&mut conn, run);
            }
        }
    }
    for (run, name, gid) in &prepared {
        if decided.iter().any(|(r, _)| r == run) {
            continue;
        }
        if let Some(store) = ordered.iter().find(|s| s.name == *name) {
            let mut conn = ctx.session(store)?;
            admin::rollback_prepared(&mut conn, gid)
                .map_err(|e| db_error(store, ctx.url(store).ok(), "ROLLBACK PREPARED", e))?;
            done.push(format!(
                "{name}: rolled back the undecided rebuild of interrupted run {run}"
            ));
        }
    }
    for (run, name, path) in &staged {
        if decided.iter().any(|(r, _)| r == run) || !path.exists() {
            continue;
        }
        let _ = std::fs::remove_file(path);
        done.push(format!(
            "{name}: discarded the unfinished rebuild file of interrupted run {run}"
        ));
    }
    for line in &done {
        tracing::warn!("{line}");
        ctx.progress(format!("recovered: {line}"));
    }
    Ok(done)
}

fn staged_files(live: &Path) -> Vec<(String, PathBuf)> {
    let Some(name) = live.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let dir = live
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let prefix = format!("{name}.rebuild-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let rest = file.strip_prefix(&prefix)?;
            if rest.contains('-') {
                // SQLite's side file (-journal, -wal) of a staging file: a crash while
                // building, so before any decision; it goes.
                let _ = std::fs::remove_file(e.path());
                return None;
            }
            Some((rest.to_string(), e.path()))
        })
        .collect()
}

fn db_error(
    store: &Store,
    url: Option<&DatabaseUrl>,
    action: &str,
    e: impl std::fmt::Display,
) -> CliError {
    shared::DbError::Query {
        store: store.name.into(),
        url: url.map(|u| u.redacted().to_string()).unwrap_or_default(),
        action: action.into(),
        reason: e.to_string(),
    }
    .into()
}
