//! Printing results: one JSON document for machines, aligned tables for people, with
//! colour only on a terminal and never when NO_COLOR is set.

use std::io::Write;
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
    // The report replaces the progress lines: each thing is said once.
    crate::progress::clear_all();
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

/// `--color`: `auto` colours a terminal unless `NO_COLOR` is set (`CLICOLOR_FORCE` colours
/// any output); `always` and `never` decide for every stream. Set once, before any output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Auto,
    Always,
    Never,
}

/// Makes `choice` the run's colour choice (anstream's, which also reads `NO_COLOR`,
/// `CLICOLOR` and `CLICOLOR_FORCE` in `auto`).
pub fn set_colour(choice: Colour) {
    match choice {
        Colour::Auto => anstream::ColorChoice::Auto,
        Colour::Always => anstream::ColorChoice::Always,
        Colour::Never => anstream::ColorChoice::Never,
    }
    .write_global();
}

/// Whether stdout gets colour.
pub fn colour() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

/// Whether stderr (logs, progress) gets colour.
pub fn colour_stderr() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

pub enum Tone {
    Good,
    Bad,
    Dim,
}

/// `text` in the tone's colour when stdout gets colour.
pub fn paint(text: &str, tone: Tone) -> String {
    if !colour() {
        return text.to_string();
    }
    use anstyle::{AnsiColor, Effects, Style};
    let style = match tone {
        Tone::Good => Style::new().fg_color(Some(AnsiColor::Green.into())),
        Tone::Bad => Style::new().fg_color(Some(AnsiColor::Red.into())),
        Tone::Dim => Style::new().effects(Effects::DIMMED),
    };
    format!("{style}{text}{style:#}")
}

/// A size for people: `72.0 MB` (decimal units, as disks are sold and `ls -lh --si` shows).
pub fn size(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().si().to_string()
}

/// A duration for people: `850 ms`, `9.2 s`, `2 min 05 s`.
pub fn duration(ms: u128) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// A table for people: columns two spaces apart, indented by two, numbers right-aligned
/// with their headers. Widths are measured without colour codes, so a coloured cell
/// lines up with the rest.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    use comfy_table::{presets::NOTHING, CellAlignment, ContentArrangement, Table};
    let mut t = Table::new();
    t.load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.to_vec());
    for row in rows {
        t.add_row(row.clone());
    }
    let numeric = |i: usize| {
        let mut cells = rows
            .iter()
            .filter_map(|r| r.get(i))
            .filter(|c| !c.is_empty());
        let mut any = false;
        let all = cells.all(|c| {
            any = true;
            c.chars().all(|ch| ch.is_ascii_digit())
        });
        any && all
    };
    for (i, column) in t.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        if numeric(i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    t.lines()
        .map(|line| format!("  {}", line.trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each difference of `store` from its migrations on a line of its own, indented under the
/// store's line (`diff`, `adopt`).
pub fn say_differences(store: &str, differences: &[shared::schema::Difference]) {
    for d in differences {
        crate::say!("  {}", paint(&d.describe(store), Tone::Bad));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_text_left_and_numbers_right_with_their_headers() {
        let t = table(
            &["table", "rows"],
            &[
                vec!["users".into(), "7".into()],
                vec!["teams".into(), "120".into()],
            ],
        );
        assert_eq!(t, "  table  rows\n  users     7\n  teams   120");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(0), "0 ms");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(9_249), "9.2 s");
        assert_eq!(duration(59_999), "60.0 s");
        assert_eq!(duration(125_000), "2 min 05 s");
    }

    #[test]
    fn colour_codes_take_no_width() {
        let red = |s: &str| format!("\x1b[31m{s}\x1b[0m");
        let t = table(
            &["step", "result", "detail"],
            &[
                vec!["signup".into(), red("FAIL"), "x".into()],
                vec!["ledger".into(), "pass".into(), "y".into()],
            ],
        );
        let plain: Vec<String> = t
            .lines()
            .map(|l| l.replace("\x1b[31m", "").replace("\x1b[0m", ""))
            .collect();
        assert_eq!(
            plain,
            [
                "  step    result  detail",
                "  signup  FAIL    x",
                "  ledger  pass    y"
            ]
        );
    }
}
