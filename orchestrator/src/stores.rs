//! The registry: every store this orchestrator works on, one line per store crate.
//!
//! Everything else derives from this list: `--store`'s values, `--url STORE=URL` and
//! `--STORE-url`, the profile keys `<store>_url` and `<store>_schema`, the environment
//! variable `<STORE>_DATABASE_URL`, the default `sqlite://.data/<store>.sqlite3`, the
//! dependency order (each store's `depends_on`), the locks, recovery and reports. Adding a
//! store is its crate, its two `Cargo.toml` lines and one line here (README: "Adding a
//! store").

use shared::store::Store;

pub static STORES: &[&Store] = &[&auth_db::STORE, &app_db::STORE];
