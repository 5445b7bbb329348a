//! One run at a time per database. PostgreSQL: a session-level advisory lock on a
//! connection of its own. SQLite: an exclusive `flock` on `<file>.lock`. Both are released
//! by the operating system or the server when the process dies, even by SIGKILL, so a
//! crashed run never leaves a lock behind.
//!
//! Readers take the same locks shared ([`read_all`]): `verify` on both backends, so that
//! it never judges the moment between one store's commit and the other's; and every
//! reader of a SQLite store, because a reset swaps the file by rename, and a connection
//! still open on the replaced file would take the new file's journal for its own.

mod postgres;
mod sqlite;

use std::fs::File;
use std::time::{Duration, Instant};

use shared::store::Store;
use shared::DbError;

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};

pub use sqlite::lock_path;

/// A run's lock keeps others out; a reader's lets other readers in and keeps runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Exclusive,
    Shared,
}

impl Mode {
    fn taking(self) -> &'static str {
        match self {
            Mode::Exclusive => "taking the lock",
            Mode::Shared => "taking the read lock",
        }
    }
}

/// A lock held until dropped.
pub enum StoreLock {
    /// Held by the run's pooled session of the store.
    Postgres,
    Sqlite(#[allow(dead_code, reason = "held for its flock")] File),
}

const POLL: Duration = Duration::from_millis(100);

/// Takes the lock of every store, in dependency order (so two runs cannot deadlock),
/// waiting up to the configured `lock_timeout_secs` for each.
pub fn acquire_all(ctx: &Context, stores: &[&'static Store]) -> CliResult<Vec<StoreLock>> {
    let mut held = Vec::with_capacity(stores.len());
    for store in stores {
        held.push(acquire(ctx, store)?);
    }
    Ok(held)
}

/// Takes every lock only if none is held by another run right now; `None` otherwise. For
/// read-only commands, which settle a crashed run's leftovers when nobody else is busy.
pub fn try_acquire_all(
    ctx: &Context,
    stores: &[&'static Store],
) -> CliResult<Option<Vec<StoreLock>>> {
    let mut held = Vec::with_capacity(stores.len());
    for store in stores {
        match acquire_within(ctx, store, Duration::ZERO) {
            Ok(lock) => held.push(lock),
            Err(e) if e.exit == Exit::Locked => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(held))
}

fn acquire(ctx: &Context, store: &'static Store) -> CliResult<StoreLock> {
    acquire_within(ctx, store, ctx.settings.lock_timeout)
}

fn acquire_within(ctx: &Context, store: &'static Store, timeout: Duration) -> CliResult<StoreLock> {
    let url = ctx.url(store)?;
    let announce = |holder: &str| {
        ctx.step(
            store.name,
            format!("waiting up to {}s for {holder}", timeout.as_secs()),
        );
    };
    match url.sqlite_path() {
        None => postgres::take(ctx, store, url, Mode::Exclusive, timeout, announce)
            .map(|()| StoreLock::Postgres),
        Some(path) => {
            sqlite::take_exclusive(store, url, path, timeout, announce).map(StoreLock::Sqlite)
        }
    }
}

/// One try at a lock: taken, or held by someone (in words).
enum Attempt<T> {
    Got(T),
    HeldBy(String),
}

/// Tries `attempt` every `POLL` until it gets the lock or `timeout` has passed (exit 5,
/// naming the holder); `announce` hears of each wait.
fn poll<T>(
    store: &Store,
    url: &shared::DatabaseUrl,
    timeout: Duration,
    mut announce: impl FnMut(&str),
    mut attempt: impl FnMut() -> CliResult<Attempt<T>>,
) -> CliResult<T> {
    let started = Instant::now();
    loop {
        match attempt()? {
            Attempt::Got(got) => return Ok(got),
            Attempt::HeldBy(holder) => {
                announce(&holder);
                if started.elapsed() >= timeout {
                    return Err(locked(store, url.redacted(), &holder, timeout));
                }
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Before a run vouches for its result: the session of each PostgreSQL store that took
/// the run's lock still exists and still holds that lock (a SQLite lock is the process's
/// own file and cannot be lost). A session ended under the run (a server timeout, an
/// administrator, a restart) took the lock with it, so another run may have worked
/// meanwhile; `what` says what can no longer be vouched for.
pub fn confirm_held(ctx: &Context, stores: &[&'static Store], what: &str) -> CliResult<()> {
    for store in stores {
        let url = ctx.url(store)?;
        if url.sqlite_path().is_none() {
            postgres::confirm_held(ctx, store, url, what)?;
        }
    }
    Ok(())
}

/// A reader's shared lock, held until dropped.
pub enum ReadLock {
    /// Held by the run's pooled session of the store.
    Postgres,
    Sqlite(#[allow(dead_code, reason = "held for its flock")] File),
}

/// Takes a shared lock on every store in dependency order, waiting up to
/// `lock_timeout_secs` for a run holding one. `postgres` says whether PostgreSQL stores
/// are locked too (SQLite stores always are). A SQLite store whose file does not exist
/// yet is not locked (nor created).
pub fn read_all(
    ctx: &Context,
    stores: &[&'static Store],
    postgres: bool,
) -> CliResult<Vec<ReadLock>> {
    let mut held = Vec::new();
    if postgres {
        // Connect to every store at once (the sessions wait in the pool for the command);
        // the locks themselves are taken one by one, in dependency order, as runs do.
        let servers: Vec<&'static Store> = stores
            .iter()
            .copied()
            .filter(|s| ctx.url(s).is_ok_and(|u| u.sqlite_path().is_none()))
            .collect();
        crate::context::all_at_once(&servers, "connect", |store| {
            ctx.session(store).map(drop).map_err(CliError::from)
        })?;
    }
    let timeout = ctx.settings.lock_timeout;
    for store in shared::store::dependency_order(stores) {
        let url = ctx.url(store)?;
        match url.sqlite_path() {
            None if !postgres => {}
            None => {
                postgres::take(ctx, store, url, Mode::Shared, timeout, |_| {})?;
                held.push(ReadLock::Postgres);
            }
            Some(path) if !path.exists() => {}
            Some(path) => {
                if let Some(file) = sqlite::take_shared(store, url, path, timeout)? {
                    held.push(ReadLock::Sqlite(file));
                }
            }
        }
    }
    Ok(held)
}

/// Whether a run holds some store's lock right now (readers ask before they report what
/// an interrupted run left: a run at work has the same things in flight). Takes nothing
/// it does not give back at once, and creates no SQLite file.
pub fn run_in_progress(ctx: &Context) -> CliResult<bool> {
    for store in ctx.stores() {
        let url = ctx.url(store)?;
        let busy = match url.sqlite_path() {
            None => postgres::busy(ctx, store, url)?,
            Some(path) if !path.exists() => false,
            Some(path) => sqlite::busy(store, path)?,
        };
        if busy {
            return Ok(true);
        }
    }
    Ok(false)
}

fn locked(store: &Store, url: &str, holder: &str, waited: Duration) -> CliError {
    CliError::new(
        Exit::Locked,
        anyhow::anyhow!(
            "the {} database at {url} is locked by {holder}; gave up after {}s (lock_timeout_secs). \
             Wait for that run to finish, then try again",
            store.name,
            waited.as_secs()
        ),
    )
}

fn query_error(
    store: &Store,
    url: &shared::DatabaseUrl,
    action: &str,
    e: diesel::result::Error,
) -> CliError {
    DbError::Query {
        store: store.name.into(),
        url: url.redacted().into(),
        action: action.into(),
        reason: e.to_string(),
    }
    .into()
}

fn io_error(store: &Store, path: &std::path::Path, e: std::io::Error) -> CliError {
    CliError::new(
        Exit::Database,
        anyhow::anyhow!(
            "{}: cannot use the lock file {}: {e}",
            store.name,
            path.display()
        ),
    )
}
