//! The tests' kit: every test gets its own freshly created database(s), dropped when the
//! test ends, so tests run in parallel and on a server other runs have used before.
//! A dev-dependency only: no store crate or engine compiles it into what it ships.
//!
//! - PostgreSQL databases are created on `ORCH_TEST_PG_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`). When the server cannot be reached the
//!   PostgreSQL half of a test is skipped with a loud message, unless
//!   `ORCH_TEST_REQUIRE_PG=1`, in which case the test fails.
//! - SQLite databases are files in a temporary folder of the test's own.
//! - `ORCH_TEST_BACKENDS=postgres` (or `sqlite`) limits a run to one backend; the CI
//!   matrix uses it to give each backend its own job.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use diesel::{Connection, PgConnection, RunQueryDsl};

use shared::db::{quote_ident, Conn};
use shared::url::{Backend, DatabaseUrl};

pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The administrative URL test databases are created on.
pub fn pg_admin_url() -> String {
    std::env::var("ORCH_TEST_PG_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_PG_URL.to_string())
}

/// True when PostgreSQL tests must fail rather than skip (CI sets it).
pub fn pg_required() -> bool {
    std::env::var("ORCH_TEST_REQUIRE_PG").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The backends this run covers: `ORCH_TEST_BACKENDS` (comma separated), default both.
pub fn backends() -> Vec<Backend> {
    let wanted = std::env::var("ORCH_TEST_BACKENDS").unwrap_or_default();
    let all = [Backend::Postgres, Backend::Sqlite];
    if wanted.trim().is_empty() {
        return all.to_vec();
    }
    all.into_iter()
        .filter(|b| {
            wanted
                .split(',')
                .any(|w| w.trim().eq_ignore_ascii_case(b.as_str()))
        })
        .collect()
}

/// A database of a test's own; dropped (PostgreSQL) or deleted with its folder (SQLite)
/// when this goes out of scope.
pub struct TestDb {
    pub url: DatabaseUrl,
    pg_name: Option<String>,
}

impl TestDb {
    /// A database this harness did not create and does not drop (one on a server a test
    /// runs and removes itself, say).
    pub fn existing(url: DatabaseUrl) -> TestDb {
        TestDb { url, pg_name: None }
    }

    pub fn url_string(&self) -> String {
        self.url.expose_secret().to_string()
    }

    pub fn connect(&self) -> Conn {
        match Conn::establish("test", &self.url) {
            Ok(conn) => conn,
            Err(e) => panic!("cannot connect to the test database {}: {e}", self.url),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_name {
            // A prepared transaction pins its database: settle any a test left behind.
            if let Ok(mut own) = PgConnection::establish(self.url.expose_secret()) {
                let gids: Vec<String> = prepared_gids(&mut own);
                for gid in gids {
                    let _ = diesel::sql_query(format!(
                        "ROLLBACK PREPARED {}",
                        shared::db::quote_literal(&gid)
                    ))
                    .execute(&mut own);
                }
            }
            if let Ok(mut admin) = PgConnection::establish(&pg_admin_url()) {
                // WITH (FORCE) ends sessions a failed test left open (PostgreSQL 13+).
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
                if let Err(e) = diesel::sql_query(sql).execute(&mut admin) {
                    eprintln!("warning: could not drop test database {name}: {e}");
                }
            }
        }
    }
}

fn prepared_gids(conn: &mut PgConnection) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Gid {
        #[diesel(sql_type = diesel::sql_types::Text)]
        gid: String,
    }
    diesel::sql_query(
        "SELECT gid::text AS gid FROM pg_prepared_xacts WHERE database = current_database()",
    )
    .load::<Gid>(conn)
    .map(|rows| rows.into_iter().map(|r| r.gid).collect())
    .unwrap_or_default()
}

/// Scratch databases (`orch_shadow_<host>_<pid>_…`) that process `pid` made and that are
/// still on the test server.
pub fn scratch_databases_of(pid: u32) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let mut admin = match PgConnection::establish(&pg_admin_url()) {
        Ok(conn) => conn,
        Err(e) => panic!("cannot connect to the test server: {e}"),
    };
    let sql = format!(
        "SELECT datname::text AS datname FROM pg_database WHERE starts_with(datname::text, {})",
        shared::db::quote_literal(shared::scratch::SCRATCH_PREFIX)
    );
    let names: Vec<Name> = diesel::sql_query(sql)
        .load(&mut admin)
        .unwrap_or_else(|e| panic!("pg_database: {e}"));
    names
        .into_iter()
        .map(|n| n.datname)
        .filter(|n| shared::scratch::creator_pid(n) == Some(pid))
        .collect()
}

/// A test's own pair of stores plus a working folder (the binary's current directory).
pub struct TestPair {
    pub backend: Backend,
    pub auth: TestDb,
    pub app: TestDb,
    pub dir: tempfile::TempDir,
}

impl TestPair {
    /// A fresh, empty pair on `backend`; `None` when PostgreSQL is unreachable and not
    /// required (the skip is printed).
    pub fn new(backend: Backend, test: &str) -> Option<TestPair> {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary folder: {e}"),
        };
        let (auth, app) = match backend {
            Backend::Sqlite => (sqlite_db(dir.path(), "auth"), sqlite_db(dir.path(), "app")),
            Backend::Postgres => {
                let mut admin = pg_admin(test)?;
                (
                    create_pg_db(&mut admin, test, "auth"),
                    create_pg_db(&mut admin, test, "app"),
                )
            }
        };
        Some(TestPair {
            backend,
            auth,
            app,
            dir,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A single fresh database on `backend` (for scratch comparisons).
pub fn test_db(backend: Backend, test: &str, label: &str, dir: &Path) -> Option<TestDb> {
    match backend {
        Backend::Sqlite => Some(sqlite_db(dir, label)),
        Backend::Postgres => {
            let mut admin = pg_admin(test)?;
            Some(create_pg_db(&mut admin, test, label))
        }
    }
}

/// Runs `body` once per selected backend with a fresh pair each time.
pub fn for_each_backend(test: &str, mut body: impl FnMut(&TestPair)) {
    for backend in backends() {
        if let Some(pair) = TestPair::new(backend, test) {
            body(&pair);
        }
    }
}

fn sqlite_db(dir: &Path, label: &str) -> TestDb {
    let path: PathBuf = dir.join(format!("{label}.sqlite3"));
    let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display()))
        .unwrap_or_else(|e| panic!("bad test path {}: {e}", path.display()));
    TestDb { url, pg_name: None }
}

/// Whether the test server answers; an unreachable one fails the test when PostgreSQL is
/// required, and is skipped loudly otherwise.
pub fn pg_reachable(test: &str) -> bool {
    pg_admin(test).is_some()
}

fn pg_admin(test: &str) -> Option<PgConnection> {
    let url = pg_admin_url();
    match PgConnection::establish(&url) {
        Ok(conn) => Some(conn),
        Err(e) => {
            let shown = DatabaseUrl::parse(&url)
                .map(|u| u.redacted().to_string())
                .unwrap_or_default();
            if pg_required() {
                panic!("{test}: PostgreSQL is required (ORCH_TEST_REQUIRE_PG=1) but {shown} is unreachable: {e}");
            }
            eprintln!(
                "\n*** SKIPPED the PostgreSQL half of {test}: {shown} is unreachable ({}).\n\
                 *** Set ORCH_TEST_PG_URL to a server, or ORCH_TEST_REQUIRE_PG=1 to fail instead.\n",
                e.to_string().trim()
            );
            None
        }
    }
}

fn create_pg_db(admin: &mut PgConnection, test: &str, label: &str) -> TestDb {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let prefix: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(24)
        .collect::<String>()
        .to_ascii_lowercase();
    let name = format!(
        "orcht_{prefix}_{label}_{}_{nanos:x}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    // template0: template1 may be held open by another session, which makes CREATE fail.
    // FILE_COPY (PostgreSQL 15+) is several times faster than the WAL-logged default for
    // a small template; older servers do not know the option and get the plain statement.
    let quoted = quote_ident(&name);
    let fast = format!("CREATE DATABASE {quoted} TEMPLATE template0 STRATEGY = FILE_COPY");
    if diesel::sql_query(fast).execute(admin).is_err() {
        let plain = format!("CREATE DATABASE {quoted} TEMPLATE template0");
        if let Err(e) = diesel::sql_query(plain).execute(admin) {
            panic!("cannot create test database {name}: {e}");
        }
    }
    let admin_url =
        DatabaseUrl::parse(&pg_admin_url()).unwrap_or_else(|e| panic!("ORCH_TEST_PG_URL: {e}"));
    let url = admin_url
        .with_database(&name)
        .unwrap_or_else(|| panic!("cannot derive a URL for {name}"));
    TestDb {
        url,
        pg_name: Some(name),
    }
}

/// Asserts that the database on `conn` meets `store`'s contract (tables, foreign keys and
/// their ON DELETE actions); `context` says where, in the failure message.
pub fn assert_meets_contract(conn: &mut Conn, store: &shared::store::Store, context: &str) {
    let check = match shared::contract::check_schema(conn, store) {
        Ok(check) => check,
        Err(e) => panic!("{context}: checking the {} schema: {e}", store.name),
    };
    assert!(
        check.ok(),
        "{context}: {} schema: {}",
        store.name,
        check.summary()
    );
}

/// Migrates `store` on `conn` and asserts that the catalogs show exactly the store's
/// tables and foreign keys (with their ON DELETE actions), and that migrating again
/// applies nothing.
pub fn assert_migrates_to_contract(conn: &mut Conn, store: &shared::store::Store) {
    let backend = conn.backend();
    let applied = shared::migrations::run_pending(conn, store, |_| {}).unwrap_or_else(|f| {
        panic!(
            "{} on {backend}: migration {} failed: {}",
            store.name, f.migration, f.reason
        )
    });
    assert!(
        !applied.is_empty(),
        "{} on {backend}: a fresh database must get migrations",
        store.name
    );

    let mut expected_tables: Vec<String> = store.tables.iter().map(|t| t.to_string()).collect();
    expected_tables.sort();
    let tables = shared::catalog::tables(conn).unwrap_or_else(|e| panic!("tables: {e}"));
    assert_eq!(
        tables, expected_tables,
        "{} on {backend}: tables",
        store.name
    );

    let mut expected_fks: Vec<(String, String, String, String, shared::store::OnDelete)> = store
        .foreign_keys
        .iter()
        .map(|f| {
            (
                f.table.into(),
                f.column.into(),
                f.ref_table.into(),
                f.ref_column.into(),
                f.on_delete,
            )
        })
        .collect();
    expected_fks.sort();
    let mut fks: Vec<_> = shared::catalog::foreign_keys(conn)
        .unwrap_or_else(|e| panic!("fks: {e}"))
        .into_iter()
        .map(|f| (f.table, f.column, f.ref_table, f.ref_column, f.on_delete))
        .collect();
    fks.sort();
    assert_eq!(
        fks, expected_fks,
        "{} on {backend}: foreign keys",
        store.name
    );
    // The one-query form that reset and verify use reads the same.
    let (one_tables, one_fks) = shared::catalog::tables_and_foreign_keys(conn)
        .unwrap_or_else(|e| panic!("tables and fks: {e}"));
    assert_eq!(
        one_tables, tables,
        "{} on {backend}: one-query tables",
        store.name
    );
    let mut one_fks: Vec<_> = one_fks
        .into_iter()
        .map(|f| (f.table, f.column, f.ref_table, f.ref_column, f.on_delete))
        .collect();
    one_fks.sort();
    assert_eq!(
        one_fks, fks,
        "{} on {backend}: one-query foreign keys",
        store.name
    );

    let again = shared::migrations::run_pending(conn, store, |_| {})
        .unwrap_or_else(|f| panic!("second migrate failed at {}: {}", f.migration, f.reason));
    assert!(
        again.is_empty(),
        "{} on {backend}: migrating twice must be a no-op",
        store.name
    );
    let state = shared::migrations::state(conn, store).unwrap_or_else(|e| panic!("state: {e}"));
    assert!(
        state.pending.is_empty() && state.unknown.is_empty() && state.modified.is_empty(),
        "{state:?}"
    );
    assert_eq!(
        count(conn, shared::catalog::ORCHESTRATOR_MIGRATIONS_TABLE) as usize,
        state.applied.len(),
        "{} on {backend}: every applied migration has its checksum recorded",
        store.name
    );
}

/// Row count of one table, for assertions.
pub fn count(conn: &mut Conn, table: &str) -> i64 {
    shared::catalog::row_counts(conn, &[table.to_string()])
        .unwrap_or_else(|e| panic!("count {table}: {e}"))
        .first()
        .map(|(_, n)| *n)
        .unwrap_or_else(|| panic!("no count for {table}"))
}

/// Runs SQL that must succeed.
pub fn exec(conn: &mut Conn, sql: &str) {
    if let Err(e) = conn.batch_execute(sql) {
        panic!("{} failed: {e}\nSQL: {sql}", conn.backend());
    }
}

/// Proves `store`'s two migration histories are one (see `shared::lint`): the same
/// versions, the same logical schema after every version (PostgreSQL replayed on the
/// test server when it is reachable, and always when it is required), and a recorded
/// PostgreSQL model and definitions that are what the PostgreSQL history makes. Panics naming each
/// difference.
pub fn assert_histories_agree(store: &shared::store::Store) {
    let test = format!("{}_histories", store.name);
    let server = pg_admin(&test).map(|_| {
        DatabaseUrl::parse(&pg_admin_url()).unwrap_or_else(|e| panic!("ORCH_TEST_PG_URL: {e}"))
    });
    let histories = shared::lint::Histories::embedded(store);
    let report = shared::lint::check(&histories, server.as_ref())
        .unwrap_or_else(|e| panic!("{}: checking the histories: {e}", store.name));
    assert!(
        report.ok(),
        "the {} store's migration histories differ:\n  {}\n\
         Keep migrations/postgres and migrations/sqlite in step (same versions, same tables, \
         columns, keys and indexes); after changing a PostgreSQL migration run \
         `orchestrator lint --write --postgres-url URL` to record its model and definitions.",
        store.name,
        report.problems().join("\n  ")
    );
    if server.is_some() {
        assert!(report.postgres_replayed, "{report:?}");
    }
}

/// Proves `store`'s `src/schema.rs` (the code's `table!` definitions) says exactly what
/// its migrations produce, on each backend this run covers: the same tables, columns,
/// type families, nullability and primary keys, in both directions. diesel writes the
/// file from the PostgreSQL history (see the crate's diesel.toml); this holds both
/// histories to it, since the one file serves both.
pub fn assert_schema_rs_matches(store: &shared::store::Store) {
    for backend in backends() {
        let test = format!("{}_schema_rs", store.name);
        let dir = std::env::temp_dir();
        // Dropped (PostgreSQL) or gone with the process (in memory) afterwards.
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => match test_db(backend, &test, store.name, &dir) {
                Some(db) => Some(db),
                None => continue,
            },
        };
        let mut conn = match &db {
            Some(db) => db.connect(),
            None => {
                let url = DatabaseUrl::sqlite_in_memory();
                Conn::establish(store.name, &url).unwrap_or_else(|e| panic!("open: {e}"))
            }
        };
        let name = store.name;
        shared::migrations::run_pending(&mut conn, store, |_| {}).unwrap_or_else(|f| {
            panic!(
                "{name} on {backend}: migration {} failed: {}",
                f.migration, f.reason
            )
        });
        let live = shared::schema::introspect(&mut conn)
            .unwrap_or_else(|e| panic!("{name} on {backend}: reading the catalog: {e}"));
        let code = shared::code_schema::parse(store.code_schema)
            .unwrap_or_else(|e| panic!("{name}-db/src/schema.rs: {e}"));
        let problems = shared::code_schema::mismatches(name, &code, &live);
        let lines: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
        assert!(
            problems.is_empty(),
            "{name}-db/src/schema.rs is not what migrations/{backend} produce:\n  {}\n\
             Regenerate it in {name}-db/ from a fresh PostgreSQL database: \
             `diesel migration run --database-url postgres://…/<fresh database>` rewrites it \
             (`diesel print-schema` prints it); if the file is right, the {backend} history is not.",
            lines.join("\n  ")
        );
    }
}
