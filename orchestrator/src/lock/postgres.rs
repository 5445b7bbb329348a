//! The run lock on PostgreSQL: a session-level advisory lock (exclusive for a run, shared
//! for a reader) on the run's pooled session of the store, released by the server when
//! that session ends, even when the process was killed. A session a dead run of this host
//! left holding it is ended; a rebuild still finishing its last statement is waited out.

use std::time::{Duration, Instant};

use shared::store::Store;
use shared::{admin, pg_server, DatabaseUrl};

use super::{poll, query_error, Attempt, Mode};
use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};

/// Takes the store's lock in `mode` within `timeout`; `announce` hears of each wait.
pub(super) fn take(
    ctx: &Context,
    store: &'static Store,
    url: &DatabaseUrl,
    mode: Mode,
    timeout: Duration,
    mut announce: impl FnMut(&str),
) -> CliResult<()> {
    let started = Instant::now();
    // The lock lives on the run's pooled session of this store, which the later steps
    // reuse; it ends with that connection, at the latest with the process.
    let mut conn = ctx.session(store)?;
    let key = admin::lock_key(store.name);
    let mut holders = Holders::new(ctx, store);
    let first = poll(store, url, timeout, &mut announce, || {
        try_take(&mut conn, key, mode, &mut holders, store, url)
    });
    match first {
        // A run killed mid-rebuild holds the lock on its rebuild's session (the run's own:
        // see `rebuild::postgres::fence`) until the statement in flight ends; even a run
        // that does not wait gives it a few seconds (a leftover is ended meanwhile).
        Err(_) if timeout < DEAD_REBUILD_GRACE && holders.saw_dead_run() => poll(
            store,
            url,
            DEAD_REBUILD_GRACE - timeout,
            &mut announce,
            || try_take(&mut conn, key, mode, &mut holders, store, url),
        )?,
        other => other?,
    }
    if mode == Mode::Exclusive {
        // A run killed mid-change may still have a fenced session beside its own
        // finishing its last statement (a restore's psql, a repair's transaction; a
        // PREPARE TRANSACTION, say): settling before it ends would miss what it
        // leaves. Its rebuild key says so until that backend exits, which takes as
        // long as that statement; even a run that does not wait (status) gives it a
        // few seconds.
        wait_for_dead_rebuild(ctx, &mut conn, store, timeout.max(DEAD_REBUILD_GRACE))?;
        tracing::info!(
            store = store.name,
            millis = started.elapsed().as_millis() as u64,
            "lock taken"
        );
    }
    Ok(())
}

/// One try at the store's lock in `mode`; who holds it, in words, when it is taken.
fn try_take(
    conn: &mut shared::Conn,
    key: i64,
    mode: Mode,
    holders: &mut Holders<'_>,
    store: &Store,
    url: &DatabaseUrl,
) -> CliResult<Attempt<()>> {
    let got = match mode {
        Mode::Exclusive => admin::try_advisory_lock(conn, key),
        Mode::Shared => admin::try_advisory_lock_shared(conn, key),
    }
    .map_err(|e| query_error(store, url, mode.taking(), e))?;
    Ok(if got {
        Attempt::Got(())
    } else {
        Attempt::HeldBy(holders.describe(conn, key, "another run"))
    })
}

/// Whether a run holds the store's lock right now; takes nothing it does not give back.
/// A run killed mid-statement holds it until that statement ends (within a second or so:
/// see `client_connection_check_interval`): that is no run at work, and what it leaves is
/// read once it has gone, waiting at most a few seconds.
pub(super) fn busy(ctx: &Context, store: &'static Store, url: &DatabaseUrl) -> CliResult<bool> {
    let mut conn = ctx.session(store)?;
    let key = admin::lock_key(store.name);
    let checking = |e| query_error(store, url, "checking for a run", e);
    let started = Instant::now();
    loop {
        if admin::try_advisory_lock_shared(&mut conn, key).map_err(checking)? {
            admin::advisory_unlock_shared(&mut conn, key).map_err(checking)?;
            return Ok(false);
        }
        if started.elapsed() >= DEAD_REBUILD_GRACE || !held_by_dead_runs(&mut conn, key) {
            return Ok(true);
        }
        std::thread::sleep(super::POLL);
    }
}

/// Whether every session holding `key` was left by a run of this host that no longer
/// runs (false when that cannot be told).
fn held_by_dead_runs(conn: &mut shared::Conn, key: i64) -> bool {
    let shared::Conn::Postgres(pg) = conn else {
        return false;
    };
    let Ok(holders) = pg_server::lock_holders(pg, key) else {
        return false;
    };
    !holders.is_empty() && holders.iter().all(|h| h.left_by_dead_run().is_some())
}

