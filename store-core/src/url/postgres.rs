//! PostgreSQL URLs as libpq takes them: parsing, the password libpq would use, and the
//! URL without it for child processes.

use super::{
    filter_query, invalid, percent_decode, redact_unparsed, redact_url, Backend, DatabaseUrl,
    Target,
};
use crate::error::ConfigError;

impl DatabaseUrl {
    pub(super) fn parse_postgres(input: &str) -> Result<Self, ConfigError> {
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
        // `postgres://user@/db?host=/run/postgresql` (a socket folder, no host in the
        // authority) is a URL libpq takes and the URL parser refuses ("empty host"): the
        // user part moves into the query, which libpq reads the same way.
        let moved = userinfo_of_empty_host_to_query(input);
        let input = moved.as_deref().unwrap_or(input);
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
    /// The password, decoded, for handing to a child process through its environment
    /// (`PGPASSWORD`), never on its command line where `ps` would show it
    /// ([`DatabaseUrl::without_password`] drops it). The one libpq itself uses for this
    /// URL: the last `password=` in the query, which overrides the user part, else the
    /// user part's; so the tool and its `pg_dump` and `psql` log in with one password.
    pub fn password(&self) -> Option<String> {
        let parsed = url::Url::parse(&self.raw).ok()?;
        let from_query = parsed.query().and_then(|query| {
            query.split('&').rev().find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                percent_decode(key)
                    .trim()
                    .eq_ignore_ascii_case("password")
                    .then(|| percent_decode(value))
            })
        });
        from_query.or_else(|| parsed.password().map(percent_decode))
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
}

/// `scheme://user:pw@/rest` as `scheme:///rest?user=user&password=pw&…`, which libpq
/// reads as the same connection (parameters given later in the query still win, as they
/// would over the user part); `None` when the authority names a host.
pub(super) fn userinfo_of_empty_host_to_query(input: &str) -> Option<String> {
    let (scheme, rest) = input.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let userinfo = rest[..end].strip_suffix('@')?;
    if userinfo.contains('@') || userinfo.is_empty() {
        return None;
    }
    let (path, query) = match rest[end..].split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (&rest[end..], None),
    };
    // Characters the user part may hold that would split or end a query value.
    let as_value = |v: &str| v.replace('&', "%26").replace('=', "%3D");
    let mut params = Vec::new();
    match userinfo.split_once(':') {
        Some((user, password)) => {
            if !user.is_empty() {
                params.push(format!("user={}", as_value(user)));
            }
            params.push(format!("password={}", as_value(password)));
        }
        None => params.push(format!("user={}", as_value(userinfo))),
    }
    params.extend(query.filter(|q| !q.is_empty()).map(str::to_string));
    Some(format!("{scheme}://{path}?{}", params.join("&")))
}

fn query_param(parsed: &url::Url, key: &str) -> Option<String> {
    parsed
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}
