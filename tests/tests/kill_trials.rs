//! SIGKILL at random moments of `reset --force`, `restore`, `migrate` and `squash`, on both
//! backends. After each kill the next run settles what the dead one left, and what is
//! there is either the old state, intact, or the new state, verified: never something in
//! between, never a prepared transaction, a journal row, a lock, a scratch database or a
//! staging folder left over; and the run after that succeeds.
//!
//! CI runs a short form (3 trials a command and backend, 20,000 rows a store). The full
//! trial (`scripts/kill-trials.sh`: 20 trials, 200,000 rows a store) sets
//! `ORCH_KILL_TRIALS` and `ORCH_KILL_ROWS`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use orch_tests::{
    exec, for_each_backend, json_of, orchestrator, orchestrator_in, pg_admin_url, test_db, TestDb,
    TestPair,
};
use rand::Rng;
use shared::history::History;
use shared::schema::{self, SchemaModel};
use shared::{catalog, Backend, Conn};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn trials() -> u64 {
    env_number("ORCH_KILL_TRIALS", 3)
}

fn rows() -> u64 {
    env_number("ORCH_KILL_ROWS", 20_000)
}

/// When to kill trial `trial` of a command that takes `full` undisturbed. Even trials:
/// anywhere in the run. Odd trials: its last part, where the commits (or the swap) are; a
/// uniform kill mostly lands in the backup or the replay.
fn kill_delay(trial: u64, full: Duration) -> Duration {
    let full_us = full.as_micros() as u64;
    let window = if trial.is_multiple_of(2) {
        0..(full_us * 12 / 10).max(1)
    } else {
        (full_us * 6 / 10)..(full_us * 11 / 10).max(1)
    };
    Duration::from_micros(rand::thread_rng().gen_range(window))
}

