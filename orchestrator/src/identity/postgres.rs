//! The PostgreSQL half of the identity checks. Per store, in parallel:
//!
//! 1. one round trip: is the server in recovery (a hot standby), and a session advisory
//!    lock on a random key of the store's own (the mark); then the store's tables (and its
//!    history only when the tables leave its owner open), see `super::read_evidence`;
//! 2. one round trip: which other stores' marks are held in this session's database, and
//!    its own mark released (`shared::pg_identity`).
//!
//! A mark is seen only from the database that took it, on the server that took it, so
//! two stores see each other's marks exactly when they are one database, however their
//! URLs spell it. The sessions are the run's own pooled ones: the command goes on with
//! them, so the checks cost no connection.

use shared::pg_identity;
use shared::store::Store;
use shared::Conn;

use super::Evidence;
use crate::context::{Context, Session};
use crate::exit::{CliError, CliResult, Exit};

/// What one PostgreSQL store's server said.
pub(super) struct Surveyed {
    pub store: &'static Store,
    pub replica: bool,
    pub evidence: Evidence,
    /// The other stores whose marks this store's session saw in its database.
    pub same_as: Vec<&'static str>,
}

/// One store's session between the two round trips.
struct Slot<'a> {
    store: &'static Store,
    key: i64,
    session: Option<Session<'a>>,
    marked: bool,
    first: Option<CliResult<(bool, Evidence)>>,
    seen: Option<CliResult<Vec<i64>>>,
}

