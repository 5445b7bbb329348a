//! `orchestrator squash`: replace a store's long history with one baseline migration per
//! backend, proven to give the same schema before anything is moved.
//!
//! For each backend: replay the history into a scratch database, write the baseline
//! (PostgreSQL: `pg_dump --schema-only` of the scratch database, cleaned; SQLite: its
//! `sqlite_schema` statements) into a staging folder, build a second scratch database from
//! the baseline and compare the two schemas. Only when every backend's proof holds are the
//! old migrations moved to `migrations_archive/<backend>/` and the baseline moved in, with
//! a `squash.json` that lets `migrate` recognise databases that ran the old history.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;
use shared::history::{self, History, SquashMap, SQUASH_FILE};
use shared::schema::{self, SchemaModel};
use shared::scratch::Scratch;
use shared::{Backend, DatabaseUrl, DbError, Store};

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::output;
use crate::pgtools::{self, PgTools};
use crate::squash_journal;

/// Squash a store's migrations into one checked baseline per backend.
///
/// The old migrations move to migrations_archive/<backend>/ next to the migrations folder;
/// nothing moves unless the baseline's schema equals the history's. It writes into the
/// store crate of the workspace you are in (found from the current folder upward, or
/// --workspace), never into the tree the binary was built from unless you are in it.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator squash --store auth --shadow-url postgres://postgres@127.0.0.1/postgres\n  orchestrator squash --store app --backend sqlite --name baseline_2026"
)]
pub struct SquashArgs {
    /// The store whose history to squash
    #[arg(long, value_name = "S")]
    pub store: String,

    /// Name of the baseline migration (its folder is <version>_<NAME>)
    #[arg(long, value_name = "NAME", default_value = "squashed_baseline")]
    pub name: String,

    /// Only this backend's history (default: every backend folder that holds migrations)
    #[arg(long, value_enum, value_name = "B")]
    pub backend: Option<BackendName>,

    /// PostgreSQL server to build scratch databases on, as a URL of any database there
    /// (default: the store's URL when it is PostgreSQL)
    #[arg(long, value_name = "URL")]
    pub shadow_url: Option<String>,

    /// The migrations folder to squash (holding postgres/ and sqlite/) instead of the
    /// store crate's own
    #[arg(long, value_name = "DIR", conflicts_with = "workspace")]
    pub migrations_dir: Option<PathBuf>,

    /// The workspace whose store crate to squash (default: found from the current folder
    /// upward)
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendName {
    Postgres,
    Sqlite,
}

impl From<BackendName> for Backend {
    fn from(b: BackendName) -> Backend {
        match b {
            BackendName::Postgres => Backend::Postgres,
            BackendName::Sqlite => Backend::Sqlite,
        }
    }
}

#[derive(Debug, Serialize)]
struct SquashReport {
    ok: bool,
    store: &'static str,
    backends: Vec<Squashed>,
}

#[derive(Debug, Serialize)]
struct Squashed {
    backend: Backend,
    baseline: String,
    replaced: usize,
    migrations: String,
    archive: String,
}

/// A baseline written and proven in the staging folder, waiting to be swapped in.
struct Staged {
    backend: Backend,
    folder: String,
    map: SquashMap,
    old_folders: Vec<String>,
    /// PostgreSQL: the baseline's definitions, as recorded for the squashed history.
    definitions: Option<shared::repair::recorded::Recorded>,
}

fn squash_error(action: String) -> CliError {
    CliError::new(Exit::Database, anyhow::anyhow!(action))
}

fn io(what: &str, path: &Path, e: std::io::Error) -> CliError {
    CliError::new(
        Exit::Usage,
        anyhow::anyhow!("{what} {}: {e}", path.display()),
    )
}

pub fn run(ctx: &Context, args: &SquashArgs) -> CliResult {
    crate::interrupt::install();
    let store = ctx
        .store(&args.store)
        .ok_or_else(|| CliError::usage(format!("no store named {}", args.store)))?;
    if args.name.is_empty()
        || !args
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(CliError::usage(format!(
            "--name `{}` must be letters, digits and underscores",
            args.name
        )));
    }
    // The workspace the user is in, never the tree the binary was built from.
    let migrations_dir = match &args.migrations_dir {
        Some(dir) => dir.clone(),
        None => {
            crate::workspace::Workspace::store_migrations(ctx, args.workspace.as_deref(), store)?
        }
    };
    let archive_root = migrations_dir
        .parent()
        .map(|p| p.join("migrations_archive"))
        .ok_or_else(|| CliError::usage("the migrations folder has no parent folder"))?;
    let backends: Vec<Backend> = match args.backend {
        Some(b) => vec![b.into()],
        None => [Backend::Postgres, Backend::Sqlite]
            .into_iter()
            .filter(|b| history::backend_dir(&migrations_dir, *b).is_dir())
            .collect(),
    };
    // One squash per folder at a time, and whatever a crashed one left is settled first.
    let _folder_lock = squash_journal::lock(&migrations_dir).map_err(CliError::usage)?;
    squash_journal::settle(&migrations_dir).map_err(CliError::usage)?;
    let staging = migrations_dir
        .parent()
        .map(|p| {
            p.join(format!(
                "{}{}",
                squash_journal::STAGING_PREFIX,
                std::process::id()
            ))
        })
        .ok_or_else(|| CliError::usage("the migrations folder has no parent folder"))?;
    let _cleanup = RemoveOnDrop(staging.clone());

