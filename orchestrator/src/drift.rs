//! Whether a store's live schema is what its migrations make, at the version its history
//! stands at, with nothing but the store's own database: the expected model comes from
//! `shared::expected` (the recorded PostgreSQL model, or the SQLite history replayed in
//! memory). `verify` reports the differences; `migrate` proves a history another tool
//! applied before it vouches for it with checksums.

use serde::Serialize;
use shared::expected;
use shared::migrations::{self, MigrationState};
use shared::schema::{self, logical_view, Difference, SchemaModel};
use shared::{Backend, Store};

/// What the schema was held to, and how it differs.
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    /// In words: the whole history, or the logical schema up to the last applied version.
    pub held_to: String,
    pub differences: Vec<Difference>,
}

/// How the live schema (`live`, read from a `backend` database) differs from what the
/// migrations make; `None` when no migration is applied yet (there is nothing to hold
/// the schema to).
pub fn check(
    store: &Store,
    backend: Backend,
    state: &MigrationState,
    live: &SchemaModel,
) -> Result<Option<Drift>, String> {
    let Some(last) = state.applied.last() else {
        return Ok(None);
    };
    if state.pending.is_empty() {
        let expected = expected::full(store, backend)?;
        let held_to = match backend {
            Backend::Postgres => "the recorded model of the PostgreSQL history",
            Backend::Sqlite => "the SQLite history, replayed",
        };
        return Ok(Some(Drift {
            held_to: held_to.into(),
            differences: schema::compare(&expected, live),
        }));
    }
    // Part way through the history: the SQLite history replayed to the same version, in
    // full on SQLite, and logically (what both histories are proven to share) on
    // PostgreSQL.
    let version = migrations::shipped(store, backend)
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|(_, name)| name == last)
        .map(|(version, _)| version)
        .ok_or_else(|| format!("migration {last} is not shipped"))?;
    let expected = expected::sqlite_replay(store, Some(&version))?;
    let (held_to, differences) = match backend {
        Backend::Sqlite => (
            format!("the SQLite history up to {last}, replayed"),
            schema::compare(&expected, live),
        ),
        Backend::Postgres => (
            format!("the logical schema of the history up to {last}"),
            schema::compare(&logical_view(&expected), &logical_view(live)),
        ),
    };
    Ok(Some(Drift {
        held_to,
        differences,
    }))
}

/// Whether the contract check (tables and foreign keys, reported on its own) already
/// names this difference.
pub fn named_by_contract(d: &Difference) -> bool {
    use shared::schema::DifferenceKind::*;
    match d.kind {
        MissingTable | UnexpectedTable | MissingForeignKey | ForeignKeyAction => true,
        // The contract compares sets: a second copy of a foreign key escapes it.
        UnexpectedForeignKey => d.duplicates.is_empty(),
        _ => false,
    }
}
