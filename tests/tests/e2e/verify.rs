//! `verify` through the real binary, on both backends: a clean pair passes, and each kind
//! of drift (orphans, ON DELETE, stray table, edited/pending/unknown migration) is named.

use orch_tests::{count, exec, for_each_backend, json_of, orchestrator, TestPair};
use serde_json::{json, Value};
use shared::catalog::{DIESEL_MIGRATIONS_TABLE, ORCHESTRATOR_MIGRATIONS_TABLE};
use shared::Backend;

fn migrated(pair: &TestPair) {
    orchestrator(pair).arg("migrate").assert().success();
}

fn verify(pair: &TestPair, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["verify"];
    args.extend_from_slice(extra);
    json_of(orchestrator(pair), &args)
}

fn verify_text(pair: &TestPair) -> (i32, String) {
    let out = orchestrator(pair)
        .arg("verify")
        .output()
        .expect("run verify");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn store<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["stores"]
        .as_array()
        .expect("stores")
        .iter()
        .find(|s| s["store"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

fn reference<'a>(report: &'a Value, from: &str) -> &'a Value {
    report["references"]
        .as_array()
        .expect("references")
        .iter()
        .find(|r| r["from"] == from)
        .unwrap_or_else(|| panic!("no {from} in {report}"))
}

/// The version diesel records for the app store's first migration, and its name.
fn first_app_migration(backend: Backend) -> (String, String) {
    shared::migrations::shipped(&app_db::STORE, backend)
        .expect("shipped")
        .into_iter()
        .next()
        .expect("app has migrations")
}

#[test]
fn a_clean_migrated_pair_passes() {
    for_each_backend("e2e_verify_clean", |pair| {
        migrated(pair);
        let mut auth = pair.auth.connect();
        let mut app = pair.app.connect();
        exec(
            &mut auth,
            "INSERT INTO users (id, email) VALUES ('Zed', 'z@x'), ('alice', 'a@x');
             INSERT INTO teams (id, name, owner_id) VALUES ('t1', 'T', 'alice');",
        );
        // Upper case sorts before lower case in byte order but not in most locales: a
        // merge fed locale order would report these as orphans.
        exec(
            &mut app,
            "INSERT INTO datasets (id, owner_id, team_id, name) VALUES
               ('d1', 'Zed', NULL, 'a'), ('d2', 'alice', 't1', 'b'), ('d3', 'alice', NULL, 'c');",
        );
        let (code, report) = verify(pair, &[]);
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(report["stores"].as_array().map(Vec::len), Some(2));
        for s in report["stores"].as_array().expect("stores") {
            assert_eq!(s["tables"], json!({"missing": [], "unexpected": []}), "{s}");
            assert_eq!(
                s["migrations"],
                json!({"pending": [], "unknown": [], "modified": [], "unchecked": []}),
                "{s}"
            );
            assert_eq!(s["foreign_keys"]["mismatched"], json!([]), "{s}");
            assert_eq!(s["schema"]["differences"], json!([]), "{s}");
        }
        let owners = reference(&report, "app.datasets.owner_id");
        assert_eq!(owners["to"], "auth.users.id");
        assert_eq!(owners["orphans"], 0);
        assert_eq!(reference(&report, "app.datasets.team_id")["orphans"], 0);

        let (code, text) = verify_text(pair);
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("everything holds"), "{text}");
    });
}

#[test]
fn orphans_are_counted_and_sampled_and_nulls_do_not_count() {
    for_each_backend("e2e_verify_orphans", |pair| {
        migrated(pair);
        let mut auth = pair.auth.connect();
        let mut app = pair.app.connect();
        exec(
            &mut auth,
            "INSERT INTO users (id, email) VALUES ('u1', 'a@x'), ('u2', 'b@x');
             INSERT INTO teams (id, name, owner_id) VALUES ('t1', 'T', 'u1');",
        );
        exec(
            &mut app,
            "INSERT INTO datasets (id, owner_id, team_id, name) VALUES
               ('d1', 'u1', 't1', 'ok'),
               ('d2', 'gone-b', NULL, 'orphan owner'),
               ('d3', 'gone-a', NULL, 'orphan owner'),
               ('d4', 'gone-a', 't-gone', 'orphan owner and team'),
               ('d5', 'u2', NULL, 'ok'),
               ('d6', 'u2', 't1', 'ok');",
        );
        let (code, report) = verify(pair, &[]);
        assert_eq!(code, 1, "{report}");
        assert_eq!(report["ok"], false);
        let owners = reference(&report, "app.datasets.owner_id");
        assert_eq!(owners["orphans"], 3, "{owners}");
        assert_eq!(owners["sample"], json!(["gone-a", "gone-b"]), "{owners}");
        let teams = reference(&report, "app.datasets.team_id");
        assert_eq!(teams["to"], "auth.teams.id");
        assert_eq!(teams["orphans"], 1, "{teams}");
        assert_eq!(teams["sample"], json!(["t-gone"]), "{teams}");
        // The schemas themselves are fine: only the references are reported.
        assert_eq!(store(&report, "app")["tables"]["unexpected"], json!([]));

        let (code, text) = verify_text(pair);
        assert_eq!(code, 1);
        assert!(
            text.contains(
                "app.datasets.owner_id → auth.users.id: 3 orphan(s), e.g. gone-a, gone-b"
            ),
            "{text}"
        );
        assert!(text.contains("2 problem(s) found"), "{text}");
    });
}

