//! `repair`: the original drift, fixed in place with every kept row intact; rows that
//! stand in the way refuse it with the rows named and nothing changed; what destroys
//! data needs --force and leaves a backup that `restore` brings back.

use diesel::RunQueryDsl;
use orch_tests::{exec, for_each_backend, json_of, orchestrator, TestPair};
use shared::{Backend, Conn};

#[derive(diesel::QueryableByName)]
struct Sql {
    #[diesel(sql_type = diesel::sql_types::Text)]
    sql: String,
}

/// Rewrites a SQLite table's `CREATE TABLE` with `edit`, keeping its rows and indexes:
/// how drift that SQLite's ALTER TABLE cannot make is made by hand.
fn rewrite_sqlite_table(conn: &mut Conn, table: &str, edit: impl Fn(&str) -> String) {
    let Conn::Sqlite(c) = conn else {
        unreachable!("SQLite only")
    };
    let create: Vec<Sql> = diesel::sql_query(format!(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = '{table}'"
    ))
    .load(c)
    .expect("create");
    let indexes: Vec<Sql> = diesel::sql_query(format!(
        "SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = '{table}' AND sql IS NOT NULL"
    ))
    .load(c)
    .expect("indexes");
    let mut script = format!(
        "PRAGMA foreign_keys = OFF; PRAGMA legacy_alter_table = ON; BEGIN;
         ALTER TABLE {table} RENAME TO drift_old;
         {};
         INSERT INTO {table} SELECT * FROM drift_old;
         DROP TABLE drift_old;",
        edit(&create[0].sql)
    );
    for ix in indexes {
        script.push_str(&format!("{};", ix.sql));
    }
    script.push_str("COMMIT; PRAGMA legacy_alter_table = OFF;");
    exec(conn, &script);
}

/// The original drift, on a migrated pair holding rows: a `users` table in app (its rows
/// all in auth), a missing column, a wrong ON DELETE, an extra foreign key, a changed
/// type, a dropped index.
pub(crate) fn drift(pair: &TestPair) {
    let mut app = pair.app.connect();
    let mut auth = pair.auth.connect();
    exec(
        &mut app,
        "CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, email TEXT NOT NULL)",
    );
    #[derive(diesel::QueryableByName)]
    struct User {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        email: String,
    }
    let users: Vec<User> = shared::with_conn!(&mut auth, |c| diesel::sql_query(
        "SELECT id, email FROM users"
    )
    .load(c))
    .expect("users");
    // A few hundred rows a statement: the kill trials copy 20,000.
    for chunk in users.chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|u| format!("('{}', '{}')", u.id, u.email))
            .collect();
        exec(
            &mut app,
            &format!("INSERT INTO users VALUES {}", values.join(", ")),
        );
    }
    exec(&mut app, "ALTER TABLE documents DROP COLUMN content_type");
    exec(&mut app, "DROP INDEX datasets_owner_id_idx");
    match pair.backend {
        Backend::Postgres => exec(
            &mut app,
            "ALTER TABLE processing_jobs ALTER COLUMN attempts TYPE bigint;
             ALTER TABLE documents DROP CONSTRAINT documents_dataset_id_fkey;
             ALTER TABLE documents ADD CONSTRAINT documents_dataset_id_fkey
                FOREIGN KEY (dataset_id) REFERENCES datasets (id);
             ALTER TABLE processing_jobs ADD CONSTRAINT jobs_extra_fkey
                FOREIGN KEY (document_id) REFERENCES documents (id) ON DELETE CASCADE;",
        ),
        Backend::Sqlite => {
            rewrite_sqlite_table(&mut app, "processing_jobs", |sql| {
                let sql = sql.replacen("attempts    INTEGER", "attempts    BIGINT", 1);
                let end = sql.rfind(')').expect("the table's closing parenthesis");
                format!(
                    "{}, FOREIGN KEY (document_id) REFERENCES documents (id) ON DELETE CASCADE)",
                    &sql[..end]
                )
            });
            rewrite_sqlite_table(&mut app, "documents", |sql| {
                sql.replacen("ON DELETE CASCADE", "", 1)
            });
        }
    }
}

/// The rows of the columns a repair keeps, read the same way before and after.
pub(crate) fn kept(pair: &TestPair) -> (orch_tests::checksums::Snapshot, Vec<String>) {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        r: String,
    }
    let mut app = pair.app.connect();
    let rows: Vec<Row> = shared::with_conn!(&mut app, |c| diesel::sql_query(
        "SELECT d.id || '|' || d.owner_id || '|' || d.name || '|' || COALESCE(doc.id, '-') \
         || '|' || COALESCE(doc.filename, '-') || '|' || COALESCE(CAST(j.attempts AS TEXT), '-') \
         || '|' || COALESCE(j.status, '-') AS r \
         FROM datasets d LEFT JOIN documents doc ON doc.dataset_id = d.id \
         LEFT JOIN processing_jobs j ON j.document_id = doc.id ORDER BY 1"
    )
    .load(c))
    .expect("rows");
    (
        orch_tests::checksums::snapshot(&mut pair.auth.connect()),
        rows.into_iter().map(|r| r.r).collect(),
    )
}

