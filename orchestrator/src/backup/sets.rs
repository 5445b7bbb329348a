//! The backup sets in a folder, as `backups list` shows them and `backups prune` weighs
//! them: which are complete (a manifest that reads, every file it names present at its
//! size), how big, of which stores; and which a prune keeps.
//!
//! Only folders named as this tool names its sets (`20261203T081500.123Z`, with `-N` when
//! two start in one millisecond) count: anything else in the folder is never touched.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{Manifest, MANIFEST};

/// One backup set.
#[derive(Debug, Clone, Serialize)]
pub struct SetInfo {
    pub name: String,
    pub path: PathBuf,
    pub complete: bool,
    /// Why it is not complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The manifest's `created_at` (complete sets).
    pub created_at: Option<String>,
    /// The stores it holds, with each one's database and redacted URL.
    pub stores: Vec<SetStore>,
    /// Bytes of every file in the folder.
    pub bytes: u64,
    #[serde(skip)]
    pub modified: Option<SystemTime>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SetStore {
    pub store: String,
    pub database: String,
    pub url: String,
}

/// Whether `name` is a set folder's name: `YYYYMMDDTHHMMSS.mmmZ`, maybe `-N` after it.
pub fn is_set_name(name: &str) -> bool {
    let stamp = name.split_once('-').map_or(name, |(stamp, n)| {
        if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() {
            stamp
        } else {
            ""
        }
    });
    let b = stamp.as_bytes();
    b.len() == 20
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'.'
        && b[16..19].iter().all(u8::is_ascii_digit)
        && b[19] == b'Z'
}

/// The sets under `base`, oldest first (their names sort by time). No folder: none.
pub fn list(base: &Path) -> std::io::Result<Vec<SetInfo>> {
    let entries = match std::fs::read_dir(base) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut sets = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() && is_set_name(&name) {
            sets.push(read_set(&entry.path(), name));
        }
    }
    sets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(sets)
}

fn read_set(dir: &Path, name: String) -> SetInfo {
    let files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file()
                .then(|| (e.file_name().to_string_lossy().into_owned(), meta.len()))
        })
        .collect();
    let mut set = SetInfo {
        name,
        path: dir.to_path_buf(),
        complete: false,
        problem: None,
        created_at: None,
        stores: Vec::new(),
        bytes: files.iter().map(|(_, n)| n).sum(),
        modified: std::fs::metadata(dir).and_then(|m| m.modified()).ok(),
    };
    let manifest = match std::fs::read_to_string(dir.join(MANIFEST)) {
        Ok(text) => text,
        Err(_) => {
            set.problem = Some(format!(
                "no {MANIFEST}: a backup that did not finish (interrupted or failed)"
            ));
            return set;
        }
    };
    let manifest: Manifest = match serde_json::from_str(&manifest) {
        Ok(m) => m,
        Err(e) => {
            set.problem = Some(format!("{MANIFEST} does not read: {e}"));
            return set;
        }
    };
    set.created_at = Some(manifest.created_at.clone());
    set.stores = manifest
        .stores
        .iter()
        .map(|s| SetStore {
            store: s.store.clone(),
            database: s.database.clone(),
            url: s.url.clone(),
        })
        .collect();
    let short: Vec<String> = manifest
        .stores
        .iter()
        .filter(|s| !files.iter().any(|(f, n)| *f == s.file && *n == s.bytes))
        .map(|s| s.file.clone())
        .collect();
    if short.is_empty() {
        set.complete = true;
    } else {
        set.problem = Some(format!("missing or cut short: {}", short.join(", ")));
    }
    set
}

/// What a prune keeping the newest `keep` complete sets does.
#[derive(Debug, Default, Serialize)]
pub struct PrunePlan {
    pub keep: Vec<SetInfo>,
    pub delete: Vec<SetInfo>,
    /// Incomplete sets left alone, and why: one newer than every complete set, or touched
    /// within the last hour, may be a backup still being written.
    pub left: Vec<(SetInfo, String)>,
}

