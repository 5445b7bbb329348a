//! A third store, for the tests only: invoices whose `user_id` points into the auth
//! database. It is what a `billing-db` crate of the product would be (its migrations for
//! both backends, its `schema.rs`, its [`Store`] description), so that a test can run the
//! engine on three stores (`orch-tests`' `orchestrator-billing` binary registers auth, app
//! and this one). It is in no registry of the product.

use store_core::store::{CrossReference, Store};

/// The billing store: after auth, whose users its invoices belong to.
pub static STORE: Store = Store {
    name: "billing",
    depends_on: &["auth"],
    migrations: store_core::store_migrations!(),
    migrations_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"),
    tables: &["invoices"],
    foreign_keys: &[],
    references: &[CrossReference {
        table: "invoices",
        column: "user_id",
        target_store: "auth",
        target_table: "users",
        target_column: "id",
        nullable: false,
    }],
    code_schema: include_str!("schema.rs"),
};
