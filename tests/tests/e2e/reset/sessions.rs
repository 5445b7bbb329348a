//! The connections a reset holds: the run's session of each store carries both the store's
//! run lock and the rebuild's transaction with its write fence, so the two cannot part
//! (a session ended under the run ends its transaction too) and a reset without a backup
//! opens one connection a store.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use diesel::sql_types::{BigInt, Bool};
use diesel::{QueryableByName, RunQueryDsl};
use orch_tests::TestPair;
use shared::{Backend, Conn};

#[derive(QueryableByName)]
struct Ours {
    /// Sessions of the run on this database.
    #[diesel(sql_type = BigInt)]
    sessions: i64,
    /// Whether one of them holds the store's run lock.
    #[diesel(sql_type = Bool)]
    run_lock: bool,
    /// Whether that same session holds the write fence (`users` or `datasets` locked
    /// EXCLUSIVE), or, with two-phase commit, a prepared transaction of ours holds it.
    #[diesel(sql_type = Bool)]
    fence: bool,
}

fn ours(conn: &mut Conn, pid: u32, run_key: i64, table: &str) -> Ours {
    let Conn::Postgres(pg) = conn else {
        unreachable!("PostgreSQL only")
    };
    diesel::sql_query(format!(
        "WITH run AS (SELECT pid FROM pg_catalog.pg_stat_activity
                       WHERE datname = current_database()
                         AND application_name LIKE 'orchestrator pid={pid} %')
         SELECT (SELECT count(*) FROM run) AS sessions,
                EXISTS (SELECT 1 FROM pg_catalog.pg_locks l JOIN run USING (pid)
                         WHERE l.locktype = 'advisory' AND l.granted
                           AND l.database = (SELECT oid FROM pg_catalog.pg_database
                                              WHERE datname = current_database())
                           AND ((l.classid::bigint << 32) | l.objid::bigint) = {run_key}) AS run_lock,
                EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                         WHERE l.relation = 'public.{table}'::regclass AND l.mode = 'ExclusiveLock'
                           AND l.granted AND (l.pid IN (SELECT pid FROM run) OR l.pid IS NULL)) AS fence"
    ))
    .get_result(pg)
    .expect("the run's sessions")
}

#[test]
fn a_reset_holds_one_session_a_store_with_its_run_lock_and_its_fence() {
    let Some(pair) = TestPair::new(Backend::Postgres, "reset_one_session") else {
        return;
    };
    super::state::seed(&pair);
    let mut child = orch_tests::process(&pair)
        .args(["reset", "--force", "--no-backup"])
        .env("ORCH_FAULT", "pause-before-commit:auth")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Paused before the first commit: both stores fenced, rebuilt and ready.
    let stderr = child.stderr.take().expect("stderr");
    let mut said = String::new();
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.expect("stderr line");
        said.push_str(&line);
        said.push('\n');
        if line.contains("fault injected: pause-before-commit:auth") {
            break;
        }
    }
    for (db, store, table) in [
        (&pair.auth, auth_db::STORE.name, "users"),
        (&pair.app, app_db::STORE.name, "datasets"),
    ] {
        let seen = ours(
            &mut db.connect(),
            child.id(),
            shared::admin::lock_key(store),
            table,
        );
        assert_eq!(seen.sessions, 1, "{store}: one session of the run: {said}");
        assert!(seen.run_lock, "{store}: it holds the run lock: {said}");
        assert!(seen.fence, "{store}: the fence is held: {said}");
    }
    // The rest of what it says (the pipe stays open until it exits).
    for line in lines {
        said.push_str(&line.expect("stderr line"));
        said.push('\n');
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "the paused reset finishes: {said}");
    super::state::assert_clean_and_verified(&pair);
}
