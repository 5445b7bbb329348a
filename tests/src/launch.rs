//! The one way the end-to-end tests start the binary: in a folder of the test's own, on a
//! set of stores given by URL (`--url STORE=URL` each), with none of the caller's own
//! configuration. Everything else here (a pair, a trio, as a plain process, under a shell
//! that limits the disk) is that one launch, shaped.

use std::path::Path;

use assert_cmd::Command;
use test_kit::{TestDb, TestPair};

use crate::Trio;

/// The product's binary (the registry's stores) and the same engine built with the tests'
/// billing store as a third (`src/bin/orchestrator_billing.rs`).
const PRODUCT: &str = "orchestrator-e2e";
const WITH_BILLING: &str = "orchestrator-billing";

/// Environment variables that would leak the developer's own configuration into a test:
/// every store's `<STORE>_DATABASE_URL` (the registry's, and the tests' billing store),
/// the profile, logging and colour.
fn isolated() -> Vec<String> {
    orchestrator::stores::STORES
        .iter()
        .chain([&&billing_db::STORE])
        .map(|s| shared::config::env_var(s.name))
        .chain(
            [
                "DATABASE_URL",
                "ORCH_PROFILE",
                "RUST_LOG",
                "NO_COLOR",
                "CLICOLOR",
                "CLICOLOR_FORCE",
            ]
            .map(String::from),
        )
        .collect()
}

/// The binary in `dir` on `stores` (`(store, url)`), as a plain process (for tests that
/// spawn, race or kill it). The billing build when a store is not the product's.
pub fn launch(dir: &Path, stores: &[(&str, &str)]) -> std::process::Command {
    let product = |name: &str| orchestrator::stores::STORES.iter().any(|s| s.name == name);
    let bin = if stores.iter().all(|(name, _)| product(name)) {
        PRODUCT
    } else {
        WITH_BILLING
    };
    let mut cmd = bare(bin, dir);
    for (store, url) in stores {
        cmd.arg("--url").arg(format!("{store}={url}"));
    }
    cmd
}

fn bare(bin: &str, dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin(bin));
    cmd.current_dir(dir);
    for var in isolated() {
        cmd.env_remove(var);
    }
    cmd
}

/// The three-store build in `dir` on no store given, for tests of how its stores are
/// spelled (`--billing-url`, `BILLING_DATABASE_URL`).
pub fn billing_build_in(dir: &Path) -> Command {
    Command::from_std(bare(WITH_BILLING, dir))
}

/// [`launch`] for `assert_cmd`'s checks.
pub fn orchestrator_on(dir: &Path, stores: &[(&str, &str)]) -> Command {
    Command::from_std(launch(dir, stores))
}

/// The binary in `dir` on no store given (its configuration is the folder's).
pub fn orchestrator_in(dir: &Path) -> Command {
    orchestrator_on(dir, &[])
}

/// The binary on a test pair's databases.
pub fn orchestrator(pair: &TestPair) -> Command {
    Command::from_std(process(pair))
}

/// The binary as a plain process in `dir`, on no store given.
pub fn process_in(dir: &Path) -> std::process::Command {
    launch(dir, &[])
}

/// The binary as a plain process on a test pair's databases.
pub fn process(pair: &TestPair) -> std::process::Command {
    on_dbs(pair.path(), &[("auth", &pair.auth), ("app", &pair.app)])
}

/// The engine on three stores (the registry's two and billing) pointed at `trio`.
pub fn orchestrator_billing(trio: &Trio) -> Command {
    Command::from_std(on_dbs(
        trio.pair.path(),
        &[
            ("auth", &trio.pair.auth),
            ("app", &trio.pair.app),
            ("billing", &trio.billing),
        ],
    ))
}

fn on_dbs(dir: &Path, dbs: &[(&str, &TestDb)]) -> std::process::Command {
    let urls: Vec<(&str, String)> = dbs.iter().map(|(s, db)| (*s, db.url_string())).collect();
    let stores: Vec<(&str, &str)> = urls.iter().map(|(s, u)| (*s, u.as_str())).collect();
    launch(dir, &stores)
}

/// `cmd` run by bash after `setup` (for example `ulimit -f 64`), with the same folder,
/// arguments and environment.
pub fn under_shell(cmd: &std::process::Command, setup: &str) -> std::process::Command {
    let mut shell = std::process::Command::new("bash");
    shell
        .arg("-c")
        .arg(format!("{setup}; exec \"$0\" \"$@\""))
        .arg(cmd.get_program())
        .args(cmd.get_args());
    same_place(cmd, &mut shell);
    shell
}

/// `into` runs in `cmd`'s folder with `cmd`'s changes to the environment.
fn same_place(cmd: &std::process::Command, into: &mut std::process::Command) {
    if let Some(dir) = cmd.get_current_dir() {
        into.current_dir(dir);
    }
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => into.env(key, value),
            None => into.env_remove(key),
        };
    }
}

/// `cmd` run on a terminal of its own (a pseudo-terminal from util-linux's `script`), as a
/// person would run it: its stdin, stdout and stderr are that terminal, which the caller
/// reads and types into through the returned process's stdout and stdin.
pub fn on_terminal(cmd: &std::process::Command) -> std::process::Command {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let line: Vec<String> = std::iter::once(quote(cmd.get_program()))
        .chain(cmd.get_args().map(quote))
        .collect();
    let mut term = std::process::Command::new("script");
    term.args(["-qefc", &line.join(" "), "/dev/null"]);
    same_place(cmd, &mut term);
    term
}

/// `cmd` run as `user` (util-linux's `runuser`, for a test running as root that needs
/// the file permissions an ordinary user meets), in the same folder and environment.
pub fn as_user(cmd: &std::process::Command, user: &str) -> std::process::Command {
    let mut run = std::process::Command::new("runuser");
    run.args(["-u", user, "--"])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    same_place(cmd, &mut run);
    run
}
