//! Concurrency, on both backends, with real processes: resets, migrations, verifications
//! and status reports started at the same instant against one pair of stores; and one
//! user's credits consumed by many processes (and threads) at once.
//!
//! What may legitimately happen while they race (see README, reset step 1): `reset` and
//! `migrate` take both databases' locks in dependency order and wait for each other up to
//! `ORCH_LOCK_TIMEOUT_SECS` (generous here, so every wait succeeds and none exits 5).
//! `status` only reports what a crashed run left (settling is for writing commands);
//! nothing crashes here, so nothing may ever be reported as interrupted.
//! `verify` waits for them (a shared lock): it judges settled states only, never the
//! moment between one store's commit and the other's. On SQLite every reader holds that
//! shared lock, because a reset swaps the file by rename and a connection still open on
//! the replaced file would take the new file's rollback journal for its own (this test
//! caught that: readers played the journal into the old file and deleted it under the
//! writer). `status` reads PostgreSQL without a lock, so that it answers at once; the
//! one failure that allows, and this test allows, counts and prints: `COMMIT PREPARED`
//! makes the new schema visible before it sends the cache invalidations of the dropped
//! one, so a statement that starts in between fails with `relation "…" does not exist`
//! (exit 4; a reader in a plain session of the server can hit it too).
//!
//! Two races this test caught are guarded here: a PostgreSQL run used to lose each
//! store's lock at that store's commit, so a waiting run could read the journal while
//! the finished run was still clearing it and "complete" a reset that had completed
//! (every run now keeps its locks until it ends); and `status` counted every table in
//! one statement, which deadlocked with a reset dropping them (it now counts them one
//! by one on PostgreSQL).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::Instant;

use auth_db::users::{sign_up, NewUser};
use orch_tests::{exec, for_each_backend, json_of, orchestrator, process, TestPair};
use shared::{admin, Backend, Conn};

/// Rounds of the mixed race; each starts from a migrated pair holding rows.
/// `ORCH_CONC_ROUNDS` asks for more (a longer hunt for races).
fn rounds() -> usize {
    std::env::var("ORCH_CONC_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}
/// Long enough that no wait for a lock runs out, however slow the machine.
const LOCK_TIMEOUT_SECS: &str = "120";

/// One finished process of a race.
struct Ran {
    label: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    millis: u128,
}

impl Ran {
    fn describe(&self) -> String {
        format!(
            "{} exited {:?} after {} ms\n--- stdout\n{}--- stderr\n{}---",
            self.label, self.code, self.millis, self.stdout, self.stderr
        )
    }
}

/// Starts every command at the same instant (one thread each, released together by a
/// barrier) and waits for all of them.
fn race(commands: Vec<(String, Command)>) -> Vec<Ran> {
    let barrier = Barrier::new(commands.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = commands
            .into_iter()
            .map(|(label, mut cmd)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    cmd.stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped());
                    barrier.wait();
                    let started = Instant::now();
                    let output = cmd
                        .spawn()
                        .and_then(Child::wait_with_output)
                        .unwrap_or_else(|e| panic!("{label}: cannot run: {e}"));
                    Ran {
                        label,
                        code: output.status.code(),
                        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                        millis: started.elapsed().as_millis(),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("a race thread panicked"))
            })
            .collect()
    })
}

/// Gives round `round` some rows: users with credits (through the auth store's API),
/// teams, and datasets, documents and jobs owned by those users.
fn seed(pair: &TestPair, round: usize) {
    let mut auth = pair.auth.connect();
    let mut ids = Vec::new();
    for i in 0..3 {
        let email = format!("r{round}u{i}@example.com");
        let user = sign_up(
            &mut auth,
            &NewUser {
                email: &email,
                name: Some("Racer"),
            },
            10,
        )
        .unwrap_or_else(|e| panic!("sign up {email}: {e}"));
        ids.push(user.id);
    }
    exec(
        &mut auth,
        &format!(
            "INSERT INTO teams (id, name, owner_id) VALUES ('r{round}t', 'team', '{}')",
            ids[0]
        ),
    );
    let mut app = pair.app.connect();
    for (i, owner) in ids.iter().enumerate() {
        exec(
            &mut app,
            &format!(
                "INSERT INTO datasets (id, owner_id, name) VALUES ('r{round}d{i}', '{owner}', 'set {i}');
                 INSERT INTO documents (id, dataset_id, filename) VALUES ('r{round}doc{i}', 'r{round}d{i}', 'f{i}.pdf');
                 INSERT INTO processing_jobs (id, document_id) VALUES ('r{round}j{i}', 'r{round}doc{i}');"
            ),
        );
    }
}

/// Whether a run's only complaint is that it could not clear its journal because of an
/// I/O error (the run succeeded; the next locking run clears the row).
fn journal_clear_failed(ran: &Ran) -> bool {
    let lines: Vec<&str> = ran.stderr.lines().collect();
    !lines.is_empty()
        && lines.iter().all(|l| {
            l.contains("could not clear the journal; the next run will")
                && l.contains("disk I/O error")
        })
}

