//! The commit of a rebuild: stores in dependency order, the first store's journal row
//! deciding the rest; and what happens when a later store's commit fails.

use std::path::Path;

use shared::store::Store;
use shared::{admin, Backend, Conn};

use super::{
    abort_all, failure_exit, gid, new_run_id, timed, Allowed, Rebuild, Source, Stage, State,
    StoreFailure, StoreOutcome,
};
use crate::exit::{CliError, CliResult};
use crate::fault;
use crate::run_record::RunRecord;

impl Rebuild<'_> {
    pub(super) fn commit(
        &self,
        mut stages: Vec<Stage>,
        two_phase: bool,
        fallback: Option<&Path>,
    ) -> CliResult<Vec<StoreOutcome>> {
        let mut committed: Vec<&'static Store> = Vec::new();
        let mut outcomes = Vec::new();
        let mut to_close: Vec<Conn> = Vec::new();
        // Stores whose lent session went back to the pool, still holding the rebuild key.
        let mut given_back: Vec<&'static Store> = Vec::new();
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
                let lent = stage.lent;
                // A commit whose answer was lost (the connection broke, psql died) may
                // still have happened: the store's journal row tells.
                result
                    .map(|conn| match conn {
                        // The run's session, with the run lock: the journal is cleared on it.
                        Some(conn) if lent => {
                            self.ctx.give_back(store.name, conn);
                            given_back.push(store);
                        }
                        other => to_close.extend(other),
                    })
                    .or_else(|e| if self.landed(store) { Ok(()) } else { Err(e) })
            };
            match result {
                Ok(()) => {
                    stage.outcome.committed = true;
                    committed.push(store);
                    fault::crash_if("crash-after-commit", store.name);
                    outcomes.push(stage.outcome);
                }
                Err(reason) => {
                    let failure = StoreFailure::new(store, &stage.url, "committing", reason);
                    let rest: Vec<Stage> = remaining.collect();
                    if committed.is_empty() {
                        abort_all(self.ctx, std::iter::once(stage).chain(rest).collect());
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
                    abort_all(self.ctx, std::iter::once(stage).chain(rest).collect());
                    // The committed stores' sessions still hold their rebuild keys,
                    // which the undo's own fence takes: they end first, or (the run's
                    // sessions, which keep the run lock) let go of them.
                    crate::context::close_all(std::mem::take(&mut to_close));
                    self.release_rebuild_keys(&given_back);
                    return Err(self.undo_committed(&committed, failure, fallback));
                }
            }
        }
        crate::context::close_all(to_close);
        self.clear_journals();
        Ok(outcomes)
    }

    /// Lets go of the rebuild key that `stores`' pooled sessions took for the rebuild.
    fn release_rebuild_keys(&self, stores: &[&'static Store]) {
        for store in stores {
            if let Ok(mut session) = self.ctx.session(store) {
                let _ = admin::advisory_unlock(&mut session, admin::rebuild_lock_key(store.name));
            }
        }
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
    fn undo_committed(
        &self,
        committed: &[&'static Store],
        failure: StoreFailure,
        fallback: Option<&Path>,
    ) -> CliError {
        let names: Vec<&str> = committed.iter().map(|s| s.name).collect();
        let changed = names.join(" and ");
        let op = self.record.operation();
        let Some(dir) = fallback else {
            return failure_exit(
                failure,
                &format!(
                    "{changed} already committed the {op} and there is no safety backup to undo it \
                     (nothing was held, or --no-backup); `orchestrator recover` completes the {op}"
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
            safety: None,
            allowed: Allowed::ALL,
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

/// Commits the stage; the connection that committed comes back to be closed once every
/// store has committed (closing one costs a round of its own: the next store's commit
/// should not wait for it).
fn commit_stage(stage: &mut Stage) -> Result<Option<Conn>, String> {
    match std::mem::replace(&mut stage.state, State::Done) {
        State::Open(mut conn) => admin::commit(&mut conn)
            .map(|()| Some(conn))
            .map_err(|e| e.to_string()),
        State::Prepared(mut conn, gid) => admin::commit_prepared(&mut conn, &gid)
            .map(|()| Some(conn))
            .map_err(|e| e.to_string()),
        State::Loaded(txn) => txn.commit().map(|()| None),
        State::Fenced(fenced) => {
            fenced.abort();
            Err("the restore was never loaded".into())
        }
        State::Done => Ok(None),
    }
}
