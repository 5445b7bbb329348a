//! The auth store on each backend: its migrations produce exactly the contract, the
//! contract's minimal rows insert through `schema.rs`, and deleting a user or a team acts
//! as each foreign key's ON DELETE says.

use auth_db::schema::{
    accounts, api_key_credits, credit_transactions, sessions, subscriptions, teams, user_credits,
    users, verifications,
};
use diesel::prelude::*;
use shared::with_conn;
use test_kit::{assert_migrates_to_contract, count, exec, for_each_backend};

#[test]
fn migrations_produce_exactly_the_contract() {
    for_each_backend("auth_contract", |pair| {
        let mut conn = pair.auth.connect();
        assert_migrates_to_contract(&mut conn, &auth_db::STORE);
    });
}

/// Inserts one row per table with only the columns the contract names, through the
/// diesel schema (so `schema.rs` and the migrations must agree).
fn insert_minimal_rows(conn: &mut shared::Conn) {
    let now = chrono::Utc::now().naive_utc();
    let result: QueryResult<()> = with_conn!(conn, |c| {
        c.transaction(|c| {
            diesel::insert_into(users::table)
                .values((users::id.eq("u1"), users::email.eq("u1@example.com")))
                .execute(c)?;
            diesel::insert_into(teams::table)
                .values((
                    teams::id.eq("t1"),
                    teams::name.eq("team"),
                    teams::owner_id.eq("u1"),
                ))
                .execute(c)?;
            diesel::insert_into(sessions::table)
                .values((
                    sessions::id.eq("s1"),
                    sessions::user_id.eq("u1"),
                    sessions::token.eq("tok"),
                    sessions::expires_at.eq(now),
                ))
                .execute(c)?;
            diesel::insert_into(accounts::table)
                .values((
                    accounts::id.eq("a1"),
                    accounts::user_id.eq("u1"),
                    accounts::account_id.eq("gh-1"),
                    accounts::provider_id.eq("github"),
                ))
                .execute(c)?;
            diesel::insert_into(verifications::table)
                .values((
                    verifications::id.eq("v1"),
                    verifications::identifier.eq("u1@example.com"),
                    verifications::value.eq("123456"),
                    verifications::expires_at.eq(now),
                ))
                .execute(c)?;
            diesel::insert_into(subscriptions::table)
                .values((
                    subscriptions::id.eq("sub1"),
                    subscriptions::reference_id.eq("u1"),
                    subscriptions::plan.eq("pro"),
                    subscriptions::status.eq("active"),
                ))
                .execute(c)?;
            diesel::insert_into(user_credits::table)
                .values((user_credits::id.eq("uc1"), user_credits::user_id.eq("u1")))
                .execute(c)?;
            diesel::insert_into(credit_transactions::table)
                .values((
                    credit_transactions::id.eq("ct1"),
                    credit_transactions::user_id.eq("u1"),
                    credit_transactions::amount.eq(10i64),
                ))
                .execute(c)?;
            diesel::insert_into(api_key_credits::table)
                .values((
                    api_key_credits::id.eq("ak1"),
                    api_key_credits::user_id.eq("u1"),
                ))
                .execute(c)?;
            Ok(())
        })
    });
    result.expect("the contract's minimal rows must insert");
}

#[test]
fn minimal_contract_rows_insert_and_read_back() {
    for_each_backend("auth_minimal_rows", |pair| {
        let mut conn = pair.auth.connect();
        assert_migrates_to_contract(&mut conn, &auth_db::STORE);
        insert_minimal_rows(&mut conn);
        for table in auth_db::STORE.tables {
            assert_eq!(count(&mut conn, table), 1, "{table} on {}", pair.backend);
        }
        // Defaults fill what the contract leaves open: a fresh balance is 0.
        let credits: i64 = with_conn!(&mut conn, |c| user_credits::table
            .select(user_credits::credits)
            .first(c)
            .expect("credits"));
        assert_eq!(credits, 0);
        // A balance can never go below zero.
        let negative = conn.batch_execute("UPDATE user_credits SET credits = -1");
        assert!(
            negative.is_err(),
            "CHECK (credits >= 0) must hold on {}",
            pair.backend
        );
    });
}

