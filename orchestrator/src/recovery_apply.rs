//! Acting on what [`crate::recovery::inspect`] found, with every store's lock held: a
//! decided run is finished from its own source, or undone from its safety backup, or left
//! exactly as it is with an error saying what is needed. Never anything else.

use shared::admin;
use shared::store::Store;

use crate::context::Context;
use crate::exit::CliResult;
use crate::rebuild::{new_run_id, Source};
use crate::recovery::{cannot_settle, db_error, rebuild, Finish, Leftover};
use crate::run_record::{BackupRef, RunRecord};

/// Runs one settling statement on the store's session; a failure names the store and
/// the action.
fn on_store(
    ctx: &Context,
    store: &'static Store,
    action: &str,
    statement: impl FnOnce(&mut shared::Conn) -> diesel::QueryResult<()>,
) -> CliResult<()> {
    let mut conn = ctx.session(store)?;
    statement(&mut conn).map_err(|e| db_error(store, ctx.url(store).ok(), action, e))
}

/// Settles one leftover; returns what was done, in words.
pub fn apply(ctx: &Context, leftover: Leftover) -> CliResult<Option<String>> {
    match leftover {
        Leftover::Decided {
            run,
            operation,
            record,
            committed,
            unfinished,
            rows_in,
        } => finish_or_undo(
            ctx,
            &run,
            &operation,
            record,
            &committed,
            &unfinished,
            &rows_in,
        )
        .map(Some),
        Leftover::FinishedRow { run, store } => {
            let Some(store) = ctx.store(store) else {
                return Ok(None);
            };
            on_store(ctx, store, "clearing the journal", |c| {
                admin::journal_clear(c, &run)
            })?;
            Ok(Some(format!(
                "{}: cleared the bookkeeping row of finished run {run}",
                store.name
            )))
        }
        Leftover::UndecidedPrepared { run, store, gid } => {
            let Some(store) = ctx.store(store) else {
                return Ok(None);
            };
            on_store(ctx, store, "ROLLBACK PREPARED", |c| {
                admin::rollback_prepared(c, &gid)
            })?;
            Ok(Some(format!(
                "{}: rolled back the undecided rebuild of interrupted run {run}",
                store.name
            )))
        }
        Leftover::UndecidedStaged { run, store, path } => {
            let _ = std::fs::remove_file(&path);
            Ok(Some(format!(
                "{store}: discarded the unfinished rebuild file of interrupted run {run}"
            )))
        }
        Leftover::StagingSideFile { path, .. } => {
            // A crash while building, so before any decision: it goes, quietly.
            let _ = std::fs::remove_file(&path);
            Ok(None)
        }
    }
}

