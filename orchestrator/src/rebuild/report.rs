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
    /// It failed waiting for a lock another session or process holds (exit 5).
    pub locked: bool,
}

impl StoreFailure {
    pub(super) fn new(
        store: &Store,
        url: &DatabaseUrl,
        step: &'static str,
        reason: impl std::fmt::Display,
    ) -> Self {
        let reason = shared::db::one_line(&shared::db::scrub(url, &reason.to_string()));
        StoreFailure {
            store: store.name,
            url: url.redacted().to_string(),
            step,
            locked: is_lock_wait(&reason),
            reason,
        }
    }
}

/// Whether a failure is a bounded wait for someone else's lock that ran out: PostgreSQL's
/// `lock_timeout`, SQLite's busy timeout.
fn is_lock_wait(reason: &str) -> bool {
    reason.contains("lock timeout") || reason.contains("database is locked")
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
    /// The tables that were dropped.
    pub dropped: Vec<String>,
    /// Everything the store held under the fence, dropped with it (see `inventory`).
    pub inventory: shared::inventory::Inventory,
    /// PostgreSQL reset: the access rules put back on the recreated schema and objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<shared::pg_access::AccessReport>,
    pub applied: Vec<Applied>,
    pub committed: bool,
    pub two_phase: bool,
    pub millis: u128,
    pub phases: Phases,
}

/// Where a store's rebuild spent its time, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Phases {
    /// Opening the transaction and taking the write fence.
    pub fence: u128,
    /// The safety backup, under the fence.
    pub backup: u128,
    pub drop: u128,
    pub migrate: u128,
    pub verify: u128,
    pub commit: u128,
}
