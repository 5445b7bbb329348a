//! Databases of a unit test's own on the test server (`ORCH_TEST_PG_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the test is done. With
//! `ORCH_TEST_REQUIRE_PG=1` an unreachable server fails the test instead of skipping it.
//! (The `test-kit` crate serves the other crates; it depends on this one.)

use diesel::connection::SimpleConnection;
use diesel::Connection;

use crate::{Conn, DatabaseUrl};

/// The test server's admin connection, and the databases created through it.
pub(crate) struct TestServer {
    admin: diesel::PgConnection,
    admin_url: String,
    made: Vec<String>,
}

impl TestServer {
    /// `None` (after saying so) when no server answers and none is required.
    pub(crate) fn connect() -> Option<TestServer> {
        let admin_url = std::env::var("ORCH_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let Ok(admin) = diesel::PgConnection::establish(&admin_url) else {
            assert!(
                std::env::var("ORCH_TEST_REQUIRE_PG").is_err(),
                "PostgreSQL is required and {admin_url} is unreachable"
            );
            eprintln!("skipped: no PostgreSQL at {admin_url}");
            return None;
        };
        Some(TestServer {
            admin,
            admin_url,
            made: Vec::new(),
        })
    }

    /// A new, empty database `name` (a leftover of that name is dropped first), holding
    /// what `sql` makes, and a connection to it.
    pub(crate) fn database(&mut self, name: &str, sql: &str) -> Conn {
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            self.admin.batch_execute(&sql).expect(&sql);
        }
        self.made.push(name.to_string());
        let (base, _) = self
            .admin_url
            .rsplit_once('/')
            .expect("a database in the URL");
        let url = DatabaseUrl::parse(&format!("{base}/{name}")).expect("url");
        let mut conn = Conn::establish("t", &url).expect("open");
        conn.batch_execute(sql).expect("schema");
        conn
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for name in std::mem::take(&mut self.made) {
            let _ = self
                .admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}