/// Why a reader's failure mid-race is one the design allows (see the module's
/// documentation), if it is: `verify` finding only orphans of cross-store references,
/// or, on PostgreSQL, `verify` or `status` failing one line long because a table of the
/// contract "does not exist" at the instant a two-phase commit made the new schema
/// visible.
fn tolerated(ran: &Ran, backend: Backend) -> Option<&'static str> {
    // verify waits for runs holding the locks, and SQLite is only read under a shared
    // lock; what is left is status reading PostgreSQL without any lock.
    let reader = ran.label.starts_with("status");
    match ran.code {
        Some(4) if reader && backend == Backend::Postgres => {
            let lines: Vec<&str> = ran.stderr.lines().collect();
            let first = lines.first().copied().unwrap_or("");
            let names_a_contract_table = auth_db::STORE
                .tables
                .iter()
                .chain(app_db::STORE.tables)
                .chain(&["__diesel_schema_migrations", "__orchestrator_migrations"])
                .any(|t| first.contains(&format!("relation \"{t}\" does not exist")));
            (lines.len() == 1 && first.starts_with("error: ") && names_a_contract_table)
                .then_some("a read raced COMMIT PREPARED: relation does not exist")
        }
        _ => None,
    }
}

/// What is wrong with one finished process of the mixed race, if anything.
fn problems_of(ran: &Ran, backend: Backend) -> Vec<String> {
    let mut problems = Vec::new();
    let stderr = ran.stderr.to_ascii_lowercase();
    if stderr.contains("panicked") || stderr.contains("backtrace") {
        problems.push("a panic on stderr".into());
    }
    match ran.code {
        Some(0) => {
            // Progress goes to a terminal only, and nothing crashed: a successful run
            // has nothing to say on stderr (a warning there is a finding).
            if !ran.stderr.trim().is_empty() && tolerated(ran, backend).is_none() {
                problems.push("exit 0 but stderr is not empty".into());
            }
        }
        Some(5) => {
            // Allowed by the contract only as a lock wait that ran out, and then as one
            // line naming the holder; the timeout here is far longer than the race.
            let lines: Vec<&str> = ran.stderr.lines().collect();
            let one_line_naming_holder = lines.len() == 1 && lines[0].contains("locked by");
            problems.push(format!(
                "exit 5 (a lock wait ran out{}) although waits have {LOCK_TIMEOUT_SECS}s",
                if one_line_naming_holder {
                    ""
                } else {
                    ", and not as one line naming the holder"
                }
            ));
        }
        Some(1 | 4) if tolerated(ran, backend).is_some() => {}
        other => problems.push(format!("exit {other:?}")),
    }
    if ran.stdout.lines().any(|l| l.starts_with("recovered:")) || stderr.contains("interrupted run")
    {
        problems.push("reports recovering from a crash, yet nothing crashed".into());
    }
    if ran.label.starts_with("verify") && ran.code == Some(0) {
        let ok = serde_json::from_str::<serde_json::Value>(&ran.stdout)
            .is_ok_and(|r| r["ok"] == serde_json::json!(true));
        if !ok {
            problems.push("verify exits 0 without a JSON report saying ok".into());
        }
    }
    if ran.label.starts_with("status") && ran.code == Some(0) {
        match serde_json::from_str::<serde_json::Value>(&ran.stdout) {
            Err(e) => problems.push(format!("status stdout is not JSON: {e}")),
            Ok(report) => {
                if report["ok"] != serde_json::json!(true) {
                    problems.push("status JSON says ok: false".into());
                }
                if report["interrupted"]
                    .as_array()
                    .is_none_or(|r| !r.is_empty())
                {
                    problems.push(format!(
                        "status reports {} interrupted although nothing crashed",
                        report["interrupted"]
                    ));
                }
                let stores = report["stores"].as_array().cloned().unwrap_or_default();
                if stores.len() != 2 {
                    problems.push(format!("status JSON lists {} stores", stores.len()));
                }
                for s in stores {
                    for key in ["pending", "unknown", "modified"] {
                        if s[key].as_array().is_none_or(|v| !v.is_empty()) {
                            problems.push(format!(
                                "status shows {} {key} migrations mid-race: {}",
                                s["store"], s[key]
                            ));
                        }
                    }
                    if s["applied"].as_array().is_none_or(Vec::is_empty) {
                        problems.push(format!("status shows {} with nothing applied", s["store"]));
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn resets_migrations_verifications_and_status_race_cleanly() {
    for_each_backend("conc_mixed", |pair| {
        // Which server configuration (two-phase commit or not) the race ran on.
        let config = orch_tests::configuration(&pair.auth);
        let started = Instant::now();
        orchestrator(pair).arg("migrate").assert().success();
        let backups = pair.path().join("backups");
        let mut findings: Vec<String> = Vec::new();
        let mut codes: BTreeMap<(String, Option<i32>), usize> = BTreeMap::new();
        let rounds = rounds();
        let mut journal_left = false;
        for round in 0..rounds {
            seed(pair, round);
            let mut commands: Vec<(String, Command)> = Vec::new();
            let mut add = |label: String, args: Vec<String>| {
                let mut cmd = process(pair);
                cmd.env("ORCH_LOCK_TIMEOUT_SECS", LOCK_TIMEOUT_SECS)
                    .env_remove("ORCH_FAULT")
                    .env_remove("ORCH_TWO_PHASE")
                    .args(args);
                commands.push((label, cmd));
            };
            let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            for i in 0..3 {
                let mut args = strs(&["reset", "--force"]);
                if i == 0 {
                    args.push("--backup-dir".into());
                    args.push(backups.to_string_lossy().into_owned());
                } else {
                    args.push("--no-backup".into());
                }
                add(format!("reset#{i}"), args);
                add(format!("migrate#{i}"), strs(&["migrate"]));
                add(format!("verify#{i}"), strs(&["--format", "json", "verify"]));
            }
            for i in 0..2 {
                add(format!("status#{i}"), strs(&["--format", "json", "status"]));
            }
            for ran in race(commands) {
                let kind = ran.label.split('#').next().unwrap_or("").to_string();
                *codes.entry((kind, ran.code)).or_default() += 1;
                journal_left |= ran.code == Some(0) && journal_clear_failed(&ran);
                if let Some(why) = tolerated(&ran, pair.backend) {
                    eprintln!(
                        "{} round {round}: {} exited {:?}, allowed: {why}: {}",
                        pair.backend,
                        ran.label,
                        ran.code,
                        ran.stderr.trim()
                    );
                }
                for p in problems_of(&ran, pair.backend) {
                    findings.push(format!(
                        "{} round {round}: {}: {p}\n{}",
                        pair.backend,
                        ran.label,
                        ran.describe()
                    ));
                }
            }
        }
        println!(
            "CONCURRENCY {config}: {rounds} rounds of 11 processes in {} ms; exit codes {codes:?}",
            started.elapsed().as_millis()
        );
        assert!(
            findings.is_empty(),
            "{} finding(s) on {}:\n{}",
            findings.len(),
            pair.backend,
            findings.join("\n\n")
        );
        if journal_left {
            // A run that could not clear its journal row leaves it to the next locking
            // run, which must clear it without redoing anything.
            let settle = orchestrator(pair).arg("migrate").output().expect("migrate");
            assert!(
                settle.status.success() && settle.stderr.is_empty(),
                "the run after a failed journal clear: {}",
                String::from_utf8_lossy(&settle.stderr)
            );
        }
        assert_settled(pair);
        // Whichever backups were taken (when the reset with --backup-dir went first in
        // its round) are complete sets.
        if let Ok(sets) = std::fs::read_dir(&backups) {
            for set in sets.flatten() {
                assert!(
                    set.path().join("manifest.json").is_file(),
                    "backup {} has no manifest",
                    set.path().display()
                );
            }
        }
    });
}

/// After the race: verify passes, both schemas meet the contract, no journal row, no
/// prepared transaction, no lock and no staging file is left.
fn assert_settled(pair: &TestPair) {
    let (code, report) = json_of(orchestrator(pair), &["verify"]);
    assert_eq!(
        code, 0,
        "verify after the race on {}: {report}",
        pair.backend
    );
    for (store, mut conn) in [
        (&auth_db::STORE, pair.auth.connect()),
        (&app_db::STORE, pair.app.connect()),
    ] {
        orch_tests::assert_meets_contract(&mut conn, store, &pair.backend.to_string());
        let journal = admin::journal_entries(&mut conn).expect("journal");
        assert!(
            journal.is_empty(),
            "{} on {}: journal rows left: {journal:?}",
            store.name,
            pair.backend
        );
        if pair.backend == Backend::Postgres {
            let prepared = admin::prepared_transactions(&mut conn).expect("prepared");
            assert!(
                prepared.is_empty(),
                "{} on {}: prepared transactions left: {prepared:?}",
                store.name,
                pair.backend
            );
            assert_eq!(
                advisory_locks_held(&mut conn),
                0,
                "{}: an advisory lock outlived every run",
                store.name
            );
        }
    }
    if pair.backend == Backend::Sqlite {
        let leftovers: Vec<String> = std::fs::read_dir(pair.path())
            .expect("read the pair's folder")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".rebuild-") || n.ends_with("-journal") || n.ends_with("-wal"))
            .collect();
        assert!(leftovers.is_empty(), "files left behind: {leftovers:?}");
    }
}

fn advisory_locks_held(conn: &mut Conn) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let Conn::Postgres(pg) = conn else {
        return 0;
    };
    let row: N = diesel::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        ),
        pg,
    )
    .expect("pg_locks");
    row.n
}

// Credits consumed by many processes at once: a module of its own (one file stays short).
#[path = "concurrency/credits.rs"]
mod credits;
