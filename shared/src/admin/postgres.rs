//! PostgreSQL's administrative SQL: server facts, advisory locks, the schema rebuild with
//! its owner and grants, the write fence, two-phase commit and exported snapshots.

use diesel::RunQueryDsl;

use super::{pg, Flag, Number, TextRow, GID_PREFIX};
use crate::db::{quote_ident, quote_literal, Conn};

/// The server's major version (15 for 15.4).
pub fn server_major(conn: &mut Conn) -> diesel::QueryResult<u32> {
    let row: Number =
        diesel::sql_query("SELECT current_setting('server_version_num')::bigint AS v")
            .get_result(pg(conn)?)?;
    Ok(u32::try_from(row.v / 10_000).unwrap_or(0))
}

/// Whether the server allows `PREPARE TRANSACTION`.
pub fn two_phase_available(conn: &mut Conn) -> diesel::QueryResult<bool> {
    let row: Number =
        diesel::sql_query("SELECT current_setting('max_prepared_transactions')::bigint AS v")
            .get_result(pg(conn)?)?;
    Ok(row.v > 0)
}

/// `pg_advisory_lock(key)`, as a statement for scripts run by psql (prints nothing).
pub fn advisory_lock_sql(key: i64) -> String {
    format!("DO $orch$ BEGIN PERFORM pg_advisory_lock({key}); END $orch$;\n")
}

/// Takes a session-level advisory lock, waiting (bounded by the session's lock_timeout).
pub fn advisory_lock(conn: &mut Conn, key: i64) -> diesel::QueryResult<()> {
    diesel::sql_query(format!("SELECT pg_advisory_lock({key})::text AS v"))
        .get_result::<TextRow>(pg(conn)?)
        .map(|_| ())
}

/// Releases a session-level advisory lock this session holds.
pub fn advisory_unlock(conn: &mut Conn, key: i64) -> diesel::QueryResult<bool> {
    let row: Flag = diesel::sql_query(format!("SELECT pg_advisory_unlock({key}) AS v"))
        .get_result(pg(conn)?)?;
    Ok(row.v)
}

/// `pg_try_advisory_lock_shared(key)`: shared with other readers, not with a run holding
/// the key exclusively.
pub fn try_advisory_lock_shared(conn: &mut Conn, key: i64) -> diesel::QueryResult<bool> {
    let row: Flag = diesel::sql_query(format!("SELECT pg_try_advisory_lock_shared({key}) AS v"))
        .get_result(pg(conn)?)?;
    Ok(row.v)
}

/// Releases one shared hold of `key` by this session.
pub fn advisory_unlock_shared(conn: &mut Conn, key: i64) -> diesel::QueryResult<bool> {
    let row: Flag = diesel::sql_query(format!("SELECT pg_advisory_unlock_shared({key}) AS v"))
        .get_result(pg(conn)?)?;
    Ok(row.v)
}

pub fn try_advisory_lock(conn: &mut Conn, key: i64) -> diesel::QueryResult<bool> {
    let row: Flag = diesel::sql_query(format!("SELECT pg_try_advisory_lock({key}) AS v"))
        .get_result(pg(conn)?)?;
    Ok(row.v)
}

/// Creates the store's schema when it does not exist yet, and makes it the session's
/// (a configured schema other than `public` starts out missing). Only when missing:
/// `CREATE SCHEMA IF NOT EXISTS` needs the right to create schemas even when it exists.
pub fn ensure_schema_sql(schema: &str) -> String {
    let ident = quote_ident(schema);
    format!(
        "DO $orch$ BEGIN IF to_regnamespace({}) IS NULL THEN CREATE SCHEMA {ident}; END IF; END $orch$;\n\
         SET search_path TO {ident};\n",
        quote_literal(&ident)
    )
}

/// The write fence of a rebuild, as one statement: every table of the schema (the
/// connection's current one) locked `EXCLUSIVE` in the rebuild's transaction. Readers go
/// on reading; writers (and foreign-key checks from other schemas) wait until the
/// rebuild ends, so a snapshot taken after it holds exactly what the rebuild drops.
/// Inheriting children and partitions, wherever they live, are locked with their parent.
pub fn fence_sql() -> String {
    "DO $orch$ DECLARE t text; BEGIN \
       SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', ') INTO t \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p'); \
       IF t IS NOT NULL THEN EXECUTE 'LOCK TABLE ' || t || ' IN EXCLUSIVE MODE'; END IF; \
     END $orch$;\n"
        .to_string()
}

