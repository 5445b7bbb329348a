//! Database URLs: which backend a URL names, and a form of it that is safe to print.
//!
//! A [`DatabaseUrl`] keeps the URL as given (it is needed to connect) but its `Debug` and
//! `Display` only ever show the redacted form, so a password cannot leak through a log
//! line, an error message or a JSON report by accident.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use crate::error::ConfigError;

/// The backends this build supports, in the words a user types in a URL.
pub const SUPPORTED_SCHEMES: &str = "postgres://, postgresql://, sqlite:// or a file path";

/// Which database engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed database URL. The password, if any, is only reachable through
/// [`DatabaseUrl::expose_secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    redacted: String,
    backend: Backend,
    target: Target,
}

#[derive(Clone, PartialEq, Eq)]
enum Target {
    Postgres {
        host: Option<String>,
        database: String,
    },
    Sqlite {
        path: PathBuf,
    },
}

impl DatabaseUrl {
    /// Parses a URL, choosing the backend from its scheme. A string without a scheme is a
    /// SQLite file path.
    pub fn parse(input: &str) -> Result<Self, ConfigError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(ConfigError::InvalidUrl {
                url: String::new(),
                reason: "the URL is empty".into(),
            });
        }
        match scheme_of(input) {
            Some(scheme)
                if scheme.eq_ignore_ascii_case("postgres")
                    || scheme.eq_ignore_ascii_case("postgresql") =>
            {
                Self::parse_postgres(input)
            }
            Some(scheme) if scheme.eq_ignore_ascii_case("sqlite") => {
                let rest = &input[scheme.len() + 1..];
                let path = rest.strip_prefix("//").unwrap_or(rest);
                Self::sqlite(Path::new(path))
            }
            Some(scheme) => Err(ConfigError::UnsupportedScheme {
                scheme: scheme.to_string(),
                url: redact_unparsed(input),
            }),
            None => Self::sqlite(Path::new(input)),
        }
    }

    fn sqlite(path: &Path) -> Result<Self, ConfigError> {
        if path.as_os_str().is_empty() {
            return Err(ConfigError::InvalidUrl {
                url: "sqlite://".into(),
                reason: "no file path after sqlite://".into(),
            });
        }
        let shown = format!("sqlite://{}", path.display());
        Ok(DatabaseUrl {
            raw: path.to_string_lossy().into_owned(),
            redacted: shown,
            backend: Backend::Sqlite,
            target: Target::Sqlite {
                path: path.to_path_buf(),
            },
        })
    }

    fn parse_postgres(input: &str) -> Result<Self, ConfigError> {
        let parsed = url::Url::parse(input).map_err(|e| ConfigError::InvalidUrl {
            url: redact_unparsed(input),
            reason: e.to_string(),
        })?;
        let database = parsed.path().trim_start_matches('/').to_string();
        let database = percent_decode(&database);
        if database.is_empty() || database.contains('/') {
            return Err(ConfigError::InvalidUrl {
                url: redact_url(&parsed),
                reason: "the URL must name one database, as in postgres://user@host:5432/dbname"
                    .into(),
            });
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .or_else(|| query_param(&parsed, "host"));
        Ok(DatabaseUrl {
            raw: input.to_string(),
            redacted: redact_url(&parsed),
            backend: Backend::Postgres,
            target: Target::Postgres { host, database },
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with its password, for connecting and for child processes' environment
    /// only. Never print it.
    pub fn expose_secret(&self) -> &str {
        &self.raw
    }

    /// The password, decoded, for handing to a child process through its environment
    /// (`PGPASSWORD`), never on its command line where `ps` would show it.
    pub fn password(&self) -> Option<String> {
        let parsed = url::Url::parse(&self.raw).ok()?;
        let pw = parsed.password()?;
        Some(percent_decode(pw))
    }

    /// The URL without its password, for a child process's command line.
    pub fn without_password(&self) -> String {
        match url::Url::parse(&self.raw) {
            Ok(mut parsed) if self.backend == Backend::Postgres => {
                let _ = parsed.set_password(None);
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("password"))
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                parsed.set_query(None);
                if !pairs.is_empty() {
                    parsed.query_pairs_mut().extend_pairs(pairs);
                }
                parsed.to_string()
            }
            _ => self.raw.clone(),
        }
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The database's name: the PostgreSQL database, or the SQLite file's name without its
    /// extension. This is what `--confirm` expects.
    pub fn database_name(&self) -> String {
        match &self.target {
            Target::Postgres { database, .. } => database.clone(),
            Target::Sqlite { path } => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    /// The SQLite file, for SQLite URLs.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.target {
            Target::Sqlite { path } => Some(path),
            Target::Postgres { .. } => None,
        }
    }

    /// True when the server is on this machine: a loopback address, a Unix socket, or an
    /// embedded file. Anything else is treated as someone else's server.
    pub fn is_local(&self) -> bool {
        match &self.target {
            Target::Sqlite { .. } => true,
            Target::Postgres { host, .. } => match host.as_deref() {
                None => true,
                Some(h) if h.starts_with('/') || h.starts_with("%2F") || h.starts_with("%2f") => {
                    true
                }
                Some(h) => {
                    let h = h.trim_start_matches('[').trim_end_matches(']');
                    h.eq_ignore_ascii_case("localhost")
                        || h.parse::<std::net::IpAddr>()
                            .map(|ip| ip.is_loopback())
                            .unwrap_or(false)
                }
            },
        }
    }

    /// The same server with another database, for administrative connections
    /// (`CREATE DATABASE` of a scratch database, for instance). `None` for SQLite.
    pub fn with_database(&self, database: &str) -> Option<DatabaseUrl> {
        if self.backend != Backend::Postgres {
            return None;
        }
        let mut parsed = url::Url::parse(&self.raw).ok()?;
        parsed.set_path(&format!("/{database}"));
        DatabaseUrl::parse(parsed.as_str()).ok()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.redacted).finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted)
    }
}

/// The scheme of `input`, if it has one. A Windows drive letter or a relative path is not
/// a scheme.
fn scheme_of(input: &str) -> Option<&str> {
    let (scheme, _) = input.split_once(':')?;
    let valid = scheme.len() > 1
        && scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

fn redact_url(parsed: &url::Url) -> String {
    let mut shown = parsed.clone();
    if shown.password().is_some() {
        // Cannot fail for URLs with a host, which every URL with a password has.
        let _ = shown.set_password(Some("***"));
    }
    let pairs: Vec<(String, String)> = shown
        .query_pairs()
        .map(|(k, v)| {
            let v = if k.eq_ignore_ascii_case("password") {
                "***".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    if !pairs.is_empty() {
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

/// Redacts a URL that could not be parsed: everything between `://` and the last `@` may
/// hold credentials, so only the user part before a `:` survives.
pub fn redact_unparsed(input: &str) -> String {
    let Some((scheme, rest)) = input.split_once("://") else {
        return input.to_string();
    };
    match rest.rfind('@') {
        Some(at) => {
            let (userinfo, host) = rest.split_at(at);
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{masked}{host}")
        }
        None => input.to_string(),
    }
}

fn query_param(parsed: &url::Url, key: &str) -> Option<String> {
    parsed
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_schemes_choose_postgres() {
        for url in [
            "postgres://u@localhost/db",
            "postgresql://u@localhost:5433/db",
            "POSTGRES://h/db",
        ] {
            let parsed = DatabaseUrl::parse(url).expect(url);
            assert_eq!(parsed.backend(), Backend::Postgres, "{url}");
        }
    }

    #[test]
    fn sqlite_urls_and_bare_paths_choose_sqlite() {
        let cases = [
            ("sqlite://.data/auth.sqlite3", ".data/auth.sqlite3"),
            ("sqlite:///tmp/x.db", "/tmp/x.db"),
            ("sqlite:rel.db", "rel.db"),
            ("./a/b.sqlite3", "./a/b.sqlite3"),
            ("/abs/c.db", "/abs/c.db"),
        ];
        for (url, path) in cases {
            let parsed = DatabaseUrl::parse(url).expect(url);
            assert_eq!(parsed.backend(), Backend::Sqlite, "{url}");
            assert_eq!(parsed.sqlite_path(), Some(Path::new(path)), "{url}");
        }
        assert_eq!(
            DatabaseUrl::parse("sqlite://.data/auth.sqlite3")
                .expect("url")
                .database_name(),
            "auth"
        );
    }

    #[test]
    fn other_schemes_are_rejected_naming_what_is_supported() {
        let err =
            DatabaseUrl::parse("mysql://root:hunter2@db/x").expect_err("mysql must be refused");
        let msg = err.to_string();
        assert!(msg.contains("mysql"), "{msg}");
        assert!(
            msg.contains("postgres://") && msg.contains("sqlite://"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn empty_url_and_url_without_database_are_errors() {
        assert!(DatabaseUrl::parse("").is_err());
        assert!(DatabaseUrl::parse("postgres://u@localhost").is_err());
        assert!(DatabaseUrl::parse("postgres://u@localhost/").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn password_never_shows_in_debug_display_or_json() {
        let url =
            DatabaseUrl::parse("postgres://alice:s3cr%40t@db.example.com:5432/prod?password=other")
                .expect("valid url");
        for shown in [
            format!("{url}"),
            format!("{url:?}"),
            serde_json::to_string(&url).expect("json"),
        ] {
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(!shown.contains("other"), "{shown}");
            assert!(shown.contains("alice"), "{shown}");
            assert!(shown.contains("db.example.com"), "{shown}");
        }
        assert!(url.expose_secret().contains("s3cr%40t"));
    }

    #[test]
    fn unparsable_urls_are_redacted_too() {
        assert_eq!(
            redact_unparsed("postgres://bob:pw@[bad/x"),
            "postgres://bob:***@[bad/x"
        );
        assert_eq!(redact_unparsed("postgres://bob@h/x"), "postgres://bob@h/x");
        let err = DatabaseUrl::parse("postgres://bob:pw@[bad/x").expect_err("bad host");
        assert!(!err.to_string().contains(":pw@"), "{err}");
    }

    #[test]
    fn locality_follows_the_host() {
        let local = [
            "postgres://u@localhost/d",
            "postgres://u@127.0.0.1/d",
            "postgres://u@[::1]/d",
            "postgres:///d?host=/var/run/postgresql",
            "sqlite://x.db",
        ];
        for url in local {
            assert!(DatabaseUrl::parse(url).expect(url).is_local(), "{url}");
        }
        for url in ["postgres://u@db.example.com/d", "postgres://u@10.0.0.5/d"] {
            assert!(!DatabaseUrl::parse(url).expect(url).is_local(), "{url}");
        }
    }

    #[test]
    fn password_is_split_off_for_child_processes() {
        let url =
            DatabaseUrl::parse("postgres://u:p%40ss@localhost:5432/app?sslmode=disable&password=x")
                .expect("url");
        assert_eq!(url.password().as_deref(), Some("p@ss"));
        assert_eq!(
            url.without_password(),
            "postgres://u@localhost:5432/app?sslmode=disable"
        );
    }

    #[test]
    fn with_database_keeps_credentials_and_host() {
        let url = DatabaseUrl::parse("postgres://u:p@localhost:5432/app").expect("url");
        let admin = url.with_database("postgres").expect("postgres url");
        assert_eq!(admin.database_name(), "postgres");
        assert_eq!(
            admin.expose_secret(),
            "postgres://u:p@localhost:5432/postgres"
        );
    }
}
