//! What a rebuild reports of each store: its outcome for the command's report, and its
//! failure, named with the store, the URL (password hidden) and the step.

use serde::Serialize;
use shared::store::Store;
use shared::{Backend, DatabaseUrl};

use shared::migrations::Applied;

/// A store's failure, named.
#[derive(Debug)]
pub struct StoreFailure {
    pub store: &'static str,
    pub url: String,
    pub step: &'static str,
    pub reason: String,
}

impl StoreFailure {
    pub(super) fn new(
        store: &Store,
        url: &DatabaseUrl,
        step: &'static str,
        reason: impl std::fmt::Display,
    ) -> Self {
        StoreFailure {
            store: store.name,
            url: url.redacted().to_string(),
            step,
            reason: shared::db::one_line(&shared::db::scrub(url, &reason.to_string())),
        }
    }
}

impl std::fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} database at {}: {} failed: {}",
            self.store, self.url, self.step, self.reason
        )
    }
}

/// What happened to one store, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct StoreOutcome {
    pub store: &'static str,
    pub backend: Backend,
    pub url: String,
    /// The tables that were dropped (PostgreSQL) or replaced with the old file (SQLite).
    pub dropped: Vec<String>,
    pub applied: Vec<Applied>,
    pub committed: bool,
    pub two_phase: bool,
    pub millis: u128,
    pub phases: Phases,
}

/// Where a store's rebuild spent its time, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Phases {
    pub drop: u128,
    pub migrate: u128,
    pub verify: u128,
    pub commit: u128,
}
