//! SQLite URLs: a file path (`sqlite://PATH` or bare), `~` expanded, in-memory refused.

use std::path::{Path, PathBuf};

use super::{invalid, mask_userinfo_segments, Backend, DatabaseUrl, Target, SUPPORTED_SCHEMES};
use crate::error::ConfigError;

impl DatabaseUrl {
    /// A SQLite store whose file does not exist yet (no command has created it): there is
    /// nothing in it to read, guard or back up, and opening it would create it.
    pub fn is_missing_sqlite_file(&self) -> bool {
        self.sqlite_path().is_some_and(|p| !p.exists())
    }

    /// A private, in-memory SQLite database: the engine's scratch space (a shadow to
    /// replay migrations into), never a store, which must persist ([`DatabaseUrl::parse`]
    /// refuses `:memory:`).
    pub fn sqlite_in_memory() -> Self {
        DatabaseUrl {
            schema: None,
            raw: ":memory:".into(),
            redacted: "sqlite://:memory:".into(),
            backend: Backend::Sqlite,
            target: Target::Sqlite {
                path: PathBuf::from(":memory:"),
            },
        }
    }
    pub(super) fn sqlite(path: &Path) -> Result<Self, ConfigError> {
        if path.as_os_str().is_empty() {
            return Err(ConfigError::InvalidUrl {
                url: "sqlite://".into(),
                reason: "no file path after sqlite://".into(),
            });
        }
        // `postgres ://…` or `sqlite://postgres://…` is a mistyped URL, not a file to
        // create (and its password would be shown as part of a file name).
        let text = path.to_string_lossy();
        if text.contains("://") {
            return Err(invalid(
                &text,
                &format!(
                    "a SQLite file path cannot contain `://` (a mistyped URL?); \
                     supported are {SUPPORTED_SCHEMES}"
                ),
            ));
        }
        // `postgres //u:pw@host/db` has lost its `:`, yet its `user:password@` part still
        // says it was meant as a server URL.
        let (masked, credentials) = mask_userinfo_segments(&text);
        if credentials {
            return Err(invalid(
                &masked,
                &format!(
                    "it looks like a server URL with a mistyped scheme (user:password@host), \
                     not a SQLite file path; supported are {SUPPORTED_SCHEMES}"
                ),
            ));
        }
        // SQLite's in-memory databases vanish with the connection: a store must persist,
        // and a "migrated" store nobody can open again would only mislead.
        if text == ":memory:" || text.starts_with("file::memory:") || text.contains("mode=memory") {
            return Err(invalid(
                &text,
                "an in-memory SQLite database vanishes with its connection, and a store must \
                 persist; give a file path, such as sqlite://.data/auth.sqlite3",
            ));
        }
        let path = expand_home(path);
        let path = path.as_path();
        let shown = format!("sqlite://{}", path.display());
        Ok(DatabaseUrl {
            schema: None,
            raw: path.to_string_lossy().into_owned(),
            redacted: shown,
            backend: Backend::Sqlite,
            target: Target::Sqlite {
                path: path.to_path_buf(),
            },
        })
    }
}

/// `~` and `~/…` as the shell would expand them (a URL in a config file or `.env` reaches
/// us unexpanded, and a folder literally named `~` is never what was meant). `~user` is
/// left alone.
pub(super) fn expand_home(path: &Path) -> PathBuf {
    let home = || {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
    };
    match path.strip_prefix("~") {
        Ok(rest) => match home() {
            Some(home) => home.join(rest),
            None => path.to_path_buf(),
        },
        Err(_) => path.to_path_buf(),
    }
}
