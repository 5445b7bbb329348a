//! The Cargo workspace the user is in, for the commands that write into the source tree
//! (`generate`, `squash`, `lint --write`). The binary knows where it was built, but that
//! tree is not necessarily the one in front of the user (a copy, a worktree, a binary
//! built elsewhere): the tree written to is found from the current folder upward, or given
//! with `--workspace`, and never assumed.

use std::path::{Path, PathBuf};

use shared::Store;

/// A workspace root that holds every store crate's `migrations/` folder.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
}

/// The store crate's folder name (`auth-db`), from where it was built.
pub fn crate_dir(store: &Store) -> &str {
    Path::new(store.migrations_dir)
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or(store.name)
}

impl Workspace {
    /// `explicit` when given (it must be a workspace root holding the stores' crates), or
    /// the nearest folder from `cwd` upward whose `Cargo.toml` declares a `[workspace]`
    /// and that holds every store crate's `migrations/`.
    pub fn find(
        explicit: Option<&Path>,
        cwd: &Path,
        stores: &[&Store],
    ) -> Result<Workspace, String> {
        let crates: Vec<&str> = stores.iter().map(|s| crate_dir(s)).collect();
        let holds = |dir: &Path| {
            let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
            manifest.lines().any(|l| l.trim() == "[workspace]")
                && crates
                    .iter()
                    .all(|c| dir.join(c).join("migrations").is_dir())
        };
        let wanted = crates.join(", ");
        if let Some(dir) = explicit {
            let dir = cwd.join(dir);
            return if holds(&dir) {
                Ok(Workspace { root: dir })
            } else {
                Err(format!(
                    "{} is not the root of a Cargo workspace holding {wanted} (each with migrations/)",
                    dir.display()
                ))
            };
        }
        cwd.ancestors()
            .find(|dir| holds(dir))
            .map(|dir| Workspace {
                root: dir.to_path_buf(),
            })
            .ok_or_else(|| {
                format!(
                    "{} is not inside a Cargo workspace holding {wanted}: this command writes \
                     into the source tree, so run it from the workspace, or give --workspace DIR",
                    cwd.display()
                )
            })
    }

    /// The `migrations/` folder of `store`'s crate in the workspace the user is in:
    /// `explicit` (`--workspace`) or found from the current folder upward; outside one,
    /// a usage error (exit 2).
    pub fn store_migrations(
        ctx: &crate::context::Context,
        explicit: Option<&Path>,
        store: &Store,
    ) -> crate::exit::CliResult<PathBuf> {
        Workspace::find(explicit, &ctx.cwd, &ctx.stores())
            .map(|ws| ws.migrations_dir(store))
            .map_err(crate::exit::CliError::usage)
    }

    /// The store crate's `migrations/` folder in this workspace.
    pub fn migrations_dir(&self, store: &Store) -> PathBuf {
        self.root.join(crate_dir(store)).join("migrations")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(with_workspace: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("dir");
        let manifest = if with_workspace {
            "[workspace]\nmembers = [\"auth-db\", \"app-db\"]\n"
        } else {
            "[package]\nname = \"x\"\n"
        };
        std::fs::write(dir.path().join("Cargo.toml"), manifest).expect("manifest");
        for c in ["auth-db", "app-db"] {
            std::fs::create_dir_all(dir.path().join(c).join("migrations/postgres")).expect("mkdir");
        }
        dir
    }

    #[test]
    fn the_workspace_is_found_from_any_folder_inside_it() {
        let ws = tree(true);
        let stores = [&auth_db::STORE, &app_db::STORE];
        let deep = ws.path().join("app-db/migrations/postgres");
        let found = Workspace::find(None, &deep, &stores).expect("found");
        assert_eq!(found.root, ws.path());
        assert_eq!(
            found.migrations_dir(&auth_db::STORE),
            ws.path().join("auth-db/migrations")
        );
        let explicit = Workspace::find(Some(ws.path()), Path::new("/"), &stores).expect("explicit");
        assert_eq!(explicit.root, ws.path());
    }

    #[test]
    fn outside_a_workspace_it_says_so() {
        let stores = [&auth_db::STORE, &app_db::STORE];
        let plain = tree(false);
        let err = Workspace::find(None, plain.path(), &stores).expect_err("no workspace");
        assert!(
            err.contains("not inside a Cargo workspace holding auth-db, app-db"),
            "{err}"
        );
        let err =
            Workspace::find(Some(plain.path()), Path::new("/"), &stores).expect_err("explicit");
        assert!(err.contains("is not the root"), "{err}");
    }
}
