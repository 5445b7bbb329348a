//! `lint`: the embedded histories agree; a history with a version on one backend only, or
//! with a version both have that makes different schemas, is refused with the version
//! and the difference named. On PostgreSQL the PostgreSQL history is replayed on the
//! server (`--postgres-url`); on SQLite there is no server, and the recorded model stands
//! in for the PostgreSQL history's last version.

use std::path::Path;

use orch_tests::{copy_dir, for_each_backend, json_of, orchestrator, pg_admin_url, TestPair};
use serde_json::{json, Value};
use shared::repair::recorded::{dir_fingerprint, Recorded, RECORDED_DEFINITIONS};
use shared::Backend;

const LOCALE: &str = "2030-01-01-000001_locale";
/// The version diesel reads from LOCALE's folder name.
const LOCALE_VERSION: &str = "20300101000001";

fn lint(pair: &TestPair, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["lint"];
    args.extend_from_slice(extra);
    json_of(orchestrator(pair), &args)
}

/// `--postgres-url` of the test server on a PostgreSQL pair; nothing on SQLite, where
/// lint runs without a server.
fn server_args(pair: &TestPair) -> Vec<String> {
    match pair.backend {
        Backend::Postgres => vec!["--postgres-url".into(), pg_admin_url()],
        Backend::Sqlite => Vec::new(),
    }
}

/// `lint --store auth --migrations-dir DIR` (plus the server on PostgreSQL, and `extra`).
fn lint_dir(pair: &TestPair, dir: &Path, extra: &[&str]) -> (i32, Value) {
    let dir = dir.display().to_string();
    let server = server_args(pair);
    let mut args = vec!["--store", "auth", "--migrations-dir", dir.as_str()];
    args.extend(server.iter().map(String::as_str));
    args.extend_from_slice(extra);
    lint(pair, &args)
}

/// A copy of the auth store's migrations (both histories and the recorded model).
fn auth_history_copy(pair: &TestPair) -> std::path::PathBuf {
    let dir = pair.path().join("auth-migrations");
    copy_dir(Path::new(auth_db::STORE.migrations_dir), &dir);
    dir
}

fn add_migration(dir: &Path, backend: &str, up: &str, down: &str) {
    let folder = dir.join(backend).join(LOCALE);
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(folder.join("up.sql"), up).expect("up.sql");
    std::fs::write(folder.join("down.sql"), down).expect("down.sql");
}

fn edit_recorded(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let path = dir.join("postgres.schema.json");
    let mut model: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
    edit(&mut model);
    std::fs::write(&path, serde_json::to_string_pretty(&model).expect("JSON")).expect("write");
}

fn recorded_users_column(dir: &Path, column: &str) -> Value {
    let text = std::fs::read_to_string(dir.join("postgres.schema.json")).expect("read");
    let model: Value = serde_json::from_str(&text).expect("JSON");
    model["tables"]["users"]["columns"][column].clone()
}

fn recorded_definitions(dir: &Path) -> Recorded {
    let text = std::fs::read_to_string(dir.join(RECORDED_DEFINITIONS)).expect("read");
    Recorded::from_json(&text).expect("definitions JSON")
}

/// Brings the recorded model up to date with the copied PostgreSQL history after
/// `users.locale TEXT NOT NULL DEFAULT 'en'` was added to it: on PostgreSQL by
/// `lint --write` on the server (which is then checked), on SQLite, where lint has no
/// server to replay on, by hand, as `--write` records it.
fn record_locale(pair: &TestPair, dir: &Path) {
    match pair.backend {
        Backend::Postgres => {
            let (code, report) = lint_dir(pair, dir, &["--write"]);
            assert_eq!(code, 0, "{report}");
            // The model and the definitions a repair writes.
            assert_eq!(report["written"].as_array().map(Vec::len), Some(2));
            let defs = recorded_definitions(dir);
            assert_eq!(
                defs.history,
                dir_fingerprint(&dir.join("postgres")).expect("fingerprint"),
                "recorded for the history as it is now"
            );
            let locale = defs
                .columns
                .iter()
                .find(|c| c.table == "users" && c.column == "locale")
                .expect("users.locale recorded");
            assert_eq!(
                (
                    locale.sql_type.as_str(),
                    locale.default.as_deref(),
                    locale.not_null
                ),
                ("text", Some("'en'::text"), true)
            );
        }
        Backend::Sqlite => {
            edit_recorded(dir, |model| {
                model["tables"]["users"]["columns"]["locale"] =
                    json!({"data_type": "text", "nullable": false, "default": "'en'::text"});
            });
            // Without a server lint holds the definitions to the history they were made
            // from: recorded for the new one, as --write would.
            let mut defs = recorded_definitions(dir);
            defs.history = dir_fingerprint(&dir.join("postgres")).expect("fingerprint");
            std::fs::write(dir.join(RECORDED_DEFINITIONS), defs.to_json()).expect("write");
        }
    }
    let locale = recorded_users_column(dir, "locale");
    assert_eq!(locale["data_type"], "text", "{locale}");
    assert_eq!(locale["nullable"], false, "{locale}");
}

