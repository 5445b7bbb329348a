//! The conditions of real deployments, detected before anything changes: a pooler in
//! transaction mode, a role's connection limit, a synchronous standby that is down.
//! Real PostgreSQL (the test server, a pgbouncer of the test's own, or a private server),
//! the real binary.

use crate::support;
use crate::support::pgbouncer;

use std::process::Stdio;
use std::time::{Duration, Instant};

use orch_tests::{count, exec, orchestrator, orchestrator_in, TestPair};
use shared::{Backend, Conn, DatabaseUrl};

const GENEROUS: Duration = Duration::from_secs(60);

fn seed(auth: &mut Conn, app: &mut Conn) {
    let owner = orch_tests::seed::user(auth, "a@x", 0);
    orch_tests::seed::user(auth, "b@x", 0);
    orch_tests::seed::dataset(app, auth, &owner, None, "one");
}

fn rows(auth: &mut Conn, app: &mut Conn) -> (i64, i64) {
    (count(auth, "users"), count(app, "datasets"))
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The binary pointed at the pair's databases through `bouncer`.
fn through(pair: &TestPair, bouncer: &pgbouncer::Bouncer) -> assert_cmd::Command {
    let auth = bouncer.url(&pair.auth.url.database_name());
    let app = bouncer.url(&pair.app.url.database_name());
    orch_tests::orchestrator_on(pair.path(), &[("auth", &auth), ("app", &app)])
}

fn advisory_locks(conn: &mut Conn) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel::RunQueryDsl;
    let Conn::Postgres(pg) = conn else { return 0 };
    diesel::sql_query(
        "SELECT count(*)::bigint AS n FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .get_result::<N>(pg)
    .expect("locks")
    .n
}

#[test]
fn a_transaction_pooler_is_refused_before_anything() {
    let Some(pair) = TestPair::new(Backend::Postgres, "deploy_txn_pooler") else {
        return;
    };
    let Some(bouncer) = pgbouncer::Bouncer::start("deploy_txn_pooler", "transaction") else {
        return;
    };
    orchestrator(&pair).arg("migrate").assert().success();
    let (mut auth, mut app) = (pair.auth.connect(), pair.app.connect());
    seed(&mut auth, &mut app);
    for command in ["reset", "status", "verify", "migrate", "backup"] {
        let mut cmd = through(&pair, &bouncer);
        cmd.arg(command);
        if command == "reset" {
            cmd.arg("--force");
        }
        let output = cmd.output().expect("run");
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("transaction or statement mode") && stderr.contains("session"),
            "{command}: {stderr}"
        );
    }
    assert_eq!(rows(&mut auth, &mut app), (2, 1), "nothing was changed");
    // No run left a lock on a pooled server session for the next run to trip over.
    assert_eq!(advisory_locks(&mut auth) + advisory_locks(&mut app), 0);
    orchestrator(&pair).arg("verify").assert().success();
}

#[test]
fn a_session_pooler_works_and_two_resets_through_it_never_interleave() {
    let Some(pair) = TestPair::new(Backend::Postgres, "deploy_session_pooler") else {
        return;
    };
    let Some(bouncer) = pgbouncer::Bouncer::start("deploy_session_pooler", "session") else {
        return;
    };
    through(&pair, &bouncer).arg("migrate").assert().success();
    seed(&mut pair.auth.connect(), &mut pair.app.connect());
    for command in ["status", "verify", "backup", "smoke", "diff"] {
        let output = through(&pair, &bouncer).arg(command).output().expect("run");
        assert!(output.status.success(), "{command}: {}", stderr_of(&output));
    }
    let spawn = |fault: Option<&str>| {
        let mut cmd = orch_tests::process_in(pair.path());
        cmd.arg("--auth-url")
            .arg(bouncer.url(&pair.auth.url.database_name()))
            .arg("--app-url")
            .arg(bouncer.url(&pair.app.url.database_name()))
            .args(["reset", "--force", "--no-backup"])
            .env("ORCH_LOCK_TIMEOUT_SECS", "60")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(f) = fault {
            cmd.env("ORCH_FAULT", f);
        }
        cmd.spawn().expect("spawn reset")
    };
    for _round in 0..3 {
        // The first pauses before its commit, holding both locks; the second must wait.
        let first = spawn(Some("pause-before-commit:auth"));
        std::thread::sleep(Duration::from_millis(800));
        let second = spawn(None);
        let first = first.wait_with_output().expect("first");
        let second = second.wait_with_output().expect("second");
        assert!(first.status.success(), "{}", stderr_of(&first));
        assert!(second.status.success(), "{}", stderr_of(&second));
        let mut auth = pair.auth.connect();
        assert_eq!(
            count(&mut auth, "users"),
            0,
            "both resets completed, in turn"
        );
        assert!(shared::admin::journal_entries(&mut auth)
            .expect("journal")
            .is_empty());
        through(&pair, &bouncer).arg("verify").assert().success();
        seed(&mut auth, &mut pair.app.connect());
    }
}

