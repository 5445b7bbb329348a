//! What a real deployment can do to a run, checked once per command before it takes a
//! lock or changes anything (PostgreSQL stores only):
//!
//! - a pooler in transaction or statement mode hands one client's server session to
//!   another between transactions, so the run's session locks and prepared statements
//!   would not be its own: refused (exit 2) with the fix;
//! - the connections the command holds at once must be available under the role's and
//!   the database's CONNECTION LIMIT and the server's max_connections: otherwise it would
//!   fail at whatever step it had reached (exit 4);
//! - a command that may commit would wait, unbounded, for a synchronous standby that is
//!   down (exit 4).
//!
//! First of all, on either backend, which database each store really is (`identity`): two
//! stores in one database, swapped URLs and, for a command that writes, a hot standby are
//! refused (exit 2).

use std::collections::BTreeMap;
use std::time::Duration;

use shared::store::Store;
use shared::{admin, pg_server, Conn};

use crate::context::{all_at_once, Context};
use crate::exit::{CliError, CliResult, Exit};

/// What one command needs of the PostgreSQL stores it works on.
#[derive(Debug)]
pub struct Plan {
    pub command: &'static str,
    /// Each store the command connects to, with the most connections it holds there at
    /// once (its pooled session included; pg_dump and psql are connections too).
    pub stores: Vec<(&'static Store, u32)>,
    /// Whether the command may commit (settling a crashed run counts).
    pub commits: bool,
    /// Whether the probe's connection becomes the command's next one (see `probe_store`);
    /// not for commands that open none, or that would only keep it idle through a dump.
    pub keeps_probe: bool,
    /// Whether the command writes to the stores' databases (a hot standby refuses it):
    /// every command that may commit but backup, which reads (backing up a standby is
    /// common practice), and smoke, whose checklist writes before it rolls back.
    pub writes: bool,
    /// Whether the command guards a destructive step (`--force`, `--confirm`).
    pub guards: bool,
    /// The store whose history comes from `--migrations-dir` rather than this build: its
    /// database is not judged against the shipped histories (a fixture may be any).
    pub history_from_dir: Option<&'static str>,
}

/// The preflight's own second connection (the pooler probe) is open while the run's
/// session is, before the command opens any other.
const PROBE_CONNECTIONS: u32 = 2;

/// What the server told us about one store's session.
struct Seen {
    store: &'static Store,
    need: u32,
    capacity: pg_server::Capacity,
}

/// Runs every check of `plan` on its PostgreSQL stores. A store that cannot be reached
/// is left to the command, which reports it its own way.
pub fn check(ctx: &Context, plan: &Plan) -> CliResult<()> {
    let started = std::time::Instant::now();
    crate::identity::check(
        ctx,
        &crate::identity::Needs {
            command: plan.command,
            stores: plan.stores.iter().map(|(s, _)| *s).collect(),
            writes: plan.writes,
            guards: plan.guards,
            history_from_dir: plan.history_from_dir,
        },
    )?;
    let servers: Vec<(&'static Store, u32)> = plan
        .stores
        .iter()
        .copied()
        .filter(|(s, _)| ctx.url(s).is_ok_and(|u| u.sqlite_path().is_none()))
        .collect();
    if servers.is_empty() {
        return Ok(());
    }
    // Every session is open before any count, so that each count sees all of ours.
    let opened = all_at_once(&servers, "preflight", |&(store, need)| {
        Ok(ctx.session(store).ok().map(|s| (store, need, s)))
    })?;
    let seen: Vec<Seen> = opened
        .into_iter()
        .flatten()
        .map(|(store, need, mut session)| {
            let Conn::Postgres(pg) = &mut *session else {
                return Ok(None);
            };
            pg_server::capacity(pg)
                .map(|capacity| {
                    ctx.note_server(store.name, |f| f.two_phase = Some(capacity.two_phase));
                    Some(Seen {
                        store,
                        need: need.max(PROBE_CONNECTIONS),
                        capacity,
                    })
                })
                .map_err(|e| ctx.query_error(store, "reading connection limits", e))
        })
        .collect::<CliResult<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    check_capacity(ctx, plan, &seen)?;
    all_at_once(&seen, "preflight", |seen| probe_store(ctx, plan, seen))?;
    tracing::info!(
        command = plan.command,
        millis = started.elapsed().as_millis() as u64,
        "preflight passed"
    );
    Ok(())
}

impl Seen {
    /// The names of the limits this store's connections count against.
    fn capacity_scopes(&self) -> [String; 3] {
        let c = &self.capacity;
        [
            format!("role {} on {}", c.role, c.server),
            format!("database {} on {}", c.database, c.server),
            format!("server {}", c.server),
        ]
    }
}

/// One limit and the stores of this command it covers.
struct Scope {
    /// Connections the command holds at once under this limit.
    need: u32,
    /// What the limit leaves (the least any of our sessions saw).
    left: i64,
    /// Our own sessions among the used ones: the run's, so available to it.
    ours: i64,
    store: &'static Store,
    what: &'static str,
}

/// Refuses when a limit leaves fewer connections than the command holds at once. The
/// role's and the server's limits cover every store of theirs together.
fn check_capacity(ctx: &Context, plan: &Plan, seen: &[Seen]) -> CliResult<()> {
    let mut scopes: BTreeMap<String, Scope> = BTreeMap::new();
    for s in seen {
        let c = &s.capacity;
        let [role, database, server] = s.capacity_scopes();
        let limits = [
            (role, c.role_left, "the role's CONNECTION LIMIT"),
            (database, c.database_left, "the database's CONNECTION LIMIT"),
            (
                server,
                Some(c.server_left),
                "max_connections less the reserved slots",
            ),
        ];
        for (name, left, what) in limits {
            let Some(left) = left else { continue };
            let scope = scopes.entry(name).or_insert(Scope {
                need: 0,
                left,
                ours: 0,
                store: s.store,
                what,
            });
            scope.need += s.need;
            scope.left = scope.left.min(left);
            scope.ours += 1;
        }
    }
    for (name, scope) in scopes {
        let allowed = scope.left + scope.ours;
        if i64::from(scope.need) > allowed {
            let url = ctx.url(scope.store)?.redacted().to_string();
            return Err(CliError::new(
                Exit::Database,
                anyhow::anyhow!(
                    "{} needs {} connection(s) at once to {name} ({} at {url}), the server allows {} \
                     ({}, less the sessions already open); nothing was changed. Raise the limit or \
                     close other sessions, then try again",
                    plan.command,
                    scope.need,
                    scope.store.name,
                    allowed.max(0),
                    scope.what
                ),
            ));
        }
    }
    Ok(())
}

/// The pooler probe and, for a command that may commit, the synchronous standby check,
/// on a second connection beside the run's session. When the plan says so, that
/// connection is kept for the command's own next one (see `Context::park_spare`):
/// reconnecting would cost a handshake, and under a limit the command fits exactly, the
/// closed connection's server process could still count when the command opened its own.
///
/// A direct session needs no pooler probe, and where commits wait for no synchronous
/// standby there is nothing to ask it: the command's next connection then opens in the
/// background while the command takes its locks (or not at all, when it opens none).
fn probe_store(ctx: &Context, plan: &Plan, seen: &Seen) -> CliResult<()> {
    let store = seen.store;
    let direct = direct_to_server(ctx.url(store)?, &seen.capacity.server);
    let asks_standby = plan.commits && seen.capacity.sync.standby_names.is_some();
    if direct && !asks_standby {
        if plan.keeps_probe {
            ctx.open_spare(store);
        }
        return Ok(());
    }
    let mut session = ctx.session(store)?;
    let Ok(mut side) = ctx.connect(store) else {
        return Ok(());
    };
    probes(ctx, plan, seen, direct, &mut session, &mut side)?;
    if plan.keeps_probe {
        ctx.park_spare(store.name, side);
    }
    Ok(())
}

/// Whether the run's session is plainly a direct TCP session with the server: the URL
/// alone names the address and port, and the server says it accepted the session on that
/// very address and port (`server` is `inet_server_addr():port`). Only the server listens
/// there, so no pooler sits between, and the pooler probe can be spared. Names (other than
/// `localhost`, taken for loopback), sockets and parameters always get the probe.
fn direct_to_server(url: &shared::DatabaseUrl, server: &str) -> bool {
    let Some((host, port)) = url.explicit_tcp_endpoint() else {
        return false;
    };
    let Some((addr, server_port)) = server.rsplit_once(':') else {
        return false;
    };
    let (Ok(addr), Ok(server_port)) =
        (addr.parse::<std::net::IpAddr>(), server_port.parse::<u16>())
    else {
        return false;
    };
    let same_host = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip == addr,
        Err(_) => host.eq_ignore_ascii_case("localhost") && addr.is_loopback(),
    };
    same_host && server_port == port
}

fn probes(
    ctx: &Context,
    plan: &Plan,
    seen: &Seen,
    direct: bool,
    session: &mut Conn,
    side: &mut Conn,
) -> CliResult<()> {
    let store = seen.store;
    let url = ctx.url(store)?;
    let pooled = if direct {
        None
    } else {
        shared_server_sessions(session, side, store)
            .map_err(|e| ctx.query_error(store, "probing for a connection pooler", e))?
    };
    if let Some(evidence) = pooled {
        return Err(CliError::usage(format!(
            "the {} database at {} is reached through a connection pooler in transaction or \
             statement mode ({evidence}): session locks and prepared statements would not \
             belong to this run; nothing was changed. Use a direct URL to the server, or a \
             session-pooled one (pgbouncer: pool_mode = session)",
            store.name,
            url.redacted()
        )));
    }
    if !plan.commits {
        return Ok(());
    }
    let (Conn::Postgres(run), Conn::Postgres(pg)) = (session, side) else {
        return Ok(());
    };
    let bound = ctx.settings.lock_timeout.max(Duration::from_secs(1));
    if let Some(why) = missing_sync_standby(&seen.capacity.sync, run, pg, bound)
        .map_err(|e| ctx.query_error(store, "checking synchronous replication", e))?
    {
        return Err(CliError::new(
            Exit::Database,
            anyhow::anyhow!(
                "the {} database at {}: {why}, so every commit would wait for it; nothing was \
                 changed. Bring the standby back, or change synchronous_standby_names (or \
                 synchronous_commit for this role)",
                store.name,
                url.redacted()
            ),
        ));
    }
    Ok(())
}

/// A key no other run uses: this process's id under a tag of its own.
fn probe_key(store: &Store) -> i64 {
    admin::lock_key(store.name) ^ (1 << 41) ^ (i64::from(std::process::id()) << 8)
}

/// Whether the pooler gives one server session to several clients. The run's session
/// takes a session lock and goes idle; a second client then asks for the same lock and
/// for its server process. A session-mode pooler (or none) keeps the run's server session
/// for the run, so the second client gets another process and cannot take the lock; a
/// transaction-mode one hands the idle server session to whoever asks next.
fn shared_server_sessions(
    run: &mut Conn,
    side: &mut Conn,
    store: &Store,
) -> diesel::QueryResult<Option<String>> {
    let (Conn::Postgres(_), Conn::Postgres(_)) = (&*run, &*side) else {
        return Ok(None);
    };
    let key = probe_key(store);
    let pid = |c: &mut Conn| match c {
        Conn::Postgres(pg) => pg_server::backend_pid(pg),
        Conn::Sqlite(_) => Ok(0),
    };
    let first = pid(run)?;
    if !admin::try_advisory_lock(run, key)? {
        tracing::warn!(store = store.name, "pooler probe key busy; probe skipped");
        return Ok(None);
    }
    let other = pid(side)?;
    let taken = admin::try_advisory_lock(side, key)?;
    if taken {
        let _ = admin::advisory_unlock(side, key);
    }
    let later = pid(run)?;
    let _ = admin::advisory_unlock(run, key);
    Ok(if other == first {
        Some(format!(
            "two clients were given the same server process {first}"
        ))
    } else if taken {
        Some("a second client could take this run's session lock".into())
    } else if later != first {
        Some(format!(
            "this run's session moved from server process {first} to {later} between transactions"
        ))
    } else {
        None
    })
}

/// Why commits would hang on synchronous replication (`state`, read with the capacity),
/// or `None`. Which standbys are in sync is only shown to roles with pg_read_all_stats;
/// for any other role, or when some standby claims to be in sync, an empty commit on the
/// side connection tells, cancelled from the run's session after `bound`.
fn missing_sync_standby(
    state: &pg_server::SyncReplication,
    run: &mut diesel::PgConnection,
    pg: &mut diesel::PgConnection,
    bound: Duration,
) -> diesel::QueryResult<Option<String>> {
    let Some(names) = &state.standby_names else {
        return Ok(None);
    };
    let wanted =
        format!("commits wait for the synchronous standby '{names}' (synchronous_standby_names)");
    if state.senders == 0 {
        return Ok(Some(format!("{wanted} and no standby is connected")));
    }
    if state.synchronous == Some(0) {
        return Ok(Some(format!(
            "{wanted} and none of the {} connected standby(s) is synchronous",
            state.senders
        )));
    }
    let pid = pg_server::backend_pid(pg)?;
    pg_server::begin_probe(pg)?;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let answered = std::thread::scope(|scope| {
        let committing = scope.spawn(move || {
            let committed = pg_server::commit_probe(pg);
            let _ = done_tx.send(());
            committed
        });
        let answered = done_rx.recv_timeout(bound).is_ok();
        if !answered {
            // The commit goes on waiting for the standby until it is cancelled.
            let _ = pg_server::cancel_backend(run, pid);
        }
        let committed = committing.join();
        (answered, committed)
    });
    let (answered, committed) = answered;
    match committed {
        Ok(result) => result?,
        Err(_) => tracing::warn!("the synchronous standby probe panicked"),
    }
    Ok((!answered).then(|| {
        format!(
            "{wanted} and none confirmed a commit within {}s (lock_timeout_secs)",
            bound.as_secs()
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::direct_to_server;

    #[test]
    fn only_the_servers_own_address_and_port_spare_the_pooler_probe() {
        let url = |u: &str| shared::DatabaseUrl::parse(u).expect("url");
        assert!(direct_to_server(
            &url("postgres://u@127.0.0.1:5432/db"),
            "127.0.0.1:5432"
        ));
        assert!(direct_to_server(
            &url("postgres://u@localhost/db"),
            "127.0.0.1:5432"
        ));
        assert!(direct_to_server(&url("postgres://u@[::1]/db"), "::1:5432"));
        // pgbouncer beside the server: the session arrives on the server's own port.
        assert!(!direct_to_server(
            &url("postgres://u@127.0.0.1:6432/db"),
            "127.0.0.1:5432"
        ));
        assert!(!direct_to_server(
            &url("postgres://u@db.internal/db"),
            "10.0.0.5:5432"
        ));
        assert!(!direct_to_server(
            &url("postgres://u@localhost/db"),
            "local socket:5432"
        ));
        assert!(!direct_to_server(
            &url("postgres://u@127.0.0.1/db?host=/run/pg"),
            "127.0.0.1:5432"
        ));
    }
}
