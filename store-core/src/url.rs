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

/// The schema a PostgreSQL store lives in unless its profile says otherwise.
pub const DEFAULT_SCHEMA: &str = "public";

/// A parsed database URL. The password, if any, is only reachable through
/// [`DatabaseUrl::expose_secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    redacted: String,
    backend: Backend,
    target: Target,
    /// PostgreSQL: the schema the store lives in (`public` unless configured); every
    /// session works there whatever the role's search_path says.
    schema: Option<String>,
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
        // No database, file or server name can hold a NUL byte (libpq and SQLite take C
        // strings): say so here rather than fail later as a connection error.
        if input.contains('\0') {
            return Err(invalid(input, "it contains a NUL byte"));
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
                url: printable(&redact_unparsed(input)),
            }),
            None => Self::sqlite(Path::new(input)),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with its password, for connecting and for child processes' environment
    /// only. Never print it.
    pub fn expose_secret(&self) -> &str {
        &self.raw
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The PostgreSQL schema the store lives in: `public` unless configured.
    pub fn schema(&self) -> &str {
        self.schema.as_deref().unwrap_or(DEFAULT_SCHEMA)
    }

    /// The same URL, for a store configured to live in `schema`.
    pub fn with_schema(mut self, schema: &str) -> DatabaseUrl {
        self.schema = Some(schema.to_string());
        self
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

    /// True when the URL's text names this machine: a loopback address, a Unix socket, or
    /// an embedded file. The text alone can mislead (`?hostaddr=`, `PGHOSTADDR`, service
    /// files), so whether a store is protected is decided by where libpq really connects
    /// (`pg_host`), not by this.
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

    /// The TCP address and port this URL alone decides, when it does: a host named in the
    /// authority and no `host`, `hostaddr`, `port` or `service` parameter that libpq would
    /// follow instead (nor more than one host). `None` otherwise, and for SQLite.
    pub fn explicit_tcp_endpoint(&self) -> Option<(String, u16)> {
        if self.backend != Backend::Postgres {
            return None;
        }
        let parsed = url::Url::parse(self.expose_secret()).ok()?;
        let overridden = parsed
            .query_pairs()
            .any(|(k, _)| matches!(k.as_ref(), "host" | "hostaddr" | "port" | "service"));
        let host = parsed.host_str()?;
        if overridden || host.is_empty() || host.contains(',') {
            return None;
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Some((host, parsed.port().unwrap_or(5432)))
    }

    /// The same server with another database, for administrative connections
    /// (`CREATE DATABASE` of a scratch database, for instance). `None` for SQLite.
    pub fn with_database(&self, database: &str) -> Option<DatabaseUrl> {
        if self.backend != Backend::Postgres {
            return None;
        }
        let mut parsed = url::Url::parse(&self.raw).ok()?;
        // Every byte that is not plainly safe is encoded: a `%`, `/`, `?` or `#` in the
        // name must reach libpq as part of the name.
        parsed.set_path(&format!("/{}", percent_encode(database)));
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

/// A [`ConfigError::InvalidUrl`] that shows `input` redacted and on one line.
fn invalid(input: &str, reason: &str) -> ConfigError {
    ConfigError::InvalidUrl {
        url: printable(&redact_unparsed(input)),
        reason: printable(reason),
    }
}

/// Decodes `%XX` escapes the way libpq does: a `+` stays a plus sign (form encoding,
/// which reads it as a space, is for HTML forms, not connection URIs). A `%` not followed
/// by two hex digits is kept as it is.
fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes every byte outside RFC 3986's unreserved set as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

mod postgres;
mod redact;
mod sqlite;
#[cfg(test)]
mod tests;

use redact::{filter_query, mask_userinfo_segments, redact_url};
pub use redact::{printable, redact_in_text, redact_unparsed};
