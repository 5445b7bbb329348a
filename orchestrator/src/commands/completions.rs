//! `orchestrator completions <shell>`: shell completion scripts.

use clap::Args;
use clap_complete::Shell;

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

/// Completes `cmd`, the whole command line (the stores' names and their `--STORE-url`
/// flags too).
pub fn run(mut cmd: clap::Command, args: &CompletionsArgs) -> CliResult {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "orchestrator", &mut script);
    crate::output::say_bytes(&script);
    Ok(())
}
