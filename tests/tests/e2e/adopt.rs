//! `adopt`: databases another tool built, holding rows and no history of this tool's.
//! Equal to what the migrations make, their history is recorded (then `migrate` is a
//! no-op and `verify` is clean); different, nothing is recorded in any store. `migrate`
//! on such a database refuses before it runs anything and points at `adopt`.

use orch_tests::{exec, for_each_backend, json_of, orchestrator, TestPair};

/// Each store built by running its migrations' SQL by hand, as another tool would: the
/// same tables, no history table, plus Prisma's history table in auth.
fn built_by_hand(pair: &TestPair) {
    for (db, store) in [(&pair.auth, &auth_db::STORE), (&pair.app, &app_db::STORE)] {
        let mut conn = db.connect();
        for migration in store.migrations.sql_for(pair.backend) {
            exec(&mut conn, migration.up);
        }
    }
    exec(
        &mut pair.auth.connect(),
        "CREATE TABLE _prisma_migrations (id VARCHAR(36) PRIMARY KEY, migration_name VARCHAR(255) NOT NULL);
         INSERT INTO _prisma_migrations VALUES ('1', '20240101_init');",
    );
}

fn applied(db: &orch_tests::TestDb) -> Vec<String> {
    shared::catalog::applied_versions(&mut db.connect()).expect("applied versions")
}

#[test]
fn a_database_built_by_hand_is_adopted_then_migrate_is_a_no_op_and_verify_is_clean() {
    for_each_backend("adopt_equal", |pair| {
        built_by_hand(pair);
        orch_tests::seed::contract_rows(pair);
        let before = orch_tests::checksums::snapshots(pair);

        // migrate would stop at the first CREATE TABLE: refused before it runs anything.
        let output = orchestrator(pair).arg("migrate").output().expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("no record of this tool's migrations")
                && stderr.contains("orchestrator adopt"),
            "{stderr}"
        );
        assert!(applied(&pair.auth).is_empty() && applied(&pair.app).is_empty());

        let (code, report) = json_of(orchestrator(pair), &["adopt"]);
        assert_eq!(code, 0, "{report}");
        for (i, store) in [&auth_db::STORE, &app_db::STORE].into_iter().enumerate() {
            let shipped = shared::migrations::shipped(store, pair.backend).expect("shipped");
            assert_eq!(report["stores"][i]["outcome"], "adopted", "{report}");
            assert_eq!(
                report["stores"][i]["migrations"].as_array().map(Vec::len),
                Some(shipped.len()),
                "{report}"
            );
        }
        assert_eq!(
            report["stores"][0]["other_tools"][0][0], "_prisma_migrations",
            "another tool's history is named: {report}"
        );
        assert_eq!(
            orch_tests::checksums::snapshots(pair),
            before,
            "adopting changes no row and no column"
        );

        let (code, migrated) = json_of(orchestrator(pair), &["migrate"]);
        assert_eq!(code, 0, "{migrated}");
        for store in migrated["stores"].as_array().expect("stores") {
            assert_eq!(store["applied"], serde_json::json!([]), "{migrated}");
        }
        let (code, verified) = json_of(orchestrator(pair), &["verify"]);
        assert_eq!(code, 0, "{verified}");
        let (code, status) = json_of(orchestrator(pair), &["status"]);
        assert_eq!(code, 0, "checksums recorded, nothing unchecked: {status}");

        // Again: already this tool's, nothing to do.
        let (code, again) = json_of(orchestrator(pair), &["adopt"]);
        assert_eq!(code, 0, "{again}");
        assert_eq!(again["stores"][1]["outcome"], "already_managed", "{again}");
        assert_eq!(orch_tests::checksums::snapshots(pair), before);
    });
}

#[test]
fn a_database_that_differs_is_not_adopted_and_nothing_is_recorded_anywhere() {
    for_each_backend("adopt_differs", |pair| {
        built_by_hand(pair);
        orch_tests::seed::contract_rows(pair);
        // A column the migrations do not make, in app alone.
        exec(
            &mut pair.app.connect(),
            "ALTER TABLE datasets ADD COLUMN legacy_flag INTEGER",
        );
        let before = orch_tests::checksums::snapshots(pair);
        let (code, report) = json_of(orchestrator(pair), &["adopt"]);
        assert_eq!(code, 1, "{report}");
        assert_eq!(report["stores"][0]["outcome"], "equal", "{report}");
        assert_eq!(report["stores"][1]["outcome"], "differs", "{report}");
        let differences = report["stores"][1]["differences"].as_array().expect("list");
        assert!(
            differences
                .iter()
                .any(|d| d["kind"] == "unexpected_column" && d["object"] == "legacy_flag"),
            "{report}"
        );
        // auth was equal, and still nothing was recorded there: no half-adopted pair.
        assert!(applied(&pair.auth).is_empty() && applied(&pair.app).is_empty());
        assert_eq!(orch_tests::checksums::snapshots(pair), before);

        // In text, each difference and the way forward.
        let output = orchestrator(pair).arg("adopt").output().expect("run");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stdout.contains("legacy_flag"), "{stdout}");
        assert!(
            stderr.contains("nothing was recorded in any store"),
            "{stderr}"
        );
    });
}

#[test]
fn there_is_nothing_to_adopt_in_an_empty_store_and_nothing_is_created() {
    for_each_backend("adopt_empty", |pair| {
        let output = orchestrator(pair).arg("adopt").output().expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("orchestrator migrate"), "{stderr}");
        match pair.backend {
            shared::Backend::Sqlite => assert!(
                !pair.path().join(".data").exists()
                    && std::fs::read_dir(pair.path())
                        .expect("dir")
                        .flatten()
                        .all(|e| !e.file_name().to_string_lossy().contains("sqlite")),
                "no database file is created"
            ),
            shared::Backend::Postgres => {
                assert!(applied(&pair.auth).is_empty() && applied(&pair.app).is_empty());
            }
        }
    });
}
