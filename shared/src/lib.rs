//! What both stores and the orchestrator need: the backend chosen from a URL, the `Store`
//! description, configuration, connections, catalog introspection and redaction.

pub mod admin;
pub mod catalog;
pub mod code_schema;
pub mod config;
pub mod contract;
pub mod db;
pub mod directory;
pub mod error;
pub mod expected;
pub mod history;
pub mod inventory;
pub mod lint;
pub mod migrations;
pub mod pg_access;
pub mod pg_host;
pub mod pg_identity;
pub mod pg_server;
pub mod pool;
pub mod process;
pub mod references;
pub mod revert;
mod revert_postgres;
pub mod schema;
pub mod scratch;
pub mod session;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod url;

pub use config::{Overrides, Settings};
pub use db::Conn;
pub use error::{ConfigError, DbError};
pub use store::{CrossReference, ForeignKey, Migrations, OnDelete, Store};
pub use url::{Backend, DatabaseUrl};
