//! `orchestrator verify`: does each store hold exactly the contract's tables and foreign
//! keys (with their ON DELETE actions) and the whole schema its migrations make (columns,
//! keys, uniques, checks, indexes), is its migration history complete, unedited and
//! vouched for, and does every cross-store reference point at a row that exists? Exit 1
//! when not.

use std::collections::HashMap;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use shared::code_schema::{self, CodeProblem};
use shared::contract::{self, ForeignKeyCheck, TableCheck};
use shared::migrations;
use shared::references::{self, ReferenceCheck, StreamError};
use shared::store::Store;
use shared::{catalog, Conn, CrossReference};

use crate::context::Context;
use crate::drift::{self, Drift};
use crate::exit::{CliError, CliResult, Exit};
use crate::output;

mod text;
use text::print_text;

/// Check each store against what its migrations make and its code reads; exit 1 when
/// anything is off.
///
/// Tables and foreign keys with their ON DELETE actions; the whole schema (columns with
/// type, nullability and default, primary keys, uniques, checks, indexes with their
/// collation, order and predicate, duplicates) against the recorded model of the
/// PostgreSQL history or the SQLite history replayed in memory; every table and column of
/// the crate's schema.rs; pending, unknown, modified and unchecked migrations; and the
/// cross-store references. Needs no server but the stores' own.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator verify\n  orchestrator verify --store app --format json | jq '.references'\n\nExit codes: 0 everything holds, 1 a problem was found, 2 bad usage, 4 database error."
)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub store: crate::commands::args::StoreArg,
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub stores: Vec<StoreVerify>,
    pub references: Vec<ReferenceCheck>,
    /// What interrupted runs left: verify reports it and changes nothing.
    pub interrupted: Vec<String>,
    /// Every store verify read that is a hot standby, the ones only read for the
    /// references (`--store app` reads auth) included.
    pub read_only_replicas: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct StoreVerify {
    pub store: &'static str,
    /// A hot standby: it answers reads, and every command that writes refuses it.
    pub read_only_replica: bool,
    pub tables: TableCheck,
    pub foreign_keys: ForeignKeyCheck,
    pub migrations: MigrationCheck,
    /// The whole schema against what the migrations make (see `drift`); `null` before
    /// any migration is applied.
    pub schema: Option<Drift>,
    /// Tables and columns the compiled code (`schema.rs`) uses that the database lacks
    /// or types differently.
    pub code: Vec<CodeProblem>,
}

#[derive(Debug, Default, Serialize)]
pub struct MigrationCheck {
    pub pending: Vec<String>,
    pub unknown: Vec<String>,
    pub modified: Vec<String>,
    /// Applied by another tool, with no checksum of what ran.
    pub unchecked: Vec<String>,
}

impl StoreVerify {
    fn problems(&self) -> usize {
        let (t, f, m) = (&self.tables, &self.foreign_keys, &self.migrations);
        t.missing.len()
            + t.unexpected.len()
            + f.missing.len()
            + f.mismatched.len()
            + f.unexpected.len()
            + m.pending.len()
            + m.unknown.len()
            + m.modified.len()
            + m.unchecked.len()
            + self.schema_problems().count()
            + self.code.len()
    }

    /// The schema's differences the contract's table and foreign key checks do not
    /// already name.
    fn schema_problems(&self) -> impl Iterator<Item = &shared::schema::Difference> {
        self.schema
            .iter()
            .flat_map(|d| &d.differences)
            .filter(|d| !drift::named_by_contract(d))
    }
}

impl VerifyReport {
    fn new(
        stores: Vec<StoreVerify>,
        references: Vec<ReferenceCheck>,
        interrupted: Vec<String>,
    ) -> Self {
        let mut report = VerifyReport {
            ok: false,
            stores,
            references,
            interrupted,
            read_only_replicas: Vec::new(),
        };
        report.ok = report.problems() == 0;
        report
    }

    pub fn problems(&self) -> usize {
        self.stores.iter().map(StoreVerify::problems).sum::<usize>()
            + self.references.iter().filter(|r| !r.ok()).count()
            + self.interrupted.len()
    }
}

