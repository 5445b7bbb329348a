//! Scratch databases: where `diff` and `squash` build what a history produces. On
//! PostgreSQL a temporary database on a server (`CREATE DATABASE … TEMPLATE template0`,
//! a unique `orch_shadow_<host>_<pid>_<nanos>_<n>` name), on SQLite an in-memory database.
//! A scratch database is dropped when its guard goes out of scope, on error paths too, and
//! [`drop_all`] drops every one still alive (the CLI's Ctrl-C handler calls it). A process
//! killed with SIGKILL drops nothing, so creating a scratch database first drops those of
//! this machine whose creating process is dead and that nobody is connected to.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::{PgConnection, RunQueryDsl};

use crate::db::{quote_ident, Conn};
use crate::error::DbError;
use crate::url::{Backend, DatabaseUrl};

/// Prefix of every scratch database's name, so that a leftover is recognisable.
pub const SCRATCH_PREFIX: &str = "orch_shadow_";

/// (server URL to drop from, database name) of every live PostgreSQL scratch database.
static LIVE: Mutex<Vec<(DatabaseUrl, String)>> = Mutex::new(Vec::new());
static SEQ: AtomicU32 = AtomicU32::new(0);

/// A scratch database and a connection to it.
pub struct Scratch {
    conn: Option<Conn>,
    url: DatabaseUrl,
    /// The server connection URL it is dropped from, and its name (PostgreSQL only).
    pg: Option<(DatabaseUrl, String)>,
}

impl Scratch {
    /// Creates an empty scratch database of `backend`. For PostgreSQL, `server` is a URL
    /// of the server to create it on (its own database is only used to connect).
    pub fn create(
        store: &str,
        backend: Backend,
        server: Option<&DatabaseUrl>,
    ) -> Result<Scratch, DbError> {
        match backend {
            Backend::Sqlite => {
                let url = DatabaseUrl::sqlite_in_memory();
                Ok(Scratch {
                    conn: Some(Conn::establish(store, &url)?),
                    url,
                    pg: None,
                })
            }
            Backend::Postgres => {
                let server = server.ok_or_else(|| DbError::Connect {
                    store: store.into(),
                    url: String::new(),
                    reason: "a PostgreSQL scratch database needs a server URL".into(),
                })?;
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default();
                let name = format!(
                    "{SCRATCH_PREFIX}{}_{}_{}_{}",
                    host_tag(),
                    std::process::id(),
                    nanos,
                    SEQ.fetch_add(1, Ordering::Relaxed)
                );
                let query_error = |action: &str, e: &dyn std::fmt::Display| DbError::Query {
                    store: store.into(),
                    url: server.redacted().to_string(),
                    action: action.into(),
                    reason: crate::db::one_line(&e.to_string()),
                };
                // Our session state too: creating and dropping a database wait on locks.
                let mut admin = crate::db::open_postgres(server)
                    .map_err(|e| query_error("connecting to create a scratch database", &e))?;
                // A standby refuses CREATE DATABASE: say so, rather than relay its error.
                let (replica, _) = crate::pg_identity::recovery_and_mark(&mut admin, None)
                    .map_err(|e| query_error("asking the server whether it is a standby", &e))?;
                if replica {
                    return Err(DbError::ReadOnlyReplica {
                        store: store.into(),
                        url: server.redacted().to_string(),
                        what: "no scratch database can be created there".into(),
                        hint: "Pass --shadow-url with a primary server to build it on".into(),
                    });
                }
                sweep_dead(&mut admin);
                // Registered before it exists: a Ctrl-C between the two still drops it.
                if let Ok(mut live) = LIVE.lock() {
                    live.push((server.clone(), name.clone()));
                }
                let mut scratch = Scratch {
                    conn: None,
                    url: server.clone(),
                    pg: Some((server.clone(), name.clone())),
                };
                diesel::sql_query(format!(
                    "CREATE DATABASE {} TEMPLATE template0",
                    quote_ident(&name)
                ))
                .execute(&mut admin)
                .map_err(|e| {
                    query_error(
                        &format!(
                            "creating the scratch database {name} (a role with CREATEDB is needed; --shadow-url names another server)"
                        ),
                        &e,
                    )
                })?;
                let url = server.with_database(&name).ok_or_else(|| {
                    query_error("naming the scratch database", &"cannot derive its URL")
                })?;
                scratch.conn = Some(Conn::establish(store, &url)?);
                scratch.url = url;
                tracing::info!(database = %name, "scratch database created");
                Ok(scratch)
            }
        }
    }

