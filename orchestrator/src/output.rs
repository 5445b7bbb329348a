//! Printing results: one JSON document for machines, aligned tables for people, with
//! colour only on a terminal and never when NO_COLOR is set.

use std::io::{IsTerminal, Write};

use serde::Serialize;

/// Output for people (text) or one JSON document on stdout (json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// How the text reports name a hot standby.
pub const REPLICA_NOTE: &str =
    "read-only replica (a hot standby): reports work, every command that writes refuses it";

/// Prints `value` as one JSON document on stdout.
/// A reader that closed the pipe early (`| head`) is not an error of ours.
pub fn print_json<T: Serialize>(value: &T) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out));
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Whether stdout gets colour.
pub fn colour() -> bool {
    no_color_unset() && std::io::stdout().is_terminal()
}

/// Whether stderr (logs, progress) gets colour.
pub fn colour_stderr() -> bool {
    no_color_unset() && std::io::stderr().is_terminal()
}

fn no_color_unset() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub enum Tone {
    Good,
    Bad,
    Dim,
}

/// Wraps `text` in the tone's colour when stdout is a terminal.
pub fn paint(text: &str, tone: Tone) -> String {
    if !colour() {
        return text.to_string();
    }
    let code = match tone {
        Tone::Good => "32",
        Tone::Bad => "31",
        Tone::Dim => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// A table of left-aligned columns, numbers right-aligned, two spaces apart.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = widths.get(i).copied().unwrap_or(0);
                if !c.is_empty() && c.chars().all(|ch| ch.is_ascii_digit()) {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        format!("  {}", parts.join("  ").trim_end())
    };
    let mut out = vec![line(headers.to_vec())];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_text_left_and_numbers_right() {
        let t = table(
            &["table", "rows"],
            &[
                vec!["users".into(), "7".into()],
                vec!["teams".into(), "120".into()],
            ],
        );
        assert_eq!(t, "  table  rows\n  users     7\n  teams   120");
    }
}
