//! SIGKILL at random moments of `migrate` and `squash` of the 71-migration fixture. A
//! killed migrate leaves a prefix of the history (each migration commits whole); a killed
//! squash leaves the old history or the proven baseline, never half a folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use orch_tests::{for_each_backend, orchestrator_in, pg_admin_url, test_db, TestDb, TestPair};
use shared::history::History;
use shared::schema::{self, SchemaModel};
use shared::{catalog, Backend};

use super::common::{
    assert_nothing_left, kill_delay, on, pair_cmd, run_and_kill, timed, trials, Outcome,
};

/// The 71-migration fixture: a long history whose migrate and squash take long enough to
/// be killed in the middle.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/history71")
}

fn fixture_versions(backend: Backend) -> Vec<String> {
    let dir = fixture().join(backend.as_str());
    History::Dir(&dir)
        .versions(backend)
        .expect("fixture versions")
        .into_iter()
        .map(|(v, _)| v)
        .collect()
}

fn model_of(db: &TestDb) -> SchemaModel {
    schema::introspect(&mut db.connect()).expect("introspect")
}

/// The schema a fresh database has after the fixture's history up to `up_to` (all of it
/// when `None`), built in-process on a database of its own.
fn fixture_model(pair: &TestPair, label: &str, up_to: Option<&str>) -> SchemaModel {
    let db = test_db(pair.backend, "kill_ref", label, pair.path()).expect("db");
    let dir = fixture().join(pair.backend.as_str());
    shared::history::run(&mut db.connect(), History::Dir(&dir), up_to, |_| {}).expect("replay");
    model_of(&db)
}

