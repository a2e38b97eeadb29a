//! Executable plugins: `telltale NAME …` runs `telltale-NAME …` from PATH,
//! like cargo and kubectl plugins.
//!
//! The plugin gets the remaining arguments untouched, the terminal (stdin,
//! stdout, stderr inherited) and `TELLTALE` set to this binary, so it can
//! call back (`$TELLTALE plan -o json`). Its exit code is ours. A name with
//! no such executable is a usage error (exit 2) with a did-you-mean over the
//! built-in commands and the plugins found on PATH.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::Command;

use clap::CommandFactory;

use super::Cli;
use crate::error::CommandError;
use crate::executables::{PREFIX, discover, find};
use crate::model::suggest::did_you_mean;

pub fn run(args: Vec<OsString>) -> Result<(), CommandError> {
    let Some((name, rest)) = args.split_first() else {
        return Err(CommandError::bad_input("no command given")
            .with_hint("`telltale --help` lists the commands"));
    };
    let name = name.to_string_lossy().to_string();
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let Some(program) = find(&name, &path_var) else {
        return Err(unknown(&name, &path_var));
    };
    let mut command = Command::new(&program);
    command.args(rest);
    if let Ok(me) = std::env::current_exe() {
        command.env("TELLTALE", me);
    }
    exec(command, &program)
}

fn unknown(name: &str, path_var: &OsStr) -> CommandError {
    let builtin: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    let plugins = discover(path_var);
    let candidates = builtin.iter().chain(plugins.iter()).map(String::as_str);
    let hint = match did_you_mean(name, candidates) {
        Some(s) => format!("did you mean `{s}`?"),
        None if plugins.is_empty() => format!(
            "`telltale --help` lists the commands; an executable `{PREFIX}{name}` on PATH would run as `telltale {name}`"
        ),
        None => format!(
            "`telltale --help` lists the commands; executable plugins on PATH: {}",
            plugins.join(", ")
        ),
    };
    CommandError::bad_input(format!("unknown command `{name}`")).with_hint(hint)
}

/// Replaces this process with the plugin (kubectl does the same), so signals,
/// the terminal and the exit status are the plugin's own.
#[cfg(unix)]
fn exec(mut command: Command, program: &Path) -> Result<(), CommandError> {
    use std::os::unix::process::CommandExt;
    let error = command.exec();
    Err(CommandError::environment(format!(
        "could not run {}: {error}",
        program.display()
    )))
}

/// Without exec: run the plugin and leave with its exit code.
#[cfg(not(unix))]
fn exec(mut command: Command, program: &Path) -> Result<(), CommandError> {
    let status = command.status().map_err(|e| {
        CommandError::environment(format!("could not run {}", program.display())).with_source(&e)
    })?;
    // The plugin's exit code is the contract; there is nothing to clean up here.
    std::process::exit(status.code().unwrap_or(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_suggests_a_builtin() {
        let e = unknown("plna", OsStr::new(""));
        assert_eq!(e.message, "unknown command `plna`");
        assert_eq!(e.hint.as_deref(), Some("did you mean `plan`?"));
        assert_eq!(e.exit_code(), 2);
    }
}
