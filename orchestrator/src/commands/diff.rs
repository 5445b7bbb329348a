//! `orchestrator diff`: the live schema against what the store's migrations produce:
//! recorded with this build (PostgreSQL, when the record may stand for the history on
//! this server), or built in a scratch database that is always dropped afterwards.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use shared::history;
use shared::schema::{self, Difference};
use shared::{DatabaseUrl, DbError};

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::output;

/// Compare each database's schema with what its migrations produce.
///
/// Tables, columns (type, nullability, default), primary keys, unique constraints,
/// indexes, check constraints and foreign keys with their ON DELETE actions. Exit 1 when
/// anything differs.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator diff\n  orchestrator diff --store app --format json\n  orchestrator diff --shadow-url postgres://postgres@127.0.0.1/postgres"
)]
pub struct DiffArgs {
    #[command(flatten)]
    pub store: crate::commands::args::StoreArg,

    /// PostgreSQL server to build the scratch database on, when one is needed, given as a
    /// URL of any database there (default: the store's own server). The scratch database
    /// is always dropped.
    #[arg(long, value_name = "URL")]
    pub shadow_url: Option<String>,

    /// Replay the migrations in a scratch database even where the model recorded with
    /// this build could be used (PostgreSQL uses the record when it was made from this
    /// very history on a server of the same major version)
    #[arg(long)]
    pub replay: bool,

    /// Read the history from DIR/<backend>/ instead of the store's embedded migrations
    /// (needs --store; for fixtures and squash checks)
    #[arg(long, value_name = "DIR", hide = true, requires = "store")]
    pub migrations_dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct DiffReport {
    ok: bool,
    stores: Vec<StoreDiff>,
    /// What interrupted runs left: diff reports it and changes nothing.
    interrupted: Vec<String>,
}

#[derive(Debug, Serialize)]
struct StoreDiff {
    store: &'static str,
    url: String,
    differences: Vec<Difference>,
}

pub fn run(ctx: &Context, args: &DiffArgs) -> CliResult {
    let shadow = args
        .shadow_url
        .as_deref()
        .map(DatabaseUrl::parse)
        .transpose()?;
    let runs = crate::recovery::for_readers(ctx)?;
    let held = runs.held.clone();
    let mut report = DiffReport {
        ok: !runs.needs_settling(),
        stores: Vec::new(),
        interrupted: runs.interrupted.clone(),
    };
    if let Some(dir) = &args.migrations_dir {
        crate::squash_journal::settle_locked(dir).map_err(CliError::usage)?;
    }
    for store in ctx.selected(args.store.store.as_deref())? {
        if held.contains(&store.name) {
            // A prepared rebuild holds its old tables: reading them would only wait. The
            // interrupted run is reported instead.
            continue;
        }
        let url = ctx.url(store)?;
        let backend = url.backend();
        let dir = args
            .migrations_dir
            .as_deref()
            .map(|d| history::backend_dir(d, backend));
        if let Some(dir) = &dir {
            history::check_dir(dir).map_err(CliError::usage)?;
        }
        // The model recorded with this build when it may stand for the embedded history
        // on this server; else the migrations replayed in a scratch database.
        let recorded = match (&dir, args.replay) {
            (None, false) => crate::shadow::recorded(ctx, store)?.map(|(model, _)| model),
            _ => None,
        };
        let expected = match recorded {
            Some(model) => model,
            None => {
                ctx.progress(format!(
                    "{}: building what the migrations produce…",
                    store.name
                ));
                let history = crate::shadow::history_for(store, backend, dir.as_deref());
                let server = shadow.as_ref().unwrap_or(url);
                crate::shadow::expected_model(store, backend, Some(server), history, None)?
            }
        };
        let mut conn = ctx.connect(store)?;
        let found = schema::introspect(&mut conn).map_err(|e| DbError::Query {
            store: store.name.to_string(),
            url: url.redacted().to_string(),
            action: "reading the schema".into(),
            reason: e.to_string(),
        })?;
        let differences = schema::compare(&expected, &found);
        report.ok &= differences.is_empty();
        report.stores.push(StoreDiff {
            store: store.name,
            url: url.redacted().to_string(),
            differences,
        });
    }
    if ctx.json() {
        output::print_json(&report).map_err(|e| CliError::new(Exit::Usage, e))?;
    } else {
        for line in &report.interrupted {
            crate::say!(
                "{}: {line}",
                output::paint("interrupted", output::Tone::Bad)
            );
        }
        for s in &report.stores {
            if s.differences.is_empty() {
                crate::say!("{}: No difference detected ({})", s.store, s.url);
            } else {
                crate::say!(
                    "{}: {} difference(s) from the migrations ({})",
                    s.store,
                    s.differences.len(),
                    s.url
                );
                output::say_differences(s.store, &s.differences);
            }
        }
    }
    if let Some(line) = runs.summary() {
        return Err(CliError::new(Exit::CheckFailed, anyhow::anyhow!("{line}")));
    }
    if report.ok {
        Ok(())
    } else {
        let stores: Vec<&str> = report
            .stores
            .iter()
            .filter(|s| !s.differences.is_empty())
            .map(|s| s.store)
            .collect();
        let count: usize = report.stores.iter().map(|s| s.differences.len()).sum();
        // Where the differences are: the list above, or the JSON document's.
        let see = if ctx.json() {
            "each store's `differences` in the report"
        } else {
            "the list above"
        };
        Err(CliError::new(
            Exit::CheckFailed,
            anyhow::anyhow!(
                "{} differ from the migrations in {count} way(s); see {see}",
                stores.join(" and ")
            ),
        ))
    }
}
