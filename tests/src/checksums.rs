//! What a store holds, summarised so that two moments can be compared: a checksum of every
//! table's contents (every table in every schema of the database, ordered by primary key),
//! the prepared transactions on the database and, for SQLite, the staged rebuild files
//! beside it. The trials use it to tell the old state from the new one and to prove that a
//! command which only reads changed nothing; row counts alone would miss a table whose rows
//! were replaced by as many others.

use std::collections::BTreeMap;

use diesel::RunQueryDsl;
use sha2::{Digest, Sha256};
use shared::db::{quote_ident, quote_literal};
use shared::Conn;
use test_kit::TestDb;

/// One table's contents: its row count and a digest of its rows in primary-key order
/// (md5 on PostgreSQL, computed by the server; sha256 of the quoted rows on SQLite).
/// `Locked` when a prepared transaction holds the table (a killed two-phase rebuild), so
/// that it cannot be read: the moment is then described by that transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableSum {
    Rows { rows: i64, digest: String },
    Locked,
}

impl TableSum {
    pub fn rows(&self) -> Option<i64> {
        match self {
            TableSum::Rows { rows, .. } => Some(*rows),
            TableSum::Locked => None,
        }
    }
}

/// Every table of a database, by `schema.table` (SQLite's one schema is `main`).
pub type Checksums = BTreeMap<String, TableSum>;

/// Everything a command could change in one store, for before/after comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub tables: Checksums,
    /// Every prepared transaction on this database (gid and transaction id), ours or not.
    pub prepared: Vec<String>,
    /// SQLite: the staged rebuild files beside the live one (`<file>.rebuild-<run>`).
    pub staged: Vec<String>,
}

/// How long a read waits for a table lock. Tables a prepared transaction holds are not
/// read at all; any other wait is a session the caller should have waited out, and fails.
const LOCK_TIMEOUT: &str = "10s";

#[derive(diesel::QueryableByName)]
struct TableRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    schema: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    /// The ORDER BY of the rows: the primary key's columns, or the whole row when there
    /// is none.
    #[diesel(sql_type = diesel::sql_types::Text)]
    order_by: String,
    /// A prepared transaction (no session: `pid IS NULL`) holds it ACCESS EXCLUSIVE, as a
    /// killed run's prepared rebuild holds the tables its `DROP SCHEMA` dropped.
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

#[derive(diesel::QueryableByName)]
struct SumRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    rows: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    body: String,
}

#[derive(diesel::QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    v: String,
}

/// Checksums of every table in every schema of the database on `conn`, bookkeeping
/// tables (`__*`) included.
pub fn checksums(conn: &mut Conn) -> Checksums {
    match conn {
        Conn::Postgres(pg) => postgres_checksums(pg),
        Conn::Sqlite(lite) => sqlite_checksums(lite),
    }
}

/// Checksums of the tables that hold the application's data: bookkeeping tables (`__*`)
/// are left out, because every rebuild rewrites them with its own timestamps, so they
/// cannot tell an old state from a new one.
pub fn data_checksums(conn: &mut Conn) -> Checksums {
    checksums(conn)
        .into_iter()
        .filter(|(name, _)| {
            let table = name.rsplit_once('.').map(|(_, t)| t).unwrap_or(name);
            !table.starts_with("__")
        })
        .collect()
}

/// Rows over every readable table (for "no command empties a store").
pub fn total_rows(sums: &Checksums) -> i64 {
    sums.values().filter_map(TableSum::rows).sum()
}

/// Every prepared transaction on this PostgreSQL database (none on SQLite).
pub fn prepared_xacts(conn: &mut Conn) -> Vec<String> {
    match conn {
        Conn::Postgres(pg) => pg_prepared(pg),
        Conn::Sqlite(_) => Vec::new(),
    }
}

fn pg_prepared(pg: &mut diesel::PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT gid || ' (xid ' || transaction::text || ')' AS v FROM pg_prepared_xacts \
         WHERE database = current_database() ORDER BY 1",
    )
    .load::<Text>(pg)
    .unwrap_or_else(|e| panic!("pg_prepared_xacts: {e}"))
    .into_iter()
    .map(|r| r.v)
    .collect()
}

/// The store's tables, prepared transactions and staged files, read now.
pub fn fingerprint(db: &TestDb) -> Fingerprint {
    let mut conn = db.connect();
    let prepared = prepared_xacts(&mut conn);
    let tables = checksums(&mut conn);
    Fingerprint {
        tables,
        prepared,
        staged: staged_files(db),
    }
}

