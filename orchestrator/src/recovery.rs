//! Settling what an interrupted run left. [`inspect`] only reads: it finds runs whose
//! decision was recorded (a journal row committed in the run's first store), prepared
//! transactions and staged SQLite files of runs that never got that far, and leftovers of
//! finished runs. Commands that only read report what it finds; [`settle`], called by
//! every writing command with every store's lock held, acts on it: a decided run is
//! finished from the source its journal row names (the migrations, or the backup set a
//! restore read, checked against its pinned sha256) or, when that source is gone, undone
//! from the run's safety backup; if neither can be had, nothing is changed (exit 4).

use std::path::{Path, PathBuf};

use serde::Serialize;
use shared::store::Store;
use shared::{admin, Backend, DatabaseUrl};

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::rebuild::{parse_gid, Allowed, Finished, Rebuild, Safety, Source};
use crate::run_record::RunRecord;

/// How a decided run's store is finished.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum Finish {
    CommitPrepared {
        gid: String,
    },
    /// Its rebuild is gone with the crash: rebuild it from the run's source.
    Rebuild,
}

/// One thing an interrupted run left.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Leftover {
    /// A run that decided to commit (its first store committed) but did not finish.
    Decided {
        run: String,
        /// What the run was doing, from its journal row ("reset", "restore from DIR").
        operation: String,
        #[serde(skip)]
        record: Result<RunRecord, String>,
        committed: Vec<&'static str>,
        unfinished: Vec<(&'static str, Finish)>,
        /// The stores whose rows of the run are to be cleared, deciding one first.
        rows_in: Vec<&'static str>,
    },
    /// A finished run's bookkeeping row in a store where it decides nothing.
    FinishedRow { run: String, store: &'static str },
    /// A prepared transaction of a run that never decided: rolled back.
    UndecidedPrepared {
        run: String,
        store: &'static str,
        gid: String,
    },
    /// A staged SQLite file of a run that never decided: removed.
    UndecidedStaged {
        run: String,
        store: &'static str,
        path: PathBuf,
    },
    /// SQLite's side file (-journal, -wal) of a staging file: a crash while building.
    StagingSideFile { store: &'static str, path: PathBuf },
}

impl Leftover {
    /// What it is, in words, for commands that only report it.
    pub fn describe(&self) -> String {
        match self {
            Leftover::Decided {
                run,
                operation,
                committed,
                unfinished,
                ..
            } => {
                let names: Vec<&str> = unfinished.iter().map(|(s, _)| *s).collect();
                format!(
                    "interrupted run {run} ({operation}) committed {} but not {}",
                    if committed.is_empty() {
                        "its decision".to_string()
                    } else {
                        committed.join(" and ")
                    },
                    names.join(" and ")
                )
            }
            Leftover::FinishedRow { run, store } => {
                format!("{store}: the bookkeeping row of finished run {run} is left")
            }
            Leftover::UndecidedPrepared { run, store, .. } => {
                format!("{store}: a prepared rebuild of interrupted run {run} holds locks")
            }
            Leftover::UndecidedStaged { run, store, path } => format!(
                "{store}: the unfinished rebuild file {} of interrupted run {run} is left",
                path.display()
            ),
            Leftover::StagingSideFile { store, path } => {
                format!("{store}: a staging side file {} is left", path.display())
            }
        }
    }
}

/// What commands that only read say of leftovers, and the command that settles them.
pub const SETTLE_HINT: &str =
    "`orchestrator recover` (or any writing command) settles it; commands that only read change nothing";

/// What a command that only reads says of interrupted runs.
#[derive(Debug, Default, Serialize)]
pub struct ReaderView {
    /// A run holds a store's lock right now: what it has in flight is not a leftover.
    pub run_in_progress: bool,
    /// What interrupted runs left, in words; settled by the next writing command.
    pub interrupted: Vec<String>,
    /// Stores whose tables a prepared rebuild of an interrupted run holds locked: reading
    /// them would only wait, so readers skip them.
    pub held: Vec<&'static str>,
}

impl ReaderView {
    pub fn needs_settling(&self) -> bool {
        !self.interrupted.is_empty()
    }

    /// One line for people, `None` when there is nothing to say.
    pub fn summary(&self) -> Option<String> {
        self.needs_settling().then(|| {
            format!(
                "an interrupted run needs settling: {}. {SETTLE_HINT}",
                self.interrupted.join("; ")
            )
        })
    }
}

/// For commands that only read: what interrupted runs left, changing nothing.
pub fn for_readers(ctx: &Context) -> CliResult<ReaderView> {
    if crate::lock::run_in_progress(ctx)? {
        return Ok(ReaderView {
            run_in_progress: true,
            ..ReaderView::default()
        });
    }
    under_lock(ctx)
}

/// The same, for a command that holds every store's run lock itself (no run can be at
/// work).
pub fn under_lock(ctx: &Context) -> CliResult<ReaderView> {
    let leftovers = inspect(ctx)?;
    let mut held = Vec::new();
    for leftover in &leftovers {
        match leftover {
            Leftover::UndecidedPrepared { store, .. } => held.push(*store),
            Leftover::Decided { unfinished, .. } => held.extend(
                unfinished
                    .iter()
                    .filter(|(_, how)| matches!(how, Finish::CommitPrepared { .. }))
                    .map(|(store, _)| *store),
            ),
            _ => {}
        }
    }
    Ok(ReaderView {
        run_in_progress: false,
        // A finished run's leftover row and a staging side file decide nothing: the next
        // writing command tidies them away; they are no interrupted run.
        interrupted: leftovers
            .iter()
            .filter(|l| {
                !matches!(
                    l,
                    Leftover::StagingSideFile { .. } | Leftover::FinishedRow { .. }
                )
            })
            .map(Leftover::describe)
            .collect(),
        held,
    })
}

/// Takes every store's lock (in dependency order, whatever part of them a command
/// covers) and settles what a crashed run left; the locks are held until dropped.
/// A command limited to `only` leaves alone another store whose SQLite file does not
/// exist, with nothing a crashed run staged beside it: there is nothing there to settle
/// or to protect, and locking it would create its lock file.
pub fn lock_and_settle(
    ctx: &Context,
    only: Option<&str>,
) -> CliResult<(Vec<crate::lock::StoreLock>, Vec<String>)> {
    let absent = |store: &Store| {
        ctx.url(store)
            .ok()
            .and_then(|u| u.sqlite_path())
            .is_some_and(|live| !live.exists() && staged_files(live).is_empty())
    };
    let stores: Vec<&'static Store> = shared::store::dependency_order(&ctx.stores())
        .into_iter()
        .filter(|s| only.is_none_or(|name| name == s.name) || !absent(s))
        .collect();
    let locks = crate::lock::acquire_all(ctx, &stores)?;
    let settled = settle(ctx)?;
    Ok((locks, settled))
}

/// Everything interrupted runs left, read from every store. Changes nothing; a reader
/// that holds no lock should first ask [`crate::lock::run_in_progress`], since a run at
/// work has the same things in flight.
pub fn inspect(ctx: &Context) -> CliResult<Vec<Leftover>> {
    let ordered = shared::store::dependency_order(&ctx.stores());
    let mut prepared: Vec<(String, &'static str, String)> = Vec::new();
    let mut staged: Vec<(String, &'static str, PathBuf)> = Vec::new();
    let mut found = Vec::new();
    // (run, store it is committed in, the run's stores, its source)
    let mut rows: Vec<(String, &'static str, Vec<String>, Option<String>)> = Vec::new();

    for store in &ordered {
        let url = ctx.url(store)?;
        if let Some(live) = url.sqlite_path() {
            for (run, path) in staged_files(live) {
                match run {
                    Some(run) => staged.push((run, store.name, path)),
                    None => found.push(Leftover::StagingSideFile {
                        store: store.name,
                        path,
                    }),
                }
            }
            if !live.exists() {
                continue;
            }
        }
        let mut conn = ctx.session(store)?;
        if url.backend() == Backend::Postgres {
            // Reading never waits long on locks; a prepared transaction holds some.
            let _ = admin::set_lock_timeout(&mut conn, ctx.settings.lock_timeout.as_secs());
            let gids = admin::prepared_transactions(&mut conn)
                .map_err(|e| db_error(store, Some(url), "reading prepared transactions", e))?;
            let before = prepared.len();
            for gid in gids {
                if let Some((run, _)) = parse_gid(&gid) {
                    prepared.push((run, store.name, gid));
                }
            }
            // A store with a prepared rebuild of ours has locked its old tables; its
            // journal row, if any, is inside that transaction and decides nothing yet.
            if prepared.len() > before {
                continue;
            }
        }
        for entry in admin::journal_entries(&mut conn)
            .map_err(|e| db_error(store, Some(url), "reading the journal", e))?
        {
            rows.push((entry.run, store.name, entry.stores, entry.source));
        }
    }

    // Whether `run` recorded its decision: a row in the run's first store (dependency
    // order), which commits first.
    let decided = |run: &str| {
        rows.iter()
            .any(|(r, s, n, _)| r == run && n.first().map(String::as_str) == Some(*s))
    };
    for (run, store, names, source) in &rows {
        // The run's first store commits first, so its row is the decision; and a finished
        // run clears that row first, so a row left only in a later store belongs to a run
        // that finished and was being tidied away.
        if names.first().map(String::as_str) != Some(*store) {
            if !decided(run) {
                found.push(Leftover::FinishedRow {
                    run: run.clone(),
                    store,
                });
            }
            continue;
        }
        let record = RunRecord::from_journal(source.as_deref());
        let mut committed = Vec::new();
        let mut unfinished = Vec::new();
        let mut rows_in = Vec::new();
        for name in names {
            let Some(member) = ordered.iter().find(|s| s.name == name) else {
                continue;
            };
            if rows
                .iter()
                .any(|(r, s, _, _)| r == run && *s == member.name)
            {
                committed.push(member.name);
                rows_in.push(member.name);
            } else if let Some((_, _, gid)) = prepared
                .iter()
                .find(|(r, s, _)| r == run && *s == member.name)
            {
                let gid = gid.clone();
                unfinished.push((member.name, Finish::CommitPrepared { gid }));
                rows_in.push(member.name);
            } else {
                // A staged file an older build left for this store is removed (below,
                // as undecided); the store is rebuilt in place from the run's source.
                unfinished.push((member.name, Finish::Rebuild));
            }
        }
        if unfinished.is_empty() {
            // Every store committed; only the tidying was interrupted.
            for name in rows_in {
                found.push(Leftover::FinishedRow {
                    run: run.clone(),
                    store: name,
                });
            }
            continue;
        }
        found.push(Leftover::Decided {
            run: run.clone(),
            operation: record
                .as_ref()
                .map(RunRecord::operation)
                .unwrap_or_else(|e| format!("unreadable record: {e}")),
            record,
            committed,
            unfinished,
            rows_in,
        });
    }
    for (run, store, gid) in prepared {
        if !decided(&run) {
            found.push(Leftover::UndecidedPrepared { run, store, gid });
        }
    }
    // Builds before the in-place SQLite rebuild staged a file beside the live one; a
    // file of a decided run is not swapped in (renaming over a live database is what
    // the in-place rebuild exists to avoid): its store is rebuilt from the run's source.
    for (run, store, path) in staged {
        found.push(Leftover::UndecidedStaged { run, store, path });
    }
    Ok(found)
}

/// Settles what a crashed run left, before anything else touches the stores. Returns
/// what it did, in words. Called with every store's lock held.
pub fn settle(ctx: &Context) -> CliResult<Vec<String>> {
    let mut done = Vec::new();
    for leftover in inspect(ctx)? {
        if let Some(line) = crate::recovery_apply::apply(ctx, leftover)? {
            tracing::warn!("{line}");
            ctx.progress(format!("recovered: {line}"));
            done.push(line);
        }
    }
    Ok(done)
}

/// The staging files beside a SQLite store: `(Some(run), path)` for a staged database,
/// `(None, path)` for a side file of one. Only reads the folder.
fn staged_files(live: &Path) -> Vec<(Option<String>, PathBuf)> {
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
            // SQLite's side files (-journal, -wal) carry a dash the run id does not.
            let run = (!rest.contains('-')).then(|| rest.to_string());
            Some((run, e.path()))
        })
        .collect()
}

pub(crate) fn db_error(
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

/// Exit 4 with a message: the settling cannot go on, and nothing was changed.
pub(crate) fn cannot_settle(message: String) -> CliError {
    CliError::new(Exit::Database, anyhow::anyhow!("{message}"))
}

/// Rebuilds `stores` for a run being settled, from `source`. `keep`: back up what the
/// stores hold first (what the application wrote since the crash), under the fence.
pub(crate) fn rebuild(
    ctx: &Context,
    run: String,
    stores: Vec<&'static Store>,
    record: RunRecord,
    sources: &[Source<'_>],
    keep: bool,
) -> CliResult<Finished> {
    Rebuild {
        ctx,
        run,
        stores,
        safety: keep.then_some(Safety {
            base: &ctx.settings.backup_dir,
            always: false,
        }),
        allowed: Allowed::ALL,
        fallback: None,
        record,
    }
    .execute(sources)
}

/// A plan's view (a dry run): the stores under the readers' locks (so no run is at work while it
/// reads) and what interrupted runs left, changed by nothing. A prepared rebuild that
/// still holds a store's tables would only make the reading wait: that is refused, with
/// how to settle it.
pub fn read_settled(
    ctx: &Context,
    stores: &[&'static Store],
    command: &str,
) -> CliResult<(Vec<crate::lock::ReadLock>, Vec<String>)> {
    let read = crate::lock::read_all(ctx, stores, true)?;
    let runs = crate::recovery::for_readers(ctx)?;
    if !runs.held.is_empty() {
        return Err(CliError::new(
            Exit::CheckFailed,
            anyhow::anyhow!(
                "{command} cannot read {} until the interrupted run is settled: {}",
                runs.held.join(" and "),
                SETTLE_HINT
            ),
        ));
    }
    Ok((read, runs.interrupted))
}