/// A role of the test's own, owning the pair's databases, with a connection limit.
struct LimitedRole {
    name: String,
    admin: Conn,
}

impl LimitedRole {
    fn create(pair: &TestPair) -> LimitedRole {
        let name = format!("orch_limited_{}", std::process::id());
        let mut admin = pair.auth.connect();
        exec(
            &mut admin,
            &format!(
                "DROP ROLE IF EXISTS {name}; CREATE ROLE {name} LOGIN PASSWORD 'limited-pw'; \
                 ALTER DATABASE {} OWNER TO {name}; ALTER DATABASE {} OWNER TO {name};",
                shared::db::quote_ident(&pair.auth.url.database_name()),
                shared::db::quote_ident(&pair.app.url.database_name()),
            ),
        );
        LimitedRole { name, admin }
    }

    fn limit(&mut self, n: i64) {
        exec(
            &mut self.admin,
            &format!("ALTER ROLE {} CONNECTION LIMIT {n}", self.name),
        );
    }

    /// `url` with this role as its user.
    fn url(&self, url: &DatabaseUrl) -> String {
        let raw = url.expose_secret();
        let (scheme, rest) = raw.split_once("://").expect("scheme");
        let (_, host) = rest.rsplit_once('@').unwrap_or(("", rest));
        format!("{scheme}://{}:limited-pw@{host}", self.name)
    }

    fn run(&self, pair: &TestPair, args: &[&str]) -> std::process::Output {
        orchestrator_in(pair.path())
            .arg("--auth-url")
            .arg(self.url(&pair.auth.url))
            .arg("--app-url")
            .arg(self.url(&pair.app.url))
            .args(args)
            .output()
            .expect("run")
    }
}

