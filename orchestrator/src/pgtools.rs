//! Finding and running PostgreSQL's client programs (`pg_dump`, `pg_restore`, `psql`).
//! `pg_dump` refuses servers newer than itself, so a tool set is chosen whose major version
//! is at least the server's; the three come from one folder so that `psql` understands
//! what that `pg_restore` writes. Passwords travel in `PGPASSWORD`, never on a command
//! line that `ps` would show.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use shared::DatabaseUrl;

#[derive(Debug, Clone)]
pub struct PgTools {
    pub dir: Option<PathBuf>,
    pub major: u32,
}

impl PgTools {
    /// The newest installed tool set: it reads a dump any older one wrote.
    pub fn newest() -> Result<PgTools, String> {
        Self::installed()
            .into_iter()
            .max_by_key(|t| (t.major, t.dir.is_some()))
            .ok_or_else(|| "no pg_restore is installed; install postgresql-client".to_string())
    }

    /// The oldest installed tool set that can handle a server of `server_major`.
    pub fn find(server_major: u32) -> Result<PgTools, String> {
        let found = Self::installed();
        let seen: Vec<u32> = found.iter().map(|t| t.major).collect();
        found
            .into_iter()
            .filter(|t| t.major >= server_major)
            .min_by_key(|t| (t.major, t.dir.is_none()))
            .ok_or_else(|| {
                format!(
                    "no pg_dump of version {server_major} or newer is installed (found: {}); \
                     install postgresql-client-{server_major}",
                    if seen.is_empty() {
                        "none".to_string()
                    } else {
                        format!("{seen:?}")
                    }
                )
            })
    }

    /// Every complete tool set installed: Debian's per-version folders, and the one on
    /// the PATH.
    fn installed() -> Vec<PgTools> {
        let mut found: Vec<PgTools> = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
            for entry in entries.flatten() {
                let bin = entry.path().join("bin");
                if let Some(major) = version_of(&bin.join("pg_dump")) {
                    if bin.join("pg_restore").is_file() && bin.join("psql").is_file() {
                        found.push(PgTools {
                            dir: Some(bin),
                            major,
                        });
                    }
                }
            }
        }
        if let Some(major) = version_of(Path::new("pg_dump")) {
            found.push(PgTools { dir: None, major });
        }
        found
    }

    pub fn command(&self, tool: &str) -> Command {
        match &self.dir {
            Some(dir) => Command::new(dir.join(tool)),
            None => Command::new(tool),
        }
    }

    /// A tool's command with the connection in its environment (password included).
    pub fn connected(&self, tool: &str, url: &DatabaseUrl) -> Command {
        let mut cmd = self.command(tool);
        cmd.arg("--dbname").arg(url.without_password());
        if let Some(pw) = url.password() {
            cmd.env("PGPASSWORD", pw);
        }
        cmd.env("PGAPPNAME", shared::session::application_name());
        cmd.env("PGCONNECT_TIMEOUT", "10");
        cmd
    }
}

/// pg_dump's own bound on waiting for each table's lock: the run's bound, like every other
/// wait (a table another session holds exclusively would otherwise stall the dump).
pub fn lock_wait_timeout_arg() -> String {
    format!(
        "--lock-wait-timeout={}",
        shared::session::lock_timeout_millis()
    )
}

fn version_of(tool: &Path) -> Option<u32> {
    let out = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "pg_dump (PostgreSQL) 15.4 (Debian 15.4-1)"
    let version = text.split(')').nth(1)?.split_whitespace().next()?;
    version.split('.').next()?.parse().ok()
}

/// Runs a command, turning a failure into one line with the tool's own last words.
pub fn run(mut cmd: Command, what: &str, url: &DatabaseUrl) -> Result<Output, String> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        Ok(output)
    } else {
        let last = last_words(&output.stderr);
        Err(shared::db::one_line(&shared::db::scrub(
            url,
            &format!("{what} failed: {last}"),
        )))
    }
}

/// The last non-empty line a tool wrote to stderr: where PostgreSQL's tools put the reason.
pub fn last_words(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .to_string()
}

/// One column of one table as a custom-format dump holds it (`pg_restore --data-only`,
/// COPY's text format): `None` for NULL.
pub fn dump_column(dump: &Path, table: &str, column: &str) -> Result<Vec<Option<String>>, String> {
    let tools = PgTools::newest()?;
    let mut cmd = tools.command("pg_restore");
    cmd.args(["--data-only", "--table", table, "--file", "-"])
        .arg(dump);
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run pg_restore: {e}"))?;
    if !output.status.success() {
        return Err(format!("pg_restore: {}", last_words(&output.stderr)));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut values = Vec::new();
    let mut index: Option<usize> = None;
    for line in text.lines() {
        match index {
            None => {
                // "COPY public.users (id, email, …) FROM stdin;"
                if let Some(rest) = line.strip_prefix("COPY ") {
                    let columns = rest
                        .split_once('(')
                        .and_then(|(_, cols)| cols.split_once(')'))
                        .map(|(cols, _)| cols)
                        .unwrap_or_default();
                    index = columns
                        .split(',')
                        .map(|c| c.trim().trim_matches('"'))
                        .position(|c| c == column);
                    if index.is_none() {
                        return Err(format!("the dump's {table} has no column {column}"));
                    }
                }
            }
            Some(i) => {
                if line == "\\." {
                    break;
                }
                let field = line.split('\t').nth(i).unwrap_or_default();
                values.push((field != "\\N").then(|| unescape_copy(field)));
            }
        }
    }
    Ok(values)
}

/// COPY's text escapes, as far as values can hold them.
fn unescape_copy(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}
