//! `migrate` and `status` through the real binary, on both backends.

use orch_tests::{for_each_backend, json_of, orchestrator, orchestrator_in};
use shared::catalog;
use shared::OnDelete::{self, Cascade, NoAction, SetNull};

/// The contract's twelve tables, written out here rather than read from the stores, so
/// that a store that drifts from the contract fails this test.
const AUTH_TABLES: [&str; 9] = [
    "accounts",
    "api_key_credits",
    "credit_transactions",
    "sessions",
    "subscriptions",
    "teams",
    "user_credits",
    "users",
    "verifications",
];
const APP_TABLES: [&str; 3] = ["datasets", "documents", "processing_jobs"];

/// The contract's eleven foreign keys: (table, column, referenced table, ON DELETE).
const AUTH_FKS: [(&str, &str, &str, OnDelete); 9] = [
    ("accounts", "user_id", "users", Cascade),
    ("api_key_credits", "team_id", "teams", Cascade),
    ("api_key_credits", "user_id", "users", Cascade),
    ("credit_transactions", "team_id", "teams", SetNull),
    ("credit_transactions", "user_id", "users", Cascade),
    ("sessions", "user_id", "users", Cascade),
    ("teams", "owner_id", "users", Cascade),
    ("user_credits", "team_id", "teams", NoAction),
    ("user_credits", "user_id", "users", Cascade),
];
const APP_FKS: [(&str, &str, &str, OnDelete); 2] = [
    ("documents", "dataset_id", "datasets", Cascade),
    ("processing_jobs", "document_id", "documents", Cascade),
];

fn fks_of(conn: &mut shared::Conn) -> Vec<(String, String, String, OnDelete)> {
    catalog::foreign_keys(conn)
        .expect("foreign keys")
        .into_iter()
        .map(|f| {
            assert_eq!(f.ref_column, "id", "{f:?}");
            (f.table, f.column, f.ref_table, f.on_delete)
        })
        .collect()
}

fn owned(fks: &[(&str, &str, &str, OnDelete)]) -> Vec<(String, String, String, OnDelete)> {
    fks.iter()
        .map(|(t, c, r, a)| (t.to_string(), c.to_string(), r.to_string(), *a))
        .collect()
}

#[test]
fn migrate_yields_exactly_the_contract_and_twice_is_a_no_op() {
    for_each_backend("e2e_migrate_contract", |pair| {
        let (code, first) = json_of(orchestrator(pair), &["migrate"]);
        assert_eq!(code, 0, "{first}");
        assert_eq!(
            first["stores"][0]["store"], "auth",
            "auth is migrated before app"
        );
        assert_eq!(first["stores"][1]["store"], "app");
        assert_eq!(
            first["stores"][0]["applied"].as_array().map(Vec::len),
            Some(4)
        );

        let mut auth = pair.auth.connect();
        let mut app = pair.app.connect();
        assert_eq!(
            catalog::tables(&mut auth).expect("auth tables"),
            AUTH_TABLES
        );
        assert_eq!(catalog::tables(&mut app).expect("app tables"), APP_TABLES);
        assert_eq!(
            fks_of(&mut auth),
            owned(&AUTH_FKS),
            "auth FKs on {}",
            pair.backend
        );
        assert_eq!(
            fks_of(&mut app),
            owned(&APP_FKS),
            "app FKs on {}",
            pair.backend
        );
        assert_eq!(AUTH_TABLES.len() + APP_TABLES.len(), 12);
        assert_eq!(AUTH_FKS.len() + APP_FKS.len(), 11);

        let (code, second) = json_of(orchestrator(pair), &["migrate"]);
        assert_eq!(code, 0, "{second}");
        for store in second["stores"].as_array().expect("stores") {
            assert_eq!(
                store["applied"].as_array().map(Vec::len),
                Some(0),
                "{store}"
            );
        }
        assert_eq!(second["stores"][0]["already_applied"], 4);
    });
}

#[test]
fn migrate_of_one_store_leaves_the_other_alone() {
    for_each_backend("e2e_migrate_one", |pair| {
        let (code, report) = json_of(orchestrator(pair), &["migrate", "--store", "auth"]);
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["stores"].as_array().map(Vec::len), Some(1));
        let (_, status) = json_of(orchestrator(pair), &["status"]);
        assert_eq!(
            status["stores"][0]["pending"].as_array().map(Vec::len),
            Some(0),
            "{status}"
        );
        assert_eq!(
            status["stores"][1]["pending"].as_array().map(Vec::len),
            Some(3),
            "{status}"
        );
    });
}