#[test]
fn a_connection_limit_below_a_commands_needs_refuses_it_before_any_change() {
    let Some(pair) = TestPair::new(Backend::Postgres, "deploy_conn_limit") else {
        return;
    };
    let mut role = LimitedRole::create(&pair);
    let output = role.run(&pair, &["migrate"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let (mut auth, mut app) = (pair.auth.connect(), pair.app.connect());
    exec(&mut auth, &format!("SET ROLE {}", role.name));
    exec(&mut app, &format!("SET ROLE {}", role.name));
    seed(&mut auth, &mut app);
    // Each command holds at least two connections a store, both stores under one role.
    for (args, limit) in [
        (vec!["reset", "--force"], 3),
        (vec!["backup"], 2),
        (vec!["verify"], 3),
        (vec!["migrate"], 1),
    ] {
        role.limit(limit);
        let output = role.run(&pair, &args);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(4), "{args:?}: {stderr}");
        assert!(
            stderr.contains("needs")
                && stderr.contains("allows")
                && stderr.contains("nothing was changed"),
            "{args:?}: {stderr}"
        );
        assert_eq!(rows(&mut auth, &mut app), (2, 1), "{args:?}: rows intact");
    }
    assert!(
        std::fs::read_dir(pair.path().join(".data/backups"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true),
        "no backup was written"
    );
    // At exactly what they need, they run: the counts are not too low.
    role.limit(4);
    for args in [&["migrate"][..], &["verify"]] {
        let output = role.run(&pair, args);
        assert!(output.status.success(), "{args:?}: {}", stderr_of(&output));
    }
    // With room to spare the same role works.
    role.limit(12);
    let output = role.run(&pair, &["reset", "--force"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    drop((auth, app));
    let name = role.name.clone();
    drop(role);
    // The role owns the databases: they go first (with the pair), then the role.
    drop(pair);
    let admin_url = DatabaseUrl::parse(&orch_tests::pg_admin_url()).expect("admin url");
    let mut admin = Conn::establish("admin", &admin_url).expect("admin");
    exec(&mut admin, &format!("DROP ROLE IF EXISTS {name}"));
}

#[test]
fn a_synchronous_standby_that_is_down_bounds_the_run_and_prepares_nothing() {
    let Some(cluster) = support::OwnCluster::start("deploy_sync_standby", support::Auth::Trust)
    else {
        return;
    };
    for prepared in [0, 64] {
        cluster.restart_with(&format!("-c max_prepared_transactions={prepared}"));
        let (auth_db, app_db) = (format!("auth_{prepared}"), format!("app_{prepared}"));
        cluster.create_database(&auth_db);
        cluster.create_database(&app_db);
        let (auth_url, app_url) = (cluster.url(&auth_db), cluster.url(&app_db));
        let dir = tempfile::tempdir().expect("tempdir");
        let run = |args: &[&str]| {
            orchestrator_in(dir.path())
                .arg("--auth-url")
                .arg(&auth_url)
                .arg("--app-url")
                .arg(&app_url)
                .env("ORCH_LOCK_TIMEOUT_SECS", "3")
                .args(args)
                .output()
                .expect("run")
        };
        assert!(run(&["migrate"]).status.success());
        let connect = |url: &str| {
            Conn::establish("test", &DatabaseUrl::parse(url).expect("url")).expect("connect")
        };
        let (mut auth, mut app) = (connect(&auth_url), connect(&app_url));
        seed(&mut auth, &mut app);
        exec(
            &mut auth,
            "ALTER SYSTEM SET synchronous_standby_names = 'nosuch'",
        );
        exec(&mut auth, "SELECT pg_reload_conf()");
        std::thread::sleep(Duration::from_millis(500));
        for args in [&["reset", "--force"][..], &["migrate"], &["backup"]] {
            let started = Instant::now();
            let output = run(args);
            let stderr = stderr_of(&output);
            assert!(
                started.elapsed() < GENEROUS,
                "{args:?} took {:?}",
                started.elapsed()
            );
            assert_eq!(
                output.status.code(),
                Some(4),
                "{prepared}: {args:?}: {stderr}"
            );
            assert!(
                stderr.contains("synchronous") && stderr.contains("nothing was changed"),
                "{stderr}"
            );
        }
        assert_eq!(rows(&mut auth, &mut app), (2, 1), "{prepared}: rows intact");
        for conn in [&mut auth, &mut app] {
            assert!(
                shared::admin::prepared_transactions(conn)
                    .expect("pg_prepared_xacts")
                    .is_empty(),
                "{prepared}: no prepared transaction"
            );
        }
        exec(&mut auth, "ALTER SYSTEM RESET synchronous_standby_names");
        exec(&mut auth, "SELECT pg_reload_conf()");
    }

    // A standby that is connected, named, and never confirms (pg_receivewal reports no
    // flush position without --synchronous): only an actual commit can tell, and it is
    // cut off at the bound.
    let Some(receivewal) = support::server_program("pg_receivewal") else {
        assert!(
            !orch_tests::pg_required(),
            "PostgreSQL is required but pg_receivewal was not found"
        );
        return;
    };
    let (auth_url, app_url) = (cluster.url("auth_64"), cluster.url("app_64"));
    let wal = tempfile::tempdir().expect("tempdir");
    let _standby = Killed(
        std::process::Command::new(receivewal)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &cluster.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg("-D")
            .arg(wal.path())
            .arg("--no-sync")
            .env("PGAPPNAME", "nosuch")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pg_receivewal"),
    );
    let mut auth =
        Conn::establish("test", &DatabaseUrl::parse(&auth_url).expect("url")).expect("connect");
    let mut app =
        Conn::establish("test", &DatabaseUrl::parse(&app_url).expect("url")).expect("connect");
    let deadline = Instant::now() + GENEROUS;
    while count_where(
        &mut auth,
        "pg_stat_replication",
        "application_name = 'nosuch'",
    ) == 0
    {
        assert!(Instant::now() < deadline, "pg_receivewal never connected");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Created before commits wait for the standby, which would hold this one too.
    exec(&mut auth, "CREATE ROLE orch_plain LOGIN");
    exec(
        &mut auth,
        "ALTER SYSTEM SET synchronous_standby_names = 'nosuch'",
    );
    exec(&mut auth, "SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(500));
    // A role that may read pg_stat_replication's states is told at once; any other role
    // (which sees only that a standby is connected) by a commit cut off at the bound.
    let dir = tempfile::tempdir().expect("tempdir");
    for (user, says) in [
        (
            "postgres",
            "none of the 1 connected standby(s) is synchronous",
        ),
        ("orch_plain", "none confirmed a commit within 3s"),
    ] {
        let as_user = |url: &str| url.replacen("postgres@", &format!("{user}@"), 1);
        let started = Instant::now();
        let output = orchestrator_in(dir.path())
            .arg("--auth-url")
            .arg(as_user(&auth_url))
            .arg("--app-url")
            .arg(as_user(&app_url))
            .env("ORCH_LOCK_TIMEOUT_SECS", "3")
            .args(["reset", "--force"])
            .output()
            .expect("reset");
        let stderr = stderr_of(&output);
        assert!(started.elapsed() < GENEROUS);
        assert_eq!(output.status.code(), Some(4), "{user}: {stderr}");
        assert!(stderr.contains(says), "{user}: {stderr}");
    }
    assert_eq!(rows(&mut auth, &mut app), (2, 1), "rows intact");
    assert!(shared::admin::prepared_transactions(&mut auth)
        .expect("prepared")
        .is_empty());
}

/// A child process killed when dropped, a failed assertion included.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn count_where(conn: &mut Conn, table: &str, filter: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel::RunQueryDsl;
    let Conn::Postgres(pg) = conn else { return 0 };
    diesel::sql_query(format!(
        "SELECT count(*)::bigint AS n FROM {table} WHERE {filter}"
    ))
    .get_result::<N>(pg)
    .expect("count")
    .n
}
