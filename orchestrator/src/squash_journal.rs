//! Crash safety of `squash`'s swap. Moving the old migrations out and the baseline in takes
//! several renames; a crash between two of them would leave a history that is neither the
//! old one nor the new. So the swap is redo-logged: once every proof holds, the whole plan
//! of renames is written to `<migrations>/.squash-journal.json` (write, fsync, rename: that
//! rename is the commit point), then carried out, then the journal is removed. Whoever
//! reads the folder next ([`settle`]: `squash`, `migrate`, `diff` with that folder) finishes
//! a journal a crashed run left; each rename is skipped when it already happened, so
//! finishing twice is harmless. A crash before the journal exists leaves only a staging
//! folder of a dead process beside the history, which [`settle`] removes.
//!
//! Runs on one folder are serialised by an exclusive lock on `.<migrations>.squash.lock`
//! beside it (not in it: a refused squash leaves the folder exactly as it was).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const JOURNAL_FILE: &str = ".squash-journal.json";
pub const STAGING_PREFIX: &str = ".squash-staging-";

/// One rename of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub from: PathBuf,
    pub to: PathBuf,
}

/// The committed plan of a squash: the renames, then the staging folder to remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub moves: Vec<Move>,
    pub staging: PathBuf,
}

/// The exclusive lock of a migrations folder, held until dropped.
pub struct FolderLock {
    _file: File,
}

/// Locks `migrations_dir` against other squashes (waits for a running one to finish).
pub fn lock(migrations_dir: &Path) -> Result<FolderLock, String> {
    let name = migrations_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "migrations".into());
    let path = migrations_dir.with_file_name(format!(".{name}.squash.lock"));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    file.lock()
        .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
    Ok(FolderLock { _file: file })
}

/// Writes the plan durably: after this returns, the squash is decided and [`settle`] will
/// finish it whatever happens to this process.
pub fn commit(migrations_dir: &Path, plan: &Plan) -> Result<(), String> {
    let path = migrations_dir.join(JOURNAL_FILE);
    let tmp = migrations_dir.join(format!("{JOURNAL_FILE}.tmp"));
    let json = serde_json::to_vec_pretty(plan).map_err(|e| e.to_string())?;
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        sync_dir(migrations_dir)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Carries out a committed plan and removes the journal. Idempotent: a rename whose source
/// is gone and whose target exists already happened.
pub fn apply(migrations_dir: &Path, plan: &Plan) -> Result<(), String> {
    for (i, m) in plan.moves.iter().enumerate() {
        if m.from.exists() {
            if let Some(parent) = m.to.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            std::fs::rename(&m.from, &m.to).map_err(|e| {
                format!(
                    "cannot move {} to {}: {e}",
                    m.from.display(),
                    m.to.display()
                )
            })?;
        } else if !m.to.exists() {
            return Err(format!(
                "the squash journal in {} names {}, which is neither where it was nor where it \
                 was going; the folder was changed by hand: restore it from version control",
                migrations_dir.display(),
                m.from.display()
            ));
        }
        if i == 0 {
            // The fault tests die here, one rename into the swap.
            crate::fault::crash_if("crash-mid-swap", "squash");
        }
    }
    for dir in plan
        .moves
        .iter()
        .filter_map(|m| m.to.parent())
        .chain([migrations_dir])
    {
        sync_dir(dir).map_err(|e| format!("cannot sync {}: {e}", dir.display()))?;
    }
    let journal = migrations_dir.join(JOURNAL_FILE);
    std::fs::remove_file(&journal)
        .map_err(|e| format!("cannot remove {}: {e}", journal.display()))?;
    if plan.staging.exists() {
        let _ = std::fs::remove_dir_all(&plan.staging);
    }
    Ok(())
}

/// What [`settle`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// A crashed squash's committed swap was finished.
    pub finished: bool,
    /// Staging folders of dead runs removed.
    pub removed_staging: usize,
}