/// Finishes a decided run, or undoes it; see the module's documentation.
fn finish_or_undo(
    ctx: &Context,
    run: &str,
    operation: &str,
    record: Result<RunRecord, String>,
    committed: &[&'static str],
    unfinished: &[(&'static str, Finish)],
    rows_in: &[&'static str],
) -> CliResult<String> {
    let to_rebuild: Vec<&'static Store> = unfinished
        .iter()
        .filter(|(_, how)| matches!(how, Finish::Rebuild))
        .filter_map(|(name, _)| ctx.store(name))
        .collect();
    let rebuild_names: Vec<&str> = to_rebuild.iter().map(|s| s.name).collect();
    let mut done = Vec::new();

    // Whether the stores that lost their rebuild can be redone from the run's source,
    // checked before anything moves: a run is finished whole, or undone, or left alone.
    let source_check: Result<Option<(BackupRef, crate::backup::Manifest)>, String> = match &record {
        Err(e) => Err(e.clone()),
        Ok(_) if to_rebuild.is_empty() => Ok(None),
        Ok(RunRecord {
            restore_from: None, ..
        }) => Ok(None),
        Ok(RunRecord {
            restore_from: Some(set),
            ..
        }) => set
            .open(&rebuild_names)
            .map(|m| Some((set.clone(), m)))
            .map_err(|e| format!("its backup set cannot be read: {e}")),
    };
    match (source_check, record) {
        (Ok(found), Ok(record)) => {
            finish(ctx, run, &record, unfinished, &to_rebuild, found, &mut done)?;
        }
        (Err(why), record) => {
            let safety = record.ok().and_then(|r| r.safety);
            let job = Undo {
                run,
                operation,
                committed,
                unfinished,
                rows_in,
            };
            return undo(ctx, &job, safety, &why);
        }
        (Ok(_), Err(e)) => return Err(cannot_settle(e)),
    }
    clear_rows(ctx, run, rows_in);
    Ok(format!(
        "finished interrupted run {run} ({operation}): {}",
        done.join("; ")
    ))
}

fn finish(
    ctx: &Context,
    run: &str,
    record: &RunRecord,
    unfinished: &[(&'static str, Finish)],
    to_rebuild: &[&'static Store],
    source: Option<(BackupRef, crate::backup::Manifest)>,
    done: &mut Vec<String>,
) -> CliResult<()> {
    for (name, how) in unfinished {
        let Some(store) = ctx.store(name) else {
            continue;
        };
        match how {
            Finish::CommitPrepared { gid } => {
                on_store(ctx, store, "COMMIT PREPARED", |c| {
                    admin::commit_prepared(c, gid)
                })?;
                done.push(format!("{name}: committed its prepared rebuild"));
            }
            Finish::Rebuild => {}
        }
    }
    if to_rebuild.is_empty() {
        return Ok(());
    }
    // What the application may have written to these stores since the crash is kept:
    // backed up under the rebuild's fence.
    let finished = match &source {
        None => {
            let sources = vec![Source::Migrations; to_rebuild.len()];
            rebuild(
                ctx,
                run.into(),
                to_rebuild.to_vec(),
                record.clone(),
                &sources,
                true,
            )?
        }
        Some((set, manifest)) => {
            let sources = Source::from_set(&set.dir, manifest, to_rebuild);
            rebuild(
                ctx,
                run.into(),
                to_rebuild.to_vec(),
                record.clone(),
                &sources,
                true,
            )?
        }
    };
    let kept = finished.backup;
    for store in to_rebuild {
        done.push(format!(
            "{}: {} from {}{}",
            store.name,
            if source.is_some() {
                "restored"
            } else {
                "reset"
            },
            source
                .as_ref()
                .map(|(s, _)| s.dir.display().to_string())
                .unwrap_or_else(|| "the migrations".into()),
            kept.as_ref()
                .map(|d| format!(" (what it held first is in {})", d.display()))
                .unwrap_or_default()
        ));
    }
    Ok(())
}

/// A decided run that cannot be finished.
struct Undo<'a> {
    run: &'a str,
    operation: &'a str,
    committed: &'a [&'static str],
    unfinished: &'a [(&'static str, Finish)],
    rows_in: &'a [&'static str],
}

/// Puts the stores the run committed back from its safety backup, and discards what it
/// left ready in the others; if the safety backup cannot be had either, changes nothing
/// and says what is needed (exit 4).
fn undo(ctx: &Context, job: &Undo<'_>, safety: Option<BackupRef>, why: &str) -> CliResult<String> {
    let Undo {
        run,
        operation,
        committed,
        unfinished,
        rows_in,
    } = *job;
    let stores: Vec<&'static Store> = committed.iter().filter_map(|n| ctx.store(n)).collect();
    let opened = match safety {
        None => Err("the run took no safety backup".to_string()),
        Some(set) => set
            .open(committed)
            .map(|manifest| (set, manifest))
            .map_err(|e| format!("its safety backup cannot be read: {e}")),
    };
    let (set, manifest) = match opened {
        Ok(found) => found,
        Err(safety_why) => {
            return Err(cannot_settle(format!(
                "interrupted run {run} ({operation}) committed {} but cannot be finished ({why}) \
                 nor undone ({safety_why}); nothing was changed. Put the backup set back where \
                 the run read it, then run `orchestrator recover`",
                committed.join(" and ")
            )))
        }
    };
    let sources = Source::from_set(&set.dir, &manifest, &stores);
    let record = RunRecord {
        restore_from: Some(set.clone()),
        safety: None,
    };
    rebuild(ctx, new_run_id(), stores, record, &sources, false)?;
    for (name, how) in unfinished {
        let Some(store) = ctx.store(name) else {
            continue;
        };
        match how {
            Finish::CommitPrepared { gid } => {
                on_store(ctx, store, "ROLLBACK PREPARED", |c| {
                    admin::rollback_prepared(c, gid)
                })?;
            }
            Finish::Rebuild => {}
        }
    }
    clear_rows(ctx, run, rows_in);
    Ok(format!(
        "undid interrupted run {run} ({operation}): it could not be finished ({why}); {} put back from its safety backup {}",
        committed.join(" and "),
        set.dir.display()
    ))
}

/// Clears a settled run's rows, the deciding store's first (as a finished run does).
fn clear_rows(ctx: &Context, run: &str, rows_in: &[&'static str]) {
    for name in rows_in {
        if let Some(store) = ctx.store(name) {
            if let Ok(mut conn) = ctx.session(store) {
                let _ = admin::journal_clear(&mut conn, run);
            }
        }
    }
}
