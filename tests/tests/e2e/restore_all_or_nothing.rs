//! A restore is all-or-nothing across the stores with or without two-phase commit, and an
//! interrupted one is finished from its own backup set (never rebuilt from the
//! migrations) or undone from its safety backup, by the next writing command; commands
//! that only read report it and change nothing (checksums of every table).
//!
//! On PostgreSQL these run against whichever server `ORCH_TEST_PG_URL` names; CI runs
//! the suite against one with `max_prepared_transactions = 0` and one above 0, and
//! `ORCH_TWO_PHASE=off` forces the path without two-phase commit on the latter too.

use std::path::{Path, PathBuf};

use orch_tests::checksums::{data_sums, fingerprints};
use orch_tests::{exec, for_each_backend, json_of, orchestrator, TestPair};
use shared::Backend;

type Sums = [orch_tests::checksums::Checksums; 2];

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Migrates and seeds the pair, backs it up, then writes more rows; returns the backup
/// folder, the checksums the backup holds and the checksums now.
fn seeded_with_backup(pair: &TestPair) -> (PathBuf, Sums, Sums) {
    orchestrator(pair).arg("migrate").assert().success();
    orch_tests::seed::contract_rows(pair);
    let backed = data_sums(pair);
    let (code, report) = json_of(orchestrator(pair), &["backup"]);
    assert_eq!(code, 0, "{report}");
    let dir = PathBuf::from(report["dir"].as_str().expect("backup dir"));
    let dir = if dir.is_absolute() {
        dir
    } else {
        pair.path().join(dir)
    };
    // Rows written after the backup: a restore replaces them, a failed one keeps them.
    let (_, dataset) = orch_tests::seed::newcomer(pair, "late@x");
    app_db::datasets::add_document(&mut pair.app.connect(), &dataset, "late.pdf", None, None)
        .expect("document");
    (dir, backed, data_sums(pair))
}

fn restore(pair: &TestPair, dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = orchestrator(pair);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.arg("restore")
        .arg(dir)
        .arg("--force")
        .output()
        .expect("run restore")
}

/// The two-phase settings a backend's restore is tried under.
fn modes(pair: &TestPair) -> &'static [&'static str] {
    match pair.backend {
        Backend::Postgres => &["off", "on"],
        Backend::Sqlite => &["off"],
    }
}

// Injected failures of app's load and commit, with and without two-phase commit, are in
// `faults.rs`; this is the failure the report met first.
#[test]
fn a_restore_whose_app_drop_waits_out_the_lock_timeout_leaves_both_as_before() {
    let Some(pair) = TestPair::new(Backend::Postgres, "restore_app_held") else {
        return;
    };
    let (dir, backed, before) = seeded_with_backup(&pair);
    // Another session reads an app table in an open transaction: the guard and the
    // safety backup pass, app's drop cannot.
    let mut holder = pair.app.connect();
    exec(&mut holder, "BEGIN; SELECT count(*) FROM datasets;");
    for mode in ["off", "on"] {
        let output = restore(
            &pair,
            &dir,
            &[("ORCH_TWO_PHASE", mode), ("ORCH_LOCK_TIMEOUT_SECS", "2")],
        );
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(5), "{mode}: {stderr}");
        assert!(stderr.contains("app database"), "{mode}: {stderr}");
        assert!(stderr.contains("nothing was changed"), "{mode}: {stderr}");
        assert_eq!(
            data_sums(&pair),
            before,
            "{mode}: auth is not restored while app could not be"
        );
    }
    exec(&mut holder, "ROLLBACK;");
    drop(holder);
    // Undisturbed, the restore brings back exactly what the backup holds.
    let output = restore(&pair, &dir, &[]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(data_sums(&pair), backed);
}

