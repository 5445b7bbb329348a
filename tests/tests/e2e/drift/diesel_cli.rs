//! Migrations diesel_cli applied, simulated by SQL on a migrated pair: diesel records a
//! version in `__diesel_schema_migrations` (with `run_on`) and knows nothing of our
//! checksums in `__orchestrator_migrations`. Such migrations are `unchecked` until
//! `migrate` proves the schema is what they make and records them; a schema that is not
//! refuses the run with nothing recorded.

use orch_tests::{count, exec, for_each_backend, json_of, orchestrator, TestPair};
use serde_json::{json, Value};
use shared::catalog::{DIESEL_MIGRATIONS_TABLE, ORCHESTRATOR_MIGRATIONS_TABLE};
use shared::{Backend, Store};

use super::{literal, migrated, store, verify, verify_differences, Expect};

fn names(store: &Store, backend: Backend) -> Vec<String> {
    shared::migrations::shipped(store, backend)
        .expect("shipped")
        .into_iter()
        .map(|(_, name)| name)
        .collect()
}

fn status(pair: &TestPair) -> Value {
    let (code, report) = json_of(orchestrator(pair), &["status"]);
    // It only reports: exit 1 exactly when a store needs attention (unchecked, modified,
    // pending or unknown migrations), 0 otherwise.
    let attention = report["stores"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["needs_attention"] == true));
    assert_eq!(code, i32::from(attention), "status only reports: {report}");
    report
}

fn migrate_json(pair: &TestPair) -> (i32, Value) {
    json_of(orchestrator(pair), &["migrate"])
}

#[test]
fn migrations_without_checksums_are_unchecked_until_migrate_records_them() {
    for_each_backend("drift_cli_unchecked", |pair| {
        migrated(pair);
        // What a database diesel_cli migrated looks like: diesel's rows, none of ours.
        for db in [&pair.auth, &pair.app] {
            exec(
                &mut db.connect(),
                &format!("DELETE FROM {ORCHESTRATOR_MIGRATIONS_TABLE}"),
            );
        }
        let stores = [("auth", &auth_db::STORE), ("app", &app_db::STORE)];
        // status flattens each store's migration state into the store's entry.
        let report = status(pair);
        for (name, s) in stores {
            let migrations = store(&report, name);
            assert_eq!(
                migrations["unchecked"],
                json!(names(s, pair.backend)),
                "{report}"
            );
            assert_eq!(migrations["modified"], json!([]), "{report}");
        }
        let (code, report) = verify(pair, &[]);
        assert_eq!(code, 1, "{report}");
        for (name, s) in stores {
            let checked = store(&report, name);
            assert_eq!(
                checked["migrations"]["unchecked"],
                json!(names(s, pair.backend)),
                "{report}"
            );
            // The schema itself is what the migrations make: only the records lack.
            assert_eq!(verify_differences(&report, name), Vec::<Value>::new());
        }

        let (code, report) = migrate_json(pair);
        assert_eq!(code, 0, "{report}");
        for (name, s) in stores {
            let migrated = store(&report, name);
            assert_eq!(
                migrated["vouched"],
                json!(names(s, pair.backend)),
                "{report}"
            );
            assert_eq!(migrated["applied"], json!([]), "{report}");
        }
        for (db, s) in [(&pair.auth, &auth_db::STORE), (&pair.app, &app_db::STORE)] {
            assert_eq!(
                count(&mut db.connect(), ORCHESTRATOR_MIGRATIONS_TABLE) as usize,
                names(s, pair.backend).len()
            );
        }
        let (code, report) = verify(pair, &[]);
        assert_eq!(code, 0, "{report}");
        let report = status(pair);
        for (name, _) in stores {
            assert_eq!(store(&report, name)["unchecked"], json!([]));
        }
    });
}