/// The one divergence of the auth report, at `version`, and its lines.
fn divergence_at(report: &Value, version: &str) -> Vec<String> {
    let auth = &report["stores"][0];
    assert_eq!(auth["store"], "auth", "{report}");
    let diverging = auth["diverging"].as_array().expect("diverging");
    assert_eq!(diverging.len(), 1, "one version diverges: {report}");
    assert_eq!(diverging[0]["version"], version, "{report}");
    diverging[0]["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|l| l.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_embedded_histories_agree() {
    for_each_backend("drift_lint_agree", |pair| {
        // Without --postgres-url: a PostgreSQL pair's own server replays the history; a
        // SQLite pair has none and the recorded model stands in.
        let mut runs = vec![(Vec::new(), pair.backend == Backend::Postgres)];
        if pair.backend == Backend::Postgres {
            runs.push((server_args(pair), true));
        }
        for (extra, replayed) in runs {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let (code, report) = lint(pair, &extra);
            assert_eq!(code, 0, "{} {extra:?}: {report}", pair.backend);
            assert_eq!(report["ok"], true, "{report}");
            let stores = report["stores"].as_array().expect("stores");
            let names: Vec<&Value> = stores.iter().map(|s| &s["store"]).collect();
            assert_eq!(names, [&json!("auth"), &json!("app")], "{report}");
            for s in stores {
                for list in ["only_postgres", "only_sqlite", "diverging", "recorded"] {
                    assert_eq!(s[list], json!([]), "{list}: {report}");
                }
                assert_eq!(s["postgres_replayed"], replayed, "{extra:?}: {report}");
            }
        }
    });
}

#[test]
fn a_version_in_the_postgres_history_only_is_named() {
    for_each_backend("drift_lint_only_pg", |pair| {
        let dir = auth_history_copy(pair);
        add_migration(
            &dir,
            "postgres",
            "ALTER TABLE users ADD COLUMN locale TEXT NOT NULL DEFAULT 'en';",
            "ALTER TABLE users DROP COLUMN locale;",
        );
        record_locale(pair, &dir);
        let (code, report) = lint_dir(pair, &dir, &[]);
        assert_eq!(code, 1, "{report}");
        assert_eq!(report["ok"], false);
        let auth = &report["stores"][0];
        assert_eq!(auth["only_postgres"], json!([LOCALE_VERSION]), "{report}");
        assert_eq!(auth["only_sqlite"], json!([]), "{report}");
        assert_eq!(auth["recorded"], json!([]), "{report}");
        assert_eq!(
            auth["postgres_replayed"],
            pair.backend == Backend::Postgres,
            "{report}"
        );
        let lines = divergence_at(&report, LOCALE_VERSION);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("users.locale:") && l.contains("SQLite has nothing")),
            "{lines:?}"
        );
    });
}

#[test]
fn a_version_both_histories_have_that_differs_in_nullability_is_named() {
    for_each_backend("drift_lint_nullability", |pair| {
        let dir = auth_history_copy(pair);
        add_migration(
            &dir,
            "postgres",
            "ALTER TABLE users ADD COLUMN locale TEXT NOT NULL DEFAULT 'en';",
            "ALTER TABLE users DROP COLUMN locale;",
        );
        add_migration(
            &dir,
            "sqlite",
            "ALTER TABLE users ADD COLUMN locale TEXT;",
            "ALTER TABLE users DROP COLUMN locale;",
        );
        record_locale(pair, &dir);
        let (code, report) = lint_dir(pair, &dir, &[]);
        assert_eq!(code, 1, "{report}");
        let auth = &report["stores"][0];
        for list in ["only_postgres", "only_sqlite", "recorded"] {
            assert_eq!(auth[list], json!([]), "{list}: {report}");
        }
        let lines = divergence_at(&report, LOCALE_VERSION);
        assert_eq!(
            lines,
            ["users.locale: PostgreSQL has NOT NULL, SQLite has NULL"],
            "{report}"
        );
    });
}