impl PrunePlan {
    pub fn bytes_freed(&self) -> u64 {
        self.delete.iter().map(|s| s.bytes).sum()
    }
}

/// How long an incomplete set must have been left untouched before a prune takes it for
/// dead.
const IN_PROGRESS_GRACE: Duration = Duration::from_secs(3600);

/// Keeps the newest `keep` complete sets; deletes older complete sets and incomplete ones
/// that cannot be a backup in progress.
pub fn plan_prune(sets: Vec<SetInfo>, keep: usize, now: SystemTime) -> PrunePlan {
    let newest_complete = sets
        .iter()
        .rev()
        .find(|s| s.complete)
        .map(|s| s.name.clone());
    let kept: Vec<String> = sets
        .iter()
        .rev()
        .filter(|s| s.complete)
        .take(keep)
        .map(|s| s.name.clone())
        .collect();
    let mut plan = PrunePlan::default();
    for set in sets {
        if kept.contains(&set.name) {
            plan.keep.push(set);
        } else if set.complete {
            plan.delete.push(set);
        } else if newest_complete.as_ref().is_none_or(|n| set.name > *n) {
            plan.left.push((
                set,
                "newer than every complete set: it may be a backup in progress".into(),
            ));
        } else if set
            .modified
            .and_then(|m| now.duration_since(m).ok())
            .is_none_or(|age| age < IN_PROGRESS_GRACE)
        {
            plan.left.push((
                set,
                "written to within the last hour: it may be a backup in progress".into(),
            ));
        } else {
            plan.delete.push(set);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, complete: bool, age_secs: u64, now: SystemTime) -> SetInfo {
        SetInfo {
            name: name.into(),
            path: PathBuf::from(name),
            complete,
            problem: None,
            created_at: None,
            stores: Vec::new(),
            bytes: 10,
            modified: now.checked_sub(Duration::from_secs(age_secs)),
        }
    }

    #[test]
    fn set_names_are_this_tools_and_nothing_else() {
        assert!(is_set_name("20261203T081500.123Z"));
        assert!(is_set_name("20261203T081500.123Z-2"));
        for other in [
            "20261203T081500Z",
            "notes",
            "20261203T081500.123Z-x",
            "2026-12-03",
            "",
        ] {
            assert!(!is_set_name(other), "{other}");
        }
    }

    #[test]
    fn prune_keeps_the_newest_complete_sets_and_spares_what_may_be_in_progress() {
        let now = SystemTime::now();
        let names = |v: &[SetInfo]| v.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        let plan = plan_prune(
            vec![
                set("20261201T000000.000Z", true, 90_000, now),
                set("20261201T010000.000Z", false, 90_000, now), // dead, older
                set("20261202T000000.000Z", true, 9_000, now),
                set("20261202T010000.000Z", false, 60, now), // recent, older than newest
                set("20261203T000000.000Z", true, 100, now),
                set("20261203T010000.000Z", false, 90_000, now), // newest of all
            ],
            2,
            now,
        );
        assert_eq!(
            names(&plan.keep),
            ["20261202T000000.000Z", "20261203T000000.000Z"]
        );
        assert_eq!(
            names(&plan.delete),
            ["20261201T000000.000Z", "20261201T010000.000Z"]
        );
        let left: Vec<String> = plan.left.iter().map(|(s, _)| s.name.clone()).collect();
        assert_eq!(left, ["20261202T010000.000Z", "20261203T010000.000Z"]);
        assert_eq!(plan.bytes_freed(), 20);
        // Keeping none deletes every complete set; keeping more than there are, none.
        let all = |keep| {
            plan_prune(
                vec![
                    set("20261201T000000.000Z", true, 9, now),
                    set("20261202T000000.000Z", true, 9, now),
                ],
                keep,
                now,
            )
        };
        assert_eq!(all(0).delete.len(), 2);
        assert_eq!(all(5).delete.len(), 0);
    }
}
