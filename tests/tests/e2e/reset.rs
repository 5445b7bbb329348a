//! `reset`, `backup` and `restore` through the real binary, on both backends: the guard,
//! dry runs, failures halfway, crashes between commits, concurrent runs, protected stores,
//! and a backup that restore brings back row for row.

use std::process::Stdio;
use std::time::Duration;

use orch_tests::{exec, for_each_backend, json_of, orchestrator, TestPair};
use shared::Backend;

#[path = "reset/sessions.rs"]
mod sessions;
#[path = "reset/state.rs"]
mod state;

use orch_tests::checksums::{snapshot, snapshots};
use state::{assert_clean_and_verified, seed};

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_guard_refuses_and_keeps_every_row() {
    for_each_backend("reset_guard", |pair| {
        seed(pair);
        let before = snapshots(pair);
        let output = orchestrator(pair).arg("reset").output().expect("run");
        assert_eq!(output.status.code(), Some(3), "{}", stderr_of(&output));
        let stderr = stderr_of(&output);
        assert!(
            stderr.contains("table users (3 rows)") && stderr.contains("table datasets (2 rows)"),
            "{stderr}"
        );
        assert!(stderr.contains("--force"), "{stderr}");
        assert_eq!(
            snapshots(pair),
            before,
            "a refused reset must change nothing"
        );
        assert!(
            !pair.path().join(".data/backups").exists(),
            "no backup for a refused run"
        );
    });
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    for_each_backend("reset_dry_run", |pair| {
        seed(pair);
        let before = snapshots(pair);
        let (code, plan) = json_of(orchestrator(pair), &["reset", "--force", "--dry-run"]);
        assert_eq!(code, 0, "{plan}");
        assert_eq!(plan["dry_run"], true);
        // Three users with their three credits rows, a team and one ledger row.
        assert_eq!(plan["stores"][0]["rows_before"], 8, "{plan}");
        let shipped = shared::migrations::shipped(&auth_db::STORE, pair.backend).expect("shipped");
        assert_eq!(
            plan["stores"][0]["migrations"].as_array().map(Vec::len),
            Some(shipped.len()),
            "the plan lists every migration it would apply"
        );
        assert!(plan["backup"].is_string(), "{plan}");
        assert_eq!(snapshots(pair), before);
        assert!(
            !pair.path().join(".data/backups").exists(),
            "a dry run writes no backup"
        );
    });
}

// A failing second store (reset and restore, with and without two-phase commit) is in
// `faults.rs`.

#[test]
fn a_forced_reset_backs_up_and_restore_brings_every_row_back() {
    for_each_backend("reset_backup_restore", |pair| {
        seed(pair);
        let before = snapshots(pair);
        let (code, report) = json_of(orchestrator(pair), &["reset", "--force"]);
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["ok"], true);
        assert_eq!(
            report["stores"][0]["outcome"]["dropped"]
                .as_array()
                .map(Vec::len),
            Some(9),
            "{report}"
        );
        assert_clean_and_verified(pair);

        let dir = report["backup"].as_str().expect("backup path").to_string();
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(pair.path().join(&dir).join("manifest.json")).expect("manifest"),
        )
        .expect("json");
        assert_eq!(manifest["stores"][0]["row_counts"]["users"], 3);
        assert_eq!(manifest["stores"][1]["row_counts"]["datasets"], 2);
        assert_eq!(
            manifest["stores"][0]["sha256"].as_str().map(str::len),
            Some(64)
        );

        let (code, restored) = json_of(orchestrator(pair), &["restore", &dir]);
        assert_eq!(code, 0, "{restored}");
        assert_eq!(
            snapshots(pair),
            before,
            "restore must bring back every row on {}",
            pair.backend
        );

        // Restoring over rows needs --force, and then it keeps a safety backup.
        let output = orchestrator(pair)
            .args(["restore", &dir])
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(3), "{}", stderr_of(&output));
        let (code, again) = json_of(orchestrator(pair), &["restore", &dir, "--force"]);
        assert_eq!(code, 0, "{again}");
        assert!(again["safety_backup"].is_string(), "{again}");
        assert_eq!(snapshots(pair), before);
    });
}

