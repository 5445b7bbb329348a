//! The auth store as the app store's [`OwnerDirectory`]: the one place app asks about
//! users and teams, without knowing auth's tables.

use diesel::prelude::*;
use store_core::directory::{LookupError, OwnerDirectory};
use store_core::{with_conn, Conn};

use crate::schema::{teams, users};

pub struct AuthDirectory<'a> {
    conn: &'a mut Conn,
}

impl<'a> AuthDirectory<'a> {
    pub fn new(conn: &'a mut Conn) -> Self {
        AuthDirectory { conn }
    }
}

impl OwnerDirectory for AuthDirectory<'_> {
    fn user_exists(&mut self, user_id: &str) -> Result<bool, LookupError> {
        let found: Option<String> = with_conn!(&mut *self.conn, |c| users::table
            .find(user_id)
            .select(users::id)
            .first(c)
            .optional())?;
        Ok(found.is_some())
    }

    fn team_exists(&mut self, team_id: &str) -> Result<bool, LookupError> {
        let found: Option<String> = with_conn!(&mut *self.conn, |c| teams::table
            .find(team_id)
            .select(teams::id)
            .first(c)
            .optional())?;
        Ok(found.is_some())
    }
}
