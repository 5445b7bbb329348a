//! Administrative SQL the orchestrator needs but no store owns: locks, the schema rebuild
//! with its grants, two-phase commit, the reset journal and SQLite's `VACUUM INTO`.

use diesel::sql_types::{BigInt, Bool, Text};
use diesel::{QueryableByName, RunQueryDsl};

use crate::db::{quote_ident, quote_literal, Conn};

/// The base of the advisory lock keys orchestrator runs take ("orchestr" in ASCII).
pub const ADVISORY_LOCK_KEY: i64 = 0x6f72_6368_6573_7472;

/// The advisory lock key of one store. Advisory locks are per database; a key per store
/// keeps two stores that share a database from locking each other out.
pub fn lock_key(store: &str) -> i64 {
    let tag = store
        .bytes()
        .fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(u16::from(b)));
    ADVISORY_LOCK_KEY ^ i64::from(tag)
}

/// Prefix of the global ids of our prepared transactions: `orch_<run>_<store>`.
pub const GID_PREFIX: &str = "orch_";

/// The reset journal: a row per reset run that a store's rebuild took part in, committed
/// atomically with that store's new schema. The first store to commit thereby records the
/// decision; a later run reads it to finish what a crash interrupted.
pub const JOURNAL_TABLE: &str = "__orchestrator_resets";

/// One number, for single-value queries (`… AS v`).
#[derive(QueryableByName)]
pub(crate) struct Number {
    #[diesel(sql_type = BigInt)]
    pub(crate) v: i64,
}

/// One boolean, likewise.
#[derive(QueryableByName)]
pub(crate) struct Flag {
    #[diesel(sql_type = Bool)]
    pub(crate) v: bool,
}

#[derive(QueryableByName)]
struct TextRow {
    #[diesel(sql_type = Text)]
    v: String,
}

/// The PostgreSQL connection inside `conn`; an error on SQLite.
pub(crate) fn pg(conn: &mut Conn) -> diesel::QueryResult<&mut diesel::PgConnection> {
    match conn {
        Conn::Postgres(c) => Ok(c),
        Conn::Sqlite(_) => Err(diesel::result::Error::QueryBuilderError(
            "this operation is only defined for PostgreSQL".into(),
        )),
    }
}

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

/// The key a store's rebuild transaction holds on its own session for as long as that
/// session lives. A run killed mid-rebuild leaves its backend running until the statement
/// in flight ends (a `PREPARE TRANSACTION` included): the run's main lock is gone with its
/// pooled session, but this one stays until that backend exits, so whoever settles waits
/// for it before reading what the dead run left.
pub fn rebuild_lock_key(store: &str) -> i64 {
    lock_key(store) ^ (1 << 40)
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

/// A run as its journal row records it: which stores it covers (dependency order) and
/// what it was doing, as the orchestrator wrote it (`source`, opaque here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub run: String,
    pub stores: Vec<String>,
    /// What the run replaced the stores' contents with; `None` in rows written before
    /// the journal had this column (those runs were resets).
    pub source: Option<String>,
}

/// Records `run` with the stores it covers and its source, inside a rebuild. The journal
/// is created anew: a rebuild replaces everything in the store, and any row the old
/// contents (or a restored backup) carried belongs to another time.
pub fn journal_record(
    conn: &mut Conn,
    run: &str,
    stores: &[&str],
    source: &str,
) -> diesel::QueryResult<()> {
    conn.batch_execute(&journal_record_sql(run, stores, source))
}

