//! Processing jobs and their states: queued → running → done or failed (failed → queued
//! to retry). Each move is one conditional `UPDATE … WHERE status = <from>`, so two
//! workers cannot both start the same job.

use diesel::prelude::*;
use store_core::{with_conn, Conn};

use crate::error::{AppError, Result};
use crate::models::{new_id, now, Job};
use crate::schema::processing_jobs;

pub fn enqueue(conn: &mut Conn, document_id: &str) -> Result<Job> {
    let id = new_id();
    with_conn!(conn, |c| {
        let at = now();
        diesel::insert_into(processing_jobs::table)
            .values((
                processing_jobs::id.eq(&id),
                processing_jobs::document_id.eq(document_id),
                processing_jobs::created_at.eq(at),
                processing_jobs::updated_at.eq(at),
            ))
            .execute(c)?;
        processing_jobs::table
            .find(&id)
            .select(Job::as_select())
            .first(c)
            .map_err(AppError::from)
    })
}

/// queued → running, counting the attempt.
pub fn start(conn: &mut Conn, job_id: &str) -> Result<Job> {
    transition(conn, job_id, "queued", "running", None)
}

/// running → done.
pub fn finish(conn: &mut Conn, job_id: &str) -> Result<Job> {
    transition(conn, job_id, "running", "done", None)
}

/// running → failed, keeping the error text.
pub fn fail(conn: &mut Conn, job_id: &str, error: &str) -> Result<Job> {
    transition(conn, job_id, "running", "failed", Some(error))
}

/// failed → queued, for another attempt.
pub fn retry(conn: &mut Conn, job_id: &str) -> Result<Job> {
    transition(conn, job_id, "failed", "queued", None)
}

fn transition(
    conn: &mut Conn,
    job_id: &str,
    from: &str,
    to: &'static str,
    error: Option<&str>,
) -> Result<Job> {
    let attempts_step = if to == "running" { 1 } else { 0 };
    let moved: Option<Job> = with_conn!(conn, |c| diesel::update(
        processing_jobs::table
            .find(job_id)
            .filter(processing_jobs::status.eq(from))
    )
    .set((
        processing_jobs::status.eq(to),
        processing_jobs::attempts.eq(processing_jobs::attempts + attempts_step),
        processing_jobs::error.eq(error),
        processing_jobs::updated_at.eq(now()),
    ))
    .returning(Job::as_returning())
    .get_result(c)
    .optional())?;
    if let Some(job) = moved {
        return Ok(job);
    }
    let current: Option<String> = with_conn!(conn, |c| processing_jobs::table
        .find(job_id)
        .select(processing_jobs::status)
        .first(c)
        .optional())?;
    Err(match current {
        None => AppError::NotFound {
            what: "job",
            id: job_id.to_string(),
        },
        Some(status) => AppError::InvalidTransition {
            job: job_id.to_string(),
            from: status,
            to,
        },
    })
}

pub fn find(conn: &mut Conn, job_id: &str) -> Result<Option<Job>> {
    with_conn!(conn, |c| processing_jobs::table
        .find(job_id)
        .select(Job::as_select())
        .first(c)
        .optional()
        .map_err(AppError::from))
}
