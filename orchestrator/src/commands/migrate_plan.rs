//! `migrate --dry-run`: the SQL each store would run, in order, read without writing
//! anything (no lock taken, nothing settled, no SQLite file or bookkeeping table made).

use serde::Serialize;
use shared::migrations::{self, MigrationState};
use shared::{Backend, DbError};

use super::migrate::{target_version, MigrateArgs};
use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::output;

#[derive(Debug, Serialize)]
struct Plan {
    dry_run: bool,
    stores: Vec<StorePlan>,
}

#[derive(Debug, Serialize)]
struct StorePlan {
    store: &'static str,
    backend: Backend,
    url: String,
    migrations: Vec<PlannedMigration>,
    /// The squash baseline `migrate` would recognise instead of running it: the database
    /// ran the history it replaces (its schema is compared then).
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline_recognised: Option<String>,
}

#[derive(Debug, Serialize)]
struct PlannedMigration {
    name: String,
    sql: String,
}

pub fn run(ctx: &Context, args: &MigrateArgs) -> CliResult {
    if args.migrations_dir.is_some() {
        return Err(CliError::usage(
            "--dry-run prints the store's own migrations; it does not read --migrations-dir",
        ));
    }
    let mut plan = Plan {
        dry_run: true,
        stores: Vec::new(),
    };
    for store in ctx.selected(args.store.store.as_deref())? {
        let url = ctx.url(store)?;
        let backend = url.backend();
        let to = target_version(args, store, backend)?;
        // A SQLite file that does not exist yet is not made: everything is pending.
        let state = match url.sqlite_path() {
            Some(path) if !path.exists() => MigrationState {
                pending: migrations::shipped(store, backend)
                    .map_err(|e| CliError::new(Exit::Database, anyhow::anyhow!("{e}")))?
                    .into_iter()
                    .map(|(_, name)| name)
                    .collect(),
                ..MigrationState::default()
            },
            _ => {
                let mut session = ctx.session(store)?;
                migrations::state(&mut session, store).map_err(|e| DbError::Query {
                    store: store.name.to_string(),
                    url: url.redacted().to_string(),
                    action: "reading migrations".into(),
                    reason: e.to_string(),
                })?
            }
        };
        let mut pending = migrations::pending_sql(&state, store, backend, to.as_deref())
            .map_err(|e| CliError::new(Exit::Database, anyhow::anyhow!("{e}")))?;
        let baseline_recognised = squash_baseline(store, backend, &state);
        if let Some(baseline) = &baseline_recognised {
            pending.retain(|(name, _)| !name.starts_with(&format!("{}_", baseline)));
        }
        plan.stores.push(StorePlan {
            store: store.name,
            backend,
            url: url.redacted().to_string(),
            migrations: pending
                .into_iter()
                .map(|(name, sql)| PlannedMigration { name, sql })
                .collect(),
            baseline_recognised,
        });
    }
    if ctx.json() {
        output::print_json(&plan).map_err(|e| CliError::new(Exit::Usage, e))?;
        return Ok(());
    }
    for s in &plan.stores {
        if let Some(baseline) = &s.baseline_recognised {
            crate::say!(
                "-- {}: ran the history squashed into {baseline}: migrate compares the schema \
                 and marks the baseline applied instead of running it",
                s.store
            );
        }
        if s.migrations.is_empty() {
            crate::say!("-- {}: nothing to apply ({})", s.store, s.url);
            continue;
        }
        crate::say!(
            "-- {}: {} migration(s) would run on {}, each in its own transaction",
            s.store,
            s.migrations.len(),
            s.url
        );
        for m in &s.migrations {
            crate::say!("-- {} {}\n{}", s.store, m.name, m.sql.trim_end());
        }
    }
    Ok(())
}

/// The baseline of the store's embedded squash record, when the database ran versions it
/// replaces (unknown to this build) and not the baseline itself (pending).
fn squash_baseline(
    store: &shared::Store,
    backend: Backend,
    state: &MigrationState,
) -> Option<String> {
    let text = store.migrations.squash_for(backend)?;
    let map = shared::history::parse_squash_map(text, "squash.json").ok()?;
    let ran_old = state.unknown.iter().any(|v| map.replaces.contains(v));
    let pending = state.pending.iter().any(|name| {
        name.split('_').next().map(|v| v.replace('-', "")) == Some(map.baseline.clone())
    });
    (ran_old && pending).then_some(map.baseline)
}