#[test]
fn status_reports_backend_migrations_and_row_counts() {
    for_each_backend("e2e_status", |pair| {
        let (code, before) = json_of(orchestrator(pair), &["status"]);
        assert_eq!(code, 1, "pending migrations need attention: {before}");
        assert_eq!(
            before["stores"][0]["pending"].as_array().map(Vec::len),
            Some(4),
            "{before}"
        );

        orchestrator(pair).arg("migrate").assert().success();
        orch_tests::seed::contract_rows(pair);

        let (code, after) = json_of(orchestrator(pair), &["status"]);
        assert_eq!(code, 0, "{after}");
        let auth_status = &after["stores"][0];
        assert_eq!(auth_status["backend"], pair.backend.as_str());
        assert_eq!(auth_status["reachable"], true);
        assert_eq!(auth_status["applied"].as_array().map(Vec::len), Some(4));
        assert_eq!(auth_status["pending"].as_array().map(Vec::len), Some(0));
        let users = auth_status["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["table"] == "users")
            .expect("users row count");
        assert_eq!(users["rows"], 3);
        assert!(
            !auth_status["tables"]
                .as_array()
                .expect("tables")
                .iter()
                .any(|t| t["table"].as_str().is_some_and(|n| n.starts_with("__"))),
            "bookkeeping tables are not listed"
        );

        let text = orchestrator(pair).arg("status").output().expect("status");
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("up to date") && text.contains("users"),
            "{text}"
        );
    });
}

#[test]
fn embedded_default_needs_no_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, status) = json_of(orchestrator_in(dir.path()), &["status"]);
    assert_eq!(code, 1, "nothing migrated yet: {status}");
    assert_eq!(
        status["stores"][0]["exists"], false,
        "status must not create the files"
    );
    assert!(
        !dir.path().join(".data").exists(),
        "status must not create .data/"
    );

    let (code, report) = json_of(orchestrator_in(dir.path()), &["migrate"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["stores"][0]["url"], "sqlite://.data/auth.sqlite3");
    assert!(dir.path().join(".data/auth.sqlite3").is_file());
    assert!(dir.path().join(".data/app.sqlite3").is_file());
    let (_, status) = json_of(orchestrator_in(dir.path()), &["status"]);
    assert_eq!(
        status["stores"][1]["applied"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );
}

#[test]
fn both_backends_give_the_same_logical_schema() {
    let Some(pg) = orch_tests::TestPair::new(shared::Backend::Postgres, "e2e_logical_schema")
    else {
        return;
    };
    let lite = orch_tests::TestPair::new(shared::Backend::Sqlite, "e2e_logical_schema")
        .expect("sqlite pair");
    orchestrator(&pg).arg("migrate").assert().success();
    orchestrator(&lite).arg("migrate").assert().success();
    for (name, mut pg_conn, mut lite_conn) in [
        ("auth", pg.auth.connect(), lite.auth.connect()),
        ("app", pg.app.connect(), lite.app.connect()),
    ] {
        let pg_columns = catalog::columns(&mut pg_conn).expect("pg columns");
        let lite_columns = catalog::columns(&mut lite_conn).expect("sqlite columns");
        assert!(pg_columns.len() >= 10, "{name}: {pg_columns:?}");
        assert_eq!(
            pg_columns, lite_columns,
            "{name}: columns, types and nullability differ between backends"
        );
        assert_eq!(
            fks_of(&mut pg_conn),
            fks_of(&mut lite_conn),
            "{name}: foreign keys differ"
        );
    }
}

#[test]
fn a_command_limited_to_one_store_touches_nothing_of_the_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        &["migrate", "--store", "auth"][..],
        &["status", "--store", "auth"][..],
        &["backup", "--store", "auth"][..],
        &["reset", "--store", "auth", "--force"][..],
    ] {
        let output = orchestrator_in(dir.path())
            .args(args)
            .output()
            .expect("run");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let app: Vec<String> = std::fs::read_dir(dir.path().join(".data"))
            .expect(".data")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("app."))
            .collect();
        assert!(app.is_empty(), "{args:?} touched app: {app:?}");
    }
}

#[test]
fn reading_needs_no_write_access_to_the_folder() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    orchestrator_in(dir.path())
        .arg("migrate")
        .assert()
        .success();
    let data = dir.path().join(".data");
    for lock in ["auth.sqlite3.lock", "app.sqlite3.lock"] {
        std::fs::remove_file(data.join(lock)).expect("a lock file migrate made");
    }
    // The binary, where anyone may run it (the build folder may be private).
    let bin = dir.path().join("orchestrator");
    let built = orch_tests::process_in(dir.path());
    std::fs::copy(built.get_program(), &bin).expect("copy the binary");
    let chmod = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    // Root writes anywhere: the reader is then `nobody`, who may read the folder and its
    // files but write neither; anyone else gets a folder without write permission.
    chmod(dir.path(), 0o755);
    chmod(&bin, 0o755);
    chmod(&data, if root { 0o755 } else { 0o555 });
    for args in [
        &["status"][..],
        &["verify"][..],
        &["diff"][..],
        &["reset", "--dry-run"][..],
    ] {
        // The launch's isolation (none of the caller's configuration), on the copy.
        let isolated = orch_tests::process_in(dir.path());
        let mut reader = std::process::Command::new(&bin);
        reader.current_dir(dir.path()).args(args);
        for (key, value) in isolated.get_envs() {
            if value.is_none() {
                reader.env_remove(key);
            }
        }
        let mut reader = if root {
            orch_tests::as_user(&reader, "nobody")
        } else {
            reader
        };
        let output = reader.output().expect("run");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    chmod(&data, 0o755);
    assert!(
        !data.join("auth.sqlite3.lock").exists() && !data.join("app.sqlite3.lock").exists(),
        "a reader created a lock file"
    );
}
