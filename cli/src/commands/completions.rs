//! `telltale completions SHELL`

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;
use crate::error::CommandError;

/// Print shell completions to stdout
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs) -> Result<(), CommandError> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "telltale", &mut std::io::stdout());
    Ok(())
}
