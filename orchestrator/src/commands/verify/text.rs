//! verify's report for people.

use super::VerifyReport;
use crate::output::{paint, Tone};

pub(super) fn print_text(report: &VerifyReport) {
    for line in &report.interrupted {
        crate::say!("{}: {line}", paint("interrupted", Tone::Bad));
    }
    if !report.interrupted.is_empty() {
        crate::say!("  {}", crate::recovery::SETTLE_HINT);
    }
    for s in &report.stores {
        let n = s.problems();
        let replica = if s.read_only_replica {
            format!(" ({})", crate::output::REPLICA_NOTE)
        } else {
            String::new()
        };
        if n == 0 {
            crate::say!("{}: {}{replica}", s.store, paint("ok", Tone::Good));
            continue;
        }
        crate::say!(
            "{}: {}{replica}",
            s.store,
            paint(&format!("{n} problem(s)"), Tone::Bad)
        );
        let mut lines: Vec<(&str, String)> = Vec::new();
        lines.extend(
            s.tables
                .missing
                .iter()
                .map(|t| ("missing table", t.clone())),
        );
        lines.extend(
            s.tables
                .unexpected
                .iter()
                .map(|t| ("unexpected table", t.clone())),
        );
        lines.extend(
            s.foreign_keys
                .missing
                .iter()
                .map(|f| ("missing foreign key", f.clone())),
        );
        lines.extend(s.foreign_keys.mismatched.iter().map(|m| {
            (
                "mismatched foreign key",
                format!("{}: expected {}, found {}", m.column, m.expected, m.found),
            )
        }));
        lines.extend(
            s.foreign_keys
                .unexpected
                .iter()
                .map(|f| ("unexpected foreign key", f.clone())),
        );
        lines.extend(
            s.migrations
                .pending
                .iter()
                .map(|m| ("pending migration", m.clone())),
        );
        lines.extend(s.migrations.unknown.iter().map(|m| {
            (
                "unknown migration",
                format!("{m} (applied here, not shipped by this build)"),
            )
        }));
        lines.extend(s.migrations.modified.iter().map(|m| {
            (
                "modified migration",
                format!("{m} (up.sql changed since it was applied)"),
            )
        }));
        lines.extend(s.migrations.unchecked.iter().map(|m| {
            (
                "unchecked migration",
                format!("{m} (applied by another tool; `orchestrator migrate` records it once the schema is proven)"),
            )
        }));
        if let (Some(drift), Some(_)) = (&s.schema, s.schema_problems().next()) {
            crate::say!("  the schema is held to {}:", drift.held_to);
        }
        lines.extend(s.schema_problems().map(|d| ("schema", d.describe(s.store))));
        lines.extend(s.code.iter().map(|c| ("code", c.message.clone())));
        let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (kind, what) in lines {
            crate::say!("  {kind:<width$}  {what}");
        }
    }
    for name in &report.read_only_replicas {
        if !report.stores.iter().any(|s| s.store == *name) {
            crate::say!(
                "{name}: {} (read for the references)",
                crate::output::REPLICA_NOTE
            );
        }
    }
    if !report.references.is_empty() {
        crate::say!("references:");
        for r in &report.references {
            let state = if let Some(why) = &r.skipped {
                paint(&format!("not checked: {why}"), Tone::Bad)
            } else if r.orphans == 0 {
                paint("ok", Tone::Good)
            } else {
                paint(
                    &format!("{} orphan(s), e.g. {}", r.orphans, r.sample.join(", ")),
                    Tone::Bad,
                )
            };
            crate::say!("  {} → {}: {state}", r.from, r.to);
        }
    }
    let problems = report.problems();
    if problems == 0 {
        crate::say!("verify: {}", paint("everything holds", Tone::Good));
    } else {
        crate::say!(
            "verify: {}",
            paint(&format!("{problems} problem(s) found"), Tone::Bad)
        );
    }
}