#[test]
fn the_original_drift_is_repaired_in_one_command_keeping_every_row() {
    for_each_backend("repair_drift", |pair| {
        orchestrator(pair).arg("migrate").assert().success();
        orch_tests::seed::contract_rows(pair);
        drift(pair);
        let before = kept(pair);
        let (code, diff) = json_of(orchestrator(pair), &["diff"]);
        assert_eq!(code, 1, "{diff}");
        let kinds: Vec<&str> = diff["stores"][1]["differences"]
            .as_array()
            .expect("app's differences")
            .iter()
            .filter_map(|d| d["kind"].as_str())
            .collect();
        for kind in [
            "unexpected_table",
            "missing_column",
            "foreign_key_action",
            "unexpected_foreign_key",
            "column_type",
            "missing_index",
        ] {
            assert!(kinds.contains(&kind), "{kind} not drifted: {kinds:?}");
        }

        let (code, plan) = json_of(orchestrator(pair), &["repair", "--dry-run"]);
        assert_eq!(code, 0, "{plan}");
        let steps = plan["stores"][1]["steps"].as_array().expect("app's steps");
        let users = steps
            .iter()
            .find(|s| s["kind"] == "unexpected_table" && s["table"] == "users")
            .expect("the users table in app");
        assert_eq!(users["class"], "safe", "its rows are all in auth: {users}");
        assert!(
            steps
                .iter()
                .all(|s| s["sql"].as_array().is_some_and(|q| !q.is_empty())),
            "{plan}"
        );
        assert_eq!(kept(pair), before, "a dry run changes nothing");
        // PostgreSQL writes the definitions recorded with the build (no scratch database);
        // replaying the migrations in one must give the very same SQL.
        let (code, replayed) = json_of(orchestrator(pair), &["repair", "--dry-run", "--replay"]);
        assert_eq!(code, 0, "{replayed}");
        let recorded = match pair.backend {
            Backend::Postgres => "recorded",
            Backend::Sqlite => "replayed",
        };
        for i in 0..2 {
            assert_eq!(plan["stores"][i]["definitions"], recorded, "{plan}");
            assert_eq!(
                replayed["stores"][i]["definitions"], "replayed",
                "{replayed}"
            );
            assert_eq!(
                plan["stores"][i]["steps"], replayed["stores"][i]["steps"],
                "the recorded definitions say what the migrations make"
            );
        }

        let (code, report) = json_of(orchestrator(pair), &["repair"]);
        assert_eq!(code, 0, "{report}");
        let output = orchestrator(pair).arg("diff").output().expect("diff");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{stdout}");
        assert_eq!(
            stdout.matches("No difference detected").count(),
            2,
            "{stdout}"
        );
        let (code, verified) = json_of(orchestrator(pair), &["verify"]);
        assert_eq!(code, 0, "{verified}");
        assert_eq!(kept(pair), before, "every kept row is intact");
        println!(
            "REPAIR {}: the original drift repaired in one command, every kept row intact",
            orch_tests::configuration(&pair.app)
        );
    });
}

