//! What every connection of a run starts with, whichever backend: how long any lock wait
//! may last, and (PostgreSQL) a name that says which process on which host opened it, so
//! that a later run can tell a dead run's session from a live one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The name every connection of ours starts with ("who holds the lock" messages and the
/// tests look for it).
pub const APPLICATION_NAME: &str = "orchestrator";

/// PostgreSQL keeps `lock_timeout` as a 32-bit count of milliseconds; a longer bound is a
/// configuration error rather than a failure at the server halfway into a run.
pub const MAX_LOCK_TIMEOUT_SECS: u64 = i32::MAX as u64 / 1000;

/// The default bound, as in `CommonSettings::default()`.
pub const DEFAULT_LOCK_TIMEOUT_SECS: u64 = 30;
const DEFAULT_LOCK_TIMEOUT_MS: u64 = DEFAULT_LOCK_TIMEOUT_SECS * 1000;

/// Process-wide, because connections are opened in many places (the store crates, the
/// scratch databases, the rebuild) and every one of them must wait no longer than the run
/// allows; the orchestrator sets it once, right after reading its configuration.
static LOCK_TIMEOUT_MS: AtomicU64 = AtomicU64::new(DEFAULT_LOCK_TIMEOUT_MS);

/// Sets the bound of every lock wait on connections opened from now on.
pub fn set_lock_timeout(bound: Duration) {
    let ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
    LOCK_TIMEOUT_MS.store(ms.min(MAX_LOCK_TIMEOUT_SECS * 1000), Ordering::Relaxed);
}

/// The bound of every lock wait (PostgreSQL `lock_timeout`, SQLite `busy_timeout`).
pub fn lock_timeout() -> Duration {
    Duration::from_millis(LOCK_TIMEOUT_MS.load(Ordering::Relaxed))
}

/// The bound in milliseconds as both servers take it: at least 1, because 0 means "wait
/// forever" to PostgreSQL and "never wait" to SQLite.
pub fn lock_timeout_millis() -> u64 {
    LOCK_TIMEOUT_MS.load(Ordering::Relaxed).max(1)
}

/// This machine's name, as the kernel knows it ("" when it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// PostgreSQL truncates `application_name` to 63 bytes.
const NAME_LIMIT: usize = 63;

/// `orchestrator pid=1234 host=NAME`, cut to what the server keeps.
pub fn application_name_of(pid: u32, host: &str) -> String {
    let mut name = format!("{APPLICATION_NAME} pid={pid} host={host}");
    if name.len() > NAME_LIMIT {
        let mut end = NAME_LIMIT;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// The application name of this process's connections.
pub fn application_name() -> String {
    application_name_of(std::process::id(), &host_name())
}

/// The process id in one of our application names, when it was given on this host (as
/// far as the server kept the name). `None` for anyone else's name.
pub fn local_run_pid(application_name: &str) -> Option<u32> {
    let rest = application_name
        .strip_prefix(APPLICATION_NAME)?
        .strip_prefix(" pid=")?;
    let (pid, _) = rest.split_once(' ')?;
    let pid: u32 = pid.parse().ok()?;
    let host = host_name();
    (!host.is_empty() && application_name_of(pid, &host) == application_name).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_pid_and_host_and_are_recognised_only_for_this_host() {
        let host = host_name();
        let mine = application_name_of(4242, &host);
        assert!(mine.starts_with("orchestrator pid=4242 host="), "{mine}");
        if !host.is_empty() {
            assert_eq!(local_run_pid(&mine), Some(4242));
        }
        assert_eq!(
            local_run_pid(&application_name_of(4242, "elsewhere.example")),
            None
        );
        assert_eq!(local_run_pid("orchestrator"), None);
        assert_eq!(local_run_pid("psql"), None);
    }

    #[test]
    fn long_host_names_are_cut_where_the_server_cuts_them() {
        let name = application_name_of(1, &"é".repeat(80));
        assert!(name.len() <= NAME_LIMIT);
        assert!(name.starts_with("orchestrator pid=1 host=é"));
    }
}
