//! The all-or-nothing replacement of one or both stores' contents, shared by `reset`
//! (fresh migrations) and `restore` (a backup).
//!
//! Every store is rebuilt where nothing is visible until its commit: on PostgreSQL inside
//! one transaction (drop the schema, recreate it with its grants, migrate or load,
//! verify); on SQLite in a new file beside the live one, swapped in by an atomic rename.
//! Each rebuilt store also records the run in its journal table, inside that same
//! transaction or file. Stores commit in dependency order, so once the first store has
//! committed, its journal row *is* the decision to commit the rest: a run that dies
//! between two commits is finished by the next run, and one that dies before
//! the first commit leaves nothing but leftovers that the next run discards (see
//! `recovery`). With
//! `max_prepared_transactions > 0` every PostgreSQL store is prepared (two-phase commit)
//! before the first commit, so even a commit that fails at the server cannot lose the
//! rebuilt state: the next run commits it. Without it (the server default), every store's
//! transaction stays open until all are ready, restores included (psql keeps the load's
//! transaction open), and a later store whose commit fails has the earlier ones put back
//! from the run's safety backup. The journal row also records the run's source (see
//! `run_record`), so a run is only ever finished from what it started from.

mod postgres;
mod report;
mod sqlite;

pub use report::{Phases, StoreFailure, StoreOutcome};

pub use sqlite::staged_path;
pub(crate) use sqlite::swap_in;

use std::path::{Path, PathBuf};
use std::time::Instant;

use shared::migrations::{self, Applied};
use shared::store::Store;
use shared::{admin, contract, Backend, Conn, DatabaseUrl};

use crate::backup::StoreBackup;
use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::fault;
use crate::run_record::RunRecord;

/// What replaces a store's contents.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    Migrations,
    Backup {
        dir: &'a Path,
        entry: &'a StoreBackup,
    },
}

impl<'a> Source<'a> {
    /// The sources that restore `stores` from the backup set in `dir`, in their order
    /// (a store the manifest lacks is left out; the caller checked the set covers it).
    pub fn from_set(
        dir: &'a Path,
        manifest: &'a crate::backup::Manifest,
        stores: &[&'static Store],
    ) -> Vec<Source<'a>> {
        stores
            .iter()
            .filter_map(|s| manifest.stores.iter().find(|e| e.store == s.name))
            .map(|entry| Source::Backup { dir, entry })
            .collect()
    }
}

/// Runs `f`, adding its duration to `slot`.
fn timed<T>(slot: &mut u128, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    *slot += started.elapsed().as_millis();
    out
}

enum State {
    /// PostgreSQL: the transaction is open on this connection.
    Open(Conn),
    /// PostgreSQL: prepared under this gid; the connection only commits or rolls it back.
    Prepared(Conn, String),
    /// PostgreSQL without two-phase commit: a dump loaded by psql, whose transaction is
    /// open until we commit it.
    Loaded(postgres::PsqlTxn),
    /// SQLite: the new database is complete in this file, not yet swapped in.
    Staged(PathBuf),
    /// Nothing open: settled, or not started.
    Done,
}

struct Stage {
    store: &'static Store,
    url: DatabaseUrl,
    state: State,
    outcome: StoreOutcome,
}

/// A run id: sortable, unique per process, safe in a gid and a file name.
pub fn new_run_id() -> String {
    format!(
        "{}_{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S%3f"),
        std::process::id()
    )
}

pub fn gid(run: &str, store: &str) -> String {
    format!("{}{run}_{store}", admin::GID_PREFIX)
}

pub(crate) fn parse_gid(gid: &str) -> Option<(String, String)> {
    let rest = gid.strip_prefix(admin::GID_PREFIX)?;
    let (run, store) = rest.rsplit_once('_')?;
    Some((run.to_string(), store.to_string()))
}

