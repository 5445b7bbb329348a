//! What a store's migrations make, known without any server but the store's own: the
//! SQLite history replayed in an in-memory database (at any version), and the model of
//! the PostgreSQL history recorded beside it (`migrations/postgres.schema.json`, embedded;
//! `orchestrator lint` proves it is what that history makes on a real server, and that
//! both histories make the same logical schema at every version).

use std::path::{Path, PathBuf};

use crate::db::Conn;
use crate::history::{self, History};
use crate::schema::{self, SchemaModel};
use crate::store::Store;
use crate::url::{Backend, DatabaseUrl};

/// The recorded model's file, in a store's `migrations/` folder.
pub const RECORDED_POSTGRES: &str = "postgres.schema.json";

pub fn recorded_path(migrations_dir: &Path) -> PathBuf {
    migrations_dir.join(RECORDED_POSTGRES)
}

/// An in-memory SQLite database that a history is replayed into, version by version.
pub struct Replay {
    conn: Conn,
}

impl Replay {
    /// An empty database, named `store` in errors.
    pub fn new(store: &str) -> Result<Replay, String> {
        let url = DatabaseUrl::sqlite_in_memory();
        let conn = Conn::establish(store, &url).map_err(|e| e.to_string())?;
        Ok(Replay { conn })
    }

    /// Runs `history` up to `version` (all of it when `None`) and reads the model.
    pub fn to(
        &mut self,
        history: History<'_>,
        version: Option<&str>,
    ) -> Result<SchemaModel, String> {
        history::run(&mut self.conn, history, version, |_| {})
            .map_err(|f| format!("migration {}: {}", f.migration, f.reason))?;
        schema::introspect(&mut self.conn).map_err(|e| format!("reading the schema: {e}"))
    }
}

/// The schema the store's SQLite history makes, up to `version` when given.
pub fn sqlite_replay(store: &Store, version: Option<&str>) -> Result<SchemaModel, String> {
    let history = History::of(store, Backend::Sqlite, None);
    Replay::new(store.name)?.to(history, version)
}

/// The recorded model of the store's PostgreSQL history.
pub fn recorded_postgres(store: &Store) -> Result<SchemaModel, String> {
    SchemaModel::from_json(store.migrations.postgres_model).map_err(|e| {
        format!(
            "the recorded model of {}'s PostgreSQL history ({RECORDED_POSTGRES}) cannot be read: {e}; \
             `orchestrator lint --write` records it again",
            store.name
        )
    })
}

/// What the store's whole history makes on `backend`.
pub fn full(store: &Store, backend: Backend) -> Result<SchemaModel, String> {
    match backend {
        Backend::Postgres => recorded_postgres(store),
        Backend::Sqlite => sqlite_replay(store, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_stops_at_the_version_it_is_given() {
        let dir = tempfile::tempdir().expect("dir");
        for (version, sql) in [
            (
                "2020-01-01-000001_a",
                "CREATE TABLE a(id TEXT PRIMARY KEY NOT NULL);",
            ),
            ("2020-01-01-000002_b", "ALTER TABLE a ADD COLUMN b TEXT;"),
        ] {
            let m = dir.path().join(version);
            std::fs::create_dir_all(&m).expect("mkdir");
            std::fs::write(m.join("up.sql"), sql).expect("up");
            std::fs::write(m.join("down.sql"), "").expect("down");
        }
        let mut replay = Replay::new("test").expect("replay");
        let first = replay
            .to(History::Dir(dir.path()), Some("20200101000001"))
            .expect("first");
        assert_eq!(first.tables["a"].columns.len(), 1);
        let both = replay.to(History::Dir(dir.path()), None).expect("both");
        assert_eq!(both.tables["a"].columns.len(), 2);
    }
}
