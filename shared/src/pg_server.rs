//! PostgreSQL server-level SQL the orchestrator needs around its runs: the session state
//! every connection starts with, who holds a lock (and ending a dead run's session), how
//! many connections the server will still give, and whether commits would wait for a
//! synchronous standby.

use diesel::pg::PgConnection;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl};

use crate::admin::{Flag, Number};

pub use store_core::pg_session::prepare_session;

/// A server session holding an advisory lock.
#[derive(Debug, Clone, QueryableByName)]
pub struct Holder {
    #[diesel(sql_type = BigInt)]
    pub pid: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub application_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub client: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub since: Option<String>,
}

impl Holder {
    /// The process id of the orchestrator run of this host that opened this session,
    /// when that process no longer runs (its application name says which: see
    /// `store_core::session`).
    pub fn left_by_dead_run(&self) -> Option<u32> {
        self.application_name
            .as_deref()
            .and_then(crate::session::local_run_pid)
            .filter(|pid| !crate::process::alive(*pid))
    }

    /// "server process 123 (orchestrator pid=9 host=h from 10.0.0.2, connected since …)"
    pub fn describe(&self) -> String {
        format!(
            "server process {} ({}{}, connected since {})",
            self.pid,
            self.application_name
                .clone()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| "unnamed client".into()),
            self.client
                .as_ref()
                .map(|c| format!(" from {c}"))
                .unwrap_or_default(),
            self.since.as_deref().unwrap_or("?")
        )
    }
}

/// Every other session holding (or sharing) advisory lock `key` on this database.
pub fn lock_holders(conn: &mut PgConnection, key: i64) -> diesel::QueryResult<Vec<Holder>> {
    let high = key >> 32;
    let low = key & 0xffff_ffff;
    diesel::sql_query(format!(
        "SELECT a.pid::bigint AS pid, a.application_name::text AS application_name, \
                a.client_addr::text AS client, \
                to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ') AS since \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
           AND l.pid <> pg_backend_pid() \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND l.classid::bigint = {high} AND l.objid::bigint = {low} ORDER BY a.pid"
    ))
    .load(conn)
}

/// Whether this session holds advisory lock `key` (exclusively or shared).
pub fn holds_lock(conn: &mut PgConnection, key: i64) -> diesel::QueryResult<bool> {
    let high = key >> 32;
    let low = key & 0xffff_ffff;
    let row: Flag = diesel::sql_query(format!(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
           AND objsubid = 1 AND pid = pg_backend_pid() \
           AND classid::bigint = {high} AND objid::bigint = {low}) AS v"
    ))
    .get_result(conn)?;
    Ok(row.v)
}

/// `pg_terminate_backend`: `Ok(false)` when the backend was already gone, an error when
/// this role may not end it.
pub fn terminate_backend(conn: &mut PgConnection, pid: i64) -> diesel::QueryResult<bool> {
    let row: Flag =
        diesel::sql_query(format!("SELECT pg_terminate_backend({pid}) AS v")).get_result(conn)?;
    Ok(row.v)
}

/// The server process serving this session.
pub fn backend_pid(conn: &mut PgConnection) -> diesel::QueryResult<i64> {
    let row: Number = diesel::sql_query("SELECT pg_backend_pid()::bigint AS v").get_result(conn)?;
    Ok(row.v)
}

/// How many more connections this role may open to this database, by each of the limits
/// the server enforces at connection time (`None`: that limit does not apply to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// The server as it names itself (address and port), so stores on one server are
    /// counted together.
    pub server: String,
    pub role: String,
    pub database: String,
    /// The role's CONNECTION LIMIT minus its sessions.
    pub role_left: Option<i64>,
    /// The database's CONNECTION LIMIT minus its sessions.
    pub database_left: Option<i64>,
    /// max_connections minus the slots reserved for others minus every session.
    pub server_left: i64,
    /// `max_prepared_transactions > 0`: the server allows two-phase commit. Read here
    /// because a writing command needs it next, and one round trip less is a round trip
    /// less on every store's path.
    pub two_phase: bool,
    /// Synchronous replication as a commit of this role would meet it, read in the same
    /// round trip: on a new connection, planning a query over pg_stat_replication costs
    /// a few milliseconds of its own.
    pub sync: SyncReplication,
}

