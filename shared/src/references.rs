//! Cross-store references (`app.datasets.owner_id → auth.users.id`): no foreign key can
//! span two databases, so the values are checked here by streaming both columns in byte
//! order, one thread per database, and merging them. Memory is bounded by the batch size
//! and the channel depth, whatever the row count.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use diesel::connection::DefaultLoadingMode;
use diesel::sql_types::Text;
use diesel::{Connection, QueryableByName, RunQueryDsl};
use serde::Serialize;

use crate::db::{quote_ident, Conn};
use crate::store::CrossReference;

/// Rows per batch sent from a reader thread to the merge (and per `FETCH` on PostgreSQL).
pub const BATCH_ROWS: usize = 20_000;
/// Batches a reader may run ahead of the merge.
const CHANNEL_DEPTH: usize = 2;
/// Orphan values reported by name.
pub const SAMPLE_SIZE: usize = 10;

/// The outcome of checking one reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReferenceCheck {
    /// `app.datasets.owner_id`
    pub from: String,
    /// `auth.users.id`
    pub to: String,
    /// Rows whose (non-NULL) value has no match in the target column.
    pub orphans: u64,
    /// Up to ten distinct orphan values, in byte order.
    pub sample: Vec<String>,
    /// Why the reference was not checked (a table it needs is missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl ReferenceCheck {
    pub fn new(source_store: &str, r: &CrossReference) -> Self {
        ReferenceCheck {
            from: format!("{source_store}.{}.{}", r.table, r.column),
            to: format!("{}.{}.{}", r.target_store, r.target_table, r.target_column),
            orphans: 0,
            sample: Vec::new(),
            skipped: None,
        }
    }

    pub fn ok(&self) -> bool {
        self.orphans == 0 && self.skipped.is_none()
    }
}

/// Which side of a reference failed to stream.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("reading {column}: {source}")]
    Source {
        column: String,
        source: diesel::result::Error,
    },
    #[error("reading {column}: {source}")]
    Target {
        column: String,
        source: diesel::result::Error,
    },
    #[error("a reader thread panicked")]
    Panicked,
}

/// Counts the values of `source` that `target` lacks. Both must be sorted in byte order;
/// `source` may repeat values (each row counts), `target` may too. The sample holds up to
/// `sample_size` distinct orphan values.
pub fn merge_orphans<S, T>(source: S, target: T, sample_size: usize) -> (u64, Vec<String>)
where
    S: IntoIterator,
    S::Item: AsRef<[u8]>,
    T: IntoIterator,
    T::Item: AsRef<[u8]>,
{
    let mut target = target.into_iter().peekable();
    let mut orphans = 0u64;
    let mut sample: Vec<String> = Vec::new();
    for value in source {
        let value = value.as_ref();
        while target.next_if(|t| t.as_ref() < value).is_some() {}
        let found = target.peek().is_some_and(|t| t.as_ref() == value);
        if !found {
            orphans += 1;
            if sample.len() < sample_size && sample.last().map(String::as_bytes) != Some(value) {
                sample.push(String::from_utf8_lossy(value).into_owned());
            }
        }
    }
    (orphans, sample)
}

/// Checks one reference: the source column is read from `source`, the target column from
/// `target`, at the same time, each on a thread of its own.
pub fn check(
    source_store: &str,
    reference: &CrossReference,
    source: &mut Conn,
    target: &mut Conn,
) -> Result<ReferenceCheck, StreamError> {
    check_showing(source_store, reference, source, target, &|_| {})
}

