//! The all-or-nothing replacement of one or both stores' contents, shared by `reset`
//! (fresh migrations) and `restore` (a backup).
//!
//! A rebuild runs in two phases, each on all stores at once, then commits in order:
//!
//! 1. **Fence.** Each store's rebuild transaction opens and takes the store's write fence
//!    (PostgreSQL: every table of the schema locked `EXCLUSIVE`, so readers go on reading
//!    and writers wait; SQLite: `BEGIN IMMEDIATE`, SQLite's own write lock). Under it the
//!    store's inventory is read again and, when there is something to keep, the safety
//!    backup is taken from that very state (PostgreSQL: `pg_dump --snapshot` of the fenced
//!    transaction's snapshot), so the backup holds exactly what the rebuild drops: no
//!    commit can land in between. Data that arrived since the guard looked refuses the
//!    run unless it was forced.
//! 2. **Build.** In the same transaction: drop and recreate (migrations, or the backup's
//!    contents), record the run in the store's journal table, verify.
//!
//! On SQLite the rebuild happens inside the live file, through SQLite: no file is ever
//! renamed over a database another process may have open, with its journal or WAL.
//!
//! Stores commit in dependency order, so once the first store has committed, its journal
//! row *is* the decision to commit the rest: a run that dies between two commits is
//! finished by the next run, and one that dies before the first commit leaves nothing
//! that the next run does not discard (see `recovery`). With
//! `max_prepared_transactions > 0` every PostgreSQL store is prepared (two-phase commit)
//! before the first commit; without it (the server default) every store's transaction
//! stays open until all are ready, and a later store whose commit fails has the earlier
//! ones put back from the run's safety backup. The journal row also records the run's
//! source and safety backup (see `run_record`).

mod commit;
mod fence;
mod postgres;
mod report;
mod sqlite;

pub use report::{Phases, StoreFailure, StoreOutcome};
pub(crate) use sqlite::read_only_uri;

use std::path::{Path, PathBuf};
use std::time::Instant;

use shared::inventory::Inventory;
use shared::migrations::{self, Applied};
use shared::pg_access::{self, AccessRules};
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

/// The safety backup a rebuild takes, under its fence, of what it replaces.
#[derive(Clone, Copy)]
pub struct Safety<'a> {
    /// The folder the backup set goes under.
    pub base: &'a Path,
    /// Back up stores that hold no data too: a restore's safety backup is also what puts
    /// a committed store back should a later store fail.
    pub always: bool,
}

/// What the guard allowed; checked again under the fence.
#[derive(Clone, Copy)]
pub struct Allowed {
    /// Data may be replaced (`--force`).
    pub data: bool,
    /// Objects outside the schema may be dropped with it (`--drop-dependents`).
    pub dependents: bool,
}

impl Allowed {
    /// Everything: a run settling or undoing an earlier one must complete.
    pub const ALL: Allowed = Allowed {
        data: true,
        dependents: true,
    };
}

/// What a finished rebuild reports.
pub struct Finished {
    pub outcomes: Vec<StoreOutcome>,
    /// The safety backup set it took, if any store had something to keep.
    pub backup: Option<PathBuf>,
}

/// Runs `f`, adding its duration to `slot`.
fn timed<T>(slot: &mut u128, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    *slot += started.elapsed().as_millis();
    out
}

enum State {
    /// The rebuild transaction is open on this connection (PostgreSQL, or SQLite inside
    /// the live file), its fence held.
    Open(Conn),
    /// PostgreSQL restore: psql holds the fence in its transaction; nothing loaded yet.
    Fenced(Box<postgres::Fenced>),
    /// PostgreSQL: prepared under this gid; the connection only commits or rolls it back.
    Prepared(Conn, String),
    /// PostgreSQL without two-phase commit: a dump loaded by psql, whose transaction is
    /// open until we commit it.
    Loaded(postgres::PsqlTxn),
    /// Nothing open: settled, or not started.
    Done,
}

struct Stage {
    store: &'static Store,
    url: DatabaseUrl,
    state: State,
    /// What the store held under the fence.
    inventory: Inventory,
    backup: Option<StoreBackup>,
    outcome: StoreOutcome,
    /// The stage's connection is the run's pooled session of its store, lent to the
    /// rebuild (PostgreSQL): it goes back to the pool, with the run lock it holds, once
    /// the rebuild's transaction has ended.
    lent: bool,
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
    /// Back up what is replaced, under the fence; `None`: no backup (`--no-backup`, or
    /// putting a backup back).
    pub safety: Option<Safety<'a>>,
    pub allowed: Allowed,
    /// A backup set to undo committed stores from if a later commit fails without
    /// two-phase commit; the run's own safety backup when it takes one.
    pub fallback: Option<&'a Path>,
    /// What the journal rows record of the run: its source (the safety backup is added
    /// once taken).
    pub record: RunRecord,
}