#[test]
fn sigkill_during_migrate_leaves_a_prefix_of_the_history_that_the_next_run_completes() {
    let trials = trials();
    for_each_backend("kill_migrate", |pair| {
        let config = orch_tests::configuration(&pair.auth);
        let fixture = fixture().to_string_lossy().into_owned();
        let args = ["migrate", "--store", "auth", "--migrations-dir", &fixture];
        let versions = fixture_versions(pair.backend);
        let complete = fixture_model(pair, "complete", None);
        let calibration = test_db(pair.backend, "kill_migrate", "cal", pair.path()).expect("db");
        let full = timed(
            on(pair.path(), &calibration, &pair.app, &args),
            "calibration migrate",
        );
        assert!(schema::compare(&complete, &model_of(&calibration)).is_empty());
        let (mut untouched, mut partial, mut finished) = (0, 0, 0);
        for trial in 0..trials {
            let context = format!("migrate trial {trial} on {config}");
            let db = test_db(
                pair.backend,
                "kill_migrate",
                &format!("t{trial}"),
                pair.path(),
            )
            .expect("db");
            run_and_kill(
                on(pair.path(), &db, &pair.app, &args),
                kill_delay(trial, full),
            );
            assert_nothing_left(&db, &context);
            // What was applied is a prefix of the history, and the schema is exactly what
            // that prefix makes: each migration committed whole or not at all.
            let mut applied = catalog::applied_versions(&mut db.connect()).unwrap_or_default();
            applied.sort();
            assert_eq!(
                applied[..],
                versions[..applied.len()],
                "{context}: applied migrations are not a prefix of the history"
            );
            let expected = match applied.last() {
                None => {
                    untouched += 1;
                    let empty =
                        test_db(pair.backend, "kill_migrate", "empty", pair.path()).expect("db");
                    model_of(&empty)
                }
                Some(last) if applied.len() == versions.len() => {
                    let _ = last;
                    finished += 1;
                    complete.clone()
                }
                Some(last) => {
                    partial += 1;
                    fixture_model(pair, &format!("p{trial}"), Some(last))
                }
            };
            let differences = schema::compare(&expected, &model_of(&db));
            assert!(
                differences.is_empty(),
                "{context}: the schema is not what the {} applied migration(s) make: {differences:?}",
                applied.len()
            );
            // The next run completes it.
            timed(on(pair.path(), &db, &pair.app, &args), &context);
            assert!(
                schema::compare(&complete, &model_of(&db)).is_empty(),
                "{context}"
            );
            assert_eq!(
                catalog::applied_versions(&mut db.connect())
                    .expect("applied")
                    .len(),
                versions.len()
            );
        }
        println!(
            "KILL TRIALS migrate {config}: {trials} trials of the {}-migration history, undisturbed run {} ms: \
             {untouched} killed before the first migration, {partial} killed part way (a prefix applied, schema exact), \
             {finished} finished; every one completed by the next run",
            versions.len(),
            full.as_millis()
        );
    });
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A fresh copy of the fixture to squash, under `root`.
fn fixture_copy(root: &Path) -> PathBuf {
    let migrations = root.join("migrations");
    orch_tests::copy_dir(&fixture(), &migrations);
    migrations
}

/// `squash` of the auth history in `migrations`, on the pair's backend (PostgreSQL
/// scratch databases on the test server).
fn squash_cmd(pair: &TestPair, migrations: &Path) -> Command {
    let dir = migrations.to_string_lossy().into_owned();
    let admin = pg_admin_url();
    let mut args = vec![
        "squash",
        "--store",
        "auth",
        "--backend",
        pair.backend.as_str(),
        "--migrations-dir",
        &dir,
    ];
    if pair.backend == Backend::Postgres {
        args.extend(["--shadow-url", &admin]);
    }
    pair_cmd(pair, &args)
}

/// After the next reader settled it, the folder holds the old history, untouched, or the
/// proven baseline with the old history archived; nothing half moved, no journal, no
/// staging folder.
fn classify_squash(pair: &TestPair, migrations: &Path, context: &str) -> Outcome {
    let backend = pair.backend.as_str();
    let live = entries(&migrations.join(backend));
    let archived = entries(
        &migrations
            .with_file_name("migrations_archive")
            .join(backend),
    );
    let old_count = fixture_versions(pair.backend).len();
    let root = entries(migrations.parent().expect("parent"));
    assert!(
        root.iter().all(|e| !e.starts_with(".squash-staging-")),
        "{context}: staging left behind: {root:?}"
    );
    assert!(
        !migrations.join(".squash-journal.json").exists(),
        "{context}: journal left behind"
    );
    if live.len() == old_count && archived.is_empty() {
        Outcome::Old
    } else if live.len() == 2
        && live.contains(&"squash.json".to_string())
        && archived.len() == old_count
    {
        Outcome::New
    } else {
        panic!("{context}: half a squash: live {live:?}, archived {archived:?}")
    }
}

#[test]
fn sigkill_during_squash_leaves_the_old_history_or_the_proven_baseline() {
    let trials = trials();
    for_each_backend("kill_squash", |pair| {
        let config = orch_tests::configuration(&pair.auth);
        let complete = fixture_model(pair, "complete", None);
        let calibration = fixture_copy(&pair.path().join("cal"));
        let full = timed(squash_cmd(pair, &calibration), "calibration squash");
        let (mut old, mut new) = (0, 0);
        for trial in 0..trials {
            let context = format!("squash trial {trial} on {config}");
            let migrations = fixture_copy(&pair.path().join(format!("t{trial}")));
            let pid = run_and_kill(squash_cmd(pair, &migrations), kill_delay(trial, full));
            // The next reader of the folder settles it, and the history it reads (old or
            // squashed) builds the same schema as the full old history.
            let db = test_db(
                pair.backend,
                "kill_squash",
                &format!("m{trial}"),
                pair.path(),
            )
            .expect("db");
            let dir = migrations.to_string_lossy().into_owned();
            timed(
                on(
                    pair.path(),
                    &db,
                    &pair.app,
                    &["migrate", "--store", "auth", "--migrations-dir", &dir],
                ),
                &context,
            );
            let outcome = classify_squash(pair, &migrations, &context);
            assert!(
                schema::compare(&complete, &model_of(&db)).is_empty(),
                "{context}"
            );
            if pair.backend == Backend::Postgres {
                // The next run that makes a scratch database drops those the dead one left.
                let admin = pg_admin_url();
                let diff = [
                    "diff",
                    "--store",
                    "auth",
                    "--migrations-dir",
                    &dir,
                    "--shadow-url",
                    &admin,
                ];
                timed(on(pair.path(), &db, &pair.app, &diff), &context);
                let left = orch_tests::scratch_databases_of(pid);
                assert!(
                    left.is_empty(),
                    "{context}: scratch databases left: {left:?}"
                );
            }
            match outcome {
                Outcome::Old => {
                    old += 1;
                    // And the squash, run again, succeeds.
                    timed(squash_cmd(pair, &migrations), &context);
                    assert_eq!(classify_squash(pair, &migrations, &context), Outcome::New);
                }
                Outcome::New => new += 1,
            }
        }
        println!(
            "KILL TRIALS squash {config}: {trials} trials of the 71-migration history, undisturbed run {} ms: \
             {old} old history intact (squash rerun succeeded), {new} proven baseline in place; \
             no half-moved folder, staging folder or scratch database left",
            full.as_millis()
        );
        assert_eq!(old + new, trials);
    });
}

#[test]
fn a_squash_that_dies_mid_swap_is_finished_by_the_next_reader_of_the_folder() {
    for_each_backend("kill_squash_swap", |pair| {
        let migrations = fixture_copy(&pair.path().join("swap"));
        let output = squash_cmd(pair, &migrations)
            .env("ORCH_FAULT", "crash-mid-swap:squash")
            .output()
            .expect("run");
        assert!(!output.status.success(), "the fault must kill the run");
        assert!(
            migrations.join(".squash-journal.json").exists(),
            "the swap was committed and interrupted"
        );
        let dir = migrations.to_string_lossy().into_owned();
        orchestrator_in(pair.path())
            .args([
                "--auth-url",
                &pair.auth.url_string(),
                "--app-url",
                &pair.app.url_string(),
            ])
            .args(["migrate", "--store", "auth", "--migrations-dir", &dir])
            .assert()
            .success();
        assert_eq!(
            classify_squash(pair, &migrations, "after the crash mid-swap"),
            Outcome::New
        );
        let complete = fixture_model(pair, "complete", None);
        assert!(schema::compare(&complete, &model_of(&pair.auth)).is_empty());
    });
}
