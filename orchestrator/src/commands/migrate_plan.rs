//! `migrate --dry-run`: the SQL each store would run, in order, read without writing
//! anything (no lock taken, nothing settled, no SQLite file or bookkeeping table made).

use serde::Serialize;
use shared::migrations::{self, MigrationState};
use shared::{Backend, DbError};

use super::migrate::{target_version, MigrateArgs};
use crate::context::{selected_stores, Context};
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
    for store in selected_stores(args.store.store) {
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
        let pending = migrations::pending_sql(&state, store, backend, to.as_deref())
            .map_err(|e| CliError::new(Exit::Database, anyhow::anyhow!("{e}")))?;
        plan.stores.push(StorePlan {
            store: store.name,
            backend,
            url: url.redacted().to_string(),
            migrations: pending
                .into_iter()
                .map(|(name, sql)| PlannedMigration { name, sql })
                .collect(),
        });
    }
    if ctx.json() {
        output::print_json(&plan).map_err(|e| CliError::new(Exit::Usage, e))?;
        return Ok(());
    }
    for s in &plan.stores {
        if s.migrations.is_empty() {
            println!("-- {}: nothing to apply ({})", s.store, s.url);
            continue;
        }
        println!(
            "-- {}: {} migration(s) would run on {}, each in its own transaction",
            s.store,
            s.migrations.len(),
            s.url
        );
        for m in &s.migrations {
            println!("-- {} {}\n{}", s.store, m.name, m.sql.trim_end());
        }
    }
    Ok(())
}
