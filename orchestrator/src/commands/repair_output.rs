//! What `repair` prints: per store, each step with its class (and, in a dry run, its SQL);
//! JSON gives the same as data.

use shared::repair::Class;

use super::repair::Report;
use crate::context::Context;
use crate::output::{self, Tone};

fn class_text(class: &Class) -> (String, Tone) {
    match class {
        Class::Safe => ("safe".into(), Tone::Good),
        Class::DestroysData { rows } => (
            format!("destroys data: {rows} row(s) hold values"),
            Tone::Bad,
        ),
        Class::BlockedByData { rows, sample, why } => (
            format!(
                "blocked by data: {rows} {why}{}",
                if sample.is_empty() {
                    String::new()
                } else {
                    format!(": {}", sample.join(", "))
                }
            ),
            Tone::Bad,
        ),
        Class::BlockedByDependents { objects } => (
            format!(
                "blocked by what depends on it outside the repair: {}",
                objects.join(", ")
            ),
            Tone::Bad,
        ),
    }
}

pub(super) fn print(ctx: &Context, report: &Report) {
    if ctx.json() {
        let _ = output::print_json(report);
        return;
    }
    if report.dry_run {
        crate::say!("dry run: nothing will be changed");
    }
    for s in &report.stores {
        if s.steps.is_empty() {
            crate::say!("{}: nothing to repair ({})", s.store, s.url);
        } else {
            crate::say!(
                "{}: {} {} step(s) ({})",
                s.store,
                if report.dry_run || !report.ok {
                    "would run"
                } else {
                    "ran"
                },
                s.steps.len(),
                s.url
            );
        }
        for step in &s.steps {
            let (class, tone) = class_text(&step.class);
            crate::say!(
                "  {}.{}: {} {} [{}]",
                s.store,
                step.table,
                step.kind,
                step.object,
                output::paint(&class, tone)
            );
            if report.dry_run {
                for sql in &step.sql {
                    crate::say!("      {}", output::paint(&format!("{sql};"), Tone::Dim));
                }
            }
        }
        if !s.adopted.is_empty() {
            crate::say!(
                "{}: had no history of this tool's; {} migration(s) recorded as applied",
                s.store,
                s.adopted.len()
            );
        }
    }
    if let Some(dir) = &report.backup {
        crate::say!("backup of what was dropped: {}", dir.display());
    }
    if report.ok && !report.dry_run {
        crate::say!("repaired: the schema is what the migrations make (diff finds nothing)");
    }
}
