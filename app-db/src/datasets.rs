//! Datasets and their documents. A dataset's owner (and team) live in the auth store; they
//! are checked through an [`OwnerDirectory`] before the dataset is created.

use diesel::prelude::*;
use store_core::directory::OwnerDirectory;
use store_core::{with_conn, Conn};

use crate::error::{AppError, Result};
use crate::models::{new_id, now, Dataset, Document};
use crate::schema::{datasets, documents};

pub struct NewDataset<'a> {
    pub owner_id: &'a str,
    pub team_id: Option<&'a str>,
    pub name: &'a str,
    pub description: Option<&'a str>,
}

pub fn create_dataset(
    conn: &mut Conn,
    owners: &mut dyn OwnerDirectory,
    new: &NewDataset<'_>,
) -> Result<Dataset> {
    if !owners.user_exists(new.owner_id).map_err(AppError::Lookup)? {
        return Err(AppError::UnknownOwner(new.owner_id.to_string()));
    }
    if let Some(team) = new.team_id {
        if !owners.team_exists(team).map_err(AppError::Lookup)? {
            return Err(AppError::UnknownTeam(team.to_string()));
        }
    }
    let id = new_id();
    with_conn!(conn, |c| {
        let at = now();
        diesel::insert_into(datasets::table)
            .values((
                datasets::id.eq(&id),
                datasets::owner_id.eq(new.owner_id),
                datasets::team_id.eq(new.team_id),
                datasets::name.eq(new.name),
                datasets::description.eq(new.description),
                datasets::created_at.eq(at),
                datasets::updated_at.eq(at),
            ))
            .execute(c)?;
        datasets::table
            .find(&id)
            .select(Dataset::as_select())
            .first(c)
            .map_err(AppError::from)
    })
}

pub fn add_document(
    conn: &mut Conn,
    dataset_id: &str,
    filename: &str,
    content_type: Option<&str>,
    size_bytes: Option<i64>,
) -> Result<Document> {
    let id = new_id();
    with_conn!(conn, |c| {
        diesel::insert_into(documents::table)
            .values((
                documents::id.eq(&id),
                documents::dataset_id.eq(dataset_id),
                documents::filename.eq(filename),
                documents::content_type.eq(content_type),
                documents::size_bytes.eq(size_bytes),
                documents::created_at.eq(now()),
            ))
            .execute(c)?;
        documents::table
            .find(&id)
            .select(Document::as_select())
            .first(c)
            .map_err(AppError::from)
    })
}

/// Deletes a dataset; its documents and their jobs go with it (CASCADE).
pub fn delete_dataset(conn: &mut Conn, dataset_id: &str) -> Result<bool> {
    let deleted = with_conn!(conn, |c| diesel::delete(datasets::table.find(dataset_id))
        .execute(c))?;
    Ok(deleted == 1)
}
