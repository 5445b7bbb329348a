//! SIGKILL at random moments of `repair` (the original drift, on stores holding rows), on
//! both backends. Each store commits its own transaction, so after a kill each store is
//! either repaired (`diff` finds nothing in it) or exactly as it was (every table's
//! checksum, its columns and foreign keys), never part way; every kept row is intact;
//! nothing of the dead run is left (locks, prepared transactions, SQLite's integrity); and
//! the next `repair` finishes the job.

use std::time::Duration;

use orch_tests::checksums::snapshot;
use orch_tests::{json_of, TestPair};

use super::common::{
    assert_nothing_left, pair_cmd, quiesce, rows, run_and_kill, seed, timed, trials,
};

/// A migrated pair holding `rows` rows a store, drifted the original way.
fn drifted(backend: shared::Backend, rows: u64) -> Option<TestPair> {
    let pair = TestPair::new(backend, "kill_repair")?;
    orch_tests::orchestrator(&pair)
        .arg("migrate")
        .assert()
        .success();
    seed(&pair, rows);
    crate::repair::drift(&pair);
    Some(pair)
}

/// When to kill trial `trial` of a repair that takes `full` undisturbed: anywhere in its
/// first half, or around its end, where the commit is (a run under test is slower than
/// the calibration: the window reaches well past it, so some kills land after the commit).
fn kill_delay(trial: u64, full: Duration) -> Duration {
    use rand::Rng;
    let full_us = full.as_micros() as u64;
    let window = if trial.is_multiple_of(2) {
        0..(full_us / 2).max(1)
    } else {
        (full_us * 7 / 10)..(full_us * 25 / 10).max(1)
    };
    Duration::from_micros(rand::thread_rng().gen_range(window))
}

/// Whether `store` is repaired: `diff` finds nothing in it.
fn repaired(pair: &TestPair, store: &str) -> bool {
    let (code, report) = json_of(orch_tests::orchestrator(pair), &["diff", "--store", store]);
    assert!(code == 0 || code == 1, "diff {store}: {report}");
    code == 0
}

#[test]
fn sigkill_during_a_repair_leaves_each_store_repaired_or_as_it_was() {
    let (trials, rows) = (trials(), rows());
    for backend in orch_tests::backends() {
        // How long an undisturbed repair takes, on a pair of its own.
        let Some(calibration) = drifted(backend, rows) else {
            continue;
        };
        let config = orch_tests::configuration(&calibration.app);
        let full: Duration = timed(pair_cmd(&calibration, &["repair"]), "calibration repair");
        assert!(
            repaired(&calibration, "app"),
            "an undisturbed repair on {config}"
        );
        drop(calibration);

        let (mut untouched, mut done) = (0, 0);
        for trial in 0..trials {
            let context = format!("repair trial {trial} on {config}");
            let pair = drifted(backend, rows).expect("a pair");
            let (auth_before, app_before) = (
                snapshot(&mut pair.auth.connect()),
                snapshot(&mut pair.app.connect()),
            );
            let kept_before = crate::repair::kept(&pair);
            run_and_kill(pair_cmd(&pair, &["repair"]), kill_delay(trial, full));
            for db in [&pair.auth, &pair.app] {
                quiesce(db, &context);
                assert_nothing_left(db, &context);
            }
            // Auth has nothing to repair: it is as it was whatever the moment.
            assert_eq!(
                snapshot(&mut pair.auth.connect()),
                auth_before,
                "{context}: auth"
            );
            if repaired(&pair, "app") {
                done += 1;
            } else {
                assert_eq!(
                    snapshot(&mut pair.app.connect()),
                    app_before,
                    "{context}: app is repaired or as it was, never part way"
                );
                untouched += 1;
            }
            assert_eq!(
                crate::repair::kept(&pair),
                kept_before,
                "{context}: every kept row"
            );

            let (code, report) = json_of(orch_tests::orchestrator(&pair), &["repair"]);
            assert_eq!(code, 0, "{context}: the next repair: {report}");
            assert!(
                repaired(&pair, "app"),
                "{context}: the next repair finishes the job"
            );
            assert_eq!(
                crate::repair::kept(&pair),
                kept_before,
                "{context}: every kept row"
            );
        }
        println!(
            "KILL TRIALS repair {backend} {config}: {trials} trial(s) of {rows} rows a store, \
             a full repair {} ms: {untouched} left app as it was, {done} repaired it; \
             none part way, every kept row intact",
            full.as_millis()
        );
    }
}