/// Connects to a store and, when it is one the command covers, checks its schema and
/// migrations.
fn open_and_check(
    ctx: &Context,
    store: &'static Store,
    check: bool,
) -> CliResult<(Conn, Option<StoreVerify>, Vec<String>)> {
    // The session that took the read lock (PostgreSQL), which keeps it while verify runs.
    let mut conn = ctx.session(store)?.detach();
    if !check {
        let tables =
            catalog::tables(&mut conn).map_err(|e| ctx.query_error(store, "listing tables", e))?;
        return Ok((conn, None, tables));
    }
    let started = Instant::now();
    // One reading of the catalog serves the contract's checks, the whole schema's and the
    // code's.
    let live = shared::schema::introspect(&mut conn)
        .map_err(|e| ctx.query_error(store, "reading the schema", e))?;
    let tables: Vec<String> = live.tables.keys().cloned().collect();
    let contract = contract::compare(store, &tables, &live.live_foreign_keys());
    let state = migrations::state(&mut conn, store)
        .map_err(|e| ctx.query_error(store, "reading migrations", e))?;
    let schema = drift::check(store, conn.backend(), &state, &live)
        .map_err(|e| ctx.query_error(store, "comparing the schema", e))?;
    // What the compiled code reads, once the store has a schema at all.
    let code = if state.applied.is_empty() {
        Vec::new()
    } else {
        let tables = code_schema::parse(store.code_schema).map_err(|e| {
            ctx.query_error(store, "reading the schema.rs the code is built from", e)
        })?;
        code_schema::check(store.name, &tables, &live)
    };
    tracing::info!(
        store = store.name,
        millis = started.elapsed().as_millis() as u64,
        "schema and migrations checked"
    );
    let verified = StoreVerify {
        store: store.name,
        read_only_replica: ctx.server_facts(store.name).read_only_replica,
        tables: contract.tables,
        foreign_keys: contract.foreign_keys,
        migrations: MigrationCheck {
            pending: state.pending,
            unknown: state.unknown,
            modified: state.modified,
            unchecked: state.unchecked,
        },
        schema,
        code,
    };
    Ok((conn, Some(verified), tables))
}

