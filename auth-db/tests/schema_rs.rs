//! `src/schema.rs` says exactly what the migrations produce, on both backends: the same
//! tables, columns, type families, nullability and primary keys, in both directions. diesel
//! writes the file from the PostgreSQL history (see diesel.toml); this holds both histories
//! to it, since the one file serves both.

use shared::code_schema::{mismatches, parse};
use shared::testing::test_db;
use shared::url::{Backend, DatabaseUrl};
use shared::Conn;

use auth_db::STORE;

/// Migrates a fresh database and compares what it holds with what `schema.rs` declares.
fn assert_schema_rs_matches(conn: &mut Conn) {
    let backend = conn.backend();
    shared::migrations::run_pending(conn, &STORE, |_| {}).unwrap_or_else(|f| {
        panic!(
            "auth on {backend}: migration {} failed: {}",
            f.migration, f.reason
        )
    });
    let live = shared::schema::introspect(conn)
        .unwrap_or_else(|e| panic!("auth on {backend}: reading the catalog: {e}"));
    let code = parse(STORE.code_schema).unwrap_or_else(|e| panic!("auth-db/src/schema.rs: {e}"));
    let problems = mismatches(STORE.name, &code, &live);
    let lines: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
    assert!(
        problems.is_empty(),
        "auth-db/src/schema.rs is not what migrations/{backend} produce:\n  {}\n\
         Regenerate it in auth-db/ from a fresh PostgreSQL database: \
         `diesel migration run --database-url postgres://…/<fresh database>` rewrites it \
         (`diesel print-schema` prints it); if the file is right, the {backend} history is not.",
        lines.join("\n  ")
    );
}

#[test]
fn schema_rs_is_what_the_sqlite_history_produces() {
    let url = DatabaseUrl::parse(":memory:").unwrap_or_else(|e| panic!("url: {e}"));
    let mut conn = Conn::establish("auth", &url).unwrap_or_else(|e| panic!("open: {e}"));
    assert_schema_rs_matches(&mut conn);
}

#[test]
fn schema_rs_is_what_the_postgres_history_produces() {
    // None when the server is unreachable and not required (the skip is printed); with
    // ORCH_TEST_REQUIRE_PG=1 it fails instead. The database is dropped with `db`.
    let Some(db) = test_db(
        Backend::Postgres,
        "auth_schema_rs",
        "auth",
        &std::env::temp_dir(),
    ) else {
        return;
    };
    assert_schema_rs_matches(&mut db.connect());
}
