//! PostgreSQL databases with hostile names, of the SQL safety tests' own.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::{Connection, PgConnection, RunQueryDsl};
use orch_tests::{pg_admin_url, pg_required};
use shared::db::{quote_ident, quote_literal};
use shared::DatabaseUrl;

// ---------------------------------------------------------------------------------------
// Databases of the test's own

/// A PostgreSQL database created here and dropped (WITH FORCE) when this goes out of
/// scope, panics included.
pub struct PgDb {
    pub name: String,
    pub url: DatabaseUrl,
}

impl Drop for PgDb {
    fn drop(&mut self) {
        match PgConnection::establish(&pg_admin_url()) {
            Ok(mut admin) => {
                let sql = format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&self.name)
                );
                if let Err(e) = diesel::sql_query(sql).execute(&mut admin) {
                    eprintln!("warning: could not drop test database {:?}: {e}", self.name);
                }
            }
            Err(e) => eprintln!("warning: could not drop test database {:?}: {e}", self.name),
        }
    }
}

/// A short tag that makes this run's names unique on a shared server.
pub fn unique_tag() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{:x}{:x}{}",
        std::process::id(),
        nanos & 0xfff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The administrative connection, or `None` (with a loud message) when PostgreSQL is
/// unreachable and not required.
pub fn pg_admin(test: &str) -> Option<PgConnection> {
    if !orch_tests::backends().contains(&shared::Backend::Postgres) {
        return None;
    }
    match PgConnection::establish(&pg_admin_url()) {
        Ok(conn) => Some(conn),
        Err(e) => {
            if pg_required() {
                panic!(
                    "{test}: PostgreSQL is required (ORCH_TEST_REQUIRE_PG=1) but unreachable: {e}"
                );
            }
            eprintln!("\n*** SKIPPED {test}: PostgreSQL is unreachable ({e}).\n");
            None
        }
    }
}

/// Creates a database named exactly `name` (quoted, never spliced). The returned URL
/// percent-encodes every byte of the name outside the unreserved set.
pub fn create_db(admin: &mut PgConnection, name: &str) -> PgDb {
    assert!(
        name.len() < 64,
        "{name:?} is longer than PostgreSQL's 63 bytes"
    );
    let sql = format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(name));
    if let Err(e) = diesel::sql_query(sql).execute(admin) {
        panic!("cannot create the test database {name:?}: {e}");
    }
    let admin_url = DatabaseUrl::parse(&pg_admin_url()).expect("ORCH_TEST_PG_URL");
    let url = admin_url.with_database(name).expect("a postgres URL");
    // The guard exists from here on: a failing assertion below still drops it.
    let db = PgDb {
        name: name.to_string(),
        url,
    };
    assert_eq!(db.url.database_name(), name, "{}", db.url);
    db
}

pub fn database_exists(admin: &mut PgConnection, name: &str) -> bool {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!(
        "SELECT count(*) AS n FROM pg_database WHERE datname = {}",
        quote_literal(name)
    );
    diesel::sql_query(sql)
        .get_result::<N>(admin)
        .map(|r| r.n == 1)
        .unwrap_or_else(|e| panic!("pg_database: {e}"))
}
