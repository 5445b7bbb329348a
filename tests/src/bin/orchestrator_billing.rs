//! The orchestrator on three stores: the product's two and the tests' billing store, in a
//! registry of three lines, exactly as `orchestrator/src/stores.rs` lists two. Nothing
//! else of the engine knows there is a third.

use shared::store::Store;

static STORES: &[&Store] = &[&auth_db::STORE, &app_db::STORE, &billing_db::STORE];

fn main() {
    std::process::exit(orchestrator::main_with(STORES, std::env::args_os()));
}
