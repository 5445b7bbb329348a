//! Every wait is bounded by `lock_timeout_secs`, and a dead run never blocks the next:
//! real PostgreSQL, the real binary, each test on databases of its own.

use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use orch_tests::{count, exec, orchestrator, TestPair};
use shared::{Backend, Conn, DatabaseUrl};

/// Far above every bound these tests set, far below "hangs": a finished-within check for
/// a wait that must be bounded, not a timing measurement.
const GENEROUS: Duration = Duration::from_secs(40);

fn seeded(test: &str) -> Option<TestPair> {
    let pair = TestPair::new(Backend::Postgres, test)?;
    orchestrator(&pair).arg("migrate").assert().success();
    orch_tests::seed::contract_rows(&pair);
    Some(pair)
}

/// A session of the test's own holding app's `datasets` in ACCESS EXCLUSIVE mode until
/// dropped.
fn hold_datasets(pair: &TestPair) -> Conn {
    let mut holder = pair.app.connect();
    exec(
        &mut holder,
        "BEGIN; LOCK TABLE datasets IN ACCESS EXCLUSIVE MODE;",
    );
    holder
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn reads_give_up_within_lock_timeout_secs_while_a_table_is_held_exclusively() {
    let Some(pair) = seeded("waits_exclusive") else {
        return;
    };
    let _holder = hold_datasets(&pair);
    for command in ["verify", "diff", "status", "smoke", "backup"] {
        let started = Instant::now();
        let output = orchestrator(&pair)
            .arg(command)
            .env("ORCH_LOCK_TIMEOUT_SECS", "2")
            .output()
            .expect("run");
        let took = started.elapsed();
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(4), "{command}: {stderr}");
        assert!(took < GENEROUS, "{command} waited {took:?}: {stderr}");
        assert!(stderr.contains("lock timeout"), "{command}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{command}: one line: {stderr}"
        );
    }
    // Nothing was taken from the store while it was held.
    drop(_holder);
    assert_eq!(count(&mut pair.app.connect(), "datasets"), 2);
}

/// The server process id of a session of `pid`'s, once it waits on a lock.
fn waiting_backend(admin: &mut Conn, database: &str, pid: u32) -> Option<i64> {
    #[derive(diesel::QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        pid: i64,
    }
    let Conn::Postgres(pg) = admin else {
        return None;
    };
    use diesel::RunQueryDsl;
    diesel::sql_query(format!(
        "SELECT pid::bigint AS pid FROM pg_stat_activity WHERE datname = {} \
         AND application_name LIKE 'orchestrator pid={pid} %' AND wait_event_type = 'Lock'",
        shared::db::quote_literal(database)
    ))
    .load::<Pid>(pg)
    .ok()?
    .first()
    .map(|p| p.pid)
}

#[test]
fn a_killed_verify_waiting_on_a_lock_does_not_block_the_next_migrate() {
    let Some(pair) = seeded("waits_killed_verify") else {
        return;
    };
    let holder = hold_datasets(&pair);
    // A verify that would wait a long time, killed while it waits with the read lock.
    let mut verify = orch_tests::process(&pair)
        .arg("verify")
        .env("ORCH_LOCK_TIMEOUT_SECS", "600")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn verify");
    let mut admin = pair.app.connect();
    let deadline = Instant::now() + GENEROUS;
    while waiting_backend(&mut admin, &pair.app.url.database_name(), verify.id()).is_none() {
        assert!(Instant::now() < deadline, "verify never waited on the lock");
        std::thread::sleep(Duration::from_millis(50));
    }
    verify.kill().expect("SIGKILL");
    verify.wait().expect("reap");

    let started = Instant::now();
    let output = orchestrator(&pair)
        .arg("migrate")
        .env("ORCH_LOCK_TIMEOUT_SECS", "5")
        .output()
        .expect("migrate");
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(started.elapsed() < GENEROUS, "{:?}", started.elapsed());
    drop(holder);
    orchestrator(&pair).arg("verify").assert().success();
}

