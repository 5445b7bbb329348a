//! Passwords never leave the process: every command, at every verbosity, in text and JSON,
//! on success and on each kind of failure, is run against a server of the test's own that
//! really checks passwords (scram-sha-256); then everything the runs wrote (stdout, stderr,
//! every file under the working folder, names and contents, backups and manifests
//! included) is searched for the password, raw and percent-encoded.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use shared::Backend;
use support::{percent_encode, Auth, OwnCluster};

/// Characters that need encoding in a URL, so both spellings are searched for.
const PASSWORD: &str = "Xq7-s3cr3t/p@ss:w%rd#Zk";
const WRONG_PASSWORD: &str = "Wr0ng-p4ssw0rd-Mv2";

/// Everything runs wrote: (what, bytes).
#[derive(Default)]
struct Written {
    outputs: Vec<(String, Vec<u8>)>,
    runs: usize,
}

impl Written {
    /// Runs `cmd`, keeps its stdout and stderr, and returns its exit code.
    fn run(&mut self, what: &str, mut cmd: Command) -> i32 {
        let output = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        self.runs += 1;
        self.outputs
            .push((format!("{what} (stdout)"), output.stdout));
        self.outputs
            .push((format!("{what} (stderr)"), output.stderr.clone()));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("stack backtrace"),
            "{what}: {stderr}"
        );
        output.status.code().unwrap_or(-1)
    }

    fn stderr_of_last(&self) -> String {
        self.outputs
            .last()
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    }
}

