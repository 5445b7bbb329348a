//! `orchestrator repair`: bring each store's schema to what its migrations make, keeping
//! the data. The steps come from the comparison `diff` makes (see `shared::repair`); each is
//! classed by what the rows allow; then, under the run locks and each store's write fence,
//! the stores are changed in one transaction each, proven (the comparison finds nothing)
//! and committed together. A store with no history of this tool's is adopted in the same
//! transaction.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use shared::repair::{self, Class, Step};
use shared::schema::{self, DifferenceKind, SchemaModel};
use shared::{migrations, Backend, Conn, DatabaseUrl, Store};

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};

/// Bring each store's schema to what its migrations make, keeping the data.
///
/// Adds what is missing (tables, columns with their defaults, keys, uniques, checks,
/// indexes, foreign keys), fixes ON DELETE actions, types and nullability where the rows
/// allow, and drops what the migrations do not have. Each step is safe, destroys data
/// (a column or table holding values: needs --force, backed up first) or is blocked by
/// data (NULLs, duplicates, orphans, values the new type or a check refuses: refused,
/// exit 3, the rows named). A table of another store (a `users` table in app) is dropped
/// only when every row of it is in the owning store, or with --force. One transaction per
/// store, under the write fence; the result is proven before anything commits.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator repair --dry-run\n  orchestrator repair --store app --force\n  orchestrator --format json repair --dry-run"
)]
pub struct RepairArgs {
    #[command(flatten)]
    pub store: crate::commands::args::StoreArg,

    #[command(flatten)]
    pub guard: crate::commands::args::GuardArgs,

    /// Print each store's steps, their SQL and class; change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// PostgreSQL server to build what the migrations make on, when a scratch database is
    /// needed (always dropped), as a URL of any database there (default: the store's own
    /// server)
    #[arg(long, value_name = "URL")]
    pub shadow_url: Option<String>,

    /// Replay the migrations in a scratch database to learn their exact SQL, even where
    /// the definitions recorded with this build (migrations/postgres.definitions.json)
    /// could be used: PostgreSQL stores use the record when it was made from this very
    /// history on a server of the same major version
    #[arg(long)]
    pub replay: bool,

    /// Where to write the backup of what --force destroys (default: backup_dir of the
    /// profile, .data/backups)
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub(super) struct Report {
    pub ok: bool,
    pub dry_run: bool,
    pub stores: Vec<StoreRepair>,
    pub backup: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct StoreRepair {
    pub store: &'static str,
    pub url: String,
    pub steps: Vec<Step>,
    /// The migrations recorded as applied: the store had no history of this tool's.
    pub adopted: Vec<String>,
    /// Whether the store had no history (it is adopted once repaired).
    #[serde(skip)]
    pub unrecorded: bool,
    /// Where the model and the SQL came from.
    pub definitions: crate::shadow::DefinitionsFrom,
}

/// A store's open repair: its fenced transaction and what must hold after the steps.
/// Rolled back when dropped uncommitted, so that every way out of a run but the commit
/// leaves the stores as they were.
struct Open {
    store: &'static Store,
    conn: Conn,
    expected: SchemaModel,
    committed: bool,
}

impl Drop for Open {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.conn.batch_execute("ROLLBACK");
        }
    }
}