/// The session that took the run's lock still exists and still holds it; `what` says
/// what can no longer be vouched for when it does not.
pub(super) fn confirm_held(
    ctx: &Context,
    store: &'static Store,
    url: &DatabaseUrl,
    what: &str,
) -> CliResult<()> {
    let mut conn = ctx.session(store)?;
    let shared::Conn::Postgres(pg) = &mut *conn else {
        return Ok(());
    };
    let held = pg_server::holds_lock(pg, admin::lock_key(store.name));
    let reason = match held {
        Ok(true) => return Ok(()),
        Ok(false) => "it no longer holds the lock".to_string(),
        Err(e) => shared::db::one_line(&e.to_string()),
    };
    // Whatever that session was, it is no use to the rest of the run.
    conn.detach();
    ctx.evict(store.name);
    Err(CliError::new(
        Exit::Database,
        anyhow::anyhow!(
            "the {} database at {}: the session holding this run's lock was lost ({reason}), \
             so another run may have worked meanwhile; {what}",
            store.name,
            url.redacted()
        ),
    ))
}

/// Who holds a PostgreSQL lock, in words. A session left holding it by a run of this host
/// whose process is gone (its application name says which process: see
/// `shared::session`) is ended on the way, so the next attempt can take the lock; when
/// this role may not end it, the run waits it out within its bound and says why.
struct Holders<'a> {
    ctx: &'a Context,
    store: &'a Store,
    /// Server processes this run has ended already (each is reported once).
    ended: Vec<i64>,
    /// When each holder was first seen to belong to a dead run.
    seen_dead: Vec<(i64, Instant)>,
}

/// How long a dead run's session may go on holding a lock before it is ended. A run that
/// just exited normally leaves its server process a moment to notice and release its
/// locks; and with `client_connection_check_interval` a backend whose client died ends
/// itself within a second. Only a session that outlives both is a leftover.
const DEAD_HOLDER_GRACE: Duration = Duration::from_secs(2);

impl<'a> Holders<'a> {
    fn new(ctx: &'a Context, store: &'a Store) -> Self {
        Holders {
            ctx,
            store,
            ended: Vec::new(),
            seen_dead: Vec::new(),
        }
    }

    /// Whether a holder seen so far was left by a run of this host that no longer runs.
    fn saw_dead_run(&self) -> bool {
        !self.seen_dead.is_empty() || !self.ended.is_empty()
    }

    /// Who holds `key` on this database (`otherwise` when it cannot be told).
    fn describe(&mut self, conn: &mut shared::Conn, key: i64, otherwise: &str) -> String {
        let shared::Conn::Postgres(pg) = conn else {
            return otherwise.into();
        };
        let Ok(holders) = pg_server::lock_holders(pg, key) else {
            return otherwise.into();
        };
        let mut words = Vec::new();
        for holder in holders {
            let Some(run) = holder.left_by_dead_run() else {
                words.push(holder.describe());
                continue;
            };
            let left = format!(
                "{}, left by orchestrator process {run} of this host, which no longer runs",
                holder.describe()
            );
            if self.ended.contains(&holder.pid) {
                words.push(format!("{left} (ending)"));
                continue;
            }
            let since = match self.seen_dead.iter().find(|(pid, _)| *pid == holder.pid) {
                Some((_, since)) => *since,
                None => {
                    self.seen_dead.push((holder.pid, Instant::now()));
                    Instant::now()
                }
            };
            if since.elapsed() < DEAD_HOLDER_GRACE {
                words.push(left);
                continue;
            }
            match pg_server::terminate_backend(pg, holder.pid) {
                Ok(_) => {
                    self.ended.push(holder.pid);
                    tracing::info!(
                        store = self.store.name,
                        pid = holder.pid,
                        run,
                        "ended a dead run's session"
                    );
                    if !self.ctx.quiet {
                        eprintln!(
                            "{}: ended {left}; it held this database's run lock",
                            self.store.name
                        );
                    }
                    words.push(format!("{left} (ended)"));
                }
                Err(e) => words.push(format!(
                    "{left} (this role may not end it: {}; waiting for it to go)",
                    shared::db::one_line(&e.to_string())
                )),
            }
        }
        if words.is_empty() {
            otherwise.into()
        } else {
            words.join("; ")
        }
    }
}

/// How long even a run that does not wait for locks waits for a dead run's last statement.
const DEAD_REBUILD_GRACE: Duration = Duration::from_secs(5);

/// With the store's lock held: waits until no session holds the store's rebuild key (see
/// `admin::rebuild_lock_key`). On timeout the store's lock is released again.
fn wait_for_dead_rebuild(
    ctx: &Context,
    conn: &mut shared::Conn,
    store: &Store,
    timeout: Duration,
) -> CliResult<()> {
    let url = ctx.url(store)?;
    let key = admin::rebuild_lock_key(store.name);
    let checking = |e| query_error(store, url, "checking for an interrupted run", e);
    let mut holders = Holders::new(ctx, store);
    let waited = poll(
        store,
        url,
        timeout,
        |_| {},
        || {
            if admin::try_advisory_lock(conn, key).map_err(checking)? {
                admin::advisory_unlock(conn, key).map_err(checking)?;
                Ok(Attempt::Got(()))
            } else {
                let holder = holders.describe(conn, key, "a session");
                Ok(Attempt::HeldBy(format!(
                    "the last statement of an interrupted run ({holder})"
                )))
            }
        },
    );
    if waited.is_err() {
        let _ = admin::advisory_unlock(conn, admin::lock_key(store.name));
    }
    waited
}
