//! Helpers for end-to-end tests: run the real `orchestrator` binary against a test's own
//! databases (see `test_kit` for how those are made and dropped).

use std::path::Path;

use assert_cmd::Command;
pub use test_kit::*;

pub mod checksums;

/// Environment variables that would leak the developer's own configuration into a test:
/// every store's `<STORE>_DATABASE_URL` (the registry's, and the tests' billing store),
/// the profile, logging and colour.
fn isolated() -> Vec<String> {
    orchestrator::stores::STORES
        .iter()
        .chain([&&billing_db::STORE])
        .map(|s| shared::config::env_var(s.name))
        .chain(["ORCH_PROFILE", "RUST_LOG", "NO_COLOR"].map(String::from))
        .collect()
}

/// The binary, in `dir`, with none of the caller's configuration.
pub fn orchestrator_in(dir: &Path) -> Command {
    let mut cmd = match Command::cargo_bin("orchestrator-e2e") {
        Ok(cmd) => cmd,
        Err(e) => panic!("the orchestrator binary was not built: {e}"),
    };
    cmd.current_dir(dir);
    for var in isolated() {
        cmd.env_remove(var);
    }
    cmd
}

/// The binary pointed at a test pair's databases.
pub fn orchestrator(pair: &TestPair) -> Command {
    let mut cmd = orchestrator_in(pair.path());
    cmd.arg("--auth-url").arg(pair.auth.url_string());
    cmd.arg("--app-url").arg(pair.app.url_string());
    cmd
}

/// The binary as a plain process in `dir` (for tests that spawn, race or kill it), with
/// none of the caller's configuration.
pub fn process_in(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("orchestrator-e2e"));
    cmd.current_dir(dir);
    for var in isolated() {
        cmd.env_remove(var);
    }
    cmd
}

/// The binary as a plain process pointed at a test pair (for tests that spawn, race or
/// kill it), with none of the caller's configuration.
pub fn process(pair: &TestPair) -> std::process::Command {
    let mut cmd = process_in(pair.path());
    cmd.arg("--auth-url").arg(pair.auth.url_string());
    cmd.arg("--app-url").arg(pair.app.url_string());
    cmd
}

/// Runs the binary with `args` and parses its stdout as one JSON document.
pub fn json_of(mut cmd: Command, args: &[&str]) -> (i32, serde_json::Value) {
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

/// The rows the end-to-end tests start from, through the contract's own columns: three
/// users, a team, a credit grant with its ledger row; two datasets (one in the team), a
/// document and a job. The stores must be migrated.
pub fn seed_contract_rows(pair: &TestPair) {
    let mut auth = pair.auth.connect();
    exec(
        &mut auth,
        "INSERT INTO users (id, email) VALUES ('u1', 'a@x'), ('u2', 'b@x'), ('u3', 'c@x');
         INSERT INTO teams (id, name, owner_id) VALUES ('t1', 'team', 'u1');
         INSERT INTO user_credits (id, user_id, credits) VALUES ('c1', 'u1', 50);
         INSERT INTO credit_transactions (id, user_id, amount) VALUES ('x1', 'u1', 50);",
    );
    let mut app = pair.app.connect();
    exec(
        &mut app,
        "INSERT INTO datasets (id, owner_id, team_id, name) VALUES ('d1', 'u1', 't1', 'one'), ('d2', 'u2', NULL, 'two');
         INSERT INTO documents (id, dataset_id, filename) VALUES ('doc1', 'd1', 'a.pdf');
         INSERT INTO processing_jobs (id, document_id) VALUES ('j1', 'doc1');",
    );
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

/// The engine on three stores (the `orchestrator-billing` binary: the registry's two and
/// billing) pointed at `trio`, one store per spelling of the URL flags.
pub fn orchestrator_billing(trio: &Trio) -> Command {
    let mut cmd = match Command::cargo_bin("orchestrator-billing") {
        Ok(cmd) => cmd,
        Err(e) => panic!("the orchestrator-billing binary was not built: {e}"),
    };
    cmd.current_dir(trio.pair.path());
    for var in isolated() {
        cmd.env_remove(var);
    }
    cmd.arg("--auth-url").arg(trio.pair.auth.url_string());
    cmd.arg("--url")
        .arg(format!("app={}", trio.pair.app.url_string()));
    cmd.arg("--url")
        .arg(format!("billing={}", trio.billing.url_string()));
    cmd
}
