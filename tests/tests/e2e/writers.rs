//! A writer commits every 10 ms throughout a forced reset: every row it was told was
//! committed is afterwards in the reset's backup or in the new database, on both
//! backends. The write fence is what makes that hold: no commit lands between the
//! backup's snapshot and the drop.
//!
//! `WRITER_TRIALS` and `WRITER_ROWS` scale it (`scripts/writer-trials.sh` runs 10 trials
//! of a 1M-row store); the defaults keep `cargo test` quick.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl};
use orch_tests::{exec, json_of, orchestrator, TestPair};
use shared::{Backend, Conn, DatabaseUrl};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The writer of these trials: a verification every 10 ms (see `orch_tests::writer`).
fn writer(
    url: DatabaseUrl,
    stop: Arc<AtomicBool>,
    tag: String,
) -> std::thread::JoinHandle<Vec<String>> {
    orch_tests::writer::spawn(url, stop, tag, |id| {
        format!(
            "INSERT INTO verifications (id, identifier, value, expires_at) \
             VALUES ('{id}', 'writer', 'v', CURRENT_TIMESTAMP)"
        )
    })
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

fn ids(conn: &mut Conn) -> HashSet<String> {
    let sql = "SELECT id FROM verifications";
    let rows: Vec<Id> = shared::with_conn!(conn, |c| diesel::sql_query(sql).load(c))
        .unwrap_or_else(|e| panic!("reading verifications: {e}"));
    rows.into_iter().map(|r| r.id).collect()
}

/// The ids in a backup set's copy of auth's verifications.
fn backed_up_ids(pair: &TestPair, set: &std::path::Path) -> HashSet<String> {
    match pair.backend {
        Backend::Sqlite => {
            let copy = set.join("auth.sqlite3");
            let url = DatabaseUrl::parse(&copy.to_string_lossy()).expect("url");
            ids(&mut Conn::establish("copy", &url).expect("open the copy"))
        }
        Backend::Postgres => {
            let out = std::process::Command::new("pg_restore")
                .args(["--data-only", "--table", "verifications", "--file", "-"])
                .arg(set.join("auth.dump"))
                .output()
                .expect("pg_restore");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            // COPY's data lines start with the id, tab-separated.
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split('\t').next().filter(|_| l.contains('\t')))
                .map(str::to_string)
                .collect()
        }
    }
}

fn seed(pair: &TestPair, rows: u64) {
    orchestrator(pair).arg("migrate").assert().success();
    let mut auth = pair.auth.connect();
    let sql = match pair.backend {
        Backend::Postgres => format!(
            "INSERT INTO verifications (id, identifier, value, expires_at) \
             SELECT 'seed' || g, 'seed', 'v', now() FROM generate_series(1, {rows}) g"
        ),
        Backend::Sqlite => format!(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {rows}) \
             INSERT INTO verifications (id, identifier, value, expires_at) \
             SELECT 'seed' || n, 'seed', 'v', CURRENT_TIMESTAMP FROM g"
        ),
    };
    exec(&mut auth, &sql);
}

#[test]
fn a_writer_committing_throughout_a_forced_reset_loses_no_committed_row() {
    let trials = env_or("WRITER_TRIALS", 2);
    let rows = env_or("WRITER_ROWS", 20_000);
    orch_tests::for_each_backend("writers", |pair| {
        let mut lost_total = 0;
        for trial in 0..trials {
            seed(pair, rows);
            let stop = Arc::new(AtomicBool::new(false));
            let handle = writer(pair.auth.url.clone(), stop.clone(), format!("t{trial}w"));
            std::thread::sleep(Duration::from_millis(100));
            let started = Instant::now();
            let (code, report) = json_of(orchestrator(pair), &["reset", "--force"]);
            let took = started.elapsed();
            std::thread::sleep(Duration::from_millis(100));
            stop.store(true, Ordering::SeqCst);
            let committed = handle.join().expect("writer");
            assert_eq!(code, 0, "{report}");
            let set = pair
                .path()
                .join(report["backup"].as_str().expect("a backup"));
            let backed_up = backed_up_ids(pair, &set);
            let now = ids(&mut pair.auth.connect());
            let lost: Vec<&String> = committed
                .iter()
                .filter(|id| !backed_up.contains(*id) && !now.contains(*id))
                .collect();
            let in_backup = committed
                .iter()
                .filter(|id| backed_up.contains(*id))
                .count();
            println!(
                "WRITER TRIAL {} {trial}: {rows} rows, reset {} ms, {} rows committed by the writer \
                 ({in_backup} in the backup, {} in the new database), {} lost",
                pair.backend,
                took.as_millis(),
                committed.len(),
                committed.len() - in_backup,
                lost.len()
            );
            assert!(!committed.is_empty(), "the writer committed throughout");
            assert_eq!(
                backed_up.iter().filter(|id| id.starts_with("seed")).count() as u64,
                rows,
                "the backup holds every seeded row"
            );
            lost_total += lost.len();
            assert!(lost.is_empty(), "committed rows lost: {lost:?}");
        }
        assert_eq!(lost_total, 0);
    });
}
