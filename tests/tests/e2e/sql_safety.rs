//! SQL safety through the real binary: stores whose database (or file) names are hostile
//! (quotes, semicolons, spaces, `--`, upper case, `%`, `+`, a would-be
//! `"; DROP DATABASE postgres; --`) go through every command that touches them, and a
//! sentinel database created alongside comes out untouched. A name that cannot work (a
//! NUL byte) is a one-line configuration error, not a panic.
//!
//! Every PostgreSQL database here is created by the test itself (with `quote_ident`) and
//! dropped by a guard, even when the test panics.

use std::path::{Path, PathBuf};
use std::process::Output;

use orch_tests::checksums::snapshot;
use orch_tests::{exec, json_of, orchestrator_in, pg_admin_url};
use shared::{catalog, contract, Conn, DatabaseUrl};

#[path = "sql_safety/databases.rs"]
mod databases;

use databases::{create_db, database_exists, pg_admin, unique_tag};

// ---------------------------------------------------------------------------------------
// Running the binary

/// The binary in `dir`, pointed at `auth` and `app`.
fn orch(dir: &Path, auth: &str, app: &str) -> assert_cmd::Command {
    orch_tests::orchestrator_on(dir, &[("auth", auth), ("app", app)])
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_no_panic(output: &Output) {
    let all = text(output);
    assert!(
        !all.contains("panicked") && !all.contains("RUST_BACKTRACE"),
        "{all}"
    );
}

/// Runs a command that must succeed (text output, as a person would see it).
fn succeeds(mut cmd: assert_cmd::Command, args: &[&str]) -> Output {
    let output = cmd.args(args).output().expect("run the binary");
    assert_no_panic(&output);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {}", text(&output));
    output
}

/// Runs a command with `--format json` that must succeed and report `ok: true`.
fn json_ok(cmd: assert_cmd::Command, args: &[&str]) -> serde_json::Value {
    let (code, report) = json_of(cmd, args);
    assert_eq!(code, 0, "{args:?}: {report}");
    assert_eq!(report["ok"], true, "{args:?}: {report}");
    report
}

/// A configuration or usage error: exit 2, one line on stderr, no panic.
fn assert_one_line_usage_error(output: &Output, must_name: &str) {
    assert_no_panic(output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{}", text(output));
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    assert!(
        stderr.contains(must_name),
        "must name {must_name:?}: {stderr}"
    );
}

// ---------------------------------------------------------------------------------------
// What the stores hold

fn seed(auth: &mut Conn, app: &mut Conn) {
    exec(
        auth,
        "INSERT INTO users (id, email) VALUES ('u1', 'a@x'), ('u2', 'b@x'), ('u3', 'o''neil@x');
         INSERT INTO teams (id, name, owner_id) VALUES ('t1', 'team \"; DROP TABLE users; --', 'u1');
         INSERT INTO user_credits (id, user_id, credits) VALUES ('c1', 'u1', 50);
         INSERT INTO credit_transactions (id, user_id, amount) VALUES ('x1', 'u1', 50);",
    );
    exec(
        app,
        "INSERT INTO datasets (id, owner_id, team_id, name) VALUES ('d1', 'u1', 't1', 'one'), ('d2', 'u2', NULL, 'two');
         INSERT INTO documents (id, dataset_id, filename) VALUES ('doc1', 'd1', 'a''b; c.pdf');
         INSERT INTO processing_jobs (id, document_id) VALUES ('j1', 'doc1');",
    );
}

fn assert_contract(conn: &mut Conn, store: &shared::Store) {
    let check = contract::check_schema(conn, store).expect("catalog");
    assert!(check.ok(), "{}: {}", store.name, check.summary());
}

/// Runs every command against the pair, asserting what each must leave behind.
/// `work` is the binary's working directory; backups go under it.
fn every_command(
    work: &Path,
    auth_url: &str,
    app_url: &str,
    names: (&str, &str),
    connect: &dyn Fn() -> (Conn, Conn),
) {
    let bin = || orch(work, auth_url, app_url);

    // status before anything: both reachable, named exactly as created.
    let (code, report) = json_of(bin(), &["status"]);
    assert_eq!(code, 1, "nothing migrated yet: {report}");
    assert_eq!(report["stores"][0]["database"], names.0, "{report}");
    assert_eq!(report["stores"][1]["database"], names.1, "{report}");

    succeeds(bin(), &["migrate"]);
    let (mut auth, mut app) = connect();
    assert_contract(&mut auth, &auth_db::STORE);
    assert_contract(&mut app, &app_db::STORE);
    seed(&mut auth, &mut app);
    let seeded = (snapshot(&mut auth), snapshot(&mut app));
    drop((auth, app));
    assert_eq!(seeded.0.rows("users"), 3);
    assert_eq!(seeded.1.rows("datasets"), 2);

    let report = json_ok(bin(), &["status"]);
    for (i, store) in ["auth", "app"].into_iter().enumerate() {
        let s = &report["stores"][i];
        assert_eq!(s["store"], store, "{report}");
        assert_eq!(s["reachable"], true, "{report}");
        assert_eq!(s["pending"].as_array().map(Vec::len), Some(0), "{report}");
    }
    let users = report["stores"][0]["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["table"] == "users"))
        .map(|t| t["rows"].clone());
    assert_eq!(users, Some(serde_json::json!(3)), "{report}");

    succeeds(bin(), &["verify"]);
    json_ok(bin(), &["verify"]);
    json_ok(bin(), &["diff"]);
    let report = json_ok(bin(), &["smoke"]);
    assert!(
        report["steps"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s["ok"] == true)),
        "{report}"
    );
    let (mut auth, mut app) = connect();
    assert_eq!(
        (snapshot(&mut auth), snapshot(&mut app)),
        seeded,
        "smoke leaves the rows as they were"
    );
    drop((auth, app));

    // backup: the manifest names each database exactly.
    let backups = work.join("backups");
    let backups_arg = backups.to_string_lossy().into_owned();
    let report = json_ok(bin(), &["backup", "--out", &backups_arg]);
    let backup_dir = PathBuf::from(report["dir"].as_str().expect("backup dir"));
    let backup_dir = work.join(backup_dir);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup_dir.join("manifest.json")).expect("manifest"))
            .expect("manifest json");
    assert_eq!(manifest["stores"][0]["database"], names.0, "{manifest}");
    assert_eq!(manifest["stores"][1]["database"], names.1, "{manifest}");
    assert_eq!(
        manifest["stores"][0]["row_counts"]["users"], 3,
        "{manifest}"
    );
    assert_eq!(manifest["stores"][1]["row_counts"]["datasets"], 2);

    // reset: refused over rows without --force, then wipes, rebuilds and verifies.
    let reset_backups = work.join("reset backups; 'x' \"y\"");
    let reset_backups_arg = reset_backups.to_string_lossy().into_owned();
    let refused = bin()
        .args(["reset", "--backup-dir", &reset_backups_arg])
        .output()
        .expect("run");
    assert_no_panic(&refused);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    let report = json_ok(
        bin(),
        &["reset", "--force", "--backup-dir", &reset_backups_arg],
    );
    let safety = report["backup"].as_str().expect("reset backup");
    assert!(
        work.join(safety).join("manifest.json").is_file(),
        "{report}"
    );
    let (mut auth, mut app) = connect();
    assert_contract(&mut auth, &auth_db::STORE);
    assert_contract(&mut app, &app_db::STORE);
    for store in [snapshot(&mut auth), snapshot(&mut app)] {
        assert_eq!(store.total_rows(), 0, "{:?}", store.data);
    }
    drop((auth, app));

    // restore brings every row back.
    let backup_arg = backup_dir.to_string_lossy().into_owned();
    json_ok(bin(), &["restore", &backup_arg, "--force"]);
    let (mut auth, mut app) = connect();
    assert_eq!(
        (snapshot(&mut auth), snapshot(&mut app)),
        seeded,
        "restore brings back every row"
    );
    assert_contract(&mut auth, &auth_db::STORE);
    assert_contract(&mut app, &app_db::STORE);
    drop((auth, app));

    // A protected profile needs --confirm with each database's exact name.
    std::fs::write(work.join("protected.toml"), "[default]\nprotected = true\n")
        .expect("protected.toml");
    let refused = bin()
        .args([
            "--config",
            "protected.toml",
            "reset",
            "--force",
            "--no-backup",
        ])
        .output()
        .expect("run");
    assert_no_panic(&refused);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    // `--confirm=NAME`: a name may start with `-`, which `--confirm NAME` would read as a
    // flag.
    let confirms = [
        format!("--confirm={}", names.0),
        format!("--confirm={}", names.1),
    ];
    json_ok(
        bin(),
        &[
            "--config",
            "protected.toml",
            "reset",
            "--force",
            "--no-backup",
            &confirms[0],
            &confirms[1],
        ],
    );
    json_ok(
        bin(),
        &[
            "--config",
            "protected.toml",
            "restore",
            &backup_arg,
            &confirms[0],
            &confirms[1],
        ],
    );
    json_ok(bin(), &["verify"]);
    let (mut auth, mut app) = connect();
    assert_eq!((snapshot(&mut auth), snapshot(&mut app)), seeded);
}

