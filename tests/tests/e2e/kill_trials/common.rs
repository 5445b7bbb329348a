//! What every kill trial shares: when to kill, how to run and kill the binary, the rows
//! it works on, and the checks made after each kill (see the crate's documentation).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use orch_tests::checksums::{self, Checksums, Fingerprint};
use orch_tests::{exec, TestDb, TestPair};
use rand::Rng;
use shared::{Backend, Conn};

pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn trials() -> u64 {
    env_number("ORCH_KILL_TRIALS", 3)
}

pub fn rows() -> u64 {
    env_number("ORCH_KILL_ROWS", 20_000)
}

/// When to kill trial `trial` of a command that takes `full` undisturbed. Even trials:
/// anywhere in the run. Odd trials: its last part, where the commits (or the swap) are; a
/// uniform kill mostly lands in the backup or the replay.
pub fn kill_delay(trial: u64, full: Duration) -> Duration {
    let full_us = full.as_micros() as u64;
    let window = if trial.is_multiple_of(2) {
        0..(full_us * 12 / 10).max(1)
    } else {
        (full_us * 6 / 10)..(full_us * 11 / 10).max(1)
    };
    Duration::from_micros(rand::thread_rng().gen_range(window))
}

/// Runs `cmd` and SIGKILLs it after `delay` (if it is still running). Returns its pid.
pub fn run_and_kill(mut cmd: Command, delay: Duration) -> u32 {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(delay);
    let _ = child.kill(); // SIGKILL on Unix
    let _ = child.wait();
    child.id()
}

/// Runs `cmd` to the end, asserting it succeeds; returns how long it took.
pub fn timed(mut cmd: Command, what: &str) -> Duration {
    let started = Instant::now();
    let output = cmd.stdout(Stdio::null()).output().expect("run");
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    started.elapsed()
}

/// The binary with `auth` and `app` as its stores, in `dir`.
pub fn on(dir: &Path, auth: &TestDb, app: &TestDb, args: &[&str]) -> Command {
    let (auth, app) = (auth.url_string(), app.url_string());
    let mut cmd = orch_tests::launch(dir, &[("auth", &auth), ("app", &app)]);
    cmd.args(args);
    cmd
}

pub fn pair_cmd(pair: &TestPair, args: &[&str]) -> Command {
    on(pair.path(), &pair.auth, &pair.app, args)
}