/// A failed store's stage (to roll back) travels boxed: it is large.
type Failed = (Option<Box<Stage>>, StoreFailure);

impl Rebuild<'_> {
    pub fn execute(&self, sources: &[Source<'_>]) -> CliResult<Finished> {
        let names: Vec<&str> = self.stores.iter().map(|s| s.name).collect();
        let two_phase = self.two_phase_everywhere()?;
        // Created by the first store that has something to keep.
        let backup_dir = self
            .safety
            .map(|safety| crate::backup::unused_backup_dir(safety.base));
        let _partial = backup_dir.as_deref().map(crate::interrupt::writing_set);
        let fail = |stages: Vec<Stage>, error: CliError| {
            abort_all(self.ctx, stages);
            if let Some(dir) = backup_dir.as_deref().filter(|d| d.exists()) {
                crate::backup::remove_set(dir);
            }
            error
        };

        // Phase 1, every store at once: open, fence, read what it holds, back up.
        let fenced = self.each_store(
            self.stores.iter().zip(sources).map(|(s, src)| (*s, *src)),
            |(store, source)| fence::take(self, store, source, backup_dir.as_deref()),
        );
        let stages = settle_phase(fenced).map_err(|(stages, e)| fail(stages, e))?;
        if let Err(e) = self.recheck(&stages) {
            return Err(fail(stages, e));
        }
        let mut record = self.record.clone();
        let taken = match self.write_manifest(&stages, backup_dir.as_deref()) {
            Ok(taken) => taken,
            Err(e) => return Err(fail(stages, e)),
        };
        if let Some(dir) = &taken {
            match crate::run_record::BackupRef::pin(dir) {
                Ok(pin) => record.safety = Some(pin),
                Err(e) => {
                    return Err(fail(
                        stages,
                        CliError::new(Exit::Database, anyhow::anyhow!("{e}")),
                    ))
                }
            }
        }
        // A long dump gives a server timeout or an administrator time to end the session
        // holding the run's lock; without it another run could interleave. (Putting a
        // committed store back after a failed commit takes no backup, and must go on.)
        // A store whose session the rebuild holds needs no asking: had that session
        // ended, its transaction would have ended with it, and the rebuild fails there.
        let confirm = if self.safety.is_some() {
            let asked: Vec<&'static Store> = shared::store::dependency_order(&self.ctx.stores())
                .into_iter()
                .filter(|s| !stages.iter().any(|st| st.lent && st.store.name == s.name))
                .collect();
            crate::lock::confirm_held(self.ctx, &asked, "nothing was changed; run it again")
        } else {
            Ok(())
        };
        if let Err(e) = confirm {
            return Err(fail(stages, e));
        }

        // Phase 2, every store at once: drop, fill, record, verify (and prepare).
        let record_json = record.to_json();
        let built = self.each_store(
            stages.into_iter().zip(sources).map(|(st, src)| (st, *src)),
            |(mut stage, source)| {
                let started = Instant::now();
                match self.build(&mut stage, source, &names, &record_json, two_phase) {
                    Ok(()) => {
                        stage.outcome.millis += started.elapsed().as_millis();
                        Ok(stage)
                    }
                    Err(f) => Err((Some(Box::new(stage)), f)),
                }
            },
        );
        let stages = settle_phase(built).map_err(|(stages, e)| fail(stages, e))?;
        let fallback = self.fallback.or(taken.as_deref());
        let outcomes = self.commit(stages, two_phase, fallback)?;
        Ok(Finished {
            outcomes,
            backup: taken,
        })
    }

    /// Runs `work` on each item on a thread of its own; results in the items' order.
    fn each_store<I: Send>(
        &self,
        items: impl Iterator<Item = I>,
        work: impl Fn(I) -> Result<Stage, Failed> + Sync,
    ) -> Vec<Result<Stage, Failed>> {
        crate::context::in_parallel(items, work)
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err((
                        None,
                        StoreFailure {
                            store: "?",
                            url: String::new(),
                            step: "rebuilding",
                            reason: "the worker thread panicked".into(),
                            locked: false,
                        },
                    ))
                })
            })
            .collect()
    }

    /// The guard, on what the fence found: the store's contents as they are now that no
    /// write can land (a reset reads them only here; a restore checked them before too,
    /// and data that arrived since refuses it unless it was forced).
    fn recheck(&self, stages: &[Stage]) -> CliResult {
        let contents: Vec<crate::guard::Contents> = stages
            .iter()
            .map(|s| crate::guard::Contents {
                store: s.store.name,
                database: s.url.database_name(),
                // Confirmed before the run opened anything.
                protected: false,
                inventory: s.inventory.clone(),
            })
            .collect();
        let permission = crate::guard::Permission {
            force: self.allowed.data,
            confirm: Vec::new(),
            drop_dependents: self.allowed.dependents,
        };
        let verb = if self.record.restore_from.is_some() {
            "restore over"
        } else {
            "reset"
        };
        crate::guard::check(&contents, &permission, verb)
    }

    /// Writes the safety backup's manifest once every store's file is in; `None` when
    /// no store was backed up.
    fn write_manifest(&self, stages: &[Stage], dir: Option<&Path>) -> CliResult<Option<PathBuf>> {
        let entries: Vec<StoreBackup> = stages.iter().filter_map(|s| s.backup.clone()).collect();
        let Some(dir) = dir.filter(|_| !entries.is_empty()) else {
            return Ok(None);
        };
        crate::backup::write_manifest(dir, &crate::backup::new_manifest(entries)).map_err(|e| {
            CliError::new(
                Exit::Database,
                anyhow::anyhow!(
                    "cannot write {}: {e}",
                    dir.join(crate::backup::MANIFEST).display()
                ),
            )
        })?;
        Ok(Some(dir.to_path_buf()))
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
            let available = match self.ctx.server_facts(store.name).two_phase {
                Some(known) => known,
                None => {
                    let mut conn = self.ctx.session(store)?;
                    admin::two_phase_available(&mut conn).unwrap_or(false)
                }
            };
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

    fn build(
        &self,
        stage: &mut Stage,
        source: Source<'_>,
        names: &[&str],
        record: &str,
        two_phase: bool,
    ) -> Result<(), StoreFailure> {
        let store = stage.store;
        let url = stage.url.clone();
        let fail =
            |step: &'static str, e: &dyn std::fmt::Display| StoreFailure::new(store, &url, step, e);
        let phases = &mut stage.outcome.phases;
        match (&mut stage.state, source) {
            (State::Open(conn), Source::Migrations) => {
                let rules =
                    timed(&mut phases.drop, || clear(conn)).map_err(|(step, e)| fail(step, &e))?;
                stage.outcome.applied = timed(&mut phases.migrate, || {
                    fill_by_migrations(self.ctx, store, conn)
                })
                .map_err(|(step, e)| fail(step, &e))?;
                if let Some(rules) = rules {
                    let report = pg_access::reapply(conn, &rules)
                        .map_err(|e| fail("re-applying grants", &e))?;
                    stage.outcome.access = Some(report);
                }
                timed(&mut phases.verify, || {
                    finish_rebuild(conn, store, &self.run, names, record)
                })
                .map_err(|(step, e)| fail(step, &e))?;
            }
            (State::Open(conn), Source::Backup { entry, .. }) => {
                // SQLite: the backup is attached to the rebuild's connection.
                timed(&mut phases.drop, || clear(conn)).map_err(|(step, e)| fail(step, &e))?;
                let progress = |done: usize, total: usize, table: &str| {
                    self.ctx.step(
                        store.name,
                        format!("restoring: table {done} of {total} ({table})"),
                    )
                };
                timed(&mut phases.migrate, || {
                    sqlite::copy_attached(conn, &progress)
                })
                .map_err(|(step, e)| fail(step, &e))?;
                timed(&mut phases.verify, || sqlite::check_counts(conn, entry))
                    .map_err(|(step, e)| fail(step, &e))?;
                admin::journal_record(conn, &self.run, names, record)
                    .map_err(|e| fail("recording the run", &e))?;
            }
            (State::Fenced(_), Source::Backup { entry, .. }) => {
                let State::Fenced(fenced) = std::mem::replace(&mut stage.state, State::Done) else {
                    unreachable!()
                };
                let started = Instant::now();
                let progress = |done: u64, total: u64| {
                    self.ctx.step(
                        store.name,
                        crate::progress::transfer("restoring", done, Some(total), started),
                    )
                };
                let job = postgres::LoadJob {
                    entry,
                    run: &self.run,
                    names,
                    record,
                    two_phase,
                    progress: &progress,
                };
                let loaded = timed(&mut phases.migrate, || postgres::load(*fenced, &job))
                    .map_err(|e| fail("restoring the dump", &e))?;
                stage.state = match loaded {
                    postgres::Loaded::Prepared(gid) => {
                        stage.outcome.two_phase = true;
                        let conn = self
                            .ctx
                            .connect(store)
                            .map_err(|e| fail("connecting to commit", &e))?;
                        State::Prepared(conn, gid)
                    }
                    postgres::Loaded::Open(txn) => State::Loaded(*txn),
                };
            }
            _ => return Err(fail("rebuilding", &"the stage and its source do not match")),
        }
        if two_phase && url.backend() == Backend::Postgres {
            if let State::Open(conn) = &mut stage.state {
                let gid = gid(&self.run, store.name);
                admin::prepare(conn, &gid).map_err(|e| fail("PREPARE TRANSACTION", &e))?;
                let State::Open(conn) = std::mem::replace(&mut stage.state, State::Done) else {
                    unreachable!()
                };
                stage.state = State::Prepared(conn, gid);
                stage.outcome.two_phase = true;
            }
        }
        if fault::armed("fail-migrate", store.name) {
            return Err(fail("migrating", &"injected fault (ORCH_FAULT)"));
        }
        Ok(())
    }
}

