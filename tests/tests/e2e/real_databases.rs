//! Reset and restore on PostgreSQL databases shaped the way teams really have them: owned
//! by a role that is not a superuser, with another tool's bookkeeping, an archive table
//! whose name starts with `__`, a used sequence, a materialized view, a function, an
//! extension, another schema that depends on the store's, a large object, row-level
//! security. What a reset would destroy is named, guarded, backed up, and restore brings
//! every table of every schema back.

use crate::support::role::{as_role, migrated_owner, Role};
use diesel::RunQueryDsl;

#[derive(diesel::QueryableByName)]
struct Schema {
    #[diesel(sql_type = diesel::sql_types::Text)]
    v: String,
}
use orch_tests::checksums::Checksums;
use orch_tests::{exec, json_of, TestPair};
use shared::Backend;

/// Checksums of every table in every schema, this tool's run journal aside (a restore
/// leaves it, emptied).
fn checksums(conn: &mut shared::Conn) -> Checksums {
    let mut sums = orch_tests::checksums::checksums(conn);
    sums.retain(|table, _| !table.ends_with(shared::admin::JOURNAL_TABLE));
    sums
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Everything besides the contract's tables that a team's auth database holds, created
/// by the owning role (the large object too).
const AUTH_EXTRAS: &str = "
    CREATE EXTENSION IF NOT EXISTS citext;
    CREATE TABLE __payouts_archive (id int PRIMARY KEY, amount bigint);
    INSERT INTO __payouts_archive SELECT g, g * 10 FROM generate_series(1, 1000) g;
    CREATE TABLE __drizzle_migrations (id serial PRIMARY KEY, hash text);
    INSERT INTO __drizzle_migrations (hash) VALUES ('0000_init');
    CREATE SEQUENCE invoice_number_seq;
    SELECT setval('invoice_number_seq', 50000);
    CREATE MATERIALIZED VIEW user_count AS SELECT count(*) AS n FROM users;
    CREATE FUNCTION normalise(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT lower($1)';
    CREATE SCHEMA billing;
    CREATE TABLE billing.invoices (id int PRIMARY KEY, customer_email public.citext,
        user_id text REFERENCES public.users (id));
    INSERT INTO billing.invoices SELECT g, 'c' || g || '@x', (SELECT min(id) FROM users) FROM generate_series(1, 20) g;
    CREATE VIEW billing.customers AS SELECT id, email FROM public.users;
    SELECT lo_from_bytea(0, 'a scanned contract');
";

#[test]
fn a_real_shaped_database_is_named_guarded_backed_up_and_restored_whole() {
    let Some(pair) = TestPair::new(Backend::Postgres, "real_db_whole") else {
        return;
    };
    let owner = migrated_owner(&pair, "owner");
    orch_tests::seed::contract_rows(&pair);
    let mut auth = owner.connect(&pair.auth);
    exec(&mut auth, AUTH_EXTRAS);
    // A reader role with grants in both schemas: restore brings them back with the rest.
    let reader = Role::new(&pair, "whole_reader");
    exec(
        &mut auth,
        &format!(
            "GRANT USAGE ON SCHEMA billing TO {r}; GRANT SELECT ON users, billing.invoices TO {r};",
            r = reader.name
        ),
    );
    let before = checksums(&mut pair.auth.connect());

    // The plan names everything, in text and as data.
    let (code, plan) = json_of(as_role(&pair, &owner), &["reset", "--dry-run"]);
    assert_eq!(code, 3, "{plan}");
    assert_eq!(plan["ok"], false);
    let inventory = &plan["stores"][0]["inventory"];
    let object = |kind: &str, name: &str| {
        inventory["objects"]
            .as_array()
            .and_then(|objects| {
                objects
                    .iter()
                    .find(|o| o["kind"] == kind && o["name"] == name)
            })
            .cloned()
            .unwrap_or_else(|| panic!("the inventory names {kind} {name}: {inventory}"))
    };
    assert_eq!(object("table", "__payouts_archive")["rows"], 1000);
    assert_eq!(object("table", "__drizzle_migrations")["rows"], 1);
    assert_eq!(object("sequence", "invoice_number_seq")["value"], 50000);
    assert_eq!(object("materialized view", "user_count")["rows"], 1);
    object("function", "normalise(text)");
    object("extension", "citext");
    assert_eq!(inventory["large_objects"], 1);
    let outside: Vec<String> = inventory["outside"]
        .as_array()
        .expect("outside")
        .iter()
        .map(|d| d["object"].as_str().unwrap_or_default().to_string())
        .collect();
    for expected in [
        "column customer_email of table billing.invoices",
        "view billing.customers",
    ] {
        assert!(
            outside.iter().any(|o| o == expected),
            "{expected} in {outside:?}"
        );
    }
    assert!(
        outside
            .iter()
            .any(|o| o.starts_with("constraint invoices_user_id_fkey")),
        "{outside:?}"
    );
    let refused = plan["refused"].as_str().unwrap_or_default();
    assert!(refused.contains("billing.customers"), "{refused}");

    // Without --force the data refuses it; with it, the dependents outside still do.
    let output = as_role(&pair, &owner)
        .args(["reset", "--drop-dependents"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    for named in [
        "__payouts_archive (1000 rows)",
        "invoice_number_seq (at 50000)",
        "1 large object(s)",
    ] {
        assert!(
            stderr(&output).contains(named),
            "{named}: {}",
            stderr(&output)
        );
    }
    let output = as_role(&pair, &owner)
        .args(["reset", "--force"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("view billing.customers (dropped"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        checksums(&mut pair.auth.connect()),
        before,
        "refusals change nothing"
    );

    // Forced and allowed: it runs, and its backup holds every schema.
    let (code, report) = json_of(
        as_role(&pair, &owner),
        &["reset", "--force", "--drop-dependents"],
    );
    assert_eq!(code, 0, "{report}");
    let backup = report["backup"]
        .as_str()
        .expect("a backup was taken")
        .to_string();
    let after_reset = checksums(&mut pair.auth.connect());
    assert!(
        !after_reset.keys().any(|t| t.contains("__payouts_archive")),
        "{after_reset:?}"
    );

    // Restore puts back the other schema, the extension, the sequence, the large object.
    let output = as_role(&pair, &owner)
        .args(["restore", &backup, "--force", "--drop-dependents"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        checksums(&mut pair.auth.connect()),
        before,
        "every table of every schema is back"
    );
    let mut check = pair.auth.connect();
    exec(
        &mut check,
        "DO $$ BEGIN
           IF (SELECT last_value FROM invoice_number_seq) <> 50000 THEN RAISE EXCEPTION 'sequence'; END IF;
           IF (SELECT count(*) FROM pg_largeobject_metadata) <> 1 THEN RAISE EXCEPTION 'large objects'; END IF;
           IF (SELECT count(*) FROM billing.customers) <> 3 THEN RAISE EXCEPTION 'view'; END IF;
           IF to_regtype('public.citext') IS NULL THEN RAISE EXCEPTION 'extension'; END IF;
         END $$;",
    );
    exec(
        &mut check,
        &format!(
            "DO $$ BEGIN
               IF NOT has_table_privilege('{r}', 'public.users', 'SELECT') THEN RAISE EXCEPTION 'users grant'; END IF;
               IF NOT has_table_privilege('{r}', 'billing.invoices', 'SELECT') THEN RAISE EXCEPTION 'billing grant'; END IF;
             END $$;",
            r = reader.name
        ),
    );
    drop(auth);
}

/// The pair owned by a role of its own, migrated and seeded, with every row of app's
/// `table` hidden from that owner by a policy it is subject to (FORCE).
fn hidden_from_the_owner(pair: &TestPair, label: &str, table: &str) -> Role {
    let owner = migrated_owner(pair, label);
    orch_tests::seed::contract_rows(pair);
    exec(
        &mut pair.app.connect(),
        &format!(
            "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY; ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
             CREATE POLICY nothing ON {table} USING (false);"
        ),
    );
    owner
}

/// Runs each of `runs` as `owner`, from whom row-level security hides rows: each is
/// refused (with exit `code`, or any failure where `None`), naming row-level security (and
/// `named`, when given); afterwards every table of app is as it was (`kept` says what that keeps).
fn refused_for_row_security(
    pair: &TestPair,
    owner: &Role,
    runs: &[&[&str]],
    code: Option<i32>,
    named: Option<&str>,
    kept: &str,
) {
    let before = checksums(&mut pair.app.connect());
    for flags in runs {
        let output = as_role(pair, owner).args(*flags).output().expect("run");
        let err = stderr(&output);
        match code {
            Some(code) => assert_eq!(output.status.code(), Some(code), "{flags:?}: {err}"),
            None => assert_ne!(output.status.code(), Some(0), "{flags:?}: {err}"),
        }
        assert!(
            err.contains("row-level security") && named.is_none_or(|n| err.contains(n)),
            "{flags:?}: {err}"
        );
    }
    assert_eq!(checksums(&mut pair.app.connect()), before, "{kept}");
}

#[test]
fn rows_hidden_by_row_level_security_are_never_under_counted() {
    let Some(pair) = TestPair::new(Backend::Postgres, "real_db_rls") else {
        return;
    };
    let owner = hidden_from_the_owner(&pair, "rls", "datasets");
    refused_for_row_security(
        &pair,
        &owner,
        &[
            &["reset"],
            &["reset", "--force"],
            &["reset", "--force", "--store", "app"],
        ],
        Some(3),
        Some("table datasets"),
        "2 datasets are still there",
    );
    // A role that bypasses row security counts them, and the reset backs them up.
    let (code, plan) = json_of(orch_tests::orchestrator(&pair), &["reset", "--dry-run"]);
    assert_eq!(code, 3, "{plan}");
    assert!(
        plan["refused"]
            .as_str()
            .unwrap_or_default()
            .contains("datasets (2 rows)"),
        "{plan}"
    );
}

/// Tables whose storage is empty are known to hold no row without a count; every other
/// table is counted, and an empty one hidden by row-level security is still unreadable.
#[test]
fn empty_storage_counts_as_no_rows_and_hides_nothing() {
    let Some(pair) = TestPair::new(Backend::Postgres, "real_db_empty") else {
        return;
    };
    let owner = migrated_owner(&pair, "empty");
    exec(
        &mut owner.connect(&pair.app),
        "CREATE TABLE emptied (id int); INSERT INTO emptied SELECT generate_series(1, 100);
         DELETE FROM emptied;
         CREATE TABLE truncated (id int); INSERT INTO truncated VALUES (1); TRUNCATE truncated;
         CREATE UNLOGGED TABLE kept (id int); INSERT INTO kept VALUES (1), (2), (3);
         CREATE TABLE parent (id int) PARTITION BY RANGE (id);
         CREATE TABLE part PARTITION OF parent FOR VALUES FROM (0) TO (10);
         INSERT INTO parent VALUES (5);",
    );
    let (code, plan) = json_of(as_role(&pair, &owner), &["reset", "--dry-run"]);
    assert_eq!(code, 3, "{plan}");
    let inventory = &plan["stores"][1]["inventory"];
    let rows = |name: &str| {
        inventory["objects"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["name"] == name))
            .map(|o| o["rows"].clone())
            .unwrap_or_else(|| panic!("{name} in {inventory}"))
    };
    assert_eq!(rows("emptied"), 0);
    assert_eq!(rows("truncated"), 0);
    assert_eq!(rows("kept"), 3);
    assert_eq!(
        rows("parent"),
        0,
        "a partitioned table's rows are its partitions'"
    );
    assert_eq!(rows("part"), 1);
    assert_eq!(rows("datasets"), 0);
    let refused = plan["refused"].as_str().unwrap_or_default();
    assert!(
        refused.contains("kept (3 rows)") && refused.contains("part (1 rows)"),
        "{refused}"
    );
    assert!(!refused.contains("emptied"), "{refused}");

    // An empty table the owner may not read whole is never taken as empty.
    exec(
        &mut pair.app.connect(),
        "DROP TABLE kept, parent; ALTER TABLE datasets ENABLE ROW LEVEL SECURITY;
         ALTER TABLE datasets FORCE ROW LEVEL SECURITY;
         CREATE POLICY nothing ON datasets USING (false);",
    );
    refused_for_row_security(
        &pair,
        &owner,
        &[&["reset", "--force", "--store", "app"]],
        Some(3),
        Some("table datasets"),
        "nothing was reset",
    );
}

#[test]
fn a_revert_never_under_counts_rows_hidden_by_row_level_security() {
    let Some(pair) = TestPair::new(Backend::Postgres, "real_db_rls_revert") else {
        return;
    };
    // app's second migration's down.sql drops documents, whose rows the owner cannot see.
    let owner = hidden_from_the_owner(&pair, "rlsrev", "documents");
    let revert = ["revert", "--store", "app", "--steps", "2"];
    refused_for_row_security(
        &pair,
        &owner,
        &[
            &revert,
            &[&revert[..], &["--force"]].concat(),
            &[&revert[..], &["--dry-run"]].concat(),
        ],
        None,
        None,
        "the documents are still there",
    );
    // A role that bypasses row security counts them: refused without --force.
    let output = orch_tests::orchestrator(&pair)
        .args(["revert", "--store", "app", "--steps", "2"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("table documents"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_repair_never_under_counts_rows_hidden_by_row_level_security() {
    let Some(pair) = TestPair::new(Backend::Postgres, "real_db_rls_repair") else {
        return;
    };
    // A column the migrations lack, holding values only in rows the owner cannot see.
    let owner = hidden_from_the_owner(&pair, "rlsrep", "datasets");
    exec(
        &mut pair.app.connect(),
        "ALTER TABLE datasets ADD COLUMN legacy TEXT; UPDATE datasets SET legacy = 'kept';",
    );
    let admin = orch_tests::pg_admin_url();
    let repair = ["repair", "--store", "app", "--shadow-url", &admin];
    refused_for_row_security(
        &pair,
        &owner,
        &[
            &repair,
            &[&repair[..], &["--force"]].concat(),
            &[&repair[..], &["--dry-run"]].concat(),
        ],
        Some(3),
        None,
        "the values are still there",
    );
}

#[test]
fn grants_default_privileges_and_the_schema_comment_survive_a_reset() {
    let Some(pair) = TestPair::new(Backend::Postgres, "real_db_access") else {
        return;
    };
    let owner = migrated_owner(&pair, "acl_owner");
    let reader = Role::new(&pair, "acl_reader");
    let mut auth = owner.connect(&pair.auth);
    exec(
        &mut auth,
        &format!(
            "GRANT USAGE ON SCHEMA public TO {r};
             GRANT SELECT ON users, sessions TO {r};
             CREATE TABLE scratch_notes (id int);
             GRANT SELECT ON scratch_notes TO {r};
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {r};
             COMMENT ON SCHEMA public IS 'auth: users and credits';",
            r = reader.name
        ),
    );
    drop(auth);
    let (code, report) = json_of(as_role(&pair, &owner), &["reset", "--force"]);
    assert_eq!(code, 0, "{report}");
    let access = &report["stores"][0]["outcome"]["access"];
    let listed = |key: &str| access[key].as_array().cloned().unwrap_or_default();
    assert!(
        listed("reapplied")
            .iter()
            .any(|g| g.as_str().is_some_and(|g| g.starts_with("table users:"))),
        "{access}"
    );
    assert!(
        listed("without_counterpart").iter().any(|g| g
            .as_str()
            .is_some_and(|g| g.starts_with("table scratch_notes:"))),
        "the dropped table's grant is named, not applied: {access}"
    );
    let mut check = pair.auth.connect();
    exec(
        &mut check,
        &format!(
            "DO $$ BEGIN
               IF NOT has_table_privilege('{r}', 'public.users', 'SELECT') THEN RAISE EXCEPTION 'users grant'; END IF;
               IF NOT has_table_privilege('{r}', 'public.sessions', 'SELECT') THEN RAISE EXCEPTION 'sessions grant'; END IF;
               IF NOT has_schema_privilege('{r}', 'public', 'USAGE') THEN RAISE EXCEPTION 'schema usage'; END IF;
               -- Default privileges: every table the migrations created is readable too.
               IF NOT has_table_privilege('{r}', 'public.verifications', 'SELECT') THEN RAISE EXCEPTION 'default privileges'; END IF;
               IF obj_description('public'::regnamespace, 'pg_namespace') IS DISTINCT FROM 'auth: users and credits'
                 THEN RAISE EXCEPTION 'comment'; END IF;
             END $$;",
            r = reader.name
        ),
    );
}

#[test]
fn each_store_works_in_its_own_schema_whatever_the_roles_search_path() {
    let Some(pair) = TestPair::new(Backend::Postgres, "real_db_schema") else {
        return;
    };
    let alice = Role::new(&pair, "alice");
    alice.own(&pair.auth);
    alice.own(&pair.app);
    as_role(&pair, &alice).arg("migrate").assert().success();
    orch_tests::seed::contract_rows(&pair);
    // The per-user pattern PostgreSQL's documentation recommends: a schema named after
    // the role, first on its default search_path ("$user", public).
    exec(
        &mut pair.auth.connect(),
        &format!("CREATE SCHEMA {r} AUTHORIZATION {r};", r = alice.name),
    );
    let (code, status) = json_of(as_role(&pair, &alice), &["status"]);
    assert_eq!(code, 0, "{status}");
    let auth = &status["stores"][0];
    assert_eq!(auth["schema"], "public", "{status}");
    assert_eq!(
        auth["pending"].as_array().map(Vec::len),
        Some(0),
        "{status}"
    );
    as_role(&pair, &alice).arg("migrate").assert().success();
    let tables_in = |schema: &str| {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = pair.auth.connect();
        let shared::Conn::Postgres(pg) = &mut conn else {
            unreachable!()
        };
        diesel::RunQueryDsl::get_result::<N>(
            diesel::sql_query(format!(
                "SELECT count(*) AS n FROM pg_tables WHERE schemaname = '{schema}'"
            )),
            pg,
        )
        .expect("count")
        .n
    };
    assert_eq!(tables_in(&alice.name), 0, "no second, empty set of tables");
    let (code, plan) = json_of(
        as_role(&pair, &alice),
        &["reset", "--dry-run", "--store", "auth"],
    );
    assert_eq!(code, 3, "{plan}");
    assert_eq!(plan["stores"][0]["inventory"]["schema"], "public");
    assert_eq!(plan["stores"][0]["rows_before"], 8, "{plan}");

    // A schema of its own, configured: migrate creates it and works there, reset
    // replaces only it.
    std::fs::write(
        pair.path().join("orchestrator.toml"),
        "[default]\nauth_schema = \"tenant_a\"\n",
    )
    .expect("write the profile");
    orch_tests::orchestrator(&pair)
        .arg("migrate")
        .assert()
        .success();
    assert_eq!(
        tables_in("tenant_a"),
        tables_in("public"),
        "the whole store in tenant_a"
    );
    let (code, status) = json_of(orch_tests::orchestrator(&pair), &["status"]);
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["stores"][0]["schema"], "tenant_a");
    let public_before = checksums(&mut pair.auth.connect())
        .into_iter()
        .filter(|(t, _)| t.starts_with("public."))
        .collect::<Vec<_>>();
    let (code, report) = json_of(
        orch_tests::orchestrator(&pair),
        &["reset", "--force", "--store", "auth", "--drop-dependents"],
    );
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["stores"][0]["outcome"]["inventory"]["schema"],
        "tenant_a"
    );
    let public_after = checksums(&mut pair.auth.connect())
        .into_iter()
        .filter(|(t, _)| t.starts_with("public."))
        .collect::<Vec<_>>();
    assert_eq!(
        public_after, public_before,
        "public is not the store's any more: untouched"
    );

    // repair works in the store's schema too: an index the migrations make, dropped
    // there, is made again there (its recorded SQL names no schema).
    exec(
        &mut pair.auth.connect(),
        "DROP INDEX tenant_a.sessions_user_id_idx",
    );
    let (code, report) = json_of(
        orch_tests::orchestrator(&pair),
        &["repair", "--store", "auth"],
    );
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["stores"][0]["definitions"], "recorded", "{report}");
    let (code, diff) = json_of(
        orch_tests::orchestrator(&pair),
        &["diff", "--store", "auth"],
    );
    assert_eq!(code, 0, "{diff}");
    let public_after_repair = checksums(&mut pair.auth.connect())
        .into_iter()
        .filter(|(t, _)| t.starts_with("public."))
        .collect::<Vec<_>>();
    assert_eq!(
        public_after_repair, public_before,
        "public untouched by the repair"
    );
    let mut conn = pair.auth.connect();
    let schemas: Vec<Schema> = shared::with_conn!(&mut conn, |c| diesel::sql_query(
        "SELECT schemaname::text AS v FROM pg_indexes \
         WHERE indexname = 'sessions_user_id_idx' ORDER BY 1"
    )
    .load(c))
    .expect("indexes");
    let schemas: Vec<String> = schemas.into_iter().map(|s| s.v).collect();
    assert_eq!(
        schemas,
        ["public", "tenant_a"],
        "made again in tenant_a only"
    );
}
