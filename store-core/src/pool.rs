//! A pool of a store's connections for the services that use the store crates
//! (`auth_db::pool`, `app_db::pool`), through r2d2 (diesel's `r2d2` feature). Every pooled
//! connection is set up exactly as the orchestrator's own (`Conn::establish`: the lock
//! bound, the store's schema as the search path on PostgreSQL; the busy timeout and
//! foreign keys on SQLite), on either backend.
//!
//! The pool opens connections as they are asked for (`min_idle = 0`), not ahead: a pool of
//! ten costs nothing until used, and a service starting while the database is down gets
//! its error on the first checkout rather than a pool that failed to build.

use std::time::Duration;

use diesel::r2d2::{ManageConnection, Pool, PooledConnection};

use crate::db::Conn;
use crate::error::DbError;
use crate::url::DatabaseUrl;

/// A pool of one store's connections.
pub type StorePool = Pool<StoreConnections>;

/// A connection checked out of a [`StorePool`]; it goes back when dropped.
pub type PooledConn = PooledConnection<StoreConnections>;

/// Opens a store's connections for r2d2.
#[derive(Debug)]
pub struct StoreConnections {
    store: &'static str,
    url: DatabaseUrl,
}

impl ManageConnection for StoreConnections {
    type Connection = Conn;
    type Error = DbError;

    fn connect(&self) -> Result<Conn, DbError> {
        Conn::establish(self.store, &self.url)
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), DbError> {
        conn.batch_execute("SELECT 1").map_err(|e| DbError::Query {
            store: self.store.to_string(),
            url: self.url.redacted().to_string(),
            action: "checking a pooled connection".into(),
            reason: crate::db::one_line(&e.to_string()),
        })
    }

    /// A connection handed back inside a transaction (a caller that returned early, a
    /// panic) is closed, not reused: the next checkout would run inside that transaction
    /// and its work would vanish with it.
    fn has_broken(&self, conn: &mut Conn) -> bool {
        std::thread::panicking() || crate::db::transaction_left_open(conn)
    }
}

/// A pool of at most `size` connections to `store`'s database at `url`. Checking out
/// waits at most the lock bound (`session::lock_timeout_millis`, 30 s unless configured)
/// for a free connection; every checkout is validated first.
pub fn pool(store: &'static str, url: &DatabaseUrl, size: u32) -> StorePool {
    let wait = Duration::from_millis(crate::session::lock_timeout_millis().max(1000));
    Pool::builder()
        .max_size(size.max(1))
        .min_idle(Some(0))
        .connection_timeout(wait)
        .test_on_check_out(true)
        .build_unchecked(StoreConnections {
            store,
            url: url.clone(),
        })
}
