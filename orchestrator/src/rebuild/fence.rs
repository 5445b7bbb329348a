//! Phase 1 of a rebuild, per store: open its transaction, take the write fence, read the
//! inventory again under it and, when there is something to keep, back the store up from
//! exactly the fenced state: the backup's snapshot is taken after the fence, when no
//! write can land any more (SQLite: `VACUUM INTO` on another connection, which reads
//! while the rebuild holds the write lock).

use std::path::Path;
use std::time::Instant;

use shared::inventory::Inventory;
use shared::store::Store;
use shared::Backend;

use super::{
    postgres, sqlite, Failed, Phases, Rebuild, Source, Stage, State, StoreFailure, StoreOutcome,
};

pub(super) fn take(
    rebuild: &Rebuild<'_>,
    store: &'static Store,
    source: Source<'_>,
    backup_dir: Option<&Path>,
) -> Result<Stage, Failed> {
    let ctx = rebuild.ctx;
    let url = ctx
        .url(store)
        .map_err(|e| {
            (
                None,
                StoreFailure {
                    store: store.name,
                    url: String::new(),
                    step: "configuration",
                    reason: e.to_string(),
                    locked: false,
                },
            )
        })?
        .clone();
    let mut stage = Stage {
        store,
        url: url.clone(),
        state: State::Done,
        inventory: Inventory::default(),
        backup: None,
        outcome: StoreOutcome {
            store: store.name,
            backend: url.backend(),
            url: url.redacted().to_string(),
            dropped: Vec::new(),
            inventory: Inventory::default(),
            access: None,
            applied: Vec::new(),
            committed: false,
            two_phase: false,
            millis: 0,
            phases: Phases::default(),
        },
        lent: false,
    };
    let started = Instant::now();
    let fail = |stage: Stage, step: &'static str, e: &dyn std::fmt::Display| {
        let failure = StoreFailure::new(store, &url, step, e);
        (Some(Box::new(stage)), failure)
    };

    // Open and fence.
    let mut fence_ms = 0;
    match (url.backend(), source) {
        (Backend::Postgres, Source::Migrations) => {
            match super::timed(&mut fence_ms, || postgres::fence(ctx, store)) {
                Ok(conn) => {
                    stage.state = State::Open(conn);
                    stage.lent = true;
                }
                Err((step, e)) => return Err(fail(stage, step, &e)),
            }
        }
        (Backend::Postgres, Source::Backup { dir, entry }) => {
            let dump = dir.join(&entry.file);
            match super::timed(&mut fence_ms, || {
                postgres::fence_for_load(ctx, store, &url, &dump)
            }) {
                Ok(fenced) => stage.state = State::Fenced(Box::new(fenced)),
                Err(e) => return Err(fail(stage, "taking the write fence", &e)),
            }
        }
        (Backend::Sqlite, source) => {
            let attach = match source {
                Source::Backup { dir, entry } => Some(dir.join(&entry.file)),
                Source::Migrations => None,
            };
            match super::timed(&mut fence_ms, || {
                sqlite::fence(ctx, store, attach.as_deref())
            }) {
                Ok(conn) => stage.state = State::Open(conn),
                Err((step, e)) => return Err(fail(stage, step, &e)),
            }
        }
    }
    stage.outcome.phases.fence += fence_ms;

    // What it holds now that no write can land: the fenced transaction's own view, or
    // (psql holding the fence) a session reading after the fence was taken.
    let read = match &mut stage.state {
        State::Open(conn) => Inventory::read(conn, store),
        _ => match ctx.session(store) {
            Ok(mut session) => Inventory::read(&mut session, store),
            Err(e) => return Err(fail(stage, "connecting", &e)),
        },
    };
    match read {
        Ok(inventory) => stage.inventory = inventory,
        Err(e) => return Err(fail(stage, "reading what the store holds", &e)),
    }
    stage.outcome.dropped = stage
        .inventory
        .objects
        .iter()
        .filter(|o| o.kind == "table" && !shared::store::is_bookkeeping(&o.name))
        .map(|o| o.name.clone())
        .collect();
    stage.outcome.inventory = stage.inventory.clone();

    if let (Some(dir), Some(safety)) = (backup_dir, rebuild.safety) {
        let inv = &stage.inventory;
        let holds = !inv.holding().is_empty();
        // What the guard will refuse (see `Rebuild::recheck`) is not backed up first:
        // data it may not replace, rows it cannot read, dependents it may not drop.
        let refused = (holds && !rebuild.allowed.data)
            || !inv.unreadable().is_empty()
            || (!inv.outside.is_empty() && !rebuild.allowed.dependents);
        if !refused && (safety.always || holds) {
            let mut backup_ms = 0;
            let taken = super::timed(&mut backup_ms, || {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                // The run's session is the fenced transaction's when lent: the backup's
                // own snapshot is then taken on a connection of its own.
                let (mut own, mut pooled);
                let conn: &mut shared::Conn = if stage.lent {
                    own = ctx.connect(store).map_err(|e| e.to_string())?;
                    &mut own
                } else {
                    pooled = ctx.session(store).map_err(|e| e.to_string())?;
                    &mut pooled
                };
                crate::backup::showing_bytes(ctx, store.name, dir, || {
                    crate::backup::backup_store(store, &url, conn, dir)
                })
            });
            stage.outcome.phases.backup += backup_ms;
            match taken {
                Ok(entry) => stage.backup = Some(entry),
                Err(e) => return Err(fail(stage, "backing up", &e)),
            }
        }
    }
    stage.outcome.millis += started.elapsed().as_millis();
    Ok(stage)
}
