//! A migration history that is either a store's embedded one or a folder read at run time
//! (`--migrations-dir`, the squash fixtures, a squash's staging folder), and running it,
//! optionally only up to a version. `migrations::run_pending` stays the path of the
//! ordinary `migrate`; this serves the commands that build scratch databases.

use std::path::{Path, PathBuf};
use std::time::Instant;

use diesel::migration::{Migration, MigrationSource};
use diesel_migrations::{EmbeddedMigrations, FileBasedMigrations, MigrationHarness};
use serde::{Deserialize, Serialize};

use crate::db::Conn;
use crate::migrations::{Applied, BoxError, MigrationFailure};
use crate::store::Store;
use crate::url::Backend;

/// Where a history's migrations come from.
#[derive(Clone, Copy)]
pub enum History<'a> {
    Embedded(&'a EmbeddedMigrations),
    /// A folder of `<version>_<name>/{up,down}.sql` for one backend.
    Dir(&'a Path),
}

impl<'a> History<'a> {
    /// The store's embedded history for `backend`, or `dir/<backend>` when a folder with
    /// both backends' histories is given.
    pub fn of(store: &'a Store, backend: Backend, dir: Option<&'a Path>) -> History<'a> {
        match dir {
            Some(dir) => History::Dir(dir),
            None => History::Embedded(store.migrations.for_backend(backend)),
        }
    }

    fn migrations<DB: diesel::backend::Backend>(
        &self,
    ) -> Result<Vec<Box<dyn Migration<DB>>>, BoxError>
    where
        EmbeddedMigrations: MigrationSource<DB>,
        FileBasedMigrations: MigrationSource<DB>,
    {
        let mut list = match self {
            History::Embedded(e) => MigrationSource::<DB>::migrations(*e)?,
            History::Dir(dir) => {
                MigrationSource::<DB>::migrations(&FileBasedMigrations::from_path(dir)?)?
            }
        };
        list.sort_by_key(|m| m.name().version().to_string());
        Ok(list)
    }

    /// (version, name) of every migration, oldest first.
    pub fn versions(&self, backend: Backend) -> Result<Vec<(String, String)>, BoxError> {
        fn pairs<DB: diesel::backend::Backend>(
            list: Vec<Box<dyn Migration<DB>>>,
        ) -> Vec<(String, String)> {
            list.iter()
                .map(|m| (m.name().version().to_string(), m.name().to_string()))
                .collect()
        }
        Ok(match backend {
            Backend::Postgres => pairs(self.migrations::<diesel::pg::Pg>()?),
            Backend::Sqlite => pairs(self.migrations::<diesel::sqlite::Sqlite>()?),
        })
    }
}

/// Checks that every folder in a backend's migrations folder is a migration diesel will
/// run as its author meant: named `<version>_<name>` with a version of digits and dashes
/// (`2024-01-01-000001_create_users`), holding `up.sql`, no version twice. Diesel itself
/// takes any folder name as a version (`notes` would run, sorted among the dates), and
/// fails on a folder without `up.sql` only mid-run. Hidden entries and plain files (the
/// squash record, a README) are not migrations and are skipped.
pub fn check_dir(dir: &Path) -> Result<usize, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut versions: Vec<(String, String)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        let problem = |what: &str| {
            format!(
                "{} holds `{name}`, which {what}; a migration folder is <version>_<name> \
                 (version: digits and dashes, name: letters, digits, `_` and `-`, e.g. \
                 2024-01-01-000001_create_users) with an up.sql inside",
                dir.display()
            )
        };
        let Some((version, label)) = name.split_once('_') else {
            return Err(problem("has no `_` between a version and a name"));
        };
        if !version.chars().any(|c| c.is_ascii_digit())
            || !version.chars().all(|c| c.is_ascii_digit() || c == '-')
        {
            return Err(problem(
                "does not start with a version of digits and dashes",
            ));
        }
        if label.is_empty()
            || !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(problem(
                "has a name with characters other than letters, digits, `_` and `-`",
            ));
        }
        if !entry.path().join("up.sql").is_file() {
            return Err(problem("has no up.sql"));
        }
        let version: String = version.chars().filter(|c| *c != '-').collect();
        if let Some((_, other)) = versions.iter().find(|(v, _)| *v == version) {
            return Err(problem(&format!("has the same version as `{other}`")));
        }
        versions.push((version, name));
    }
    Ok(versions.len())
}