#[derive(QueryableByName)]
struct CapacityRow {
    #[diesel(sql_type = Text)]
    server: String,
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = Text)]
    database: String,
    #[diesel(sql_type = Bool)]
    superuser: bool,
    #[diesel(sql_type = BigInt)]
    role_limit: i64,
    #[diesel(sql_type = BigInt)]
    role_used: i64,
    #[diesel(sql_type = BigInt)]
    db_limit: i64,
    #[diesel(sql_type = BigInt)]
    db_used: i64,
    #[diesel(sql_type = BigInt)]
    max_connections: i64,
    #[diesel(sql_type = BigInt)]
    reserved: i64,
    #[diesel(sql_type = BigInt)]
    used: i64,
    #[diesel(sql_type = BigInt)]
    prepared: i64,
    #[diesel(embed)]
    sync: SyncRow,
}

/// What the server would still give this role on this database. Sessions count as the
/// server counts them (pg_stat_activity lists every session to any role, details aside);
/// superusers are exempt from role and database limits and may use the reserved slots.
///
/// The sessions and WAL senders are read from the functions under `pg_stat_activity` and
/// `pg_stat_replication`, each scanned once: the same rows the views show (the views add
/// only joins for names), and on a new connection planning six expansions of those views
/// cost 10–15 ms, against 3–5 ms for this.
pub fn capacity(conn: &mut PgConnection) -> diesel::QueryResult<Capacity> {
    // `reserved_connections` (16+) keeps slots for pg_use_reserved_connections too.
    let row: CapacityRow = diesel::sql_query(format!(
        "SELECT COALESCE(host(inet_server_addr()), 'local socket') || ':' || current_setting('port') AS server, \
           current_user::text AS role, current_database()::text AS database, \
           r.rolsuper AS superuser, r.rolconnlimit::bigint AS role_limit, a.role_used, \
           d.datconnlimit::bigint AS db_limit, a.db_used, \
           current_setting('max_connections')::bigint AS max_connections, \
           (current_setting('superuser_reserved_connections')::bigint + \
            COALESCE(current_setting('reserved_connections', true)::bigint, 0)) AS reserved, \
           a.used, current_setting('max_prepared_transactions')::bigint AS prepared, \
           {SYNC_COLUMNS} \
         FROM pg_catalog.pg_roles r, pg_catalog.pg_database d, \
           LATERAL (SELECT count(*) FILTER (WHERE s.usesysid = r.oid) AS role_used, \
                           count(*) FILTER (WHERE s.datid = d.oid) AS db_used, count(*) AS used \
                    FROM pg_catalog.pg_stat_get_activity(NULL) s \
                    WHERE s.backend_type = 'client backend') a, \
           {SYNC_FROM} \
         WHERE r.rolname = current_user AND d.datname = current_database()"
    ))
    .get_result(conn)?;
    let left = |limit: i64, used: i64| (limit >= 0 && !row.superuser).then_some(limit - used);
    let reserved = if row.superuser { 0 } else { row.reserved };
    Ok(Capacity {
        role_left: left(row.role_limit, row.role_used),
        database_left: left(row.db_limit, row.db_used),
        server_left: row.max_connections - reserved - row.used,
        server: row.server,
        role: row.role,
        database: row.database,
        two_phase: row.prepared > 0,
        sync: row.sync.into(),
    })
}

/// What the server says about synchronous replication: the standbys a commit waits for
/// (`None` when commits wait for none), and whether any standby is connected at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReplication {
    pub standby_names: Option<String>,
    /// Connected WAL senders (their pids are visible to every role).
    pub senders: i64,
    /// Senders in sync or quorum state; `None` when this role may not see the state
    /// (it needs pg_read_all_stats).
    pub synchronous: Option<i64>,
}

#[derive(QueryableByName)]
struct SyncRow {
    #[diesel(sql_type = Nullable<Text>)]
    names: Option<String>,
    #[diesel(sql_type = Bool)]
    waits: bool,
    #[diesel(sql_type = BigInt)]
    senders: i64,
    #[diesel(sql_type = BigInt)]
    visible: i64,
    #[diesel(sql_type = BigInt)]
    synchronous: i64,
}

