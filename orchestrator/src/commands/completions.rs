//! `orchestrator completions <shell>`: shell completion scripts.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::exit::CliResult;

/// Print a shell completion script.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  orchestrator completions bash > /etc/bash_completion.d/orchestrator"
)]
pub struct CompletionsArgs {
    /// The shell to generate completions for
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: &CompletionsArgs) -> CliResult {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "orchestrator", &mut std::io::stdout());
    Ok(())
}