/// The folder of one backend inside a `migrations/` folder.
pub fn backend_dir(migrations_dir: &Path, backend: Backend) -> PathBuf {
    migrations_dir.join(backend.as_str())
}

/// Runs the history's pending migrations, oldest first, each in its own transaction, and
/// stops after `up_to` when given (a squash baseline, say).
pub fn run(
    conn: &mut Conn,
    history: History<'_>,
    up_to: Option<&str>,
    mut on_applied: impl FnMut(&Applied),
) -> Result<Vec<Applied>, MigrationFailure> {
    crate::with_conn!(conn, |c| run_on(c, history, up_to, &mut on_applied))
}

fn run_on<C>(
    conn: &mut C,
    history: History<'_>,
    up_to: Option<&str>,
    on_applied: &mut dyn FnMut(&Applied),
) -> Result<Vec<Applied>, MigrationFailure>
where
    C: MigrationHarness<C::Backend> + diesel::Connection,
    EmbeddedMigrations: MigrationSource<C::Backend>,
    FileBasedMigrations: MigrationSource<C::Backend>,
{
    let failure = |migration: String, e: BoxError| MigrationFailure {
        migration,
        reason: e.to_string(),
    };
    let reading = "(reading the history)".to_string();
    let all = history
        .migrations::<C::Backend>()
        .map_err(|e| failure(reading.clone(), e))?;
    // Also creates diesel's bookkeeping table when it is missing.
    let applied: Vec<String> = conn
        .applied_migrations()
        .map_err(|e| failure(reading.clone(), e))?
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    let mut done = Vec::new();
    for migration in &all {
        let version = migration.name().version().to_string();
        if up_to.is_some_and(|last| version.as_str() > last) {
            break;
        }
        if applied.contains(&version) {
            continue;
        }
        let name = migration.name().to_string();
        let started = Instant::now();
        conn.run_migration(migration.as_ref())
            .map_err(|e| failure(name.clone(), e))?;
        let applied = Applied {
            name,
            millis: started.elapsed().as_millis(),
        };
        tracing::info!(migration = %applied.name, millis = applied.millis as u64, "applied");
        on_applied(&applied);
        done.push(applied);
    }
    Ok(done)
}

/// The file, in a backend's migrations folder, that records a squash (diesel ignores files
/// there): which baseline replaces which versions.
pub const SQUASH_FILE: &str = "squash.json";

/// What a squash replaced: a database that ran every one of `replaces` has the schema
/// `baseline` creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SquashMap {
    pub baseline: String,
    pub name: String,
    pub replaces: Vec<String>,
}

/// Reads a squash record's text (`what` names it in errors).
pub fn parse_squash_map(text: &str, what: &str) -> Result<SquashMap, String> {
    serde_json::from_str(text).map_err(|e| format!("{what} is not a valid squash record: {e}"))
}

