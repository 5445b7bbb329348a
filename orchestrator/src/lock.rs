//! One run at a time per database. PostgreSQL: a session-level advisory lock on a
//! connection of its own. SQLite: an exclusive `flock` on `<file>.lock`. Both are released
//! by the operating system or the server when the process dies, even by SIGKILL, so a
//! crashed run never leaves a lock behind.
//!
//! Readers take the same locks shared ([`read_all`]): `verify` on both backends, so that
//! it never judges the moment between one store's commit and the other's; and every
//! reader of a SQLite store, because a reset swaps the file by rename, and a connection
//! still open on the replaced file would take the new file's journal for its own.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use shared::store::Store;
use shared::DbError;
use shared::{admin, pg_server};

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};

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
    let started = Instant::now();
    let mut announced = false;
    let announce = |holder: &str| {
        if !announced {
            ctx.progress(format!(
                "{}: waiting up to {}s for {holder}",
                store.name,
                timeout.as_secs()
            ));
            announced = true;
        }
    };
    match url.sqlite_path() {
        None => {
            // The lock lives on the run's pooled session of this store, which the later
            // steps reuse; it ends with that connection, at the latest with the process.
            let mut conn = ctx.session(store)?;
            let key = admin::lock_key(store.name);
            let mut holders = Holders::new(ctx, store);
            poll(store, url, timeout, announce, || {
                if admin::try_advisory_lock(&mut conn, key)
                    .map_err(|e| query_error(store, url, "taking the lock", e))?
                {
                    Ok(Attempt::Got(()))
                } else {
                    Ok(Attempt::HeldBy(holders.describe(
                        &mut conn,
                        key,
                        "another run",
                    )))
                }
            })?;
            // A run killed mid-rebuild may still have a backend finishing its last
            // statement (a PREPARE TRANSACTION, say): settling before it ends would miss
            // what it leaves. Its rebuild key says so until that backend exits, which
            // takes as long as that statement; even a run that does not wait (status)
            // gives it a few seconds.
            wait_for_dead_rebuild(ctx, &mut conn, store, timeout.max(DEAD_REBUILD_GRACE))?;
            tracing::info!(
                store = store.name,
                millis = started.elapsed().as_millis() as u64,
                "lock taken"
            );
            Ok(StoreLock::Postgres)
        }
        Some(path) => {
            let mut file = open_lock_file(store, path)?;
            let lock_path = lock_path(path);
            poll(store, url, timeout, announce, || match file.try_lock() {
                Ok(()) => Ok(Attempt::Got(())),
                Err(std::fs::TryLockError::WouldBlock) => {
                    Ok(Attempt::HeldBy(sqlite_holder(&mut file)))
                }
                Err(std::fs::TryLockError::Error(e)) => Err(io_error(store, &lock_path, e)),
            })?;
            // Who holds it, for the message a waiting run prints.
            let note = format!("orchestrator process {}", std::process::id());
            let _ = file
                .set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(note.as_bytes()));
            Ok(StoreLock::Sqlite(file))
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
            let dead_run = holder
                .application_name
                .as_deref()
                .and_then(shared::session::local_run_pid)
                .filter(|pid| !shared::process::alive(*pid));
            let Some(run) = dead_run else {
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

/// Before a run vouches for its result: the session of each PostgreSQL store that took
/// the run's lock still exists and still holds that lock. A session ended under the run
/// (a server timeout, an administrator, a restart) took the lock with it, so another run
/// may have worked meanwhile; `what` says what can no longer be vouched for.
pub fn confirm_held(ctx: &Context, stores: &[&'static Store], what: &str) -> CliResult<()> {
    for store in stores {
        let url = ctx.url(store)?;
        if url.sqlite_path().is_some() {
            continue;
        }
        let mut conn = ctx.session(store)?;
        let held = match &mut *conn {
            shared::Conn::Postgres(pg) => pg_server::holds_lock(pg, admin::lock_key(store.name)),
            shared::Conn::Sqlite(_) => Ok(true),
        };
        let reason = match held {
            Ok(true) => continue,
            Ok(false) => "it no longer holds the lock".to_string(),
            Err(e) => shared::db::one_line(&e.to_string()),
        };
        // Whatever that session was, it is no use to the rest of the run.
        conn.detach();
        ctx.evict(store.name);
        return Err(CliError::new(
            Exit::Database,
            anyhow::anyhow!(
                "the {} database at {}: the session holding this run's lock was lost ({reason}), \
                 so another run may have worked meanwhile; {what}",
                store.name,
                url.redacted()
            ),
        ));
    }
    Ok(())
}

/// The note the holder of a SQLite lock file wrote into it.
fn sqlite_holder(file: &mut File) -> String {
    let mut holder = String::new();
    let _ = file
        .rewind()
        .and_then(|()| file.read_to_string(&mut holder));
    if holder.trim().is_empty() {
        "another run".to_string()
    } else {
        holder.trim().to_string()
    }
}

/// Opens (creating it and its folder when needed) the lock file of a SQLite database.
fn open_lock_file(store: &Store, db: &std::path::Path) -> CliResult<File> {
    let lock_path = lock_path(db);
    if let Some(parent) = lock_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io_error(store, &lock_path, e))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| io_error(store, &lock_path, e))
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
                let mut conn = ctx.session(store)?;
                let key = admin::lock_key(store.name);
                let mut holders = Holders::new(ctx, store);
                poll(
                    store,
                    url,
                    timeout,
                    |_| {},
                    || {
                        if admin::try_advisory_lock_shared(&mut conn, key)
                            .map_err(|e| query_error(store, url, "taking the read lock", e))?
                        {
                            Ok(Attempt::Got(()))
                        } else {
                            Ok(Attempt::HeldBy(holders.describe(
                                &mut conn,
                                key,
                                "another run",
                            )))
                        }
                    },
                )?;
                held.push(ReadLock::Postgres);
            }
            Some(path) if !path.exists() => {}
            Some(path) => {
                let mut file = open_lock_file(store, path)?;
                let lock_path = lock_path(path);
                poll(
                    store,
                    url,
                    timeout,
                    |_| {},
                    || match file.try_lock_shared() {
                        Ok(()) => Ok(Attempt::Got(())),
                        Err(std::fs::TryLockError::WouldBlock) => {
                            Ok(Attempt::HeldBy(sqlite_holder(&mut file)))
                        }
                        Err(std::fs::TryLockError::Error(e)) => Err(io_error(store, &lock_path, e)),
                    },
                )?;
                held.push(ReadLock::Sqlite(file));
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
        match url.sqlite_path() {
            None => {
                let mut conn = ctx.session(store)?;
                let key = admin::lock_key(store.name);
                let free = admin::try_advisory_lock_shared(&mut conn, key)
                    .map_err(|e| query_error(store, url, "checking for a run", e))?;
                if !free {
                    return Ok(true);
                }
                admin::advisory_unlock_shared(&mut conn, key)
                    .map_err(|e| query_error(store, url, "checking for a run", e))?;
            }
            Some(path) if !path.exists() => {}
            Some(path) => {
                let file = open_lock_file(store, path)?;
                match file.try_lock_shared() {
                    Ok(()) => {}
                    Err(std::fs::TryLockError::WouldBlock) => return Ok(true),
                    Err(std::fs::TryLockError::Error(e)) => {
                        return Err(io_error(store, &lock_path(path), e))
                    }
                }
            }
        }
    }
    Ok(false)
}

/// The lock file beside a SQLite database, named after the file it really is: a store
/// reached through a symlink (or `./x` and `x`) takes the same lock as through its own
/// name, so two runs through two spellings of one file still exclude each other.
pub fn lock_path(db: &std::path::Path) -> PathBuf {
    let real = std::fs::canonicalize(db).unwrap_or_else(|_| {
        // Not created yet: the folder it will be in, resolved, and its name.
        match (db.parent(), db.file_name()) {
            (Some(dir), Some(name)) => std::fs::canonicalize(if dir.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                dir
            })
            .map(|d| d.join(name))
            .unwrap_or_else(|_| db.to_path_buf()),
            _ => db.to_path_buf(),
        }
    });
    let mut name = real.into_os_string();
    name.push(".lock");
    PathBuf::from(name)
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
