//! Bad input through the real binary: one line naming the problem, the contract's exit
//! code, no panic, no password.

use orch_tests::orchestrator_in;

const SECRET: &str = "hunter2secret";

fn assert_one_line_error(output: &std::process::Output, code: i32, must_name: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(must_name),
        "must name `{must_name}`: {stderr}"
    );
    for text in [&stderr, &stdout] {
        assert!(
            !text.contains("panicked") && !text.contains("RUST_BACKTRACE"),
            "{text}"
        );
        assert!(!text.contains(SECRET), "password leaked: {text}");
    }
}

#[test]
fn bad_urls_exit_2_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (format!("mysql://root:{SECRET}@db/x"), "mysql"),
        (format!("redis://u:{SECRET}@h:6379/0"), "postgres://"),
        (format!("postgres://u:{SECRET}@localhost"), "one database"),
        ("sqlite://".to_string(), "sqlite://"),
        (
            format!("postgres://u:{SECRET}@[::1/x"),
            "invalid database URL",
        ),
        ("   ".to_string(), "empty"),
    ];
    for (url, named) in cases {
        for flag in ["--auth-url", "--app-url"] {
            let output = orchestrator_in(dir.path())
                .args([flag, &url, "status"])
                .output()
                .expect("run");
            assert_one_line_error(&output, 2, named);
        }
    }
    assert!(
        !dir.path().join(".data").exists(),
        "nothing may be created on a usage error"
    );
}

#[test]
fn unreachable_server_exits_4_without_the_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("postgres://someone:{SECRET}@127.0.0.1:1/nowhere");
    let output = orchestrator_in(dir.path())
        .args(["--auth-url", &url, "migrate", "--store", "auth"])
        .output()
        .expect("run");
    assert_one_line_error(&output, 4, "127.0.0.1:1");
    let output = orchestrator_in(dir.path())
        .args([
            "-vvv",
            "--auth-url",
            &url,
            "--format",
            "json",
            "status",
            "--store",
            "auth",
        ])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(4));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!all.contains(SECRET), "password leaked at -vvv: {all}");
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("status JSON even when unreachable");
    assert_eq!(json["stores"][0]["reachable"], false);
}

#[test]
fn configuration_errors_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = orchestrator_in(dir.path())
        .args(["--profile", "production", "status"])
        .output()
        .expect("run");
    assert_one_line_error(&output, 2, "production");

    std::fs::write(
        dir.path().join("orchestrator.toml"),
        "[default]\nauth_ulr = \"x.db\"\n",
    )
    .expect("write");
    let output = orchestrator_in(dir.path())
        .arg("status")
        .output()
        .expect("run");
    assert_one_line_error(&output, 2, "auth_ulr");

    std::fs::write(
        dir.path().join("orchestrator.toml"),
        "[default]\nprotected = 3\n",
    )
    .expect("write");
    let output = orchestrator_in(dir.path())
        .arg("status")
        .output()
        .expect("run");
    assert_one_line_error(&output, 2, "protected");

    let output = orchestrator_in(dir.path())
        .args(["--config", "missing.toml", "status"])
        .output()
        .expect("run");
    assert_one_line_error(&output, 2, "missing.toml");

    std::fs::write(
        dir.path().join("orchestrator.toml"),
        "[default\nauth_url = \"x",
    )
    .expect("write");
    let output = orchestrator_in(dir.path())
        .arg("status")
        .output()
        .expect("run");
    assert_one_line_error(&output, 2, "TOML parse error");
    std::fs::remove_file(dir.path().join("orchestrator.toml")).expect("rm");

    // Mistakes on the command line are one line too, naming what was wrong.
    for (args, named) in [
        (&["migrate", "--store", "billing"][..], "billing"),
        (&["bogus"], "bogus"),
        (&["status", "--frobnicate"], "--frobnicate"),
        (&["restore"], "<DIR>"),
        (&["--format", "yaml", "status"], "yaml"),
        (&["reset", "--confirm", ""], "--confirm"),
        (&["restore", "no-such-backup"], "no-such-backup"),
    ] {
        let output = orchestrator_in(dir.path())
            .args(args)
            .output()
            .expect("run");
        assert_one_line_error(&output, 2, named);
    }
    assert!(
        !dir.path().join(".data").exists(),
        "nothing may be created on a usage error"
    );
}