/// The SQL of [`journal_record`], for scripts run by `psql`.
pub fn journal_record_sql(run: &str, stores: &[&str], source: &str) -> String {
    format!(
        "DROP TABLE IF EXISTS {JOURNAL_TABLE};\n\
         CREATE TABLE {JOURNAL_TABLE} (run_id TEXT PRIMARY KEY NOT NULL, stores TEXT NOT NULL, \
         source TEXT, created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);\n\
         INSERT INTO {JOURNAL_TABLE} (run_id, stores, source) VALUES ({}, {}, {});\n",
        quote_literal(run),
        quote_literal(&stores.join(",")),
        quote_literal(source)
    )
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

/// The runs this database's journal records. Only reads.
pub fn journal_entries(conn: &mut Conn) -> diesel::QueryResult<Vec<JournalEntry>> {
    if !crate::catalog::all_tables(conn)?
        .iter()
        .any(|t| t == JOURNAL_TABLE)
    {
        return Ok(Vec::new());
    }
    #[derive(QueryableByName)]
    struct Entry {
        #[diesel(sql_type = Text)]
        run_id: String,
        #[diesel(sql_type = Text)]
        stores: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
        source: Option<String>,
    }
    let sql = format!("SELECT run_id, stores, source FROM {JOURNAL_TABLE} ORDER BY run_id");
    let rows: Vec<Entry> = match crate::with_conn!(&mut *conn, |c| diesel::sql_query(&sql).load(c))
    {
        Ok(rows) => rows,
        // A journal written by an older build has no source column: its runs were resets.
        Err(e) if e.to_string().contains("source") => {
            let sql = format!(
                "SELECT run_id, stores, NULL AS source FROM {JOURNAL_TABLE} ORDER BY run_id"
            );
            crate::with_conn!(conn, |c| diesel::sql_query(sql).load(c))?
        }
        Err(e) => return Err(e),
    };
    Ok(rows
        .into_iter()
        .map(|e| JournalEntry {
            run: e.run_id,
            stores: e.stores.split(',').map(str::to_string).collect(),
            source: e.source,
        })
        .collect())
}

/// Forgets a finished run.
pub fn journal_clear(conn: &mut Conn, run: &str) -> diesel::QueryResult<()> {
    if !crate::catalog::all_tables(conn)?
        .iter()
        .any(|t| t == JOURNAL_TABLE)
    {
        return Ok(());
    }
    // Losing this delete in a crash only leaves a row the next run clears, so it need
    // not wait for its commit record to reach the disk.
    let delete = format!(
        "DELETE FROM {JOURNAL_TABLE} WHERE run_id = {}",
        quote_literal(run)
    );
    match conn {
        Conn::Postgres(_) => conn.batch_execute(&format!(
            "BEGIN; SET LOCAL synchronous_commit = off; {delete}; COMMIT;"
        )),
        Conn::Sqlite(_) => conn.batch_execute(&delete),
    }
}

/// Writes a consistent copy of a SQLite database to `path` (which must not exist).
pub fn vacuum_into(conn: &mut Conn, path: &std::path::Path) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!(
        "VACUUM INTO {}",
        quote_literal(&path.to_string_lossy())
    ))
}

/// Exports the current transaction's snapshot for `pg_dump --snapshot`.
pub fn export_snapshot(conn: &mut Conn) -> diesel::QueryResult<String> {
    let row: TextRow =
        diesel::sql_query("SELECT pg_export_snapshot()::text AS v").get_result(pg(conn)?)?;
    Ok(row.v)
}

/// SQLite's `PRAGMA quick_check`: `Err` with its findings unless the file is sound.
pub fn sqlite_quick_check(conn: &mut Conn) -> Result<(), String> {
    sqlite_check(conn, "quick_check")
}

/// SQLite's full `PRAGMA integrity_check` (indexes against their tables too).
pub fn sqlite_integrity_check(conn: &mut Conn) -> Result<(), String> {
    sqlite_check(conn, "integrity_check")
}

fn sqlite_check(conn: &mut Conn, pragma: &str) -> Result<(), String> {
    let sql = format!("SELECT {pragma} AS v FROM pragma_{pragma}");
    let rows: Vec<TextRow> = match conn {
        Conn::Sqlite(c) => diesel::sql_query(sql).load(c),
        Conn::Postgres(_) => return Ok(()),
    }
    .map_err(|e| e.to_string())?;
    match rows.first() {
        Some(r) if r.v == "ok" => Ok(()),
        Some(r) => Err(r.v.clone()),
        None => Err(format!("no answer from {pragma}")),
    }
}

/// Opens a transaction through diesel's own transaction manager, so that migrations run
/// inside it become savepoints instead of committing it.
///
/// On SQLite the transaction takes the write lock up front (`BEGIN IMMEDIATE`, waiting up
/// to the busy timeout): a deferred one that reads and then writes cannot wait for a
/// writer ahead of it (SQLite answers BUSY at once rather than risk a deadlock, and in
/// WAL mode a stale snapshot cannot be upgraded at all).
pub fn begin(conn: &mut Conn) -> diesel::QueryResult<()> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    match conn {
        Conn::Sqlite(c) => {
            if crate::db::in_transaction(c) {
                AnsiTransactionManager::begin_transaction(c)
            } else {
                AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
            }
        }
        Conn::Postgres(c) => AnsiTransactionManager::begin_transaction(c),
    }
}

pub fn commit(conn: &mut Conn) -> diesel::QueryResult<()> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    crate::with_conn!(conn, |c| AnsiTransactionManager::commit_transaction(c))
}

pub fn rollback(conn: &mut Conn) -> diesel::QueryResult<()> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    crate::with_conn!(conn, |c| AnsiTransactionManager::rollback_transaction(c))
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
