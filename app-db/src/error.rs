//! Errors of the app store's API.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AppError {
    #[error("owner {0} does not exist in the auth store")]
    UnknownOwner(String),

    #[error("team {0} does not exist in the auth store")]
    UnknownTeam(String),

    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: String },

    #[error("job {job} is {from}; it cannot become {to}")]
    InvalidTransition {
        job: String,
        from: String,
        to: &'static str,
    },

    #[error("looking up the owner failed: {0}")]
    Lookup(store_core::directory::LookupError),

    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

pub type Result<T> = std::result::Result<T, AppError>;
