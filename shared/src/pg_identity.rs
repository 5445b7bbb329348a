//! What the server says about a store's identity, for the checks a command runs before
//! anything (orchestrator's `identity`): whether the server is a hot standby, and whether
//! two stores' sessions are in one database.
//!
//! "One database" is decided by the servers, not the URLs' text, which can spell one
//! database many ways (`localhost` or `127.0.0.1`, `?host=`, `PGHOST`, a service file, a
//! pooler in front): each store's session takes a session advisory lock on a random key of
//! its own, and each then looks in `pg_locks` for the other stores' keys held in its own
//! database. Locks live in one server's memory and name their database, so a key is seen
//! only from the database that took it.

use diesel::pg::PgConnection;
use diesel::sql_types::{Array, BigInt, Bool};
use diesel::{QueryableByName, RunQueryDsl};

#[derive(QueryableByName)]
struct Marked {
    #[diesel(sql_type = Bool)]
    replica: bool,
    #[diesel(sql_type = Bool)]
    marked: bool,
}

/// One round trip: whether the server is in recovery (a hot standby: it answers reads and
/// refuses every write) and, given a key, whether this session now holds it as a session
/// advisory lock (a standby grants those too).
pub fn recovery_and_mark(
    conn: &mut PgConnection,
    key: Option<i64>,
) -> diesel::QueryResult<(bool, bool)> {
    let mark = key.map_or_else(
        || "false".to_string(),
        |k| format!("pg_try_advisory_lock({k})"),
    );
    let row: Marked = diesel::sql_query(format!(
        "SELECT pg_is_in_recovery() AS replica, {mark} AS marked"
    ))
    .get_result(conn)?;
    Ok((row.replica, row.marked))
}

#[derive(QueryableByName)]
struct Seen {
    #[diesel(sql_type = Array<BigInt>)]
    seen: Vec<i64>,
}

/// The keys pg_locks holds the way `pg_advisory_lock(bigint)` takes them: the high and low
/// halves as unsigned 32-bit numbers in classid and objid, objsubid 1.
fn lock_key_sql(alias: &str) -> String {
    format!("(({alias}.classid::bigint << 32) | {alias}.objid::bigint)")
}

/// One round trip: which of `others` are held as advisory locks in this session's
/// database (by any session, this one included: behind a pooler two clients may share a
/// server session), then releases `mine`. The look comes first (the subquery is run
/// before the release), so of two sessions doing this at once, at least one sees the
/// other's key while it is still held.
pub fn seen_and_release(
    conn: &mut PgConnection,
    others: &[i64],
    mine: Option<i64>,
) -> diesel::QueryResult<Vec<i64>> {
    let wanted = if others.is_empty() {
        "NULL".to_string()
    } else {
        others
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let release = mine.map_or_else(String::new, |k| {
        format!(", pg_advisory_unlock({k}) AS released")
    });
    let key = lock_key_sql("l");
    let row: Seen = diesel::sql_query(format!(
        "SELECT s.seen{release} FROM (SELECT ARRAY(SELECT DISTINCT {key} FROM pg_locks l \
           WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND {key} IN ({wanted})) AS seen OFFSET 0) s"
    ))
    .get_result(conn)?;
    Ok(row.seen)
}

/// A key for [`recovery_and_mark`] that no other run or store uses: random, positive (so
/// that its halves read back as written), from the process's random hasher seed.
pub fn random_key() -> i64 {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let random =
        std::collections::hash_map::RandomState::new().hash_one((std::process::id(), nanos));
    (random >> 1) as i64
}

#[cfg(test)]
mod tests {
    use super::random_key;

    #[test]
    fn keys_are_positive_and_differ() {
        let (a, b) = (random_key(), random_key());
        assert!(a >= 0 && b >= 0);
        assert_ne!(a, b);
    }
}
