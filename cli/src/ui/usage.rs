//! clap's own usage errors (an unknown flag, a missing value) as the JSON
//! (or YAML) error document when `-o json` (`-o yaml`) was asked for: a
//! script reading stdout gets one document whatever failed, not text it
//! cannot parse.

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
    if !informational && let Some(format) = document_requested(args) {
        let document = super::error_document(&to_command_error(&error));
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), "{}", format.render(&document));
    }
    error.exit()
}

/// The parse failed, so the flag is found by hand: `-o json`, `-ojson`,
/// `-o=json`, `--output json`, `--output=json` (and the same with yaml),
/// before any `--`.
fn document_requested(args: impl IntoIterator<Item = OsString>) -> Option<super::OutputFormat> {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .take_while(|a| a != "--")
        .collect();
    let format = |value: &str| match value {
        "json" => Some(super::OutputFormat::Json),
        "yaml" => Some(super::OutputFormat::Yaml),
        _ => None,
    };
    args.iter().enumerate().find_map(|(i, a)| match a.as_str() {
        "-o" | "--output" => args.get(i + 1).and_then(|n| format(n)),
        other => ["-o=", "--output=", "-o"]
            .iter()
            .find_map(|p| other.strip_prefix(p))
            .and_then(format),
    })
}

#[cfg(test)]
fn json_requested(args: impl IntoIterator<Item = OsString>) -> bool {
    document_requested(args) == Some(super::OutputFormat::Json)
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

    #[test]
    fn yaml_output_is_found_too() {
        for yes in [
            "telltale plan -o yaml --nope",
            "telltale -oyaml plan",
            "telltale plan --output=yaml",
        ] {
            assert_eq!(
                document_requested(args(yes)),
                Some(crate::ui::OutputFormat::Yaml),
                "{yes}"
            );
        }
    }
}