/// Reads `dir/squash.json`; `None` when the history was never squashed.
pub fn read_squash_map(dir: &Path) -> Result<Option<SquashMap>, String> {
    let path = dir.join(SQUASH_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_squash_map(&text, &path.display().to_string()).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Records, in one transaction, that the database is at `map.baseline`: the baseline's
/// version is marked as applied and the versions it replaces are forgotten.
pub fn mark_squashed(conn: &mut Conn, map: &SquashMap) -> diesel::QueryResult<()> {
    use crate::catalog::DIESEL_MIGRATIONS_TABLE as T;
    use crate::db::quote_literal;
    use diesel::connection::SimpleConnection;
    let replaced: Vec<String> = map.replaces.iter().map(|v| quote_literal(v)).collect();
    let mut sql = format!(
        "INSERT INTO {T} (version) VALUES ({});\n",
        quote_literal(&map.baseline)
    );
    if !replaced.is_empty() {
        sql.push_str(&format!(
            "DELETE FROM {T} WHERE version IN ({});\n",
            replaced.join(", ")
        ));
    }
    crate::with_conn!(conn, |c| diesel::Connection::transaction(c, |c| c
        .batch_execute(&sql)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::DatabaseUrl;

    fn migration(dir: &Path, folder: &str, up: &str) {
        let path = dir.join(folder);
        std::fs::create_dir_all(&path).expect("mkdir");
        std::fs::write(path.join("up.sql"), up).expect("up");
        std::fs::write(path.join("down.sql"), "SELECT 1;").expect("down");
    }

    #[test]
    fn folders_that_are_not_migrations_are_named_before_anything_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        migration(dir.path(), "2024-01-01-000001_a", "SELECT 1;");
        migration(dir.path(), "20240102000000_b-c", "SELECT 1;");
        std::fs::write(dir.path().join(SQUASH_FILE), "{}").expect("file");
        std::fs::create_dir(dir.path().join(".git-keep")).expect("hidden");
        assert_eq!(check_dir(dir.path()), Ok(2));
        for (bad, why) in [
            ("notes", "no `_`"),
            ("draft_x", "version of digits"),
            ("2024-01-03_bad name", "characters other than"),
            ("2024-01-01-000001_again", "same version"),
        ] {
            migration(dir.path(), bad, "SELECT 1;");
            let error = check_dir(dir.path()).expect_err(bad);
            assert!(error.contains(bad) && error.contains(why), "{bad}: {error}");
            std::fs::remove_dir_all(dir.path().join(bad)).expect("rm");
        }
        std::fs::create_dir(dir.path().join("2024-01-04_no_up")).expect("mkdir");
        let error = check_dir(dir.path()).expect_err("no up.sql");
        assert!(error.contains("has no up.sql"), "{error}");
    }

    #[test]
    fn a_folder_history_runs_up_to_a_version_and_a_squash_is_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        migration(
            dir.path(),
            "2024-01-01-000001_a",
            "CREATE TABLE a(id TEXT);",
        );
        migration(
            dir.path(),
            "2024-01-01-000002_b",
            "CREATE TABLE b(id TEXT);",
        );
        migration(
            dir.path(),
            "2024-01-01-000003_c",
            "CREATE TABLE c(id TEXT);",
        );
        let history = History::Dir(dir.path());
        let versions = history.versions(Backend::Sqlite).expect("versions");
        assert_eq!(versions[0].0, "20240101000001", "diesel drops the dashes");

        let url = DatabaseUrl::sqlite_in_memory();
        let mut conn = Conn::establish("test", &url).expect("open");
        let applied = run(&mut conn, history, Some("20240101000002"), |_| {}).expect("run");
        assert_eq!(applied.len(), 2);
        assert_eq!(
            crate::catalog::tables(&mut conn).expect("tables"),
            ["a", "b"]
        );

        assert_eq!(read_squash_map(dir.path()).expect("read"), None);
        let map = SquashMap {
            baseline: "20260101000000".into(),
            name: "baseline".into(),
            replaces: vec!["20240101000001".into(), "20240101000002".into()],
        };
        std::fs::write(
            dir.path().join(SQUASH_FILE),
            serde_json::to_string(&map).expect("json"),
        )
        .expect("write");
        assert_eq!(
            read_squash_map(dir.path()).expect("read"),
            Some(map.clone())
        );
        mark_squashed(&mut conn, &map).expect("mark");
        assert_eq!(
            crate::catalog::applied_versions(&mut conn).expect("versions"),
            ["20260101000000"]
        );

        std::fs::write(dir.path().join(SQUASH_FILE), "{\"baseline\": 1}").expect("write");
        assert!(read_squash_map(dir.path()).is_err());
    }
}
