//! Exit codes of the contract, and the error type that carries one.

use std::fmt;

use shared::{ConfigError, DbError};

/// The process exit codes, as documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// A check found a problem (verify, diff, smoke).
    CheckFailed = 1,
    /// Bad usage or configuration.
    Usage = 2,
    /// Refused by a safety guard.
    Refused = 3,
    /// A database could not be reached or a statement failed.
    Database = 4,
    /// Another run holds the lock.
    Locked = 5,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// An error that ends the run: what to print and which code to exit with.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl CliError {
    pub fn new(exit: Exit, error: impl Into<anyhow::Error>) -> Self {
        CliError {
            exit,
            error: error.into(),
        }
    }

    pub fn usage(message: impl fmt::Display) -> Self {
        CliError::new(Exit::Usage, anyhow::anyhow!("{message}"))
    }

    /// The one-line message, and with `verbose` the chain of causes after it.
    pub fn render(&self, verbose: bool) -> String {
        let mut out = self.error.to_string();
        if verbose {
            for cause in self.error.chain().skip(1) {
                out.push_str(&format!("\n  caused by: {cause}"));
            }
        }
        out
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::new(Exit::Usage, e)
    }
}

impl From<DbError> for CliError {
    fn from(e: DbError) -> Self {
        if e.is_rejected_credentials() {
            let hint = anyhow::anyhow!("{e}; check the user and password in the URL");
            return CliError::new(Exit::Usage, hint);
        }
        if matches!(e, DbError::ReadOnlyReplica { .. }) {
            return CliError::new(Exit::Usage, e);
        }
        CliError::new(Exit::Database, e)
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
