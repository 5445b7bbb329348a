//! Stores no migration has touched yet. `smoke` and `verify` check migrated stores: on a
//! store that was never migrated they would only list every table as missing (or fail on
//! the first query), so they say to run `migrate` instead, and create nothing on the way
//! (a SQLite file that does not exist is not opened, which would create it).

use shared::catalog;
use shared::store::Store;

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};

/// Why `store` counts as never migrated, or `None`: a SQLite file that does not exist,
/// or (unless `files_only`) a database with no migration recorded and none of the store's
/// tables.
fn never_migrated(
    ctx: &Context,
    store: &'static Store,
    files_only: bool,
) -> CliResult<Option<String>> {
    let url = ctx.url(store)?;
    if let Some(path) = url.sqlite_path() {
        if !path.exists() {
            return Ok(Some(format!("{} does not exist yet", path.display())));
        }
    }
    if files_only {
        return Ok(None);
    }
    let mut conn = ctx.session(store)?;
    let query = |e: diesel::result::Error| {
        CliError::from(shared::DbError::Query {
            store: store.name.into(),
            url: url.redacted().into(),
            action: "looking for applied migrations".into(),
            reason: e.to_string(),
        })
    };
    let applied = catalog::applied_versions(&mut conn).map_err(query)?;
    let tables = catalog::tables(&mut conn).map_err(query)?;
    let has_ours = store.tables.iter().any(|t| tables.iter().any(|l| l == t));
    Ok(
        (applied.is_empty() && !has_ours)
            .then(|| "no migration applied, none of its tables".into()),
    )
}

/// Exit 1 naming every store of `stores` that was never migrated, with the command that
/// fixes it; `Ok` when all were.
pub fn require_migrated(ctx: &Context, stores: &[&'static Store], command: &str) -> CliResult {
    require(ctx, stores, command, false)
}

/// [`require_migrated`] for SQLite files alone, which opens nothing: for a command to ask
/// before it takes locks (a lock file is a file too).
pub fn require_files(ctx: &Context, stores: &[&'static Store], command: &str) -> CliResult {
    require(ctx, stores, command, true)
}

fn require(ctx: &Context, stores: &[&'static Store], command: &str, files_only: bool) -> CliResult {
    let mut found = Vec::new();
    for store in stores {
        if let Some(why) = never_migrated(ctx, store, files_only)? {
            found.push(format!("{} ({why})", store.name));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(CliError::new(
        Exit::CheckFailed,
        anyhow::anyhow!(
            "not migrated yet: {}; run `orchestrator migrate` first ({command} checks migrated stores)",
            found.join("; ")
        ),
    ))
}

/// Exit 1 when a selected store is a SQLite file that does not exist: a command that works
/// on what a database holds (`adopt`, `repair`) has nothing to do there, and opening the
/// file would create it.
pub fn require_existing(ctx: &Context, stores: &[&'static Store], command: &str) -> CliResult {
    for store in stores {
        let url = ctx.url(store)?;
        if url.is_missing_sqlite_file() {
            return Err(CliError::new(
                Exit::CheckFailed,
                anyhow::anyhow!(
                    "{} ({url}) does not exist: there is nothing to {command}; `orchestrator migrate` creates it",
                    store.name
                ),
            ));
        }
    }
    Ok(())
}
