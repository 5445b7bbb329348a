//! The SQLite side of a rebuild: the new database is built complete in a file beside the
//! live one and swapped in by one atomic rename at the commit.

use std::path::{Path, PathBuf};

use shared::store::Store;
use shared::{admin, Conn, DatabaseUrl};

use super::{timed, Source, StepError, StoreOutcome};
use crate::backup::StoreBackup;
use crate::context::Context;

/// Where a SQLite store's replacement is built before the swap.
pub fn staged_path(live: &Path, run: &str) -> PathBuf {
    let mut name = live.as_os_str().to_owned();
    name.push(format!(".rebuild-{run}"));
    PathBuf::from(name)
}

/// What the rebuild of one SQLite store needs besides the store.
pub(super) struct Build<'a> {
    pub staged: &'a Path,
    pub source: Source<'a>,
    pub run: &'a str,
    pub names: &'a [&'a str],
    pub record: &'a str,
}

/// Builds the store's new database in `job.staged`, records the run in it and syncs it.
pub(super) fn build(
    ctx: &Context,
    store: &Store,
    job: &Build<'_>,
    outcome: &mut StoreOutcome,
) -> Result<(), StepError> {
    let io = |step: &'static str| move |e: std::io::Error| (step, e.to_string());
    let staged = job.staged;
    if staged.exists() {
        std::fs::remove_file(staged).map_err(io("removing an old staging file"))?;
    }
    if let Source::Backup { dir, entry } = job.source {
        std::fs::copy(dir.join(&entry.file), staged).map_err(io("copying the backup"))?;
    }
    let url =
        DatabaseUrl::parse(&staged.to_string_lossy()).map_err(|e| ("staging", e.to_string()))?;
    let mut conn = Conn::establish(store.name, &url)
        .map_err(|e| ("opening the staging file", e.to_string()))?;
    match job.source {
        Source::Migrations => {
            outcome.applied = timed(&mut outcome.phases.migrate, || {
                super::fill_by_migrations(ctx, store, &mut conn)
            })?;
            timed(&mut outcome.phases.verify, || {
                super::finish_rebuild(&mut conn, store, job.run, job.names, job.record)
            })?;
        }
        Source::Backup { entry, .. } => {
            admin::sqlite_quick_check(&mut conn).map_err(|e| ("checking the backup", e))?;
            check_counts(&mut conn, entry)?;
            admin::journal_record(&mut conn, job.run, job.names, job.record)
                .map_err(|e| ("recording the run", e.to_string()))?;
        }
    }
    drop(conn);
    std::fs::File::open(staged)
        .and_then(|f| f.sync_all())
        .map_err(io("syncing the staging file"))?;
    Ok(())
}

fn check_counts(conn: &mut Conn, entry: &StoreBackup) -> Result<(), StepError> {
    let tables: Vec<String> = entry.row_counts.keys().cloned().collect();
    let counts =
        shared::catalog::row_counts(conn, &tables).map_err(|e| ("counting rows", e.to_string()))?;
    for (table, n) in counts {
        let want = entry.row_counts.get(&table).copied().unwrap_or(0);
        if n != want {
            return Err((
                "checking row counts",
                format!("{table} holds {n} rows, the manifest says {want}"),
            ));
        }
    }
    Ok(())
}

/// Replaces the live SQLite file by the staged one in one atomic rename.
pub(crate) fn swap_in(staged: &Path, live: &Path) -> Result<(), String> {
    std::fs::rename(staged, live)
        .map_err(|e| format!("renaming {} to {}: {e}", staged.display(), live.display()))?;
    if let Some(dir) = live.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The rename is durable once the folder is synced.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}
