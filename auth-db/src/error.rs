//! Errors of the auth store's API.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("user {user_id} has {balance} credits, {requested} were requested")]
    InsufficientCredits {
        user_id: String,
        balance: i64,
        requested: i64,
    },

    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: String },

    #[error("amount must be positive, got {0}")]
    InvalidAmount(i64),

    #[error("team {0} still pools members' credits; move them out first")]
    TeamInUse(String),

    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

impl AuthError {
    pub(crate) fn not_found(what: &'static str, id: &str) -> Self {
        AuthError::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, AuthError>;
