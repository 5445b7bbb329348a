//! `auth_db::pool`: the entry point for services. Sixteen threads share a pool of four
//! connections and sell one balance exactly once per credit; no more than four
//! connections are ever open; each is set up as the orchestrator's own.

use auth_db::credits::{balance, consume, ledger_sum};
use auth_db::users::{sign_up, NewUser};
use auth_db::AuthError;
use test_kit::for_each_backend;

#[derive(diesel::QueryableByName)]
struct Setting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    v: String,
}

/// What a pooled connection says of its setup: PostgreSQL's lock bound, SQLite's
/// foreign-key enforcement.
fn setup_of(conn: &mut shared::Conn) -> String {
    let sql = match conn {
        shared::Conn::Postgres(_) => "SELECT current_setting('lock_timeout') AS v",
        shared::Conn::Sqlite(_) => {
            "SELECT CAST(foreign_keys AS TEXT) AS v FROM pragma_foreign_keys"
        }
    };
    let row: Setting = shared::with_conn!(conn, |c| diesel::RunQueryDsl::get_result(
        diesel::sql_query(sql),
        c
    ))
    .expect("setting");
    row.v
}

#[test]
fn sixteen_threads_share_four_pooled_connections_and_never_oversell() {
    const THREADS: usize = 16;
    const ATTEMPTS: usize = 20;
    const GRANT: i64 = 150;
    for_each_backend("auth_pool", |pair| {
        let pool = auth_db::pool(&pair.auth.url, 4);
        assert_eq!(pool.state().connections, 0, "nothing opened before use");
        let id = {
            let mut conn = pool.get().expect("checkout");
            shared::migrations::run_pending(&mut conn, &auth_db::STORE, |_| {}).expect("migrate");
            let expected = match pair.backend {
                shared::Backend::Postgres => "30s",
                shared::Backend::Sqlite => "1",
            };
            assert_eq!(setup_of(&mut conn), expected, "{}", pair.backend);
            let new = NewUser {
                email: "pooled@example.com",
                name: None,
            };
            sign_up(&mut conn, &new, GRANT).expect("sign up").id
        };
        let sold: i64 = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    let (pool, id) = (&pool, &id);
                    scope.spawn(move || {
                        let mut sold = 0;
                        for _ in 0..ATTEMPTS {
                            let mut conn = pool.get().expect("checkout");
                            match consume(&mut conn, id, 1, "pooled") {
                                Ok(_) => sold += 1,
                                Err(AuthError::InsufficientCredits { .. }) => {}
                                Err(e) => panic!("unexpected error: {e}"),
                            }
                        }
                        sold
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().expect("worker")).sum()
        });
        assert_eq!(sold, GRANT, "exactly the grant is sold on {}", pair.backend);
        assert!(pool.state().connections <= 4, "{:?}", pool.state());
        let mut conn = pool.get().expect("checkout");
        assert_eq!(balance(&mut conn, &id).expect("balance"), 0);
        assert_eq!(ledger_sum(&mut conn, &id).expect("sum"), 0);
    });
}

#[test]
fn a_connection_handed_back_inside_a_transaction_is_closed_not_reused() {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    for_each_backend("auth_pool_txn", |pair| {
        let pool = auth_db::pool(&pair.auth.url, 1);
        {
            let mut conn = pool.get().expect("checkout");
            shared::migrations::run_pending(&mut conn, &auth_db::STORE, |_| {}).expect("migrate");
            shared::with_conn!(&mut *conn, |c| AnsiTransactionManager::begin_transaction(c))
                .expect("begin");
            let new = NewUser {
                email: "never@example.com",
                name: None,
            };
            sign_up(&mut conn, &new, 10).expect("sign up inside the open transaction");
            assert!(shared::db::transaction_left_open(&mut conn));
        }
        // The one connection went back with its transaction open: the pool closed it.
        assert_eq!(
            pool.state().connections,
            0,
            "{:?} on {}",
            pool.state(),
            pair.backend
        );
        let mut conn = pool.get().expect("a new connection");
        assert!(!shared::db::transaction_left_open(&mut conn));
        assert_eq!(
            test_kit::count(&mut conn, "users"),
            0,
            "the abandoned transaction's row is gone, not committed by a later user, on {}",
            pair.backend
        );
    });
}