/// Fills users and datasets with `rows` rows each, in one statement per store.
pub fn seed(pair: &TestPair, rows: u64) {
    let series = |table: &str, columns: &str, select: &str| -> String {
        match pair.backend {
            Backend::Postgres => {
                format!("INSERT INTO {table} ({columns}) SELECT {select} FROM generate_series(1, {rows}) AS s(n)")
            }
            Backend::Sqlite => format!(
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

pub use orch_tests::checksums::data_sums;

#[derive(diesel::QueryableByName)]
struct Number {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn pg_number(pg: &mut diesel::PgConnection, sql: &str) -> i64 {
    use diesel::RunQueryDsl;
    diesel::sql_query(sql)
        .get_result::<Number>(pg)
        .map(|r| r.n)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Waits (up to 60 s) until no other session is connected to the store's PostgreSQL
/// database: a killed run's server backends, and the psql or pg_dump it had started, go
/// on until they notice, and whatever they still do must not be taken for the doing of
/// the commands checked next.
pub fn quiesce(db: &TestDb, context: &str) {
    let Conn::Postgres(mut pg) = db.connect() else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let others = pg_number(
            &mut pg,
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
        if others == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{context}: {others} session(s) of the killed run still connected after 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Advisory locks on this PostgreSQL database held by sessions other than this one.
fn foreign_advisory_locks(pg: &mut diesel::PgConnection) -> i64 {
    pg_number(
        pg,
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid() \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
}

/// Nothing of a dead run survives on this database: no journal row, no prepared
/// transaction, no advisory lock held by another session (a killed client's backend may
/// take a moment to notice, so that one is polled for up to 10 s), no staged file.
pub fn assert_nothing_left(db: &TestDb, context: &str) {
    let mut conn = db.connect();
    let journal = shared::admin::journal_entries(&mut conn).expect("journal");
    assert!(
        journal.is_empty(),
        "{context}: journal not settled: {journal:?}"
    );
    let prepared = checksums::prepared_xacts(&mut conn);
    assert!(
        prepared.is_empty(),
        "{context}: prepared transactions survived: {prepared:?}"
    );
    match &mut conn {
        Conn::Postgres(pg) => {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let held = foreign_advisory_locks(pg);
                if held == 0 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{context}: {held} advisory lock(s) still held"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Conn::Sqlite(_) => {
            let path = db.url.sqlite_path().expect("sqlite path");
            let lock = orchestrator::lock::lock_path(path);
            if let Ok(file) = std::fs::File::open(&lock) {
                assert!(
                    file.try_lock().is_ok(),
                    "{context}: {} is still locked",
                    lock.display()
                );
            }
            let staged = checksums::fingerprint(db).staged;
            assert!(
                staged.is_empty(),
                "{context}: staged files left: {staged:?}"
            );
            // Whatever the kill interrupted, SQLite's own recovery leaves a sound file.
            let mut conn = db.connect();
            assert_eq!(
                shared::admin::sqlite_integrity_check(&mut conn),
                Ok(()),
                "{context}: pragma integrity_check"
            );
        }
    }
}

/// What a killed run left unfinished for the next writing command to settle: a prepared
/// transaction or staged file of a rebuild, or a decision recorded in a journal row.
pub fn in_doubt(pair: &TestPair) -> Vec<String> {
    let mut found = Vec::new();
    for (name, db) in [("auth", &pair.auth), ("app", &pair.app)] {
        let print = checksums::fingerprint(db);
        if !print.prepared.is_empty() {
            // The prepared rebuild holds the journal table; the transaction says enough.
            found.push(format!("{name}: prepared {:?}", print.prepared));
            continue;
        }
        if !print.staged.is_empty() {
            found.push(format!("{name}: staged {:?}", print.staged));
        }
        // A row in the store that commits first is a decision taken; it is carried out
        // unless every store of the run has its row too (then only the tidying was cut
        // short). A row only in a later store is a finished run's bookkeeping (see README,
        // "How a crash is settled"). Neither of those is interrupted work: readers leave
        // them to the writers and need not report them.
        let journal = shared::admin::journal_entries(&mut db.connect()).unwrap_or_default();
        let committed_everywhere = |run: &str| {
            [&pair.auth, &pair.app].iter().all(|other| {
                shared::admin::journal_entries(&mut other.connect())
                    .unwrap_or_default()
                    .iter()
                    .any(|e| e.run == run)
            })
        };
        let decisions: Vec<_> = journal
            .into_iter()
            .filter(|entry| entry.stores.first().is_some_and(|s| s == name))
            .filter(|entry| !committed_everywhere(&entry.run))
            .collect();
        if !decisions.is_empty() {
            found.push(format!("{name}: journal {decisions:?}"));
        }
    }
    found
}

/// The commands that only read, as a person would run them right after a crash.
const READERS: [&[&str]; 4] = [&["status"], &["verify"], &["diff"], &["smoke"]];

/// Runs `status`, `verify`, `diff` and `smoke` on what a killed run left, before any
/// writing command. Each must change nothing (every table's checksum, the prepared
/// transactions and staged files as before it) and, when the run left something to
/// settle (or a mixed pair), must say so ("interrupted" or "mixed"). Returns what went wrong, one line per finding; an empty list
/// when they behaved.
pub fn readers_change_nothing(pair: &TestPair, doubt: &[String], context: &str) -> Vec<String> {
    let mut findings = Vec::new();
    let before: [Fingerprint; 2] = [
        checksums::fingerprint(&pair.auth),
        checksums::fingerprint(&pair.app),
    ];
    for args in READERS {
        let output = pair_cmd(pair, &[&["--format", "json"][..], args].concat())
            // A prepared rebuild holds the old tables; a reader gives up after this long.
            .env("ORCH_LOCK_TIMEOUT_SECS", "5")
            .stdin(Stdio::null())
            .output()
            .expect("run a reader");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        let code = output.status.code();
        let what = args.join(" ");
        if stderr.contains("panicked") || code.is_none() {
            findings.push(format!("{what} crashed ({code:?}): {stderr}"));
        }
        let after = [
            checksums::fingerprint(&pair.auth),
            checksums::fingerprint(&pair.app),
        ];
        for (i, name) in ["auth", "app"].into_iter().enumerate() {
            if after[i] != before[i] {
                findings.push(format!(
                    "{what} changed {name}: {}; it said: {}",
                    difference(&before[i], &after[i]),
                    brief(&format!("{} {}", stdout.trim(), stderr.trim()))
                ));
            }
        }
        let said = format!("{stdout}\n{stderr}").to_ascii_lowercase();
        if doubt.is_empty() {
            if code != Some(0) {
                findings.push(format!(
                    "{what} exited {code:?} with nothing to settle: {stderr}"
                ));
            }
        } else if !reported(&stdout, &said) {
            findings.push(format!(
                "{what} did not report the interrupted run ({doubt:?}): exit {code:?}: {}",
                brief(&format!("{} {}", stdout.trim(), stderr.trim()))
            ));
        } else if ["status", "verify"].contains(&args[0]) && code == Some(0) {
            findings.push(format!("{what} reported an interrupted run but exited 0"));
        }
        if findings.is_empty() {
            continue;
        }
        // A reader that changed something has spoiled the moment for the next ones.
        break;
    }
    findings
        .into_iter()
        .map(|f| format!("{context}: {f}"))
        .collect()
}

/// Whether a reader reported an interrupted run: its JSON's `interrupted` list is not
/// empty (the key itself is always there), or, without a JSON report (an error), its
/// message says so.
fn reported(stdout: &str, said: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(stdout) {
        Ok(report) if report.get("interrupted").is_some() => report["interrupted"]
            .as_array()
            .is_some_and(|runs| !runs.is_empty()),
        _ => said.contains("interrupted") || said.contains("mixed"),
    }
}

/// A command's output on one line, cut short: enough to see what it said.
fn brief(said: &str) -> String {
    let line = said.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(400) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// What differs between two fingerprints, in a line.
fn difference(before: &Fingerprint, after: &Fingerprint) -> String {
    let mut parts = Vec::new();
    if before.prepared != after.prepared {
        parts.push(format!(
            "prepared transactions {:?} -> {:?}",
            before.prepared, after.prepared
        ));
    }
    if before.staged != after.staged {
        parts.push(format!(
            "staged files {:?} -> {:?}",
            before.staged, after.staged
        ));
    }
    let names: std::collections::BTreeSet<&String> =
        before.tables.keys().chain(after.tables.keys()).collect();
    for name in names {
        let (b, a) = (before.tables.get(name), after.tables.get(name));
        if b != a {
            parts.push(format!(
                "{name} rows {:?} -> {:?}",
                b.and_then(|t| t.rows()),
                a.and_then(|t| t.rows())
            ));
        }
    }
    parts.join(", ")
}

/// The writing command that settles trial `trial`'s kill: `migrate` or `backup` in turn
/// (each takes the locks and settles first). Returns whether it reported settling.
pub fn settle_with_a_writer(pair: &TestPair, trial: u64, context: &str) {
    let args: &[&str] = if trial.is_multiple_of(2) {
        &["migrate"]
    } else {
        &["backup", "--out", "settling-backups"]
    };
    timed(
        pair_cmd(pair, args),
        &format!("{context}: settling with {args:?}"),
    );
    let _ = std::fs::remove_dir_all(pair.path().join("settling-backups"));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Old,
    New,
}

/// After settling: both stores meet their contract, nothing of a dead run is left, and
/// both hold the `old` contents or both the `new` (by the checksums of every data table);
/// panics on a store that holds neither, or on a mixed pair.
pub fn classify(
    pair: &TestPair,
    old: &[Checksums; 2],
    new: &[Checksums; 2],
    context: &str,
) -> Outcome {
    let mut outcomes = Vec::new();
    for (i, (store, db)) in [(&auth_db::STORE, &pair.auth), (&app_db::STORE, &pair.app)]
        .into_iter()
        .enumerate()
    {
        let mut conn = db.connect();
        orch_tests::assert_meets_contract(&mut conn, store, context);
        assert_nothing_left(db, context);
        let now = checksums::data_checksums(&mut conn);
        let (was, will, is) = (
            checksums::total_rows(&old[i]),
            checksums::total_rows(&new[i]),
            checksums::total_rows(&now),
        );
        assert!(
            is > 0 || was == 0 || will == 0,
            "{context}: {} was emptied: 0 rows, where the old contents had {was} and the new {will} (data lost)",
            store.name
        );
        let outcome = if now == old[i] {
            Outcome::Old
        } else if now == new[i] {
            Outcome::New
        } else {
            panic!(
                "{context}: {} holds neither the old contents ({was} rows) nor the new ({will} rows): \
                 {is} rows now; tables {now:?}",
                store.name
            )
        };
        outcomes.push(outcome);
    }
    assert_eq!(
        outcomes[0], outcomes[1],
        "{context}: a mixed pair: auth {:?}, app {:?}",
        outcomes[0], outcomes[1]
    );
    outcomes[0]
}

/// What the trials of one command saw, for its summary line.
#[derive(Debug, Default)]
pub struct Tally {
    pub old: u64,
    pub new: u64,
    /// Kills that left work for the next writing command (a prepared transaction, a
    /// staged file, a journal row).
    pub in_doubt: u64,
    /// What the commands that only read did wrong, across all trials.
    pub reader_findings: Vec<String>,
}

impl Tally {
    /// The checks after a kill: the dead run's sessions gone, the readers run and
    /// compared, the next writing command run, and the pair classified old or new.
    pub fn after_kill(
        &mut self,
        pair: &TestPair,
        trial: u64,
        (old, new): (&[Checksums; 2], &[Checksums; 2]),
        context: &str,
    ) -> Outcome {
        quiesce(&pair.auth, context);
        quiesce(&pair.app, context);
        let mut doubt = in_doubt(pair);
        // A pair left mixed with nothing recorded to settle it (one store committed, the
        // other not, and no decision row) is the worst case: readers must report it.
        let now = data_sums(pair);
        let state = |i: usize| {
            (now[i] == old[i])
                .then_some(Outcome::Old)
                .or((now[i] == new[i]).then_some(Outcome::New))
        };
        if let (Some(auth), Some(app)) = (state(0), state(1)) {
            if auth != app {
                doubt.push(format!("a mixed pair: auth {auth:?}, app {app:?}"));
            }
        }
        self.in_doubt += u64::from(!doubt.is_empty());
        let findings = readers_change_nothing(pair, &doubt, context);
        // Shown now too: a later check of the same trial may panic before the summary.
        for finding in &findings {
            eprintln!("READER FINDING {finding}");
        }
        self.reader_findings.extend(findings);
        settle_with_a_writer(pair, trial, context);
        let outcome = classify(pair, old, new, context);
        match outcome {
            Outcome::Old => self.old += 1,
            Outcome::New => self.new += 1,
        }
        outcome
    }

    /// The end of a summary line: what the next writing command settled and how the
    /// readers behaved.
    pub fn summary(&self) -> String {
        format!(
            "{} left work in doubt, settled by the next writing command (migrate or backup); \
             never mixed, no store emptied; readers (status, verify, diff, smoke) right after the kill: {}",
            self.in_doubt,
            if self.reader_findings.is_empty() {
                "changed nothing and reported every interrupted run".to_string()
            } else {
                format!("{} finding(s)", self.reader_findings.len())
            }
        )
    }

    /// Fails the test when a reader misbehaved in any trial (after the summary line was
    /// printed, so that the figures are there either way).
    pub fn assert_readers_behaved(&self, what: &str) {
        assert!(
            self.reader_findings.is_empty(),
            "{what}: commands that only read changed something or kept quiet:\n{}",
            self.reader_findings.join("\n")
        );
    }
}