/// The columns of a [`SyncRow`], from [`SYNC_FROM`].
const SYNC_COLUMNS: &str = "NULLIF(current_setting('synchronous_standby_names'), '') AS names, \
     current_setting('synchronous_commit') NOT IN ('off', 'local') AS waits, \
     w.senders, w.visible, w.synchronous";

/// The WAL senders as `pg_stat_replication` lists them (a sender joined to its session);
/// `state` is only shown to roles with pg_read_all_stats.
const SYNC_FROM: &str = "(SELECT count(*) AS senders, count(w.state) AS visible, \
       count(*) FILTER (WHERE w.sync_state IN ('sync', 'quorum')) AS synchronous \
     FROM pg_catalog.pg_stat_get_wal_senders() w \
     JOIN pg_catalog.pg_stat_get_activity(NULL) s ON s.pid = w.pid) w";

impl From<SyncRow> for SyncReplication {
    fn from(row: SyncRow) -> Self {
        SyncReplication {
            standby_names: row.names.filter(|_| row.waits),
            senders: row.senders,
            synchronous: (row.senders == 0 || row.visible > 0).then_some(row.synchronous),
        }
    }
}

/// Opens the probe transaction of [`commit_probe`]: it leaves nothing behind but writes
/// WAL (a temporary table's catalog rows, dropped at commit), so its commit waits for the
/// synchronous standbys as a run's would. A transaction id alone writes no WAL and would
/// not wait.
pub fn begin_probe(conn: &mut PgConnection) -> diesel::QueryResult<()> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute("BEGIN; CREATE TEMPORARY TABLE orch_sync_probe () ON COMMIT DROP;")
}

/// Commits the probe transaction. The wait for the standbys happens after the COMMIT
/// statement's own timeout is disarmed, so only a cancel ([`cancel_backend`], from
/// another session) can cut it off; the empty commit then stands, with a warning.
pub fn commit_probe(conn: &mut PgConnection) -> diesel::QueryResult<()> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute("COMMIT")
}

/// `pg_cancel_backend`: cancels what server process `pid` runs (one of this role's).
pub fn cancel_backend(conn: &mut PgConnection, pid: i64) -> diesel::QueryResult<bool> {
    let row: Flag =
        diesel::sql_query(format!("SELECT pg_cancel_backend({pid}) AS v")).get_result(conn)?;
    Ok(row.v)
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::Text;
    use diesel::{QueryableByName, RunQueryDsl};

    use crate::test_pg::TestServer;
    use crate::Conn;

    #[derive(QueryableByName)]
    struct Settings {
        #[diesel(sql_type = Text)]
        lock: String,
        #[diesel(sql_type = Text)]
        idle_in_transaction: String,
        #[diesel(sql_type = Text)]
        idle: String,
        #[diesel(sql_type = Text)]
        check_interval: String,
        #[diesel(sql_type = Text)]
        plpgsql_loaded: String,
    }

    /// Every connection starts with the run's settings, set in plain SQL: no PL/pgSQL is
    /// loaded into the session for it.
    #[test]
    fn every_session_starts_with_the_run_settings_without_plpgsql() {
        let Some(mut server) = TestServer::connect() else {
            return;
        };
        let mut conn = server.database(&format!("orch_session_{}", std::process::id()), "SELECT 1");
        let Conn::Postgres(pg) = &mut conn else {
            unreachable!()
        };
        let s: Settings = diesel::sql_query(
            "SELECT current_setting('lock_timeout') AS lock,
                    current_setting('idle_in_transaction_session_timeout') AS idle_in_transaction,
                    current_setting('idle_session_timeout') AS idle,
                    current_setting('client_connection_check_interval') AS check_interval,
                    (SELECT count(*) FROM pg_catalog.pg_backend_memory_contexts
                      WHERE name = 'PLpgSQL function hash')::text AS plpgsql_loaded",
        )
        .get_result(pg)
        .expect("settings");
        assert_ne!(s.lock, "0", "a lock wait is bounded");
        assert_eq!(s.idle_in_transaction, "0");
        assert_eq!(s.idle, "0");
        assert_eq!(s.check_interval, "1s");
        assert_eq!(
            s.plpgsql_loaded, "0",
            "PL/pgSQL was loaded into the session"
        );
    }
}
