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

    fn sqlite(path: &Path) -> Result<Self, ConfigError> {
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

    fn parse_postgres(input: &str) -> Result<Self, ConfigError> {
        // The URL parser drops tabs and line breaks, libpq would not: the two would
        // connect to different names.
        if input.chars().any(char::is_control) {
            return Err(invalid(
                input,
                "it contains a control character (a line break or a tab?)",
            ));
        }
        // Errors show the input as typed, with everything that may be a credential
        // masked: a password typed without percent-encoding (`/`, `#`, `?` in it) makes the
        // parser see it as a host, a path or a fragment, which a parsed URL would show.
        let parsed = url::Url::parse(input).map_err(|e| invalid(input, &format!("{e}")))?;
        if input.contains("%00") {
            return Err(invalid(
                input,
                "it contains %00 (a NUL byte, which no name or password can hold)",
            ));
        }
        // libpq has no fragments: it would read `#…` as part of the name or value before
        // it, while this parser drops it.
        if parsed.fragment().is_some() {
            return Err(invalid(
                input,
                "a database URL cannot have a #fragment; write a `#` in a name or password as %23",
            ));
        }
        // One path segment; a `/` inside the name is written %2F.
        let path = parsed.path().trim_start_matches('/');
        let database = percent_decode(path);
        if database.is_empty() || path.contains('/') {
            return Err(invalid(
                input,
                "the URL must name one database, as in postgres://user@host:5432/dbname",
            ));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .or_else(|| query_param(&parsed, "host"));
        Ok(DatabaseUrl {
            schema: None,
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
    /// (`PGPASSWORD`), never on its command line where `ps` would show it: the one in the
    /// user part, else a `password=` in the query ([`DatabaseUrl::without_password`]
    /// drops both, so the child would otherwise have none).
    pub fn password(&self) -> Option<String> {
        let parsed = url::Url::parse(&self.raw).ok()?;
        if let Some(pw) = parsed.password() {
            return Some(percent_decode(pw));
        }
        parsed.query()?.split('&').rev().find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            percent_decode(key)
                .trim()
                .eq_ignore_ascii_case("password")
                .then(|| percent_decode(value))
        })
    }

    /// The URL without its password, for a child process's command line. The rest is
    /// kept byte for byte (libpq decodes `%20`, but reads `+` as a plus sign).
    pub fn without_password(&self) -> String {
        if self.backend != Backend::Postgres {
            return self.raw.clone();
        }
        match url::Url::parse(&self.raw) {
            Ok(mut parsed) => {
                let _ = parsed.set_password(None);
                let query = parsed.query().map(|q| filter_query(q, None));
                parsed.set_query(query.as_deref().filter(|q| !q.is_empty()));
                parsed.to_string()
            }
            // Unreachable for a URL that parsed; never hand out the raw form regardless.
            Err(_) => redact_unparsed(&self.raw),
        }
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

fn redact_url(parsed: &url::Url) -> String {
    let mut shown = parsed.clone();
    if shown.password().is_some() {
        // Cannot fail for URLs with a host, which every URL with a password has.
        let _ = shown.set_password(Some("***"));
    }
    let query = shown.query().map(|q| filter_query(q, Some("***")));
    shown.set_query(query.as_deref());
    shown.to_string()
}

/// A [`ConfigError::InvalidUrl`] that shows `input` redacted and on one line.
fn invalid(input: &str, reason: &str) -> ConfigError {
    ConfigError::InvalidUrl {
        url: printable(&redact_unparsed(input)),
        reason: printable(reason),
    }
}

/// The `&`-separated pairs of a query as written, with the value of every `password`
/// pair replaced by `mask`, or the pair left out when `mask` is `None`. With a mask (for
/// showing), a value that holds credentials of its own (a URL swallowed by a missing
/// quote in `.env`, say) is masked too.
fn filter_query(query: &str, mask: Option<&str>) -> String {
    query
        .split('&')
        .filter_map(|pair| {
            let (key, _) = pair.split_once('=').unwrap_or((pair, ""));
            if percent_decode(key).trim().eq_ignore_ascii_case("password") {
                return mask.map(|m| format!("{key}={m}"));
            }
            match mask {
                Some(m) if holds_credentials(&percent_decode(pair)) => Some(format!("{key}={m}")),
                _ => Some(pair.to_string()),
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether `text` holds something [`redact_in_text`] would mask.
fn holds_credentials(text: &str) -> bool {
    redact_in_text(text) != text
}

/// Redacts a URL that could not be parsed: everything between `://` and the last `@` may
/// hold credentials, so only the user part before a `:` survives; `password=` values in
/// the query are masked too.
pub fn redact_unparsed(input: &str) -> String {
    let Some((scheme, rest)) = input.split_once("://") else {
        // `postgres:/u:pw@h/db` and other URLs missing a slash still carry `user:pw@`.
        return mask_password_params(&mask_userinfo_segments(input).0);
    };
    let shown = match rest.rfind('@') {
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
    };
    mask_password_params(&shown)
}

/// `text` with the password of every `/`-separated segment shaped like `user:password@host`
/// masked, and whether there was one.
fn mask_userinfo_segments(text: &str) -> (String, bool) {
    let mut found = false;
    let masked: Vec<String> = text
        .split('/')
        .map(|segment| match segment.find(':') {
            Some(colon) if segment[colon..].contains('@') => {
                found = true;
                let at = segment.rfind('@').unwrap_or(segment.len());
                format!("{}:***{}", &segment[..colon], &segment[at..])
            }
            _ => segment.to_string(),
        })
        .collect();
    (masked.join("/"), found)
}

/// Masks the credentials of every URL inside free text (a parser's message that quotes
/// what it read, say): the password of `scheme://user:password@…` and any
/// `password=value`. A URL is taken to run to the next whitespace.
pub fn redact_in_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (before, after) = rest.split_at(pos + 3);
        out.push_str(before);
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let (token, tail) = after.split_at(end);
        match token.rfind('@') {
            Some(at) => {
                let (userinfo, host) = token.split_at(at);
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(host);
            }
            None => out.push_str(token),
        }
        rest = tail;
    }
    out.push_str(rest);
    mask_password_params(&out)
}

/// Replaces the value of every `password=` (any case, `sslpassword=` included) up to the
/// next separator with `***`.
fn mask_password_params(text: &str) -> String {
    const KEY: &str = "password=";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(found) = lower[from..].find(KEY) {
        let value_start = from + found + KEY.len();
        out.push_str(&text[from..value_start]);
        let value_end = text[value_start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | '#' | ';' | '"' | '\'' | '`'))
            .map_or(text.len(), |n| value_start + n);
        if value_end > value_start {
            out.push_str("***");
        }
        from = value_end;
    }
    out.push_str(&text[from..]);
    out
}

/// `text` with control characters (newlines included) and Unicode line separators
/// escaped, so that a message quoting it stays on one line.
pub fn printable(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

fn query_param(parsed: &url::Url, key: &str) -> Option<String> {
    parsed
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
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

#[cfg(test)]
mod tests;
