//! The engine under the orchestrator: configuration, catalog introspection and comparison,
//! history, server administration (locks, two-phase commit), scratch databases and
//! references. It builds on `store-core` (URLs, connections, the `Store` description,
//! errors), whose modules it re-exports so that the engine speaks of one `shared::url`,
//! `shared::db`, `shared::store`.

pub mod admin;
pub mod catalog;
pub mod code_schema;
pub mod config;
pub mod contract;
pub mod expected;
pub mod history;
pub mod inventory;
pub mod lint;
pub mod migrations;
pub mod other_tools;
pub mod pg_access;
pub mod pg_host;
pub mod pg_identity;
pub mod pg_server;
pub mod process;
pub mod references;
pub mod repair;
pub mod revert;
mod revert_postgres;
pub mod schema;
pub mod scratch;
#[cfg(test)]
mod test_pg;

pub use store_core::{db, directory, error, pg_session, pool, session, store, url};
pub use store_core::{store_migrations, with_conn, with_write_txn};

pub use config::{Overrides, Settings};
pub use db::Conn;
pub use error::{ConfigError, DbError};
pub use store::{CrossReference, ForeignKey, Migrations, OnDelete, Store};
pub use url::{Backend, DatabaseUrl};
