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
