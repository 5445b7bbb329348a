//! The proof that a store's two histories are one: the same versions in
//! `migrations/postgres` and `migrations/sqlite`, the same logical schema after every
//! version (see `schema::logical_view`), and a recorded PostgreSQL model that is what the
//! PostgreSQL history makes. SQLite is replayed in memory; PostgreSQL in a scratch
//! database when a server is given. Without one, the recorded model stands in for the
//! PostgreSQL history's last version.

use serde::Serialize;

use crate::history::History;
use crate::schema::{self, logical_view, Difference, SchemaModel};
use crate::scratch::Scratch;
use crate::url::{Backend, DatabaseUrl};

/// Two histories to compare, and the recorded model and definitions of the PostgreSQL
/// one.
pub struct Histories<'a> {
    pub store: &'a str,
    pub postgres: History<'a>,
    pub sqlite: History<'a>,
    pub recorded: Result<SchemaModel, String>,
    /// `postgres.definitions.json`'s text, when there is one.
    pub definitions: Option<String>,
    /// The fingerprint of the PostgreSQL history (see `repair::recorded`).
    pub fingerprint: String,
}

impl<'a> Histories<'a> {
    /// The store's histories, model and definitions as this build embeds them.
    pub fn embedded(store: &'a crate::store::Store) -> Histories<'a> {
        Histories {
            store: store.name,
            postgres: History::of(store, Backend::Postgres, None),
            sqlite: History::of(store, Backend::Sqlite, None),
            recorded: crate::expected::recorded_postgres(store),
            definitions: store.migrations.postgres_definitions.map(str::to_string),
            fingerprint: crate::repair::recorded::history_fingerprint(
                store.migrations.postgres_sql,
            ),
        }
    }
}

/// Where the two histories part.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HistoryReport {
    pub store: String,
    /// Versions one history has and the other lacks.
    pub only_postgres: Vec<String>,
    pub only_sqlite: Vec<String>,
    /// Versions after which the logical schemas differ, the first of them first.
    pub diverging: Vec<Divergence>,
    /// How the recorded PostgreSQL model differs from what the history makes (or why it
    /// could not be read).
    pub recorded: Vec<String>,
    /// Whether the PostgreSQL history was replayed on a server (every version checked);
    /// otherwise only the last version, through the recorded model.
    pub postgres_replayed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Divergence {
    pub version: String,
    /// One line per difference: what PostgreSQL has, what SQLite has.
    pub differences: Vec<String>,
}

impl HistoryReport {
    pub fn ok(&self) -> bool {
        self.only_postgres.is_empty()
            && self.only_sqlite.is_empty()
            && self.diverging.is_empty()
            && self.recorded.is_empty()
    }

    /// Lines for people, one per problem.
    pub fn problems(&self) -> Vec<String> {
        let s = &self.store;
        let mut out = Vec::new();
        for v in &self.only_postgres {
            out.push(format!("{s}: version {v} is in migrations/postgres only: write its SQLite twin (same version)"));
        }
        for v in &self.only_sqlite {
            out.push(format!("{s}: version {v} is in migrations/sqlite only: write its PostgreSQL twin (same version)"));
        }
        for d in &self.diverging {
            for line in &d.differences {
                out.push(format!("{s}: after version {}: {line}", d.version));
            }
        }
        for line in &self.recorded {
            out.push(format!("{s}: {line}"));
        }
        out
    }
}

/// How `b` differs from `a`, logically, in words that name both sides.
fn logical_lines(postgres: &SchemaModel, sqlite: &SchemaModel) -> Vec<String> {
    describe(
        &schema::compare(&logical_view(postgres), &logical_view(sqlite)),
        "PostgreSQL",
        "SQLite",
    )
}

/// Differences of `compare(a, b)` as lines saying what `a_name` and `b_name` have.
fn describe(diffs: &[Difference], a_name: &str, b_name: &str) -> Vec<String> {
    diffs
        .iter()
        .map(|d| {
            let side = |v: &Option<String>| v.clone().unwrap_or_else(|| "nothing".into());
            format!(
                "{}.{}: {a_name} has {}, {b_name} has {}",
                d.table,
                d.object,
                side(&d.expected),
                side(&d.found)
            )
        })
        .collect()
}

/// Compares the histories; `server` is where a PostgreSQL scratch database may be made.
pub fn check(h: &Histories<'_>, server: Option<&DatabaseUrl>) -> Result<HistoryReport, String> {
    let mut report = HistoryReport {
        store: h.store.to_string(),
        ..HistoryReport::default()
    };
    let read = |history: &History<'_>, backend: Backend| {
        history
            .versions(backend)
            .map(|v| {
                v.into_iter()
                    .map(|(version, _)| version)
                    .collect::<Vec<_>>()
            })
            .map_err(|e| format!("{}: reading the {backend} history: {e}", h.store))
    };
    let pg_versions = read(&h.postgres, Backend::Postgres)?;
    let lite_versions = read(&h.sqlite, Backend::Sqlite)?;
    report.only_postgres = pg_versions
        .iter()
        .filter(|v| !lite_versions.contains(v))
        .cloned()
        .collect();
    report.only_sqlite = lite_versions
        .iter()
        .filter(|v| !pg_versions.contains(v))
        .cloned()
        .collect();
    let mut all: Vec<String> = pg_versions.iter().chain(&lite_versions).cloned().collect();
    all.sort();
    all.dedup();

