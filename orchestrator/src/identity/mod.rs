//! Which database each store really is, checked once per command before it takes a lock
//! or changes anything (the preflight calls [`check`]):
//!
//! - two stores that resolve to one database (PostgreSQL: decided by the server, whatever
//!   the URLs' spelling; SQLite: one file, whatever the path's spelling) would be reset,
//!   migrated and locked as if they were two: exit 2, naming both;
//! - a store whose database holds the other store's tables and history, and nothing of its
//!   own, means the URLs are swapped: exit 2, naming both;
//! - a hot standby answers reads and refuses every write: the reports name it, and a
//!   command that writes refuses it (exit 2) rather than fail halfway in;
//! - for the commands that guard, where libpq really connects, which decides whether a
//!   store is protected (see [`remote`]).

mod postgres;
mod sqlite;

use shared::catalog::{self, DIESEL_MIGRATIONS_TABLE};
use shared::store::Store;
use shared::{migrations, Backend, Conn};

use crate::context::Context;
use crate::exit::{CliError, CliResult};

pub use postgres::remote;

/// What a command asks of the identity checks.
#[derive(Debug, Clone)]
pub struct Needs {
    /// The command, for messages.
    pub command: &'static str,
    /// The stores it connects to (all of them for a command that locks).
    pub stores: Vec<&'static Store>,
    /// Whether it writes to the stores' databases (a standby refuses it).
    pub writes: bool,
    /// Whether it guards a destructive step (protection is decided up front).
    pub guards: bool,
    /// A store whose history comes from `--migrations-dir` (a fixture may be any history,
    /// the other store's included): it is not checked for swapped URLs.
    pub history_from_dir: Option<&'static str>,
}

/// What a store's database holds that says whose it is: which of the stores' own tables
/// and diesel's bookkeeping its schema has and, when they could matter, diesel's applied
/// versions.
#[derive(Debug, Default)]
struct Evidence {
    tables: Vec<String>,
    versions: Vec<String>,
}

/// Runs every check of `needs`; see the module's notes.
pub fn check(ctx: &Context, needs: &Needs) -> CliResult {
    let started = std::time::Instant::now();
    let mut urls = Vec::new();
    for store in &needs.stores {
        urls.push((*store, ctx.url(store)?));
    }
    let files: Vec<_> = urls
        .iter()
        .filter_map(|(s, u)| u.sqlite_path().map(|p| (*s, *u, p)))
        .collect();
    sqlite::refuse_one_file(&files)?;
    let servers: Vec<&'static Store> = urls
        .iter()
        .filter(|(_, u)| u.backend() == Backend::Postgres)
        .map(|(s, _)| *s)
        .collect();
    let surveyed = postgres::survey(ctx, &servers, needs.guards)?;
    postgres::refuse_one_database(ctx, &surveyed)?;
    let mut found: Vec<(&'static Store, Evidence)> = Vec::new();
    for (store, url, path) in files {
        if let Some(evidence) = sqlite::evidence(store, &ctx.stores(), url, path)? {
            found.push((store, evidence));
        }
    }
    let surveyed_evidence = surveyed.iter().map(|s| (s.store, &s.evidence));
    let all = found
        .iter()
        .map(|(s, e)| (*s, e))
        .chain(surveyed_evidence)
        .filter(|(s, _)| needs.history_from_dir != Some(s.name));
    refuse_swapped(ctx, all)?;
    for s in &surveyed {
        if s.replica {
            ctx.note_server(s.store.name, |f| f.read_only_replica = true);
        }
    }
    if needs.writes {
        postgres::refuse_replicas(ctx, needs.command, &surveyed)?;
    }
    tracing::info!(
        command = needs.command,
        micros = started.elapsed().as_micros() as u64,
        "identity checked"
    );
    Ok(())
}

/// Reads a store's evidence in one round trip for a database that holds a table only its
/// own store makes (the usual case) or nothing at all, and reads the history only when
/// the tables leave the question open.
fn read_evidence(
    conn: &mut Conn,
    store: &Store,
    all: &[&'static Store],
) -> diesel::QueryResult<Evidence> {
    // Asked by name: only the stores' tables and diesel's are evidence, and listing every
    // table would scan every relation of the database.
    let mut known: Vec<&str> = all.iter().flat_map(|s| s.tables.iter().copied()).collect();
    known.push(DIESEL_MIGRATIONS_TABLE);
    known.sort_unstable();
    known.dedup();
    let tables = catalog::tables_named(conn, &known)?;
    let own_table = all
        .iter()
        .filter(|o| o.name != store.name)
        .all(|other| only_in(store.tables, other.tables).any(|t| tables.iter().any(|l| l == t)));
    // The tables just read say whether diesel's is there: no second look.
    let versions = if own_table {
        Vec::new()
    } else {
        catalog::applied_runs(conn, &tables)?
            .into_iter()
            .map(|(version, _)| version)
            .collect()
    };
    Ok(Evidence { tables, versions })
}

/// Whether `list` holds any of `wanted`.
fn holds(list: &[String], mut wanted: impl Iterator<Item = String>) -> bool {
    wanted.any(|w| list.contains(&w))
}

/// The items of `mine` that `theirs` lacks.
fn only_in<'a, T: PartialEq>(mine: &'a [T], theirs: &'a [T]) -> impl Iterator<Item = &'a T> {
    mine.iter().filter(move |m| !theirs.contains(m))
}

/// The store whose database `evidence` looks like, when it is not `store`'s: it holds a
/// version only the other store ships, or the other store's own tables together with a
/// history of the other store's, and no table or version that only `store` has. A stray
/// table without a history (a `users` table someone made in app) is drift for `verify`,
/// not a swap.
fn belongs_elsewhere(
    store: &'static Store,
    all: &[&'static Store],
    backend: Backend,
    evidence: &Evidence,
) -> Result<Option<&'static Store>, migrations::BoxError> {
    let versions_of = |s: &Store| -> Result<Vec<String>, migrations::BoxError> {
        Ok(migrations::shipped(s, backend)?
            .into_iter()
            .map(|(v, _)| v)
            .collect())
    };
    let mine = versions_of(store)?;
    let names = |tables: &'static [&'static str]| tables.iter().map(|t| t.to_string());
    for other in all.iter().copied().filter(|o| o.name != store.name) {
        let theirs = versions_of(other)?;
        let own = holds(&evidence.versions, only_in(&mine, &theirs).cloned())
            || holds(
                &evidence.tables,
                names(store.tables).filter(|t| !other.tables.contains(&t.as_str())),
            );
        let their_only_version = holds(&evidence.versions, only_in(&theirs, &mine).cloned());
        let their_history = holds(&evidence.versions, theirs.iter().cloned());
        let their_tables = holds(
            &evidence.tables,
            names(other.tables).filter(|t| !store.tables.contains(&t.as_str())),
        );
        if !own && (their_only_version || (their_tables && their_history)) {
            return Ok(Some(other));
        }
    }
    Ok(None)
}

/// Exit 2 when a store's database is another store's.
fn refuse_swapped<'a>(
    ctx: &Context,
    found: impl Iterator<Item = (&'static Store, &'a Evidence)>,
) -> CliResult {
    for (store, evidence) in found {
        let url = ctx.url(store)?;
        let other = belongs_elsewhere(store, &ctx.stores(), url.backend(), evidence)
            .map_err(|e| CliError::usage(format!("{} migrations: {e}", store.name)))?;
        let Some(other) = other else { continue };
        let (mine, theirs) = (store.name, other.name);
        let other_url = ctx
            .url(other)
            .map(|u| format!(" (the {theirs} URL is {})", u.redacted()))
            .unwrap_or_default();
        return Err(CliError::usage(format!(
            "the {mine} URL {} leads to a database that holds the {theirs} store's tables and \
             migration history and none of {mine}'s{other_url}: the {mine} and {theirs} URLs \
             look swapped; nothing was changed. Check {} and {} ({}, {})",
            url.redacted(),
            flag(mine),
            flag(theirs),
            env_var(mine),
            env_var(theirs),
        )));
    }
    Ok(())
}