/// Runs `cmd` and SIGKILLs it after `delay` (if it is still running). Returns its pid.
fn run_and_kill(mut cmd: Command, delay: Duration) -> u32 {
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
fn timed(mut cmd: Command, what: &str) -> Duration {
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
fn on(dir: &Path, auth: &TestDb, app: &TestDb, args: &[&str]) -> Command {
    let mut cmd = orch_tests::process_in(dir);
    cmd.arg("--auth-url")
        .arg(auth.url_string())
        .arg("--app-url")
        .arg(app.url_string())
        .args(args);
    cmd
}

/// Fills users and datasets with `rows` rows each, in one statement per store.
fn seed(pair: &TestPair, rows: u64) {
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

fn count(conn: &mut Conn, table: &str) -> Option<i64> {
    let tables = catalog::tables(conn).ok()?;
    tables
        .iter()
        .any(|t| t == table)
        .then(|| orch_tests::count(conn, table))
}

#[derive(diesel::QueryableByName)]
struct Number {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Advisory locks on this PostgreSQL database held by sessions other than this one.
fn foreign_advisory_locks(pg: &mut diesel::PgConnection) -> i64 {
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid() \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .get_result::<Number>(pg)
    .map(|r| r.n)
    .expect("pg_locks")
}

/// Nothing of a dead run survives on this database: no journal row, no prepared
/// transaction, no advisory lock held by another session (a killed client's backend may
/// take a moment to notice, so that one is polled for up to 10 s).
fn assert_nothing_left(db: &TestDb, context: &str) {
    let mut conn = db.connect();
    let journal = shared::admin::journal_entries(&mut conn).expect("journal");
    assert!(
        journal.is_empty(),
        "{context}: journal not settled: {journal:?}"
    );
    if db.url.backend() == Backend::Postgres {
        let prepared = shared::admin::prepared_transactions(&mut conn).expect("prepared");
        assert!(
            prepared.is_empty(),
            "{context}: prepared transactions survived: {prepared:?}"
        );
    }
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
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Old,
    New,
}

/// Both stores meet their contract, nothing of a dead run is left, and the rows are
/// either `old` or `new` rows a store (users, datasets); panics on anything in between.
fn classify_rows(pair: &TestPair, old: i64, new: i64, context: &str) -> Outcome {
    let mut counts = Vec::new();
    for (store, db, table) in [
        (&auth_db::STORE, &pair.auth, "users"),
        (&app_db::STORE, &pair.app, "datasets"),
    ] {
        let mut conn = db.connect();
        orch_tests::assert_meets_contract(&mut conn, store, context);
        assert_nothing_left(db, context);
        counts.push(count(&mut conn, table));
    }
    match counts[..] {
        [Some(u), Some(d)] if u == old && d == old => Outcome::Old,
        [Some(u), Some(d)] if u == new && d == new => Outcome::New,
        _ => {
            panic!("{context}: neither the old state ({old} rows) nor the new ({new}): {counts:?}")
        }
    }
}

/// Runs `recover`, which settles whatever a dead run left; true when it had to.
fn settle_with_status(pair: &TestPair, context: &str) -> bool {
    let (code, status) = json_of(orchestrator(pair), &["recover"]);
    assert_eq!(code, 0, "{context}: {status}");
    !status["recovered"]
        .as_array()
        .map(Vec::is_empty)
        .unwrap_or(true)
}

fn pair_cmd(pair: &TestPair, args: &[&str]) -> Command {
    on(pair.path(), &pair.auth, &pair.app, args)
}

#[test]
fn sigkill_during_a_forced_reset_leaves_old_data_or_a_clean_reset() {
    let (trials, rows) = (trials(), rows());
    for_each_backend("kill_reset", |pair| {
        orchestrator(pair).arg("migrate").assert().success();
        let reset = || pair_cmd(pair, &["reset", "--force"]);
        seed(pair, rows);
        let full = timed(reset(), "calibration reset");
        let (mut old, mut new, mut settled) = (0, 0, 0);
        for trial in 0..trials {
            let context = format!("reset trial {trial} on {}", pair.backend);
            seed(pair, rows);
            run_and_kill(reset(), kill_delay(trial, full));
            settled += u32::from(settle_with_status(pair, &context));
            match classify_rows(pair, rows as i64, 0, &context) {
                Outcome::Old => old += 1,
                Outcome::New => new += 1,
            }
            timed(reset(), &context);
            assert_eq!(classify_rows(pair, rows as i64, 0, &context), Outcome::New);
            let _ = std::fs::remove_dir_all(pair.path().join(".data/backups"));
        }
        println!(
            "KILL TRIALS reset {}: {trials} trials, {rows} rows a store, undisturbed run {} ms: \
             {old} old data intact, {new} clean verified reset, {settled} settled by the next run, 0 lost",
            pair.backend,
            full.as_millis()
        );
        assert_eq!(old + new, trials);
    });
}

#[test]
fn sigkill_during_a_restore_leaves_the_replaced_data_or_the_backup() {
    let (trials, rows) = (trials(), rows());
    // The state a restore replaces: fewer rows than the backup, so the two are told apart.
    let other = rows / 2 + 1;
    for_each_backend("kill_restore", |pair| {
        orchestrator(pair).arg("migrate").assert().success();
        seed(pair, rows);
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
        let (mut old, mut new, mut settled) = (0, 0, 0);
        for trial in 0..trials {
            let context = format!("restore trial {trial} on {}", pair.backend);
            replace_contents();
            run_and_kill(restore(), kill_delay(trial, full));
            settled += u32::from(settle_with_status(pair, &context));
            match classify_rows(pair, other as i64, rows as i64, &context) {
                Outcome::Old => old += 1,
                Outcome::New => new += 1,
            }
            timed(restore(), &context);
            assert_eq!(
                classify_rows(pair, other as i64, rows as i64, &context),
                Outcome::New
            );
            // The safety backups each restore over rows writes.
            let _ = std::fs::remove_dir_all(pair.path().join(".data/backups"));
        }
        println!(
            "KILL TRIALS restore {}: {trials} trials, {rows} rows a store in the backup, undisturbed run {} ms: \
             {old} replaced data intact, {new} backup restored and verified, {settled} settled by the next run, 0 lost",
            pair.backend,
            full.as_millis()
        );
        assert_eq!(old + new, trials);
    });
}

/// The 71-migration fixture: a long history whose migrate and squash take long enough to
/// be killed in the middle.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/history71")
}

fn fixture_versions(backend: Backend) -> Vec<String> {
    let dir = fixture().join(backend.as_str());
    History::Dir(&dir)
        .versions(backend)
        .expect("fixture versions")
        .into_iter()
        .map(|(v, _)| v)
        .collect()
}

fn model_of(db: &TestDb) -> SchemaModel {
    schema::introspect(&mut db.connect()).expect("introspect")
}

/// The schema a fresh database has after the fixture's history up to `up_to` (all of it
/// when `None`), built in-process on a database of its own.
fn fixture_model(pair: &TestPair, label: &str, up_to: Option<&str>) -> SchemaModel {
    let db = test_db(pair.backend, "kill_ref", label, pair.path()).expect("db");
    let dir = fixture().join(pair.backend.as_str());
    shared::history::run(&mut db.connect(), History::Dir(&dir), up_to, |_| {}).expect("replay");
    model_of(&db)
}

#[test]
fn sigkill_during_migrate_leaves_a_prefix_of_the_history_that_the_next_run_completes() {
    let trials = trials();
    for_each_backend("kill_migrate", |pair| {
        let fixture = fixture().to_string_lossy().into_owned();
        let args = ["migrate", "--store", "auth", "--migrations-dir", &fixture];
        let versions = fixture_versions(pair.backend);
        let complete = fixture_model(pair, "complete", None);
        let calibration = test_db(pair.backend, "kill_migrate", "cal", pair.path()).expect("db");
        let full = timed(
            on(pair.path(), &calibration, &pair.app, &args),
            "calibration migrate",
        );
        assert!(schema::compare(&complete, &model_of(&calibration)).is_empty());
        let (mut untouched, mut partial, mut finished) = (0, 0, 0);
        for trial in 0..trials {
            let context = format!("migrate trial {trial} on {}", pair.backend);
            let db = test_db(
                pair.backend,
                "kill_migrate",
                &format!("t{trial}"),
                pair.path(),
            )
            .expect("db");
            run_and_kill(
                on(pair.path(), &db, &pair.app, &args),
                kill_delay(trial, full),
            );
            assert_nothing_left(&db, &context);
            // What was applied is a prefix of the history, and the schema is exactly what
            // that prefix makes: each migration committed whole or not at all.
            let mut applied = catalog::applied_versions(&mut db.connect()).unwrap_or_default();
            applied.sort();
            assert_eq!(
                applied[..],
                versions[..applied.len()],
                "{context}: applied migrations are not a prefix of the history"
            );
            let expected = match applied.last() {
                None => {
                    untouched += 1;
                    let empty =
                        test_db(pair.backend, "kill_migrate", "empty", pair.path()).expect("db");
                    model_of(&empty)
                }
                Some(last) if applied.len() == versions.len() => {
                    let _ = last;
                    finished += 1;
                    complete.clone()
                }
                Some(last) => {
                    partial += 1;
                    fixture_model(pair, &format!("p{trial}"), Some(last))
                }
            };
            let differences = schema::compare(&expected, &model_of(&db));
            assert!(
                differences.is_empty(),
                "{context}: the schema is not what the {} applied migration(s) make: {differences:?}",
                applied.len()
            );
            // The next run completes it.
            timed(on(pair.path(), &db, &pair.app, &args), &context);
            assert!(
                schema::compare(&complete, &model_of(&db)).is_empty(),
                "{context}"
            );
            assert_eq!(
                catalog::applied_versions(&mut db.connect())
                    .expect("applied")
                    .len(),
                versions.len()
            );
        }
        println!(
            "KILL TRIALS migrate {}: {trials} trials of the {}-migration history, undisturbed run {} ms: \
             {untouched} killed before the first migration, {partial} killed part way (a prefix applied, schema exact), \
             {finished} finished; every one completed by the next run",
            pair.backend,
            versions.len(),
            full.as_millis()
        );
    });
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A fresh copy of the fixture to squash, under `root`.
fn fixture_copy(root: &Path) -> PathBuf {
    let migrations = root.join("migrations");
    orch_tests::copy_dir(&fixture(), &migrations);
    migrations
}

/// `squash` of the auth history in `migrations`, on the pair's backend (PostgreSQL
/// scratch databases on the test server).
fn squash_cmd(pair: &TestPair, migrations: &Path) -> Command {
    let dir = migrations.to_string_lossy().into_owned();
    let admin = pg_admin_url();
    let mut args = vec![
        "squash",
        "--store",
        "auth",
        "--backend",
        pair.backend.as_str(),
        "--migrations-dir",
        &dir,
    ];
    if pair.backend == Backend::Postgres {
        args.extend(["--shadow-url", &admin]);
    }
    pair_cmd(pair, &args)
}

/// After the next reader settled it, the folder holds the old history, untouched, or the
/// proven baseline with the old history archived; nothing half moved, no journal, no
/// staging folder.
fn classify_squash(pair: &TestPair, migrations: &Path, context: &str) -> Outcome {
    let backend = pair.backend.as_str();
    let live = entries(&migrations.join(backend));
    let archived = entries(
        &migrations
            .with_file_name("migrations_archive")
            .join(backend),
    );
    let old_count = fixture_versions(pair.backend).len();
    let root = entries(migrations.parent().expect("parent"));
    assert!(
        root.iter().all(|e| !e.starts_with(".squash-staging-")),
        "{context}: staging left behind: {root:?}"
    );
    assert!(
        !migrations.join(".squash-journal.json").exists(),
        "{context}: journal left behind"
    );
    if live.len() == old_count && archived.is_empty() {
        Outcome::Old
    } else if live.len() == 2
        && live.contains(&"squash.json".to_string())
        && archived.len() == old_count
    {
        Outcome::New
    } else {
        panic!("{context}: half a squash: live {live:?}, archived {archived:?}")
    }
}

#[test]
fn sigkill_during_squash_leaves_the_old_history_or_the_proven_baseline() {
    let trials = trials();
    for_each_backend("kill_squash", |pair| {
        let complete = fixture_model(pair, "complete", None);
        let calibration = fixture_copy(&pair.path().join("cal"));
        let full = timed(squash_cmd(pair, &calibration), "calibration squash");
        let (mut old, mut new) = (0, 0);
        for trial in 0..trials {
            let context = format!("squash trial {trial} on {}", pair.backend);
            let migrations = fixture_copy(&pair.path().join(format!("t{trial}")));
            let pid = run_and_kill(squash_cmd(pair, &migrations), kill_delay(trial, full));
            // The next reader of the folder settles it, and the history it reads (old or
            // squashed) builds the same schema as the full old history.
            let db = test_db(
                pair.backend,
                "kill_squash",
                &format!("m{trial}"),
                pair.path(),
            )
            .expect("db");
            let dir = migrations.to_string_lossy().into_owned();
            timed(
                on(
                    pair.path(),
                    &db,
                    &pair.app,
                    &["migrate", "--store", "auth", "--migrations-dir", &dir],
                ),
                &context,
            );
            let outcome = classify_squash(pair, &migrations, &context);
            assert!(
                schema::compare(&complete, &model_of(&db)).is_empty(),
                "{context}"
            );
            if pair.backend == Backend::Postgres {
                // The next run that makes a scratch database drops those the dead one left.
                let admin = pg_admin_url();
                let diff = [
                    "diff",
                    "--store",
                    "auth",
                    "--migrations-dir",
                    &dir,
                    "--shadow-url",
                    &admin,
                ];
                timed(on(pair.path(), &db, &pair.app, &diff), &context);
                let left = orch_tests::scratch_databases_of(pid);
                assert!(
                    left.is_empty(),
                    "{context}: scratch databases left: {left:?}"
                );
            }
            match outcome {
                Outcome::Old => {
                    old += 1;
                    // And the squash, run again, succeeds.
                    timed(squash_cmd(pair, &migrations), &context);
                    assert_eq!(classify_squash(pair, &migrations, &context), Outcome::New);
                }
                Outcome::New => new += 1,
            }
        }
        println!(
            "KILL TRIALS squash {}: {trials} trials of the 71-migration history, undisturbed run {} ms: \
             {old} old history intact (squash rerun succeeded), {new} proven baseline in place; \
             no half-moved folder, staging folder or scratch database left",
            pair.backend,
            full.as_millis()
        );
        assert_eq!(old + new, trials);
    });
}

#[test]
fn a_squash_that_dies_mid_swap_is_finished_by_the_next_reader_of_the_folder() {
    for_each_backend("kill_squash_swap", |pair| {
        let migrations = fixture_copy(&pair.path().join("swap"));
        let output = squash_cmd(pair, &migrations)
            .env("ORCH_FAULT", "crash-mid-swap:squash")
            .output()
            .expect("run");
        assert!(!output.status.success(), "the fault must kill the run");
        assert!(
            migrations.join(".squash-journal.json").exists(),
            "the swap was committed and interrupted"
        );
        let dir = migrations.to_string_lossy().into_owned();
        orchestrator_in(pair.path())
            .args([
                "--auth-url",
                &pair.auth.url_string(),
                "--app-url",
                &pair.app.url_string(),
            ])
            .args(["migrate", "--store", "auth", "--migrations-dir", &dir])
            .assert()
            .success();
        assert_eq!(
            classify_squash(pair, &migrations, "after the crash mid-swap"),
            Outcome::New
        );
        let complete = fixture_model(pair, "complete", None);
        assert!(schema::compare(&complete, &model_of(&pair.auth)).is_empty());
    });
}

mod support;

#[test]
fn postgres_stopped_immediately_mid_reset_and_started_again_keeps_old_data_or_a_clean_reset() {
    if !orch_tests::backends().contains(&Backend::Postgres) {
        return;
    }
    let Some(cluster) = support::OwnCluster::start("kill_server", support::Auth::Trust) else {
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
    orchestrator(&pair).arg("migrate").assert().success();
    let reset = || pair_cmd(&pair, &["reset", "--force"]);
    seed(&pair, rows);
    let full = timed(reset(), "calibration reset");
    let (mut old, mut new, mut settled, mut failed_cleanly) = (0, 0, 0, 0);
    for trial in 0..trials {
        let context = format!("server stop trial {trial}");
        seed(&pair, rows);
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
        settled += u32::from(settle_with_status(&pair, &context));
        match classify_rows(&pair, rows as i64, 0, &context) {
            Outcome::Old => old += 1,
            Outcome::New => new += 1,
        }
        timed(reset(), &context);
        assert_eq!(classify_rows(&pair, rows as i64, 0, &context), Outcome::New);
        let _ = std::fs::remove_dir_all(pair.path().join(".data/backups"));
    }
    println!(
        "SERVER STOP TRIALS: {trials} resets of {rows} rows a store with the server stopped \
         (pg_ctl stop -m immediate) at a random moment, undisturbed run {} ms: {failed_cleanly} \
         runs exited 4, {old} old data intact, {new} clean verified reset, {settled} settled by \
         the next run after the restart, 0 lost",
        full.as_millis()
    );
    assert_eq!(old + new, trials);
}
