//! One kind of drift per test, each on a freshly migrated pair with that one change, named
//! by `verify` and by `diff` with its kind and object. PostgreSQL drifts by `ALTER TABLE`;
//! SQLite, which cannot drop or change a constraint, a type or a nullability in place,
//! by the table rebuild its documentation prescribes.

use orch_tests::{exec, for_each_backend, TestPair};
use shared::Backend;

use super::{
    assert_named_by_verify_and_diff, assert_repaired, edit_line, migrated, rebuild_sqlite_table,
    store, verify, verify_differences, Expect,
};

/// The name of a column as the compiled code's `diesel::table!` declares it: a column
/// the code reads cannot be renamed or dropped there without this failing to compile.
fn column_name<C: diesel::Column>(_: C) -> &'static str {
    C::NAME
}

/// A freshly migrated pair with `change` applied to one store.
fn drifted(pair: &TestPair, store_name: &str, change: impl FnOnce(&mut shared::Conn)) {
    migrated(pair);
    let mut conn = match store_name {
        "auth" => pair.auth.connect(),
        _ => pair.app.connect(),
    };
    change(&mut conn);
}

#[test]
fn a_dropped_column_the_code_reads_is_named_in_auth() {
    let token = column_name(auth_db::schema::sessions::token);
    for_each_backend("drift_dropped_token", |pair| {
        drifted(pair, "auth", |conn| match pair.backend {
            Backend::Postgres => exec(conn, "ALTER TABLE sessions DROP COLUMN token"),
            // A UNIQUE column cannot be dropped in place (SQLite refuses): rebuild.
            Backend::Sqlite => rebuild_sqlite_table(conn, "sessions", |sql| {
                let line = sql
                    .lines()
                    .find(|l| l.trim_start().starts_with("token "))
                    .unwrap_or_else(|| panic!("no token line in {sql}"));
                sql.replacen(&format!("{line}\n"), "", 1)
            }),
        });
        let expect = Expect {
            kind: "missing_column",
            table: "sessions",
            object: token,
        };
        let found = &assert_named_by_verify_and_diff(pair, "auth", &[expect])[0];
        assert_eq!(found["object"], token, "{found}");
        assert_eq!(found["found"], serde_json::Value::Null, "{found}");
        // The contract's table check does not see a column: the schema check is what
        // catches code that would fail at its first query.
        let (_, report) = verify(pair, &["--store", "auth"]);
        assert_eq!(
            store(&report, "auth")["tables"]["missing"],
            serde_json::json!([]),
            "{report}"
        );
        assert_repaired(pair, "auth");
    });
}

#[test]
fn a_dropped_column_the_code_reads_is_named_in_app() {
    let name = column_name(app_db::schema::datasets::name);
    for_each_backend("drift_dropped_name", |pair| {
        // A plain column: both backends drop it in place (SQLite 3.35+).
        drifted(pair, "app", |conn| {
            exec(conn, "ALTER TABLE datasets DROP COLUMN name")
        });
        let found = &assert_named_by_verify_and_diff(
            pair,
            "app",
            &[Expect {
                kind: "missing_column",
                table: "datasets",
                object: name,
            }],
        )[0];
        assert_eq!(found["object"], name, "{found}");
        let expected = found["expected"].as_str().unwrap_or_default();
        assert!(expected.starts_with("text NOT NULL"), "{found}");
        assert_repaired(pair, "app");
    });
}

#[test]
fn a_dropped_unique_is_named() {
    for_each_backend("drift_dropped_unique", |pair| {
        drifted(pair, "auth", |conn| match pair.backend {
            Backend::Postgres => exec(conn, "ALTER TABLE users DROP CONSTRAINT users_email_key"),
            // The unique is inline in CREATE TABLE: users is rebuilt without it.
            Backend::Sqlite => {
                rebuild_sqlite_table(conn, "users", |sql| edit_line(sql, "email ", " UNIQUE", ""))
            }
        });
        let found = &assert_named_by_verify_and_diff(
            pair,
            "auth",
            &[Expect {
                kind: "missing_unique",
                table: "users",
                object: "UNIQUE (email)",
            }],
        )[0];
        if pair.backend == Backend::Postgres {
            assert_eq!(
                found["object"], "`users_email_key` UNIQUE (email)",
                "{found}"
            );
        }
        assert_repaired(pair, "auth");
    });
}

#[test]
fn a_dropped_check_is_named() {
    for_each_backend("drift_dropped_check", |pair| {
        drifted(pair, "auth", |conn| match pair.backend {
            Backend::Postgres => exec(
                conn,
                "ALTER TABLE user_credits DROP CONSTRAINT user_credits_credits_check",
            ),
            Backend::Sqlite => rebuild_sqlite_table(conn, "user_credits", |sql| {
                edit_line(sql, "CHECK (credits", " CHECK (credits >= 0)", "")
            }),
        });
        let found = &assert_named_by_verify_and_diff(
            pair,
            "auth",
            &[Expect {
                kind: "missing_check",
                table: "user_credits",
                object: "credits",
            }],
        )[0];
        let object = found["object"].as_str().unwrap_or_default();
        assert!(object.contains(">=") && object.contains('0'), "{found}");
        assert_repaired(pair, "auth");
    });
}

