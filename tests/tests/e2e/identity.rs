//! Which database each store really is, checked before anything: two stores that are one
//! database (however the URLs or paths spell it, a pooler in front included) and swapped
//! URLs exit 2 naming both stores, and change nothing. Real PostgreSQL and SQLite files,
//! the real binary.

use crate::support::pgbouncer;

use std::path::Path;

use orch_tests::{for_each_backend, orchestrator, orchestrator_in, test_db, TestPair};
use shared::{catalog, Backend, DatabaseUrl};

/// Every command that connects to both stores, as run here.
const COMMANDS: [&[&str]; 9] = [
    &["status"],
    &["verify"],
    &["migrate"],
    &["reset", "--force"],
    &["reset", "--dry-run"],
    &["backup"],
    &["smoke"],
    &["diff"],
    &["recover"],
];

fn run_in(dir: &Path, auth: &str, app: &str, args: &[&str]) -> (i32, String) {
    let output = orchestrator_in(dir)
        .args(["--auth-url", auth, "--app-url", app])
        .args(args)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    (output.status.code().unwrap_or(-1), stderr)
}

/// Runs every command on `auth`/`app` and expects each refused with exit 2, one line
/// naming both stores and containing `says`.
fn all_refused(dir: &Path, auth: &str, app: &str, says: &str) {
    for args in COMMANDS {
        let (code, stderr) = run_in(dir, auth, app, args);
        assert_eq!(code, 2, "{args:?} with {auth} and {app}: {stderr}");
        assert!(
            stderr.contains(says)
                && stderr.contains("auth")
                && stderr.contains("app")
                && stderr.contains("nothing was changed")
                && stderr.trim().lines().count() == 1,
            "{args:?}: {stderr}"
        );
    }
}

/// Other spellings of a PostgreSQL URL that lead to the same database: another name for
/// the loopback host, the host as a parameter, a parameter that changes nothing.
fn respellings(url: &DatabaseUrl) -> Vec<String> {
    let raw = url.expose_secret();
    let sep = if raw.contains('?') { '&' } else { '?' };
    let mut spelled = vec![format!("{raw}{sep}application_name=spelled_differently")];
    if let Some((host, port)) = url.explicit_tcp_endpoint() {
        let other = match host.as_str() {
            "127.0.0.1" => Some("localhost"),
            "localhost" => Some("127.0.0.1"),
            _ => None,
        };
        if let Some(other) = other {
            spelled.push(raw.replacen(&format!("@{host}"), &format!("@{other}"), 1));
        }
        // The authority's host is only a placeholder here: libpq goes where ?host= says.
        let moved = raw.replacen(&format!("@{host}:{port}"), "@placeholder.invalid", 1);
        if moved != raw {
            spelled.push(format!("{moved}{sep}host={host}&port={port}"));
        }
    }
    spelled
}

