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
    /// Applied migrations whose `up.sql` changed since they were applied, by name.
    pub modified: Vec<String>,
    /// Applied migrations with no checksum of what ran (another tool, such as diesel_cli,
    /// or a build before checksums, applied them; or diesel ran them again since): the
    /// file cannot be said to be what ran. `migrate` records them once the live schema is
    /// proven to be what the migrations make.
    pub unchecked: Vec<String>,
}

impl MigrationState {
    /// Whether the store needs someone to act: migrations to run, migrations applied that
    /// this build does not ship, changed since they ran, or applied by another tool.
    pub fn needs_attention(&self) -> bool {
        !(self.pending.is_empty()
            && self.unknown.is_empty()
            && self.modified.is_empty()
            && self.unchecked.is_empty())
    }

    /// Whether the database records no migration of this tool's at all: neither one this
    /// build ships nor an older one (a history a squash replaced is `unknown`, and still
    /// this tool's). Such a database was built by another tool, or never migrated.
    pub fn records_nothing(&self) -> bool {
        self.applied.is_empty() && self.unknown.is_empty()
    }

    /// The store's version: the newest applied migration this build ships.
    pub fn current(&self) -> Option<&str> {
        self.applied.last().map(String::as_str)
    }
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
    let present = catalog::tables_named(
        conn,
        &[DIESEL_MIGRATIONS_TABLE, ORCHESTRATOR_MIGRATIONS_TABLE],
    )?;
    let runs = catalog::applied_runs(conn, &present)?;
    let records = catalog::checksum_records(conn, &present)?;
    let sql = store.migrations.sql_for(backend);
    let mut state = MigrationState::default();
    for (version, name) in &shipped {
        let Some((_, run_on)) = runs.iter().find(|(v, _)| v == version) else {
            state.pending.push(name.clone());
            continue;
        };
        let record = records
            .iter()
            .find(|(v, _, _)| v == version)
            .filter(|(_, _, at)| !rerun_since(run_on, at));
        match (record, shipped_checksum(sql, name)) {
            (Some((_, was, _)), Some(now)) if *was != now => state.modified.push(name.clone()),
            (Some(_), _) => {}
            (None, _) => state.unchecked.push(name.clone()),
        }
        state.applied.push(name.clone());
    }
    state.unknown = runs
        .into_iter()
        .map(|(v, _)| v)
        .filter(|v| !shipped.iter().any(|(sv, _)| sv == v))
        .collect();
    Ok(state)
}

