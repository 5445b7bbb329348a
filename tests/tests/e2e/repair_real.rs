//! `repair` on databases shaped the way teams have them. On PostgreSQL: owned by a role
//! that is not a superuser, with an extension, another schema whose table references a
//! store's table and whose view reads it, grants to a reader role, row-level security,
//! and a writer committing throughout. The repair changes only what differs: everything
//! else keeps its rows, grants and policies, and every row the writer was told was
//! committed is there. On both backends, a view that reads a column the repair would
//! drop stops it, named, with nothing changed (PostgreSQL: another schema's materialized
//! view too, and in the dry run).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::RunQueryDsl;
use orch_tests::{exec, for_each_backend, json_of, orchestrator, TestPair};
use shared::{Backend, Conn};

use crate::support::role::{as_role, migrated_owner, Role};

#[derive(diesel::QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    v: String,
}

/// The one text value `sql` selects (as `v`).
fn text_of(conn: &mut Conn, sql: &str) -> String {
    shared::with_conn!(conn, |c| diesel::sql_query(sql).get_result::<Text>(c))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .v
}

/// What a team keeps beside the app store's tables, created by the owning role.
const APP_EXTRAS: &str = "
    CREATE EXTENSION IF NOT EXISTS citext;
    CREATE SCHEMA reporting;
    CREATE TABLE reporting.doc_notes (id int PRIMARY KEY,
        document_id text REFERENCES public.documents (id), note public.citext);
    CREATE VIEW reporting.files AS SELECT id, filename FROM public.documents;
    ALTER TABLE datasets ENABLE ROW LEVEL SECURITY;
    CREATE POLICY every_row ON datasets USING (true);
";

#[test]
fn a_repair_of_a_real_shaped_database_keeps_what_it_does_not_own_and_every_committed_row() {
    let Some(pair) = TestPair::new(Backend::Postgres, "repair_real") else {
        return;
    };
    let owner = migrated_owner(&pair, "reprown");
    let reader = Role::new(&pair, "reprread");
    let seeded = orch_tests::seed::contract_rows(&pair);
    let mut app_owner = owner.connect(&pair.app);
    exec(&mut app_owner, APP_EXTRAS);
    exec(
        &mut app_owner,
        &format!(
            "INSERT INTO reporting.doc_notes SELECT g, '{doc}', 'Note ' || g FROM generate_series(1, 5) g;
             GRANT USAGE ON SCHEMA public TO {r}; GRANT SELECT ON documents, datasets TO {r};",
            doc = seeded.document,
            r = reader.name
        ),
    );
    crate::repair::drift(&pair);
    // The drift's stray table is the owner's, as it would be had the application made it.
    exec(
        &mut pair.app.connect(),
        &format!("ALTER TABLE users OWNER TO {}", owner.name),
    );
    let notes = "SELECT string_agg(id || ':' || document_id || ':' || note, ',' ORDER BY id) AS v FROM reporting.doc_notes";
    let notes_before = text_of(&mut app_owner, notes);
    // Every table of auth, and every kept column of app's rows, before anything runs.
    let (auth_before, rows_before) = crate::repair::kept(&pair);

    let stop = Arc::new(AtomicBool::new(false));
    let owner_id = seeded.users[0].clone();
    let handle = orch_tests::writer::spawn(
        pair.app.url.clone(),
        stop.clone(),
        "w".into(),
        move |id| {
            format!("INSERT INTO datasets (id, owner_id, name) VALUES ('{id}', '{owner_id}', 'written')")
        },
    );
    std::thread::sleep(Duration::from_millis(100));
    let written = "SELECT count(*)::text AS v FROM datasets WHERE name = 'written'";
    let before_repair: usize = text_of(&mut pair.app.connect(), written)
        .parse()
        .expect("count");
    let (code, report) = json_of(as_role(&pair, &owner), &["repair"]);
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    let committed = handle.join().expect("writer");
    assert_eq!(code, 0, "{report}");
    for i in 0..2 {
        assert_eq!(report["stores"][i]["definitions"], "recorded", "{report}");
    }
    assert!(
        committed.len() > before_repair,
        "the writer went on committing through the repair ({before_repair} before, {} in all)",
        committed.len()
    );

    // diff compares with the recorded model: no scratch database, which this owner,
    // without CREATEDB, could not create.
    let (code, diff) = json_of(as_role(&pair, &owner), &["diff"]);
    assert_eq!(code, 0, "{diff}");
    let (code, verified) = json_of(as_role(&pair, &owner), &["verify"]);
    assert_eq!(code, 0, "{verified}");
    let mut app = pair.app.connect();
    let missing: Vec<&String> = committed
        .iter()
        .filter(|id| {
            text_of(
                &mut app,
                &format!("SELECT count(*)::text AS v FROM datasets WHERE id = '{id}'"),
            ) != "1"
        })
        .collect();
    assert!(missing.is_empty(), "committed rows lost: {missing:?}");
    // Everything the store does not own is as it was.
    assert_eq!(text_of(&mut app_owner, notes), notes_before);
    let (auth_after, rows_after) = crate::repair::kept(&pair);
    assert_eq!(auth_after, auth_before, "every table of auth is as it was");
    let rows_after: Vec<String> = rows_after
        .into_iter()
        .filter(|r| !committed.iter().any(|id| r.starts_with(&format!("{id}|"))))
        .collect();
    assert_eq!(
        rows_after, rows_before,
        "every kept column of app's rows is as it was"
    );
    assert_eq!(
        text_of(
            &mut app,
            "SELECT string_agg(filename, ',') AS v FROM reporting.files"
        ),
        "a.pdf"
    );
    assert_eq!(
        text_of(
            &mut app,
            "SELECT (relrowsecurity AND EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = c.oid AND polname = 'every_row'))::text AS v \
             FROM pg_class c WHERE oid = 'public.datasets'::regclass"
        ),
        "true",
        "row-level security and its policy stay"
    );
    assert_eq!(
        text_of(
            &mut app,
            "SELECT count(*)::text AS v FROM pg_extension WHERE extname = 'citext'"
        ),
        "1"
    );
    let mut as_reader = reader.connect(&pair.app);
    assert_eq!(
        text_of(&mut as_reader, "SELECT count(*)::text AS v FROM documents"),
        "1",
        "the reader's grants survive the repair"
    );
    println!(
        "REPAIR REAL {}: repaired under a writer ({} rows committed, none lost); grants, policy, extension, other schema kept",
        orch_tests::configuration(&pair.app),
        committed.len()
    );
}