    pub fn conn(&mut self) -> &mut Conn {
        match self.conn.as_mut() {
            Some(conn) => conn,
            // `create` only returns a Scratch with its connection set.
            None => unreachable!("a scratch database without a connection"),
        }
    }

    /// The scratch database's URL (`:memory:` for SQLite).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The scratch database's name (PostgreSQL) or `:memory:`.
    pub fn name(&self) -> &str {
        self.pg.as_ref().map_or(":memory:", |(_, n)| n.as_str())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Our own session must end before the database can go.
        self.conn = None;
        if let Some((server, name)) = self.pg.take() {
            drop_database(&server, &name);
            if let Ok(mut live) = LIVE.lock() {
                live.retain(|(_, n)| n != &name);
            }
        }
    }
}

fn drop_database(server: &DatabaseUrl, name: &str) {
    match crate::db::open_postgres(server) {
        Ok(mut admin) => {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
            match diesel::sql_query(sql).execute(&mut admin) {
                Ok(_) => tracing::info!(database = %name, "scratch database dropped"),
                Err(e) => eprintln!("warning: could not drop scratch database {name}: {e}"),
            }
        }
        Err(e) => eprintln!(
            "warning: could not drop scratch database {name} on {}: {}",
            server.redacted(),
            e
        ),
    }
}

/// A short, stable tag of this machine, so that a sweep only judges scratch databases whose
/// creator's pid it can look up.
fn host_tag() -> String {
    use sha2::{Digest, Sha256};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_else(|_| std::env::var("HOSTNAME").unwrap_or_default());
    let digest = Sha256::digest(host.trim().as_bytes());
    digest.iter().take(3).map(|b| format!("{b:02x}")).collect()
}

/// The pid of the process that created scratch database `name`
/// (`orch_shadow_<host>_<pid>_…`), whatever machine it ran on.
pub fn creator_pid(name: &str) -> Option<u32> {
    name.strip_prefix(SCRATCH_PREFIX)?
        .split('_')
        .nth(1)?
        .parse()
        .ok()
}

/// Drops the scratch databases that killed runs on this machine left: created here, by a
/// process that no longer exists, with no session connected. Returns how many it dropped.
pub fn sweep_dead(admin: &mut PgConnection) -> usize {
    #[derive(diesel::QueryableByName)]
    struct Idle {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let mine = format!("{SCRATCH_PREFIX}{}_", host_tag());
    let idle: Vec<Idle> = diesel::sql_query(format!(
        "SELECT datname::text AS datname FROM pg_database d \
         WHERE starts_with(datname::text, {}) \
           AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
        crate::db::quote_literal(&mine)
    ))
    .load(admin)
    .unwrap_or_default();
    let mut dropped = 0;
    for Idle { datname } in idle {
        let Some(pid) = creator_pid(&datname) else {
            continue;
        };
        if pid == std::process::id() || crate::process::alive(pid) {
            continue;
        }
        // Without FORCE: should anyone have connected meanwhile, it stays.
        let sql = format!("DROP DATABASE IF EXISTS {}", quote_ident(&datname));
        if diesel::sql_query(sql).execute(admin).is_ok() {
            tracing::warn!(database = %datname, "dropped a scratch database a killed run left");
            dropped += 1;
        }
    }
    dropped
}

/// Drops every scratch database this process still holds (for a Ctrl-C handler).
pub fn drop_all() {
    let live: Vec<(DatabaseUrl, String)> = match LIVE.lock() {
        Ok(mut live) => std::mem::take(&mut *live),
        Err(_) => return,
    };
    for (server, name) in live {
        drop_database(&server, &name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_name_tells_its_creators_pid() {
        assert_eq!(
            creator_pid("orch_shadow_a1b2c3_4242_1700000000_0"),
            Some(4242)
        );
        assert_eq!(creator_pid("orch_shadow_a1b2c3_x_1_0"), None);
        assert_eq!(creator_pid("orcht_auth_4242_1"), None);
    }
}