/// Runs both round trips on every store of `stores` that answers (one that does not is
/// left to the command, which reports it its own way), and, when `guards`, finds out where
/// libpq connects for each (see [`remote`]).
pub(super) fn survey(
    ctx: &Context,
    stores: &[&'static Store],
    guards: bool,
) -> CliResult<Vec<Surveyed>> {
    // A mark is only needed when there is another store to see it.
    let marking = stores.len() > 1;
    let mut slots: Vec<Slot<'_>> = stores
        .iter()
        .map(|store| Slot {
            store,
            key: pg_identity::random_key(),
            session: None,
            marked: false,
            first: None,
            seen: None,
        })
        .collect();
    on_each(&mut slots, |slot| {
        let store = slot.store;
        std::thread::scope(|scope| {
            // libpq's answer takes a socket's connect, not a login: it overlaps the session's.
            let placing = guards.then(|| scope.spawn(move || remote(ctx, store)));
            if let Ok(mut session) = ctx.session(store) {
                let result = first_look(ctx, store, &mut session, marking.then_some(slot.key));
                slot.marked = matches!(result, Ok((_, _, true)));
                slot.first = Some(result.map(|(replica, evidence, _)| (replica, evidence)));
                slot.session = Some(session);
            }
            if let Some(Err(_)) = placing.map(|p| p.join()) {
                tracing::warn!(store = store.name, "placing the server panicked");
            }
        });
    });
    let marks: Vec<(&'static str, i64)> = slots
        .iter()
        .filter(|s| s.marked)
        .map(|s| (s.store.name, s.key))
        .collect();
    // Every marked session looks for the others' marks and drops its own, errors found in
    // the first round trip notwithstanding: a mark must not outlive the check.
    on_each(&mut slots, |slot| {
        let (true, Some(Conn::Postgres(pg))) = (slot.marked, slot.session.as_deref_mut()) else {
            return;
        };
        let others: Vec<i64> = marks
            .iter()
            .filter(|(name, _)| *name != slot.store.name)
            .map(|(_, key)| *key)
            .collect();
        slot.seen = Some(
            pg_identity::seen_and_release(pg, &others, Some(slot.key))
                .map_err(|e| ctx.query_error(slot.store, "looking for the other stores' marks", e)),
        );
    });
    let mut surveyed = Vec::new();
    for slot in slots {
        let Some(first) = slot.first else { continue };
        let (replica, evidence) = first?;
        let seen = slot.seen.transpose()?.unwrap_or_default();
        let same_as = marks
            .iter()
            .filter(|(_, key)| seen.contains(key))
            .map(|(name, _)| *name)
            .collect();
        surveyed.push(Surveyed {
            store: slot.store,
            replica,
            evidence,
            same_as,
        });
    }
    Ok(surveyed)
}

/// The first round trip and the evidence: (in recovery, evidence, marked).
fn first_look(
    ctx: &Context,
    store: &'static Store,
    session: &mut Conn,
    key: Option<i64>,
) -> CliResult<(bool, Evidence, bool)> {
    let Conn::Postgres(pg) = session else {
        return Err(CliError::usage(format!(
            "the {} store's URL is PostgreSQL but its connection is not",
            store.name
        )));
    };
    let (replica, marked) = pg_identity::recovery_and_mark(pg, key)
        .map_err(|e| ctx.query_error(store, "asking the server whether it is a standby", e))?;
    if key.is_some() && !marked {
        // A random 63-bit key already held: nothing to compare with, so no verdict.
        tracing::warn!(
            store = store.name,
            "identity mark busy; same-database check skipped"
        );
    }
    let evidence = super::read_evidence(session, store, &ctx.stores())
        .map_err(|e| ctx.query_error(store, "listing tables and migrations", e))?;
    Ok((replica, evidence, marked))
}

/// Runs `work` on every slot at once, one scoped thread each; a worker that panics leaves
/// its slot as it was (its store is then left to the command).
fn on_each<'a>(slots: &mut [Slot<'a>], work: impl Fn(&mut Slot<'a>) + Sync) {
    for done in crate::context::in_parallel(slots.iter_mut(), work) {
        if done.is_none() {
            tracing::warn!("an identity check worker panicked");
        }
    }
}

/// Exit 2 when two stores are one database.
pub(super) fn refuse_one_database(ctx: &Context, surveyed: &[Surveyed]) -> CliResult {
    let Some((store, other)) = surveyed
        .iter()
        .find_map(|s| s.same_as.first().map(|other| (s.store.name, *other)))
    else {
        return Ok(());
    };
    let url_of = |name: &str| {
        ctx.settings
            .url_for(name)
            .map(|u| u.redacted().to_string())
            .unwrap_or_default()
    };
    let (first, second) = (store, other);
    Err(CliError::usage(format!(
        "the {first} and {second} stores resolve to the same database ({first}: {}, {second}: \
         {}; the server saw a session of one in the other's database): each store needs a \
         database of its own; nothing was changed. Check {} and {}",
        url_of(first),
        url_of(second),
        super::flag(first),
        super::flag(second),
    )))
}

/// Exit 2 when a command that writes would write to a hot standby.
pub(super) fn refuse_replicas(ctx: &Context, command: &str, surveyed: &[Surveyed]) -> CliResult {
    let replicas: Vec<String> = surveyed
        .iter()
        .filter(|s| s.replica)
        .map(|s| {
            let url = ctx
                .url(s.store)
                .map(|u| u.redacted().to_string())
                .unwrap_or_default();
            format!("{} ({url})", s.store.name)
        })
        .collect();
    if replicas.is_empty() {
        return Ok(());
    }
    let (are, why, they, store) = if replicas.len() == 1 {
        (
            "is a read-only replica (a hot standby",
            "its server is in recovery and refuses every write",
            "it was",
            "the store",
        )
    } else {
        (
            "are read-only replicas (hot standbys",
            "their servers are in recovery and refuse every write",
            "they were",
            "each store",
        )
    };
    Err(CliError::new(
        Exit::Usage,
        anyhow::anyhow!(
            "{} {are}: {why}) and {command} writes, so {they} refused before anything; \
             nothing was changed. Point {store} at its primary server",
            replicas.join(" and ")
        ),
    ))
}

/// Whether `store`'s server is somewhere other than this machine, from where libpq really
/// connects (see `shared::pg_host`): asked once a run, then remembered. A SQLite file is
/// always here.
pub fn remote(ctx: &Context, store: &'static Store) -> bool {
    if let Some(local) = ctx.server_facts(store.name).local {
        return !local;
    }
    let Ok(url) = ctx.url(store) else {
        return true;
    };
    if url.sqlite_path().is_some() {
        return false;
    }
    let started = std::time::Instant::now();
    let found = shared::pg_host::locality(&shared::db::postgres_connect_string(url));
    tracing::info!(
        store = store.name,
        local = found.local,
        why = %found.why,
        micros = started.elapsed().as_micros() as u64,
        "where the server is"
    );
    ctx.note_server(store.name, |f| f.local = Some(found.local));
    !found.local
}