/// [`check`], telling `rows_checked` how many source rows were merged so far, once per
/// batch (for a progress line on a long check).
pub fn check_showing(
    source_store: &str,
    reference: &CrossReference,
    source: &mut Conn,
    target: &mut Conn,
    rows_checked: &(dyn Fn(u64) + Sync),
) -> Result<ReferenceCheck, StreamError> {
    let mut check = ReferenceCheck::new(source_store, reference);
    let (source_tx, source_rx) = sync_channel(CHANNEL_DEPTH);
    let (target_tx, target_rx) = sync_channel(CHANNEL_DEPTH);
    let (merged, source_done, target_done) = std::thread::scope(|scope| {
        let s = scope.spawn(|| stream_column(source, reference.table, reference.column, source_tx));
        let t = scope.spawn(|| {
            stream_column(
                target,
                reference.target_table,
                reference.target_column,
                target_tx,
            )
        });
        // The receivers are consumed (and dropped) by the merge, so a reader blocked on a
        // full channel wakes up with an error and stops once the merge needs no more.
        let mut checked = 0u64;
        let source_values = source_rx
            .into_iter()
            .inspect(|batch| {
                checked += batch.len() as u64;
                rows_checked(checked);
            })
            .flatten();
        let merged = merge_orphans(source_values, values(target_rx), SAMPLE_SIZE);
        (merged, s.join(), t.join())
    });
    source_done
        .map_err(|_| StreamError::Panicked)?
        .map_err(|source| StreamError::Source {
            column: check.from.clone(),
            source,
        })?;
    target_done
        .map_err(|_| StreamError::Panicked)?
        .map_err(|source| StreamError::Target {
            column: check.to.clone(),
            source,
        })?;
    (check.orphans, check.sample) = merged;
    Ok(check)
}

/// The values of a stream of batches, moved out one by one.
fn values(rx: Receiver<Vec<String>>) -> impl Iterator<Item = String> {
    rx.into_iter().flatten()
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = Text)]
    v: String,
}

/// The non-NULL values of `table.column` in byte order. PostgreSQL orders text by the
/// database collation unless told otherwise, hence `COLLATE "C"` (an index with that
/// collation makes it an ordered index scan); SQLite's BINARY collation is byte order.
fn ordered_values_sql(conn: &Conn, table: &str, column: &str) -> String {
    let collation = match conn {
        Conn::Postgres(_) => "\"C\"",
        Conn::Sqlite(_) => "BINARY",
    };
    let (t, c) = (quote_ident(table), quote_ident(column));
    format!("SELECT {c} AS v FROM {t} WHERE {c} IS NOT NULL ORDER BY {c} COLLATE {collation}")
}

