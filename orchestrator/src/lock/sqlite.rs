//! The run lock on SQLite: a `flock` (exclusive for a run, shared for a reader) on
//! `<file>.lock` beside the database, named after the file it really is. The operating
//! system releases it when the process dies, even by SIGKILL.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use shared::store::Store;
use shared::DatabaseUrl;

use super::{io_error, poll, Attempt, Mode};
use crate::exit::CliResult;

/// Takes a run's lock of the store at `path` within `timeout`; `announce` hears of each
/// wait. The file held is the lock.
pub(super) fn take_exclusive(
    store: &Store,
    url: &DatabaseUrl,
    path: &Path,
    timeout: Duration,
    announce: impl FnMut(&str),
) -> CliResult<File> {
    let file = open_lock_file(store, path)?;
    hold(store, url, path, file, Mode::Exclusive, timeout, announce)
}

/// Takes a reader's lock of the store at `path` within `timeout`; `None` in a folder the
/// reader may not write to where there is no lock file to take (see [`open_for_reading`]).
pub(super) fn take_shared(
    store: &Store,
    url: &DatabaseUrl,
    path: &Path,
    timeout: Duration,
) -> CliResult<Option<File>> {
    match open_for_reading(store, path)? {
        Some(file) => hold(store, url, path, file, Mode::Shared, timeout, |_| {}).map(Some),
        None => Ok(None),
    }
}

/// Waits until `file`'s lock is taken in `mode`, or `timeout` has passed (exit 5).
fn hold(
    store: &Store,
    url: &DatabaseUrl,
    path: &Path,
    mut file: File,
    mode: Mode,
    timeout: Duration,
    announce: impl FnMut(&str),
) -> CliResult<File> {
    let lock_path = lock_path(path);
    poll(store, url, timeout, announce, || {
        let tried = match mode {
            Mode::Exclusive => file.try_lock(),
            Mode::Shared => file.try_lock_shared(),
        };
        match tried {
            Ok(()) => Ok(Attempt::Got(())),
            Err(std::fs::TryLockError::WouldBlock) => Ok(Attempt::HeldBy(holder(&mut file))),
            Err(std::fs::TryLockError::Error(e)) => Err(io_error(store, &lock_path, e)),
        }
    })?;
    if mode == Mode::Exclusive {
        // Who holds it, for the message a waiting run prints.
        let note = format!("orchestrator process {}", std::process::id());
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(note.as_bytes()));
    }
    Ok(file)
}

/// Whether a run holds the lock of the store at `path` right now. The shared lock a
/// free file gives is released with the file at once.
pub(super) fn busy(store: &Store, path: &Path) -> CliResult<bool> {
    let Some(file) = open_for_reading(store, path)? else {
        return Ok(false);
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(io_error(store, &lock_path(path), e)),
    }
}

/// The note the holder of a SQLite lock file wrote into it.
fn holder(file: &mut File) -> String {
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
fn open_lock_file(store: &Store, db: &Path) -> CliResult<File> {
    let lock_path = lock_path(db);
    create_lock_file(&lock_path).map_err(|e| io_error(store, &lock_path, e))
}

fn create_lock_file(lock_path: &Path) -> std::io::Result<File> {
    if let Some(parent) = lock_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path)
}

/// The lock file as a reader opens it. Reading needs no write access to the folder: where
/// the lock file cannot be created or opened for writing, an existing one is opened
/// read-only (a shared `flock` needs no more), and when there is none, there is nothing
/// to wait for: every run creates it before it changes anything, and a run needs the
/// write access to this folder that this reader lacks.
fn open_for_reading(store: &Store, db: &Path) -> CliResult<Option<File>> {
    let lock_path = lock_path(db);
    match create_lock_file(&lock_path) {
        Ok(file) => Ok(Some(file)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            match File::open(&lock_path) {
                Ok(file) => Ok(Some(file)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_error(store, &lock_path, e)),
            }
        }
        Err(e) => Err(io_error(store, &lock_path, e)),
    }
}

/// The lock file beside a SQLite database, named after the file it really is: a store
/// reached through a symlink (or `./x` and `x`) takes the same lock as through its own
/// name, so two runs through two spellings of one file still exclude each other.
pub fn lock_path(db: &Path) -> PathBuf {
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