fn files_under(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, into);
        }
        into.push(path);
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn no_password_appears_in_anything_a_run_writes() {
    if !orch_tests::backends().contains(&Backend::Postgres) {
        return;
    }
    let Some(cluster) = OwnCluster::start("secrets", Auth::Password(PASSWORD.into())) else {
        return;
    };
    cluster.create_database("auth");
    cluster.create_database("app");
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let auth = cluster.url("auth");
    let app = cluster.url("app");
    assert!(auth.contains(&percent_encode(PASSWORD)));
    let on = |args: &[&str]| {
        let mut cmd = orch_tests::process_in(dir);
        cmd.env("AUTH_DATABASE_URL", &auth)
            .env("APP_DATABASE_URL", &app)
            .args(args);
        cmd
    };
    let mut written = Written::default();

    // Every command, successful, as flags, environment and JSON, at each verbosity.
    let migrations = dir.join("history/migrations");
    orch_tests::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/history71"),
        &migrations,
    );
    let migrations = migrations.to_string_lossy().into_owned();
    for verbosity in ["-q", "-v", "-vv", "-vvv"] {
        for format in ["text", "json"] {
            let common = [verbosity, "--format", format];
            // (migrate first: status exits 1 while migrations are pending.)
            for args in [
                &["migrate"][..],
                &["status"],
                &["verify"],
                &["smoke"],
                &["diff"],
                &["backup", "--out", "sets"],
                &["reset", "--force", "--backup-dir", "resets"],
            ] {
                let what = format!("{} {verbosity} {format}", args.join(" "));
                let mut cmd = on(&common);
                cmd.args(args);
                assert_eq!(
                    written.run(&what, cmd),
                    0,
                    "{what}: {}",
                    written.stderr_of_last()
                );
            }
        }
    }
    // With the URLs as flags and RUST_LOG at trace, too.
    let mut cmd = orch_tests::process_in(dir);
    cmd.env("RUST_LOG", "trace")
        .args(["--auth-url", &auth, "--app-url", &app, "-vvv", "status"]);
    assert_eq!(written.run("status, trace, flags", cmd), 0);
    // restore of one of the sets just written, and a squash proven on this server.
    let set = std::fs::read_dir(dir.join("sets"))
        .expect("sets")
        .flatten()
        .map(|e| e.path())
        .next()
        .expect("a backup set");
    let mut cmd = on(&["-vvv", "--format", "json", "restore"]);
    cmd.arg(&set).arg("--force");
    assert_eq!(
        written.run("restore", cmd),
        0,
        "{}",
        written.stderr_of_last()
    );
    let mut cmd = on(&["-vvv", "squash", "--store", "auth", "--backend", "postgres"]);
    cmd.args(["--migrations-dir", &migrations, "--shadow-url", &auth]);
    assert_eq!(
        written.run("squash", cmd),
        0,
        "{}",
        written.stderr_of_last()
    );

    // A password both in the user part and as `?password=`: libpq takes the query's, and
    // so do pg_dump and psql, which get theirs from the tool (a backup needs both).
    let both = format!(
        "{}?password={}",
        auth.replace(&percent_encode(PASSWORD), WRONG_PASSWORD),
        percent_encode(PASSWORD)
    );
    let mut cmd = orch_tests::process_in(dir);
    cmd.env("APP_DATABASE_URL", &app).args([
        "--auth-url",
        &both,
        "backup",
        "--store",
        "auth",
        "--out",
        "both",
    ]);
    assert_eq!(
        written.run("two passwords", cmd),
        0,
        "{}",
        written.stderr_of_last()
    );

    // Each way of getting it wrong: the error is one line, names the problem, and holds
    // neither the password nor the wrong one.
    let wrong = auth.replace(&percent_encode(PASSWORD), WRONG_PASSWORD);
    let unreachable = format!(
        "postgres://postgres:{}@127.0.0.1:1/auth",
        percent_encode(PASSWORD)
    );
    let bad_port = format!(
        "postgres://postgres:{}@127.0.0.1:99999999/auth",
        percent_encode(PASSWORD)
    );
    let bad_scheme = format!(
        "mysql://postgres:{}@127.0.0.1/auth",
        percent_encode(PASSWORD)
    );
    let cases: [(&str, String, i32, &str); 4] = [
        ("wrong password", wrong, 2, "password authentication failed"),
        ("unreachable server", unreachable, 4, "cannot connect"),
        ("malformed URL", bad_port, 2, "port"),
        ("unsupported scheme", bad_scheme, 2, "postgres"),
    ];
    for (what, url, code, names) in &cases {
        for verbosity in ["-q", "-vvv"] {
            for format in ["text", "json"] {
                let mut cmd = orch_tests::process_in(dir);
                cmd.env("APP_DATABASE_URL", &app).args([
                    "--auth-url",
                    url,
                    verbosity,
                    "--format",
                    format,
                    "migrate",
                ]);
                let label = format!("{what} {verbosity} {format}");
                assert_eq!(written.run(&label, cmd), *code, "{label}");
                let stderr = written.stderr_of_last();
                assert!(stderr.contains(names), "{label}: {stderr}");
                if verbosity == "-q" {
                    assert_eq!(stderr.trim_end().lines().count(), 1, "{label}: {stderr}");
                }
            }
        }
    }
    // A configuration file and a .env holding the password, each with a mistake in it.
    std::fs::write(
        dir.join("bad.toml"),
        format!("[default]\nauth_url = \"{auth}\"\napp_url = \"{app}\"\nprotectd = true\n"),
    )
    .expect("toml");
    let mut cmd = orch_tests::process_in(dir);
    cmd.args(["--config", "bad.toml", "-vvv", "status"]);
    assert_eq!(written.run("mistyped config key", cmd), 2);
    assert!(written.stderr_of_last().contains("protectd"));
    std::fs::write(
        dir.join("badurl.toml"),
        format!("[default]\nauth_url = \"{}\"\n", cases[2].1),
    )
    .expect("toml");
    let mut cmd = orch_tests::process_in(dir);
    cmd.args(["--config", "badurl.toml", "-vvv", "status"]);
    assert_eq!(written.run("malformed URL in the config file", cmd), 2);
    std::fs::write(
        dir.join(".env"),
        format!("AUTH_DATABASE_URL={}\n", cases[1].1),
    )
    .expect(".env");
    let mut cmd = orch_tests::process_in(dir);
    cmd.env("APP_DATABASE_URL", &app).args(["-vvv", "status"]);
    let code = written.run("unreachable URL from .env", cmd);
    assert!(
        code == 0 || code == 4,
        "status reports an unreachable store: {code}"
    );

    // Now search everything.
    let encoded = percent_encode(PASSWORD);
    let needles = [PASSWORD, encoded.as_str(), WRONG_PASSWORD];
    // The search itself finds a password where one was written on purpose.
    assert!(contains(
        &std::fs::read(dir.join(".env")).expect(".env"),
        &encoded
    ));
    for (what, bytes) in &written.outputs {
        for needle in needles {
            assert!(!contains(bytes, needle), "{what} shows a password");
        }
    }
    let mut files = Vec::new();
    files_under(dir, &mut files);
    let written_files: Vec<&PathBuf> = files
        .iter()
        // The files this test wrote with the password in them, as a user would.
        .filter(|p| {
            !["bad.toml", "badurl.toml", ".env"]
                .iter()
                .any(|f| p.ends_with(f))
        })
        .collect();
    let mut bytes_searched = 0;
    for path in &written_files {
        let name = path.to_string_lossy();
        for needle in needles {
            assert!(
                !name.contains(needle),
                "the file name {name} shows a password"
            );
        }
        if path.is_file() {
            let bytes = std::fs::read(path).expect("read");
            bytes_searched += bytes.len();
            for needle in needles {
                assert!(!contains(&bytes, needle), "{name} holds a password");
            }
        }
    }
    let manifests = written_files
        .iter()
        .filter(|p| p.ends_with("manifest.json"))
        .count();
    assert!(
        manifests >= 8,
        "the backups were written: {manifests} manifests"
    );
    println!(
        "SECRETS: {} runs, {} outputs and {} files ({} bytes, {manifests} manifests) searched: no password",
        written.runs,
        written.outputs.len(),
        written_files.len(),
        bytes_searched
    );
}
