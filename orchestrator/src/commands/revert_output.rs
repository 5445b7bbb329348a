//! `revert`'s report, for people (text) or as one JSON document.

use super::revert::Report;
use crate::context::Context;
use crate::output;

pub(super) fn print(ctx: &Context, report: &Report) {
    if ctx.json() {
        let _ = output::print_json(report);
        return;
    }
    for line in &report.recovered {
        crate::say!("recovered: {line}");
    }
    if report.dry_run {
        crate::say!("dry run: nothing will be changed");
    }
    for s in &report.stores {
        if s.reverted.is_empty() {
            crate::say!("{}: nothing to revert ({})", s.store, s.url);
            continue;
        }
        let verb = if report.dry_run {
            "would revert"
        } else {
            "reverted"
        };
        crate::say!(
            "{}: {verb} {} migration(s) on {}",
            s.store,
            s.reverted.len(),
            s.url
        );
        match &s.sql {
            Some(sql) => {
                for m in sql {
                    crate::say!("-- {} {}\n{}", s.store, m.name, m.sql.trim_end());
                }
            }
            None => {
                for name in &s.reverted {
                    crate::say!("  {name}");
                }
            }
        }
        let lost = s.destroys.describe();
        if lost.is_empty() {
            crate::say!("  destroys: no table or column");
        } else {
            let tense = if report.dry_run {
                "would drop"
            } else {
                "dropped"
            };
            crate::say!("  {tense}: {}", lost.join(", "));
        }
    }
    if let Some(dir) = &report.backup {
        crate::say!("backup: {}", dir.display());
    }
    if report.dry_run {
        match &report.refused {
            Some(why) => crate::say!("guard: would refuse: {why}"),
            None => crate::say!("guard: would pass"),
        }
    }
}