/// Finishes a swap a crashed squash committed, and removes staging folders that dead runs
/// left. Call with the folder locked, before reading its history.
pub fn settle(migrations_dir: &Path) -> Result<Settled, String> {
    let mut settled = Settled::default();
    let journal = migrations_dir.join(JOURNAL_FILE);
    match std::fs::read(&journal) {
        Ok(bytes) => {
            let plan: Plan = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is damaged: {e}", journal.display()))?;
            apply(migrations_dir, &plan)?;
            tracing::warn!(folder = %migrations_dir.display(), "finished a squash a crashed run had committed");
            settled.finished = true;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", journal.display())),
    }
    // Not committed: the swap never started, and the staging folder is just litter.
    let _ = std::fs::remove_file(migrations_dir.join(format!("{JOURNAL_FILE}.tmp")));
    if let Some(parent) = migrations_dir.parent() {
        if let Ok(entries) = std::fs::read_dir(parent) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(pid) = name
                    .strip_prefix(STAGING_PREFIX)
                    .and_then(|p| p.parse::<u32>().ok())
                else {
                    continue;
                };
                if pid != std::process::id()
                    && !shared::process::alive(pid)
                    && std::fs::remove_dir_all(entry.path()).is_ok()
                {
                    settled.removed_staging += 1;
                }
            }
        }
    }
    Ok(settled)
}

/// Locks the folder, settles it and releases it: for commands that only read a history.
pub fn settle_locked(migrations_dir: &Path) -> Result<Settled, String> {
    // Nothing to settle is the usual case, and needs no lock (nor a writable folder).
    if !migrations_dir.join(JOURNAL_FILE).exists() && !has_staging(migrations_dir) {
        return Ok(Settled::default());
    }
    let _lock = lock(migrations_dir)?;
    settle(migrations_dir)
}

fn has_staging(migrations_dir: &Path) -> bool {
    migrations_dir
        .parent()
        .and_then(|p| std::fs::read_dir(p).ok())
        .is_some_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(STAGING_PREFIX))
        })
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    // Makes the renames in `dir` durable (a directory can be opened and fsynced on Unix).
    match File::open(dir) {
        Ok(f) => f.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path).expect("mkdir");
        std::fs::write(path.join("up.sql"), "SELECT 1;").expect("write");
    }

    fn plan(root: &Path) -> Plan {
        let migrations = root.join("migrations");
        let staging = root.join(format!("{STAGING_PREFIX}999999999"));
        Plan {
            moves: vec![
                Move {
                    from: migrations.join("sqlite/001_a"),
                    to: root.join("migrations_archive/sqlite/001_a"),
                },
                Move {
                    from: migrations.join("sqlite/002_b"),
                    to: root.join("migrations_archive/sqlite/002_b"),
                },
                Move {
                    from: staging.join("sqlite/003_baseline"),
                    to: migrations.join("sqlite/003_baseline"),
                },
            ],
            staging,
        }
    }

    fn setup() -> (tempfile::TempDir, PathBuf, Plan) {
        let root = tempfile::tempdir().expect("tempdir");
        let plan = plan(root.path());
        for m in &plan.moves {
            touch(&m.from);
        }
        let migrations = root.path().join("migrations");
        (root, migrations, plan)
    }

    #[test]
    fn a_committed_plan_is_finished_by_the_next_reader_even_half_done() {
        let (_root, migrations, plan) = setup();
        commit(&migrations, &plan).expect("commit");
        // As if the run died after the first rename.
        std::fs::create_dir_all(plan.moves[0].to.parent().expect("parent")).expect("mkdir");
        std::fs::rename(&plan.moves[0].from, &plan.moves[0].to).expect("rename");
        let settled = settle(&migrations).expect("settle");
        assert!(settled.finished);
        for m in &plan.moves {
            assert!(!m.from.exists() && m.to.exists(), "{m:?}");
        }
        assert!(!migrations.join(JOURNAL_FILE).exists());
        assert!(!plan.staging.exists());
        // Settling again finds nothing to do.
        assert_eq!(settle(&migrations).expect("settle"), Settled::default());
    }

    #[test]
    fn without_a_journal_nothing_moves_and_a_dead_runs_staging_is_removed() {
        let (_root, migrations, plan) = setup();
        let settled = settle(&migrations).expect("settle");
        assert!(!settled.finished);
        assert_eq!(settled.removed_staging, 1);
        assert!(plan.moves[0].from.exists() && plan.moves[1].from.exists());
        assert!(!plan.moves[0].to.exists());
    }

    #[test]
    fn a_journal_naming_files_that_vanished_is_an_error_not_a_guess() {
        let (_root, migrations, plan) = setup();
        commit(&migrations, &plan).expect("commit");
        std::fs::remove_dir_all(&plan.moves[1].from).expect("rm");
        let error = settle(&migrations).expect_err("must refuse");
        assert!(error.contains("changed by hand"), "{error}");
        assert!(
            migrations.join(JOURNAL_FILE).exists(),
            "the journal stays for a person to read"
        );
    }
}
