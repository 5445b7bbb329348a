use super::*;
use crate::schema;
use crate::url::DatabaseUrl;

/// What a small history makes, with every kind of object a repair creates.
const MIGRATIONS: &str = "
    CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, email TEXT NOT NULL,
        credits BIGINT NOT NULL DEFAULT 0 CHECK (credits >= 0), UNIQUE (email));
    CREATE TABLE datasets (id TEXT PRIMARY KEY NOT NULL,
        owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL, note TEXT);
    CREATE INDEX datasets_owner ON datasets(owner_id);
    CREATE TABLE teams (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL);";

/// The same, drifted: users lost its check and unique and gained a column; datasets has
/// the wrong ON DELETE, lacks a column and its index; teams is missing; stray is extra.
const DRIFTED: &str = "
    CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, email TEXT NOT NULL,
        credits BIGINT NOT NULL DEFAULT 0, legacy TEXT);
    CREATE TABLE datasets (id TEXT PRIMARY KEY NOT NULL,
        owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE SET NULL, name TEXT NOT NULL);
    CREATE TABLE stray (id TEXT PRIMARY KEY NOT NULL);";

fn sqlite(sql: &str) -> (tempfile::TempDir, Conn) {
    let dir = tempfile::tempdir().expect("dir");
    let url = DatabaseUrl::parse(&dir.path().join("t.db").to_string_lossy()).expect("url");
    let mut conn = Conn::establish("t", &url).expect("open");
    conn.batch_execute(sql).expect("schema");
    (dir, conn)
}

fn expected() -> (SchemaModel, Definitions) {
    let (_dir, mut conn) = sqlite(MIGRATIONS);
    (
        schema::introspect(&mut conn).expect("model"),
        definitions::read(&mut conn).expect("definitions"),
    )
}

/// Plans and classes the repair of `live`.
fn planned(live: &mut Conn) -> (SchemaModel, Vec<Step>) {
    let (model, defs) = expected();
    let found = schema::introspect(live).expect("live model");
    let mut steps = plan(Backend::Sqlite, &model, &defs, &found).expect("plan");
    classify(live, &found, &mut steps).expect("classify");
    (model, steps)
}

/// Runs the steps as a repair does on SQLite: one transaction, foreign keys off, checked
/// before the commit.
fn run(conn: &mut Conn, steps: &[Step]) {
    conn.batch_execute("PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE")
        .expect("begin");
    apply(conn, steps).expect("apply");
    conn.batch_execute("COMMIT; PRAGMA foreign_keys = ON")
        .expect("commit");
}

fn count(conn: &mut Conn, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    crate::with_conn!(conn, |c| diesel::RunQueryDsl::get_result::<N>(
        diesel::sql_query(sql),
        c
    ))
    .expect("count")
    .n
}

#[test]
fn every_difference_is_repaired_in_place_and_the_rows_are_kept() {
    let (_dir, mut live) = sqlite(DRIFTED);
    live.batch_execute(
        "INSERT INTO users (id, email, credits) VALUES ('u1', 'a@x', 5), ('u2', 'b@x', 0);
         INSERT INTO datasets VALUES ('d1', 'u1', 'one'), ('d2', 'u2', 'two');",
    )
    .expect("rows");
    let (model, steps) = planned(&mut live);
    // Nothing stands in the way, and the only values dropped are none (legacy is empty).
    for step in &steps {
        assert_eq!(step.class, Class::Safe, "{step:?}");
    }
    let kinds: Vec<DifferenceKind> = steps.iter().map(|s| s.kind).collect();
    assert!(kinds.contains(&DifferenceKind::MissingTable), "{kinds:?}");
    assert!(
        kinds.contains(&DifferenceKind::UnexpectedTable),
        "{kinds:?}"
    );
    run(&mut live, &steps);
    let after = schema::introspect(&mut live).expect("model");
    assert_eq!(
        schema::compare(&model, &after),
        vec![],
        "nothing left to repair"
    );
    assert_eq!(count(&mut live, "SELECT count(*) AS n FROM users"), 2);
    assert_eq!(
        count(&mut live, "SELECT sum(credits) AS n FROM users"),
        5,
        "values of kept columns are unchanged"
    );
    assert_eq!(count(&mut live, "SELECT count(*) AS n FROM datasets"), 2);
    // The ON DELETE is CASCADE now: deleting a user takes its dataset.
    live.batch_execute("PRAGMA foreign_keys = ON; DELETE FROM users WHERE id = 'u2'")
        .expect("delete");
    assert_eq!(count(&mut live, "SELECT count(*) AS n FROM datasets"), 1);
}