// ---------------------------------------------------------------------------------------
// The tests

#[test]
fn hostile_postgres_database_names_are_quoted_everywhere() {
    let test = "hostile_postgres_database_names";
    let Some(mut admin) = pg_admin(test) else {
        return;
    };
    let tag = unique_tag();
    // The sentinel: a database next to the hostile ones, with a row that must survive.
    let sentinel = create_db(&mut admin, &format!("orcht_sentinel_{tag}"));
    let mut conn = Conn::establish("sentinel", &sentinel.url).expect("sentinel");
    exec(
        &mut conn,
        "CREATE TABLE canary (id INT PRIMARY KEY); INSERT INTO canary VALUES (42);",
    );
    drop(conn);

    let auth = create_db(
        &mut admin,
        &format!("orcht_{tag} x\"; DROP DATABASE postgres; --"),
    );
    let app = create_db(
        &mut admin,
        &format!("Orcht_{tag} O'Brien's \"App\"; -- +%41"),
    );

    let work = tempfile::tempdir().expect("tempdir");
    // auth: every byte of the name percent-encoded. app: written as a person would, with
    // spaces, quotes and `;` as they are and only `%` encoded (libpq decodes the path).
    let auth_url = auth.url.expose_secret().to_string();
    let app_url = format!(
        "{}/Orcht_{tag} O'Brien's \"App\"; -- +%2541",
        pg_admin_url()
            .rsplit_once('/')
            .map(|(server, _)| server.to_string())
            .expect("ORCH_TEST_PG_URL has a database")
    );
    assert_eq!(
        DatabaseUrl::parse(&app_url)
            .expect("app url")
            .database_name(),
        app.name
    );
    let connect = || {
        (
            Conn::establish("auth", &auth.url).expect("auth"),
            Conn::establish("app", &DatabaseUrl::parse(&app_url).expect("app url")).expect("app"),
        )
    };
    every_command(
        work.path(),
        &auth_url,
        &app_url,
        (&auth.name, &app.name),
        &connect,
    );

    // Nothing else was touched.
    for name in ["postgres", "template1", sentinel.name.as_str()] {
        assert!(database_exists(&mut admin, name), "{name} must still exist");
    }
    let mut conn = Conn::establish("sentinel", &sentinel.url).expect("sentinel");
    assert_eq!(
        catalog::tables(&mut conn).expect("tables"),
        ["canary".to_string()]
    );
    assert_eq!(
        catalog::row_counts(&mut conn, &["canary".to_string()]).expect("count"),
        [("canary".to_string(), 1)]
    );
    drop(conn);
    drop((auth, app));
    for name in [
        format!("orcht_{tag} x\"; DROP DATABASE postgres; --"),
        format!("Orcht_{tag} O'Brien's \"App\"; -- +%41"),
    ] {
        assert!(!database_exists(&mut admin, &name), "{name} was dropped");
    }
}

