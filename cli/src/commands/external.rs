//! Executable plugins: `telltale NAME …` runs `telltale-NAME …` from PATH,
//! like cargo and kubectl plugins.
//!
//! The plugin gets the remaining arguments untouched, the terminal (stdin,
//! stdout, stderr inherited) and `TELLTALE` set to this binary, so it can
//! call back (`$TELLTALE plan -o json`). Its exit code is ours. A name with
//! no such executable is a usage error (exit 2) with a did-you-mean over the
//! built-in commands and the plugins found on PATH.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;

use super::Cli;
use crate::error::CommandError;
use crate::model::suggest::did_you_mean;

/// The prefix of an executable plugin's file name.
pub const PREFIX: &str = "telltale-";

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

/// `telltale-NAME` in a PATH directory, when it is an executable file.
pub fn find(name: &str, path_var: &OsStr) -> Option<PathBuf> {
    if name.is_empty() || name.contains(['/', '\\']) {
        return None;
    }
    std::env::split_paths(path_var)
        .map(|dir| dir.join(format!("{PREFIX}{name}{}", std::env::consts::EXE_SUFFIX)))
        .find(|candidate| is_executable(candidate))
}

/// The names of the executable plugins on PATH (`telltale-NAME` → `NAME`), sorted.
pub fn discover(path_var: &OsStr) -> Vec<String> {
    let mut names = BTreeSet::new();
    for dir in std::env::split_paths(path_var) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().to_string();
            let Some(name) = file.strip_prefix(PREFIX) else {
                continue;
            };
            let name = name.trim_end_matches(std::env::consts::EXE_SUFFIX);
            if !name.is_empty() && is_executable(&entry.path()) {
                names.insert(name.to_string());
            }
        }
    }
    names.into_iter().collect()
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

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
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
    fn names_with_path_separators_are_never_looked_up() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find("../x", dir.path().as_os_str()), None);
        assert_eq!(find("", dir.path().as_os_str()), None);
    }

    #[test]
    fn unknown_command_suggests_a_builtin() {
        let e = unknown("plna", OsStr::new(""));
        assert_eq!(e.message, "unknown command `plna`");
        assert_eq!(e.hint.as_deref(), Some("did you mean `plan`?"));
        assert_eq!(e.exit_code(), 2);
    }
}