#[test]
fn rows_in_the_way_refuse_the_repair_named_and_force_backs_up_what_it_drops() {
    for_each_backend("repair_blocked", |pair| {
        orchestrator(pair).arg("migrate").assert().success();
        orch_tests::seed::contract_rows(pair);
        let mut app = pair.app.connect();
        // A users table in app with a row auth does not have.
        exec(
            &mut app,
            "CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, email TEXT NOT NULL);
             INSERT INTO users VALUES ('only-in-app', 'ghost@x');",
        );
        let before = orch_tests::checksums::snapshots(pair);
        let output = orchestrator(pair).arg("repair").output().expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{stderr}");
        assert!(
            stderr.contains("id=only-in-app") && stderr.contains("exist only here"),
            "{stderr}"
        );
        assert_eq!(
            orch_tests::checksums::snapshots(pair),
            before,
            "nothing changed"
        );

        // Forced: backed up, then dropped; the backup brings it back.
        let (code, report) = json_of(orchestrator(pair), &["repair", "--force"]);
        assert_eq!(code, 0, "{report}");
        let backup = report["backup"].as_str().expect("a backup").to_string();
        let (code, diff) = json_of(orchestrator(pair), &["diff"]);
        assert_eq!(code, 0, "{diff}");
        let (code, restored) = json_of(
            orchestrator(pair),
            &["restore", &backup, "--store", "app", "--force"],
        );
        assert_eq!(code, 0, "{restored}");
        assert_eq!(
            orch_tests::checksums::snapshots(pair),
            before,
            "restore brings it back"
        );

        // NULLs where the migrations say NOT NULL: refused, the row named.
        orchestrator(pair)
            .args(["repair", "--force"])
            .assert()
            .success();
        match pair.backend {
            Backend::Postgres => exec(
                &mut app,
                "ALTER TABLE datasets ALTER COLUMN name DROP NOT NULL;
                 UPDATE datasets SET name = NULL WHERE name = 'two';",
            ),
            Backend::Sqlite => {
                rewrite_sqlite_table(&mut app, "datasets", |sql| {
                    sql.replacen("name        TEXT NOT NULL", "name        TEXT", 1)
                });
                exec(
                    &mut app,
                    "UPDATE datasets SET name = NULL WHERE name = 'two'",
                );
            }
        }
        let before = orch_tests::checksums::snapshots(pair);
        let (code, plan) = json_of(orchestrator(pair), &["repair", "--force"]);
        assert_eq!(code, 3, "{plan}");
        let blocked = plan["stores"][1]["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|s| s["class"] == "blocked_by_data")
            .cloned()
            .expect("a blocked step");
        assert_eq!(blocked["rows"], 1, "{blocked}");
        assert!(
            blocked["sample"][0]
                .as_str()
                .is_some_and(|s| s.starts_with("id=")),
            "{blocked}"
        );
        assert_eq!(
            orch_tests::checksums::snapshots(pair),
            before,
            "nothing changed"
        );
    });
}

#[test]
fn the_second_store_failing_halfway_leaves_both_as_they_were() {
    for_each_backend("repair_fault", |pair| {
        orchestrator(pair).arg("migrate").assert().success();
        orch_tests::seed::contract_rows(pair);
        exec(&mut pair.auth.connect(), "DROP INDEX sessions_user_id_idx");
        drift(pair);
        let before = orch_tests::checksums::snapshots(pair);
        let (_, diff_before) = json_of(orchestrator(pair), &["diff"]);
        let output = orchestrator(pair)
            .env("ORCH_FAULT", "fail-repair:app")
            .arg("repair")
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(4), "{stderr}");
        assert!(stderr.contains("every store was rolled back"), "{stderr}");
        // auth's steps ran first and were rolled back with app's.
        assert_eq!(orch_tests::checksums::snapshots(pair), before);
        let (_, diff_after) = json_of(orchestrator(pair), &["diff"]);
        assert_eq!(diff_after, diff_before, "both still drifted as before");
        orchestrator(pair).arg("repair").assert().success();
    });
}

