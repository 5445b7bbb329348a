//! Resetting or restoring one store that another references: the rows of the kept store
//! that would point at nothing are counted, named in the plan and the report, and refuse
//! the run without `--force`.

use orch_tests::{exec, for_each_backend, json_of, orchestrator};

#[test]
fn resetting_auth_alone_names_the_app_rows_left_pointing_at_nothing() {
    for_each_backend("partial_reset", |pair| {
        orchestrator(pair).arg("migrate").assert().success();
        orch_tests::seed::contract_rows(pair);

        // The plan says what a forced reset of auth alone would leave behind in app.
        let (code, plan) = json_of(
            orchestrator(pair),
            &["reset", "--store", "auth", "--force", "--dry-run"],
        );
        assert_eq!(code, 0, "{plan}");
        let dangling = plan["dangling"].as_array().cloned().unwrap_or_default();
        let rows_of = |from: &str| {
            dangling
                .iter()
                .find(|d| d["from"] == from)
                .map(|d| d["rows"].as_i64().unwrap_or(-1))
        };
        assert_eq!(rows_of("app.datasets.owner_id"), Some(2), "{plan}");
        assert_eq!(rows_of("app.datasets.team_id"), Some(1), "{plan}");

        // Even with auth empty, the references alone refuse it without --force.
        exec(
            &mut pair.auth.connect(),
            "DELETE FROM credit_transactions; DELETE FROM user_credits; DELETE FROM teams; DELETE FROM users;",
        );
        let output = orchestrator(pair)
            .args(["reset", "--store", "auth"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{stderr}");
        assert!(
            stderr.contains("2 rows of app.datasets.owner_id would point at auth.users.id rows that no longer exist"),
            "{stderr}"
        );
        // Forced, it runs and says so; resetting both stores leaves nothing dangling.
        let output = orchestrator(pair)
            .args(["reset", "--store", "auth", "--force"])
            .output()
            .expect("run");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            String::from_utf8_lossy(&output.stdout)
                .contains("consequence: 2 rows of app.datasets.owner_id"),
            "{}",
            String::from_utf8_lossy(&output.stdout)
        );
        let (code, plan) = json_of(orchestrator(pair), &["reset", "--force", "--dry-run"]);
        assert_eq!(code, 0, "{plan}");
        assert_eq!(plan["dangling"], serde_json::json!([]), "{plan}");
    });
}

#[test]
fn restoring_auth_alone_names_the_app_rows_its_backup_does_not_hold() {
    for_each_backend("partial_restore", |pair| {
        orchestrator(pair).arg("migrate").assert().success();
        orch_tests::seed::contract_rows(pair);
        let (code, set) = json_of(orchestrator(pair), &["backup", "--store", "auth"]);
        assert_eq!(code, 0, "{set}");
        let set = set["dir"].as_str().expect("dir").to_string();
        // Since the backup: a user, and a dataset of theirs in app.
        orch_tests::seed::newcomer(pair, "d@x");
        let (code, report) = json_of(
            orchestrator(pair),
            &["restore", &set, "--store", "auth", "--force"],
        );
        assert_eq!(code, 0, "{report}");
        assert_eq!(
            report["dangling"],
            serde_json::json!([{"from": "app.datasets.owner_id", "to": "auth.users.id", "rows": 1}]),
            "{report}"
        );
        // With auth emptied, only the reference stands in the way, without --force.
        exec(
            &mut pair.auth.connect(),
            "DELETE FROM credit_transactions; DELETE FROM user_credits; DELETE FROM teams; DELETE FROM users;",
        );
        let output = orchestrator(pair)
            .args(["restore", &set, "--store", "auth"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{stderr}");
        assert!(
            stderr.contains("1 rows of app.datasets.owner_id"),
            "{stderr}"
        );
    });
}
