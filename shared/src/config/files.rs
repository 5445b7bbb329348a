//! Where the configuration files are, and what a path written in one means.
//!
//! `orchestrator.toml` and `.env` are looked for from the current folder upward, as cargo
//! looks for `Cargo.toml`, so a command run from a subfolder of the project reads the
//! project's. The search stops at the project's root: the first folder holding `.git` or
//! a `Cargo.toml` with a `[workspace]` table (or the file system's root), so a file of
//! some unrelated folder above is never read. A relative path written in
//! `orchestrator.toml` (a SQLite store, `backup_dir`) is relative to that file's folder,
//! wherever the command runs; one given on the command line or in the environment stays
//! relative to the current folder.

use std::path::{Path, PathBuf};

use figment::Figment;

use crate::error::ConfigError;
use crate::url::DatabaseUrl;

/// The nearest `name` from `cwd` upward, not above the project's root.
pub(super) fn find_upward(cwd: &Path, name: &str) -> Option<PathBuf> {
    for dir in cwd.ancestors() {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Some(candidate);
        }
        if is_project_root(dir) {
            return None;
        }
    }
    None
}

fn is_project_root(dir: &Path) -> bool {
    dir.join(".git").exists()
        || std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|text| text.lines().any(|l| l.trim() == "[workspace]"))
}

/// Whether `key`'s value comes from the configuration file (not a default, the
/// environment or a flag).
pub(super) fn from_file(figment: &Figment, key: &str) -> bool {
    figment
        .find_metadata(key)
        .is_some_and(|meta| meta.name.contains("TOML"))
}

/// A SQLite URL's relative path, written in the file in `dir`, as that file means it.
pub(super) fn url_in(dir: &Path, url: DatabaseUrl) -> Result<DatabaseUrl, ConfigError> {
    match url.sqlite_path() {
        Some(path) if path.is_relative() => DatabaseUrl::parse(&dir.join(path).to_string_lossy()),
        _ => Ok(url),
    }
}

/// `path`, written in the file in `dir`, as that file means it.
pub(super) fn path_in(dir: &Path, path: PathBuf) -> PathBuf {
    if path.is_relative() {
        dir.join(path)
    } else {
        path
    }
}