#[test]
fn two_stores_in_one_postgres_database_are_refused_however_spelled() {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = test_db(Backend::Postgres, "identity_same_pg", "one", dir.path()) else {
        return;
    };
    let url = db.url_string();
    let spellings = respellings(&db.url);
    assert!(spellings.len() >= 2, "{spellings:?}");
    all_refused(dir.path(), &url, &url, "resolve to the same database");
    for other in &spellings {
        all_refused(dir.path(), &url, other, "resolve to the same database");
        all_refused(dir.path(), other, &url, "resolve to the same database");
    }
    // Nothing was created, not even the bookkeeping tables a migrate makes first.
    assert!(catalog::all_tables(&mut db.connect())
        .expect("tables")
        .is_empty());
    // Two databases on one server are two stores.
    let Some(second) = test_db(Backend::Postgres, "identity_same_pg", "two", dir.path()) else {
        return;
    };
    let (code, stderr) = run_in(dir.path(), &url, &second.url_string(), &["migrate"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn one_database_behind_a_pooler_and_direct_is_one_database() {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = test_db(Backend::Postgres, "identity_pooler", "one", dir.path()) else {
        return;
    };
    let Some(bouncer) = pgbouncer::Bouncer::start("identity_pooler", "session") else {
        return;
    };
    let pooled = bouncer.url(&db.url.database_name());
    all_refused(
        dir.path(),
        &db.url_string(),
        &pooled,
        "resolve to the same database",
    );
    assert!(catalog::all_tables(&mut db.connect())
        .expect("tables")
        .is_empty());
}

#[test]
fn two_stores_in_one_sqlite_file_are_refused_however_spelled() {
    if !orch_tests::backends().contains(&Backend::Sqlite) {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let root = std::fs::canonicalize(dir.path()).expect("real path");
    std::fs::create_dir(root.join("sub")).expect("sub");
    let file = root.join("one.sqlite3");
    std::fs::write(&file, b"").expect("file");
    std::os::unix::fs::symlink(&file, root.join("link.sqlite3")).expect("symlink");
    std::fs::hard_link(&file, root.join("hard.sqlite3")).expect("hard link");
    let url = format!("sqlite://{}", file.display());
    for other in [
        file.display().to_string(),
        format!("sqlite://{}/./one.sqlite3", root.display()),
        format!("{}/sub/../one.sqlite3", root.display()),
        format!("sqlite://{}/link.sqlite3", root.display()),
        format!("sqlite://{}/hard.sqlite3", root.display()),
    ] {
        all_refused(&root, &url, &other, "are the same SQLite file");
    }
    assert_eq!(std::fs::read(&file).expect("file"), b"", "nothing written");
    // A file not created yet, under two spellings: refused, and still not created.
    let new = root.join("new.sqlite3");
    all_refused(
        &root,
        &new.display().to_string(),
        &format!("{}/sub/../new.sqlite3", root.display()),
        "are the same SQLite file",
    );
    let names: Vec<String> = std::fs::read_dir(&root)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("new"))
        .collect();
    assert!(names.is_empty(), "created: {names:?}");
}

fn tables(pair: &TestPair) -> (Vec<String>, Vec<String>) {
    (
        catalog::all_tables(&mut pair.auth.connect()).expect("auth tables"),
        catalog::all_tables(&mut pair.app.connect()).expect("app tables"),
    )
}

#[test]
fn swapped_urls_are_refused_naming_both_stores() {
    for_each_backend("identity_swapped", |pair| {
        orchestrator(pair).arg("migrate").assert().success();
        orch_tests::seed::contract_rows(pair);
        let before = tables(pair);
        let (auth, app) = (pair.auth.url_string(), pair.app.url_string());
        // Both ways round.
        all_refused(pair.path(), &app, &auth, "look swapped");
        let (_, stderr) = run_in(pair.path(), &app, &auth, &["status"]);
        assert!(
            stderr.contains(&format!(
                "the auth URL {} leads to a database",
                pair.app.url
            )) && stderr.contains("holds the app store's tables and migration history")
                && stderr.contains("--auth-url")
                && stderr.contains("APP_DATABASE_URL"),
            "{stderr}"
        );
        // One store pointed at the other's database, the other at a fresh one.
        let fresh = test_db(pair.backend, "identity_swapped", "fresh", pair.path())
            .expect("fresh database");
        let fresh_url = fresh.url_string();
        all_refused(pair.path(), &fresh_url, &auth, "look swapped");
        all_refused(pair.path(), &app, &fresh_url, "look swapped");
        assert_eq!(tables(pair), before, "nothing was changed");
        // A history given by --migrations-dir may be anyone's (the squash tests run app's
        // as auth): that store is not judged against the shipped histories.
        let history = pair.path().join("app-history");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        orch_tests::copy_dir(&root.join("app-db/migrations"), &history);
        let dir = history.to_string_lossy().into_owned();
        let args = ["migrate", "--store", "auth", "--migrations-dir", &dir];
        let (code, stderr) = run_in(pair.path(), &app, &fresh_url, &args);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(tables(pair), before, "up to date: nothing to apply");
        // Put right, everything holds.
        orchestrator(pair).arg("verify").assert().success();
    });
}