pub fn run(ctx: &Context, args: &RepairArgs) -> CliResult {
    let stores = ctx.selected(args.store.store.as_deref())?;
    crate::guard::check_confirm_names(&args.guard.confirm)?;
    crate::commands::unmigrated::require_existing(ctx, &stores, "repair")?;
    let shadow = args
        .shadow_url
        .as_deref()
        .map(DatabaseUrl::parse)
        .transpose()?;
    // A dry run reads under the readers' locks, as `status` does; a repair takes the
    // run locks and settles an interrupted run first, as every writing command does.
    let (_locks, _read) = if args.dry_run {
        let (read, _) = crate::recovery::read_settled(ctx, &stores, "repair --dry-run")?;
        (Vec::new(), read)
    } else {
        let (locks, _) = crate::recovery::lock_and_settle(ctx, args.store.store.as_deref())?;
        (locks, Vec::new())
    };

    let mut report = Report {
        ok: true,
        dry_run: args.dry_run,
        stores: Vec::new(),
        backup: None,
        refused: None,
    };
    // The scratch databases are dropped while the repair goes on, and waited for at the
    // end, after the stores' transactions (declared later, so dropped first) have ended.
    let mut _dropping = Vec::new();
    let ordered = shared::store::dependency_order(&stores);
    let unrecorded: Vec<bool> = ordered
        .iter()
        .map(|store| require_history_complete(ctx, store))
        .collect::<CliResult<_>>()?;
    // Every store at once: what its migrations make (recorded with this build, or
    // replayed in a scratch database) and its transaction, fenced unless this is a dry
    // run (which measures in a transaction it rolls back: the application's writers never
    // wait on a plan). Every fence is up before any store is planned, so that a table of
    // another store is compared with an owner no writer can change any more.
    let prepared = crate::context::all_at_once(&ordered, "repair", |store| {
        let (expected, defs, dropping, definitions) =
            crate::shadow::repair_expectation(ctx, store, shadow.as_ref(), args.replay)?;
        let opened = if args.dry_run {
            open_for_plan(ctx, store)
        } else {
            crate::rebuild::open_fenced(ctx, store)
        };
        let conn =
            opened.map_err(|e| ctx.query_error(store, "opening the repair's transaction", e))?;
        let open = Open {
            store,
            conn,
            expected,
            committed: false,
        };
        Ok((open, defs, dropping, definitions))
    })?;
    let planned =
        crate::context::in_parallel(prepared, |(mut open, defs, dropping, definitions)| {
            let store = open.store;
            ctx.step(store.name, "comparing and measuring the rows…");
            let started = std::time::Instant::now();
            let steps = plan_store(
                ctx,
                store,
                &mut open.conn,
                &open.expected,
                &defs,
                args.guard.force,
            );
            tracing::info!(
                store = store.name,
                millis = started.elapsed().as_millis() as u64,
                "repair planned and measured"
            );
            (open, steps, dropping, definitions)
        });
    let mut open: Vec<Open> = Vec::new();
    for (planned, unrecorded) in planned.into_iter().zip(unrecorded) {
        let Some((this, steps, dropping, definitions)) = planned else {
            return Err(worker_panicked());
        };
        _dropping.push(dropping);
        let store = this.store;
        open.push(this);
        report.stores.push(StoreRepair {
            store: store.name,
            url: ctx.url(store)?.redacted().to_string(),
            steps: steps?,
            adopted: Vec::new(),
            unrecorded,
            definitions,
        });
    }

    let verdict = judge(ctx, &report, args);
    report.ok = verdict.is_ok();
    report.refused = verdict.as_ref().err().map(|e| e.to_string());
    if args.dry_run || verdict.is_err() {
        drop(open);
        super::repair_output::print(ctx, &report);
        return verdict;
    }

    // What --force destroys is backed up first, from the fenced state: exactly what the
    // steps change (the backup reads on the run's own sessions, which the fence allows).
    let destroying: Vec<&'static Store> = open
        .iter()
        .zip(&report.stores)
        .filter(|(_, r)| {
            r.steps
                .iter()
                .any(|s| matches!(s.class, Class::DestroysData { .. }))
        })
        .map(|(o, _)| o.store)
        .collect();
    if !destroying.is_empty() {
        let base = args
            .backup_dir
            .clone()
            .unwrap_or_else(|| ctx.settings.backup_dir.clone());
        report.backup = Some(crate::backup::write_set(ctx, &destroying, &base)?);
    }

    // Every store changed and proven, all at once, before any commits.
    let applied =
        crate::context::in_parallel(open.iter_mut().zip(report.stores.iter_mut()), |(o, r)| {
            ctx.step(r.store, format!("applying {} step(s)…", r.steps.len()));
            let started = std::time::Instant::now();
            let applied = apply_and_prove(ctx, o, r);
            tracing::info!(
                store = r.store,
                millis = started.elapsed().as_millis() as u64,
                "repair applied and proven"
            );
            applied
        });
    // The first store's error is the run's; every other one is logged, not lost.
    let mut first = None;
    for result in applied {
        if let Err(e) = result.unwrap_or_else(|| Err(worker_panicked())) {
            match first {
                None => first = Some(e),
                Some(_) => tracing::error!(error = %e, "another store failed too"),
            }
        }
    }
    if let Some(e) = first {
        return Err(e);
    }
    commit_all(ctx, open, report.backup.as_deref())?;
    super::repair_output::print(ctx, &report);
    Ok(())
}

/// A store part way through its history cannot be held to the whole of it: `migrate`
/// first. Returns whether the store has no history at all (it is adopted once repaired).
fn require_history_complete(ctx: &Context, store: &'static Store) -> CliResult<bool> {
    let mut session = ctx.session(store)?;
    let state = migrations::state(&mut session, store)
        .map_err(|e| ctx.query_error(store, "reading migrations", e))?;
    if state.records_nothing() {
        return Ok(true);
    }
    if !state.pending.is_empty() || !state.unknown.is_empty() {
        return Err(CliError::new(
            Exit::CheckFailed,
            anyhow::anyhow!(
                "{} has {} pending and {} unknown migration(s): repair holds a store to its whole history; run `orchestrator migrate` first (see `orchestrator status`); nothing was changed",
                store.name,
                state.pending.len(),
                state.unknown.len()
            ),
        ));
    }
    Ok(false)
}

