//! `orchestrator recover`: settle what an interrupted run left, and nothing else. Every
//! writing command does this first; this one does only this, so a person can settle
//! what `status` or `verify` reported without migrating or replacing anything.

use clap::Args;
use serde::Serialize;

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::output;

/// Finish or undo what an interrupted reset or restore left, then stop.
///
/// A run that had decided to commit is finished from the source it recorded (the
/// migrations, or the backup set a restore read); if that source is gone, the stores it
/// committed are put back from its safety backup; if neither can be had, nothing changes
/// and the error says what is needed. Leftovers of runs that never decided are discarded.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator status    # reports an interrupted run\n  orchestrator recover"
)]
pub struct RecoverArgs {}

#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    recovered: Vec<String>,
}

pub fn run(ctx: &Context, _args: &RecoverArgs) -> CliResult {
    let (_locks, recovered) = crate::recovery::lock_and_settle(ctx, None)?;
    let report = Report {
        ok: true,
        recovered,
    };
    if ctx.json() {
        output::print_json(&report).map_err(|e| CliError::new(Exit::Usage, e))?;
    } else if report.recovered.is_empty() {
        crate::say!("nothing to recover: no interrupted run");
    } else {
        for line in &report.recovered {
            crate::say!("recovered: {line}");
        }
    }
    Ok(())
}
