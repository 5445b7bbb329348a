//! What the reset tests compare before and after a run, and what a clean reset is.

use orch_tests::{orchestrator, TestPair};
use shared::{catalog, Backend};

pub fn seed(pair: &TestPair) {
    orchestrator(pair).arg("migrate").assert().success();
    orch_tests::seed::contract_rows(pair);
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