#[test]
fn more_hostile_postgres_names_and_a_name_that_looks_like_a_flag() {
    let test = "more_hostile_postgres_names";
    let Some(mut admin) = pg_admin(test) else {
        return;
    };
    let tag = unique_tag();
    let sentinel = create_db(&mut admin, &format!("orcht_sentinel_{tag}"));
    // A leading `-` (pg_dump must not read it as an option), a backslash, `$$` (the dollar
    // quoting of DO blocks), `/`, `?`, `#`, `&`, `=` and non-ASCII.
    let auth = create_db(&mut admin, &format!("--help -h x {tag} \\ $$ $orch$"));
    let app = create_db(&mut admin, &format!("Ünï 日本/{tag}?a=b&c#d '"));
    let work = tempfile::tempdir().expect("tempdir");
    let (auth_url, app_url) = (
        auth.url.expose_secret().to_string(),
        app.url.expose_secret().to_string(),
    );
    let connect = || {
        (
            Conn::establish("auth", &auth.url).expect("auth"),
            Conn::establish("app", &app.url).expect("app"),
        )
    };
    every_command(
        work.path(),
        &auth_url,
        &app_url,
        (&auth.name, &app.name),
        &connect,
    );
    assert!(database_exists(&mut admin, "postgres"));
    assert!(database_exists(&mut admin, &sentinel.name));
}