#[test]
fn deleting_a_user_cascades_as_the_contract_says() {
    for_each_backend("auth_user_cascade", |pair| {
        let mut conn = pair.auth.connect();
        assert_migrates_to_contract(&mut conn, &auth_db::STORE);
        exec(
            &mut conn,
            "INSERT INTO users (id, email) VALUES ('owner', 'o@x'), ('member', 'm@x');
             INSERT INTO teams (id, name, owner_id) VALUES ('t1', 'team', 'owner');
             INSERT INTO sessions (id, user_id, token, expires_at) VALUES ('s1', 'owner', 'a', '2030-01-01 00:00:00');
             INSERT INTO accounts (id, user_id, account_id, provider_id) VALUES ('a1', 'owner', 'x', 'github');
             INSERT INTO user_credits (id, user_id) VALUES ('uc1', 'owner'), ('uc2', 'member');
             INSERT INTO credit_transactions (id, user_id, team_id, amount)
                 VALUES ('ct1', 'owner', 't1', 5), ('ct2', 'member', 't1', 7);
             INSERT INTO api_key_credits (id, user_id, team_id) VALUES ('k1', 'owner', NULL), ('k2', 'member', 't1');",
        );
        exec(&mut conn, "DELETE FROM users WHERE id = 'owner'");
        // CASCADE from users: the owner's sessions, accounts, credits, ledger, keys, team.
        for (table, left) in [
            ("users", 1),
            ("sessions", 0),
            ("accounts", 0),
            ("teams", 0),
            ("user_credits", 1),
            ("credit_transactions", 1),
            ("api_key_credits", 0),
        ] {
            assert_eq!(count(&mut conn, table), left, "{table} on {}", pair.backend);
        }
        // The team went with its owner: the member's ledger row keeps its amount and loses
        // the team (SET NULL); the member's team key went with the team (CASCADE).
        let team_ids: Vec<Option<String>> = with_conn!(&mut conn, |c| credit_transactions::table
            .select(credit_transactions::team_id)
            .load(c)
            .expect("ledger"));
        assert_eq!(
            team_ids,
            [None],
            "credit_transactions.team_id SET NULL on {}",
            pair.backend
        );
    });
}

#[test]
fn a_team_that_pools_credits_cannot_be_deleted() {
    for_each_backend("auth_team_no_action", |pair| {
        let mut conn = pair.auth.connect();
        assert_migrates_to_contract(&mut conn, &auth_db::STORE);
        exec(
            &mut conn,
            "INSERT INTO users (id, email) VALUES ('owner', 'o@x'), ('member', 'm@x');
             INSERT INTO teams (id, name, owner_id) VALUES ('t1', 'team', 'owner');
             INSERT INTO user_credits (id, user_id, team_id) VALUES ('uc2', 'member', 't1');",
        );
        // user_credits.team_id is NO ACTION: neither the team nor its owner can go while a
        // member's balance is pooled in it.
        assert!(
            conn.batch_execute("DELETE FROM teams WHERE id = 't1'")
                .is_err(),
            "{}",
            pair.backend
        );
        assert!(
            conn.batch_execute("DELETE FROM users WHERE id = 'owner'")
                .is_err(),
            "{}",
            pair.backend
        );
        assert_eq!(count(&mut conn, "teams"), 1);
        exec(
            &mut conn,
            "UPDATE user_credits SET team_id = NULL; DELETE FROM teams WHERE id = 't1';",
        );
        assert_eq!(count(&mut conn, "teams"), 0);
        assert_eq!(count(&mut conn, "user_credits"), 1);
    });
}
