//! A failing second store, injected at chosen moments (`ORCH_FAULT`, see
//! `orchestrator/src/fault.rs`), for `reset --force` and `restore --force`, on both
//! backends. The server's configuration decides the path: with `max_prepared_transactions
//! = 0` (the PostgreSQL default) there is no two-phase commit and a store that already
//! committed must be put back from the run's safety backup; above 0 every store is
//! prepared before the first commit. These tests run under whatever the server of
//! `ORCH_TEST_PG_URL` has (`.ci/run` runs them on 0 and on 64) and also force the path
//! without two-phase commit (`ORCH_TWO_PHASE=off`) on a server that has it. Each prints
//! the configuration it ran under.
//!
//! Whatever happens, the pair afterwards (once the next writing command has settled it)
//! holds the old contents in both stores or the new in both, by the checksums of every
//! table; an error says "nothing was changed" only when that is true.
//!
//! `a_restore_that_fails_in_app_leaves_both_as_before` fails on the code before issue
//! 12's fix without two-phase commit (`postgres mpt=0`, or `ORCH_TWO_PHASE=off`): restore's
//! load commits auth on its own before app is loaded, so a failure in app leaves auth
//! restored and app as before.

use orch_tests::checksums::{self, data_sums, Checksums};
use orch_tests::{for_each_backend, json_of, orchestrator, TestPair};
use shared::Backend;

fn seed(pair: &TestPair) {
    orch_tests::seed::contract_rows(pair);
}

/// Rows written after the backup: what a restore replaces (a newcomer with a dataset
/// and a document in it).
fn write_more(pair: &TestPair) {
    let (_, dataset) = orch_tests::seed::newcomer(pair, "d@x");
    app_db::datasets::add_document(&mut pair.app.connect(), &dataset, "b.pdf", None, None)
        .expect("document");
}

/// Whether a run under `mode` (`ORCH_TWO_PHASE`) uses two-phase commit on this pair.
fn two_phase(pair: &TestPair, mode: &str) -> bool {
    pair.backend == Backend::Postgres
        && mode != "off"
        && orch_tests::max_prepared_transactions(&pair.auth) > 0
}

/// No journal row and no prepared transaction in either store.
fn assert_settled(pair: &TestPair, context: &str) {
    for db in [&pair.auth, &pair.app] {
        let mut conn = db.connect();
        let journal = shared::admin::journal_entries(&mut conn).expect("journal");
        assert!(journal.is_empty(), "{context}: journal rows {journal:?}");
        let prepared = checksums::prepared_xacts(&mut conn);
        assert!(prepared.is_empty(), "{context}: prepared {prepared:?}");
    }
}

/// Runs `args` with `fault` under `mode` and checks what it leaves: exit 4 naming app; both
/// stores as before (`old`) right away, unless the run used two-phase commit and failed
/// at app's commit, in which case app stays prepared and the next writing command
/// completes the run (`new`). Never "nothing was changed" when something was.
fn run_with_fault(
    pair: &TestPair,
    args: &[&str],
    (fault, mode): (&str, &str),
    (old, new): (&[Checksums; 2], &[Checksums; 2]),
    config: &str,
) {
    let context = format!(
        "{} with {fault}, ORCH_TWO_PHASE={mode}, on {config}",
        args[0]
    );
    let output = orchestrator(pair)
        .env("ORCH_FAULT", fault)
        .env("ORCH_TWO_PHASE", mode)
        .args(args)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{context}: {stderr}");
    assert!(
        stderr.contains("app database"),
        "{context}: names the store: {stderr}"
    );
    let right_after = data_sums(pair);
    assert!(
        right_after == *old || !stderr.contains("nothing was changed"),
        "{context}: says nothing was changed, but auth {} and app {}: {stderr}",
        if right_after[0] == old[0] {
            "is as before"
        } else {
            "changed"
        },
        if right_after[1] == old[1] {
            "is as before"
        } else {
            "changed"
        },
    );
    let completes = fault.starts_with("fail-commit") && two_phase(pair, mode);
    if completes {
        assert!(
            stderr.contains("orchestrator recover"),
            "{context}: says who completes it: {stderr}"
        );
    }
    if !completes {
        assert!(
            right_after == *old,
            "{context}: both stores as before: auth {}, app {}: {stderr}",
            if right_after[0] == old[0] {
                "as before"
            } else {
                "changed"
            },
            if right_after[1] == old[1] {
                "as before"
            } else {
                "changed"
            },
        );
    }
    // The next writing command settles whatever is left.
    orchestrator(pair).arg("migrate").assert().success();
    assert_settled(pair, &context);
    let expected = if completes { new } else { old };
    let after = data_sums(pair);
    for (i, store) in ["auth", "app"].into_iter().enumerate() {
        assert!(
            checksums::total_rows(&after[i]) > 0 || checksums::total_rows(&expected[i]) == 0,
            "{context}: {store} was emptied"
        );
    }
    assert!(
        after == *expected,
        "{context}: after the next run both stores hold the {}: auth {}, app {}",
        if completes {
            "new contents"
        } else {
            "old contents"
        },
        if after[0] == expected[0] {
            "does"
        } else {
            "does not"
        },
        if after[1] == expected[1] {
            "does"
        } else {
            "does not"
        },
    );
    println!(
        "FAULT {context}: exit 4; {}",
        if completes {
            "app stayed prepared, the next run completed it: both new"
        } else {
            "both stores exactly as before"
        }
    );
}

const FAULTS: [(&str, &str); 4] = [
    ("fail-migrate:app", "on"),
    ("fail-migrate:app", "off"),
    ("fail-commit:app", "on"),
    ("fail-commit:app", "off"),
];

#[test]
fn a_reset_that_fails_in_app_leaves_both_as_before_or_is_completed() {
    for_each_backend("fault_reset", |pair| {
        let config = orch_tests::configuration(&pair.auth);
        orchestrator(pair).arg("migrate").assert().success();
        let new = data_sums(pair);
        for fault in FAULTS {
            seed(pair);
            let old = data_sums(pair);
            run_with_fault(pair, &["reset", "--force"], fault, (&old, &new), &config);
            orchestrator(pair)
                .args(["reset", "--force", "--no-backup"])
                .assert()
                .success();
        }
    });
}

/// Fails on the code before issue 12's fix without two-phase commit (see the module's
/// documentation).
#[test]
fn a_restore_that_fails_in_app_leaves_both_as_before() {
    for_each_backend("fault_restore", |pair| {
        let config = orch_tests::configuration(&pair.auth);
        orchestrator(pair).arg("migrate").assert().success();
        seed(pair);
        let new = data_sums(pair);
        let (code, made) = json_of(orchestrator(pair), &["backup", "--out", "sets"]);
        assert_eq!(code, 0, "{made}");
        let set = made["dir"].as_str().expect("dir").to_string();
        for fault in FAULTS {
            write_more(pair);
            let old = data_sums(pair);
            assert_ne!(old, new, "the backup and the live stores differ");
            run_with_fault(
                pair,
                &["restore", &set, "--force"],
                fault,
                (&old, &new),
                &config,
            );
            // Back to the backup's contents for the next fault.
            orchestrator(pair)
                .args(["restore", &set, "--force"])
                .assert()
                .success();
            assert!(data_sums(pair) == new, "an undisturbed restore on {config}");
        }
    });
}