#[test]
fn hostile_sqlite_file_names() {
    if !orch_tests::backends().contains(&shared::Backend::Sqlite) {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("we ird; \"dir\" 'x' -- $$");
    std::fs::create_dir_all(&dir).expect("dir");
    let sentinel = dir.join("sentinel.sqlite3");
    {
        let url = DatabaseUrl::parse(&sentinel.to_string_lossy()).expect("sentinel url");
        let mut conn = Conn::establish("sentinel", &url).expect("sentinel");
        exec(
            &mut conn,
            "CREATE TABLE users (id TEXT PRIMARY KEY); INSERT INTO users VALUES ('keep');",
        );
    }
    let sentinel_bytes = std::fs::read(&sentinel).expect("sentinel bytes");

    let auth_path = dir.join("auth \"x'; DROP TABLE users; --.sqlite3");
    let app_path = dir.join("App; ATTACH 'evil.db' AS e; -- %41 ?a#b.sqlite3");
    let auth_url = format!("sqlite://{}", auth_path.display());
    let app_url = app_path.to_string_lossy().into_owned();
    let names = (
        "auth \"x'; DROP TABLE users; --".to_string(),
        "App; ATTACH 'evil.db' AS e; -- %41 ?a#b".to_string(),
    );
    let connect = || {
        (
            Conn::establish("auth", &DatabaseUrl::parse(&auth_url).expect("auth")).expect("auth"),
            Conn::establish("app", &DatabaseUrl::parse(&app_url).expect("app")).expect("app"),
        )
    };
    let work = root.path().join("work");
    std::fs::create_dir_all(&work).expect("work");
    every_command(&work, &auth_url, &app_url, (&names.0, &names.1), &connect);

    assert!(auth_path.is_file() && app_path.is_file());
    assert_eq!(
        std::fs::read(&sentinel).expect("sentinel bytes"),
        sentinel_bytes,
        "the sentinel file is untouched"
    );
    assert!(
        !dir.join("evil.db").exists() && !work.join("evil.db").exists(),
        "nothing was attached"
    );
}

#[test]
fn names_that_cannot_work_are_one_line_configuration_errors() {
    let work = tempfile::tempdir().expect("tempdir");
    let server = pg_admin_url()
        .rsplit_once('/')
        .map(|(server, _)| server.to_string())
        .expect("ORCH_TEST_PG_URL has a database");
    let fine = work
        .path()
        .join("app.sqlite3")
        .to_string_lossy()
        .into_owned();
    let cases = [
        // NUL: no PostgreSQL name or C string can hold it.
        (format!("{server}/a%00b"), "NUL"),
        (
            format!("{server}/x%00\"; DROP DATABASE postgres; --"),
            "NUL",
        ),
        // A `#` typed as is starts a fragment libpq would not see.
        (format!("{server}/a#b"), "%23"),
        // Two path segments are no database name (a `/` in a name is %2F).
        (format!("{server}/a/b"), "one database"),
        // A mistyped scheme is not a SQLite file to create.
        (
            "postgres ://u:hunter2@h/x\"; DROP DATABASE postgres; --".to_string(),
            "://",
        ),
    ];
    for (url, must_name) in &cases {
        for command in [&["status"][..], &["migrate"], &["reset", "--force"]] {
            let output = orch(work.path(), url, &fine)
                .args(command)
                .output()
                .expect("run");
            assert_one_line_usage_error(&output, must_name);
            assert!(
                !String::from_utf8_lossy(&output.stderr).contains("hunter2"),
                "{}",
                text(&output)
            );
        }
    }
    // A NUL in a SQLite path, through the configuration file (argv cannot carry one).
    std::fs::write(
        work.path().join("orchestrator.toml"),
        "[default]\nauth_url = \"sqlite://x\\u0000y.db\"\n",
    )
    .expect("toml");
    let output = orchestrator_in(work.path())
        .args(["migrate"])
        .output()
        .expect("run");
    assert_one_line_usage_error(&output, "NUL");
    assert!(
        !work.path().join("x").exists() && !work.path().join(".data").exists(),
        "nothing was created"
    );
}
