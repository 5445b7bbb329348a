//! Expressions as both backends spell them (defaults, checks, index keys and predicates),
//! normalised so that the same thing compares equal, and read out of SQLite's statements
//! where SQLite keeps no catalog of them.

/// Normalises an SQL expression (a default, a check) so that spellings of the same thing
/// compare equal: lower case, no casts to text-like types, no redundant outer parentheses,
/// whitespace only between words, and a CHECK keyword dropped.
pub fn normalise_expr(expr: &str) -> String {
    let mut s: String = expr.trim().to_ascii_lowercase();
    // The keyword, not a column whose name starts with it (`checked_at`).
    if let Some(rest) = s
        .strip_prefix("check")
        .filter(|rest| rest.starts_with(|c: char| c == '(' || c.is_whitespace()))
    {
        s = rest.trim().to_string();
    }
    for cast in [
        "::text[]",
        "::text",
        "::character varying",
        "::bigint",
        "::integer",
        "::boolean",
        "::timestamp without time zone",
    ] {
        s = s.replace(cast, "");
    }
    s = squeeze_spaces(&s);
    loop {
        let stripped = strip_outer_parens(&s);
        if stripped.len() == s.len() {
            break;
        }
        s = stripped.to_string();
    }
    s
}

/// Whitespace only where it separates two words or literals (`is not null`,
/// `now() at time zone 'utc'`), as one space; none before an opening parenthesis or
/// around operators (`count(x)`, `credits>=0`), however the backend laid it out.
fn squeeze_spaces(s: &str) -> String {
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '\'' || c == '"';
    let ends_word = |c: char| word(c) || c == ')';
    let mut out = String::with_capacity(s.len());
    let mut pending = false;
    for c in s.chars() {
        if c.is_whitespace() {
            pending = true;
            continue;
        }
        if pending && out.chars().last().is_some_and(ends_word) && word(c) {
            out.push(' ');
        }
        pending = false;
        out.push(c);
    }
    out
}

fn strip_outer_parens(s: &str) -> &str {
    if !(s.starts_with('(') && s.ends_with(')')) {
        return s;
    }
    // Only when the first parenthesis closes at the very end: `(a)+(b)` keeps them.
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 && i != s.len() - 1 {
                    return s;
                }
            }
            _ => {}
        }
    }
    &s[1..s.len() - 1]
}

pub(super) fn normalise_index_column(col: &str) -> String {
    let c = col.trim();
    let unquoted = c
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(c);
    if unquoted.chars().all(|ch| ch.is_alphanumeric() || ch == '_') {
        unquoted.to_string()
    } else {
        normalise_expr(c)
    }
}

/// The `CHECK (…)` clauses of a `CREATE TABLE` statement, parentheses balanced, ignoring
/// the word inside string literals and quoted identifiers.
pub fn check_clauses(create_table: &str) -> Vec<String> {
    let bytes = create_table.as_bytes();
    let lower = create_table.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if b == b'\'' || b == b'"' || b == b'`' {
            quote = Some(b);
            i += 1;
            continue;
        }
        let word_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if word_start && lower[i..].starts_with("check") {
            let mut j = i + 5;
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == b'(' {
                let start = j;
                let mut depth = 0i32;
                let mut q: Option<u8> = None;
                while j < bytes.len() {
                    let c = bytes[j];
                    match q {
                        Some(qq) if c == qq => q = None,
                        Some(_) => {}
                        None if c == b'\'' || c == b'"' => q = Some(c),
                        None if c == b'(' => depth += 1,
                        None if c == b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        None => {}
                    }
                    j += 1;
                }
                out.push(create_table[start..=j.min(bytes.len() - 1)].to_string());
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The `WHERE` of a partial index's `CREATE INDEX` statement: the text after the first
/// `WHERE` outside parentheses, quotes and identifiers. `None` when there is none.
pub(super) fn index_predicate(create_index: &str) -> Option<String> {
    let bytes = create_index.as_bytes();
    let lower = create_index.to_ascii_lowercase();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(q) = quote {
            if b == q {
                quote = None;
            }
            continue;
        }
        match b {
            b'\'' | b'"' | b'`' => quote = Some(b),
            b'[' => quote = Some(b']'),
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ if depth == 0 && lower[i..].starts_with("where") => {
                let before =
                    i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
                let after = bytes
                    .get(i + 5)
                    .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
                if before && after {
                    let rest = create_index[i + 5..].trim().trim_end_matches(';').trim();
                    return (!rest.is_empty()).then(|| rest.to_string());
                }
            }
            _ => {}
        }
    }
    None
}