/// The store's steps, classed, in its fenced transaction; a table of another store is
/// classed by whether its rows are all in that store.
fn plan_store(
    ctx: &Context,
    store: &'static Store,
    conn: &mut Conn,
    expected: &SchemaModel,
    defs: &repair::Definitions,
    force: bool,
) -> CliResult<Vec<Step>> {
    let live =
        schema::introspect(conn).map_err(|e| ctx.query_error(store, "reading the schema", e))?;
    let backend = conn.backend();
    let mut steps = repair::plan(backend, expected, defs, &live)
        .map_err(|e| ctx.query_error(store, "planning the repair", e))?;
    repair::classify(conn, &live, &mut steps)
        .map_err(|e| ctx.query_error(store, "measuring the rows", e))?;
    for step in steps
        .iter_mut()
        .filter(|s| s.kind == DifferenceKind::UnexpectedTable)
    {
        let Some(owner) = ctx
            .stores()
            .into_iter()
            .find(|o| o.name != store.name && o.tables.contains(&step.table.as_str()))
        else {
            continue;
        };
        let key = live
            .tables
            .get(&step.table)
            .map(|t| t.primary_key.clone())
            .unwrap_or_default();
        // What depends on the copy blocks dropping it, whatever its rows.
        if matches!(step.class, Class::BlockedByDependents { .. }) {
            continue;
        }
        step.class = crate::cross_store::class_of_copy(ctx, conn, owner, &step.table, &key, force)
            .map_err(|e| ctx.query_error(store, "comparing with the owning store", e))?;
    }
    Ok(steps)
}

/// `store.table (kind object): why` for each step whose class `why` describes.
fn blocked_steps(report: &Report, why: impl Fn(&Class) -> Option<String>) -> Vec<String> {
    report
        .stores
        .iter()
        .flat_map(|r| {
            r.steps.iter().filter_map(|s| {
                why(&s.class)
                    .map(|why| format!("{}.{} ({} {}): {why}", r.store, s.table, s.kind, s.object))
            })
        })
        .collect()
}

/// The guard: blocked steps refuse the run whatever the flags; steps that destroy data
/// need --force; protected stores that change need --confirm.
fn judge(ctx: &Context, report: &Report, args: &RepairArgs) -> CliResult {
    let rows = blocked_steps(report, |class| match class {
        Class::BlockedByData { rows, sample, why } => Some(format!(
            "{rows} {why}{}",
            if sample.is_empty() {
                String::new()
            } else {
                format!(" [{}]", sample.join(", "))
            }
        )),
        _ => None,
    });
    let depended_on = blocked_steps(report, |class| match class {
        Class::BlockedByDependents { objects } => Some(objects.join(", ")),
        _ => None,
    });
    if !rows.is_empty() || !depended_on.is_empty() {
        let mut why = Vec::new();
        if !rows.is_empty() {
            why.push(format!(
                "rows stand in the way of {} step(s): {}",
                rows.len(),
                rows.join("; ")
            ));
        }
        if !depended_on.is_empty() {
            why.push(format!(
                "objects outside the repair depend on what {} step(s) change or drop: {}",
                depended_on.len(),
                depended_on.join("; ")
            ));
        }
        let fix = match (rows.is_empty(), depended_on.is_empty()) {
            (false, true) => "Fix those rows",
            (true, false) => "Drop or change those objects (and put them back afterwards)",
            _ => "Fix those rows, drop or change those objects (and put them back afterwards)",
        };
        return Err(CliError::new(
            Exit::Refused,
            anyhow::anyhow!(
                "refusing to repair: {}; nothing was changed. {fix}, then repair again",
                why.join("; and ")
            ),
        ));
    }
    let destroys: Vec<String> = report
        .stores
        .iter()
        .flat_map(|r| {
            r.steps.iter().filter_map(move |s| match s.class {
                Class::DestroysData { rows } => Some(format!(
                    "{}.{} {} ({rows} row(s) hold values)",
                    r.store, s.table, s.object
                )),
                _ => None,
            })
        })
        .collect();
    if !destroys.is_empty() && !args.guard.force {
        return Err(CliError::new(
            Exit::Refused,
            anyhow::anyhow!(
                "refusing to repair: {} step(s) destroy data: {}; nothing was changed. Add --force to back them up and drop them",
                destroys.len(),
                destroys.join("; ")
            ),
        ));
    }
    let targets: Vec<(&str, String, bool)> = report
        .stores
        .iter()
        .filter(|r| !r.steps.is_empty())
        .filter_map(|r| {
            let store = ctx.store(r.store)?;
            let url = ctx.url(store).ok()?;
            Some((
                r.store,
                url.database_name(),
                crate::guard::is_protected(ctx, store),
            ))
        })
        .collect();
    crate::guard::check_protected(
        targets.iter().map(|(s, d, p)| (*s, d.as_str(), *p)),
        &args.guard.confirm,
        "repair protected store(s)",
        "changed",
    )
}