/// The schema's name and the SQL that drops it with everything in it and recreates it with
/// the same owner and grants (`DROP SCHEMA public CASCADE` alone would lose both).
pub fn schema_rebuild_sql(conn: &mut Conn) -> diesel::QueryResult<(String, String)> {
    let c = pg(conn)?;
    let schema: TextRow = diesel::sql_query("SELECT current_schema()::text AS v").get_result(c)?;
    let owner: TextRow = diesel::sql_query(format!(
        "SELECT nspowner::regrole::text AS v FROM pg_namespace WHERE nspname = {}",
        quote_literal(&schema.v)
    ))
    .get_result(c)?;
    let grants: Vec<TextRow> = diesel::sql_query(format!(
        "SELECT format('GRANT %s ON SCHEMA %I TO %s%s', a.privilege_type, n.nspname, \
                CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(a.grantee::regrole::text) END, \
                CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) AS v \
         FROM pg_namespace n, aclexplode(n.nspacl) a \
         WHERE n.nspname = {} AND a.grantee <> n.nspowner ORDER BY 1",
        quote_literal(&schema.v)
    ))
    .load(c)?;
    let name = quote_ident(&schema.v);
    // regrole::text is already quoted where it needs to be.
    let mut sql = format!(
        "DROP SCHEMA {name} CASCADE;\nCREATE SCHEMA {name};\nALTER SCHEMA {name} OWNER TO {};\n",
        owner.v
    );
    for grant in grants {
        sql.push_str(&grant.v);
        sql.push_str(";\n");
    }
    Ok((schema.v, sql))
}

/// Global ids of our prepared transactions on this database.
pub fn prepared_transactions(conn: &mut Conn) -> diesel::QueryResult<Vec<String>> {
    let sql = format!(
        "SELECT gid::text AS v FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE {} ORDER BY 1",
        quote_literal(&format!("{GID_PREFIX}%"))
    );
    Ok(diesel::sql_query(sql)
        .load::<TextRow>(pg(conn)?)?
        .into_iter()
        .map(|r| r.v)
        .collect())
}

pub fn commit_prepared(conn: &mut Conn, gid: &str) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!("COMMIT PREPARED {}", quote_literal(gid)))
}

pub fn rollback_prepared(conn: &mut Conn, gid: &str) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!("ROLLBACK PREPARED {}", quote_literal(gid)))
}

/// A `DO` block that aborts the transaction unless each table of `schema` holds the
/// expected number of rows (restore checks the manifest's counts before committing).
pub fn row_count_check_sql(schema: &str, expected: &[(String, i64)]) -> String {
    let mut sql = String::from("DO $orch$ BEGIN\n");
    for (table, n) in expected {
        let rel = format!("{}.{}", quote_ident(schema), quote_ident(table));
        let name = quote_literal(table).replace('%', "%%");
        sql.push_str(&format!(
            "IF (SELECT count(*) FROM {rel}) <> {n} THEN RAISE EXCEPTION '% holds % rows, the manifest says {n}', {name}, (SELECT count(*) FROM {rel}); END IF;\n"
        ));
    }
    sql.push_str("END $orch$;\n");
    sql
}

/// Exports the current transaction's snapshot for `pg_dump --snapshot`.
pub fn export_snapshot(conn: &mut Conn) -> diesel::QueryResult<String> {
    let row: TextRow =
        diesel::sql_query("SELECT pg_export_snapshot()::text AS v").get_result(pg(conn)?)?;
    Ok(row.v)
}

/// `PREPARE TRANSACTION`: the transaction survives this session (and a crash of it) until
/// `COMMIT PREPARED` or `ROLLBACK PREPARED`. The connection is no longer in a transaction
/// afterwards; it must only be used for those two statements.
pub fn prepare(conn: &mut Conn, gid: &str) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!("PREPARE TRANSACTION {}", quote_literal(gid)))
}

/// Bounds this session's waits for locks: a read that would wait on a lock (a reset
/// committing, a prepared transaction) fails instead of hanging.
pub fn set_lock_timeout(conn: &mut Conn, secs: u64) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!("SET lock_timeout = '{}s'", secs.max(1)))
}