#[test]
fn a_view_reading_a_column_the_repair_would_drop_stops_it_named() {
    for_each_backend("repair_view", |pair| {
        orchestrator(pair).arg("migrate").assert().success();
        orch_tests::seed::contract_rows(pair);
        let mut app = pair.app.connect();
        exec(
            &mut app,
            "ALTER TABLE documents ADD COLUMN legacy TEXT;
             CREATE VIEW doc_legacy AS SELECT id, legacy FROM documents;",
        );
        if pair.backend == Backend::Postgres {
            // Another schema's materialized view, too.
            exec(
                &mut app,
                "CREATE SCHEMA reporting;
                 CREATE MATERIALIZED VIEW reporting.legacy_docs AS SELECT legacy FROM public.documents;",
            );
        }
        let before = orch_tests::checksums::snapshot(&mut pair.app.connect());
        let output = orchestrator(pair).arg("repair").output().expect("repair");
        let stderr = String::from_utf8_lossy(&output.stderr);
        // PostgreSQL knows the view depends on the column and refuses before anything
        // runs; SQLite knows only once the table is rebuilt, and rolls back.
        let expected = match pair.backend {
            Backend::Postgres => 3,
            Backend::Sqlite => 4,
        };
        assert_eq!(output.status.code(), Some(expected), "{stderr}");
        assert!(stderr.contains("doc_legacy"), "{stderr}");
        if pair.backend == Backend::Postgres {
            assert!(stderr.contains("reporting.legacy_docs"), "{stderr}");
            let (code, plan) = json_of(orchestrator(pair), &["repair", "--dry-run"]);
            assert_eq!(code, 3, "the dry run says so too: {plan}");
            let step = &plan["stores"][1]["steps"][0];
            assert_eq!(step["class"], "blocked_by_dependents", "{plan}");
            assert_eq!(step["objects"].as_array().map(Vec::len), Some(2), "{plan}");
        }
        assert!(stderr.contains("nothing was changed"), "{stderr}");
        assert_eq!(
            orch_tests::checksums::snapshot(&mut pair.app.connect()),
            before,
            "nothing was changed"
        );
        assert_eq!(
            text_of(
                &mut app,
                "SELECT CAST(count(*) AS TEXT) AS v FROM doc_legacy"
            ),
            "1",
            "the view still reads"
        );

        // Once the views are gone, the repair goes through.
        exec(&mut app, "DROP VIEW doc_legacy");
        if pair.backend == Backend::Postgres {
            exec(&mut app, "DROP SCHEMA reporting CASCADE");
        }
        let (code, report) = json_of(orchestrator(pair), &["repair"]);
        assert_eq!(code, 0, "{report}");
    });
}