fn staged_files(db: &TestDb) -> Vec<String> {
    let Some(live) = db.url.sqlite_path() else {
        return Vec::new();
    };
    let (Some(dir), Some(name)) = (live.parent(), live.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.rebuild-", name.to_string_lossy());
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn postgres_checksums(pg: &mut diesel::PgConnection) -> Checksums {
    let tables: Vec<TableRow> = diesel::sql_query(
        "SELECT n.nspname::text AS schema, c.relname::text AS name, \
           coalesce((SELECT string_agg('t.' || quote_ident(a.attname), ', ' \
                                       ORDER BY array_position(i.indkey::int2[], a.attnum)) \
                     FROM pg_index i JOIN pg_attribute a \
                       ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
                     WHERE i.indrelid = c.oid AND i.indisprimary), 't::text') AS order_by, \
           EXISTS (SELECT 1 FROM pg_locks l WHERE l.relation = c.oid AND l.pid IS NULL \
                   AND l.granted AND l.mode = 'AccessExclusiveLock') AS locked \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
         ORDER BY 1, 2",
    )
    .load(pg)
    .unwrap_or_else(|e| panic!("listing tables: {e}"));
    diesel::sql_query(format!(
        "SET lock_timeout = {}",
        quote_literal(LOCK_TIMEOUT)
    ))
    .execute(pg)
    .unwrap_or_else(|e| panic!("lock_timeout: {e}"));
    let mut sums = Checksums::new();
    for t in tables {
        let key = format!("{}.{}", t.schema, t.name);
        if t.locked {
            // Which transaction holds it is part of the fingerprint.
            sums.insert(key, TableSum::Locked);
            continue;
        }
        let sql = format!(
            "SELECT count(*) AS rows, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY {}), '')) AS body \
             FROM {}.{} AS t",
            t.order_by,
            quote_ident(&t.schema),
            quote_ident(&t.name)
        );
        let r: SumRow = diesel::sql_query(sql)
            .get_result(pg)
            .unwrap_or_else(|e| panic!("checksum of {key}: {e}"));
        sums.insert(
            key,
            TableSum::Rows {
                rows: r.rows,
                digest: r.body,
            },
        );
    }
    let _ = diesel::sql_query("RESET lock_timeout").execute(pg);
    sums
}

fn sqlite_checksums(lite: &mut diesel::SqliteConnection) -> Checksums {
    let tables: Vec<Text> = diesel::sql_query(
        "SELECT name AS v FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .load(lite)
    .unwrap_or_else(|e| panic!("listing tables: {e}"));
    let mut sums = Checksums::new();
    for Text { v: table } in tables {
        #[derive(diesel::QueryableByName)]
        struct Column {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
            #[diesel(sql_type = diesel::sql_types::Integer)]
            pk: i32,
        }
        let columns: Vec<Column> = diesel::sql_query(format!(
            "SELECT name, pk FROM pragma_table_info({}) ORDER BY cid",
            quote_literal(&table)
        ))
        .load(lite)
        .unwrap_or_else(|e| panic!("columns of {table}: {e}"));
        let line = columns
            .iter()
            .map(|c| format!("quote({})", quote_ident(&c.name)))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        let mut pk: Vec<&Column> = columns.iter().filter(|c| c.pk > 0).collect();
        pk.sort_by_key(|c| c.pk);
        let order_by = if pk.is_empty() {
            "line".to_string()
        } else {
            pk.iter()
                .map(|c| quote_ident(&c.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // group_concat keeps the order of the ordered subquery it reads.
        let sql = format!(
            "SELECT count(*) AS rows, coalesce(group_concat(line, char(10)), '') AS body \
             FROM (SELECT {line} AS line FROM {} ORDER BY {order_by})",
            quote_ident(&table)
        );
        let r: SumRow = diesel::sql_query(sql)
            .get_result(lite)
            .unwrap_or_else(|e| panic!("checksum of {table}: {e}"));
        let digest = format!("{:x}", Sha256::digest(r.body.as_bytes()));
        sums.insert(
            format!("main.{table}"),
            TableSum::Rows {
                rows: r.rows,
                digest,
            },
        );
    }
    sums
}

/// A store's data and shape, for "this run changed nothing" and "restore brought back
/// every row": the checksums of its tables (bookkeeping aside), every column and every
/// foreign key. The one comparison the end-to-end tests make of a store before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub data: Checksums,
    pub columns: Vec<shared::catalog::LiveColumn>,
    pub fks: Vec<shared::catalog::LiveForeignKey>,
}

impl Snapshot {
    /// The rows of `table` (in any schema), 0 when there is no such table.
    pub fn rows(&self, table: &str) -> i64 {
        self.data
            .iter()
            .filter(|(name, _)| name.rsplit_once('.').map_or(name.as_str(), |(_, t)| t) == table)
            .filter_map(|(_, sum)| sum.rows())
            .sum()
    }

    /// Rows over every data table.
    pub fn total_rows(&self) -> i64 {
        total_rows(&self.data)
    }
}

/// The store on `conn`, read now: every table but this tool's and diesel's bookkeeping
/// (which every rebuild rewrites with its own timestamps), a team's own `__*` tables
/// included.
pub fn snapshot(conn: &mut Conn) -> Snapshot {
    let mut data = checksums(conn);
    data.retain(|name, _| {
        !shared::store::is_bookkeeping(name.rsplit_once('.').map_or(name.as_str(), |(_, t)| t))
    });
    Snapshot {
        data,
        columns: shared::catalog::columns(conn).expect("columns"),
        fks: shared::catalog::foreign_keys(conn).expect("foreign keys"),
    }
}

/// Both stores of a pair (auth, app), read now.
pub fn snapshots(pair: &test_kit::TestPair) -> (Snapshot, Snapshot) {
    (
        snapshot(&mut pair.auth.connect()),
        snapshot(&mut pair.app.connect()),
    )
}

/// The data checksums of both stores of a pair (auth, app): what tells an old state from
/// a new one.
pub fn data_sums(pair: &test_kit::TestPair) -> [Checksums; 2] {
    [
        data_checksums(&mut pair.auth.connect()),
        data_checksums(&mut pair.app.connect()),
    ]
}

/// Everything a reader could change in either store of a pair: [`fingerprint`] of each.
pub fn fingerprints(pair: &test_kit::TestPair) -> (Fingerprint, Fingerprint) {
    (fingerprint(&pair.auth), fingerprint(&pair.app))
}