    let version = baseline_version(&migrations_dir, &backends)?;
    let mut staged = Vec::new();
    for backend in &backends {
        staged.push(stage(
            ctx,
            args,
            store,
            *backend,
            &migrations_dir,
            &staging,
            &version,
        )?);
    }
    // Every proof held: only now is anything in the migrations folder touched, by one
    // journalled plan that a crash cannot leave half done.
    let plan = swap_plan(&staged, &migrations_dir, &archive_root, &staging)?;
    squash_journal::commit(&migrations_dir, &plan).map_err(CliError::usage)?;
    squash_journal::apply(&migrations_dir, &plan).map_err(CliError::usage)?;
    record_definitions(&migrations_dir, &staged)?;
    let report = SquashReport {
        ok: true,
        store: store.name,
        backends: staged
            .iter()
            .map(|s| Squashed {
                backend: s.backend,
                baseline: s.folder.clone(),
                replaced: s.map.replaces.len(),
                migrations: history::backend_dir(&migrations_dir, s.backend)
                    .display()
                    .to_string(),
                archive: archive_root.join(s.backend.as_str()).display().to_string(),
            })
            .collect(),
    };
    if ctx.json() {
        output::print_json(&report).map_err(|e| CliError::new(Exit::Usage, e))?;
    } else {
        for b in &report.backends {
            crate::say!(
                "{}/{}: squashed {} migration(s) into {} (schema proven equal); old ones in {}",
                store.name,
                b.backend,
                b.replaced,
                b.baseline,
                b.archive
            );
        }
    }
    Ok(())
}

/// One version for every backend's baseline (a database is recognised by it whichever
/// backend it is on): diesel's form of now, or just after the newest version squashed
/// when that sorts later. Diesel's version of a folder is its name before the first `_`,
/// dashes removed; the baseline's folder is named with exactly that, so the record and
/// the folder agree.
fn baseline_version(migrations_dir: &Path, backends: &[Backend]) -> CliResult<String> {
    let mut last = String::new();
    for backend in backends {
        let dir = history::backend_dir(migrations_dir, *backend);
        let versions = History::Dir(&dir)
            .versions(*backend)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", dir.display())))?;
        if let Some((v, _)) = versions.last() {
            last = last.max(v.clone());
        }
    }
    let now = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    Ok(if now > last { now } else { format!("{last}1") })
}