/// Whether diesel ran a migration again after its checksum was recorded (`diesel
/// migration redo`, or a revert and a run by another tool): the record then describes a
/// run that is no longer the one in the database. Both times are written by the database
/// in UTC; ours is the same transaction's on PostgreSQL and a moment later on SQLite, so a
/// later run is one that came more than two seconds after. Unreadable times keep the
/// record.
fn rerun_since(run_on: &str, recorded_at: &str) -> bool {
    let parse =
        |t: &str| chrono::NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S%.f").ok();
    match (parse(run_on), parse(recorded_at)) {
        (Some(run), Some(at)) => run > at + chrono::Duration::seconds(2),
        _ => false,
    }
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

/// Deletes the checksum records of versions diesel no longer records as applied.
fn forget_reverted() -> String {
    format!(
        "DELETE FROM {ORCHESTRATOR_MIGRATIONS_TABLE} \
         WHERE version NOT IN (SELECT version FROM {DIESEL_MIGRATIONS_TABLE});"
    )
}

/// Records the checksum of a migration another tool ran, stamped with that run's own time
/// (diesel's `run_on`): the record vouches for that run, so a later run (a redo) is told
/// apart from it whatever the clocks say.
fn vouch_checksum(version: &str, name: &str, checksum: &str) -> String {
    format!(
        "INSERT INTO {ORCHESTRATOR_MIGRATIONS_TABLE} (version, name, checksum, applied_at) \
         SELECT {v}, {n}, {c}, run_on FROM {DIESEL_MIGRATIONS_TABLE} WHERE version = {v} \
         ON CONFLICT (version) DO UPDATE \
         SET name = excluded.name, checksum = excluded.checksum, applied_at = excluded.applied_at",
        v = quote_literal(version),
        n = quote_literal(name),
        c = quote_literal(checksum),
    )
}

/// Records the checksums of applied migrations proven to be what ran (see
/// [`MigrationState::unchecked`]) and forgets the records of versions diesel no longer
/// has (reverted since), in one transaction.
pub fn record_checksums(conn: &mut Conn, store: &Store, names: &[String]) -> Result<(), BoxError> {
    let backend = conn.backend();
    let sql = store.migrations.sql_for(backend);
    let mut batch = format!("{};\n", create_checksum_table(backend));
    for (version, name) in shipped(store, backend)? {
        if !names.contains(&name) {
            continue;
        }
        let sum = shipped_checksum(sql, &name)
            .ok_or_else(|| format!("the up.sql of {name} is not embedded"))?;
        batch.push_str(&vouch_checksum(&version, &name, &sum));
        batch.push_str(";\n");
    }
    batch.push_str(&forget_reverted());
    crate::with_conn!(conn, |c| {
        use diesel::connection::SimpleConnection;
        diesel::Connection::transaction(c, |c| c.batch_execute(&batch))
    })?;
    Ok(())
}

/// diesel's own history table, as diesel creates it on either backend.
fn create_diesel_table() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {DIESEL_MIGRATIONS_TABLE} (\
           version VARCHAR(50) PRIMARY KEY NOT NULL, \
           run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
}

/// Records every shipped migration as applied without running it, each with the checksum
/// of its up.sql, in one transaction: for a database another tool built whose schema was
/// proven to be what the migrations make. Returns the migrations recorded, oldest first.
pub fn adopt(conn: &mut Conn, store: &Store) -> Result<Vec<String>, BoxError> {
    let (batch, names) = adopt_sql(store, conn.backend())?;
    crate::with_conn!(conn, |c| {
        use diesel::connection::SimpleConnection;
        diesel::Connection::transaction(c, |c| c.batch_execute(&batch))
    })?;
    Ok(names)
}

/// [`adopt`]'s SQL, for a caller that runs it inside a transaction of its own (a repair
/// adopts the store it repaired in the same transaction); with the migrations it records.
pub fn adopt_sql(store: &Store, backend: Backend) -> Result<(String, Vec<String>), BoxError> {
    let sql = store.migrations.sql_for(backend);
    let mut batch = format!(
        "{};\n{};\n",
        create_diesel_table(),
        create_checksum_table(backend)
    );
    let mut names = Vec::new();
    for (version, name) in shipped(store, backend)? {
        let sum = shipped_checksum(sql, &name)
            .ok_or_else(|| format!("the up.sql of {name} is not embedded"))?;
        batch.push_str(&format!(
            "INSERT INTO {DIESEL_MIGRATIONS_TABLE} (version) VALUES ({});\n",
            quote_literal(&version)
        ));
        // Stamped with diesel's own record of the adoption, as a vouched-for run is.
        batch.push_str(&vouch_checksum(&version, &name, &sum));
        batch.push_str(";\n");
        names.push(name);
    }
    Ok((batch, names))
}

/// Runs every pending migration, each in its own transaction (a savepoint when the caller
/// already holds one), oldest first, and reports each as it completes. The checksum of
/// each migration is recorded in the same transaction, so a crash cannot separate them.
/// Migrations another tool applied are left unchecked: nothing here vouches for them.
pub fn run_pending(
    conn: &mut Conn,
    store: &Store,
    on_applied: impl FnMut(&Applied),
) -> Result<Vec<Applied>, MigrationFailure> {
    run_pending_to(conn, store, None, on_applied)
}

/// [`run_pending`], stopping after the migration whose version is `up_to` when given.
pub fn run_pending_to(
    conn: &mut Conn,
    store: &Store,
    up_to: Option<&str>,
    mut on_applied: impl FnMut(&Applied),
) -> Result<Vec<Applied>, MigrationFailure> {
    let backend = conn.backend();
    let source = store.migrations.for_backend(backend);
    let sql = store.migrations.sql_for(backend);
    match conn {
        Conn::Postgres(c) => run_pending_on(c, backend, source, sql, up_to, &mut on_applied),
        Conn::Sqlite(c) => run_pending_on(c, backend, source, sql, up_to, &mut on_applied),
    }
}

/// The version (diesel's: digits only) of the store's migration that `given` names: its
/// version, its folder name, or its folder name's date part (`2025-01-01-000002`).
pub fn resolve_version(store: &Store, backend: Backend, given: &str) -> Result<String, String> {
    let wanted: String = given
        .split('_')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| *c != '-')
        .collect();
    shipped(store, backend)
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|(version, name)| *version == wanted || name == given)
        .map(|(version, _)| version)
        .ok_or_else(|| {
            format!(
                "the {} store has no migration {given} (see `orchestrator status`)",
                store.name
            )
        })
}