#[test]
fn restore_rejects_damaged_or_mismatched_backups_before_touching_anything() {
    for_each_backend("restore_rejects", |pair| {
        seed(pair);
        let (code, made) = json_of(orchestrator(pair), &["backup", "--store", "auth"]);
        assert_eq!(code, 0, "{made}");
        let dir = pair.path().join(made["dir"].as_str().expect("dir"));
        orchestrator(pair)
            .args(["reset", "--force", "--no-backup"])
            .assert()
            .success();
        let empty = snapshots(pair);

        // A backup of auth is no backup of app.
        let output = orchestrator(pair)
            .args(["restore", dir.to_str().expect("utf8"), "--store", "app"])
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
        assert!(
            stderr_of(&output).contains("no backup of the app store"),
            "{}",
            stderr_of(&output)
        );

        // A damaged file (sha256 mismatch).
        let manifest_path = dir.join("manifest.json");
        let manifest_text = std::fs::read_to_string(&manifest_path).expect("manifest");
        let file = dir.join(if pair.backend == Backend::Postgres {
            "auth.dump"
        } else {
            "auth.sqlite3"
        });
        let original = std::fs::read(&file).expect("backup file");
        let mut damaged = original.clone();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0xff;
        std::fs::write(&file, &damaged).expect("damage");
        let output = orchestrator(pair)
            .args(["restore", dir.to_str().expect("utf8"), "--store", "auth"])
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
        assert!(
            stderr_of(&output).contains("damaged"),
            "{}",
            stderr_of(&output)
        );
        std::fs::write(&file, &original).expect("undamage");

        // A manifest that is not JSON, and a missing folder.
        std::fs::write(&manifest_path, "{ not json").expect("break manifest");
        let output = orchestrator(pair)
            .args(["restore", dir.to_str().expect("utf8"), "--store", "auth"])
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
        std::fs::write(&manifest_path, manifest_text).expect("restore manifest");
        let output = orchestrator(pair)
            .args(["restore", "/nonexistent/backup"])
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
        assert_eq!(snapshots(pair), empty, "rejected restores change nothing");

        // The intact backup restores.
        orchestrator(pair)
            .args(["restore", dir.to_str().expect("utf8"), "--store", "auth"])
            .assert()
            .success();
        assert_eq!(snapshot(&mut pair.auth.connect()).rows("users"), 3);
    });
}

