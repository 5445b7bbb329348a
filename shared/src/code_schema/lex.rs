//! The tokens of a `schema.rs`, as much of Rust's lexical grammar as `table!` blocks need:
//! comments (doc comments too) are dropped, strings (plain and raw) are one token each so
//! that a bracket inside one counts for nothing, and `r#type` is the identifier `type`.

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Str(String),
    /// `->`
    Arrow,
    /// `::`
    PathSep,
    Punct(char),
    /// A number or anything else that is one token but no name.
    Literal,
}

#[derive(Debug)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) line: usize,
}

pub(super) fn shown(tok: &Tok) -> String {
    match tok {
        Tok::Ident(s) => s.clone(),
        Tok::Str(s) => format!("\"{s}\""),
        Tok::Arrow => "->".into(),
        Tok::PathSep => "::".into(),
        Tok::Punct(c) => c.to_string(),
        Tok::Literal => "a literal".into(),
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

pub(super) fn lex(src: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = src.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut toks = Vec::new();
    let (mut i, mut line) = (0, 1);
    while let Some(c) = at(i) {
        let start_line = line;
        let mut push = |tok: Tok| {
            toks.push(Token {
                tok,
                line: start_line,
            })
        };
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == Some('/') {
            // Doc comments too: what a column means is not what it holds.
            while at(i).is_some_and(|c| c != '\n') {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == Some('*') {
            let mut depth = 0;
            loop {
                match (at(i), at(i + 1)) {
                    (Some('/'), Some('*')) => (depth, i) = (depth + 1, i + 2),
                    (Some('*'), Some('/')) => (depth, i) = (depth - 1, i + 2),
                    (Some(c), _) => {
                        line += usize::from(c == '\n');
                        i += 1;
                    }
                    (None, _) => return Err(format!("line {start_line}: unterminated comment")),
                }
                if depth == 0 {
                    break;
                }
            }
        } else if c == '"'
            || (c == 'r' && matches!(at(i + 1), Some('"' | '#')) && raw_string_at(&chars, i))
        {
            let (text, end) =
                string(&chars, i).ok_or(format!("line {start_line}: unterminated string"))?;
            line += text.matches('\n').count();
            push(Tok::Str(text));
            i = end;
        } else if c == 'r' && at(i + 1) == Some('#') && at(i + 2).is_some_and(is_ident_start) {
            // A raw identifier, `r#type`, names the column `type`.
            let mut end = i + 2;
            while at(end).is_some_and(is_ident_char) {
                end += 1;
            }
            push(Tok::Ident(chars[i + 2..end].iter().collect()));
            i = end;
        } else if is_ident_start(c) {
            let mut end = i;
            while at(end).is_some_and(is_ident_char) {
                end += 1;
            }
            push(Tok::Ident(chars[i..end].iter().collect()));
            i = end;
        } else if c.is_ascii_digit() {
            while at(i).is_some_and(|c| is_ident_char(c) || c == '.') {
                i += 1;
            }
            push(Tok::Literal);
        } else if c == '-' && at(i + 1) == Some('>') {
            push(Tok::Arrow);
            i += 2;
        } else if c == ':' && at(i + 1) == Some(':') {
            push(Tok::PathSep);
            i += 2;
        } else {
            push(Tok::Punct(c));
            i += 1;
        }
    }
    Ok(toks)
}

/// Whether `r` at `i` opens a raw string (`r"…"`, `r#"…"#`) rather than an identifier.
fn raw_string_at(chars: &[char], i: usize) -> bool {
    let mut j = i + 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    chars.get(j) == Some(&'"')
}

/// The string literal starting at `i` (plain or raw) and the index after it.
fn string(chars: &[char], i: usize) -> Option<(String, usize)> {
    if chars[i] == 'r' {
        let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
        let body = i + 2 + hashes;
        let closing: Vec<char> = format!("\"{}", "#".repeat(hashes)).chars().collect();
        let end = (body..chars.len()).find(|&j| chars[j..].starts_with(&closing))?;
        return Some((chars[body..end].iter().collect(), end + closing.len()));
    }
    let mut out = String::new();
    let mut j = i + 1;
    loop {
        match chars.get(j)? {
            '"' => return Some((out, j + 1)),
            '\\' => {
                out.push(*chars.get(j + 1)?);
                j += 2;
            }
            c => {
                out.push(*c);
                j += 1;
            }
        }
    }
}

/// The index of the bracket closing the one at `open`, checking every bracket between.
pub(super) fn matching(toks: &[Token], open: usize) -> Result<usize, String> {
    let mut stack: Vec<(char, usize)> = Vec::new();
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t.tok {
            Tok::Punct(c @ ('{' | '(' | '[')) => stack.push((c, t.line)),
            Tok::Punct(c @ ('}' | ')' | ']')) => {
                let Some((o, opened)) = stack.pop() else {
                    return Err(format!("line {}: `{c}` closes nothing", t.line));
                };
                if !matches!((o, c), ('{', '}') | ('(', ')') | ('[', ']')) {
                    return Err(format!(
                        "line {}: `{c}` does not close the `{o}` of line {opened}",
                        t.line
                    ));
                }
                if stack.is_empty() {
                    return Ok(i);
                }
            }
            _ => {}
        }
    }
    let line = stack.last().map_or(0, |(_, l)| *l);
    Err(format!(
        "line {line}: a bracket opened here is never closed"
    ))
}
