//! A PostgreSQL server of the test's own stopped with `pg_ctl stop -m immediate` at a
//! random moment of a forced reset, then started again (crash recovery replays the WAL; a
//! prepared transaction survives it). Run once on a server with
//! `max_prepared_transactions = 0` and once with 64, whatever the shared server has: the
//! two take different paths through the commit.

use std::process::Stdio;

use orch_tests::{orchestrator, TestDb, TestPair};
use shared::Backend;

use super::common::{
    classify, data_sums, env_number, kill_delay, pair_cmd, rows, seed, timed, Outcome, Tally,
};
use crate::support::{Auth, OwnCluster};

#[test]
fn postgres_stopped_immediately_mid_reset_and_started_again_keeps_old_data_or_a_clean_reset() {
    if !orch_tests::backends().contains(&Backend::Postgres) {
        return;
    }
    for mpt in ["0", "64"] {
        server_stop_trials(mpt);
    }
}

fn server_stop_trials(mpt: &str) {
    let Some(cluster) = OwnCluster::start_with(
        &format!("kill_server_mpt{mpt}"),
        Auth::Trust,
        &[("max_prepared_transactions", mpt)],
    ) else {
        return;
    };
    let (trials, rows) = (env_number("ORCH_SERVER_TRIALS", 3), rows());
    cluster.create_database("auth");
    cluster.create_database("app");
    let db =
        |name: &str| TestDb::existing(shared::DatabaseUrl::parse(&cluster.url(name)).expect("url"));
    let pair = TestPair {
        backend: Backend::Postgres,
        auth: db("auth"),
        app: db("app"),
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let config = orch_tests::configuration(&pair.auth);
    assert_eq!(
        config,
        format!("postgres mpt={mpt}"),
        "the server's setting"
    );
    orchestrator(&pair).arg("migrate").assert().success();
    let new = data_sums(&pair);
    let reset = || pair_cmd(&pair, &["reset", "--force"]);
    seed(&pair, rows);
    let full = timed(reset(), "calibration reset");
    let mut tally = Tally::default();
    let mut failed_cleanly = 0;
    for trial in 0..trials {
        let context = format!("server stop trial {trial} on {config}");
        seed(&pair, rows);
        // Taken each time: columns with defaults (created_at) differ from seed to seed.
        let old = data_sums(&pair);
        let child = reset()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        std::thread::sleep(kill_delay(trial, full));
        cluster.stop_immediately();
        let output = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        match output.status.code() {
            Some(0) => {}
            Some(4) => failed_cleanly += 1,
            other => panic!("{context}: the run ended with {other:?}: {stderr}"),
        }
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
            "{context}: {stderr}"
        );
        cluster.start_again();
        tally.after_kill(&pair, trial, (&old, &new), &context);
        timed(reset(), &context);
        assert_eq!(classify(&pair, &old, &new, &context), Outcome::New);
        let _ = std::fs::remove_dir_all(pair.path().join(".data/backups"));
    }
    println!(
        "SERVER STOP TRIALS {config}: {trials} resets of {rows} rows a store with the server stopped \
         (pg_ctl stop -m immediate) at a random moment and started again, undisturbed run {} ms: \
         {failed_cleanly} runs exited 4, {} old data intact, {} clean verified reset, {}",
        full.as_millis(),
        tally.old,
        tally.new,
        tally.summary()
    );
    assert_eq!(tally.old + tally.new, trials);
    tally.assert_readers_behaved(&format!("server stop on {config}"));
}
