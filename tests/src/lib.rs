//! Helpers for end-to-end tests: run the real `orchestrator` binary against a test's own
//! databases (see `shared::testing` for how those are made and dropped).

use std::path::Path;

use assert_cmd::Command;
pub use shared::testing::*;

/// Environment variables that would leak the developer's own configuration into a test.
const ISOLATE: [&str; 5] = [
    "AUTH_DATABASE_URL",
    "APP_DATABASE_URL",
    "ORCH_PROFILE",
    "RUST_LOG",
    "NO_COLOR",
];

/// The binary, in `dir`, with none of the caller's configuration.
pub fn orchestrator_in(dir: &Path) -> Command {
    let mut cmd = match Command::cargo_bin("orchestrator-e2e") {
        Ok(cmd) => cmd,
        Err(e) => panic!("the orchestrator binary was not built: {e}"),
    };
    cmd.current_dir(dir);
    for var in ISOLATE {
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
    for var in ISOLATE {
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

/// The contents of every table of the store's schema (bookkeeping included), table by
/// table, as one digest each: two calls agree exactly when no row of any table changed.
pub fn table_checksums(conn: &mut shared::Conn) -> std::collections::BTreeMap<String, String> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Digest {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let tables = shared::catalog::all_tables(conn).unwrap_or_else(|e| panic!("tables: {e}"));
    let columns = shared::catalog::columns(conn).unwrap_or_else(|e| panic!("columns: {e}"));
    let mut sums = std::collections::BTreeMap::new();
    for table in tables {
        let name = shared::db::quote_ident(&table);
        let digest: Digest = match conn {
            shared::Conn::Postgres(c) => diesel::sql_query(format!(
                "SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') || ':' || count(*) AS v FROM {name} t"
            ))
            .get_result(c),
            shared::Conn::Sqlite(c) => {
                let mut cols: Vec<String> = columns
                    .iter()
                    .filter(|col| col.table == table)
                    .map(|col| format!("quote({})", shared::db::quote_ident(&col.name)))
                    .collect();
                if cols.is_empty() {
                    // Bookkeeping tables are not in `columns`; their rowids still tell.
                    cols.push("quote(rowid)".into());
                }
                diesel::sql_query(format!(
                    "SELECT coalesce(group_concat(r, '|'), '') || ':' || count(*) AS v \
                     FROM (SELECT {} AS r FROM {name} ORDER BY 1)",
                    cols.join(" || ',' || ")
                ))
                .get_result(c)
            }
        }
        .unwrap_or_else(|e| panic!("checksum of {table}: {e}"));
        // An empty run journal is the same as none: rebuilds create it, runs empty it.
        if table == shared::admin::JOURNAL_TABLE && digest.v.ends_with(":0") {
            continue;
        }
        sums.insert(table, digest.v);
    }
    sums
}

/// [`table_checksums`] of both stores of a pair.
pub fn pair_checksums(
    pair: &TestPair,
) -> (
    std::collections::BTreeMap<String, String>,
    std::collections::BTreeMap<String, String>,
) {
    (
        table_checksums(&mut pair.auth.connect()),
        table_checksums(&mut pair.app.connect()),
    )
}
