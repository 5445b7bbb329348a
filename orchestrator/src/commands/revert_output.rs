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
        println!("recovered: {line}");
    }
    if report.dry_run {
        println!("dry run: nothing will be changed");
    }
    for s in &report.stores {
        if s.reverted.is_empty() {
            println!("{}: nothing to revert ({})", s.store, s.url);
            continue;
        }
        let verb = if report.dry_run {
            "would revert"
        } else {
            "reverted"
        };
        println!(
            "{}: {verb} {} migration(s) on {}",
            s.store,
            s.reverted.len(),
            s.url
        );
        match &s.sql {
            Some(sql) => {
                for m in sql {
                    println!("-- {} {}\n{}", s.store, m.name, m.sql.trim_end());
                }
            }
            None => {
                for name in &s.reverted {
                    println!("  {name}");
                }
            }
        }
        let lost = s.destroys.describe();
        if lost.is_empty() {
            println!("  destroys: no table or column");
        } else {
            let tense = if report.dry_run {
                "would drop"
            } else {
                "dropped"
            };
            println!("  {tense}: {}", lost.join(", "));
        }
    }
    if let Some(dir) = &report.backup {
        println!("backup: {}", dir.display());
    }
    if report.dry_run {
        match &report.refused {
            Some(why) => println!("guard: would refuse: {why}"),
            None => println!("guard: would pass"),
        }
    }
}