#[test]
fn rows_in_the_way_are_named_and_values_dropped_are_counted() {
    let (_dir, mut live) = sqlite(DRIFTED);
    live.batch_execute(
        "INSERT INTO users (id, email, credits, legacy) VALUES
            ('u1', 'same@x', 5, 'old'), ('u2', 'same@x', -3, NULL), ('u3', 'c@x', 1, NULL);
         INSERT INTO stray VALUES ('s1');",
    )
    .expect("rows");
    let (_, steps) = planned(&mut live);
    let users = steps.iter().find(|s| s.table == "users").expect("users");
    match &users.class {
        Class::BlockedByData { rows, sample, why } => {
            // The duplicates (two rows) outrank the check's one; both are named.
            assert_eq!(*rows, 2, "{why}");
            assert_eq!(sample, &["id=u1", "id=u2"], "{why}");
        }
        other => panic!("users should be blocked: {other:?}"),
    }
    let stray = steps.iter().find(|s| s.table == "stray").expect("stray");
    assert_eq!(stray.class, Class::DestroysData { rows: 1 });
}

/// The same repair on PostgreSQL, in a transaction, on databases of the test server
/// (`ORCH_TEST_PG_URL`; with `ORCH_TEST_REQUIRE_PG=1` an unreachable server fails).
#[test]
fn postgres_repairs_in_place_in_one_transaction() {
    let Some(mut server) = crate::test_pg::TestServer::connect() else {
        return;
    };
    let tag = format!("orch_repair_unit_{}", std::process::id());
    let pg = |sql: &str| sql.replace("BIGINT NOT NULL DEFAULT 0", "bigint NOT NULL DEFAULT 0");
    let (scratch, live_db) = (format!("{tag}_expected"), format!("{tag}_live"));
    let mut expected_conn = server.database(&scratch, &pg(MIGRATIONS));
    let model = schema::introspect(&mut expected_conn).expect("model");
    let defs = definitions::read(&mut expected_conn).expect("definitions");
    drop(expected_conn);
    let mut live = server.database(&live_db, &pg(DRIFTED));
    live.batch_execute(
        "INSERT INTO users (id, email, credits, legacy) VALUES ('u1', 'a@x', 5, NULL), ('u2', 'b@x', 0, 'kept?');
         INSERT INTO datasets VALUES ('d1', 'u1', 'one'), ('d2', 'u2', 'two');
         ALTER TABLE users ALTER COLUMN credits TYPE text;",
    )
    .expect("rows");
    let found = schema::introspect(&mut live).expect("live model");
    live.batch_execute("BEGIN").expect("begin");
    let mut steps = plan(Backend::Postgres, &model, &defs, &found).expect("plan");
    classify(&mut live, &found, &mut steps).expect("classify");
    let legacy = steps
        .iter()
        .find(|s| s.object == "legacy")
        .expect("the legacy column's step");
    assert_eq!(legacy.class, Class::DestroysData { rows: 1 });
    let credits = steps
        .iter()
        .find(|s| s.kind == DifferenceKind::ColumnType)
        .expect("the type change");
    assert_eq!(credits.class, Class::Safe, "'5' and '0' are bigints");
    apply(&mut live, &steps).expect("apply");
    let after = schema::introspect(&mut live).expect("model");
    live.batch_execute("COMMIT").expect("commit");
    assert_eq!(schema::compare(&model, &after), vec![]);
    assert_eq!(
        count(&mut live, "SELECT sum(credits)::bigint AS n FROM users"),
        5
    );
    assert_eq!(count(&mut live, "SELECT count(*) AS n FROM datasets"), 2);

    // A value the new type refuses blocks the step, named.
    live.batch_execute(
        "ALTER TABLE users DROP CONSTRAINT users_credits_check; \
         ALTER TABLE users ALTER COLUMN credits TYPE text; \
         UPDATE users SET credits = 'lots' WHERE id = 'u2'",
    )
    .expect("drift again");
    let found = schema::introspect(&mut live).expect("live model");
    let mut steps = plan(Backend::Postgres, &model, &defs, &found).expect("plan");
    live.batch_execute("BEGIN").expect("begin");
    classify(&mut live, &found, &mut steps).expect("classify");
    live.batch_execute("ROLLBACK").expect("rollback");
    let cast = steps
        .iter()
        .find(|s| s.kind == DifferenceKind::ColumnType)
        .expect("the type change");
    match &cast.class {
        Class::BlockedByData { rows, sample, why } => {
            assert_eq!(
                (*rows, sample.as_slice()),
                (1, &["id=u2".to_string()][..]),
                "{why}"
            );
        }
        other => panic!("the type change should be blocked: {other:?}"),
    }
    drop(live);
}
