//! clap's own usage errors (an unknown flag, a missing value) as the JSON
//! error document when `-o json` was asked for: a script reading stdout gets
//! one document whatever failed, not text it cannot parse.

use std::ffi::OsString;

use clap::error::ErrorKind as ClapKind;

use crate::error::CommandError;

/// Print clap's error (stderr, or stdout for --help/--version) and exit with
/// its code; with `-o json` on the command line, the JSON document first.
pub fn exit_with(error: clap::Error, args: impl IntoIterator<Item = OsString>) -> ! {
    let informational = matches!(
        error.kind(),
        ClapKind::DisplayHelp
            | ClapKind::DisplayVersion
            | ClapKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !informational && json_requested(args) {
        let document = super::error_document(&to_command_error(&error));
        println!(
            "{}",
            serde_json::to_string_pretty(&document).unwrap_or_else(|_| "null".into())
        );
    }
    error.exit()
}

/// The parse failed, so the flag is found by hand: `-o json`, `-ojson`,
/// `-o=json`, `--output json`, `--output=json`, before any `--`.
fn json_requested(args: impl IntoIterator<Item = OsString>) -> bool {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .take_while(|a| a != "--")
        .collect();
    args.iter().enumerate().any(|(i, a)| {
        let next_is_json = || args.get(i + 1).is_some_and(|n| n == "json");
        match a.as_str() {
            "-o" | "--output" => next_is_json(),
            other => ["-ojson", "-o=json", "--output=json"].contains(&other),
        }
    })
}

/// clap renders `error: <message>`, usage, and `tip:` lines; the message
/// and the tips are what a script needs.
fn to_command_error(error: &clap::Error) -> CommandError {
    let rendered = error.render().to_string();
    let mut lines = rendered.lines().map(str::trim);
    let message = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string();
    let tips: Vec<&str> = lines.filter_map(|l| l.strip_prefix("tip: ")).collect();
    let error = CommandError::bad_input(message);
    if tips.is_empty() {
        error
    } else {
        error.with_hint(tips.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn finds_every_spelling_of_json_output_before_the_separator() {
        for yes in [
            "telltale plan -o json --nope",
            "telltale -ojson plan",
            "telltale plan --output=json",
            "telltale plan --output json",
            "telltale plan -o=json",
        ] {
            assert!(json_requested(args(yes)), "{yes}");
        }
        for no in [
            "telltale plan --nope",
            "telltale plan -o text",
            "telltale plan -- -o json",
            "telltale plan -o",
        ] {
            assert!(!json_requested(args(no)), "{no}");
        }
    }
}