#[test]
fn a_drifted_on_delete_is_named_with_expected_and_found() {
    for_each_backend("e2e_verify_on_delete", |pair| {
        migrated(pair);
        let mut app = pair.app.connect();
        match pair.backend {
            Backend::Postgres => exec(
                &mut app,
                "ALTER TABLE documents DROP CONSTRAINT documents_dataset_id_fkey;
                 ALTER TABLE documents ADD CONSTRAINT documents_dataset_id_fkey
                   FOREIGN KEY (dataset_id) REFERENCES datasets (id) ON DELETE SET NULL;",
            ),
            Backend::Sqlite => exec(
                &mut app,
                "PRAGMA foreign_keys = OFF;
                 BEGIN;
                 CREATE TABLE documents_new (
                     id TEXT PRIMARY KEY NOT NULL,
                     dataset_id TEXT NOT NULL REFERENCES datasets (id) ON DELETE SET NULL,
                     filename TEXT NOT NULL, content_type TEXT, size_bytes BIGINT,
                     created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
                 INSERT INTO documents_new SELECT * FROM documents;
                 DROP TABLE documents;
                 ALTER TABLE documents_new RENAME TO documents;
                 COMMIT;
                 PRAGMA foreign_keys = ON;",
            ),
        }
        let (code, report) = verify(pair, &[]);
        assert_eq!(code, 1, "{report}");
        assert_eq!(
            store(&report, "app")["foreign_keys"]["mismatched"],
            json!([{
                "column": "documents.dataset_id",
                "expected": "datasets.id ON DELETE CASCADE",
                "found": "datasets.id ON DELETE SET NULL",
            }]),
            "{report}"
        );
        assert_eq!(
            store(&report, "auth")["foreign_keys"]["mismatched"],
            json!([])
        );
        let (_, text) = verify_text(pair);
        assert!(
            text.contains("documents.dataset_id: expected datasets.id ON DELETE CASCADE, found datasets.id ON DELETE SET NULL"),
            "{text}"
        );
    });
}

#[test]
fn a_users_table_in_app_is_unexpected() {
    for_each_backend("e2e_verify_stray", |pair| {
        migrated(pair);
        let mut app = pair.app.connect();
        exec(&mut app, "CREATE TABLE users (id TEXT PRIMARY KEY)");
        let (code, report) = verify(pair, &[]);
        assert_eq!(code, 1, "{report}");
        assert_eq!(
            store(&report, "app")["tables"],
            json!({"missing": [], "unexpected": ["users"]})
        );
        assert_eq!(store(&report, "auth")["tables"]["unexpected"], json!([]));
        let (_, text) = verify_text(pair);
        assert!(text.contains("unexpected table  users"), "{text}");
    });
}

#[test]
fn an_edited_migration_is_caught_and_old_histories_are_not_blamed() {
    for_each_backend("e2e_verify_modified", |pair| {
        migrated(pair);
        let (version, name) = first_app_migration(pair.backend);
        let mut app = pair.app.connect();
        // What an edited up.sql looks like from the database: the checksum recorded at
        // apply time no longer matches the file shipped in the binary.
        exec(
            &mut app,
            &format!(
                "UPDATE {ORCHESTRATOR_MIGRATIONS_TABLE} SET checksum = 'edited' WHERE version = '{version}'"
            ),
        );
        let (code, report) = verify(pair, &[]);
        assert_eq!(code, 1, "{report}");
        assert_eq!(
            store(&report, "app")["migrations"]["modified"],
            json!([name.clone()])
        );
        assert_eq!(store(&report, "auth")["migrations"]["modified"], json!([]));
        let (_, status) = json_of(orchestrator(pair), &["status"]);
        assert_eq!(
            status["stores"][1]["modified"],
            json!([name.clone()]),
            "{status}"
        );
        let text = orchestrator(pair).arg("status").output().expect("status");
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains(&format!("modified {name}")), "{text}");

        // A database migrated by another tool (diesel_cli, or a build before checksums)
        // has no records: its migrations are "unchecked", not silently fine, and the next
        // migrate records them only once the schema is proven to be what they make.
        exec(
            &mut app,
            &format!("DELETE FROM {ORCHESTRATOR_MIGRATIONS_TABLE}"),
        );
        let shipped = shared::migrations::shipped(&app_db::STORE, pair.backend).expect("shipped");
        let names: Vec<String> = shipped.iter().map(|(_, n)| n.clone()).collect();
        let (code, report) = verify(pair, &[]);
        assert_eq!(code, 1, "{report}");
        assert_eq!(
            store(&report, "app")["migrations"]["unchecked"],
            json!(names)
        );
        assert_eq!(store(&report, "app")["migrations"]["modified"], json!([]));
        migrated(pair);
        assert_eq!(
            count(&mut app, ORCHESTRATOR_MIGRATIONS_TABLE) as usize,
            shipped.len()
        );
        let (code, report) = verify(pair, &[]);
        assert_eq!(code, 0, "{report}");
    });
}