/// Sends `table.column`'s values in byte order, in batches, until done or until the
/// receiver hangs up.
fn stream_column(
    conn: &mut Conn,
    table: &str,
    column: &str,
    tx: SyncSender<Vec<String>>,
) -> diesel::QueryResult<()> {
    let query = ordered_values_sql(conn, table, column);
    let started = std::time::Instant::now();
    let mut rows = 0usize;
    match conn {
        // A server-side cursor: one round trip per batch, and the server never holds more
        // than a batch for us (a plain query would buffer the whole result in libpq).
        Conn::Postgres(c) => c.transaction::<_, diesel::result::Error, _>(|c| {
            diesel::sql_query(format!("DECLARE orch_ref NO SCROLL CURSOR FOR {query}"))
                .execute(c)?;
            let fetch = format!("FETCH {BATCH_ROWS} FROM orch_ref");
            loop {
                let batch: Vec<Value> = diesel::sql_query(&fetch).load(c)?;
                let n = batch.len();
                rows += n;
                if n == 0 || tx.send(batch.into_iter().map(|r| r.v).collect()).is_err() {
                    break;
                }
                if n < BATCH_ROWS {
                    break;
                }
            }
            diesel::sql_query("CLOSE orch_ref").execute(c)?;
            Ok(())
        })?,
        // SQLite steps the statement row by row; nothing is buffered beyond the batch.
        Conn::Sqlite(c) => {
            let iter = diesel::sql_query(&query).load_iter::<Value, DefaultLoadingMode>(c)?;
            let mut batch = Vec::with_capacity(BATCH_ROWS);
            for row in iter {
                batch.push(row?.v);
                if batch.len() == BATCH_ROWS {
                    rows += batch.len();
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                    if tx.send(full).is_err() {
                        return Ok(());
                    }
                }
            }
            rows += batch.len();
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
        }
    }
    tracing::debug!(
        table,
        column,
        rows,
        millis = started.elapsed().as_millis() as u64,
        "streamed"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge(source: &[&str], target: &[&str]) -> (u64, Vec<String>) {
        merge_orphans(source.iter(), target.iter(), SAMPLE_SIZE)
    }

    #[test]
    fn empty_sides() {
        assert_eq!(merge(&[], &[]), (0, vec![]));
        assert_eq!(merge(&[], &["a", "b"]), (0, vec![]));
        assert_eq!(
            merge(&["a", "a", "b"], &[]),
            (3, vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn none_missing() {
        assert_eq!(
            merge(&["a", "b", "b", "c"], &["a", "b", "c", "d"]),
            (0, vec![])
        );
    }

    #[test]
    fn duplicates_count_per_row_and_sample_once() {
        let (n, sample) = merge(&["a", "x", "x", "x", "z"], &["a", "a", "b", "z"]);
        assert_eq!(n, 3);
        assert_eq!(sample, ["x"]);
    }

    #[test]
    fn all_orphans_and_the_sample_is_capped() {
        let source: Vec<String> = (0..25).map(|i| format!("u{i:03}")).collect();
        let (n, sample) = merge_orphans(source.iter(), ["a", "zz"].iter(), SAMPLE_SIZE);
        assert_eq!(n, 25);
        assert_eq!(sample.len(), SAMPLE_SIZE);
        assert_eq!(sample[0], "u000");
        assert_eq!(sample[9], "u009");
    }

    #[test]
    fn interleaved_gaps_on_both_sides() {
        let (n, sample) = merge(&["b", "d", "d", "f", "h"], &["a", "c", "d", "e", "h", "i"]);
        assert_eq!((n, sample), (2, vec!["b".into(), "f".into()]));
    }

    #[test]
    fn byte_order_not_locale_order() {
        // In byte order upper case sorts before lower case; a merge fed locale order
        // would miss matches. Both sides here are in byte order.
        let (n, _) = merge(&["B", "a"], &["B", "a"]);
        assert_eq!(n, 0);
        let (n, sample) = merge(&["Z", "a"], &["a"]);
        assert_eq!((n, sample), (1, vec!["Z".into()]));
    }

    /// Both columns streamed from real SQLite files, over several batches each, with the
    /// reader of the longer side hung up on once the merge needs no more of it.
    #[test]
    fn sqlite_streams_merge_over_many_batches() {
        use crate::url::DatabaseUrl;
        let dir = tempfile::tempdir().expect("tempdir");
        let open = |name: &str| {
            let url = DatabaseUrl::parse(&dir.path().join(name).to_string_lossy()).expect("url");
            Conn::establish(name, &url).expect("open")
        };
        let mut app = open("app.db");
        let mut auth = open("auth.db");
        let rows = 2 * BATCH_ROWS + 123;
        auth.batch_execute(&format!(
            "CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL);
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
             INSERT INTO users SELECT printf('u%07d', i) FROM n;"
        ))
        .expect("users");
        // Every user owns a dataset, five datasets point at users that do not exist, and
        // NULLs are no orphans.
        app.batch_execute(&format!(
            "CREATE TABLE datasets (id INTEGER PRIMARY KEY, owner_id TEXT);
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
             INSERT INTO datasets (owner_id) SELECT printf('u%07d', i) FROM n;
             INSERT INTO datasets (owner_id) VALUES (NULL), (NULL),
               ('u9999999'), ('u9999999'), ('a-first'), ('u0000001x'), ('zz');
             CREATE INDEX datasets_owner ON datasets (owner_id);"
        ))
        .expect("datasets");
        let reference = CrossReference {
            table: "datasets",
            column: "owner_id",
            target_store: "auth",
            target_table: "users",
            target_column: "id",
            nullable: true,
        };
        let check = check("app", &reference, &mut app, &mut auth).expect("check");
        assert_eq!(check.from, "app.datasets.owner_id");
        assert_eq!(check.to, "auth.users.id");
        assert_eq!(check.orphans, 5);
        assert_eq!(check.sample, ["a-first", "u0000001x", "u9999999", "zz"]);
        assert!(!check.ok());

        // The target ends long before the source: the source reader is hung up on.
        auth.batch_execute("DELETE FROM users WHERE id > 'u0000100'")
            .expect("shrink");
        let check = check_again(&reference, &mut app, &mut auth);
        // rows + 1 datasets owned by u0000000..=u{rows}, 101 of whose owners remain.
        assert_eq!(check.orphans as usize, rows + 1 - 101 + 5);
    }

    fn check_again(r: &CrossReference, app: &mut Conn, auth: &mut Conn) -> ReferenceCheck {
        check("app", r, app, auth).expect("check")
    }
}
