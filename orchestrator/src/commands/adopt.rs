//! `orchestrator adopt`: take on a database another tool built (Drizzle, Prisma, SQLModel,
//! hand-written SQL). Its schema is compared with what the store's migrations make (the
//! comparison `verify` holds a migrated store to); only when every selected store is equal
//! is anything written: each store's whole history recorded as applied, with checksums, in
//! one transaction. Another tool's history table is left alone and named.

use clap::Args;
use serde::Serialize;
use shared::schema::{self, Difference};
use shared::{migrations, Store};

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::output;

/// Record the migrations as applied on databases another tool built, once their schema is
/// proven to be what the migrations make.
///
/// For a store whose database holds tables but none of this tool's history: equal to what
/// the migrations make, every migration is recorded as applied (with checksums) in one
/// transaction, and `migrate` has nothing left to do. Not equal: exit 1 listing the
/// differences, and nothing is recorded in any store. Stores that already have this
/// tool's history are left as they are. Another tool's history table
/// (`_prisma_migrations`, `__drizzle_migrations`, …) is left alone and named.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator adopt\n  orchestrator adopt --store auth --auth-url postgres://app@db/auth\n  orchestrator --format json adopt"
)]
pub struct AdoptArgs {
    #[command(flatten)]
    pub store: crate::commands::args::StoreArg,
}

#[derive(Debug, Serialize)]
struct AdoptReport {
    ok: bool,
    stores: Vec<StoreAdoption>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    /// Equal to the migrations: the history was recorded.
    Adopted,
    /// Equal to the migrations, but not recorded: another store was not.
    Equal,
    /// This tool's history is there already: nothing to do.
    AlreadyManaged,
    /// Not equal to the migrations: nothing recorded.
    Differs,
    /// No table at all: `migrate` builds it.
    Empty,
}

#[derive(Debug, Serialize)]
struct StoreAdoption {
    store: &'static str,
    url: String,
    outcome: Outcome,
    /// The migrations recorded as applied (adopted), or already recorded (already managed).
    migrations: Vec<String>,
    differences: Vec<Difference>,
    /// Other tools' history tables found, left alone: `[table, tool]`.
    other_tools: Vec<(String, &'static str)>,
}

pub fn run(ctx: &Context, args: &AdoptArgs) -> CliResult {
    let stores = ctx.selected(args.store.store.as_deref())?;
    // A SQLite file that does not exist holds nothing to adopt; opening it would create it.
    crate::commands::unmigrated::require_existing(ctx, &stores, "adopt")?;
    let (_locks, _) = crate::recovery::lock_and_settle(ctx, args.store.store.as_deref())?;

    // Every store is judged before any is written: one that differs records nothing
    // anywhere, so a pair is never left half adopted by a refusal.
    let mut report = AdoptReport {
        ok: true,
        stores: Vec::new(),
    };
    for store in &stores {
        ctx.step(store.name, "comparing the schema with the migrations…");
        report.stores.push(judge(ctx, store)?);
    }
    report.ok = report
        .stores
        .iter()
        .all(|s| matches!(s.outcome, Outcome::Equal | Outcome::AlreadyManaged));
    if report.ok {
        for (store, adoption) in stores.iter().zip(&mut report.stores) {
            if matches!(adoption.outcome, Outcome::Equal) {
                ctx.step(store.name, "recording the migrations as applied…");
                let mut session = ctx.session(store)?;
                adoption.migrations = migrations::adopt(&mut session, store).map_err(|e| {
                    ctx.query_error(store, "recording the migrations as applied", e)
                })?;
                adoption.outcome = Outcome::Adopted;
            }
        }
    }
    print(ctx, &report)?;
    if report.ok {
        return Ok(());
    }
    let refused: Vec<String> = report
        .stores
        .iter()
        .filter_map(|s| match s.outcome {
            Outcome::Differs => Some(format!(
                "{} differs from its migrations in {} way(s)",
                s.store,
                s.differences.len()
            )),
            Outcome::Empty => Some(format!(
                "{} has no table (`orchestrator migrate` builds it)",
                s.store
            )),
            _ => None,
        })
        .collect();
    Err(CliError::new(
        Exit::CheckFailed,
        anyhow::anyhow!(
            "nothing was adopted: {}; nothing was recorded in any store. Bring the schema in line with the migrations (`orchestrator diff` lists each difference), then adopt again",
            refused.join("; ")
        ),
    ))
}

/// What adopting `store` would do, read without writing.
fn judge(ctx: &Context, store: &'static Store) -> CliResult<StoreAdoption> {
    let url = ctx.url(store)?;
    let mut session = ctx.session(store)?;
    let conn: &mut shared::Conn = &mut session;
    let state = migrations::state(conn, store)
        .map_err(|e| ctx.query_error(store, "reading migrations", e))?;
    let other_tools: Vec<(String, &'static str)> = shared::catalog::tables(conn)
        .map_err(|e| ctx.query_error(store, "listing tables", e))?
        .into_iter()
        .filter_map(|t| shared::other_tools::history_of(&t).map(|tool| (t, tool)))
        .collect();
    let mut adoption = StoreAdoption {
        store: store.name,
        url: url.redacted().to_string(),
        outcome: Outcome::Equal,
        migrations: Vec::new(),
        differences: Vec::new(),
        other_tools,
    };
    if !state.records_nothing() {
        adoption.outcome = Outcome::AlreadyManaged;
        adoption.migrations = [state.applied, state.unknown].concat();
        return Ok(adoption);
    }
    // The model leaves other tools' history tables out; they are named from the list.
    let live =
        schema::introspect(conn).map_err(|e| ctx.query_error(store, "reading the schema", e))?;
    if live.tables.is_empty() {
        adoption.outcome = Outcome::Empty;
        return Ok(adoption);
    }
    let expected = shared::expected::full(store, url.backend())
        .map_err(|e| ctx.query_error(store, "building what the migrations make", e))?;
    adoption.differences = schema::compare(&expected, &live);
    if !adoption.differences.is_empty() {
        adoption.outcome = Outcome::Differs;
    }
    Ok(adoption)
}

fn print(ctx: &Context, report: &AdoptReport) -> CliResult {
    if ctx.json() {
        return output::print_json(report).map_err(|e| CliError::new(Exit::Usage, e));
    }
    for s in &report.stores {
        match s.outcome {
            Outcome::Adopted => crate::say!(
                "{}: adopted: the schema is what the migrations make; {} migration(s) recorded as applied, with checksums ({})",
                s.store,
                s.migrations.len(),
                s.url
            ),
            Outcome::Equal => crate::say!(
                "{}: the schema is what the migrations make, but nothing was recorded: another store was not ({})",
                s.store,
                s.url
            ),
            Outcome::AlreadyManaged => crate::say!(
                "{}: already has this tool's history ({} migration(s) recorded); nothing to adopt, `orchestrator migrate` takes it from there",
                s.store,
                s.migrations.len()
            ),
            Outcome::Empty => crate::say!(
                "{}: no table to adopt ({}); `orchestrator migrate` builds it",
                s.store,
                s.url
            ),
            Outcome::Differs => {
                crate::say!(
                    "{}: {} difference(s) from the migrations ({}); not adopted",
                    s.store,
                    s.differences.len(),
                    s.url
                );
                output::say_differences(s.store, &s.differences);
            }
        }
        for (table, tool) in &s.other_tools {
            crate::say!("  left alone: {table} ({tool}'s history)");
        }
    }
    Ok(())
}
