//! What a history produces, built in a scratch database (see `shared::scratch`) and read
//! back as a `SchemaModel`. `diff`, `squash` and `migrate` (recognising a squashed history)
//! all compare against it.

use std::path::Path;

use shared::history::{self, History};
use shared::schema::{self, SchemaModel};
use shared::scratch::Scratch;
use shared::{Backend, DatabaseUrl, DbError, Store};

/// Builds `history` (up to `up_to`) in a scratch database of `backend` and returns its
/// model. PostgreSQL scratch databases are created on `server`.
pub fn expected_model(
    store: &Store,
    backend: Backend,
    server: Option<&DatabaseUrl>,
    history: History<'_>,
    up_to: Option<&str>,
) -> Result<SchemaModel, DbError> {
    // Ctrl-C drops the scratch database (see `interrupt`).
    crate::interrupt::install();
    let mut scratch = Scratch::create(store.name, backend, server)?;
    let where_ = scratch.name().to_string();
    history::run(scratch.conn(), history, up_to, |_| {}).map_err(|f| DbError::Migration {
        store: store.name.to_string(),
        url: format!("scratch database {where_}"),
        migration: f.migration,
        reason: f.reason,
    })?;
    schema::introspect(scratch.conn()).map_err(|e| DbError::Query {
        store: store.name.to_string(),
        url: format!("scratch database {where_}"),
        action: "reading the schema".into(),
        reason: e.to_string(),
    })
}

/// The history a command works on: the store's embedded one, or a folder's.
pub fn history_for<'a>(store: &'a Store, backend: Backend, dir: Option<&'a Path>) -> History<'a> {
    History::of(store, backend, dir)
}

/// [`expected_model`] of the store's whole embedded history, with the exact SQL of every
/// object it makes (what a repair writes), read from the same scratch database.
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

pub fn expected_with_definitions(
    store: &Store,
    backend: Backend,
    server: Option<&DatabaseUrl>,
) -> Result<(SchemaModel, shared::repair::Definitions, Dropping), DbError> {
    crate::interrupt::install();
    let mut scratch = Scratch::create(store.name, backend, server)?;
    let where_ = scratch.name().to_string();
    let history = history_for(store, backend, None);
    history::run(scratch.conn(), history, None, |_| {}).map_err(|f| DbError::Migration {
        store: store.name.to_string(),
        url: format!("scratch database {where_}"),
        migration: f.migration,
        reason: f.reason,
    })?;
    let read = |action: &str, e: diesel::result::Error| DbError::Query {
        store: store.name.to_string(),
        url: format!("scratch database {where_}"),
        action: action.into(),
        reason: e.to_string(),
    };
    let model = schema::introspect(scratch.conn()).map_err(|e| read("reading the schema", e))?;
    let defs = shared::repair::definitions::read(scratch.conn())
        .map_err(|e| read("reading the definitions", e))?;
    let dropping = Dropping(Some(std::thread::spawn(move || drop(scratch))));
    Ok((model, defs, dropping))
}
