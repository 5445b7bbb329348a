//! `orchestrator migrate`: apply pending migrations, auth before app. Each migration runs
//! in its own transaction; running it twice is a no-op.

use clap::Args;
use serde::Serialize;
use shared::migrations::{self, Applied};
use shared::{Backend, DbError};

use crate::context::{selected_stores, Context};
use crate::exit::{CliError, CliResult, Exit};
use crate::output;

/// Apply pending migrations, auth before app.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator migrate\n  orchestrator migrate --store auth --auth-url postgres://postgres@127.0.0.1/auth"
)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub store: crate::cli::StoreArg,
}

#[derive(Debug, Serialize)]
struct MigrateReport {
    ok: bool,
    stores: Vec<StoreMigrated>,
}

#[derive(Debug, Serialize)]
struct StoreMigrated {
    store: &'static str,
    backend: Backend,
    url: String,
    applied: Vec<Applied>,
    already_applied: usize,
}

pub fn run(ctx: &Context, args: &MigrateArgs) -> CliResult {
    let mut report = MigrateReport {
        ok: true,
        stores: Vec::new(),
    };
    // One run at a time per database, and whatever a crashed run left is settled first.
    let (_locks, _) = crate::recovery::lock_and_settle(ctx)?;
    // Sequential on purpose: app may only move once auth is at its latest schema.
    for store in selected_stores(args.store.store) {
        let url = ctx.url(store)?;
        let mut conn = ctx.session(store)?;
        let before = migrations::state(&mut conn, store).map_err(|e| DbError::Query {
            store: store.name.to_string(),
            url: url.redacted().to_string(),
            action: "reading migrations".into(),
            reason: e.to_string(),
        })?;
        if !before.pending.is_empty() {
            ctx.progress(format!(
                "{}: applying {} migration(s)…",
                store.name,
                before.pending.len()
            ));
        }
        let applied = migrations::run_pending(&mut conn, store, |m| {
            ctx.progress(format!("  {} {} ({} ms)", store.name, m.name, m.millis));
        })
        .map_err(|f| DbError::Migration {
            store: store.name.to_string(),
            url: url.redacted().to_string(),
            migration: f.migration,
            reason: f.reason,
        })?;
        report.stores.push(StoreMigrated {
            store: store.name,
            backend: url.backend(),
            url: url.redacted().to_string(),
            already_applied: before.applied.len(),
            applied,
        });
    }
    if ctx.json() {
        output::print_json(&report).map_err(|e| CliError::new(Exit::Usage, e))?;
    } else {
        for s in &report.stores {
            if s.applied.is_empty() {
                println!(
                    "{}: up to date ({} migrations applied before)",
                    s.store, s.already_applied
                );
            } else {
                println!(
                    "{}: applied {} migration(s) on {}",
                    s.store,
                    s.applied.len(),
                    s.url
                );
                for m in &s.applied {
                    println!("  {}  {} ms", m.name, m.millis);
                }
            }
        }
    }
    Ok(())
}
