//! `orchestrator revert`: runs the down.sql of applied migrations, newest first, app
//! before auth; refuses to drop data without --force, backs it up with it; --dry-run
//! prints the down SQL and changes nothing. On both backends.

use std::path::PathBuf;

use orch_tests::{count, for_each_backend, json_of, orchestrator, TestPair};
use shared::catalog;

fn names(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .filter_map(|m| m.as_str().map(str::to_string))
        .collect()
}

fn shipped(store: &shared::Store, pair: &TestPair) -> Vec<(String, String)> {
    shared::migrations::shipped(store, pair.backend).expect("shipped")
}

fn applied(db: &orch_tests::TestDb) -> Vec<String> {
    catalog::applied_versions(&mut db.connect()).expect("applied versions")
}

fn migrate(pair: &TestPair) {
    orchestrator(pair).arg("migrate").assert().success();
}

#[test]
fn revert_one_step_then_migrate_again_is_verified() {
    for_each_backend("e2e_revert_redo", |pair| {
        migrate(pair);
        let app = shipped(&app_db::STORE, pair);
        let auth = shipped(&auth_db::STORE, pair);

        // Both stores, one step each, app first.
        let (code, report) = json_of(orchestrator(pair), &["revert"]);
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["stores"][0]["store"], "app", "{report}");
        assert_eq!(report["stores"][1]["store"], "auth", "{report}");
        assert_eq!(
            names(&report["stores"][0]["reverted"]),
            [app.last().expect("app").1.clone()]
        );
        assert_eq!(
            names(&report["stores"][1]["reverted"]),
            [auth.last().expect("auth").1.clone()]
        );
        assert!(
            report["backup"].is_null(),
            "no data lost, no backup: {report}"
        );
        assert_eq!(applied(&pair.app).len(), app.len() - 1);
        assert_eq!(applied(&pair.auth).len(), auth.len() - 1);

        let (_, status) = json_of(orchestrator(pair), &["status"]);
        assert_eq!(
            names(&status["stores"][1]["pending"]),
            [app.last().expect("app").1.clone()],
            "{status}"
        );

        // Redo: the reverted migrations run again, checksums and all.
        migrate(pair);
        let (code, status) = json_of(orchestrator(pair), &["status"]);
        assert_eq!(code, 0, "{status}");
        for (i, n) in [(0, auth.len()), (1, app.len())] {
            assert_eq!(
                status["stores"][i]["pending"].as_array().map(Vec::len),
                Some(0),
                "{status}"
            );
            assert_eq!(
                status["stores"][i]["applied"].as_array().map(Vec::len),
                Some(n),
                "{status}"
            );
        }
        let verify = orchestrator(pair).arg("verify").output().expect("verify");
        assert_eq!(
            verify.status.code(),
            Some(0),
            "{}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
    });
}

#[test]
fn revert_to_the_first_version_reverts_the_rest() {
    for_each_backend("e2e_revert_to", |pair| {
        migrate(pair);
        let auth = shipped(&auth_db::STORE, pair);
        let dated = auth[0].1.split('_').next().expect("date").to_string();
        let (code, report) = json_of(
            orchestrator(pair),
            &["revert", "--store", "auth", "--to", &dated],
        );
        assert_eq!(code, 0, "{report}");
        let newest_first: Vec<String> = auth[1..].iter().rev().map(|(_, n)| n.clone()).collect();
        assert_eq!(names(&report["stores"][0]["reverted"]), newest_first);
        assert_eq!(applied(&pair.auth), [auth[0].0.clone()]);
        // The first migration's tables stay; the later ones' are gone.
        let tables = catalog::tables(&mut pair.auth.connect()).expect("tables");
        assert!(tables.contains(&"users".to_string()), "{tables:?}");
        assert!(!tables.contains(&"teams".to_string()), "{tables:?}");
        // app was not asked for.
        assert_eq!(
            applied(&pair.app).len(),
            shipped(&app_db::STORE, pair).len()
        );
    });
}

