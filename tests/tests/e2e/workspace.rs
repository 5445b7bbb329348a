//! The commands that write into the source tree (`generate`, `squash`) write into the
//! workspace the user is in, found from the current folder upward, and never into the
//! tree the binary was built from; outside a workspace they refuse (exit 2).

use std::path::{Path, PathBuf};

use orch_tests::{copy_dir, json_of, orchestrator_in, pg_admin_url};

/// A copy of this workspace's skeleton: the workspace manifest and both store crates'
/// migration folders (their real histories), nothing else.
pub(crate) fn workspace_copy(root: &Path) -> PathBuf {
    let ws = root.join("product");
    std::fs::create_dir_all(&ws).expect("mkdir");
    std::fs::write(
        ws.join("Cargo.toml"),
        "[workspace]\nmembers = [\"auth-db\", \"app-db\"]\n",
    )
    .expect("manifest");
    for store in [&auth_db::STORE, &app_db::STORE] {
        let migrations = Path::new(store.migrations_dir);
        let crate_dir = migrations
            .parent()
            .and_then(Path::file_name)
            .expect("crate folder");
        copy_dir(migrations, &ws.join(crate_dir).join("migrations"));
    }
    ws
}

/// Every entry under `dir`, relative, sorted: what a command may not have touched.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).expect("inside").display().to_string());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn folders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn generate_writes_one_version_for_both_backends_where_the_user_is() {
    let tmp = tempfile::tempdir().expect("dir");
    let ws = workspace_copy(tmp.path());
    let real = Path::new(auth_db::STORE.migrations_dir);
    let real_before = listing(real);
    let before = folders(&ws.join("auth-db/migrations/postgres"));

    // From a folder deep inside the workspace.
    let (code, report) = json_of(
        orchestrator_in(&ws.join("auth-db/migrations")),
        &["generate", "--store", "auth", "add_user_locale"],
    );
    assert_eq!(code, 0, "{report}");
    let version = report["version"].as_str().expect("version").to_string();
    let folder = format!("{version}_add_user_locale");
    for backend in ["postgres", "sqlite"] {
        let made = ws.join("auth-db/migrations").join(backend).join(&folder);
        assert!(made.join("up.sql").is_file(), "{}", made.display());
        assert!(made.join("down.sql").is_file(), "{}", made.display());
    }
    let after = folders(&ws.join("auth-db/migrations/postgres"));
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    assert_eq!(
        folders(&ws.join("auth-db/migrations/sqlite")).last(),
        after.last(),
        "one version for both backends"
    );
    assert_eq!(listing(real), real_before, "the built tree was written to");

    // --workspace from anywhere.
    let (code, report) = json_of(
        orchestrator_in(tmp.path()),
        &[
            "generate",
            "--store",
            "app",
            "index_jobs",
            "--workspace",
            "product",
        ],
    );
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        folders(&ws.join("app-db/migrations/sqlite")).len(),
        folders(&ws.join("app-db/migrations/postgres")).len()
    );
}

#[test]
fn generate_refuses_a_bad_name_and_a_folder_outside_any_workspace() {
    let tmp = tempfile::tempdir().expect("dir");
    let ws = workspace_copy(tmp.path());
    let before = listing(&ws);
    for bad in ["Add-Locale", "../escape", ""] {
        let out = orchestrator_in(&ws)
            .args(["generate", "--store", "auth", bad])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("lower case letters"), "{bad:?}: {err}");
    }
    assert_eq!(listing(&ws), before, "a refused name wrote something");

    let outside = tempfile::tempdir().expect("dir");
    let out = orchestrator_in(outside.path())
        .args(["generate", "--store", "auth", "add_x"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not inside a Cargo workspace"), "{err}");
    assert!(listing(outside.path()).is_empty());
}

#[test]
fn squash_in_a_copy_changes_only_the_copy_and_both_baselines_share_a_version() {
    let tmp = tempfile::tempdir().expect("dir");
    let ws = workspace_copy(tmp.path());
    let real = Path::new(auth_db::STORE.migrations_dir);
    let real_before = listing(real);
    let mut args = vec!["squash", "--store", "auth"];
    let shadow = pg_admin_url();
    // Both backends when PostgreSQL is there to replay on (always in CI); SQLite alone
    // otherwise.
    let pg = orch_tests::pg_reachable("workspace_squash");
    if pg {
        args.extend(["--shadow-url", shadow.as_str()]);
    } else {
        args.extend(["--backend", "sqlite"]);
    }
    let (code, report) = json_of(orchestrator_in(&ws), &args);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        listing(real),
        real_before,
        "squash wrote into the built tree"
    );
    let backends: &[&str] = if pg {
        &["postgres", "sqlite"]
    } else {
        &["sqlite"]
    };
    let baselines: Vec<Vec<String>> = backends
        .iter()
        .map(|b| folders(&ws.join("auth-db/migrations").join(b)))
        .collect();
    for (b, list) in backends.iter().zip(&baselines) {
        assert_eq!(list.len(), 1, "{b}: {list:?}");
        assert!(ws
            .join("auth-db/migrations")
            .join(b)
            .join("squash.json")
            .is_file());
    }
    assert!(
        baselines.windows(2).all(|w| w[0] == w[1]),
        "the backends' baselines differ: {baselines:?}"
    );
    // No lock or staging file left in the copy's tree.
    let leftovers: Vec<String> = listing(&ws)
        .into_iter()
        .filter(|p| p.contains(".lock") || p.contains("staging"))
        .filter(|p| !p.ends_with(".squash.lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