#[test]
fn a_recorded_model_that_lacks_a_column_is_refused() {
    for_each_backend("drift_lint_recorded", |pair| {
        let dir = auth_history_copy(pair);
        edit_recorded(&dir, |model| {
            let columns = model["tables"]["users"]["columns"]
                .as_object_mut()
                .expect("users columns");
            assert!(columns.remove("name").is_some(), "users.name is recorded");
        });
        let (code, report) = lint_dir(pair, &dir, &[]);
        assert_eq!(code, 1, "{report}");
        assert_eq!(report["ok"], false);
        let auth = &report["stores"][0];
        let last = shared::migrations::shipped(&auth_db::STORE, Backend::Sqlite)
            .expect("shipped")
            .last()
            .map(|(version, _)| version.clone())
            .expect("auth has migrations");
        match pair.backend {
            // No server: the recorded model is the PostgreSQL history's last version,
            // and it parts from the SQLite history there.
            Backend::Sqlite => {
                assert_eq!(auth["postgres_replayed"], false, "{report}");
                let lines = divergence_at(&report, &last);
                assert!(
                    lines
                        .iter()
                        .any(|l| l.starts_with("users.name:")
                            && l.contains("PostgreSQL has nothing")),
                    "{lines:?}"
                );
            }
            // Replayed on the server, the histories agree; the recorded model is what
            // is not what the PostgreSQL history makes.
            Backend::Postgres => {
                assert_eq!(auth["postgres_replayed"], true, "{report}");
                assert_eq!(auth["diverging"], json!([]), "{report}");
                let recorded = auth["recorded"].as_array().expect("recorded");
                assert!(
                    recorded
                        .iter()
                        .any(|l| l.as_str().is_some_and(|l| l.starts_with("users.name:"))),
                    "{report}"
                );
            }
        }
    });
}

#[test]
fn recorded_definitions_that_are_stale_wrong_or_missing_are_named() {
    for_each_backend("drift_lint_definitions", |pair| {
        let dir = auth_history_copy(pair);
        let path = dir.join(RECORDED_DEFINITIONS);
        let good = std::fs::read_to_string(&path).expect("read");
        let problems = |report: &Value| -> String { report["stores"][0]["recorded"].to_string() };
        let refused = |needle: &str| {
            let (code, report) = lint_dir(pair, &dir, &[]);
            assert_eq!(code, 1, "{report}");
            assert!(problems(&report).contains(needle), "{needle}: {report}");
        };

        // Made from another history, or missing: known without a server (SQLite pairs
        // lint without one).
        let mut stale = Recorded::from_json(&good).expect("JSON");
        stale.history = "0".repeat(64);
        std::fs::write(&path, stale.to_json()).expect("write");
        refused("made by another PostgreSQL history");
        std::fs::remove_file(&path).expect("rm");
        refused("no recorded definitions");

        if pair.backend == Backend::Postgres {
            // Other SQL than the history makes: only a server can say.
            let mut wrong = Recorded::from_json(&good).expect("JSON");
            let email = wrong
                .columns
                .iter_mut()
                .find(|c| c.table == "users" && c.column == "email")
                .expect("users.email");
            email.sql_type = "character varying(20)".into();
            std::fs::write(&path, wrong.to_json()).expect("write");
            refused("not the SQL the PostgreSQL history makes");
            // --write records them again.
            let (code, report) = lint_dir(pair, &dir, &["--write"]);
            assert_eq!(code, 0, "{report}");
            assert_eq!(std::fs::read_to_string(&path).expect("read"), good);
        } else {
            std::fs::write(&path, &good).expect("write");
        }
        let (code, report) = lint_dir(pair, &dir, &[]);
        assert_eq!(code, 0, "{report}");
    });
}
