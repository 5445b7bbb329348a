//! SQLite stores that applications hold open, as they do: in WAL mode (what SQLite
//! recommends for applications) and in rollback-journal mode, with a writer connected,
//! a reader inside a transaction, and a killed writer's journal or WAL left beside the
//! file. Reset and restore go through SQLite, inside the live file: the file passes
//! `pragma integrity_check` with the expected rows afterwards, keeps its settings and
//! identity, and a run that cannot get SQLite's locks in time changes nothing (exit 5).

use std::path::Path;
use std::process::Command;

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, RunQueryDsl};
use orch_tests::checksums::data_checksums;
use orch_tests::{exec, json_of, orchestrator, orchestrator_in, TestPair};
use shared::{Backend, Conn, DatabaseUrl};

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = Text)]
    v: String,
}

/// One pragma's value, as text.
fn pragma(conn: &mut Conn, name: &str) -> String {
    let Conn::Sqlite(c) = conn else {
        panic!("SQLite only")
    };
    let row: Value = diesel::sql_query(format!(
        "SELECT CAST({name} AS TEXT) AS v FROM pragma_{name}"
    ))
    .get_result(c)
    .unwrap_or_else(|e| panic!("pragma {name}: {e}"));
    row.v
}

fn assert_sound(path: &Path) {
    let url = DatabaseUrl::parse(&path.to_string_lossy()).expect("url");
    let mut conn = Conn::establish("check", &url).expect("open");
    assert_eq!(
        pragma(&mut conn, "integrity_check"),
        "ok",
        "{}",
        path.display()
    );
}

fn users(conn: &mut Conn) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let Conn::Sqlite(c) = conn else {
        panic!("SQLite only")
    };
    diesel::sql_query("SELECT count(*) AS n FROM users")
        .get_result::<N>(c)
        .map(|r| r.n)
        .unwrap_or_else(|e| panic!("count users: {e}"))
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn auth_path(pair: &TestPair) -> std::path::PathBuf {
    pair.auth
        .url
        .sqlite_path()
        .expect("a SQLite store")
        .to_path_buf()
}

/// A migrated, seeded pair whose auth file was created with settings of its own and
/// runs in `journal_mode`.
fn prepared(test: &str, journal_mode: &str) -> TestPair {
    let pair = TestPair::new(Backend::Sqlite, test).expect("SQLite needs no server");
    let mut conn = pair.auth.connect();
    exec(
        &mut conn,
        &format!(
            "PRAGMA page_size = 8192; PRAGMA auto_vacuum = FULL; PRAGMA journal_mode = {journal_mode};
             PRAGMA user_version = 7; PRAGMA application_id = 42;
             CREATE TABLE app_settings (k TEXT PRIMARY KEY, v TEXT); INSERT INTO app_settings VALUES ('theme', 'dark');"
        ),
    );
    drop(conn);
    orchestrator(&pair).arg("migrate").assert().success();
    orch_tests::seed::contract_rows(&pair);
    pair
}