pub fn run(ctx: &Context, args: &VerifyArgs) -> CliResult {
    let selected = ctx.selected(args.store.store.as_deref())?;
    // The stores to connect to: the ones checked, plus the targets of their references.
    let mut needed: Vec<(&'static Store, bool)> = selected.iter().map(|s| (*s, true)).collect();
    for store in &selected {
        for r in store.references {
            if !needed.iter().any(|(s, _)| s.name == r.target_store) {
                if let Some(target) = ctx.stores().into_iter().find(|s| s.name == r.target_store) {
                    needed.push((target, false));
                }
            }
        }
    }

    // A reset or migrate in progress is waited for: verify judges settled states only.
    let checked: Vec<&'static Store> = needed.iter().map(|(s, _)| *s).collect();
    let _read = crate::lock::read_all(ctx, &checked, true)?;
    let runs = crate::recovery::for_readers(ctx)?;
    if !runs.held.is_empty() {
        // A prepared rebuild holds those stores' tables: checking them would only wait.
        let report = VerifyReport::new(Vec::new(), Vec::new(), runs.interrupted);
        if ctx.json() {
            output::print_json(&report).map_err(|e| CliError::new(Exit::Usage, e))?;
        } else {
            print_text(&report);
        }
        return Err(CliError::new(
            Exit::CheckFailed,
            anyhow::anyhow!(
                "verify cannot check {} until the interrupted run is settled: {}",
                runs.held.join(" and "),
                crate::recovery::SETTLE_HINT
            ),
        ));
    }
    crate::commands::unmigrated::require_migrated(ctx, &selected, "verify")?;
    ctx.progress("verify: reading catalogs and migration histories…");
    // Every store is connected to and checked at once.
    let opened = crate::context::all_at_once(&needed, "verify", |(store, check)| {
        open_and_check(ctx, store, *check)
    })?;

    let mut conns: HashMap<&'static str, Conn> = HashMap::new();
    let mut tables: HashMap<&'static str, Vec<String>> = HashMap::new();
    let mut stores = Vec::new();
    for ((store, _), (conn, verified, live)) in needed.iter().zip(opened) {
        conns.insert(store.name, conn);
        tables.insert(store.name, live);
        stores.extend(verified);
    }

    // The references are checked at once, each with a pair of connections of its own:
    // the first reuses the ones above, the others open theirs while it streams.
    let pending: Vec<(&'static Store, &'static CrossReference)> = selected
        .iter()
        .flat_map(|store| store.references.iter().map(move |r| (*store, r)))
        .collect();
    let mut first = pending.first().and_then(|(store, r)| {
        let source = conns.remove(store.name)?;
        let target = conns.remove(r.target_store)?;
        Some((source, target))
    });
    let tables = &tables;
    let refs = std::thread::scope(|scope| {
        let handles: Vec<_> = pending
            .iter()
            .map(|(store, r)| {
                let given = first.take();
                scope.spawn(move || check_reference(ctx, store, r, given, tables))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join())
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(|_| CliError::new(Exit::Database, anyhow::anyhow!("a verify worker panicked")))?
    .into_iter()
    .collect::<CliResult<Vec<_>>>()?;

    let mut report = VerifyReport::new(stores, refs, runs.interrupted);
    report.read_only_replicas = needed
        .iter()
        .map(|(s, _)| s.name)
        .filter(|name| ctx.server_facts(name).read_only_replica)
        .collect();
    let problems = report.problems();
    if ctx.json() {
        output::print_json(&report).map_err(|e| CliError::new(Exit::Usage, e))?;
    } else {
        print_text(&report);
    }
    if report.ok {
        Ok(())
    } else {
        Err(CliError::new(
            Exit::CheckFailed,
            anyhow::anyhow!("verify found {problems} problem(s)"),
        ))
    }
}

fn check_reference(
    ctx: &Context,
    store: &'static Store,
    r: &'static CrossReference,
    given: Option<(Conn, Conn)>,
    tables: &HashMap<&'static str, Vec<String>>,
) -> CliResult<ReferenceCheck> {
    let mut result = ReferenceCheck::new(store.name, r);
    let target_store = ctx
        .stores()
        .into_iter()
        .find(|s| s.name == r.target_store)
        .ok_or_else(|| CliError::usage(format!("{} refers to an unknown store", result.from)))?;
    let missing: Vec<String> = [(store.name, r.table), (r.target_store, r.target_table)]
        .iter()
        .filter(|(s, table)| {
            !tables
                .get(s)
                .is_some_and(|live| live.iter().any(|t| t == table))
        })
        .map(|(s, table)| format!("{s}.{table}"))
        .collect();
    if !missing.is_empty() {
        result.skipped = Some(format!("missing table {}", missing.join(", ")));
        return Ok(result);
    }
    let (mut source, mut target) = match given {
        Some(pair) => pair,
        None => (ctx.connect(store)?, ctx.connect(target_store)?),
    };
    let started = Instant::now();
    let label = format!("{} → {}", result.from, result.to);
    ctx.step(&label, "checking…");
    let paused = std::sync::Once::new();
    let progress = |rows: u64| {
        let rate = (rows as f64 / started.elapsed().as_secs_f64().max(0.001)) as u64;
        ctx.step(&label, format!("{rows} rows checked ({rate} rows/s)"));
        paused.call_once(|| crate::fault::pause_at("pause-mid-check", store.name));
    };
    let checked = references::check_showing(store.name, r, &mut source, &mut target, &progress);
    tracing::info!(from = %result.from, to = %result.to, millis = started.elapsed().as_millis() as u64, "reference checked");
    checked.map_err(|e| match e {
        StreamError::Source { .. } => ctx.query_error(store, "streaming a reference", e),
        StreamError::Target { .. } | StreamError::Panicked => {
            ctx.query_error(target_store, "streaming a reference", e)
        }
    })
}
