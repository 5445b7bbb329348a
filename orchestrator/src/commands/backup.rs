//! `orchestrator backup`: a backup set (dump or SQLite copy per store, plus manifest.json)
//! that `restore` can put back.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::{backup, output};

/// Back up the stores: pg_dump (custom format) or a SQLite copy, plus manifest.json.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator backup\n  orchestrator backup --store auth --out /var/backups/orchestrator"
)]
pub struct BackupArgs {
    #[command(flatten)]
    pub store: crate::commands::args::StoreArg,

    /// Folder to create the backup set in (default: backup_dir of the profile, .data/backups)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    dir: PathBuf,
    manifest: backup::Manifest,
}

pub fn run(ctx: &Context, args: &BackupArgs) -> CliResult {
    let stores = ctx.selected(args.store.store.as_deref())?;
    let (_locks, _) = crate::recovery::lock_and_settle(ctx, args.store.store.as_deref())?;
    let base = args
        .out
        .clone()
        .unwrap_or_else(|| ctx.settings.backup_dir.clone());
    let dir = backup::write_set(ctx, &stores, &base)?;
    // The dump's snapshot was taken on the session holding the lock; had that session
    // been ended meanwhile, the set could hold a moment another run was changing.
    crate::lock::confirm_held(
        ctx,
        &stores,
        &format!(
            "the backup in {} cannot be trusted; run backup again",
            dir.display()
        ),
    )?;
    let manifest = backup::load_checked(&dir, &stores.iter().map(|s| s.name).collect::<Vec<_>>())
        .map_err(|e| {
        CliError::new(
            Exit::Database,
            anyhow::anyhow!("the backup just written does not read back: {e}"),
        )
    })?;
    if ctx.json() {
        output::print_json(&Report {
            ok: true,
            dir,
            manifest,
        })
        .map_err(|e| CliError::new(Exit::Usage, e))?;
    } else {
        crate::say!("backup: {}", dir.display());
        for s in &manifest.stores {
            crate::say!(
                "  {} ({}): {} rows in {} ({} bytes, sha256 {})",
                s.store,
                s.url,
                s.total_rows(),
                s.file,
                s.bytes,
                &s.sha256[..12]
            );
        }
    }
    Ok(())
}
