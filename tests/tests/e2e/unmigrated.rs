//! Stores no migration has touched: the commands that check migrated stores (`smoke`,
//! `verify`) say to run `migrate` and create nothing; `reset --dry-run` plans the reset,
//! says which stores do not exist yet, and creates nothing either (no database file, no
//! lock file, no backup folder).

use orch_tests::{for_each_backend, json_of, orchestrator, TestPair};

/// Every file under the pair's folder, and every table of its databases: what a command
/// that "creates nothing" must leave as it found.
fn footprint(pair: &TestPair) -> (Vec<String>, Vec<String>) {
    let files: Vec<String> = walkdir(pair.path())
        .into_iter()
        .map(|p| {
            p.strip_prefix(pair.path())
                .unwrap_or(&p)
                .display()
                .to_string()
        })
        .collect();
    let mut tables = Vec::new();
    if pair.backend == shared::Backend::Postgres {
        for db in [&pair.auth, &pair.app] {
            tables.extend(shared::catalog::tables(&mut db.connect()).expect("tables"));
        }
    }
    (files, tables)
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walkdir(&path));
        }
        found.push(path);
    }
    found.sort();
    found
}

#[test]
fn smoke_verify_and_a_dry_run_on_never_migrated_stores_create_nothing() {
    for_each_backend("unmigrated", |pair| {
        let before = footprint(pair);
        for command in ["smoke", "verify"] {
            let output = orchestrator(pair).arg(command).output().expect("run");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "{command}: {stderr}");
            assert!(
                stderr.contains("not migrated yet")
                    && stderr.contains("run `orchestrator migrate` first"),
                "{command} on {}: {stderr}",
                pair.backend
            );
            assert!(!stderr.contains("does not exist\n"), "{command}: {stderr}");
            assert_eq!(footprint(pair), before, "{command} created something");
        }

        let (code, plan) = json_of(orchestrator(pair), &["reset", "--dry-run"]);
        assert_eq!(code, 0, "{plan}");
        assert_eq!(plan["guard"]["passes"], true, "{plan}");
        let sqlite = pair.backend == shared::Backend::Sqlite;
        for (i, store) in [&auth_db::STORE, &app_db::STORE].into_iter().enumerate() {
            // A SQLite file not created yet; a PostgreSQL database that is there, empty.
            assert_eq!(plan["stores"][i]["exists"], !sqlite, "{plan}");
            let shipped = shared::migrations::shipped(store, pair.backend).expect("shipped");
            assert_eq!(
                plan["stores"][i]["migrations"].as_array().map(Vec::len),
                Some(shipped.len()),
                "{plan}"
            );
        }
        assert_eq!(
            plan["backup"],
            serde_json::Value::Null,
            "nothing to back up: {plan}"
        );
        assert_eq!(footprint(pair), before, "reset --dry-run created something");
    });
}
