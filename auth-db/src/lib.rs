//! The auth database: users, sessions, accounts, verifications, subscriptions, teams and
//! the credit ledger. It owns its migrations (one history per backend) and describes
//! itself as a [`Store`] so the orchestrator can migrate and check it without naming its
//! tables.

pub mod credits;
pub mod directory;
pub mod error;
pub mod models;
/// The tables as diesel sees them, written by `diesel print-schema` from the PostgreSQL
/// history (see diesel.toml). One description serves both backends (`Timestamp` is
/// `TIMESTAMP` in both, holding UTC); tests/schema_rs.rs proves that both histories produce
/// what it says.
// diesel writes the file as it is: reformatting it would make `--locked-schema` fail.
#[rustfmt::skip]
pub mod schema;
pub mod teams;
pub mod users;

pub use directory::AuthDirectory;
pub use error::AuthError;

use store_core::store::{ForeignKey, OnDelete, Store};

const fn fk(
    table: &'static str,
    column: &'static str,
    ref_table: &'static str,
    on_delete: OnDelete,
) -> ForeignKey {
    ForeignKey {
        table,
        column,
        ref_table,
        ref_column: "id",
        on_delete,
    }
}

/// The auth store as the contract describes it.
pub static STORE: Store = Store {
    name: "auth",
    depends_on: &[],
    migrations: store_core::store_migrations!(),
    migrations_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"),
    tables: &[
        "users",
        "sessions",
        "accounts",
        "verifications",
        "subscriptions",
        "teams",
        "user_credits",
        "credit_transactions",
        "api_key_credits",
    ],
    foreign_keys: &[
        fk("user_credits", "user_id", "users", OnDelete::Cascade),
        fk("user_credits", "team_id", "teams", OnDelete::NoAction),
        fk("credit_transactions", "user_id", "users", OnDelete::Cascade),
        fk("credit_transactions", "team_id", "teams", OnDelete::SetNull),
        fk("api_key_credits", "user_id", "users", OnDelete::Cascade),
        fk("api_key_credits", "team_id", "teams", OnDelete::Cascade),
        fk("teams", "owner_id", "users", OnDelete::Cascade),
        fk("sessions", "user_id", "users", OnDelete::Cascade),
        fk("accounts", "user_id", "users", OnDelete::Cascade),
    ],
    references: &[],
    code_schema: include_str!("schema.rs"),
};

/// A pool of at most `size` connections to the auth database at `url`, for services
/// that use this crate: each connection is set up as the orchestrator's own (lock bound,
/// schema, SQLite's busy timeout and foreign keys), opened when first needed. See
/// `store_core::pool`.
pub fn pool(url: &store_core::DatabaseUrl, size: u32) -> store_core::pool::StorePool {
    store_core::pool::pool(STORE.name, url, size)
}