#[test]
fn pending_and_unknown_migrations_are_named() {
    for_each_backend("e2e_verify_history", |pair| {
        migrated(pair);
        let shipped = shared::migrations::shipped(&auth_db::STORE, pair.backend).expect("shipped");
        let (last_version, last_name) = shipped.last().expect("auth has migrations").clone();
        let mut auth = pair.auth.connect();
        exec(
            &mut auth,
            &format!(
                "DELETE FROM {DIESEL_MIGRATIONS_TABLE} WHERE version = '{last_version}';
                 INSERT INTO {DIESEL_MIGRATIONS_TABLE} (version) VALUES ('29990101000000');"
            ),
        );
        let (code, report) = verify(pair, &[]);
        assert_eq!(code, 1, "{report}");
        assert_eq!(
            store(&report, "auth")["migrations"],
            json!({"pending": [last_name], "unknown": ["29990101000000"], "modified": [], "unchecked": []})
        );
        assert_eq!(
            store(&report, "app")["migrations"]["pending"],
            json!([]),
            "{report}"
        );
    });
}

#[test]
fn one_store_is_verified_alone_and_references_need_app() {
    for_each_backend("e2e_verify_one", |pair| {
        migrated(pair);
        let (code, report) = verify(pair, &["--store", "auth"]);
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["stores"].as_array().map(Vec::len), Some(1));
        assert_eq!(report["stores"][0]["store"], "auth");
        assert_eq!(report["references"], json!([]));

        let mut app = pair.app.connect();
        exec(
            &mut app,
            "INSERT INTO datasets (id, owner_id, name) VALUES ('d1', 'nobody', 'x')",
        );
        let (code, report) = verify(pair, &["--store", "app"]);
        assert_eq!(code, 1, "{report}");
        assert_eq!(report["stores"].as_array().map(Vec::len), Some(1));
        assert_eq!(reference(&report, "app.datasets.owner_id")["orphans"], 1);
    });
}

#[test]
fn an_unreachable_store_is_a_database_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = orch_tests::orchestrator_in(dir.path())
        .args([
            "--auth-url",
            "postgres://nobody:secret@127.0.0.1:1/auth",
            "verify",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("secret"), "{stderr}");
}

/// PostgreSQL orders text by the column's collation; in a locale such as en-US `alice`
/// sorts before `Zed`, in byte order after it. verify must merge in byte order whatever
/// the collation, or matching ids become orphans.
#[test]
fn a_locale_collation_does_not_make_orphans_on_postgres() {
    for_each_backend("e2e_verify_collation", |pair| {
        if pair.backend != Backend::Postgres {
            return;
        }
        migrated(pair);
        let mut auth = pair.auth.connect();
        let mut app = pair.app.connect();
        let icu = count_rows(&mut auth, "pg_collation WHERE collname = 'en-US-x-icu'");
        if icu == 0 {
            eprintln!("skipped: this PostgreSQL has no ICU en-US collation");
            return;
        }
        exec(
            &mut auth,
            "ALTER TABLE users ALTER COLUMN id TYPE TEXT COLLATE \"en-US-x-icu\";
             INSERT INTO users (id, email) VALUES ('Zed', 'z@x'), ('alice', 'a@x'), ('bob', 'b@x');",
        );
        exec(
            &mut app,
            "ALTER TABLE datasets ALTER COLUMN owner_id TYPE TEXT COLLATE \"en-US-x-icu\";
             INSERT INTO datasets (id, owner_id, name) VALUES
               ('d1', 'alice', 'a'), ('d2', 'Zed', 'b'), ('d3', 'bob', 'c'), ('d4', 'Bob', 'd');",
        );
        let (code, report) = verify(pair, &[]);
        assert_eq!(code, 1, "{report}");
        let owners = reference(&report, "app.datasets.owner_id");
        assert_eq!(owners["orphans"], 1, "{owners}");
        assert_eq!(owners["sample"], json!(["Bob"]), "{owners}");
    });
}

fn count_rows(conn: &mut shared::Conn, from: &str) -> i64 {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!("SELECT COUNT(*) AS n FROM {from}");
    let rows: Vec<N> = match conn {
        shared::Conn::Postgres(c) => diesel::sql_query(sql).load(c),
        shared::Conn::Sqlite(c) => diesel::sql_query(sql).load(c),
    }
    .expect("count");
    rows.first().map(|r| r.n).unwrap_or(0)
}
