//! Indexes: every index the migrations create, dropped one at a time, is named by verify
//! and diff as `missing_index`; an index rebuilt with another collation, or a partial
//! index rebuilt without its predicate, is named too, though its name and columns are
//! unchanged.

use std::collections::BTreeSet;

use orch_tests::{exec, for_each_backend, TestPair};
use serde_json::Value;
use shared::{Backend, Conn, Store};

use super::{assert_clean, assert_named_by_verify_and_diff, literal, migrated, texts, Expect};

/// The names of the indexes `store`'s history creates on `backend` (and does not drop
/// again), read from the migrations' SQL.
fn created_by_migrations(store: &Store, backend: Backend) -> BTreeSet<String> {
    let mut migrations: Vec<_> = store.migrations.sql_for(backend).iter().collect();
    migrations.sort_by_key(|m| m.name);
    let mut names = BTreeSet::new();
    for migration in migrations {
        let code: String = migration
            .up
            .lines()
            .map(|l| l.split("--").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let words: Vec<String> = code
            .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        for i in 0..upper.len() {
            let rest: Vec<&str> = upper[i..].iter().map(String::as_str).collect();
            let (skip, create) = match rest.as_slice() {
                ["CREATE", "UNIQUE", "INDEX", "IF", "NOT", "EXISTS", ..] => (6, true),
                ["CREATE", "INDEX", "IF", "NOT", "EXISTS", ..] => (5, true),
                ["CREATE", "UNIQUE", "INDEX", ..] => (3, true),
                ["CREATE", "INDEX", ..] => (2, true),
                ["DROP", "INDEX", "IF", "EXISTS", ..] => (4, false),
                ["DROP", "INDEX", ..] => (2, false),
                _ => continue,
            };
            let name = words[i + skip].trim_matches('"').to_string();
            if create {
                names.insert(name);
            } else {
                names.remove(&name);
            }
        }
    }
    names
}

/// The index names in a store's recorded PostgreSQL model.
fn recorded_index_names(store: &Store) -> BTreeSet<String> {
    let model: Value =
        serde_json::from_str(store.migrations.postgres_model).expect("recorded model JSON");
    let tables = model["tables"].as_object().expect("tables");
    tables
        .values()
        .flat_map(|t| t["indexes"].as_array().cloned().unwrap_or_default())
        .flat_map(|pair| pair[1].as_array().cloned().unwrap_or_default())
        .map(|name| name.as_str().unwrap_or_default().to_string())
        .collect()
}

/// The indexes of a live database that no key or constraint made, bookkeeping aside.
fn live_index_names(conn: &mut Conn) -> BTreeSet<String> {
    let sql = match conn.backend() {
        Backend::Postgres => {
            "SELECT ic.relname::text AS v FROM pg_index i
               JOIN pg_class ic ON ic.oid = i.indexrelid
               JOIN pg_class t ON t.oid = i.indrelid
               JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE n.nspname = current_schema() AND t.relname NOT LIKE '\\_\\_%'
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid
                               AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))"
        }
        // Indexes of keys and inline UNIQUEs are SQLite's own (`sqlite_autoindex_*`), with
        // no SQL.
        Backend::Sqlite => {
            "SELECT name AS v FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL
               AND tbl_name NOT LIKE '\\_\\_%' ESCAPE '\\'"
        }
    };
    texts(conn, sql).into_iter().collect()
}

/// An index's table and the statement that creates it again, from the catalog.
fn table_and_definition(conn: &mut Conn, index: &str) -> (String, String) {
    let name = literal(index);
    let (table, definition) = match conn.backend() {
        Backend::Postgres => {
            let from = format!(
                "FROM pg_indexes WHERE schemaname = current_schema() AND indexname = {name}"
            );
            (
                format!("SELECT tablename::text AS v {from}"),
                format!("SELECT indexdef AS v {from}"),
            )
        }
        Backend::Sqlite => {
            let from = format!("FROM sqlite_schema WHERE type = 'index' AND name = {name}");
            (
                format!("SELECT tbl_name AS v {from}"),
                format!("SELECT sql AS v {from}"),
            )
        }
    };
    let mut one = |sql: &str| {
        texts(conn, sql)
            .pop()
            .unwrap_or_else(|| panic!("no index {index}"))
    };
    (one(&table), one(&definition))
}

/// Drops each index the migrations create, one at a time: verify and diff must both name
/// it as missing, and nothing else; recreated from the catalog's own definition, the
/// store is clean again.
fn every_index_dropped_alone_is_named(pair: &TestPair, store: &Store, required: &[&str]) {
    migrated(pair);
    let mut conn = match store.name {
        "auth" => pair.auth.connect(),
        _ => pair.app.connect(),
    };
    let from_migrations = created_by_migrations(store, pair.backend);
    let live = live_index_names(&mut conn);
    assert_eq!(
        live, from_migrations,
        "{} {}: a fresh database holds the indexes the migrations create",
        pair.backend, store.name
    );
    if pair.backend == Backend::Postgres {
        assert_eq!(recorded_index_names(store), live, "the recorded model");
    }
    for name in required {
        assert!(
            live.contains(*name),
            "{} lacks {name}: {live:?}",
            pair.backend
        );
    }
    for index in &live {
        let (table, _) = table_and_definition(&mut conn, index);
        exec(&mut conn, &format!("DROP INDEX {index}"));
        let object = format!("`{index}`");
        let found = &assert_named_by_verify_and_diff(
            pair,
            store.name,
            &[Expect {
                kind: "missing_index",
                table: &table,
                object: &object,
            }],
        )[0];
        assert!(found["expected"].is_string(), "{found}");
        // The repair makes it again, as the migrations define it, keeping every row.
        super::assert_repaired(pair, store.name);
    }
    assert_clean(pair, store.name);
}