/// Runs the rebuild of `stores` (dependency order) from `sources` (same order).
pub struct Rebuild<'a> {
    pub ctx: &'a Context,
    pub run: String,
    pub stores: Vec<&'static Store>,
    /// The backup to put back if a later store's commit fails without two-phase commit.
    pub fallback: Option<&'a Path>,
    /// What the journal rows record of the run: its source and safety backup.
    pub record: RunRecord,
}

impl Rebuild<'_> {
    pub fn execute(&self, sources: &[Source<'_>]) -> CliResult<Vec<StoreOutcome>> {
        let names: Vec<&str> = self.stores.iter().map(|s| s.name).collect();
        let two_phase = self.two_phase_everywhere()?;

        // Each store is dropped and rebuilt on its own connection, all stores at once:
        // nothing of a rebuild is visible before its commit, so the dependency order
        // (app dropped before auth, auth migrated before app) only matters where it can
        // be observed, at the commits, which follow it strictly.
        // A failed store's stage (to roll back) travels boxed: it is large.
        type Failed = (Option<Box<Stage>>, StoreFailure);
        let results: Vec<Result<Stage, Failed>> = std::thread::scope(|scope| {
            let workers: Vec<_> = self
                .stores
                .iter()
                .zip(sources)
                .map(|(store, source)| {
                    let names = &names;
                    scope.spawn(move || {
                        let mut stage = self.open(store).map_err(|f| (None, f))?;
                        let started = Instant::now();
                        match self.build(&mut stage, *source, names, two_phase) {
                            Ok(()) => {
                                stage.outcome.millis += started.elapsed().as_millis();
                                Ok(stage)
                            }
                            Err(f) => Err((Some(Box::new(stage)), f)),
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .zip(&self.stores)
                .map(|(w, store)| {
                    w.join().unwrap_or_else(|_| {
                        Err((
                            None,
                            StoreFailure {
                                store: store.name,
                                url: String::new(),
                                step: "rebuilding",
                                reason: "the worker thread panicked".into(),
                            },
                        ))
                    })
                })
                .collect()
        });

        let mut stages = Vec::with_capacity(results.len());
        let mut first_failure = None;
        for result in results {
            match result {
                Ok(stage) => stages.push(stage),
                Err((stage, failure)) => {
                    stages.extend(stage.map(|s| *s));
                    // Reported in dependency order: the first store's failure first.
                    first_failure.get_or_insert(failure);
                }
            }
        }
        if let Some(failure) = first_failure {
            abort_all(stages);
            return Err(failure_exit(failure, "nothing was changed"));
        }
        self.commit(stages, two_phase)
    }

    fn two_phase_everywhere(&self) -> CliResult<bool> {
        if std::env::var("ORCH_TWO_PHASE").is_ok_and(|v| v == "off") {
            return Ok(false);
        }
        let mut any_pg = false;
        for store in &self.stores {
            let url = self.ctx.url(store)?;
            if url.backend() != Backend::Postgres {
                continue;
            }
            any_pg = true;
            let mut conn = self.ctx.session(store)?;
            let available = admin::two_phase_available(&mut conn).unwrap_or(false);
            if !available {
                tracing::info!(
                    store = store.name,
                    "max_prepared_transactions = 0: no two-phase commit"
                );
                return Ok(false);
            }
        }
        Ok(any_pg)
    }

    fn open(&self, store: &'static Store) -> Result<Stage, StoreFailure> {
        let url = self
            .ctx
            .url(store)
            .map_err(|e| StoreFailure {
                store: store.name,
                url: String::new(),
                step: "configuration",
                reason: e.to_string(),
            })?
            .clone();
        let outcome = StoreOutcome {
            store: store.name,
            backend: url.backend(),
            url: url.redacted().to_string(),
            dropped: Vec::new(),
            applied: Vec::new(),
            committed: false,
            two_phase: false,
            millis: 0,
            phases: Phases::default(),
        };
        let mut stage = Stage {
            store,
            url: url.clone(),
            state: State::Done,
            outcome,
        };
        let started = Instant::now();
        let mut session = self
            .ctx
            .session(store)
            .map_err(|e| StoreFailure::new(store, &url, "connecting", e))?;
        stage.outcome.dropped = shared::catalog::tables(&mut session)
            .map_err(|e| StoreFailure::new(store, &url, "listing tables", e))?;
        drop(session);
        if url.backend() == Backend::Postgres {
            let mut drop_ms = 0;
            let conn = timed(&mut drop_ms, || postgres::open(self.ctx, store))
                .map_err(|(step, e)| StoreFailure::new(store, &url, step, e))?;
            stage.outcome.phases.drop += drop_ms;
            stage.state = State::Open(conn);
        }
        stage.outcome.millis += started.elapsed().as_millis();
        Ok(stage)
    }

    fn build(
        &self,
        stage: &mut Stage,
        source: Source<'_>,
        names: &[&str],
        two_phase: bool,
    ) -> Result<(), StoreFailure> {
        let store = stage.store;
        let url = stage.url.clone();
        let record = self.record.to_json();
        let fail =
            |step: &'static str, e: &dyn std::fmt::Display| StoreFailure::new(store, &url, step, e);
        match (&mut stage.state, source) {
            (State::Open(conn), Source::Migrations) => {
                let phases = &mut stage.outcome.phases;
                stage.outcome.applied = timed(&mut phases.migrate, || {
                    fill_by_migrations(self.ctx, store, conn)
                })
                .map_err(|(step, e)| fail(step, &e))?;
                timed(&mut phases.verify, || {
                    finish_rebuild(conn, store, &self.run, names, &record)
                })
                .map_err(|(step, e)| fail(step, &e))?;
                if two_phase {
                    let gid = gid(&self.run, store.name);
                    admin::prepare(conn, &gid).map_err(|e| fail("PREPARE TRANSACTION", &e))?;
                    let State::Open(conn) = std::mem::replace(&mut stage.state, State::Done) else {
                        unreachable!()
                    };
                    stage.state = State::Prepared(conn, gid);
                    stage.outcome.two_phase = true;
                }
            }
            (State::Open(_), Source::Backup { dir, entry }) => {
                // psql loads the dump; our own open transaction (which only dropped the
                // schema) is rolled back so it does not wait on psql's locks.
                if let State::Open(mut conn) = std::mem::replace(&mut stage.state, State::Done) {
                    let _ = admin::rollback(&mut conn);
                    // psql's session takes the rebuild lock for the load.
                    let _ = admin::advisory_unlock(&mut conn, admin::rebuild_lock_key(store.name));
                    let job = postgres::LoadJob {
                        dir,
                        entry,
                        run: &self.run,
                        names,
                        record: &record,
                        two_phase,
                    };
                    let loaded = postgres::load(self.ctx, store, &url, &mut conn, &job)
                        .map_err(|e| fail("restoring the dump", &e))?;
                    stage.state = match loaded {
                        postgres::Loaded::Prepared(gid) => {
                            stage.outcome.two_phase = true;
                            State::Prepared(conn, gid)
                        }
                        postgres::Loaded::Open(txn) => State::Loaded(txn),
                    };
                }
            }
            (State::Done, source) => {
                let live = url.sqlite_path().map(Path::to_path_buf).unwrap_or_default();
                let staged = staged_path(&live, &self.run);
                let job = sqlite::Build {
                    staged: &staged,
                    source,
                    run: &self.run,
                    names,
                    record: &record,
                };
                sqlite::build(self.ctx, store, &job, &mut stage.outcome).map_err(|(step, e)| {
                    let _ = std::fs::remove_file(&staged);
                    fail(step, &e)
                })?;
                stage.state = State::Staged(staged);
            }
            (State::Prepared(..) | State::Loaded(_) | State::Staged(_), _) => {}
        }
        if fault::armed("fail-migrate", store.name) {
            return Err(fail("migrating", &"injected fault (ORCH_FAULT)"));
        }
        Ok(())
    }

    fn commit(&self, mut stages: Vec<Stage>, two_phase: bool) -> CliResult<Vec<StoreOutcome>> {
        let mut committed: Vec<&'static Store> = Vec::new();
        let mut outcomes = Vec::new();
        let mut remaining = std::mem::take(&mut stages).into_iter();
        while let Some(mut stage) = remaining.next() {
            let store = stage.store;
            fault::pause_if(store.name);
            let result = if fault::armed("fail-commit", store.name) {
                Err("injected fault (ORCH_FAULT)".to_string())
            } else {
                let mut spent = 0;
                let result = timed(&mut spent, || commit_stage(&mut stage));
                stage.outcome.phases.commit += spent;
                // A commit whose answer was lost (the connection broke, psql died) may
                // still have happened: the store's journal row tells.
                result.or_else(|e| if self.landed(store) { Ok(()) } else { Err(e) })
            };
            match result {
                Ok(()) => {
                    if stage.url.backend() == Backend::Sqlite {
                        // The pooled connection still sees the file the rename replaced.
                        // (A PostgreSQL session stays: it holds the store's lock.)
                        self.ctx.evict(store.name);
                    }
                    stage.outcome.committed = true;
                    committed.push(store);
                    fault::crash_if("crash-after-commit", store.name);
                    outcomes.push(stage.outcome);
                }
                Err(reason) => {
                    let failure = StoreFailure::new(store, &stage.url, "committing", reason);
                    let rest: Vec<Stage> = remaining.collect();
                    if committed.is_empty() {
                        abort_all(std::iter::once(stage).chain(rest).collect());
                        return Err(failure_exit(failure, "nothing was changed"));
                    }
                    if two_phase {
                        // The decision is recorded in the first store; the prepared
                        // transactions survive, and the next run commits them.
                        return Err(failure_exit(
                            failure,
                            "the stores committed so far hold the decision and the others are prepared; `orchestrator recover` (or any writing command) completes the commit",
                        ));
                    }
                    abort_all(std::iter::once(stage).chain(rest).collect());
                    return Err(self.undo_committed(&committed, failure));
                }
            }
        }
        self.clear_journals();
        Ok(outcomes)
    }

    /// Whether this run's journal row is committed in `store` (read on a new connection).
    /// A rebuild still prepared is not committed, and holds the old tables: its journal is
    /// not read then (that read would wait on the prepared transaction's locks).
    fn landed(&self, store: &'static Store) -> bool {
        let Ok(mut conn) = self.ctx.connect(store) else {
            return false;
        };
        if conn.backend() == Backend::Postgres {
            let secs = self.ctx.settings.lock_timeout.as_secs();
            let still_prepared = admin::set_lock_timeout(&mut conn, secs)
                .and_then(|()| admin::prepared_transactions(&mut conn))
                .map(|gids| gids.contains(&gid(&self.run, store.name)));
            if !matches!(still_prepared, Ok(false)) {
                return false;
            }
        }
        admin::journal_entries(&mut conn).is_ok_and(|rows| rows.iter().any(|r| r.run == self.run))
    }

    /// Without two-phase commit a later store's commit failed after earlier ones
    /// committed: put the earlier ones back from the backup taken before the run. The
    /// message says exactly what is changed, and where the safety backup is.
    fn undo_committed(&self, committed: &[&'static Store], failure: StoreFailure) -> CliError {
        let names: Vec<&str> = committed.iter().map(|s| s.name).collect();
        let changed = names.join(" and ");
        let op = self.record.operation();
        let Some(dir) = self.fallback else {
            return failure_exit(
                failure,
                &format!(
                    "{changed} already committed the {op} and there is no safety backup to undo it \
                     (no rows were held, or --no-backup); `orchestrator recover` completes the {op}"
                ),
            );
        };
        let manifest = match crate::backup::load_checked(dir, &names) {
            Ok(m) => m,
            Err(e) => {
                return failure_exit(
                    failure,
                    &format!(
                        "{changed} already committed the {op}; the safety backup {} cannot undo it ({e}); \
                         `orchestrator recover` completes the {op}",
                        dir.display()
                    ),
                )
            }
        };
        let undo = Rebuild {
            ctx: self.ctx,
            run: new_run_id(),
            stores: committed.to_vec(),
            fallback: None,
            record: RunRecord {
                restore_from: crate::run_record::BackupRef::pin(dir).ok(),
                safety: None,
            },
        };
        let sources = Source::from_set(dir, &manifest, committed);
        match undo.execute(&sources) {
            Ok(_) => failure_exit(
                failure,
                &format!(
                    "{changed} had committed and {} put back from the safety backup {}: nothing is changed",
                    if names.len() == 1 { "was" } else { "were" },
                    dir.display()
                ),
            ),
            Err(e) => failure_exit(
                failure,
                &format!(
                    "{changed} already committed the {op}; putting {} back from the safety backup {} failed too ({e}); \
                     `orchestrator recover` completes the {op}",
                    if names.len() == 1 { "it" } else { "them" },
                    dir.display()
                ),
            ),
        }
    }

    /// Forgets the finished run: the first store's row (the decision) first, so that a
    /// crash or failure part way leaves rows only where they decide nothing; the next run
    /// then clears them without redoing anything.
    fn clear_journals(&self) {
        for store in &self.stores {
            let cleared =
                self.ctx
                    .session(store)
                    .map_err(|e| e.to_string())
                    .and_then(|mut conn| {
                        admin::journal_clear(&mut conn, &self.run).map_err(|e| e.to_string())
                    });
            if let Err(e) = cleared {
                tracing::warn!(store = store.name, error = %e, "could not clear the journal; the next run will");
                return;
            }
        }
    }
}

fn failure_exit(f: StoreFailure, consequence: &str) -> CliError {
    CliError::new(Exit::Database, anyhow::anyhow!("{f}; {consequence}"))
}

type StepError = (&'static str, String);

fn fill_by_migrations(
    ctx: &Context,
    store: &Store,
    conn: &mut Conn,
) -> Result<Vec<Applied>, StepError> {
    migrations::run_pending(conn, store, |m| {
        ctx.progress(format!("  {} {} ({} ms)", store.name, m.name, m.millis))
    })
    .map_err(|f| {
        (
            "migrating",
            format!("migration {}: {}", f.migration, f.reason),
        )
    })
}

/// Records the run and checks the result against the contract, inside the rebuild.
fn finish_rebuild(
    conn: &mut Conn,
    store: &Store,
    run: &str,
    names: &[&str],
    record: &str,
) -> Result<(), StepError> {
    admin::journal_record(conn, run, names, record)
        .map_err(|e| ("recording the run", e.to_string()))?;
    let check = contract::check_schema(conn, store).map_err(|e| ("verifying", e.to_string()))?;
    if !check.ok() {
        return Err(("verifying", check.summary()));
    }
    Ok(())
}

fn commit_stage(stage: &mut Stage) -> Result<(), String> {
    match std::mem::replace(&mut stage.state, State::Done) {
        State::Open(mut conn) => admin::commit(&mut conn).map_err(|e| e.to_string()),
        State::Prepared(mut conn, gid) => {
            admin::commit_prepared(&mut conn, &gid).map_err(|e| e.to_string())
        }
        State::Loaded(txn) => txn.commit(),
        State::Staged(staged) => swap_in(&staged, stage.url.sqlite_path().unwrap_or(Path::new(""))),
        State::Done => Ok(()),
    }
}

fn abort_all(stages: Vec<Stage>) {
    for mut stage in stages {
        match std::mem::replace(&mut stage.state, State::Done) {
            State::Open(mut conn) => {
                let _ = admin::rollback(&mut conn);
            }
            State::Prepared(mut conn, gid) => {
                let _ = admin::rollback_prepared(&mut conn, &gid);
            }
            State::Loaded(txn) => txn.abort(),
            State::Staged(path) => {
                let _ = std::fs::remove_file(path);
            }
            State::Done => {}
        }
    }
}