fn stage(
    ctx: &Context,
    args: &SquashArgs,
    store: &Store,
    backend: Backend,
    migrations_dir: &Path,
    staging: &Path,
    version: &str,
) -> CliResult<Staged> {
    let dir = history::backend_dir(migrations_dir, backend);
    history::check_dir(&dir).map_err(CliError::usage)?;
    let old = History::Dir(&dir);
    let versions = old
        .versions(backend)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", dir.display())))?;
    if versions.len() < 2 {
        return Err(CliError::usage(format!(
            "{} holds {} migration(s): nothing to squash",
            dir.display(),
            versions.len()
        )));
    }
    let server = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(postgres_server(ctx, args, store)?),
    };
    ctx.progress(format!(
        "{}/{backend}: replaying {} migration(s) in a scratch database…",
        store.name,
        versions.len()
    ));
    let mut scratch = Scratch::create(store.name, backend, server.as_ref())?;
    let where_ = format!("scratch database {}", scratch.name());
    history::run(scratch.conn(), old, None, |_| {}).map_err(|f| DbError::Migration {
        store: store.name.into(),
        url: where_.clone(),
        migration: f.migration,
        reason: f.reason,
    })?;
    let history_model = introspect(store, &mut scratch, &where_)?;
    let (up, down) = match backend {
        Backend::Postgres => postgres_baseline(&mut scratch, &history_model)?,
        Backend::Sqlite => sqlite_baseline(&mut scratch, &where_)?,
    };
    drop(scratch);

    let version = version.to_string();
    let folder = format!("{version}_{}", args.name);
    let target = staging.join(backend.as_str()).join(&folder);
    std::fs::create_dir_all(&target).map_err(|e| io("cannot create", &target, e))?;
    // The fault tests make a baseline that cannot prove itself, to see the refusal.
    let up = if crate::fault::armed("squash-drift", store.name) {
        format!("{up}\nCREATE TABLE squash_fault_extra (id TEXT);\n")
    } else {
        up
    };
    std::fs::write(target.join("up.sql"), up).map_err(|e| io("cannot write", &target, e))?;
    std::fs::write(target.join("down.sql"), down).map_err(|e| io("cannot write", &target, e))?;

    // The proof: a fresh scratch database built from the baseline alone.
    let staged_dir = staging.join(backend.as_str());
    let mut proof = Scratch::create(store.name, backend, server.as_ref())?;
    let where_ = format!("scratch database {}", proof.name());
    history::run(proof.conn(), History::Dir(&staged_dir), None, |_| {}).map_err(|f| {
        DbError::Migration {
            store: store.name.into(),
            url: format!("{where_} (the baseline)"),
            migration: f.migration,
            reason: f.reason,
        }
    })?;
    let baseline_model = introspect(store, &mut proof, &where_)?;
    // What a repair writes, read from the baseline's own database, for the history the
    // staging folder holds (the baseline alone, as the migrations folder will): recorded
    // beside the squashed history once it is in place (see `record_definitions`).
    let definitions = match backend {
        Backend::Postgres => {
            let fingerprint =
                shared::repair::recorded::dir_fingerprint(&staged_dir).map_err(CliError::usage)?;
            let record = shared::repair::recorded::Recorded::read(proof.conn(), fingerprint)
                .map_err(|e| squash_error(format!("{}: {where_}: {e}", store.name)))?;
            Some(record)
        }
        Backend::Sqlite => None,
    };
    let differences = schema::compare(&history_model, &baseline_model);
    if !differences.is_empty() {
        let list: Vec<String> = differences.iter().map(|d| d.describe(store.name)).collect();
        return Err(CliError::new(
            Exit::CheckFailed,
            anyhow::anyhow!(
                "refusing to squash {}/{backend}: the baseline's schema differs from the history's ({}); nothing was changed",
                store.name,
                list.join("; ")
            ),
        ));
    }

    let mut replaces: Vec<String> = versions.iter().map(|(v, _)| v.clone()).collect();
    if let Ok(Some(previous)) = history::read_squash_map(&dir) {
        replaces.extend(previous.replaces);
    }
    replaces.sort();
    replaces.dedup();
    let map = SquashMap {
        baseline: version,
        name: args.name.clone(),
        replaces,
    };
    let json = serde_json::to_string_pretty(&map).map_err(|e| CliError::new(Exit::Usage, e))?;
    let staged_map = staged_dir.join(SQUASH_FILE);
    std::fs::write(&staged_map, json + "\n").map_err(|e| io("cannot write", &staged_map, e))?;
    let old_folders = std::fs::read_dir(&dir)
        .map_err(|e| io("cannot read", &dir, e))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    Ok(Staged {
        backend,
        folder,
        map,
        old_folders,
        definitions,
    })
}

/// Records the squashed PostgreSQL history's definitions (what `lint --write` would),
/// once the history is in place: a crash before this leaves the old record, which no
/// longer matches the history and is therefore not used (a repair replays instead).
fn record_definitions(migrations_dir: &Path, staged: &[Staged]) -> CliResult {
    let path = migrations_dir.join(shared::repair::recorded::RECORDED_DEFINITIONS);
    for record in staged.iter().filter_map(|s| s.definitions.as_ref()) {
        std::fs::write(&path, record.to_json()).map_err(|e| io("cannot write", &path, e))?;
    }
    Ok(())
}

fn introspect(store: &Store, scratch: &mut Scratch, where_: &str) -> CliResult<SchemaModel> {
    schema::introspect(scratch.conn()).map_err(|e| {
        CliError::from(DbError::Query {
            store: store.name.into(),
            url: where_.into(),
            action: "reading the schema".into(),
            reason: e.to_string(),
        })
    })
}

fn postgres_server(ctx: &Context, args: &SquashArgs, store: &Store) -> CliResult<DatabaseUrl> {
    if let Some(url) = &args.shadow_url {
        return Ok(DatabaseUrl::parse(url)?);
    }
    let url = ctx.url(store)?;
    if url.backend() == Backend::Postgres {
        return Ok(url.clone());
    }
    Err(CliError::usage(
        "squashing the postgres history needs a PostgreSQL server: pass --shadow-url postgres://… (or --backend sqlite)",
    ))
}

