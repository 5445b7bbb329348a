//! Migration state and application, for either backend, from a store's embedded history.

use std::time::Instant;

use diesel::migration::{Migration, MigrationSource};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use serde::Serialize;

use crate::catalog;
use crate::db::Conn;
use crate::store::Store;
use crate::url::Backend;

/// Where a store's migration history stands in one database.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MigrationState {
    /// Applied migrations that the store ships, by name, oldest first.
    pub applied: Vec<String>,
    /// Migrations the store ships that the database has not run yet.
    pub pending: Vec<String>,
    /// Versions the database records that the store does not ship.
    pub unknown: Vec<String>,
}

/// A migration that was run, with its duration.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub name: String,
    pub millis: u128,
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The failure of one migration, with its name.
#[derive(Debug)]
pub struct MigrationFailure {
    pub migration: String,
    pub reason: String,
}

/// The store's shipped migrations for a backend: (version, name) pairs, oldest first.
pub fn shipped(store: &Store, backend: Backend) -> Result<Vec<(String, String)>, BoxError> {
    let source = store.migrations.for_backend(backend);
    let names = match backend {
        Backend::Postgres => names_of(MigrationSource::<diesel::pg::Pg>::migrations(source)?),
        Backend::Sqlite => names_of(MigrationSource::<diesel::sqlite::Sqlite>::migrations(
            source,
        )?),
    };
    Ok(names)
}

fn names_of<DB: diesel::backend::Backend>(
    migrations: Vec<Box<dyn Migration<DB>>>,
) -> Vec<(String, String)> {
    let mut names: Vec<(String, String)> = migrations
        .iter()
        .map(|m| (m.name().version().to_string(), m.name().to_string()))
        .collect();
    names.sort();
    names
}

/// Reads the migration state without writing anything.
pub fn state(conn: &mut Conn, store: &Store) -> Result<MigrationState, BoxError> {
    let shipped = shipped(store, conn.backend())?;
    let applied_versions = catalog::applied_versions(conn)?;
    let mut state = MigrationState::default();
    for (version, name) in &shipped {
        if applied_versions.contains(version) {
            state.applied.push(name.clone());
        } else {
            state.pending.push(name.clone());
        }
    }
    state.unknown = applied_versions
        .into_iter()
        .filter(|v| !shipped.iter().any(|(sv, _)| sv == v))
        .collect();
    Ok(state)
}

/// Runs every pending migration, each in its own transaction (a savepoint when the caller
/// already holds one), oldest first, and reports each as it completes.
pub fn run_pending(
    conn: &mut Conn,
    store: &Store,
    mut on_applied: impl FnMut(&Applied),
) -> Result<Vec<Applied>, MigrationFailure> {
    let source = store.migrations.for_backend(conn.backend());
    match conn {
        Conn::Postgres(c) => run_pending_on(c, source, &mut on_applied),
        Conn::Sqlite(c) => run_pending_on(c, source, &mut on_applied),
    }
}

fn run_pending_on<C>(
    conn: &mut C,
    source: &EmbeddedMigrations,
    on_applied: &mut dyn FnMut(&Applied),
) -> Result<Vec<Applied>, MigrationFailure>
where
    C: MigrationHarness<C::Backend> + diesel::Connection,
    EmbeddedMigrations: MigrationSource<C::Backend>,
{
    let failure = |migration: String, e: BoxError| MigrationFailure {
        migration,
        reason: e.to_string(),
    };
    let pending = conn
        .pending_migrations(Borrowed(source))
        .map_err(|e| failure("(reading the history)".into(), e))?;
    let mut pending: Vec<_> = pending.into_iter().collect();
    pending.sort_by_key(|m| m.name().version().to_string());
    let mut done = Vec::with_capacity(pending.len());
    for migration in &pending {
        let name = migration.name().to_string();
        let started = Instant::now();
        conn.run_migration(migration.as_ref())
            .map_err(|e| failure(name.clone(), e))?;
        let applied = Applied {
            name,
            millis: started.elapsed().as_millis(),
        };
        tracing::info!(migration = %applied.name, millis = applied.millis as u64, "applied");
        on_applied(&applied);
        done.push(applied);
    }
    Ok(done)
}

/// `EmbeddedMigrations` is neither `Clone` nor a `MigrationSource` by reference; the
/// stores keep theirs in statics, so this lends one to diesel without copying.
struct Borrowed<'a>(&'a EmbeddedMigrations);

impl<DB: diesel::backend::Backend> MigrationSource<DB> for Borrowed<'_>
where
    EmbeddedMigrations: MigrationSource<DB>,
{
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
        self.0.migrations()
    }
}