#[test]
fn configuration_file_profiles_and_environment_choose_the_databases() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("orchestrator.toml"),
        "[default]\nauth_url = \"sqlite://a-default.db\"\napp_url = \"sqlite://b-default.db\"\n\
         [staging]\nauth_url = \"sqlite://a-staging.db\"\n",
    )
    .expect("write");
    let (_, json) = orch_tests::json_of(
        orchestrator_in(dir.path()),
        &["--profile", "staging", "status"],
    );
    // A path written in the file is relative to the file's folder.
    let in_dir = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    assert_eq!(json["profile"], "staging");
    assert_eq!(json["stores"][0]["url"], in_dir("a-staging.db"));
    assert_eq!(json["stores"][1]["url"], in_dir("b-default.db"));

    let mut cmd = orchestrator_in(dir.path());
    cmd.env("ORCH_PROFILE", "staging")
        .env("APP_DATABASE_URL", "sqlite://from-env.db");
    let (_, json) = orch_tests::json_of(cmd, &["status"]);
    assert_eq!(json["stores"][0]["url"], in_dir("a-staging.db"));
    // The environment's stays relative to where the command runs.
    assert_eq!(json["stores"][1]["url"], "sqlite://from-env.db");
}

#[test]
fn help_teaches_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = orchestrator_in(dir.path())
        .arg("--help")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "status",
        "migrate",
        "--auth-url",
        "AUTH_DATABASE_URL",
        "Exit codes",
        "Examples",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}: {help}");
    }
    for command in [
        "status",
        "migrate",
        "adopt",
        "repair",
        "verify",
        "reset",
        "backup",
        "restore",
        "revert",
        "smoke",
        "diff",
        "squash",
        "completions",
    ] {
        let output = orchestrator_in(dir.path())
            .args([command, "--help"])
            .output()
            .expect("run");
        let help = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{command}");
        assert!(
            help.contains("Example"),
            "{command} --help has no example: {help}"
        );
    }
    let output = orchestrator_in(dir.path())
        .args(["completions", "bash"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&output.stdout).contains("orchestrator"));
}

#[test]
fn a_migration_folder_with_a_bad_name_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = dir.path().join("migrations/sqlite");
    let migration = |name: &str, up: &str| {
        let path = history.join(name);
        std::fs::create_dir_all(&path).expect("mkdir");
        std::fs::write(path.join("up.sql"), up).expect("up");
        std::fs::write(path.join("down.sql"), "SELECT 1;").expect("down");
    };
    migration(
        "2024-01-01-000001_first",
        "CREATE TABLE first_table (id TEXT);",
    );
    let db = dir.path().join("auth.sqlite3");
    let db_url = format!("sqlite://{}", db.display());
    for bad in ["notes", "draft_tables", "2024-01-02_two words"] {
        migration(bad, "CREATE TABLE sneaky (id TEXT);");
        for command in ["migrate", "diff"] {
            let output = orchestrator_in(dir.path())
                .args(["--auth-url", &db_url, command, "--store", "auth"])
                .arg("--migrations-dir")
                .arg(dir.path().join("migrations"))
                .output()
                .expect("run");
            assert_one_line_error(&output, 2, bad);
        }
        let output = orchestrator_in(dir.path())
            .args(["--auth-url", &db_url, "squash", "--store", "auth"])
            .args(["--backend", "sqlite", "--migrations-dir"])
            .arg(dir.path().join("migrations"))
            .output()
            .expect("run");
        assert_one_line_error(&output, 2, bad);
        std::fs::remove_dir_all(history.join(bad)).expect("rm");
    }
    // Nothing ran: not even the good migration before the bad one.
    if db.exists() {
        let mut conn =
            shared::Conn::establish("auth", &shared::DatabaseUrl::parse(&db_url).expect("url"))
                .expect("open");
        let tables = shared::catalog::tables(&mut conn).expect("tables");
        assert!(tables.is_empty(), "{tables:?}");
    }
    // And a folder without up.sql.
    std::fs::create_dir_all(history.join("2024-01-03-000000_empty")).expect("mkdir");
    let output = orchestrator_in(dir.path())
        .args(["--auth-url", &db_url, "migrate", "--store", "auth"])
        .arg("--migrations-dir")
        .arg(dir.path().join("migrations"))
        .output()
        .expect("run");
    assert_one_line_error(&output, 2, "has no up.sql");
}
