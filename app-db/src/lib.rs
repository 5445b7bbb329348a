//! The app database: datasets, documents and processing jobs. Its owners live in the auth
//! database, so the references into auth are declared here for the orchestrator to check.

pub mod datasets;
pub mod error;
pub mod jobs;
pub mod models;
/// The tables as diesel sees them, written by `diesel print-schema` from the PostgreSQL
/// history (see diesel.toml). One description serves both backends (`Timestamp` is
/// `TIMESTAMP` in both, holding UTC); tests/schema_rs.rs proves that both histories produce
/// what it says. There is no `users` table here: owners live in the auth database.
// diesel writes the file as it is: reformatting it would make `--locked-schema` fail.
#[rustfmt::skip]
pub mod schema;

pub use error::AppError;

use store_core::store::{CrossReference, ForeignKey, OnDelete, Store};

/// The app store as the contract describes it.
pub static STORE: Store = Store {
    name: "app",
    depends_on: &["auth"],
    migrations: store_core::store_migrations!(),
    migrations_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"),
    tables: &["datasets", "documents", "processing_jobs"],
    foreign_keys: &[
        ForeignKey {
            table: "documents",
            column: "dataset_id",
            ref_table: "datasets",
            ref_column: "id",
            on_delete: OnDelete::Cascade,
        },
        ForeignKey {
            table: "processing_jobs",
            column: "document_id",
            ref_table: "documents",
            ref_column: "id",
            on_delete: OnDelete::Cascade,
        },
    ],
    references: &[
        CrossReference {
            table: "datasets",
            column: "owner_id",
            target_store: "auth",
            target_table: "users",
            target_column: "id",
            nullable: false,
        },
        CrossReference {
            table: "datasets",
            column: "team_id",
            target_store: "auth",
            target_table: "teams",
            target_column: "id",
            nullable: true,
        },
    ],
    code_schema: include_str!("schema.rs"),
};

/// A pool of at most `size` connections to the app database at `url`, for services
/// that use this crate: each connection is set up as the orchestrator's own (lock bound,
/// schema, SQLite's busy timeout and foreign keys), opened when first needed. See
/// `store_core::pool`.
pub fn pool(url: &store_core::DatabaseUrl, size: u32) -> store_core::pool::StorePool {
    store_core::pool::pool(STORE.name, url, size)
}
