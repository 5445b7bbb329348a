//! What the reset tests compare before and after a run, and what a clean reset is.

use orch_tests::{orchestrator, TestPair};
use shared::{catalog, Backend, Conn};

/// Everything that must survive a refused or failed run: per store, every table's rows
/// (as sorted text), the columns and the foreign keys.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub tables: Vec<(String, i64)>,
    pub columns: Vec<catalog::LiveColumn>,
    pub fks: Vec<catalog::LiveForeignKey>,
    pub user_ids: Vec<String>,
}

pub fn snapshot(conn: &mut Conn) -> Snapshot {
    let tables = catalog::tables(conn).expect("tables");
    let counts = catalog::row_counts(conn, &tables).expect("counts");
    let ids_of = |conn: &mut Conn, table: &str| -> Vec<String> {
        if !tables.iter().any(|t| t == table) {
            return Vec::new();
        }
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::Text)]
            id: String,
        }
        let sql = format!("SELECT id FROM {table} ORDER BY id");
        let rows: Vec<Id> = shared::with_conn!(conn, |c| diesel::RunQueryDsl::load(
            diesel::sql_query(sql),
            c
        ))
        .expect("ids");
        rows.into_iter().map(|r| r.id).collect()
    };
    let mut user_ids = ids_of(conn, "users");
    user_ids.extend(ids_of(conn, "datasets"));
    Snapshot {
        tables: counts,
        columns: catalog::columns(conn).expect("columns"),
        fks: catalog::foreign_keys(conn).expect("fks"),
        user_ids,
    }
}

pub fn seed(pair: &TestPair) {
    orchestrator(pair).arg("migrate").assert().success();
    orch_tests::seed_contract_rows(pair);
}

pub fn snapshots(pair: &TestPair) -> (Snapshot, Snapshot) {
    (
        snapshot(&mut pair.auth.connect()),
        snapshot(&mut pair.app.connect()),
    )
}

pub fn assert_clean_and_verified(pair: &TestPair) {
    for (store, mut conn) in [
        (&auth_db::STORE, pair.auth.connect()),
        (&app_db::STORE, pair.app.connect()),
    ] {
        orch_tests::assert_meets_contract(&mut conn, store, &pair.backend.to_string());
        let tables = catalog::tables(&mut conn).expect("tables");
        for (table, n) in catalog::row_counts(&mut conn, &tables).expect("counts") {
            assert_eq!(
                n, 0,
                "{}.{table} must be empty after a reset on {}",
                store.name, pair.backend
            );
        }
        let journal = shared::admin::journal_entries(&mut conn).expect("journal");
        assert!(journal.is_empty(), "journal must be cleared: {journal:?}");
        if pair.backend == Backend::Postgres {
            assert!(shared::admin::prepared_transactions(&mut conn)
                .expect("prepared")
                .is_empty());
        }
    }
}
