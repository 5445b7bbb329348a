//! The command line: global flags shared by every command, and one subcommand per module
//! under `commands/`. The `///` comments are the `--help` text.

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Arg, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use shared::config::GivenUrl;
use shared::store::Store;

use crate::commands;
use crate::context::Invocation;

pub mod needs;

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

/// Migrate, check and repair the product's databases (one per store crate) as one safe
/// command.
///
/// Works on each store's embedded SQLite file under .data/ when nothing is configured;
/// point a store at PostgreSQL with --url STORE=URL (or --STORE-url), STORE_DATABASE_URL,
/// .env or orchestrator.toml.
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
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Profile (table) of the configuration file to use [env: ORCH_PROFILE] [default: default]
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "NAME")]
    pub profile: Option<String>,

    /// A store's database: STORE=URL, where URL is postgres://…, sqlite://PATH or a file
    /// path; once per store (--STORE-url URL says the same)
    #[arg(long = "url", global = true, help_heading = GLOBAL, value_name = "STORE=URL")]
    pub urls: Vec<String>,

    /// Output for people (text) or one JSON document on stdout (json)
    #[arg(long, global = true, help_heading = GLOBAL, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// More detail on stderr: -v steps and timings, -vv debug, -vvv trace (RUST_LOG also works)
    #[arg(short, long, global = true, help_heading = GLOBAL, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Colour: auto (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE forces it),
    /// always or never
    #[arg(long, global = true, help_heading = GLOBAL, value_enum, default_value_t = ColorArg::Auto, value_name = "WHEN")]
    pub color: ColorArg,

    /// Only errors on stderr
    #[arg(short, long, global = true, help_heading = GLOBAL, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// The `--help` heading of the flags every command accepts.
const GLOBAL: &str = "Global options";

/// `--color`: the parser's spelling of [`crate::output::Colour`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

impl ColorArg {
    pub fn choice(self) -> crate::output::Colour {
        match self {
            ColorArg::Auto => crate::output::Colour::Auto,
            ColorArg::Always => crate::output::Colour::Always,
            ColorArg::Never => crate::output::Colour::Never,
        }
    }
}

/// `--format`: the parser's spelling of [`crate::output::Format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

impl GlobalArgs {
    /// What these flags (and the URLs [`parse`] collected) ask of a run, for
    /// [`crate::context::Context::load`], which knows nothing of the parser.
    pub fn invocation(&self, urls: Vec<GivenUrl>) -> Invocation {
        Invocation {
            config: self.config.clone(),
            profile: self.profile.clone(),
            urls,
            format: match self.format {
                Format::Text => crate::output::Format::Text,
                Format::Json => crate::output::Format::Json,
            },
            verbose: self.verbose,
            quiet: self.quiet,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Status(commands::status::StatusArgs),
    Migrate(commands::migrate::MigrateArgs),
    Adopt(commands::adopt::AdoptArgs),
    Repair(commands::repair::RepairArgs),
    Verify(commands::verify::VerifyArgs),
    Reset(commands::reset::ResetArgs),
    Backup(commands::backup::BackupArgs),
    Backups(commands::backups::BackupsArgs),
    Restore(commands::restore::RestoreArgs),
    Revert(commands::revert::RevertArgs),
    Recover(commands::recover::RecoverArgs),
    Smoke(commands::smoke::SmokeArgs),
    Diff(commands::diff::DiffArgs),
    Lint(commands::lint::LintArgs),
    Generate(commands::generate::GenerateArgs),
    Squash(commands::squash::SquashArgs),
    Schema(commands::schema::SchemaArgs),
    Completions(commands::completions::CompletionsArgs),
}

/// The command line for `stores`: [`Cli`] with `--store`'s possible values and one
/// `--<store>-url` flag per store (an alias of `--url <store>=URL`) taken from the list.
pub fn command(stores: &[&Store]) -> clap::Command {
    let names: Vec<&'static str> = stores.iter().map(|s| s.name).collect();
    let mut cmd = Cli::command();
    for store in stores {
        let id = shared::config::url_key(store.name);
        let long = id.replace('_', "-");
        cmd = cmd.arg(
            Arg::new(id)
                .long(long)
                .global(true)
                .help_heading(GLOBAL)
                .value_name("URL")
                .help(format!(
                    "URL of the {} database (--url {}=URL) [env: {}]",
                    store.name,
                    store.name,
                    shared::config::env_var(store.name)
                )),
        );
    }
    let subcommands: Vec<String> = cmd
        .get_subcommands()
        .filter(|c| c.get_arguments().any(|a| a.get_id() == "store"))
        .map(|c| c.get_name().to_string())
        .collect();
    for name in subcommands {
        let names = names.clone();
        cmd = cmd.mut_subcommand(name, move |sub| {
            sub.mut_arg("store", move |arg| {
                arg.value_parser(PossibleValuesParser::new(names))
            })
        });
    }
    cmd
}

/// Parses `args` against [`command`]`(stores)`: the command, and every URL given on the
/// command line.
pub fn parse(
    stores: &[&Store],
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<(Cli, Vec<GivenUrl>), clap::Error> {
    let mut cmd = command(stores);
    let mut matches = cmd.try_get_matches_from_mut(args)?;
    let mut urls = Vec::new();
    for store in stores {
        let id = shared::config::url_key(store.name);
        if let Some(url) = matches.get_one::<String>(&id) {
            let flag = format!("--{}", id.replace('_', "-"));
            urls.push(GivenUrl {
                store: store.name.to_string(),
                url: url.clone(),
                flag,
            });
        }
    }
    let cli = Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut cmd))?;
    for given in &cli.global.urls {
        let Some((store, url)) = given.split_once('=') else {
            return Err(cmd.error(
                clap::error::ErrorKind::InvalidValue,
                format!(
                    "--url takes STORE=URL, got {:?}",
                    shared::url::redact_in_text(given)
                ),
            ));
        };
        if !stores.iter().any(|s| s.name == store) {
            return Err(cmd.error(
                clap::error::ErrorKind::InvalidValue,
                format!(
                    "--url names no store {:?}; the stores are: {}",
                    shared::url::redact_in_text(store),
                    stores.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        urls.push(GivenUrl {
            store: store.to_string(),
            url: url.to_string(),
            flag: format!("--url {store}="),
        });
    }
    Ok((cli, urls))
}