/// The `up.sql` of each migration `migrate` would run now, up to `up_to`, oldest first:
/// `(name, sql)`. Only reads.
pub fn pending_sql(
    state: &MigrationState,
    store: &Store,
    backend: Backend,
    up_to: Option<&str>,
) -> Result<Vec<(String, String)>, BoxError> {
    let sql = store.migrations.sql_for(backend);
    let mut out = Vec::new();
    for (version, name) in shipped(store, backend)? {
        if up_to.is_some_and(|last| version.as_str() > last) {
            break;
        }
        if state.pending.contains(&name) {
            let up = sql
                .iter()
                .find(|m| m.name == name)
                .map(|m| m.up)
                .unwrap_or_default();
            out.push((name, up.to_string()));
        }
    }
    Ok(out)
}

fn run_pending_on<C>(
    conn: &mut C,
    backend: Backend,
    source: &EmbeddedMigrations,
    sql: &[MigrationSql],
    up_to: Option<&str>,
    on_applied: &mut dyn FnMut(&Applied),
) -> Result<Vec<Applied>, MigrationFailure>
where
    C: MigrationHarness<C::Backend> + diesel::Connection + 'static,
    EmbeddedMigrations: MigrationSource<C::Backend>,
{
    let failure = |migration: String, e: BoxError| MigrationFailure {
        migration,
        reason: e.to_string(),
    };
    let pending = conn
        .pending_migrations(Borrowed(source))
        .map_err(|e| failure("(reading the history)".into(), e))?;
    let mut pending: Vec<_> = pending
        .into_iter()
        .filter(|m| up_to.is_none_or(|last| m.name().version().to_string().as_str() <= last))
        .collect();
    pending.sort_by_key(|m| m.name().version().to_string());
    // A record of a version diesel no longer has (reverted since) vouches for nothing.
    conn.batch_execute(&format!(
        "{};\n{}",
        create_checksum_table(backend),
        forget_reverted()
    ))
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
        // What diesel's `run_migration` does, without its savepoint and prepared insert
        // of its own: the version is recorded in the checksum's round trip.
        conn.transaction::<_, BoxError, _>(|c| {
            migration.run(c)?;
            c.batch_execute(&format!(
                "INSERT INTO {DIESEL_MIGRATIONS_TABLE} (version) VALUES ({});\n{}",
                quote_literal(&version),
                record_checksum(&version, &name, &sum)
            ))?;
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
            down: None,
        }];
        assert_eq!(
            shipped_checksum(&sql, "2025-01-01-000001_x"),
            Some(checksum(""))
        );
    }
}