#[test]
fn a_crash_between_the_two_commits_is_finished_by_the_next_run() {
    for_each_backend("reset_crash_between", |pair| {
        for mode in ["off", "on"] {
            seed_again(pair);
            let output = orchestrator(pair)
                .env("ORCH_FAULT", "crash-after-commit:auth")
                .env("ORCH_TWO_PHASE", mode)
                .args(["reset", "--force"])
                .output()
                .expect("run");
            assert!(!output.status.success(), "the run must have died");
            // Commands that only read report the half-finished run and change nothing. (With
            // two-phase commit app's old tables are held by its prepared rebuild: only auth
            // can be read, and the prepared transaction must stay as it is.)
            let prepared = prepared_of(pair);
            let mixed = if prepared.is_empty() {
                Some(snapshots(pair))
            } else {
                None
            };
            let auth_before = snapshot(&mut pair.auth.connect());
            for reader in ["status", "verify"] {
                let (code, report) = json_of(orchestrator(pair), &[reader]);
                assert_eq!(code, 1, "{reader} ({mode}): {report}");
                assert!(
                    report["interrupted"][0]
                        .as_str()
                        .is_some_and(|l| l.contains("interrupted run") && l.contains("reset")),
                    "{reader} ({mode}): {report}"
                );
                if let Some(mixed) = &mixed {
                    assert_eq!(&snapshots(pair), mixed, "{reader} ({mode}) changes nothing");
                }
                assert_eq!(
                    snapshot(&mut pair.auth.connect()),
                    auth_before,
                    "{reader} ({mode})"
                );
                assert_eq!(
                    prepared_of(pair),
                    prepared,
                    "{reader} ({mode}) commits nothing"
                );
            }
            // A dry run names what a real reset would settle first, and settles nothing;
            // while a prepared rebuild holds a store's tables it says it cannot read them.
            let (code, plan) = json_of(orchestrator(pair), &["reset", "--dry-run", "--force"]);
            if prepared.is_empty() {
                assert_eq!(code, 0, "dry run ({mode}): {plan}");
                assert!(
                    plan["would_settle"][0]
                        .as_str()
                        .is_some_and(|l| l.contains("interrupted run")),
                    "dry run ({mode}): {plan}"
                );
            } else {
                assert_eq!(code, 1, "dry run ({mode}): {plan}");
                assert!(
                    plan["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("until the interrupted run is settled")),
                    "dry run ({mode}): {plan}"
                );
            }
            if let Some(mixed) = &mixed {
                assert_eq!(
                    &snapshots(pair),
                    mixed,
                    "the dry run ({mode}) changes nothing"
                );
            }
            assert_eq!(
                prepared_of(pair),
                prepared,
                "the dry run ({mode}) commits nothing"
            );
            // The next writing command settles: app is finished, not left with its old rows.
            let (code, status) = json_of(orchestrator(pair), &["recover"]);
            assert_eq!(code, 0, "{status}");
            assert!(
                !status["recovered"]
                    .as_array()
                    .map(Vec::is_empty)
                    .unwrap_or(true),
                "{status}"
            );
            assert_clean_and_verified(pair);
            println!(
                "CRASH BETWEEN COMMITS {} ORCH_TWO_PHASE={mode}: the next writing command finished the reset",
                orch_tests::configuration(&pair.auth)
            );
        }
    });
}

/// Our prepared transactions on the app database (none on SQLite).
fn prepared_of(pair: &TestPair) -> Vec<String> {
    if pair.backend != Backend::Postgres {
        return Vec::new();
    }
    shared::admin::prepared_transactions(&mut pair.app.connect()).expect("prepared")
}

/// Seeds rows again (after an earlier reset) so that the next reset has rows to wipe.
fn seed_again(pair: &TestPair) {
    orchestrator(pair)
        .args(["reset", "--force", "--no-backup"])
        .assert()
        .success();
    seed(pair);
}

#[test]
fn two_resets_at_once_never_interleave() {
    for_each_backend("reset_concurrent", |pair| {
        seed(pair);
        let spawn = |fault: Option<&str>, timeout: &str| {
            let mut cmd = orch_tests::process(pair);
            cmd.args(["reset", "--force"])
                .env("ORCH_LOCK_TIMEOUT_SECS", timeout)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if let Some(f) = fault {
                cmd.env("ORCH_FAULT", f);
            }
            cmd.spawn().expect("spawn")
        };
        // The first run pauses before committing auth, holding both locks.
        let first = spawn(Some("pause-before-commit:auth"), "30");
        std::thread::sleep(Duration::from_millis(1200));
        let impatient = spawn(None, "1").wait_with_output().expect("second");
        assert_eq!(
            impatient.status.code(),
            Some(5),
            "{}",
            stderr_of(&impatient)
        );
        assert!(
            stderr_of(&impatient).contains("locked by"),
            "{}",
            stderr_of(&impatient)
        );
        let patient = spawn(None, "60");
        let first = first.wait_with_output().expect("first");
        assert!(first.status.success(), "{}", stderr_of(&first));
        let patient = patient.wait_with_output().expect("patient");
        assert!(
            patient.status.success(),
            "the waiting run goes after: {}",
            stderr_of(&patient)
        );
        assert_clean_and_verified(pair);
        println!(
            "CONCURRENT RESETS {}: the impatient one exited 5 naming the holder, the patient one went after; never interleaved",
            orch_tests::configuration(&pair.auth)
        );
    });
}

#[test]
fn a_protected_store_needs_confirm_even_when_empty() {
    for_each_backend("reset_protected", |pair| {
        std::fs::write(
            pair.path().join("orchestrator.toml"),
            "[default]\nprotected = true\n",
        )
        .expect("toml");
        let output = orchestrator(pair).arg("reset").output().expect("run");
        assert_eq!(output.status.code(), Some(3), "{}", stderr_of(&output));
        let auth_name = pair.auth.url.database_name();
        let app_name = pair.app.url.database_name();
        assert!(
            stderr_of(&output).contains(&format!("--confirm {auth_name}")),
            "{}",
            stderr_of(&output)
        );
        let output = orchestrator(pair)
            .args(["reset", "--confirm", &auth_name])
            .output()
            .expect("run");
        assert_eq!(
            output.status.code(),
            Some(3),
            "app still unconfirmed: {}",
            stderr_of(&output)
        );
        let output = orchestrator(pair)
            .args(["reset", "--confirm", ""])
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
        orchestrator(pair)
            .args(["reset", "--confirm", &auth_name, "--confirm", &app_name])
            .assert()
            .success();
        assert_clean_and_verified(pair);
    });
}

#[test]
fn postgres_failures_leave_both_databases_as_they_were() {
    let Some(pair) = TestPair::new(Backend::Postgres, "reset_pg_failures") else {
        return;
    };
    seed(&pair);
    let before = snapshots(&pair);

    // Another session holds app's table open in a transaction: the drop cannot get its
    // lock within the lock timeout.
    let mut holder = pair.app.connect();
    exec(&mut holder, "BEGIN; SELECT count(*) FROM datasets;");
    let output = orchestrator(&pair)
        .env("ORCH_LOCK_TIMEOUT_SECS", "1")
        .args(["reset", "--force"])
        .output()
        .expect("run");
    // A wait for someone else's lock that runs out is exit 5, as for another run's lock.
    assert_eq!(output.status.code(), Some(5), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("app database"),
        "{}",
        stderr_of(&output)
    );
    exec(&mut holder, "ROLLBACK");
    drop(holder);
    assert_eq!(snapshots(&pair), before);

    // A role that may use the databases but does not own the schema cannot drop it.
    let role = format!("orch_weak_{}", std::process::id());
    let mut admin = pair.auth.connect();
    exec(&mut admin, &format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"));
    let mut app_admin = pair.app.connect();
    exec(
        &mut app_admin,
        &format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"),
    );
    let weak = |url: &shared::DatabaseUrl| {
        url.expose_secret()
            .replacen("postgres://postgres@", &format!("postgres://{role}@"), 1)
    };
    let output = orch_tests::orchestrator_in(pair.path())
        .args([
            "--auth-url",
            &weak(&pair.auth.url),
            "--app-url",
            &weak(&pair.app.url),
            "reset",
            "--force",
            "--no-backup",
        ])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(4), "{}", stderr_of(&output));
    // Without UPDATE it cannot even take the write fence; the owner's rights are needed.
    assert!(
        stderr_of(&output).contains("locking the tables against writes")
            && stderr_of(&output).contains("permission denied"),
        "{}",
        stderr_of(&output)
    );
    assert_eq!(snapshots(&pair), before);
    exec(
        &mut admin,
        &format!("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role};"),
    );
    exec(
        &mut app_admin,
        &format!("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}; DROP ROLE {role};"),
    );
}

#[test]
fn losing_the_app_connection_mid_reset_leaves_old_data_or_a_clean_reset() {
    let Some(pair) = TestPair::new(Backend::Postgres, "reset_conn_lost") else {
        return;
    };
    seed(&pair);
    for mode in ["off", "on"] {
        // (Each mode starts from a fresh seed: new ids and timestamps, so its own "before".)
        let before = snapshots(&pair);
        let child = orch_tests::process(&pair)
            .args(["reset", "--force"])
            .env("ORCH_FAULT", "pause-before-commit:auth")
            .env("ORCH_TWO_PHASE", mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(1500));
        // The server ends every session of ours on the app database, as a restart would.
        let mut admin = pair.auth.connect();
        exec(
            &mut admin,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{}' AND application_name LIKE 'orchestrator%'",
                pair.app.url.database_name()
            ),
        );
        let output = child.wait_with_output().expect("wait");
        let stderr = stderr_of(&output);
        // Let the next writing command settle, then the stores are old or new, never mixed.
        orchestrator(&pair).arg("recover").assert().success();
        let now = snapshots(&pair);
        if !output.status.success() {
            assert_eq!(output.status.code(), Some(4), "{mode}: {stderr}");
            assert!(stderr.contains("app database"), "{mode}: {stderr}");
        }
        if mode == "off" {
            // Without two-phase commit app's open transaction died with its session:
            // auth is put back from the backup.
            assert!(!output.status.success(), "{mode}: {stderr}");
            assert_eq!(now, before, "{mode}: both as before: {stderr}");
        } else if now != before {
            // With two-phase commit the rebuild survives its session; whichever command
            // commits it (this run from a new session, or the next one), it is whole.
            assert_clean_and_verified(&pair);
        }
        println!(
            "CONNECTION LOST {} ORCH_TWO_PHASE={mode}: exit {:?}, then {}",
            orch_tests::configuration(&pair.auth),
            output.status.code(),
            if now == before {
                "both as before"
            } else {
                "a clean reset"
            }
        );
        // Start the next mode from the seeded state again.
        orchestrator(&pair)
            .args(["reset", "--force", "--no-backup"])
            .assert()
            .success();
        seed(&pair);
    }
}