/// Splits a phase's results: every stage when all succeeded, or the stages to roll back
/// and the first failure (dependency order) as the run's error.
fn settle_phase(results: Vec<Result<Stage, Failed>>) -> Result<Vec<Stage>, (Vec<Stage>, CliError)> {
    let mut stages = Vec::with_capacity(results.len());
    let mut first_failure = None;
    for result in results {
        match result {
            Ok(stage) => stages.push(stage),
            Err((stage, failure)) => {
                stages.extend(stage.map(|s| *s));
                first_failure.get_or_insert(failure);
            }
        }
    }
    match first_failure {
        None => Ok(stages),
        Some(failure) => Err((stages, failure_exit(failure, "nothing was changed"))),
    }
}

pub(super) fn failure_exit(f: StoreFailure, consequence: &str) -> CliError {
    let exit = if f.locked {
        Exit::Locked
    } else {
        Exit::Database
    };
    CliError::new(exit, anyhow::anyhow!("{f}; {consequence}"))
}

type StepError = (&'static str, String);

/// A connection of its own to `store`, in a transaction that holds the write fence (no
/// write can land until it ends; SQLite: the write lock, foreign keys off): what a change
/// in place (`repair`) works in, as a rebuild does.
pub(crate) fn open_fenced(
    ctx: &crate::context::Context,
    store: &'static shared::Store,
) -> Result<Conn, String> {
    let opened = match ctx.url(store).map_err(|e| e.to_string())?.backend() {
        Backend::Postgres => postgres::fence_own(ctx, store),
        Backend::Sqlite => sqlite::fence(ctx, store, None),
    };
    opened.map_err(|(step, e)| format!("{step}: {e}"))
}

/// Drops everything in the store's schema (PostgreSQL: the schema itself, recreated with
/// its owner, grants, comment and default privileges) inside the rebuild's transaction;
/// the PostgreSQL object grants to re-apply once the objects are back.
fn clear(conn: &mut Conn) -> Result<Option<AccessRules>, StepError> {
    match conn {
        Conn::Postgres(_) => postgres::clear(conn).map(Some),
        Conn::Sqlite(_) => sqlite::clear(conn).map(|()| None),
    }
}

fn fill_by_migrations(
    ctx: &Context,
    store: &Store,
    conn: &mut Conn,
) -> Result<Vec<Applied>, StepError> {
    migrations::run_pending(conn, store, |m| {
        ctx.step(store.name, format!("applied {} ({} ms)", m.name, m.millis))
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

fn abort_all(ctx: &Context, stages: Vec<Stage>) {
    for mut stage in stages {
        let back = |conn: Conn| {
            if stage.lent {
                ctx.give_back(stage.store.name, conn);
            }
        };
        match std::mem::replace(&mut stage.state, State::Done) {
            State::Open(mut conn) => {
                if admin::rollback(&mut conn).is_ok() {
                    back(conn);
                }
            }
            State::Prepared(mut conn, gid) => {
                if admin::rollback_prepared(&mut conn, &gid).is_ok() {
                    back(conn);
                }
            }
            State::Fenced(fenced) => fenced.abort(),
            State::Loaded(txn) => txn.abort(),
            State::Done => {}
        }
    }
}