#[test]
fn a_changed_type_is_named() {
    for_each_backend("drift_changed_type", |pair| {
        drifted(pair, "app", |conn| match pair.backend {
            Backend::Postgres => exec(
                conn,
                "ALTER TABLE documents ALTER COLUMN size_bytes TYPE TEXT",
            ),
            Backend::Sqlite => rebuild_sqlite_table(conn, "documents", |sql| {
                edit_line(sql, "size_bytes", "BIGINT", "TEXT")
            }),
        });
        let found = &assert_named_by_verify_and_diff(
            pair,
            "app",
            &[Expect {
                kind: "column_type",
                table: "documents",
                object: "size_bytes",
            }],
        )[0];
        assert_eq!(found["expected"], "bigint", "{found}");
        assert_eq!(found["found"], "text", "{found}");
        assert_repaired(pair, "app");
    });
}

#[test]
fn a_changed_nullability_is_named() {
    for_each_backend("drift_changed_null", |pair| {
        drifted(pair, "auth", |conn| match pair.backend {
            Backend::Postgres => exec(
                conn,
                "ALTER TABLE subscriptions ALTER COLUMN plan DROP NOT NULL",
            ),
            Backend::Sqlite => rebuild_sqlite_table(conn, "subscriptions", |sql| {
                edit_line(sql, "plan ", " NOT NULL", "")
            }),
        });
        let found = &assert_named_by_verify_and_diff(
            pair,
            "auth",
            &[Expect {
                kind: "column_nullability",
                table: "subscriptions",
                object: "plan",
            }],
        )[0];
        assert_eq!(found["expected"], "NOT NULL", "{found}");
        assert_eq!(found["found"], "NULL", "{found}");
        assert_repaired(pair, "auth");
    });
}

#[test]
fn a_duplicate_foreign_key_is_named_though_the_contract_sees_none() {
    for_each_backend("drift_duplicate_fk", |pair| {
        drifted(pair, "auth", |conn| match pair.backend {
            Backend::Postgres => exec(
                conn,
                "ALTER TABLE sessions ADD CONSTRAINT sessions_user_id_fkey1
                     FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE",
            ),
            // A second, table-level clause beside the column's own REFERENCES.
            Backend::Sqlite => rebuild_sqlite_table(conn, "sessions", |sql| {
                let end = sql.rfind(')').unwrap_or_else(|| panic!("{sql}"));
                format!(
                    "{},\n    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE\n{}",
                    sql[..end].trim_end(),
                    &sql[end..]
                )
            }),
        });
        let found = &assert_named_by_verify_and_diff(
            pair,
            "auth",
            &[Expect {
                kind: "unexpected_foreign_key",
                table: "sessions",
                object: "sessions.user_id → users.id",
            }],
        )[0];
        let duplicates = found["duplicates"].as_array().cloned().unwrap_or_default();
        assert_eq!(duplicates.len(), 1, "it duplicates the original: {found}");
        if pair.backend == Backend::Postgres {
            assert!(
                found["object"]
                    .as_str()
                    .is_some_and(|o| o.contains("sessions_user_id_fkey1")),
                "{found}"
            );
            assert_eq!(duplicates[0], "sessions_user_id_fkey", "{found}");
        }
        // The contract compares sets of foreign keys, so only the schema check counts it.
        let (_, report) = verify(pair, &["--store", "auth"]);
        let auth = store(&report, "auth");
        assert_eq!(auth["foreign_keys"]["mismatched"], serde_json::json!([]));
        assert_eq!(verify_differences(&report, "auth").len(), 1, "{report}");
        assert_repaired(pair, "auth");
    });
}

#[test]
fn a_duplicate_index_is_named() {
    for_each_backend("drift_duplicate_index", |pair| {
        drifted(pair, "auth", |conn| {
            exec(
                conn,
                "CREATE INDEX sessions_user_id_idx2 ON sessions (user_id)",
            )
        });
        let found = &assert_named_by_verify_and_diff(
            pair,
            "auth",
            &[Expect {
                kind: "unexpected_index",
                table: "sessions",
                object: "`sessions_user_id_idx2` (user_id)",
            }],
        )[0];
        assert_eq!(
            found["duplicates"],
            serde_json::json!(["sessions_user_id_idx"]),
            "{found}"
        );
        let advice = found["advice"].as_str().unwrap_or_default();
        assert!(advice.contains("sessions_user_id_idx"), "{found}");
        assert_repaired(pair, "auth");
    });
}

#[test]
fn a_dropped_foreign_key_is_listed_by_the_schema_check_but_counted_once() {
    for_each_backend("drift_dropped_fk", |pair| {
        drifted(pair, "auth", |conn| match pair.backend {
            Backend::Postgres => exec(
                conn,
                "ALTER TABLE sessions DROP CONSTRAINT sessions_user_id_fkey",
            ),
            Backend::Sqlite => rebuild_sqlite_table(conn, "sessions", |sql| {
                edit_line(
                    sql,
                    "REFERENCES users",
                    " REFERENCES users (id) ON DELETE CASCADE",
                    "",
                )
            }),
        });
        assert_named_by_verify_and_diff(
            pair,
            "auth",
            &[Expect {
                kind: "missing_foreign_key",
                table: "sessions",
                object: "sessions.user_id → users.id",
            }],
        );
        let (_, report) = verify(pair, &["--store", "auth"]);
        let missing = &store(&report, "auth")["foreign_keys"]["missing"];
        assert_eq!(missing.as_array().map(Vec::len), Some(1), "{report}");
        // The contract check names it too: one problem, not two.
        let out = orch_tests::orchestrator(pair)
            .args(["verify", "--store", "auth"])
            .output()
            .expect("verify");
        assert_eq!(out.status.code(), Some(1));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("1 problem(s) found"), "{stdout}");
        assert_repaired(pair, "auth");
    });
}
