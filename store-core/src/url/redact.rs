//! Redaction: every URL and every text that may quote one, with passwords masked, before
//! anything is printed, logged or written.

use super::percent_decode;

pub(super) fn redact_url(parsed: &url::Url) -> String {
    let mut shown = parsed.clone();
    if shown.password().is_some() {
        // Cannot fail for URLs with a host, which every URL with a password has.
        let _ = shown.set_password(Some("***"));
    }
    let query = shown.query().map(|q| filter_query(q, Some("***")));
    shown.set_query(query.as_deref());
    shown.to_string()
}

/// The `&`-separated pairs of a query as written, with the value of every `password`
/// pair replaced by `mask`, or the pair left out when `mask` is `None`. With a mask (for
/// showing), a value that holds credentials of its own (a URL swallowed by a missing
/// quote in `.env`, say) is masked too.
pub(super) fn filter_query(query: &str, mask: Option<&str>) -> String {
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
pub(super) fn holds_credentials(text: &str) -> bool {
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
pub(super) fn mask_userinfo_segments(text: &str) -> (String, bool) {
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
pub(super) fn mask_password_params(text: &str) -> String {
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

pub(super) fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}
