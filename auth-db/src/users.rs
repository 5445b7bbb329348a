//! Signing up and deleting users. Sign-up creates the user, their credits row with the
//! initial grant, and the grant's ledger row, in one transaction.

use diesel::prelude::*;
use store_core::{with_conn, with_write_txn, Conn};

use crate::error::{AuthError, Result};
use crate::models::{new_id, now, User};
use crate::schema::{credit_transactions, user_credits, users};

pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
}

/// Creates a user with `initial_credits` (0 for none) and returns it.
pub fn sign_up(conn: &mut Conn, new: &NewUser<'_>, initial_credits: i64) -> Result<User> {
    if initial_credits < 0 {
        return Err(AuthError::InvalidAmount(initial_credits));
    }
    let id = new_id();
    with_write_txn!(conn, |c| {
        let at = now();
        diesel::insert_into(users::table)
            .values((
                users::id.eq(&id),
                users::email.eq(new.email),
                users::name.eq(new.name),
                users::created_at.eq(at),
                users::updated_at.eq(at),
            ))
            .execute(c)?;
        diesel::insert_into(user_credits::table)
            .values((
                user_credits::id.eq(new_id()),
                user_credits::user_id.eq(&id),
                user_credits::credits.eq(initial_credits),
                user_credits::updated_at.eq(at),
            ))
            .execute(c)?;
        if initial_credits > 0 {
            diesel::insert_into(credit_transactions::table)
                .values((
                    credit_transactions::id.eq(new_id()),
                    credit_transactions::user_id.eq(&id),
                    credit_transactions::amount.eq(initial_credits),
                    credit_transactions::reason.eq("sign-up grant"),
                    credit_transactions::created_at.eq(at),
                ))
                .execute(c)?;
        }
        users::table
            .find(&id)
            .select(User::as_select())
            .first(c)
            .map_err(AuthError::from)
    })
}

pub fn find_user(conn: &mut Conn, user_id: &str) -> Result<Option<User>> {
    with_conn!(conn, |c| users::table
        .find(user_id)
        .select(User::as_select())
        .first(c)
        .optional()
        .map_err(AuthError::from))
}

/// Deletes a user; the contract's foreign keys take their sessions, accounts, credits,
/// ledger, API-key credits and the teams they own with them. False if there was none.
pub fn delete_user(conn: &mut Conn, user_id: &str) -> Result<bool> {
    let deleted = with_conn!(conn, |c| diesel::delete(users::table.find(user_id))
        .execute(c))?;
    Ok(deleted == 1)
}