/// The kinds the drift tests do not make (they repair theirs: see `drift`): a missing
/// table, an extra column holding values, a changed default, a dropped primary key, an
/// extra unique and an extra check, on one store holding rows.
#[test]
fn a_missing_table_an_extra_column_a_default_a_key_a_unique_and_a_check_are_repaired() {
    for_each_backend("repair_kinds", |pair| {
        orchestrator(pair).arg("migrate").assert().success();
        orch_tests::seed::contract_rows(pair);
        let mut app = pair.app.connect();
        exec(&mut app, "DROP TABLE processing_jobs");
        exec(
            &mut app,
            "ALTER TABLE datasets ADD COLUMN legacy TEXT DEFAULT 'kept?'",
        );
        match pair.backend {
            Backend::Postgres => exec(
                &mut app,
                "ALTER TABLE documents ALTER COLUMN filename SET DEFAULT 'unnamed';
                 ALTER TABLE documents DROP CONSTRAINT documents_pkey;
                 ALTER TABLE datasets ADD CONSTRAINT datasets_name_key UNIQUE (name);
                 ALTER TABLE documents ADD CONSTRAINT filename_len CHECK (length(filename) > 0);",
            ),
            Backend::Sqlite => {
                rewrite_sqlite_table(&mut app, "documents", |sql| {
                    sql.replacen(
                        "filename     TEXT NOT NULL",
                        "filename     TEXT NOT NULL DEFAULT 'unnamed' CHECK (length(filename) > 0)",
                        1,
                    )
                    .replacen(
                        "id           TEXT PRIMARY KEY NOT NULL",
                        "id           TEXT NOT NULL",
                        1,
                    )
                });
                rewrite_sqlite_table(&mut app, "datasets", |sql| {
                    sql.replacen(
                        "name        TEXT NOT NULL",
                        "name        TEXT NOT NULL UNIQUE",
                        1,
                    )
                });
            }
        }
        let (_, diff) = json_of(orchestrator(pair), &["diff", "--store", "app"]);
        let kinds: Vec<&str> = diff["stores"][0]["differences"]
            .as_array()
            .expect("differences")
            .iter()
            .filter_map(|d| d["kind"].as_str())
            .collect();
        for kind in [
            "missing_table",
            "unexpected_column",
            "column_default",
            "primary_key",
            "unexpected_unique",
            "unexpected_check",
        ] {
            assert!(kinds.contains(&kind), "{kind} not drifted: {kinds:?}");
        }
        let before = crate::drift::column_values(&mut app);

        // The extra column holds values: refused without --force, named.
        let output = orchestrator(pair)
            .args(["repair", "--store", "app"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{stderr}");
        assert!(
            stderr.contains("destroy data") && stderr.contains("legacy"),
            "{stderr}"
        );

        let (code, report) = json_of(orchestrator(pair), &["repair", "--store", "app", "--force"]);
        assert_eq!(code, 0, "{report}");
        assert!(report["backup"].is_string(), "{report}");
        let (code, diff) = json_of(orchestrator(pair), &["diff"]);
        assert_eq!(code, 0, "{diff}");
        let (code, verified) = json_of(orchestrator(pair), &["verify"]);
        assert_eq!(code, 0, "{verified}");
        let after = crate::drift::column_values(&mut pair.app.connect());
        for (column, values) in &before {
            if let Some(kept) = after.get(column) {
                assert_eq!(kept, values, "{column:?}");
            }
        }
        assert!(!after.contains_key(&("datasets".to_string(), "legacy".to_string())));
    });
}

/// Duplicates under a unique, a value a check refuses and a foreign key value with no
/// parent: each step is blocked, its rows named, and nothing changes, even with --force.
#[test]
fn duplicates_a_refused_check_and_orphans_block_their_steps_naming_the_rows() {
    for_each_backend("repair_blocked_kinds", |pair| {
        orchestrator(pair).arg("migrate").assert().success();
        orch_tests::seed::contract_rows(pair);
        let mut auth = pair.auth.connect();
        match pair.backend {
            Backend::Postgres => exec(
                &mut auth,
                "ALTER TABLE users DROP CONSTRAINT users_email_key;
                 ALTER TABLE user_credits DROP CONSTRAINT user_credits_credits_check;
                 ALTER TABLE sessions DROP CONSTRAINT sessions_user_id_fkey;",
            ),
            Backend::Sqlite => {
                rewrite_sqlite_table(&mut auth, "users", |sql| {
                    sql.replacen(
                        "email          TEXT NOT NULL UNIQUE",
                        "email          TEXT NOT NULL",
                        1,
                    )
                });
                rewrite_sqlite_table(&mut auth, "user_credits", |sql| {
                    sql.replacen(" CHECK (credits >= 0)", "", 1)
                });
                rewrite_sqlite_table(&mut auth, "sessions", |sql| {
                    sql.replacen(" REFERENCES users (id) ON DELETE CASCADE", "", 1)
                });
            }
        }
        exec(
            &mut auth,
            "UPDATE users SET email = 'same@x';
             UPDATE user_credits SET credits = -1 WHERE credits = 50;
             INSERT INTO sessions (id, user_id, token, expires_at)
                VALUES ('s-orphan', 'nobody', 't', '2030-01-01 00:00:00');",
        );
        let before = orch_tests::checksums::snapshots(pair);
        let (code, report) = json_of(
            orchestrator(pair),
            &["repair", "--store", "auth", "--force"],
        );
        assert_eq!(code, 3, "{report}");
        let steps = report["stores"][0]["steps"].as_array().expect("steps");
        let blocked = |table: &str| {
            steps
                .iter()
                .find(|s| s["table"] == table && s["class"] == "blocked_by_data")
                .unwrap_or_else(|| panic!("{table} is not blocked: {report}"))
                .clone()
        };
        let users = blocked("users");
        assert_eq!(users["rows"], 3, "every user shares the email: {users}");
        assert_eq!(users["sample"].as_array().map(Vec::len), Some(3), "{users}");
        let credits = blocked("user_credits");
        assert_eq!(credits["rows"], 1, "{credits}");
        let sessions = blocked("sessions");
        assert_eq!(
            sessions["sample"],
            serde_json::json!(["id=s-orphan"]),
            "{sessions}"
        );
        assert_eq!(
            orch_tests::checksums::snapshots(pair),
            before,
            "nothing changed"
        );
    });
}
