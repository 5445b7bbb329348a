//! Ctrl-C, for what a run must not leave half-made: the scratch databases of diff, squash
//! and migrate's proofs (dropped) and backup sets still being written (removed: a set
//! without its manifest is no backup, and only fills the disk). Everything else is left
//! as a kill would leave it, which the all-or-nothing protocol and `recover` handle. The
//! handler is installed by the first thing that needs it and exits with 130, as shells
//! expect after SIGINT.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Backup set folders being written right now.
static PARTIAL_SETS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// True once Ctrl-C was pressed: the handler is cleaning up and will exit with 130; errors
/// the main thread meets meanwhile (its session to a scratch database ended) are
/// consequences, not news.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Installs the handler, once per process.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let installed = ctrlc::set_handler(|| {
            INTERRUPTED.store(true, Ordering::SeqCst);
            shared::scratch::drop_all();
            remove_partial_sets();
            std::process::exit(130);
        });
        if let Err(e) = installed {
            tracing::warn!(error = %e, "no Ctrl-C handler: an interrupted run may leave a scratch database or a partial backup set");
        }
    });
}

/// Marks `dir` as a backup set being written until the returned guard is dropped (once
/// its manifest is written, or it was removed after a failure).
pub fn writing_set(dir: &Path) -> PartialSet {
    install();
    if let Ok(mut sets) = PARTIAL_SETS.lock() {
        sets.push(dir.to_path_buf());
    }
    PartialSet(dir.to_path_buf())
}

/// See [`writing_set`].
pub struct PartialSet(PathBuf);

impl Drop for PartialSet {
    fn drop(&mut self) {
        if let Ok(mut sets) = PARTIAL_SETS.lock() {
            sets.retain(|d| *d != self.0);
        }
    }
}

fn remove_partial_sets() {
    let sets = match PARTIAL_SETS.lock() {
        Ok(sets) => sets.clone(),
        Err(_) => return,
    };
    for dir in sets {
        // A set whose manifest was written is a backup, whatever the run was doing next.
        if dir.exists() && !dir.join(crate::backup::MANIFEST).exists() {
            // A dump still starting (pg_dump is a process of its own) may create its file
            // between the listing and the folder's removal: try again, briefly.
            for _ in 0..20 {
                crate::backup::remove_set(&dir);
                if !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            eprintln!(
                "interrupted: removed the unfinished backup set {}",
                dir.display()
            );
        }
    }
}
