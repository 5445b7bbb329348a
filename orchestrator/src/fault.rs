//! Fault injection for the fault tests: `ORCH_FAULT=<point>:<store>` makes a run fail or
//! die at a chosen point, so tests can prove what a real failure there leaves behind.
//! Points: `fail-migrate` (the store's rebuild fails after its migrations ran),
//! `crash-after-commit` (the process aborts right after the store committed, as a
//! SIGKILL would), `fail-commit` (the store's commit step fails), `pause-before-commit`
//! (sleeps 3 s before the store commits, so a test can race another run against it),
//! `squash-drift` (squash writes a baseline with one table too many, which its proof
//! must catch), `crash-mid-swap:squash` (squash aborts one rename into its committed
//! swap, which the next reader of the folder must finish), `pause-after-dump` (sleeps 3 s
//! once pg_dump has read the store, its snapshot's transaction still open on the session
//! holding the run's lock, so a test can end that session under the run),
//! `pause-mid-check` (verify sleeps 3 s after the first batch of a store's reference, so
//! a test sees its progress line), `fail-repair` (the store's repair fails after its steps
//! ran, before anything commits).
//! Unset in normal use.

pub const ENV: &str = "ORCH_FAULT";

/// Whether `point` is armed for `store`.
pub fn armed(point: &str, store: &str) -> bool {
    std::env::var(ENV)
        .map(|v| v.split(',').any(|f| f.trim() == format!("{point}:{store}")))
        .unwrap_or(false)
}

/// Dies at once, like SIGKILL: no destructors, no rollback, no cleanup.
pub fn crash_if(point: &str, store: &str) {
    if armed(point, store) {
        eprintln!("fault injected: {point}:{store}, aborting");
        std::process::abort();
    }
}

/// Sleeps when `pause-before-commit` is armed for `store`.
pub fn pause_if(store: &str) {
    pause_at("pause-before-commit", store);
}

/// Sleeps 3 s when `point` is armed for `store`, saying so on stderr first so that a test
/// acts while the run is paused, not on a guess of when.
pub fn pause_at(point: &str, store: &str) {
    if armed(point, store) {
        eprintln!("fault injected: {point}:{store}, pausing");
        std::thread::sleep(std::time::Duration::from_secs(3));
    }
}
