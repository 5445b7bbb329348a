//! The command line: global flags shared by every command, and one subcommand per module
//! under `commands/`. The `///` comments are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands;

const EXAMPLES: &str = "\
Examples:
  orchestrator migrate                         # the embedded SQLite pair under .data/
  orchestrator status --format json
  orchestrator verify                          # the whole schema, the code's columns, migrations, references
  orchestrator lint                            # both migration histories make one schema
  AUTH_DATABASE_URL=postgres://postgres@127.0.0.1/auth \\
  APP_DATABASE_URL=postgres://postgres@127.0.0.1/app orchestrator migrate

Exit codes: 0 ok, 1 a check found a problem, 2 bad usage or configuration,
3 refused by a safety guard, 4 database error, 5 another run holds the lock.";

/// Migrate, check and repair the auth and app databases as one safe command.
///
/// Works on the embedded SQLite pair under .data/ when nothing is configured; point it at
/// PostgreSQL with --auth-url/--app-url, AUTH_DATABASE_URL/APP_DATABASE_URL, .env or
/// orchestrator.toml.
#[derive(Debug, Parser)]
#[command(name = "orchestrator", version, after_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Configuration file to read instead of ./orchestrator.toml
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Profile (table) of the configuration file to use [env: ORCH_PROFILE] [default: default]
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,

    /// URL of the auth database: postgres://…, sqlite://PATH or a file path
    /// [env: AUTH_DATABASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub auth_url: Option<String>,

    /// URL of the app database: postgres://…, sqlite://PATH or a file path
    /// [env: APP_DATABASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub app_url: Option<String>,

    /// Output for people (text) or one JSON document on stdout (json)
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// More detail on stderr: -v steps and timings, -vv debug, -vvv trace (RUST_LOG also works)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// A store's name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreName {
    Auth,
    App,
}

impl StoreName {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreName::Auth => "auth",
            StoreName::App => "app",
        }
    }
}

/// `--store S`: limit a command to one store.
#[derive(Debug, Clone, Args)]
pub struct StoreArg {
    /// Only this store (default: both, in dependency order: auth before app)
    #[arg(long, value_enum, value_name = "S")]
    pub store: Option<StoreName>,
}

/// The safety flags of destructive commands.
#[derive(Debug, Clone, Args)]
pub struct GuardArgs {
    /// Replace stores that hold rows (backed up first, unless reset --no-backup)
    #[arg(long)]
    pub force: bool,

    /// Database name of a protected store, once per store, to confirm replacing it
    // A database name may start with `-`; it is still the value, never a flag.
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub confirm: Vec<String>,

    /// Also drop or alter objects in other schemas that depend on the store's schema
    /// (views, columns of its types, foreign keys, inheriting tables, publications);
    /// without it they are named and the command refuses. They are in the backup.
    #[arg(long)]
    pub drop_dependents: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Status(commands::status::StatusArgs),
    Migrate(commands::migrate::MigrateArgs),
    Verify(commands::verify::VerifyArgs),
    Reset(commands::reset::ResetArgs),
    Backup(commands::backup::BackupArgs),
    Restore(commands::restore::RestoreArgs),
    Revert(commands::revert::RevertArgs),
    Recover(commands::recover::RecoverArgs),
    Smoke(commands::smoke::SmokeArgs),
    Diff(commands::diff::DiffArgs),
    Lint(commands::lint::LintArgs),
    Generate(commands::generate::GenerateArgs),
    Squash(commands::squash::SquashArgs),
    Completions(commands::completions::CompletionsArgs),
}
