//! `telltale completions SHELL`: the shell code that asks telltale itself
//! for completions (clap_complete's `COMPLETE=SHELL` protocol), so profile,
//! plugin and alert names and kubeconfig contexts complete with the values
//! this binary knows.

use clap::Args;
use clap_complete::Shell;
use clap_complete::env::EnvCompleter;

use crate::error::CommandError;
use crate::ui::Printer;

/// Print shell completions to stdout
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  source <(telltale completions bash)               # in ~/.bashrc\n  telltale completions zsh > \"${fpath[1]}/_telltale\"\n  telltale completions fish | source"
)]
pub struct CompletionsArgs {
    /// The shell to generate completions for
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs, printer: &Printer) -> Result<(), CommandError> {
    let shell: &dyn EnvCompleter = match args.shell {
        Shell::Bash => &clap_complete::env::Bash,
        Shell::Elvish => &clap_complete::env::Elvish,
        Shell::Fish => &clap_complete::env::Fish,
        Shell::PowerShell => &clap_complete::env::Powershell,
        Shell::Zsh => &clap_complete::env::Zsh,
        other => {
            return Err(CommandError::bad_input(format!(
                "completions for {other} are not supported"
            )));
        }
    };
    let mut out = Vec::new();
    // The completer is `telltale` as found on PATH when the shell completes,
    // so the script survives an upgrade of the binary.
    shell
        .write_registration("COMPLETE", "telltale", "telltale", "telltale", &mut out)
        .map_err(|e| CommandError::environment("writing the completions").with_source(&e))?;
    printer.raw(&out);
    Ok(())
}