#[test]
fn every_auth_index_dropped_alone_is_named() {
    for_each_backend("drift_auth_indexes", |pair| {
        let required: &[&str] = match pair.backend {
            Backend::Postgres => &["users_id_c_idx", "teams_id_c_idx", "sessions_user_id_idx"],
            Backend::Sqlite => &["sessions_user_id_idx", "api_key_credits_team_id_idx"],
        };
        every_index_dropped_alone_is_named(pair, &auth_db::STORE, required);
    });
}

#[test]
fn every_app_index_dropped_alone_is_named() {
    for_each_backend("drift_app_indexes", |pair| {
        let required: &[&str] = match pair.backend {
            Backend::Postgres => &[
                "datasets_owner_id_c_idx",
                "datasets_team_id_c_idx",
                "datasets_team_id_idx",
            ],
            Backend::Sqlite => &["datasets_team_id_idx", "datasets_team_id_nn_idx"],
        };
        every_index_dropped_alone_is_named(pair, &app_db::STORE, required);
    });
}

/// An index recreated under its own name with `sql` (after `DROP INDEX index`): verify and
/// diff name the definition the migrations give it as missing and the new one as
/// unexpected. Returns (missing, unexpected) as verify reported them.
fn rebuilt_index_is_named(pair: &TestPair, index: &str, sql: &str) -> (Value, Value) {
    migrated(pair);
    exec(
        &mut pair.app.connect(),
        &format!("DROP INDEX {index}; {sql}"),
    );
    let object = format!("`{index}`");
    let found = assert_named_by_verify_and_diff(
        pair,
        "app",
        &[
            Expect {
                kind: "missing_index",
                table: "datasets",
                object: &object,
            },
            Expect {
                kind: "unexpected_index",
                table: "datasets",
                object: &object,
            },
        ],
    );
    (found[0].clone(), found[1].clone())
}

#[test]
fn an_index_rebuilt_with_another_collation_is_named() {
    for_each_backend("drift_index_collation", |pair| {
        let (missing, unexpected) = match pair.backend {
            // Without COLLATE "C" it is a second copy of datasets_owner_id_idx, and
            // verify's byte-order stream falls back to a sort of the whole table.
            Backend::Postgres => {
                let (missing, unexpected) = rebuilt_index_is_named(
                    pair,
                    "datasets_owner_id_c_idx",
                    "CREATE INDEX datasets_owner_id_c_idx ON datasets (owner_id)",
                );
                assert_eq!(
                    unexpected["duplicates"],
                    serde_json::json!(["datasets_owner_id_idx"]),
                    "{unexpected}"
                );
                (missing, unexpected)
            }
            // SQLite's default BINARY collation is byte order; NOCASE is not.
            Backend::Sqlite => rebuilt_index_is_named(
                pair,
                "datasets_owner_id_idx",
                "CREATE INDEX datasets_owner_id_idx ON datasets (owner_id COLLATE NOCASE)",
            ),
        };
        let expected = missing["expected"].as_str().unwrap_or_default();
        let found = unexpected["found"].as_str().unwrap_or_default();
        match pair.backend {
            Backend::Postgres => {
                assert!(expected.contains("COLLATE \"C\""), "{missing}");
                assert!(!found.contains("COLLATE"), "{unexpected}");
            }
            Backend::Sqlite => {
                assert!(!expected.contains("COLLATE"), "{missing}");
                assert!(found.contains("NOCASE"), "{unexpected}");
            }
        }
        super::assert_repaired(pair, "app");
    });
}

#[test]
fn a_partial_index_rebuilt_without_its_predicate_is_named() {
    for_each_backend("drift_index_predicate", |pair| {
        let (index, sql) = match pair.backend {
            Backend::Postgres => (
                "datasets_team_id_c_idx",
                "CREATE INDEX datasets_team_id_c_idx ON datasets (team_id COLLATE \"C\")",
            ),
            Backend::Sqlite => (
                "datasets_team_id_nn_idx",
                "CREATE INDEX datasets_team_id_nn_idx ON datasets (team_id)",
            ),
        };
        let (missing, unexpected) = rebuilt_index_is_named(pair, index, sql);
        // Predicates are compared normalised (lower case).
        let expected = missing["expected"].as_str().unwrap_or_default();
        assert!(
            expected.contains("WHERE") && expected.contains("team_id is not null"),
            "{missing}"
        );
        let found = unexpected["found"].as_str().unwrap_or_default();
        assert!(!found.contains("WHERE"), "{unexpected}");
        if pair.backend == Backend::Sqlite {
            // Without its predicate it is a second copy of datasets_team_id_idx.
            assert_eq!(
                unexpected["duplicates"],
                serde_json::json!(["datasets_team_id_idx"]),
                "{unexpected}"
            );
        }
        super::assert_repaired(pair, "app");
    });
}