#[test]
fn a_restore_killed_between_commits_is_finished_from_its_backup_by_the_next_writer() {
    for_each_backend("restore_crash_between", |pair| {
        let (dir, backed, _) = seeded_with_backup(pair);
        for mode in modes(pair) {
            let output = restore(
                pair,
                &dir,
                &[
                    ("ORCH_FAULT", "crash-after-commit:auth"),
                    ("ORCH_TWO_PHASE", mode),
                ],
            );
            assert!(!output.status.success(), "the run must have died");
            let mixed = fingerprints(pair);
            for reader in ["status", "verify", "smoke"] {
                let output = orchestrator(pair).arg(reader).output().expect("run");
                let said = format!(
                    "{}{}",
                    stderr_of(&output),
                    String::from_utf8_lossy(&output.stdout)
                );
                assert_eq!(output.status.code(), Some(1), "{reader} ({mode}): {said}");
                assert!(
                    said.contains("interrupted run"),
                    "{reader} ({mode}): {said}"
                );
                assert_eq!(
                    fingerprints(pair),
                    mixed,
                    "{reader:?} ({mode}) on {} changes nothing",
                    pair.backend
                );
            }
            let (code, status) = json_of(orchestrator(pair), &["status"]);
            assert_eq!(code, 1, "{status}");
            assert!(
                status["interrupted"][0]
                    .as_str()
                    .is_some_and(|l| l.contains("restore from")),
                "{status}"
            );
            let (code, recovered) = json_of(orchestrator(pair), &["recover"]);
            assert_eq!(code, 0, "{recovered}");
            assert_eq!(
                data_sums(pair),
                backed,
                "({mode}) on {}: app finished from the backup, not emptied by the migrations",
                pair.backend
            );
            let (code, status) = json_of(orchestrator(pair), &["status"]);
            assert_eq!(code, 0, "settled: {status}");
        }
    });
}

#[test]
fn a_run_whose_backup_set_is_gone_is_undone_from_its_safety_backup_or_left_alone() {
    for_each_backend("restore_source_gone", |pair| {
        let (dir, _, before) = seeded_with_backup(pair);
        let output = restore(
            pair,
            &dir,
            &[
                ("ORCH_FAULT", "crash-after-commit:auth"),
                ("ORCH_TWO_PHASE", "off"),
            ],
        );
        assert!(!output.status.success(), "the run must have died");
        let mixed = data_sums(pair);
        if let Some(live) = pair.app.url.sqlite_path() {
            // SQLite: app's rebuilt file was ready beside it; lose it too, so that only
            // the backup set could finish the run.
            let name = live
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            for entry in std::fs::read_dir(live.parent().expect("folder"))
                .expect("folder")
                .flatten()
            {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{name}.rebuild-"))
                {
                    std::fs::remove_file(entry.path()).expect("remove the staged file");
                }
            }
        }
        let moved = pair.path().join("source-set-away");
        std::fs::rename(&dir, &moved).expect("move the backup set away");
        // The safety backup is the newest other set under .data/backups.
        let backups = pair.path().join(".data/backups");
        let safety = std::fs::read_dir(&backups)
            .expect("backups")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .max()
            .expect("a safety backup");
        let safety_moved = pair.path().join("safety-set-away");
        std::fs::rename(&safety, &safety_moved).expect("move the safety backup away");

        let output = orchestrator(pair).arg("recover").output().expect("recover");
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(4), "{stderr}");
        assert!(
            stderr.contains("nothing was changed") && stderr.contains("cannot be finished"),
            "{stderr}"
        );
        assert_eq!(data_sums(pair), mixed, "neither finished nor undone");

        std::fs::rename(&safety_moved, &safety).expect("the safety backup back");
        let (code, recovered) = json_of(orchestrator(pair), &["recover"]);
        assert_eq!(code, 0, "{recovered}");
        assert!(
            recovered["recovered"][0]
                .as_str()
                .is_some_and(|l| l.contains("undid")),
            "{recovered}"
        );
        assert_eq!(
            data_sums(pair),
            before,
            "on {}: auth put back, both as before the run",
            pair.backend
        );
    });
}
