//! Error types of the libraries. Each message says what failed and where (store, redacted
//! URL, file), so the CLI can print it as one line; the cause chain is kept for `-v`.

use std::path::PathBuf;

use thiserror::Error;

use crate::url::SUPPORTED_SCHEMES;

/// Bad configuration or usage: the CLI maps these to exit code 2.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error(
        "unsupported database URL scheme `{scheme}` in {url}; supported are {SUPPORTED_SCHEMES}"
    )]
    UnsupportedScheme { scheme: String, url: String },

    #[error("invalid database URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },

    #[error("configuration file {} not found", path.display())]
    MissingFile { path: PathBuf },

    #[error("cannot read {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },

    #[error("unknown profile `{name}`; {known}")]
    UnknownProfile { name: String, known: String },

    #[error("invalid configuration: {0}")]
    Invalid(String),

    #[error("unknown store `{0}`; the stores are auth and app")]
    UnknownStore(String),
}

/// A database could not be reached or a statement failed: exit code 4.
#[derive(Debug, Error)]
pub enum DbError {
    #[error("cannot connect to the {store} database at {url}: {reason}")]
    Connect {
        store: String,
        url: String,
        reason: String,
    },

    #[error("{store} database at {url}: {action} failed: {reason}")]
    Query {
        store: String,
        url: String,
        action: String,
        reason: String,
    },

    #[error("{store} database at {url}: migration {migration} failed: {reason}")]
    Migration {
        store: String,
        url: String,
        migration: String,
        reason: String,
    },

    /// A write was asked of a hot standby, which refuses every write: the configuration
    /// names the wrong server.
    #[error(
        "the server at {url} ({store}) is a read-only replica (a hot standby), so {what}; \
         nothing was changed. {hint}"
    )]
    ReadOnlyReplica {
        store: String,
        url: String,
        what: String,
        hint: String,
    },
}

impl DbError {
    /// The server was reached and refused the credentials: the configuration is wrong
    /// (user, password, pg_hba.conf), not the database, so it is reported as such (exit 2).
    pub fn is_rejected_credentials(&self) -> bool {
        let DbError::Connect { reason, .. } = self else {
            return false;
        };
        reason.contains("password authentication failed")
            || reason.contains("no password supplied")
            || reason.contains("no pg_hba.conf entry")
            || (reason.contains("role \"") && reason.contains("does not exist"))
    }
}
