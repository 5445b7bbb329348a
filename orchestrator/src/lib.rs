//! The orchestrator: one module per command, composed from the stores' descriptions. It
//! holds no SQL of its own; the stores and `shared` do.

pub mod backup;
pub mod cli;
pub mod commands;
pub mod consequences;
pub mod context;
pub mod cross_store;
pub mod drift;
pub mod exit;
pub mod fault;
pub mod guard;
pub mod identity;
pub mod interrupt;
pub mod lock;
mod logging;
pub mod output;
pub mod pgtools;
pub mod preflight;
pub mod progress;
pub mod rebuild;
pub mod recovery;
mod recovery_apply;
pub mod run_record;
pub mod shadow;
pub mod squash_journal;
pub mod stores;
pub mod workspace;

use std::ffi::OsString;

use shared::store::Store;

use crate::cli::{Cli, Command};
use crate::context::Context;
use crate::exit::{CliResult, Exit};

/// Parses `args`, runs the command on the registry's stores ([`stores::STORES`]) and
/// returns the exit code, printing any error as one line on stderr (with its causes under
/// `-v`).
pub fn main_entry(args: impl IntoIterator<Item = OsString>) -> i32 {
    main_with(stores::STORES, args)
}

/// [`main_entry`] on any list of stores: the engine knows no store but those it is given
/// (a test runs it on a third store of its own).
pub fn main_with(
    stores: &'static [&'static Store],
    args: impl IntoIterator<Item = OsString>,
) -> i32 {
    let args: Vec<OsString> = args.into_iter().collect();
    let (cli, urls) = match cli::parse(stores, args.iter().cloned()) {
        Ok(parsed) => parsed,
        Err(e) => {
            use clap::error::ErrorKind;
            // Help and version go to stdout (exit 0); help shown for a missing command stays
            // whole; any other mistake on the command line is one line, like every error.
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
            } else {
                let line = one_line_usage_error(&e.render().to_string());
                eprintln!("error: {line}");
                if asks_for_json(&args) {
                    output::json_error(&line, Exit::Usage.code());
                }
            }
            return if e.use_stderr() {
                Exit::Usage.code()
            } else {
                Exit::Ok.code()
            };
        }
    };
    output::set_colour(cli.global.color.choice());
    logging::init(cli.global.verbose, cli.global.quiet);
    match run(stores, &cli, urls) {
        Ok(()) => Exit::Ok.code(),
        Err(_) if interrupt::interrupted() => {
            // The Ctrl-C handler is cleaning up (scratch databases, a partial backup set)
            // and exits with 130.
            loop {
                std::thread::park();
            }
        }
        Err(e) => {
            eprintln!("error: {}", e.render(cli.global.verbose > 0));
            if cli.global.format == cli::Format::Json {
                output::json_error(&e.render(false), e.exit.code());
            }
            e.exit.code()
        }
    }
}

/// Whether a command line that did not parse asked for JSON (`--format json` or
/// `--format=json` anywhere), so that its usage error is a JSON document too.
fn asks_for_json(args: &[OsString]) -> bool {
    let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    args.contains(&"--format=json")
        || args
            .windows(2)
            .any(|w| w[0] == "--format" && w[1] == "json")
}

/// clap's usage error (a message, a tip, a usage block, a pointer to `--help`) as one line:
/// the message and tip kept, the usage block replaced by the pointer.
fn one_line_usage_error(rendered: &str) -> String {
    let mut line = String::new();
    for part in rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
    {
        let part = part.strip_prefix("error: ").unwrap_or(part);
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(part);
    }
    line.push_str(" (see --help)");
    line
}

/// Runs a parsed command line on `stores`, with the URLs its flags gave (see
/// [`cli::parse`]).
pub fn run(
    stores: &'static [&'static Store],
    cli: &Cli,
    urls: Vec<shared::config::GivenUrl>,
) -> CliResult {
    if let Command::Completions(args) = &cli.command {
        return commands::completions::run(cli::command(stores), args);
    }
    let ctx = Context::load(stores, cli.global.invocation(urls))?;
    if let Some(plan) = cli::needs::plan(&ctx, &cli.command)? {
        preflight::check(&ctx, &plan)?;
    }
    match &cli.command {
        Command::Status(args) => commands::status::run(&ctx, args),
        Command::Migrate(args) => commands::migrate::run(&ctx, args),
        Command::Adopt(args) => commands::adopt::run(&ctx, args),
        Command::Repair(args) => commands::repair::run(&ctx, args),
        Command::Verify(args) => commands::verify::run(&ctx, args),
        Command::Reset(args) => commands::reset::run(&ctx, args),
        Command::Backup(args) => commands::backup::run(&ctx, args),
        Command::Backups(args) => commands::backups::run(&ctx, args),
        Command::Restore(args) => commands::restore::run(&ctx, args),
        Command::Revert(args) => commands::revert::run(&ctx, args),
        Command::Recover(args) => commands::recover::run(&ctx, args),
        Command::Smoke(args) => commands::smoke::run(&ctx, args),
        Command::Diff(args) => commands::diff::run(&ctx, args),
        Command::Lint(args) => commands::lint::run(&ctx, args),
        Command::Generate(args) => commands::generate::run(&ctx, args),
        Command::Squash(args) => commands::squash::run(&ctx, args),
        Command::Schema(args) => commands::schema::run(&ctx, args),
        Command::Completions(_) => Ok(()),
    }
}
