//! The session state every PostgreSQL connection of a store starts with, whoever opens it
//! (the orchestrator, a store crate's pool, a service).

use diesel::pg::PgConnection;

/// Session state, set with SQL right after connecting: a pooler such as pgbouncer rejects
/// libpq's `options` startup parameter, so `SET` is the one way that works everywhere.
/// - `lock_timeout`: every lock wait of every statement ends within the run's bound;
/// - `idle_in_transaction_session_timeout = 0`: a run holds a snapshot open while pg_dump
///   reads (and a transaction while the other store rebuilds); a role or database default
///   must not end that session under it, taking the run's locks with it;
/// - `idle_session_timeout = 0` (14+): the session holding a run's lock idles between steps;
/// - `client_connection_check_interval` (14+): a backend whose client died while it waits
///   on a lock notices within a second and ends, releasing what it holds. Not every
///   platform supports it, hence the exception handler.
pub fn prepare_session(conn: &mut PgConnection, lock_timeout_ms: u64) -> diesel::QueryResult<()> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute(&format!(
        "SET lock_timeout = '{lock_timeout_ms}ms';
         SET idle_in_transaction_session_timeout = 0;
         DO $orch$ BEGIN
           IF current_setting('server_version_num')::int >= 140000 THEN
             PERFORM set_config('idle_session_timeout', '0', false);
             BEGIN
               PERFORM set_config('client_connection_check_interval', '1s', false);
             EXCEPTION WHEN OTHERS THEN NULL;
             END;
           END IF;
         END $orch$;"
    ))
}
