//! Progress for people: one line per store, updated in place while a step runs (backing
//! up with bytes and rate, applying migrations, waiting for a lock), cleared when the
//! run's report is printed, so each thing is said once. Only on a terminal (stderr), never
//! with `--format json` or `-q`; elsewhere every call here does nothing.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The run's progress lines, once the context made them: the report printer clears them
/// before the first line of a report ([`clear_all`]).
static CURRENT: OnceLock<std::sync::Weak<Progress>> = OnceLock::new();

/// Clears the run's progress lines, if any are shown.
pub fn clear_all() {
    if let Some(progress) = CURRENT.get().and_then(std::sync::Weak::upgrade) {
        progress.clear();
    }
}

/// Makes `progress` the one [`clear_all`] clears.
pub fn register(progress: &std::sync::Arc<Progress>) {
    let _ = CURRENT.set(std::sync::Arc::downgrade(progress));
}

pub struct Progress {
    multi: Option<MultiProgress>,
    bars: Mutex<Vec<(String, ProgressBar)>>,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress {
            multi: enabled.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: Mutex::new(Vec::new()),
        }
    }

    /// A line of its own, above the stores' lines.
    pub fn line(&self, text: &str) {
        if let Some(multi) = &self.multi {
            let _ = multi.println(text);
        }
    }

    /// `store`'s line now says `message`.
    pub fn step(&self, store: &str, message: String) {
        let Some(multi) = &self.multi else {
            return;
        };
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        if let Some((_, bar)) = bars.iter().find(|(name, _)| name == store) {
            bar.set_message(message);
            return;
        }
        let bar = multi.add(ProgressBar::new_spinner());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {prefix:.bold}: {msg} ({elapsed})")
        {
            bar.set_style(style);
        }
        bar.set_prefix(store.to_string());
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(120));
        bars.push((store.to_string(), bar));
    }

    /// Clears every store's line (before a report, and at the end of the run).
    pub fn clear(&self) {
        if let Ok(mut bars) = self.bars.lock() {
            for (_, bar) in bars.drain(..) {
                bar.finish_and_clear();
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A transfer's progress line: `restoring: 12 MB of 75 MB (16%, 31 MB/s)`, or without a
/// known total `backing up to DIR: 12 MB (31 MB/s)`.
pub fn transfer(doing: &str, done: u64, total: Option<u64>, started: std::time::Instant) -> String {
    let rate = (done as f64 / started.elapsed().as_secs_f64().max(0.001)) as u64;
    let size = crate::output::size;
    match total {
        Some(total) if total > 0 => format!(
            "{doing}: {} of {} ({}%, {}/s)",
            size(done),
            size(total),
            done.saturating_mul(100) / total,
            size(rate)
        ),
        _ => format!("{doing}: {} ({}/s)", size(done), size(rate)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_line_gives_the_share_and_the_rate() {
        let started = std::time::Instant::now() - Duration::from_secs(2);
        let line = transfer("restoring", 25 << 20, Some(100 << 20), started);
        assert!(line.starts_with("restoring: 26.2 MB of 104.9 MB"), "{line}");
        assert!(line.contains("(25%, "), "{line}");
        assert!(line.ends_with("/s)"), "{line}");
        let open = transfer("backing up to x", 1 << 20, None, started);
        assert!(!open.contains('%'), "{open}");
    }
}
