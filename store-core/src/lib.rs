//! The layer every store crate builds on, and all it compiles: the backend chosen from a
//! URL (with redaction), connections and their session setup, a pool for services, the
//! `Store` description and the error types. The engine (introspection, comparison,
//! history, locks, configuration) lives in `shared`, the test kit in `test-kit`; neither
//! is compiled into a store crate.

pub mod db;
pub mod directory;
pub mod error;
pub mod pg_session;
pub mod pool;
pub mod session;
pub mod store;
pub mod url;

pub use db::Conn;
pub use error::{ConfigError, DbError};
pub use store::{CrossReference, ForeignKey, Migrations, OnDelete, Store};
pub use url::{Backend, DatabaseUrl};
