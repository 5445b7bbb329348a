//! SIGKILL at random moments of a forced reset, on both backends: after each kill the
//! next run settles what the dead one left, and the stores hold either the old data,
//! intact, or a clean verified reset; and the run after that succeeds.
//!
//! CI runs a short form (3 trials a backend, 20,000 rows a store). The full trial
//! (`scripts/kill-trials.sh`: 20 trials, 200,000 rows a store) sets
//! `ORCH_KILL_TRIALS` and `ORCH_KILL_ROWS`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use orch_tests::{exec, for_each_backend, orchestrator, TestPair};
use rand::Rng;
use shared::{catalog, contract, Conn};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Fills users and datasets with `rows` rows each, in one statement per store.
fn seed(pair: &TestPair, rows: u64) {
    let series = |table: &str, columns: &str, select: &str| -> String {
        match pair.backend {
            shared::Backend::Postgres => {
                format!("INSERT INTO {table} ({columns}) SELECT {select} FROM generate_series(1, {rows}) AS s(n)")
            }
            shared::Backend::Sqlite => format!(
                "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {rows}) \
                 INSERT INTO {table} ({columns}) SELECT {select} FROM s"
            ),
        }
    };
    let mut auth = pair.auth.connect();
    exec(
        &mut auth,
        &series("users", "id, email", "'u' || n, 'u' || n || '@example.com'"),
    );
    let mut app = pair.app.connect();
    exec(
        &mut app,
        &series(
            "datasets",
            "id, owner_id, name",
            "'d' || n, 'u' || n, 'dataset ' || n",
        ),
    );
}

fn count(conn: &mut Conn, table: &str) -> Option<i64> {
    let tables = catalog::tables(conn).ok()?;
    tables
        .iter()
        .any(|t| t == table)
        .then(|| orch_tests::count(conn, table))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    OldIntact,
    CleanReset,
}

/// What the stores hold now; panics on anything in between.
fn classify(pair: &TestPair, rows: i64, trial: u64) -> Outcome {
    let mut auth = pair.auth.connect();
    let mut app = pair.app.connect();
    let counts = (count(&mut auth, "users"), count(&mut app, "datasets"));
    for (store, conn) in [(&auth_db::STORE, &mut auth), (&app_db::STORE, &mut app)] {
        let check = contract::check_schema(conn, store).expect("check");
        assert!(
            check.ok(),
            "trial {trial} on {}: {} schema: {}",
            pair.backend,
            store.name,
            check.summary()
        );
        if pair.backend == shared::Backend::Postgres {
            let prepared = shared::admin::prepared_transactions(conn).expect("prepared");
            assert!(
                prepared.is_empty(),
                "trial {trial}: prepared transactions survived: {prepared:?}"
            );
        }
        let journal = shared::admin::journal_entries(conn).expect("journal");
        assert!(
            journal.is_empty(),
            "trial {trial}: journal not settled: {journal:?}"
        );
    }
    match counts {
        (Some(u), Some(d)) if u == rows && d == rows => Outcome::OldIntact,
        (Some(0), Some(0)) => Outcome::CleanReset,
        other => panic!(
            "trial {trial} on {}: neither old data nor a clean reset: {other:?}",
            pair.backend
        ),
    }
}

#[test]
fn sigkill_during_a_forced_reset_leaves_old_data_or_a_clean_reset() {
    let trials = env_number("ORCH_KILL_TRIALS", 3);
    let rows = env_number("ORCH_KILL_ROWS", 20_000);
    for_each_backend("kill_trials", |pair| {
        orchestrator(pair).arg("migrate").assert().success();
        let reset = |pair: &TestPair| {
            let mut cmd = orch_tests::process(pair);
            cmd.args(["reset", "--force"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            cmd
        };
        // Calibrate: how long an undisturbed forced reset of this size takes here.
        seed(pair, rows);
        let started = Instant::now();
        assert!(reset(pair).status().expect("run").success());
        let full = started.elapsed();

        let mut rng = rand::thread_rng();
        let (mut intact, mut clean, mut settled) = (0, 0, 0);
        for trial in 0..trials {
            seed(pair, rows);
            // Even trials: anywhere in the run. Odd trials: its last part, where the
            // rebuild and the commits are (a uniform kill mostly lands in the backup).
            let full_us = full.as_micros() as u64;
            let window = if trial % 2 == 0 {
                0..(full_us * 12 / 10).max(1)
            } else {
                (full_us * 6 / 10)..(full_us * 11 / 10).max(1)
            };
            let delay = Duration::from_micros(rng.gen_range(window));
            let mut child = reset(pair).spawn().expect("spawn");
            std::thread::sleep(delay);
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();

            // The next run settles whatever the dead one left.
            let (code, status) = orch_tests::json_of(orchestrator(pair), &["status"]);
            assert_eq!(code, 0, "trial {trial}: {status}");
            if !status["recovered"]
                .as_array()
                .map(Vec::is_empty)
                .unwrap_or(true)
            {
                settled += 1;
            }
            match classify(pair, rows as i64, trial) {
                Outcome::OldIntact => intact += 1,
                Outcome::CleanReset => clean += 1,
            }
            // And the run after that succeeds.
            let output = reset(pair).stderr(Stdio::piped()).output().expect("run");
            assert!(
                output.status.success(),
                "trial {trial}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert_eq!(classify(pair, rows as i64, trial), Outcome::CleanReset);
        }
        println!(
            "KILL TRIALS {}: {trials} trials, {rows} rows a store, an undisturbed reset took {} ms, kills within 0..{} ms \
             (even trials) or {}..{} ms (odd trials): {intact} old data intact, {clean} clean verified reset, \
             {settled} settled by the next run, 0 lost",
            pair.backend,
            full.as_millis(),
            full.as_millis() * 12 / 10,
            full.as_millis() * 6 / 10,
            full.as_millis() * 11 / 10
        );
        assert_eq!(intact + clean, trials);
    });
}
