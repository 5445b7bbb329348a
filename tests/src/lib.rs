//! Helpers for end-to-end tests: run the real `orchestrator` binary against a test's own
//! databases (see `test_kit` for how those are made and dropped).

use std::path::Path;

pub use test_kit::*;

pub mod checksums;
mod launch;
pub mod seed;
pub mod writer;

pub use launch::{
    as_user, billing_build_in, launch, on_terminal, orchestrator, orchestrator_billing,
    orchestrator_in, orchestrator_on, process, process_in, under_shell,
};

/// Runs the binary with `args` and parses its stdout as one JSON document.
pub fn json_of(mut cmd: assert_cmd::Command, args: &[&str]) -> (i32, serde_json::Value) {
    let output = cmd
        .arg("--format")
        .arg("json")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run: {e}"));
    let code = output.status.code().unwrap_or(-1);
    let value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); exit {code}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (code, value)
}

/// Copies a folder tree (a migrations fixture, say) to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if let Err(e) = std::fs::copy(entry.path(), &target) {
            panic!("copy {}: {e}", entry.path().display());
        }
    }
}

/// The configuration a test ran under, for its output: `sqlite`, or `postgres mpt=N`
/// (the server's `max_prepared_transactions`; 0, the PostgreSQL default, means no
/// two-phase commit, so the all-or-nothing protocol runs without it).
pub fn configuration(db: &TestDb) -> String {
    match db.url.backend() {
        shared::Backend::Sqlite => "sqlite".to_string(),
        shared::Backend::Postgres => format!("postgres mpt={}", max_prepared_transactions(db)),
    }
}

/// The `max_prepared_transactions` of the PostgreSQL server `db` is on.
pub fn max_prepared_transactions(db: &TestDb) -> u32 {
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let shared::Conn::Postgres(mut pg) = db.connect() else {
        panic!("max_prepared_transactions: {} is not PostgreSQL", db.url);
    };
    let setting: Setting = diesel::RunQueryDsl::get_result(
        diesel::sql_query("SELECT current_setting('max_prepared_transactions') AS v"),
        &mut pg,
    )
    .unwrap_or_else(|e| panic!("max_prepared_transactions: {e}"));
    setting
        .v
        .parse()
        .unwrap_or_else(|e| panic!("max_prepared_transactions {:?}: {e}", setting.v))
}

/// Three stores of a test's own: the pair (auth, app) and the tests' billing store
/// (`billing-db`, whose invoices reference auth's users), all on one backend.
pub struct Trio {
    pub pair: TestPair,
    pub billing: TestDb,
}

impl Trio {
    /// `None` when PostgreSQL is unreachable and not required (as [`TestPair::new`]).
    pub fn new(backend: shared::Backend, test: &str) -> Option<Trio> {
        let pair = TestPair::new(backend, test)?;
        let billing = test_db(backend, test, "billing", pair.path())?;
        Some(Trio { pair, billing })
    }
}