/// `pg_dump --schema-only` of the scratch database, without bookkeeping tables and without
/// the session settings and comments that make it noisy as a migration.
fn postgres_baseline(scratch: &mut Scratch, model: &SchemaModel) -> CliResult<(String, String)> {
    let url = scratch.url().clone();
    let major = shared::admin::server_major(scratch.conn())
        .map_err(|e| squash_error(format!("reading the server version: {e}")))?;
    let tools = PgTools::find(major).map_err(squash_error)?;
    let mut cmd = tools.connected("pg_dump", &url);
    cmd.args([
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--no-comments",
        "--exclude-table=__*",
    ]);
    let out = pgtools::run(cmd, "pg_dump --schema-only", &url).map_err(squash_error)?;
    let dump = String::from_utf8_lossy(&out.stdout);
    let mut up = String::from(
        "-- Baseline written by `orchestrator squash`: the schema of the squashed history.\n",
    );
    let mut blank = true;
    for line in dump.lines() {
        let noise = line.starts_with("SET ")
            || line.starts_with("SELECT pg_catalog.set_config")
            || line.starts_with("--")
            || line.starts_with('\\');
        if noise || (line.trim().is_empty() && blank) {
            continue;
        }
        blank = line.trim().is_empty();
        up.push_str(line);
        up.push('\n');
    }
    let mut down = String::new();
    for table in model.tables.keys().rev() {
        down.push_str(&format!(
            "DROP TABLE IF EXISTS {} CASCADE;\n",
            shared::db::quote_ident(table)
        ));
    }
    Ok((up, down))
}

/// SQLite's own `CREATE` statements, tables before indexes, in creation order.
fn sqlite_baseline(scratch: &mut Scratch, where_: &str) -> CliResult<(String, String)> {
    let statements = schema::sqlite_creation_sql(scratch.conn())
        .map_err(|e| squash_error(format!("{where_}: reading sqlite_schema failed: {e}")))?;
    let mut up = String::from(
        "-- Baseline written by `orchestrator squash`: the schema of the squashed history.\n",
    );
    let mut tables = Vec::new();
    for (name, sql) in &statements {
        up.push_str(sql.trim_end_matches(';'));
        up.push_str(";\n\n");
        if sql
            .trim_start()
            .to_ascii_uppercase()
            .starts_with("CREATE TABLE")
        {
            tables.push(name.clone());
        }
    }
    let down: String = tables
        .iter()
        .rev()
        .map(|t| format!("DROP TABLE IF EXISTS {};\n", shared::db::quote_ident(t)))
        .collect();
    Ok((up, down))
}

/// Every rename of the swap, for all backends: the old migrations (and an earlier squash
/// record) into the archive, the baseline and its record in. Refused, with nothing moved,
/// when the archive already holds a folder of the same name.
fn swap_plan(
    staged: &[Staged],
    migrations_dir: &Path,
    archive_root: &Path,
    staging: &Path,
) -> CliResult<squash_journal::Plan> {
    let mut moves = Vec::new();
    for s in staged {
        let dir = history::backend_dir(migrations_dir, s.backend);
        let archive = archive_root.join(s.backend.as_str());
        if let Some(clash) = s.old_folders.iter().find(|f| archive.join(f).exists()) {
            return Err(CliError::new(
                Exit::Refused,
                anyhow::anyhow!(
                    "{} already holds {clash}; nothing was moved",
                    archive.display()
                ),
            ));
        }
        let mut push = |from: PathBuf, to: PathBuf| moves.push(squash_journal::Move { from, to });
        for folder in &s.old_folders {
            push(dir.join(folder), archive.join(folder));
        }
        if dir.join(SQUASH_FILE).exists() {
            push(
                dir.join(SQUASH_FILE),
                archive.join(format!("{SQUASH_FILE}.{}", s.map.baseline)),
            );
        }
        let from = staging.join(s.backend.as_str());
        push(from.join(&s.folder), dir.join(&s.folder));
        push(from.join(SQUASH_FILE), dir.join(SQUASH_FILE));
    }
    Ok(squash_journal::Plan {
        moves,
        staging: staging.to_path_buf(),
    })
}

/// Removes the staging folder however the command ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.0.exists() {
            if let Err(e) = std::fs::remove_dir_all(&self.0) {
                eprintln!("warning: could not remove {}: {e}", self.0.display());
            }
        }
    }
}
