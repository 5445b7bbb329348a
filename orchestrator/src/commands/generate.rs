//! `orchestrator generate`: one new migration for both backends of a store, with one
//! version, in the workspace the user is in.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;
use shared::Backend;

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::output;
use crate::workspace::Workspace;

/// Create a new migration for both backends of a store, with one version.
///
/// Writes migrations/postgres/<version>_<NAME>/ and migrations/sqlite/<version>_<NAME>/,
/// each with up.sql and down.sql, in the store crate of the workspace you are in (found
/// from the current folder upward, or --workspace). The version is diesel's
/// (YYYY-MM-DD-HHMMSS, UTC). Write both up.sql files so they make the same schema, then
/// `orchestrator lint --write --postgres-url URL` records the PostgreSQL history's model.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator generate --store auth add_user_locale\n  orchestrator generate --store app --workspace ~/src/product index_jobs_by_status"
)]
pub struct GenerateArgs {
    /// The store the migration belongs to
    #[arg(long, value_name = "S")]
    pub store: String,

    /// What the migration does, in lower case words joined by `_` (add_user_locale)
    #[arg(value_name = "NAME")]
    pub name: String,

    /// The workspace to write into (default: found from the current folder upward)
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Generated {
    store: &'static str,
    version: String,
    folders: Vec<String>,
}

/// A name diesel and every file system take as is: lower case letters, digits and `_`,
/// starting with a letter.
fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "migration name {name:?}: use lower case letters, digits and `_`, starting with a \
             letter, at most 100 characters (add_user_locale)"
        ))
    }
}

const UP: &str = "-- Your SQL goes here\n";
const DOWN: &str = "-- This file should undo anything in `up.sql`\n";

/// Creates the two folders, or neither: a folder that exists already refuses the run.
fn write(migrations: &Path, folder: &str) -> Result<Vec<PathBuf>, String> {
    let targets: Vec<PathBuf> = [Backend::Postgres, Backend::Sqlite]
        .iter()
        .map(|b| shared::history::backend_dir(migrations, *b).join(folder))
        .collect();
    for t in &targets {
        if t.exists() {
            return Err(format!("{} exists already", t.display()));
        }
        let parent = t.parent().unwrap_or(migrations);
        if !parent.is_dir() {
            return Err(format!("{} is not a folder", parent.display()));
        }
    }
    let mut made = Vec::new();
    for t in &targets {
        let result = std::fs::create_dir(t)
            .and_then(|()| std::fs::write(t.join("up.sql"), UP))
            .and_then(|()| std::fs::write(t.join("down.sql"), DOWN));
        if let Err(e) = result {
            for m in made.iter().chain([t]) {
                let _ = std::fs::remove_dir_all(m);
            }
            return Err(format!("cannot write {}: {e}", t.display()));
        }
        made.push(t.clone());
    }
    Ok(made)
}

pub fn run(ctx: &Context, args: &GenerateArgs) -> CliResult {
    check_name(&args.name).map_err(CliError::usage)?;
    let Some(store) = ctx.store(&args.store) else {
        return Err(CliError::usage(format!("no store named {}", args.store)));
    };
    let migrations = Workspace::store_migrations(ctx, args.workspace.as_deref(), store)?;
    let version = chrono::Utc::now().format("%Y-%m-%d-%H%M%S").to_string();
    let folder = format!("{version}_{}", args.name);
    let made =
        write(&migrations, &folder).map_err(|e| CliError::new(Exit::Usage, anyhow::anyhow!(e)))?;
    let report = Generated {
        store: store.name,
        version,
        folders: made.iter().map(|p| p.display().to_string()).collect(),
    };
    if ctx.json() {
        output::print_json(&report).map_err(|e| CliError::new(Exit::Usage, e))?;
    } else {
        for f in &report.folders {
            crate::say!("created {f}/{{up.sql,down.sql}}");
        }
        crate::say!(
            "next: write both up.sql (and down.sql) so they make the same schema, then \
             `orchestrator lint --write --postgres-url URL` records the PostgreSQL model and \
             `orchestrator lint` checks the two histories agree"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_anything_is_written() {
        assert!(check_name("add_user_locale").is_ok());
        for bad in [
            "",
            "Add",
            "1st",
            "a-b",
            "a b",
            "../x",
            "é",
            &"a".repeat(101),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn both_folders_are_made_or_neither() {
        let dir = tempfile::tempdir().expect("dir");
        for b in ["postgres", "sqlite"] {
            std::fs::create_dir(dir.path().join(b)).expect("mkdir");
        }
        let made = write(dir.path(), "2030-01-01-000000_x").expect("made");
        assert_eq!(made.len(), 2);
        for m in &made {
            assert_eq!(std::fs::read_to_string(m.join("up.sql")).expect("up"), UP);
            assert!(m.join("down.sql").is_file());
        }
        // The same version again: refused, nothing touched.
        let err = write(dir.path(), "2030-01-01-000000_x").expect_err("exists");
        assert!(err.contains("exists already"), "{err}");
        // A backend folder missing: refused before the other is made.
        std::fs::remove_dir_all(dir.path().join("sqlite")).expect("rm");
        let err = write(dir.path(), "2030-01-01-000001_y").expect_err("no sqlite");
        assert!(err.contains("is not a folder"), "{err}");
        assert!(!dir.path().join("postgres/2030-01-01-000001_y").exists());
    }
}