#[test]
fn dropping_a_table_with_rows_is_refused_then_forced_with_a_backup() {
    for_each_backend("e2e_revert_guard", |pair| {
        migrate(pair);
        orch_tests::seed::contract_rows(pair);
        let app = shipped(&app_db::STORE, pair);

        // The newest two app migrations drop documents and processing_jobs, one row each.
        let out = orchestrator(pair)
            .args(["revert", "--store", "app", "--steps", "2"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(
            stderr.contains("table documents (1 rows)")
                && stderr.contains("table processing_jobs (1 rows)")
                && stderr.contains("nothing was changed"),
            "{stderr}"
        );
        assert_eq!(count(&mut pair.app.connect(), "documents"), 1);
        assert_eq!(applied(&pair.app).len(), app.len());

        let (code, report) = json_of(
            orchestrator(pair),
            &["revert", "--store", "app", "--steps", "2", "--force"],
        );
        assert_eq!(code, 0, "{report}");
        let backup = PathBuf::from(report["backup"].as_str().expect("backup path"));
        let backup = pair.path().join(backup);
        let manifest = std::fs::read_to_string(backup.join("manifest.json"))
            .unwrap_or_else(|e| panic!("manifest in {}: {e}", backup.display()));
        let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("manifest");
        let stores: Vec<&str> = manifest["stores"]
            .as_array()
            .expect("stores")
            .iter()
            .filter_map(|s| s["store"].as_str())
            .collect();
        assert_eq!(stores, ["app"]);
        let file = manifest["stores"][0]["file"].as_str().expect("file");
        assert!(backup.join(file).is_file(), "{}", backup.display());
        assert_eq!(report["stores"][0]["destroys"]["tables"][0]["rows"], 1);
        assert_eq!(applied(&pair.app), [app[0].0.clone()]);
        let tables = catalog::tables(&mut pair.app.connect()).expect("tables");
        assert_eq!(tables, ["datasets"]);
        assert_eq!(count(&mut pair.app.connect(), "datasets"), 2);
    });
}

#[test]
fn dry_run_prints_the_down_sql_and_changes_nothing() {
    for_each_backend("e2e_revert_dry", |pair| {
        migrate(pair);
        orch_tests::seed::contract_rows(pair);
        let app = shipped(&app_db::STORE, pair);

        let (code, plan) = json_of(
            orchestrator(pair),
            &["revert", "--store", "app", "--steps", "2", "--dry-run"],
        );
        // The exit code is the guard's: these rows would need --force.
        assert_eq!(code, 3, "{plan}");
        assert_eq!(plan["dry_run"], true);
        let sql = &plan["stores"][0]["sql"];
        assert_eq!(sql[0]["name"], app[2].1.as_str(), "{plan}");
        assert!(
            sql[0]["sql"]
                .as_str()
                .is_some_and(|s| s.contains("DROP INDEX")),
            "{plan}"
        );
        assert!(
            sql[1]["sql"]
                .as_str()
                .is_some_and(|s| s.contains("DROP TABLE documents")),
            "{plan}"
        );
        assert!(
            plan["refused"]
                .as_str()
                .is_some_and(|r| r.contains("table documents (1 rows)")),
            "{plan}"
        );

        // In text, a step that loses nothing passes the guard.
        let out = orchestrator(pair)
            .args(["revert", "--store", "app", "--dry-run"])
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        assert!(
            stdout.contains("DROP INDEX") && stdout.contains("guard: would pass"),
            "{stdout}"
        );

        assert_eq!(applied(&pair.app).len(), app.len());
        assert_eq!(count(&mut pair.app.connect(), "documents"), 1);
        assert_eq!(count(&mut pair.app.connect(), "processing_jobs"), 1);
        assert!(!pair.path().join(".data/backups").exists());

        let help = orchestrator(pair)
            .args(["revert", "--help"])
            .output()
            .expect("help");
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.contains("Example") && help.contains("--steps"),
            "{help}"
        );
    });
}

#[test]
fn a_protected_store_needs_its_database_name() {
    for_each_backend("e2e_revert_protected", |pair| {
        migrate(pair);
        std::fs::write(
            pair.path().join("orchestrator.toml"),
            "[default]\nprotected = true\n",
        )
        .expect("write config");
        let app = shipped(&app_db::STORE, pair);
        let out = orchestrator(pair)
            .args(["revert", "--store", "app"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains("--confirm"), "{stderr}");
        assert_eq!(applied(&pair.app).len(), app.len());

        let name = pair.app.url.database_name();
        let (code, report) = json_of(
            orchestrator(pair),
            &["revert", "--store", "app", "--confirm", &name],
        );
        assert_eq!(code, 0, "{report}");
        assert_eq!(applied(&pair.app).len(), app.len() - 1);
    });
}

#[test]
fn rows_written_after_the_guard_counted_stop_the_revert() {
    use shared::revert::{self, Loss, LostTable, Target};
    for_each_backend("e2e_revert_fence", |pair| {
        migrate(pair);
        let mut conn = pair.app.connect();
        let steps = revert::plan(&mut conn, &app_db::STORE, &Target::Steps(2)).expect("plan");
        let counted = revert::rehearse(&mut conn, &steps).expect("rehearse");
        assert!(counted.holding().is_empty(), "{counted:?}");
        // A writer between the guard's count and the revert.
        orch_tests::seed::contract_rows(pair);
        let index_only = Loss::default();
        revert::revert_step(&mut conn, &steps[0], &index_only).expect("the index step");
        let err = revert::revert_step(&mut conn, &steps[1], &counted)
            .expect_err("documents gained a row since it was counted");
        assert!(
            err.to_string().contains("table documents (0 rows, 1 now)"),
            "{err}"
        );
        assert_eq!(count(&mut conn, "documents"), 1);
        let app = shipped(&app_db::STORE, pair);
        assert_eq!(applied(&pair.app).len(), app.len() - 1);
        // What was counted with the rows passes.
        let recounted = Loss {
            tables: vec![
                LostTable {
                    table: "documents".into(),
                    rows: 1,
                },
                LostTable {
                    table: "processing_jobs".into(),
                    rows: 1,
                },
            ],
            columns: Vec::new(),
        };
        revert::revert_step(&mut conn, &steps[1], &recounted).expect("counted rows");
        assert_eq!(applied(&pair.app).len(), app.len() - 2);
    });
}