/// A process id that existed a moment ago and no longer does.
fn dead_pid() -> u32 {
    let mut child = Process::new("true").spawn().expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

/// A connection of the test's own, named as a run of `pid` on this host would name it,
/// holding `store`'s run lock: a session whose client went away without the server
/// noticing (a hung network, an older server).
fn impersonate(url: &DatabaseUrl, pid: u32, store: &str) -> diesel::PgConnection {
    use diesel::Connection;
    let name = shared::session::application_name_of(pid, &shared::session::host_name());
    let encoded = name.replace(' ', "%20").replace('=', "%3D");
    let sep = if url.expose_secret().contains('?') {
        '&'
    } else {
        '?'
    };
    let mut conn = diesel::PgConnection::establish(&format!(
        "{}{sep}application_name={encoded}",
        url.expose_secret()
    ))
    .expect("connect");
    use diesel::connection::SimpleConnection;
    conn.batch_execute(&format!(
        "SELECT pg_advisory_lock({})",
        shared::admin::lock_key(store)
    ))
    .expect("lock");
    conn
}

#[test]
fn a_session_left_by_a_dead_run_of_this_host_is_ended_and_the_run_says_so() {
    let Some(pair) = seeded("waits_dead_holder") else {
        return;
    };
    let dead = dead_pid();
    let mut leftover = impersonate(&pair.auth.url, dead, "auth");
    let started = Instant::now();
    let output = orchestrator(&pair)
        .arg("migrate")
        .env("ORCH_LOCK_TIMEOUT_SECS", "20")
        .output()
        .expect("migrate");
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(started.elapsed() < GENEROUS);
    assert!(
        stderr.contains("ended server process")
            && stderr.contains(&format!("orchestrator process {dead}"))
            && stderr.contains("no longer runs"),
        "{stderr}"
    );
    use diesel::connection::SimpleConnection;
    assert!(
        leftover.batch_execute("SELECT 1").is_err(),
        "the leftover session was ended"
    );
}

#[test]
fn a_live_runs_session_is_never_ended_and_is_named_when_the_wait_runs_out() {
    let Some(pair) = seeded("waits_live_holder") else {
        return;
    };
    // This test process is alive: its "run" must be waited for, never ended.
    let mut live = impersonate(&pair.auth.url, std::process::id(), "auth");
    let started = Instant::now();
    let output = orchestrator(&pair)
        .arg("migrate")
        .env("ORCH_LOCK_TIMEOUT_SECS", "2")
        .output()
        .expect("migrate");
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(started.elapsed() < GENEROUS);
    assert!(
        stderr.contains(&format!("orchestrator pid={}", std::process::id())),
        "{stderr}"
    );
    use diesel::connection::SimpleConnection;
    live.batch_execute("SELECT 1")
        .expect("the live session was left alone");
}

#[test]
fn a_lock_timeout_the_server_cannot_take_is_a_configuration_error() {
    let Some(pair) = TestPair::new(Backend::Postgres, "waits_huge_timeout") else {
        return;
    };
    for command in ["status", "migrate", "reset"] {
        let output = orchestrator(&pair)
            .arg(command)
            .env("ORCH_LOCK_TIMEOUT_SECS", "99999999")
            .output()
            .expect("run");
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("lock_timeout_secs"), "{stderr}");
    }
    // Refused before connecting: migrate created nothing.
    assert!(shared::catalog::all_tables(&mut pair.auth.connect())
        .expect("tables")
        .is_empty());
}

#[test]
fn a_backup_whose_lock_session_was_ended_under_it_fails() {
    let Some(pair) = seeded("waits_lost_session") else {
        return;
    };
    let child = orch_tests::process(&pair)
        .arg("backup")
        .env("ORCH_FAULT", "pause-after-dump:auth")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn backup");
    // The session holding auth's run lock, ended as a server timeout would end it.
    let mut admin = pair.auth.connect();
    let key = shared::admin::lock_key("auth");
    let sql = format!(
        "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
         WHERE l.locktype = 'advisory' AND l.granted \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND l.classid::bigint = {} AND l.objid::bigint = {}",
        key >> 32,
        key & 0xffff_ffff
    );
    // The fault point says when it pauses (3 s, the dump written); end the session then.
    let mut child = child;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        child.stderr.take().expect("stderr"),
    ));
    let mut stderr = String::new();
    for line in lines.by_ref() {
        let line = line.expect("stderr line");
        stderr.push_str(&line);
        stderr.push('\n');
        if line.contains("pause-after-dump") {
            exec(&mut admin, &sql);
            break;
        }
    }
    for line in lines {
        stderr.push_str(&line.expect("stderr line"));
        stderr.push('\n');
    }
    let output = child.wait_with_output().expect("backup");
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("lost"), "{stderr}");
}
