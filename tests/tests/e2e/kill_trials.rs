//! SIGKILL at random moments of `reset --force`, `restore`, `migrate`, `squash` and
//! `repair` (see `kill_trials/repair.rs`), on both backends, and a PostgreSQL server
//! stopped mid-reset. After each kill of a reset or a
//! restore:
//!
//! - `status`, `verify`, `diff` and `smoke`, run before any writing command, change
//!   nothing (the checksum of every table in every schema, the prepared transactions and
//!   the staged files are as before each of them) and, when the kill left something to
//!   settle or a mixed pair, report it (`status` and `verify` with a non-zero exit);
//! - the next writing command (`migrate` or `backup`) settles it, and then both stores
//!   hold the old contents or both the new, by the checksums of every data table: never a
//!   mixed pair, never an emptied store, and no prepared transaction, journal row, lock,
//!   scratch database or staging folder left over;
//! - the command run again succeeds.
//!
//! The trials on the shared server (`ORCH_TEST_PG_URL`) run under whatever configuration
//! that server has: `.ci/run` runs them once on `max_prepared_transactions = 0` and once
//! on 64. The server-stop trial starts servers of its own with each setting. Every
//! summary line names its configuration ("KILL TRIALS reset postgres mpt=0: …").
//!
//! On the code before issue 12's fix, the readers' checks fail whenever a kill left
//! something to settle (`status` and `smoke` settle it themselves, and `status` exits 0),
//! on both configurations and backends, the server-stop trial included; and the restore
//! trial without two-phase commit can end mixed or emptied (see its documentation).
//!
//! CI runs a short form (3 trials a command and backend, 20,000 rows a store). The full
//! trial (`scripts/kill-trials.sh`: 20 trials, 200,000 rows a store) sets
//! `ORCH_KILL_TRIALS` and `ORCH_KILL_ROWS`.

#[path = "kill_trials/common.rs"]
mod common;
#[path = "kill_trials/history.rs"]
mod history;
#[path = "kill_trials/repair.rs"]
mod repair;
#[path = "kill_trials/server_stop.rs"]
mod server_stop;

use common::{
    classify, data_sums, kill_delay, pair_cmd, rows, run_and_kill, seed, timed, trials, Outcome,
    Tally,
};
use orch_tests::{for_each_backend, json_of, orchestrator};

#[test]
fn sigkill_during_a_forced_reset_leaves_old_data_or_a_clean_reset() {
    let (trials, rows) = (trials(), rows());
    for_each_backend("kill_reset", |pair| {
        let config = orch_tests::configuration(&pair.auth);
        orchestrator(pair).arg("migrate").assert().success();
        // What every reset leaves: the migrated stores, empty.
        let new = data_sums(pair);
        let reset = || pair_cmd(pair, &["reset", "--force"]);
        seed(pair, rows);
        let full = timed(reset(), "calibration reset");
        assert_eq!(data_sums(pair), new, "an undisturbed reset on {config}");
        let mut tally = Tally::default();
        for trial in 0..trials {
            let context = format!("reset trial {trial} on {config}");
            seed(pair, rows);
            // Taken each time: columns with defaults (created_at) differ from seed to seed.
            let old = data_sums(pair);
            run_and_kill(reset(), kill_delay(trial, full));
            tally.after_kill(pair, trial, (&old, &new), &context);
            timed(reset(), &context);
            assert_eq!(classify(pair, &old, &new, &context), Outcome::New);
            let _ = std::fs::remove_dir_all(pair.path().join(".data/backups"));
        }
        println!(
            "KILL TRIALS reset {config}: {trials} trials, {rows} rows a store, undisturbed run {} ms: \
             {} old data intact, {} clean verified reset, {}",
            full.as_millis(),
            tally.old,
            tally.new,
            tally.summary()
        );
        assert_eq!(tally.old + tally.new, trials);
        tally.assert_readers_behaved(&format!("reset on {config}"));
    });
}

/// Fails on the code before issue 12's fix without two-phase commit (`postgres mpt=0`):
/// each store's psql commits its load as soon as it is done, both loads at once. A kill
/// after auth's commit and before app's leaves auth's journal row, which the next run
/// settles by resetting app from the migrations ("app was emptied"); a kill after app's
/// commit and before auth's leaves a row in app only, which the next run clears as a
/// finished run's ("a mixed pair: auth Old, app New", seen on 2026-12-02).
#[test]
fn sigkill_during_a_restore_leaves_the_replaced_data_or_the_backup() {
    let (trials, rows) = (trials(), rows());
    // The state a restore replaces: fewer rows than the backup, so the two are told apart.
    let other = rows / 2 + 1;
    for_each_backend("kill_restore", |pair| {
        let config = orch_tests::configuration(&pair.auth);
        orchestrator(pair).arg("migrate").assert().success();
        seed(pair, rows);
        let new = data_sums(pair);
        let (code, report) = json_of(
            orchestrator(pair),
            &[
                "backup",
                "--out",
                &pair.path().join("sets").to_string_lossy(),
            ],
        );
        assert_eq!(code, 0, "{report}");
        let set = report["dir"].as_str().expect("backup dir").to_string();
        let replace_contents = || {
            timed(
                pair_cmd(pair, &["reset", "--force", "--no-backup"]),
                "reset",
            );
            seed(pair, other);
        };
        let restore = || pair_cmd(pair, &["restore", &set, "--force"]);
        replace_contents();
        let full = timed(restore(), "calibration restore");
        assert_eq!(
            data_sums(pair),
            new,
            "an undisturbed restore brings back every row, on {config}"
        );
        let mut tally = Tally::default();
        for trial in 0..trials {
            let context = format!("restore trial {trial} on {config}");
            replace_contents();
            // Taken each time: columns with defaults (created_at) differ from seed to seed.
            let old = data_sums(pair);
            run_and_kill(restore(), kill_delay(trial, full));
            tally.after_kill(pair, trial, (&old, &new), &context);
            timed(restore(), &context);
            assert_eq!(classify(pair, &old, &new, &context), Outcome::New);
            // The safety backups each restore over rows writes.
            let _ = std::fs::remove_dir_all(pair.path().join(".data/backups"));
        }
        println!(
            "KILL TRIALS restore {config}: {trials} trials, {rows} rows a store in the backup, undisturbed run {} ms: \
             {} replaced data intact, {} backup restored and verified, {}",
            full.as_millis(),
            tally.old,
            tally.new,
            tally.summary()
        );
        assert_eq!(tally.old + tally.new, trials);
        tally.assert_readers_behaved(&format!("restore on {config}"));
    });
}
