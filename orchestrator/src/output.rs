//! Printing results: one JSON document for machines, aligned tables for people, with
//! colour only on a terminal and never when NO_COLOR is set.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Prints `value` as one JSON document on stdout, as [`say!`] prints a line (a reader that
/// closed the pipe early is not an error of ours).
pub fn print_json<T: Serialize>(value: &T) -> std::io::Result<()> {
    let document = serde_json::to_vec_pretty(value).map_err(std::io::Error::from)?;
    JSON_PRINTED.store(true, Ordering::Relaxed);
    say_with(|out| out.write_all(&document).and_then(|()| out.write_all(b"\n")));
    Ok(())
}

/// Set once a JSON document went to stdout: an error after it (a check that failed, a
/// store that needs attention) is in that document already and prints no second one.
static JSON_PRINTED: AtomicBool = AtomicBool::new(false);

/// With `--format json`, how a run that ended in an error says so on stdout when it printed
/// no report: one document, `{"ok": false, "error": {"message", "exit"}}` (the message is
/// the same line stderr gets).
pub fn json_error(message: &str, exit: i32) {
    if JSON_PRINTED.load(Ordering::Relaxed) {
        return;
    }
    let _ = print_json(&serde_json::json!({
        "ok": false,
        "error": { "message": message, "exit": exit },
    }));
}

/// Prints one line of a text report on stdout, like `println!`, without its panic: a
/// reader that closed the pipe early (`orchestrator status | head -3`) ends the report,
/// not the command. The rest of the report is dropped quietly and the command finishes
/// with its own exit code (a reset piped into `head` still resets, all or nothing).
#[macro_export]
macro_rules! say {
    () => {
        $crate::output::say_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::say_line(format_args!($($arg)*))
    };
}

/// Set once stdout refused a line: nothing more is written to it.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// See [`say!`].
pub fn say_line(line: std::fmt::Arguments<'_>) {
    say_with(|out| out.write_fmt(line).and_then(|()| out.write_all(b"\n")));
}

/// Writes `bytes` (a generated script, say) to stdout as [`say!`] writes a line.
pub fn say_bytes(bytes: &[u8]) {
    say_with(|out| out.write_all(bytes));
}

fn say_with(write: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let written = write(&mut out).and_then(|()| out.flush());
    if let Err(e) = written {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            // A full disk under a redirect, say: the report is incomplete, and says so.
            eprintln!("warning: the report could not be written to stdout: {e}");
        }
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