#[test]
fn an_edited_migration_diesel_applied_is_refused_and_nothing_recorded() {
    for_each_backend("drift_cli_edited", |pair| {
        migrated(pair);
        let mut auth = pair.auth.connect();
        // diesel_cli ran an up.sql someone had edited: a column no migration makes, and
        // no checksum of ours to tell.
        exec(
            &mut auth,
            &format!(
                "DELETE FROM {ORCHESTRATOR_MIGRATIONS_TABLE};
                 ALTER TABLE users ADD COLUMN locale TEXT;"
            ),
        );
        let (code, report) = verify(pair, &["--store", "auth"]);
        assert_eq!(code, 1, "{report}");
        Expect {
            kind: "unexpected_column",
            table: "users",
            object: "locale",
        }
        .in_list(&verify_differences(&report, "auth"), "verify");

        let out = orchestrator(pair).arg("migrate").output().expect("migrate");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("auth.users") && stderr.contains("`locale`"),
            "migrate names users.locale: {stderr}"
        );
        assert!(stderr.contains("nothing was recorded"), "{stderr}");
        assert_eq!(count(&mut auth, ORCHESTRATOR_MIGRATIONS_TABLE), 0);
        let report = status(pair);
        assert_eq!(
            store(&report, "auth")["unchecked"],
            json!(names(&auth_db::STORE, pair.backend)),
            "{report}"
        );
    });
}

/// The version and name of the store's last migration on `backend`.
fn last_migration(store: &Store, backend: Backend) -> (String, String) {
    shared::migrations::shipped(store, backend)
        .expect("shipped")
        .pop()
        .expect("the store has migrations")
}

/// After a simulated `diesel migration redo` of auth's last migration: it is unchecked
/// (not modified), the schema is unchanged, `migrate` records it again, and verify then
/// passes.
fn assert_redo_is_unchecked_then_vouched(pair: &TestPair, name: &str) {
    let (code, report) = verify(pair, &["--store", "auth"]);
    assert_eq!(code, 1, "{report}");
    let migrations = &store(&report, "auth")["migrations"];
    assert_eq!(migrations["unchecked"], json!([name]), "{report}");
    assert_eq!(migrations["modified"], json!([]), "{report}");
    assert_eq!(verify_differences(&report, "auth"), Vec::<Value>::new());
    let report = status(pair);
    assert_eq!(
        store(&report, "auth")["unchecked"],
        json!([name]),
        "{report}"
    );

    let (code, report) = migrate_json(pair);
    assert_eq!(code, 0, "{report}");
    assert_eq!(store(&report, "auth")["vouched"], json!([name]), "{report}");
    let (code, report) = verify(pair, &["--store", "auth"]);
    assert_eq!(
        code, 0,
        "{} after migrate vouched for it: {report}",
        pair.backend
    );
}

// diesel's run_on an hour after our record, however the clocks stand: the record migrate
// writes covers that very run (it takes diesel's run_on), so the migration is vouched for
// at once instead of looking re-run until the clock catches up.
#[test]
fn a_diesel_redo_is_unchecked_until_migrate_records_it_again() {
    for_each_backend("drift_cli_redo", |pair| {
        migrated(pair);
        let (version, name) = last_migration(&auth_db::STORE, pair.backend);
        // diesel's run_on an hour after our record (the brief's simulation: run_on is
        // moved forward, so it lies an hour in the future).
        let later = match pair.backend {
            Backend::Postgres => "(now() AT TIME ZONE 'utc') + interval '1 hour'",
            Backend::Sqlite => "datetime('now', '+1 hour')",
        };
        exec(
            &mut pair.auth.connect(),
            &format!(
                "UPDATE {DIESEL_MIGRATIONS_TABLE} SET run_on = {later} WHERE version = {}",
                literal(&version)
            ),
        );
        assert_redo_is_unchecked_then_vouched(pair, &name);
    });
}