/// The flag that sets a store's URL.
pub(crate) fn flag(store: &str) -> String {
    format!("--{store}-url")
}

/// The environment variable that sets a store's URL.
pub(crate) fn env_var(store: &str) -> String {
    format!("{}_DATABASE_URL", store.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(tables: &[&str], versions: &[&str]) -> Evidence {
        Evidence {
            tables: tables.iter().map(|t| t.to_string()).collect(),
            versions: versions.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn versions(store: &Store) -> Vec<String> {
        migrations::shipped(store, Backend::Postgres)
            .expect("shipped")
            .into_iter()
            .map(|(v, _)| v)
            .collect()
    }

    fn elsewhere(store: &'static Store, e: &Evidence) -> Option<&'static str> {
        belongs_elsewhere(store, crate::stores::STORES, Backend::Postgres, e)
            .expect("decide")
            .map(|s| s.name)
    }

    #[test]
    fn a_database_holding_the_other_stores_history_belongs_to_it() {
        let (auth, app) = (&auth_db::STORE, &app_db::STORE);
        let auth_history: Vec<String> = versions(auth);
        let app_history: Vec<String> = versions(app);
        let with = |tables: &[&str], history: &[String]| {
            let mut e = evidence(tables, &[]);
            e.versions = history.to_vec();
            e
        };
        let auth_db_tables: Vec<&str> = auth.tables.to_vec();
        let app_db_tables: Vec<&str> = app.tables.to_vec();
        // Swapped: each database holds the other's tables and history.
        assert_eq!(
            elsewhere(app, &with(&auth_db_tables, &auth_history)),
            Some("auth")
        );
        assert_eq!(
            elsewhere(auth, &with(&app_db_tables, &app_history)),
            Some("app")
        );
        // Its own, whole or partly migrated, or empty: no verdict.
        assert_eq!(elsewhere(auth, &with(&auth_db_tables, &auth_history)), None);
        assert_eq!(elsewhere(app, &with(&app_db_tables, &app_history)), None);
        assert_eq!(elsewhere(auth, &with(&[], &[])), None);
        assert_eq!(elsewhere(auth, &with(&["users"], &auth_history[..1])), None);
        // A stray table without a history is drift (verify reports it), not a swap; with
        // the store's own tables beside it, too.
        assert_eq!(elsewhere(app, &with(&["users"], &[])), None);
        let mut drift = app_db_tables.clone();
        drift.push("users");
        assert_eq!(elsewhere(app, &with(&drift, &app_history)), None);
        // A version only auth ships is enough, even with its tables gone.
        let only_auth: Vec<String> = auth_history
            .iter()
            .filter(|v| !app_history.contains(v))
            .cloned()
            .collect();
        if !only_auth.is_empty() {
            assert_eq!(elsewhere(app, &with(&[], &only_auth)), Some("auth"));
        }
    }
}
