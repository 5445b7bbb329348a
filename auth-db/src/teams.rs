//! Teams and the pooling of members' credits into them.

use diesel::prelude::*;
use store_core::{with_conn, Conn};

use crate::error::{AuthError, Result};
use crate::models::{new_id, now, Team};
use crate::schema::{teams, user_credits};

pub fn create_team(conn: &mut Conn, name: &str, owner_id: &str) -> Result<Team> {
    let id = new_id();
    with_conn!(conn, |c| {
        diesel::insert_into(teams::table)
            .values((
                teams::id.eq(&id),
                teams::name.eq(name),
                teams::owner_id.eq(owner_id),
                teams::created_at.eq(now()),
            ))
            .execute(c)?;
        teams::table
            .find(&id)
            .select(Team::as_select())
            .first(c)
            .map_err(AuthError::from)
    })
}

/// Puts a user's credits into a team's pool (`Some`) or takes them out (`None`).
pub fn pool_credits(conn: &mut Conn, user_id: &str, team_id: Option<&str>) -> Result<()> {
    let updated = with_conn!(conn, |c| diesel::update(
        user_credits::table.filter(user_credits::user_id.eq(user_id))
    )
    .set(user_credits::team_id.eq(team_id))
    .execute(c))?;
    if updated == 0 {
        return Err(AuthError::not_found("credits of user", user_id));
    }
    Ok(())
}

/// Deletes a team. Refused while members' credits are pooled in it (the contract's
/// `user_credits.team_id … NO ACTION`); the ledger keeps its rows without the team
/// (`SET NULL`) and the team's API-key credits go with it (`CASCADE`).
pub fn delete_team(conn: &mut Conn, team_id: &str) -> Result<bool> {
    let pooled: i64 = with_conn!(conn, |c| user_credits::table
        .filter(user_credits::team_id.eq(team_id))
        .count()
        .get_result(c))?;
    if pooled > 0 {
        return Err(AuthError::TeamInUse(team_id.to_string()));
    }
    let deleted = with_conn!(conn, |c| diesel::delete(teams::table.find(team_id))
        .execute(c))?;
    Ok(deleted == 1)
}
