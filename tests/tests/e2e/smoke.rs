//! `smoke` through the real binary: it passes on a migrated pair, leaves every row count
//! as it found it, and fails (exit 1) when a store is not fit.

use orch_tests::{exec, for_each_backend, json_of, orchestrator};

fn counts(pair: &orch_tests::TestPair) -> Vec<(String, i64)> {
    let mut all = Vec::new();
    for mut conn in [pair.auth.connect(), pair.app.connect()] {
        let tables = shared::catalog::tables(&mut conn).expect("tables");
        all.extend(shared::catalog::row_counts(&mut conn, &tables).expect("counts"));
    }
    all
}

#[test]
fn smoke_passes_and_leaves_nothing_behind() {
    for_each_backend("smoke_passes", |pair| {
        orchestrator(pair).arg("migrate").assert().success();
        orch_tests::seed::newcomer(pair, "keep@x");
        let before = counts(pair);
        let (code, report) = json_of(orchestrator(pair), &["smoke"]);
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["ok"], true);
        let steps: Vec<&str> = report["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| s["step"].as_str().unwrap_or(""))
            .collect();
        for step in [
            "signup",
            "credits",
            "ledger",
            "dataset",
            "document",
            "job",
            "cascade",
            "cross-store reference",
        ] {
            assert!(steps.contains(&step), "{step} missing: {steps:?}");
        }
        assert!(
            report["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .all(|s| s["ok"] == true),
            "{report}"
        );
        assert_eq!(
            counts(pair),
            before,
            "smoke must leave the row counts unchanged on {}",
            pair.backend
        );
    });
}

#[test]
fn smoke_fails_with_exit_1_on_an_unfit_store_and_still_leaves_nothing() {
    for_each_backend("smoke_fails", |pair| {
        orchestrator(pair)
            .args(["migrate", "--store", "auth"])
            .assert()
            .success();
        orchestrator(pair)
            .args(["migrate", "--store", "app"])
            .assert()
            .success();
        // A store that drifted: app lost its jobs table.
        exec(&mut pair.app.connect(), "DROP TABLE processing_jobs");
        let before = counts(pair);
        let (code, report) = json_of(orchestrator(pair), &["smoke"]);
        assert_eq!(code, 1, "{report}");
        assert_eq!(report["ok"], false);
        let failed: Vec<&str> = report["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter(|s| s["ok"] == false)
            .map(|s| s["step"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(failed, ["job"], "{report}");
        assert_eq!(report["rows_unchanged"], true);
        assert_eq!(counts(pair), before);
    });
}