#[test]
fn a_bookkeeping_row_left_by_a_finished_run_is_cleared_without_redoing_anything() {
    for_each_backend("reset_leftover_journal", |pair| {
        orchestrator(pair)
            .args(["reset", "--force"])
            .assert()
            .success();
        // The run finished; clearing its row in app failed (the first store's row, the
        // decision, is cleared first). The application then wrote rows.
        seed(pair);
        let before = snapshots(pair);
        let mut app = pair.app.connect();
        shared::admin::journal_record(&mut app, "20260101000000000_1", &["auth", "app"], r#"{}"#)
            .expect("leftover row");
        drop(app);

        // It decides nothing: status leaves it to a writing command and changes nothing.
        let (code, status) = json_of(orchestrator(pair), &["status"]);
        assert_eq!(code, 0, "{status}");
        assert_eq!(status["interrupted"], serde_json::json!([]), "{status}");
        assert_eq!(snapshots(pair), before, "status changes nothing");
        assert_eq!(
            shared::admin::journal_entries(&mut pair.app.connect())
                .expect("journal")
                .len(),
            1,
            "status leaves the row for a writing command"
        );

        let (code, recovered) = json_of(orchestrator(pair), &["recover"]);
        assert_eq!(code, 0, "{recovered}");
        let recovered = recovered["recovered"].to_string();
        assert!(
            recovered.contains("cleared the bookkeeping row"),
            "{recovered}"
        );
        assert!(
            !recovered.contains("finished interrupted run"),
            "a finished run must not be redone: {recovered}"
        );
        assert_eq!(
            snapshots(pair),
            before,
            "every row the application wrote stays"
        );
        let journal = shared::admin::journal_entries(&mut pair.app.connect()).expect("journal");
        assert!(journal.is_empty(), "{journal:?}");
    });
}
