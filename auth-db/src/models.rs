//! Rows of the auth store, as the API returns them.

use chrono::NaiveDateTime;
use diesel::{Queryable, Selectable};
use serde::Serialize;

use crate::schema::{api_key_credits, teams, users};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub email_verified: bool,
    pub image: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = teams)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = api_key_credits)]
pub struct ApiKeyCredits {
    pub id: String,
    pub user_id: String,
    pub team_id: Option<String>,
    pub api_key_id: Option<String>,
    pub credits: i64,
    pub created_at: NaiveDateTime,
}

/// A new id: a random UUID, as text (ids are `TEXT` in both backends).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn now() -> NaiveDateTime {
    chrono::Utc::now().naive_utc()
}