/// Runs the store's steps in its transaction, adopts it if it had no history, and proves
/// the result: the comparison with the migrations finds nothing (and, on SQLite, no
/// foreign key is broken).
fn apply_and_prove(ctx: &Context, open: &mut Open, report: &mut StoreRepair) -> CliResult {
    let store = open.store;
    // Views the application already cannot read are not the repair's doing.
    let broken_before = shared::admin::broken_views(&mut open.conn)
        .map_err(|e| ctx.query_error(store, "checking views", e))?;
    repair::apply(&mut open.conn, &report.steps)
        .map_err(|e| refused_change(store, "applying the repair", e))?;
    if crate::fault::armed("fail-repair", store.name) {
        return Err(refused_change(
            store,
            "applying the repair",
            "injected fault (ORCH_FAULT)",
        ));
    }
    if open.conn.backend() == Backend::Sqlite {
        let broken = shared::admin::foreign_key_violations(&mut open.conn)
            .map_err(|e| ctx.query_error(store, "checking foreign keys", e))?;
        if !broken.is_empty() {
            return Err(refused_change(
                store,
                "checking foreign keys",
                format!("rows would break foreign keys: {}", broken.join("; ")),
            ));
        }
        // SQLite checks no view when a table is rebuilt or dropped: one that no longer
        // reads stops the repair, as PostgreSQL's own check does there.
        let mut views = shared::admin::broken_views(&mut open.conn)
            .map_err(|e| ctx.query_error(store, "checking views", e))?;
        views.retain(|v| !broken_before.contains(v));
        if !views.is_empty() {
            return Err(refused_change(
                store,
                "checking views",
                format!(
                    "the repair would break what depends on it: {}; drop or change those views, then repair again",
                    views.join("; ")
                ),
            ));
        }
    }
    let after = schema::introspect(&mut open.conn)
        .map_err(|e| ctx.query_error(store, "reading the repaired schema", e))?;
    let left = schema::compare(&open.expected, &after);
    if !left.is_empty() {
        let list: Vec<String> = left.iter().map(|d| d.describe(store.name)).collect();
        return Err(refused_change(
            store,
            "proving the repair",
            format!("differences remain: {}", list.join("; ")),
        ));
    }
    if report.unrecorded {
        let (sql, names) = migrations::adopt_sql(store, open.conn.backend())
            .map_err(|e| ctx.query_error(store, "recording the migrations", e))?;
        open.conn
            .batch_execute(&sql)
            .map_err(|e| ctx.query_error(store, "recording the migrations", e))?;
        report.adopted = names;
    }
    Ok(())
}

fn worker_panicked() -> CliError {
    CliError::new(
        Exit::Database,
        anyhow::anyhow!(
            "a repair worker panicked; every store was rolled back, nothing was changed"
        ),
    )
}

fn refused_change(store: &Store, step: &str, e: impl std::fmt::Display) -> CliError {
    CliError::new(
        Exit::Database,
        anyhow::anyhow!(
            "{}: {step} failed: {e}; every store was rolled back, nothing was changed",
            store.name
        ),
    )
}

/// Commits the stores in dependency order. Should a later commit fail, the stores that
/// committed stay repaired (each is consistent on its own) and the error says which.
fn commit_all(ctx: &Context, open: Vec<Open>, backup: Option<&std::path::Path>) -> CliResult {
    let mut committed: Vec<&str> = Vec::new();
    // The stores not yet committed when one fails are rolled back as they are dropped.
    for mut o in open {
        ctx.step(o.store.name, "committing…");
        if let Err(e) = o.conn.batch_execute("COMMIT") {
            return Err(CliError::new(
                Exit::Database,
                anyhow::anyhow!(
                    "{}: COMMIT failed: {}; {} rolled back{}{}",
                    o.store.name,
                    shared::db::one_line(&e.to_string()),
                    o.store.name,
                    if committed.is_empty() {
                        String::new()
                    } else {
                        format!("; already repaired and committed: {}", committed.join(", "))
                    },
                    backup
                        .map(|d| format!("; the backup is {}", d.display()))
                        .unwrap_or_default()
                ),
            ));
        }
        o.committed = true;
        committed.push(o.store.name);
    }
    Ok(())
}

/// A connection of its own in a transaction that only measures (and is rolled back).
fn open_for_plan(ctx: &Context, store: &'static Store) -> Result<Conn, String> {
    let mut conn = ctx.connect(store).map_err(|e| e.to_string())?;
    conn.batch_execute("BEGIN").map_err(|e| e.to_string())?;
    Ok(conn)
}
