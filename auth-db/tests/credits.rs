//! The auth store's API on each backend: sign-up, grants, consumption under concurrency,
//! API-key credits, teams, and deletes that exercise every foreign key's ON DELETE.

use auth_db::credits::{
    balance, consume, consume_api_key_credits, grant, grant_api_key_credits, ledger_sum,
};
use auth_db::teams::{create_team, delete_team, pool_credits};
use auth_db::users::{delete_user, find_user, sign_up, NewUser};
use auth_db::AuthError;
use test_kit::{count, for_each_backend, TestPair};

fn migrated(pair: &TestPair) -> shared::Conn {
    let mut conn = pair.auth.connect();
    shared::migrations::run_pending(&mut conn, &auth_db::STORE, |_| {}).expect("migrate");
    conn
}

fn user(conn: &mut shared::Conn, email: &str, credits: i64) -> String {
    sign_up(
        conn,
        &NewUser {
            email,
            name: Some("Test"),
        },
        credits,
    )
    .expect("sign up")
    .id
}

#[test]
fn sign_up_grants_and_the_ledger_sums_to_the_balance() {
    for_each_backend("auth_api_signup", |pair| {
        let mut conn = migrated(pair);
        let id = user(&mut conn, "a@example.com", 100);
        assert_eq!(balance(&mut conn, &id).expect("balance"), 100);
        assert_eq!(
            count(&mut conn, "credit_transactions"),
            1,
            "the grant has its ledger row"
        );
        assert_eq!(grant(&mut conn, &id, 50, "top-up").expect("grant"), 150);
        assert_eq!(consume(&mut conn, &id, 120, "job").expect("consume"), 30);
        let err = consume(&mut conn, &id, 31, "too much").expect_err("overspend");
        assert!(
            matches!(
                err,
                AuthError::InsufficientCredits {
                    balance: 30,
                    requested: 31,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            balance(&mut conn, &id).expect("balance"),
            30,
            "a refused consume changes nothing"
        );
        assert_eq!(ledger_sum(&mut conn, &id).expect("sum"), 30);
        assert!(matches!(
            consume(&mut conn, &id, 0, "x"),
            Err(AuthError::InvalidAmount(0))
        ));
        assert!(matches!(
            grant(&mut conn, "nobody", 5, "x"),
            Err(AuthError::NotFound { .. })
        ));
        // A duplicate email is refused and leaves no half-made user behind.
        assert!(sign_up(
            &mut conn,
            &NewUser {
                email: "a@example.com",
                name: None
            },
            10
        )
        .is_err());
        assert_eq!(count(&mut conn, "users"), 1);
        assert_eq!(count(&mut conn, "user_credits"), 1);
    });
}

#[test]
fn thirty_two_threads_never_oversell_one_balance() {
    const THREADS: usize = 32;
    const ATTEMPTS: usize = 40;
    const GRANT: i64 = 700;
    for_each_backend("auth_api_concurrency", |pair| {
        let mut conn = migrated(pair);
        let id = user(&mut conn, "busy@example.com", GRANT);
        let (taken, refused) = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    let id = id.clone();
                    scope.spawn(move || {
                        let mut own = pair.auth.connect();
                        let (mut taken, mut refused) = (0i64, 0i64);
                        for _ in 0..ATTEMPTS {
                            match consume(&mut own, &id, 1, "concurrent") {
                                Ok(left) => {
                                    assert!(left >= 0);
                                    taken += 1;
                                }
                                Err(AuthError::InsufficientCredits { .. }) => refused += 1,
                                Err(e) => panic!("unexpected error: {e}"),
                            }
                        }
                        (taken, refused)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("worker"))
                .fold((0, 0), |(t, r), (t2, r2)| (t + t2, r + r2))
        });
        assert_eq!(
            taken, GRANT,
            "exactly the grant is sold on {}",
            pair.backend
        );
        assert_eq!(refused, (THREADS * ATTEMPTS) as i64 - GRANT);
        assert_eq!(balance(&mut conn, &id).expect("balance"), 0);
        assert_eq!(
            ledger_sum(&mut conn, &id).expect("sum"),
            0,
            "the ledger sums to the balance"
        );
        assert_eq!(
            count(&mut conn, "credit_transactions"),
            1 + GRANT,
            "one ledger row per sale"
        );
    });
}

#[test]
fn api_key_credits_and_teams() {
    for_each_backend("auth_api_keys_teams", |pair| {
        let mut conn = migrated(pair);
        let owner = user(&mut conn, "owner@example.com", 10);
        let member = user(&mut conn, "member@example.com", 10);
        let team = create_team(&mut conn, "Research", &owner).expect("team");
        let key =
            grant_api_key_credits(&mut conn, &member, "key-1", Some(&team.id), 5).expect("key");
        assert_eq!(
            consume_api_key_credits(&mut conn, &key.id, 3).expect("use key"),
            2
        );
        assert!(matches!(
            consume_api_key_credits(&mut conn, &key.id, 3),
            Err(AuthError::InsufficientCredits { balance: 2, .. })
        ));
        pool_credits(&mut conn, &member, Some(&team.id)).expect("pool");
        // NO ACTION: a team that pools credits cannot go.
        assert!(matches!(
            delete_team(&mut conn, &team.id),
            Err(AuthError::TeamInUse(_))
        ));
        pool_credits(&mut conn, &member, None).expect("unpool");
        grant(&mut conn, &member, 1, "before team goes").expect("grant");
        assert!(delete_team(&mut conn, &team.id).expect("delete team"));
        // CASCADE: the team's API-key credits went with it.
        assert_eq!(count(&mut conn, "api_key_credits"), 0);
        assert_eq!(count(&mut conn, "teams"), 0);
    });
}

#[test]
fn deleting_a_user_through_the_api_cascades_and_sets_null() {
    for_each_backend("auth_api_delete_user", |pair| {
        let mut conn = migrated(pair);
        let owner = user(&mut conn, "owner@example.com", 10);
        let member = user(&mut conn, "member@example.com", 10);
        let team = create_team(&mut conn, "Team", &owner).expect("team");
        grant_api_key_credits(&mut conn, &owner, "k-owner", None, 1).expect("key");
        grant_api_key_credits(&mut conn, &member, "k-team", Some(&team.id), 1).expect("key");
        test_kit::exec(
            &mut conn,
            &format!(
                "INSERT INTO credit_transactions (id, user_id, team_id, amount) VALUES ('t-ledger', '{member}', '{}', 0)",
                team.id
            ),
        );
        assert!(delete_user(&mut conn, &owner).expect("delete"));
        assert!(find_user(&mut conn, &owner).expect("find").is_none());
        assert!(
            !delete_user(&mut conn, &owner).expect("again"),
            "deleting twice finds nothing"
        );
        // owner's credits, ledger and key: CASCADE; owner's team: CASCADE, and with it the
        // member's team key (CASCADE) and the team on the member's ledger row (SET NULL).
        assert_eq!(count(&mut conn, "user_credits"), 1);
        assert_eq!(count(&mut conn, "api_key_credits"), 0);
        assert_eq!(count(&mut conn, "teams"), 0);
        assert_eq!(ledger_sum(&mut conn, &member).expect("sum"), 10);
        assert_eq!(
            count(&mut conn, "credit_transactions"),
            2,
            "the member's two ledger rows stay"
        );
        let team_of_row: Option<String> = shared::with_conn!(&mut conn, |c| {
            use auth_db::schema::credit_transactions::dsl::*;
            use diesel::prelude::*;
            credit_transactions
                .find("t-ledger")
                .select(team_id)
                .first(c)
                .expect("row")
        });
        assert_eq!(team_of_row, None, "credit_transactions.team_id SET NULL");
        assert_eq!(
            balance(&mut conn, &member).expect("balance"),
            ledger_sum(&mut conn, &member).expect("sum")
        );
    });
}