    let mut lite = crate::expected::Replay::new(h.store)?;
    let mut pg = match server {
        Some(server) => Some(
            Scratch::create(h.store, Backend::Postgres, Some(server)).map_err(|e| {
                format!(
                    "{}: a scratch database for the PostgreSQL history: {e}",
                    h.store
                )
            })?,
        ),
        None => None,
    };
    report.postgres_replayed = pg.is_some();
    let mut last_pg = None;
    let mut last_lite = SchemaModel::default();
    for version in &all {
        last_lite = lite.to(h.sqlite, Some(version))?;
        let Some(scratch) = pg.as_mut() else {
            continue;
        };
        crate::history::run(scratch.conn(), h.postgres, Some(version), |_| {}).map_err(|f| {
            format!(
                "{}: PostgreSQL migration {}: {}",
                h.store, f.migration, f.reason
            )
        })?;
        let model = schema::introspect(scratch.conn())
            .map_err(|e| format!("{}: reading the PostgreSQL scratch schema: {e}", h.store))?;
        let differences = logical_lines(&model, &last_lite);
        if !differences.is_empty() {
            report.diverging.push(Divergence {
                version: version.clone(),
                differences,
            });
        }
        last_pg = Some(model);
    }

    report.recorded.extend(check_definitions(h, pg.as_mut())?);
    match (&h.recorded, last_pg) {
        (Err(e), _) => report.recorded.push(e.clone()),
        (Ok(recorded), Some(made)) => {
            let lines = describe(
                &schema::compare(recorded, &made),
                "the recorded model",
                "the PostgreSQL history",
            );
            if !lines.is_empty() {
                report.recorded.push(format!(
                    "the recorded model ({}) is not what the PostgreSQL history makes; \
                     `orchestrator lint --write` records it again",
                    crate::expected::RECORDED_POSTGRES
                ));
                report.recorded.extend(lines);
            }
        }
        (Ok(recorded), None) => {
            // No server: the recorded model speaks for the PostgreSQL history's end.
            let differences = logical_lines(recorded, &last_lite);
            if !differences.is_empty() {
                report.diverging.push(Divergence {
                    version: all.last().cloned().unwrap_or_default(),
                    differences,
                });
            }
        }
    }
    Ok(report)
}

/// Whether the recorded definitions are what the PostgreSQL history makes; problem lines
/// otherwise. Without a server, only that there is one, made from this history; with one
/// (`scratch`, the history just replayed in it), that it says the SQL the history makes
/// there. A record read on another major version is not compared (each version spells
/// definitions its own way; repair does not use it there either).
fn check_definitions(
    h: &Histories<'_>,
    scratch: Option<&mut Scratch>,
) -> Result<Vec<String>, String> {
    use crate::repair::recorded::{Recorded, RECORDED_DEFINITIONS};
    let again = "`orchestrator lint --write` records them again";
    let Some(text) = &h.definitions else {
        return Ok(vec![format!(
            "no recorded definitions ({RECORDED_DEFINITIONS}): repair builds a scratch database \
             every time; `orchestrator lint --write` records them"
        )]);
    };
    let recorded = match Recorded::from_json(text) {
        Ok(r) => r,
        Err(e) => {
            return Ok(vec![format!(
                "{RECORDED_DEFINITIONS} cannot be read ({e}); {again}"
            )])
        }
    };
    if recorded.history != h.fingerprint {
        return Ok(vec![format!(
            "the recorded definitions ({RECORDED_DEFINITIONS}) were made by another PostgreSQL \
             history; {again}"
        )]);
    }
    let Some(scratch) = scratch else {
        return Ok(Vec::new());
    };
    let made = Recorded::read(scratch.conn(), h.fingerprint.clone())
        .map_err(|e| format!("{}: the scratch database: {e}", h.store))?;
    if recorded.server_major == made.server_major && recorded != made {
        return Ok(vec![format!(
            "the recorded definitions ({RECORDED_DEFINITIONS}) are not the SQL the PostgreSQL \
             history makes; {again}"
        )]);
    }
    Ok(Vec::new())
}

/// The model and the definitions the PostgreSQL history makes, replayed in a scratch
/// database on `server` (what `--write` records).
pub fn postgres_record(
    h: &Histories<'_>,
    server: &DatabaseUrl,
) -> Result<(SchemaModel, crate::repair::recorded::Recorded), String> {
    let store = h.store;
    let mut scratch = Scratch::create(store, Backend::Postgres, Some(server))
        .map_err(|e| format!("{store}: a scratch database for the PostgreSQL history: {e}"))?;
    crate::history::run(scratch.conn(), h.postgres, None, |_| {}).map_err(|f| {
        format!(
            "{store}: PostgreSQL migration {}: {}",
            f.migration, f.reason
        )
    })?;
    let model = schema::introspect(scratch.conn())
        .map_err(|e| format!("{store}: reading the scratch schema: {e}"))?;
    let record = crate::repair::recorded::Recorded::read(scratch.conn(), h.fingerprint.clone())
        .map_err(|e| format!("{store}: the scratch database: {e}"))?;
    Ok((model, record))
}
