//! Rows of the app store, as the API returns them.

use chrono::NaiveDateTime;
use diesel::{Queryable, Selectable};
use serde::Serialize;

use crate::schema::{datasets, documents, processing_jobs};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = datasets)]
pub struct Dataset {
    pub id: String,
    pub owner_id: String,
    pub team_id: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = documents)]
pub struct Document {
    pub id: String,
    pub dataset_id: String,
    pub filename: String,
    pub content_type: Option<String>,
    pub size_bytes: Option<i64>,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = processing_jobs)]
pub struct Job {
    pub id: String,
    pub document_id: String,
    pub status: String,
    pub attempts: i32,
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn now() -> NaiveDateTime {
    chrono::Utc::now().naive_utc()
}
