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
///   platform supports it: where the server refuses it, the session goes without.
///
/// Plain SQL in one round trip, no `DO` block: a block would load PL/pgSQL into every new
/// session, about 2 ms of server time per connection (a reset opens four). The settings
/// of 14 and later are set only on 14 and later (a one-time filter: on an older server
/// `set_config` is never called with names it does not know).
pub fn prepare_session(conn: &mut PgConnection, lock_timeout_ms: u64) -> diesel::QueryResult<()> {
    use diesel::connection::SimpleConnection;
    let set = |newer: &str| {
        format!(
            "SET lock_timeout = '{lock_timeout_ms}ms';
             SET idle_in_transaction_session_timeout = 0;
             SELECT {newer} WHERE current_setting('server_version_num')::int >= 140000;"
        )
    };
    const BOTH: &str = "set_config('idle_session_timeout', '0', false), \
                        set_config('client_connection_check_interval', '1s', false)";
    // One implicit transaction: a refusal undoes the whole string, which goes again
    // without the setting the platform lacks.
    conn.batch_execute(&set(BOTH))
        .or_else(|_| conn.batch_execute(&set("set_config('idle_session_timeout', '0', false)")))
}
