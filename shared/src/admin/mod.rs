//! Administrative SQL the orchestrator needs but no store owns. What both backends share
//! is here (lock keys, the run journal, transactions through diesel's manager); what only
//! one has is in its own file: PostgreSQL's advisory locks, schema rebuild with its grants,
//! two-phase commit and snapshots (`postgres.rs`), SQLite's `VACUUM INTO` and its checks
//! (`sqlite.rs`).

use diesel::sql_types::{BigInt, Bool, Text};
use diesel::{QueryableByName, RunQueryDsl};

use crate::db::{quote_literal, Conn};

mod postgres;
mod sqlite;

pub use postgres::*;
pub use sqlite::*;

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

/// The key a store's rebuild transaction holds on its own session for as long as that
/// session lives. A run killed mid-rebuild leaves its backend running until the statement
/// in flight ends (a `PREPARE TRANSACTION` included): the run's main lock is gone with its
/// pooled session, but this one stays until that backend exits, so whoever settles waits
/// for it before reading what the dead run left.
pub fn rebuild_lock_key(store: &str) -> i64 {
    lock_key(store) ^ (1 << 40)
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

/// The runs this database's journal records. Only reads.
pub fn journal_entries(conn: &mut Conn) -> diesel::QueryResult<Vec<JournalEntry>> {
    if !crate::catalog::has_table(conn, JOURNAL_TABLE)? {
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
    if !crate::catalog::has_table(conn, JOURNAL_TABLE)? {
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
