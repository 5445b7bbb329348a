//! The credit ledger. Every change of a balance and its ledger row are written in one
//! transaction, so a user's balance always equals the sum of their ledger. Consuming is
//! one conditional `UPDATE … WHERE credits >= amount`: concurrent consumers serialise on
//! the row and can never take a balance below zero or spend the same credit twice.

use diesel::prelude::*;
use store_core::{with_conn, with_write_txn, Conn};

use crate::error::{AuthError, Result};
use crate::models::{new_id, now, ApiKeyCredits};
use crate::schema::{api_key_credits, credit_transactions, user_credits};

/// Writes a ledger row (a macro, so one text serves both backends' connection types).
macro_rules! record {
    ($c:expr, $user_id:expr, $amount:expr, $reason:expr) => {
        diesel::insert_into(credit_transactions::table)
            .values((
                credit_transactions::id.eq(new_id()),
                credit_transactions::user_id.eq($user_id),
                credit_transactions::amount.eq($amount),
                credit_transactions::reason.eq($reason),
                credit_transactions::created_at.eq(now()),
            ))
            .execute($c)
    };
}

fn positive(amount: i64) -> Result<()> {
    if amount > 0 {
        Ok(())
    } else {
        Err(AuthError::InvalidAmount(amount))
    }
}

/// Adds credits; returns the new balance.
pub fn grant(conn: &mut Conn, user_id: &str, amount: i64, reason: &str) -> Result<i64> {
    positive(amount)?;
    with_write_txn!(conn, |c| {
        let balance: Option<i64> =
            diesel::update(user_credits::table.filter(user_credits::user_id.eq(user_id)))
                .set((
                    user_credits::credits.eq(user_credits::credits + amount),
                    user_credits::updated_at.eq(now()),
                ))
                .returning(user_credits::credits)
                .get_result(c)
                .optional()?;
        let balance = balance.ok_or_else(|| AuthError::not_found("credits of user", user_id))?;
        record!(c, user_id, amount, reason)?;
        Ok(balance)
    })
}

/// Takes credits, or fails with [`AuthError::InsufficientCredits`] leaving the balance
/// untouched; returns the new balance.
pub fn consume(conn: &mut Conn, user_id: &str, amount: i64, reason: &str) -> Result<i64> {
    positive(amount)?;
    with_write_txn!(conn, |c| {
        let balance: Option<i64> = diesel::update(
            user_credits::table
                .filter(user_credits::user_id.eq(user_id))
                .filter(user_credits::credits.ge(amount)),
        )
        .set((
            user_credits::credits.eq(user_credits::credits - amount),
            user_credits::updated_at.eq(now()),
        ))
        .returning(user_credits::credits)
        .get_result(c)
        .optional()?;
        let Some(balance) = balance else {
            let current: Option<i64> = user_credits::table
                .filter(user_credits::user_id.eq(user_id))
                .select(user_credits::credits)
                .first(c)
                .optional()?;
            return Err(match current {
                None => AuthError::not_found("credits of user", user_id),
                Some(balance) => AuthError::InsufficientCredits {
                    user_id: user_id.to_string(),
                    balance,
                    requested: amount,
                },
            });
        };
        record!(c, user_id, -amount, reason)?;
        Ok(balance)
    })
}

pub fn balance(conn: &mut Conn, user_id: &str) -> Result<i64> {
    let balance: Option<i64> = with_conn!(conn, |c| user_credits::table
        .filter(user_credits::user_id.eq(user_id))
        .select(user_credits::credits)
        .first(c)
        .optional())?;
    balance.ok_or_else(|| AuthError::not_found("credits of user", user_id))
}

/// The sum of a user's ledger: equals [`balance`] at every commit.
pub fn ledger_sum(conn: &mut Conn, user_id: &str) -> Result<i64> {
    // SUM(BIGINT) is NUMERIC in PostgreSQL; cast back so both backends give an i64.
    let total =
        diesel::dsl::sql::<diesel::sql_types::BigInt>("CAST(COALESCE(SUM(amount), 0) AS BIGINT)");
    let sum: i64 = with_conn!(conn, |c| credit_transactions::table
        .filter(credit_transactions::user_id.eq(user_id))
        .select(total.clone())
        .first(c))?;
    Ok(sum)
}

/// Gives an API key of `user_id` (optionally billed to a team) its own balance.
pub fn grant_api_key_credits(
    conn: &mut Conn,
    user_id: &str,
    api_key_id: &str,
    team_id: Option<&str>,
    amount: i64,
) -> Result<ApiKeyCredits> {
    positive(amount)?;
    let id = new_id();
    with_write_txn!(conn, |c| {
        diesel::insert_into(api_key_credits::table)
            .values((
                api_key_credits::id.eq(&id),
                api_key_credits::user_id.eq(user_id),
                api_key_credits::team_id.eq(team_id),
                api_key_credits::api_key_id.eq(api_key_id),
                api_key_credits::credits.eq(amount),
                api_key_credits::created_at.eq(now()),
            ))
            .execute(c)?;
        api_key_credits::table
            .find(&id)
            .select(ApiKeyCredits::as_select())
            .first(c)
            .map_err(AuthError::from)
    })
}

/// Takes credits from an API key's balance, never below zero; returns the new balance.
pub fn consume_api_key_credits(conn: &mut Conn, id: &str, amount: i64) -> Result<i64> {
    positive(amount)?;
    let balance: Option<i64> = with_conn!(conn, |c| diesel::update(
        api_key_credits::table
            .find(id)
            .filter(api_key_credits::credits.ge(amount))
    )
    .set(api_key_credits::credits.eq(api_key_credits::credits - amount))
    .returning(api_key_credits::credits)
    .get_result(c)
    .optional())?;
    match balance {
        Some(b) => Ok(b),
        None => {
            let current: Option<(String, i64)> = with_conn!(conn, |c| api_key_credits::table
                .find(id)
                .select((api_key_credits::user_id, api_key_credits::credits))
                .first(c)
                .optional())?;
            match current {
                None => Err(AuthError::not_found("API-key credits", id)),
                Some((user_id, balance)) => Err(AuthError::InsufficientCredits {
                    user_id,
                    balance,
                    requested: amount,
                }),
            }
        }
    }
}