#[test]
fn a_diesel_redo_an_hour_after_migrate_is_unchecked_until_recorded_again() {
    for_each_backend("drift_cli_redo_real", |pair| {
        migrated(pair);
        let (version, name) = last_migration(&auth_db::STORE, pair.backend);
        let v = literal(&version);
        let folder = std::path::Path::new(auth_db::STORE.migrations_dir)
            .join(pair.backend.as_str())
            .join(&name);
        let read = |file: &str| {
            std::fs::read_to_string(folder.join(file))
                .unwrap_or_else(|e| panic!("{}: {e}", folder.join(file).display()))
        };
        let an_hour_ago = match pair.backend {
            Backend::Postgres => "applied_at - interval '1 hour'",
            Backend::Sqlite => "datetime(applied_at, '-1 hour')",
        };
        let mut auth = pair.auth.connect();
        // Our record was made an hour ago; now diesel reverts the migration (down.sql,
        // its row deleted) and runs it again (up.sql, a new row stamped now), as `diesel
        // migration redo` does.
        exec(
            &mut auth,
            &format!(
                "UPDATE {ORCHESTRATOR_MIGRATIONS_TABLE} SET applied_at = {an_hour_ago} WHERE version = {v}"
            ),
        );
        exec(&mut auth, &read("down.sql"));
        exec(
            &mut auth,
            &format!("DELETE FROM {DIESEL_MIGRATIONS_TABLE} WHERE version = {v}"),
        );
        exec(&mut auth, &read("up.sql"));
        exec(
            &mut auth,
            &format!("INSERT INTO {DIESEL_MIGRATIONS_TABLE} (version) VALUES ({v})"),
        );
        assert_redo_is_unchecked_then_vouched(pair, &name);
    });
}

/// diesel stamps `run_on` with CURRENT_TIMESTAMP in the session's time zone, and we stamp
/// `applied_at` in UTC: a database whose time zone is ahead of UTC must not make freshly
/// applied migrations look run again (diesel's sessions set UTC themselves). PostgreSQL
/// only: SQLite's CURRENT_TIMESTAMP is always UTC.
#[test]
fn a_database_time_zone_ahead_of_utc_does_not_make_migrations_unchecked() {
    for_each_backend("drift_cli_time_zone", |pair| {
        if pair.backend != Backend::Postgres {
            return;
        }
        for db in [&pair.auth, &pair.app] {
            let name = db.url.database_name();
            exec(
                &mut db.connect(),
                &format!("ALTER DATABASE \"{name}\" SET timezone = 'Pacific/Kiritimati'"),
            );
        }
        migrated(pair);
        let (code, report) = verify(pair, &[]);
        assert_eq!(code, 0, "{report}");
        for name in ["auth", "app"] {
            assert_eq!(
                store(&report, name)["migrations"]["unchecked"],
                json!([]),
                "{report}"
            );
        }
    });
}

/// diesel_cli took the database part way (every auth migration but the last), then
/// `migrate` runs: it vouches for what diesel applied, the schema being what those
/// migrations make (held, part way, to the SQLite history replayed to that version), and
/// applies the rest with checksums of its own.
#[test]
fn a_history_diesel_took_part_way_is_vouched_for_and_finished() {
    for_each_backend("drift_cli_part_way", |pair| {
        migrated(pair);
        let (version, last) = last_migration(&auth_db::STORE, pair.backend);
        let folder = std::path::Path::new(auth_db::STORE.migrations_dir)
            .join(pair.backend.as_str())
            .join(&last);
        let down = std::fs::read_to_string(folder.join("down.sql")).expect("down.sql");
        let mut auth = pair.auth.connect();
        exec(&mut auth, &down);
        exec(
            &mut auth,
            &format!(
                "DELETE FROM {DIESEL_MIGRATIONS_TABLE} WHERE version = {};
                 DELETE FROM {ORCHESTRATOR_MIGRATIONS_TABLE};",
                literal(&version)
            ),
        );
        let mut earlier = names(&auth_db::STORE, pair.backend);
        earlier.pop();
        let report = status(pair);
        let auth_status = store(&report, "auth");
        assert_eq!(auth_status["unchecked"], json!(earlier), "{report}");
        assert_eq!(auth_status["pending"], json!([last]), "{report}");

        let (code, report) = migrate_json(pair);
        assert_eq!(code, 0, "{report}");
        let migrated_auth = store(&report, "auth");
        assert_eq!(migrated_auth["vouched"], json!(earlier), "{report}");
        let applied: Vec<&Value> = migrated_auth["applied"]
            .as_array()
            .expect("applied")
            .iter()
            .map(|a| &a["name"])
            .collect();
        assert_eq!(applied, [&json!(last)], "{report}");
        let (code, report) = verify(pair, &[]);
        assert_eq!(code, 0, "{report}");
    });
}