#[test]
fn a_wal_store_with_a_writer_connected_is_reset_and_restored_inside_the_live_file() {
    let pair = prepared("sqlite_wal_writer", "wal");
    let path = auth_path(&pair);
    // The application's connection stays open throughout, idle between its writes.
    let mut app = pair.auth.connect();
    exec(
        &mut app,
        "INSERT INTO users (id, email) VALUES ('w1', 'w1@x')",
    );

    let (code, report) = json_of(orchestrator(&pair), &["reset", "--force"]);
    assert_eq!(code, 0, "{report}");
    let backup = report["backup"].as_str().expect("backed up").to_string();
    assert_sound(&path);
    let mut fresh = pair.auth.connect();
    assert_eq!(users(&mut fresh), 0, "reset");
    for (name, want) in [
        ("user_version", "7"),
        ("application_id", "42"),
        ("page_size", "8192"),
        ("auto_vacuum", "1"),
        ("journal_mode", "wal"),
        ("encoding", "UTF-8"),
    ] {
        assert_eq!(pragma(&mut fresh, name), want, "the file keeps its {name}");
    }
    // The application's connection sees the new database, and what it writes stays.
    exec(
        &mut app,
        "INSERT INTO users (id, email) VALUES ('w2', 'w2@x')",
    );
    assert_eq!(
        users(&mut fresh),
        1,
        "the writer's row after the reset is in the file"
    );

    let output = orchestrator(&pair)
        .args(["restore", &backup, "--force"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_sound(&path);
    assert_eq!(
        users(&mut fresh),
        4,
        "three seeded users and w1, from the backup"
    );
    assert_eq!(users(&mut app), 4, "the open connection sees the restore");
    assert_eq!(pragma(&mut fresh, "journal_mode"), "wal");
    assert_eq!(pragma(&mut fresh, "user_version"), "7");
    let Conn::Sqlite(c) = &mut fresh else {
        unreachable!()
    };
    let theme: Value = diesel::sql_query("SELECT v FROM app_settings WHERE k = 'theme'")
        .get_result(c)
        .expect("the application's own table is restored");
    assert_eq!(theme.v, "dark");
}

#[test]
fn transactions_other_processes_hold_refuse_the_run_within_the_lock_timeout_and_change_nothing() {
    for mode in ["delete", "wal"] {
        let pair = prepared(&format!("sqlite_held_{mode}"), mode);
        let path = auth_path(&pair);
        let before = data_checksums(&mut pair.auth.connect());
        let (code, set) = json_of(orchestrator(&pair), &["backup"]);
        assert_eq!(code, 0, "{set}");
        let set = set["dir"].as_str().expect("backup dir").to_string();
        // A writer in the middle of its transaction: SQLite's write lock is taken.
        let mut writer = pair.auth.connect();
        exec(
            &mut writer,
            "BEGIN IMMEDIATE; INSERT INTO users (id, email) VALUES ('w', 'w@x');",
        );
        for command in [&["reset", "--force"][..], &["restore", &set, "--force"]] {
            let output = orchestrator(&pair)
                .env("ORCH_LOCK_TIMEOUT_SECS", "1")
                .args(command)
                .output()
                .expect("run");
            assert_eq!(
                output.status.code(),
                Some(5),
                "{mode} {command:?}: {}",
                stderr(&output)
            );
            assert!(stderr(&output).contains("auth"), "{}", stderr(&output));
        }
        exec(&mut writer, "ROLLBACK");
        assert_eq!(
            data_checksums(&mut pair.auth.connect()),
            before,
            "{mode}: nothing changed"
        );
        assert_sound(&path);

        // In rollback-journal mode a reader inside a transaction keeps SQLite from
        // committing over what it reads: refused too, never swapped behind its back.
        if mode == "delete" {
            let mut reader = pair.auth.connect();
            exec(&mut reader, "BEGIN; SELECT count(*) FROM users;");
            let output = orchestrator(&pair)
                .env("ORCH_LOCK_TIMEOUT_SECS", "1")
                .args(["reset", "--force", "--no-backup"])
                .output()
                .expect("run");
            assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
            exec(&mut reader, "COMMIT");
            assert_eq!(
                data_checksums(&mut pair.auth.connect()),
                before,
                "reader: nothing changed"
            );
            assert_sound(&path);
        }
        // Once they are done, the same reset goes through.
        orchestrator(&pair)
            .args(["reset", "--force"])
            .assert()
            .success();
        assert_sound(&path);
    }
}

/// Runs Python's sqlite3 (a separate process, as an application is) on `path`: `body`
/// runs with `c` connected, then the process kills itself with SIGKILL mid-transaction
/// or, WAL mode, after committing without a checkpoint.
fn python_killed(path: &Path, body: &str) {
    let script = format!(
        "import os, signal, sqlite3\nc = sqlite3.connect({:?}, isolation_level=None)\n{body}\nos.kill(os.getpid(), signal.SIGKILL)\n",
        path.to_string_lossy()
    );
    let status = Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap_or_else(|e| panic!("python3 is needed for this test (a second process): {e}"));
    assert!(!status.success(), "the writer was to die by SIGKILL");
}

#[test]
fn a_killed_writers_hot_journal_or_wal_is_sqlites_to_recover_before_the_reset() {
    // Rollback journal: a big uncommitted transaction spilled into the file, then the
    // process died. Its journal is hot; the rows were never committed.
    let pair = prepared("sqlite_hot_journal", "delete");
    let path = auth_path(&pair);
    let before = data_checksums(&mut pair.auth.connect());
    python_killed(
        &path,
        "c.execute('PRAGMA cache_size = 5')\nc.execute('BEGIN')\n\
         for i in range(3000):\n    c.execute('INSERT INTO verifications (id, identifier, value, expires_at) VALUES (?, ?, ?, CURRENT_TIMESTAMP)', ('v%d' % i, 'x' * 200, 'y' * 200))",
    );
    let journal = std::path::PathBuf::from(format!("{}-journal", path.display()));
    assert!(journal.exists(), "the killed writer left its hot journal");
    let (code, report) = json_of(orchestrator(&pair), &["reset", "--force"]);
    assert_eq!(code, 0, "{report}");
    assert_sound(&path);
    let backup = report["backup"].as_str().expect("backup");
    // The report names the set relative to the run's folder.
    let copy = pair.path().join(backup).join("auth.sqlite3");
    assert_sound(&copy);
    let url = DatabaseUrl::parse(&copy.to_string_lossy()).expect("url");
    assert_eq!(
        data_checksums(&mut Conn::establish("copy", &url).expect("open")),
        before,
        "the backup holds the committed rows, not the dead writer's"
    );
    // Killed again mid-transaction on the reset file, then the backup is restored.
    python_killed(
        &path,
        "c.execute('PRAGMA cache_size = 5')\nc.execute('BEGIN')\n\
         for i in range(3000):\n    c.execute('INSERT INTO verifications (id, identifier, value, expires_at) VALUES (?, ?, ?, CURRENT_TIMESTAMP)', ('w%d' % i, 'x' * 200, 'y' * 200))",
    );
    assert!(journal.exists(), "a hot journal again");
    let set = pair.path().join(backup);
    let output = orchestrator(&pair)
        .args(["restore", &set.to_string_lossy(), "--force"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_sound(&path);
    assert_eq!(
        data_checksums(&mut pair.auth.connect()),
        before,
        "restored to the committed rows"
    );

    // WAL: committed rows still only in the -wal when the writer died.
    let pair = prepared("sqlite_killed_wal", "wal");
    let path = auth_path(&pair);
    python_killed(
        &path,
        "c.execute('PRAGMA wal_autocheckpoint = 0')\n\
         for i in range(50):\n    c.execute('INSERT INTO users (id, email) VALUES (?, ?)', ('k%d' % i, 'k%d@x' % i))",
    );
    let (code, report) = json_of(orchestrator(&pair), &["reset", "--force"]);
    assert_eq!(code, 0, "{report}");
    assert_sound(&path);
    let copy = pair
        .path()
        .join(report["backup"].as_str().expect("backup"))
        .join("auth.sqlite3");
    let url = DatabaseUrl::parse(&copy.to_string_lossy()).expect("url");
    assert_eq!(
        users(&mut Conn::establish("copy", &url).expect("open")),
        53,
        "the 50 rows committed into the WAL are in the backup"
    );
}

#[test]
fn a_store_reached_through_a_symlink_stays_a_symlink() {
    let pair = prepared("sqlite_symlink", "wal");
    let real = auth_path(&pair);
    let link = pair.path().join("auth-link.sqlite3");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let output = orchestrator_in(pair.path())
        .args([
            "--auth-url",
            &format!("sqlite://{}", link.display()),
            "--app-url",
            &pair.app.url_string(),
            "reset",
            "--force",
        ])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("link")
            .file_type()
            .is_symlink(),
        "the link was not replaced by a file"
    );
    assert_sound(&real);
    assert_eq!(
        users(&mut pair.auth.connect()),
        0,
        "the real file was reset"
    );
}
