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
