//! Migration state and application, for either backend, from a store's embedded history.

use std::time::Instant;

use diesel::migration::{Migration, MigrationSource};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::{self, DIESEL_MIGRATIONS_TABLE, ORCHESTRATOR_MIGRATIONS_TABLE};
use crate::db::{quote_literal, Conn};
use crate::store::{MigrationSql, Store};
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
    /// Applied migrations whose `up.sql` changed since they were applied, by name. A
    /// migration applied before checksums were recorded is not counted here.
    pub modified: Vec<String>,
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

/// The sha256 of a migration's `up.sql`, in lowercase hex.
pub fn checksum(up_sql: &str) -> String {
    Sha256::digest(up_sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn shipped_checksum(sql: &[MigrationSql], name: &str) -> Option<String> {
    sql.iter().find(|m| m.name == name).map(|m| checksum(m.up))
}

/// Reads the migration state without writing anything.
pub fn state(conn: &mut Conn, store: &Store) -> Result<MigrationState, BoxError> {
    let backend = conn.backend();
    let shipped = shipped(store, backend)?;
    let applied_versions = catalog::applied_versions(conn)?;
    let recorded = catalog::recorded_checksums(conn)?;
    let sql = store.migrations.sql_for(backend);
    let mut state = MigrationState::default();
    for (version, name) in &shipped {
        if applied_versions.contains(version) {
            let was = recorded.iter().find(|(v, _)| v == version).map(|(_, c)| c);
            if let (Some(was), Some(now)) = (was, shipped_checksum(sql, name)) {
                if *was != now {
                    state.modified.push(name.clone());
                }
            }
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

fn create_checksum_table(backend: Backend) -> String {
    let now = match backend {
        Backend::Postgres => "(now() AT TIME ZONE 'utc')",
        Backend::Sqlite => "CURRENT_TIMESTAMP",
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {ORCHESTRATOR_MIGRATIONS_TABLE} (\
           version TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, checksum TEXT NOT NULL, \
           applied_at TIMESTAMP NOT NULL DEFAULT {now})"
    )
}

/// Records the checksum of a migration that has just run (a re-applied version replaces
/// its old record).
fn record_checksum(version: &str, name: &str, checksum: &str) -> String {
    format!(
        "INSERT INTO {ORCHESTRATOR_MIGRATIONS_TABLE} (version, name, checksum) \
         VALUES ({v}, {n}, {c}) ON CONFLICT (version) DO UPDATE \
         SET name = excluded.name, checksum = excluded.checksum, applied_at = excluded.applied_at",
        v = quote_literal(version),
        n = quote_literal(name),
        c = quote_literal(checksum),
    )
}

/// Records the checksum of a migration applied before checksums existed (diesel has it,
/// we do not): the file as it is now is the best evidence there is.
fn backfill_checksum(version: &str, name: &str, checksum: &str) -> String {
    let v = quote_literal(version);
    format!(
        "INSERT INTO {ORCHESTRATOR_MIGRATIONS_TABLE} (version, name, checksum) \
         SELECT {v}, {n}, {c} \
         WHERE EXISTS (SELECT 1 FROM {DIESEL_MIGRATIONS_TABLE} WHERE version = {v}) \
         AND NOT EXISTS (SELECT 1 FROM {ORCHESTRATOR_MIGRATIONS_TABLE} WHERE version = {v});",
        n = quote_literal(name),
        c = quote_literal(checksum),
    )
}

/// Runs every pending migration, each in its own transaction (a savepoint when the caller
/// already holds one), oldest first, and reports each as it completes. The checksum of
/// each migration is recorded in the same transaction, so a crash cannot separate them.
pub fn run_pending(
    conn: &mut Conn,
    store: &Store,
    mut on_applied: impl FnMut(&Applied),
) -> Result<Vec<Applied>, MigrationFailure> {
    let backend = conn.backend();
    let source = store.migrations.for_backend(backend);
    let sql = store.migrations.sql_for(backend);
    match conn {
        Conn::Postgres(c) => run_pending_on(c, backend, source, sql, &mut on_applied),
        Conn::Sqlite(c) => run_pending_on(c, backend, source, sql, &mut on_applied),
    }
}

fn run_pending_on<C>(
    conn: &mut C,
    backend: Backend,
    source: &EmbeddedMigrations,
    sql: &[MigrationSql],
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
    conn.batch_execute(&create_checksum_table(backend))
        .map_err(|e| failure("(creating the checksum table)".into(), e.into()))?;
    let mut done = Vec::with_capacity(pending.len());
    for migration in &pending {
        let name = migration.name().to_string();
        let version = migration.name().version().to_string();
        let sum = shipped_checksum(sql, &name).ok_or_else(|| {
            failure(
                name.clone(),
                "its up.sql is not embedded (was the store crate built without its build script?)"
                    .into(),
            )
        })?;
        let started = Instant::now();
        conn.transaction::<_, BoxError, _>(|c| {
            c.run_migration(migration.as_ref())?;
            c.batch_execute(&record_checksum(&version, &name, &sum))?;
            Ok(())
        })
        .map_err(|e| failure(name.clone(), e))?;
        let applied = Applied {
            name,
            millis: started.elapsed().as_millis(),
        };
        tracing::info!(migration = %applied.name, millis = applied.millis as u64, "applied");
        on_applied(&applied);
        done.push(applied);
    }
    let all: Vec<Box<dyn Migration<C::Backend>>> =
        MigrationSource::<C::Backend>::migrations(source)
            .map_err(|e| failure("(reading the history)".into(), e))?;
    let backfill: String = all
        .iter()
        .filter_map(|m| {
            let name = m.name().to_string();
            let sum = shipped_checksum(sql, &name)?;
            Some(backfill_checksum(
                &m.name().version().to_string(),
                &name,
                &sum,
            ))
        })
        .collect();
    if !backfill.is_empty() {
        conn.batch_execute(&backfill)
            .map_err(|e| failure("(recording checksums)".into(), e.into()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_sha256_hex() {
        assert_eq!(
            checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(
            checksum("CREATE TABLE a (id TEXT);"),
            checksum("CREATE TABLE a (id TEXT) ;")
        );
    }

    #[test]
    fn every_store_migration_has_its_sql_embedded() {
        // The store crates are not dependencies of shared; the harness checks the real
        // ones (assert_migrates_to_contract). Here: a missing entry is found as None.
        assert_eq!(shipped_checksum(&[], "2025-01-01-000001_x"), None);
        let sql = [MigrationSql {
            name: "2025-01-01-000001_x",
            up: "",
        }];
        assert_eq!(
            shipped_checksum(&sql, "2025-01-01-000001_x"),
            Some(checksum(""))
        );
    }
}
