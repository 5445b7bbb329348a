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

/// Takes the lock of the store at `path` in `mode` within `timeout`; `announce` hears of
/// each wait. The file held is the lock.
pub(super) fn take(
    store: &Store,
    url: &DatabaseUrl,
    path: &Path,
    mode: Mode,
    timeout: Duration,
    announce: impl FnMut(&str),
) -> CliResult<File> {
    let mut file = open_lock_file(store, path)?;
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
    let file = open_lock_file(store, path)?;
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
