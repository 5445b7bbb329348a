//! `squash` through the real binary, on both backends: the 71-migration fixture and copies
//! of the real auth and app histories (the crates' own folders are never rewritten here).

use std::path::{Path, PathBuf};

use orch_tests::{exec, for_each_backend, json_of, pg_admin_url, test_db, TestDb, TestPair};
use shared::catalog;

fn subdirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The binary with `db` as the auth database.
fn on(pair: &TestPair, db: &TestDb) -> assert_cmd::Command {
    let (auth, app) = (db.url_string(), pair.app.url_string());
    orch_tests::orchestrator_on(pair.path(), &[("auth", &auth), ("app", &app)])
}

fn squash_case(source: &Path, test: &str) {
    for_each_backend(test, |pair| {
        let backend = pair.backend.as_str();
        let migrations: PathBuf = pair.path().join("work/migrations");
        orch_tests::copy_dir(source, &migrations);
        let dir = migrations.to_string_lossy().into_owned();
        let old_count = subdirs(&migrations.join(backend)).len();
        assert!(old_count >= 2, "{source:?}");

        // Two databases that ran the old history; one of them then drifts.
        let (code, report) = json_of(
            on(pair, &pair.auth),
            &["migrate", "--store", "auth", "--migrations-dir", &dir],
        );
        assert_eq!(code, 0, "{report}");
        assert_eq!(
            report["stores"][0]["applied"].as_array().map(Vec::len),
            Some(old_count)
        );
        let drifted = test_db(pair.backend, test, "drifted", pair.path()).expect("db");
        on(pair, &drifted)
            .args(["migrate", "--store", "auth", "--migrations-dir", &dir])
            .assert()
            .success();
        let mut conn = drifted.connect();
        let first_table = catalog::tables(&mut conn).expect("tables")[0].clone();
        exec(
            &mut conn,
            &format!("ALTER TABLE {first_table} ADD COLUMN drift_col TEXT"),
        );

        let admin = pg_admin_url();
        let (code, report) = json_of(
            on(pair, &pair.auth),
            &[
                "squash",
                "--store",
                "auth",
                "--backend",
                backend,
                "--migrations-dir",
                &dir,
                "--shadow-url",
                &admin,
                "--name",
                "baseline",
            ],
        );
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["backends"][0]["replaced"], old_count, "{report}");
        let now = subdirs(&migrations.join(backend));
        assert_eq!(now.len(), 1, "one baseline left: {now:?}");
        assert!(now[0].ends_with("_baseline"), "{now:?}");
        let archive = pair.path().join("work/migrations_archive").join(backend);
        let archived = subdirs(&archive);
        assert_eq!(archived.len(), old_count);
        assert!(
            archived.iter().all(|old| old.as_str() < now[0].as_str()),
            "the baseline sorts after every archived migration"
        );
        assert!(migrations.join(backend).join("squash.json").is_file());
        if pair.backend == shared::Backend::Postgres {
            assert_definitions_recorded_for_the_baseline(source, &migrations);
        }

        // A fresh database built from the baseline has the old history's schema.
        let fresh = test_db(pair.backend, test, "fresh", pair.path()).expect("db");
        let (code, report) = json_of(
            on(pair, &fresh),
            &["migrate", "--store", "auth", "--migrations-dir", &dir],
        );
        assert_eq!(code, 0, "{report}");
        assert_eq!(
            report["stores"][0]["applied"].as_array().map(Vec::len),
            Some(1)
        );
        let archive_root = pair.path().join("work/migrations_archive");
        let (code, report) = json_of(
            on(pair, &fresh),
            &[
                "diff",
                "--store",
                "auth",
                "--migrations-dir",
                &archive_root.to_string_lossy(),
            ],
        );
        assert_eq!(
            code, 0,
            "baseline vs archived history on {backend}: {report}"
        );

        // The database that ran the old history is recognised without running anything.
        let (code, report) = json_of(
            on(pair, &pair.auth),
            &["migrate", "--store", "auth", "--migrations-dir", &dir],
        );
        assert_eq!(code, 0, "{report}");
        assert_eq!(
            report["stores"][0]["applied"].as_array().map(Vec::len),
            Some(0)
        );
        let baseline_version = now[0].split('_').next().expect("version").to_string();
        assert_eq!(
            report["stores"][0]["baseline_recognised"],
            baseline_version.as_str()
        );
        assert_eq!(
            catalog::applied_versions(&mut pair.auth.connect()).expect("versions"),
            [baseline_version]
        );

        // The drifted one is told so and left alone.
        let out = on(pair, &drifted)
            .args(["migrate", "--store", "auth", "--migrations-dir", &dir])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("drifted") && stderr.contains("drift_col"),
            "{stderr}"
        );
        assert_eq!(
            catalog::applied_versions(&mut drifted.connect())
                .expect("versions")
                .len(),
            old_count,
            "nothing recorded on the drifted database"
        );
    });
}

/// A PostgreSQL squash records the baseline's definitions (what a repair writes) for the
/// new history; where the history had a record, the SQL is the same as before.
fn assert_definitions_recorded_for_the_baseline(source: &Path, migrations: &Path) {
    use shared::repair::recorded::{dir_fingerprint, Recorded, RECORDED_DEFINITIONS};
    let read = |path: PathBuf| {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        Recorded::from_json(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
    };
    let now = read(migrations.join(RECORDED_DEFINITIONS));
    let fingerprint = dir_fingerprint(&migrations.join("postgres")).expect("fingerprint");
    assert_eq!(
        now.history, fingerprint,
        "recorded for the squashed history"
    );
    if source.join(RECORDED_DEFINITIONS).is_file() {
        let before = read(source.join(RECORDED_DEFINITIONS));
        assert_ne!(before.history, now.history);
        assert_eq!(
            Recorded {
                history: now.history.clone(),
                ..before
            },
            now,
            "the baseline makes the SQL the old history made"
        );
    }
}

#[test]
fn squash_of_the_71_migration_fixture_gives_the_same_schema() {
    squash_case(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/history71"),
        "e2e_squash71",
    );
}

#[test]
fn squash_of_copies_of_the_real_histories_gives_the_same_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    squash_case(&root.join("auth-db/migrations"), "e2e_squash_auth");
    squash_case(&root.join("app-db/migrations"), "e2e_squash_app");
}

/// Every file below `dir` with its contents, for "nothing was touched" assertions.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(tree(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).expect("read")));
        }
    }
    out.sort();
    out
}

#[test]
fn a_baseline_that_fails_its_proof_is_refused_and_nothing_is_touched() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/history71");
    for_each_backend("squash_refused", |pair| {
        let backend = pair.backend.as_str();
        let migrations = pair.path().join("work/migrations");
        orch_tests::copy_dir(&source, &migrations);
        let before = tree(&migrations);
        let dir = migrations.to_string_lossy().into_owned();
        let admin = pg_admin_url();
        let output = on(pair, &pair.auth)
            .env("ORCH_FAULT", "squash-drift:auth")
            .args([
                "squash",
                "--store",
                "auth",
                "--backend",
                backend,
                "--migrations-dir",
                &dir,
                "--shadow-url",
                &admin,
                "--name",
                "baseline",
            ])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("refusing to squash") && stderr.contains("squash_fault_extra"),
            "{stderr}"
        );
        assert_eq!(
            tree(&migrations),
            before,
            "the history must be left exactly as it was"
        );
        assert!(
            !pair.path().join("work/migrations_archive").exists(),
            "nothing archived"
        );
    });
}
