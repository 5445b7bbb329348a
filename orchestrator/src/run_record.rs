//! What a rebuild run writes into its journal row besides its stores: what it replaces the
//! stores' contents with, and where the contents it replaces were backed up. Settling an
//! interrupted run reads it back, so that the run is finished from the same source (a
//! restore from its own backup set, never from the migrations) or undone from its safety
//! backup; never substituted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backup::{self, Manifest};

/// A backup set a run reads from, pinned by the sha256 of its manifest so that a set
/// replaced or edited since cannot pass for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRef {
    pub dir: PathBuf,
    pub manifest_sha256: String,
}

impl BackupRef {
    /// Pins the set in `dir` (made absolute, so that a later run from another folder
    /// finds it).
    pub fn pin(dir: &Path) -> Result<BackupRef, String> {
        let dir = std::path::absolute(dir)
            .map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
        let (manifest_sha256, _) = backup::sha256_of(&dir.join(backup::MANIFEST))
            .map_err(|e| format!("cannot read {}: {e}", dir.join(backup::MANIFEST).display()))?;
        Ok(BackupRef {
            dir,
            manifest_sha256,
        })
    }

    /// The set, checked: the manifest is the one the run pinned and every file of
    /// `stores` has its recorded sha256.
    pub fn open(&self, stores: &[&str]) -> Result<Manifest, String> {
        let manifest_path = self.dir.join(backup::MANIFEST);
        let (sha, _) = backup::sha256_of(&manifest_path)
            .map_err(|e| format!("cannot read {}: {e}", manifest_path.display()))?;
        if sha != self.manifest_sha256 {
            return Err(format!(
                "{} is not the manifest the run read (its sha256 changed)",
                manifest_path.display()
            ));
        }
        backup::load_checked(&self.dir, stores)
    }
}

/// The record of one run, stored as JSON in each rebuilt store's journal row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The backup set the stores are restored from; `None`: a reset, from the migrations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<BackupRef>,
    /// The backup of what the run replaces, taken before it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<BackupRef>,
}

impl RunRecord {
    pub fn to_json(&self) -> String {
        // A struct of strings and paths always serialises.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Reads a journal row's source. A row without one was written by a build whose runs
    /// were all resets; a source this build cannot read is an error, never a guess.
    pub fn from_journal(source: Option<&str>) -> Result<RunRecord, String> {
        match source {
            None => Ok(RunRecord::default()),
            Some(text) => serde_json::from_str(text)
                .map_err(|e| format!("the run's record {text:?} cannot be read: {e}")),
        }
    }

    /// The operation in words: "reset" or "restore from DIR".
    pub fn operation(&self) -> String {
        match &self.restore_from {
            None => "reset".into(),
            Some(b) => format!("restore from {}", b.dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_its_journal_row() {
        let record = RunRecord {
            restore_from: Some(BackupRef {
                dir: PathBuf::from("/var/backups/x y/20261121T101500.000Z"),
                manifest_sha256: "ab".repeat(32),
            }),
            safety: None,
        };
        let back = RunRecord::from_journal(Some(&record.to_json())).expect("parse");
        assert_eq!(back, record);
        assert_eq!(
            RunRecord::from_journal(None).expect("legacy"),
            RunRecord::default()
        );
        assert!(RunRecord::from_journal(Some("not json")).is_err());
    }

    #[test]
    fn a_pinned_set_that_changed_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(backup::MANIFEST), b"{}").expect("write");
        let pinned = BackupRef::pin(dir.path()).expect("pin");
        std::fs::write(dir.path().join(backup::MANIFEST), b"{ }").expect("write");
        let error = pinned.open(&[]).expect_err("changed");
        assert!(error.contains("sha256 changed"), "{error}");
    }
}
