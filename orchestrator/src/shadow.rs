//! What a history produces, built in a scratch database (see `shared::scratch`) and read
//! back as a `SchemaModel`. `diff`, `squash` and `migrate` (recognising a squashed history)
//! all compare against it.

use std::path::Path;

use shared::history::{self, History};
use shared::schema::{self, SchemaModel};
use shared::scratch::Scratch;
use shared::{Backend, DatabaseUrl, DbError, Store};

/// A scratch database of `backend` (PostgreSQL: on `server`) with `history` run in it, up
/// to `up_to`; and how errors name it.
fn built(
    store: &Store,
    backend: Backend,
    server: Option<&DatabaseUrl>,
    history: History<'_>,
    up_to: Option<&str>,
) -> Result<(Scratch, String), DbError> {
    // Ctrl-C drops the scratch database (see `interrupt`).
    crate::interrupt::install();
    let mut scratch = Scratch::create(store.name, backend, server)?;
    let where_ = format!("scratch database {}", scratch.name());
    history::run(scratch.conn(), history, up_to, |_| {}).map_err(|f| DbError::Migration {
        store: store.name.to_string(),
        url: where_.clone(),
        migration: f.migration,
        reason: f.reason,
    })?;
    Ok((scratch, where_))
}

fn read_error(store: &Store, where_: &str, action: &str, e: diesel::result::Error) -> DbError {
    DbError::Query {
        store: store.name.to_string(),
        url: where_.to_string(),
        action: action.into(),
        reason: e.to_string(),
    }
}

/// Builds `history` (up to `up_to`) in a scratch database of `backend` and returns its
/// model. PostgreSQL scratch databases are created on `server`.
pub fn expected_model(
    store: &Store,
    backend: Backend,
    server: Option<&DatabaseUrl>,
    history: History<'_>,
    up_to: Option<&str>,
) -> Result<SchemaModel, DbError> {
    let (mut scratch, where_) = built(store, backend, server, history, up_to)?;
    schema::introspect(scratch.conn())
        .map_err(|e| read_error(store, &where_, "reading the schema", e))
}

/// The history a command works on: the store's embedded one, or a folder's.
pub fn history_for<'a>(store: &'a Store, backend: Backend, dir: Option<&'a Path>) -> History<'a> {
    History::of(store, backend, dir)
}

/// A scratch database being dropped on a thread of its own (dropping a database waits for
/// the server's checkpoint): the command goes on meanwhile and waits for it when this is
/// dropped, so no scratch database outlives the run.
pub struct Dropping(Option<std::thread::JoinHandle<()>>);

impl Drop for Dropping {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            let _ = handle.join();
        }
    }
}

/// [`expected_model`] of the store's whole embedded history, with the exact SQL of every
/// object it makes (what a repair writes), read from the same scratch database, which is
/// then dropped while the caller goes on.
pub fn expected_with_definitions(
    store: &Store,
    backend: Backend,
    server: Option<&DatabaseUrl>,
) -> Result<(SchemaModel, shared::repair::Definitions, Dropping), DbError> {
    let history = history_for(store, backend, None);
    let (mut scratch, where_) = built(store, backend, server, history, None)?;
    let model = schema::introspect(scratch.conn())
        .map_err(|e| read_error(store, &where_, "reading the schema", e))?;
    let defs = shared::repair::definitions::read(scratch.conn())
        .map_err(|e| read_error(store, &where_, "reading the definitions", e))?;
    let dropping = Dropping(Some(std::thread::spawn(move || drop(scratch))));
    Ok((model, defs, dropping))
}

/// Where a repair's model and SQL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DefinitionsFrom {
    /// Recorded with this build (`migrations/postgres.definitions.json` and the model).
    Recorded,
    /// The migrations, replayed in a scratch database.
    Replayed,
}

/// The model and definitions recorded with this build for `store`'s PostgreSQL history,
/// when they may stand for it on the store's server: made from this very history on a
/// server of the same major version (see `shared::repair::recorded`). `None` for a SQLite
/// store, or (logged) when the record cannot be used; then the migrations are replayed in
/// a scratch database, which costs the server a `CREATE DATABASE` and a `DROP DATABASE`
/// and needs a role allowed to create databases.
pub fn recorded(
    ctx: &crate::context::Context,
    store: &'static Store,
) -> crate::exit::CliResult<Option<(SchemaModel, shared::repair::Definitions)>> {
    if ctx.url(store)?.backend() != Backend::Postgres {
        return Ok(None);
    }
    let mut session = ctx.session(store)?;
    let major = shared::admin::server_major(&mut session)
        .map_err(|e| ctx.query_error(store, "reading the server's version", e))?;
    let migrations = &store.migrations;
    match shared::repair::recorded::usable(
        migrations.postgres_definitions,
        migrations.postgres_sql,
        major,
    ) {
        Ok(defs) => {
            let model = shared::expected::recorded_postgres(store).map_err(|e| {
                crate::exit::CliError::new(crate::exit::Exit::Usage, anyhow::anyhow!(e))
            })?;
            Ok(Some((model, defs)))
        }
        Err(why) => {
            tracing::info!(
                store = store.name,
                why = %why,
                "replaying the migrations in a scratch database"
            );
            Ok(None)
        }
    }
}

/// What a repair of `store` writes and proves against: what was [`recorded`] with this
/// build when it may be used (and `replay` is not asked); otherwise the migrations
/// replayed in a scratch database (on `server` when given), dropped while the repair goes
/// on.
pub fn repair_expectation(
    ctx: &crate::context::Context,
    store: &'static Store,
    server: Option<&DatabaseUrl>,
    replay: bool,
) -> crate::exit::CliResult<(
    SchemaModel,
    shared::repair::Definitions,
    Option<Dropping>,
    DefinitionsFrom,
)> {
    if !replay {
        if let Some((model, defs)) = recorded(ctx, store)? {
            return Ok((model, defs, None, DefinitionsFrom::Recorded));
        }
    }
    let url = ctx.url(store)?;
    ctx.step(store.name, "building what the migrations make…");
    let (model, defs, dropping) =
        expected_with_definitions(store, url.backend(), Some(server.unwrap_or(url)))?;
    Ok((model, defs, Some(dropping), DefinitionsFrom::Replayed))
}
