//! dialoguer prompts, one theme. Callers ask only when the run is
//! interactive (a terminal and no --yes).

use dialoguer::theme::{ColorfulTheme, Theme};
use dialoguer::{Confirm, Input, MultiSelect, Password, Select};

use crate::error::{CommandError, ErrorKind};
use crate::secrets::Secret;

pub fn interactive(yes: bool) -> bool {
    !yes && std::io::IsTerminal::is_terminal(&std::io::stdin())
        && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// A secret typed at the terminal, never echoed.
pub fn secret(what: &str) -> Result<Secret, String> {
    Password::with_theme(&ColorfulTheme::default())
        .with_prompt(format!("Value for {what}"))
        .interact()
        .map(Secret::new)
        .map_err(|e| format!("{what}: prompt failed: {e}"))
}

/// The context name typed back, as kubectl-safe tools ask before acting on
/// production.
pub fn type_to_confirm(name: &str, what: &str) -> bool {
    Input::<String>::with_theme(&ColorfulTheme::default())
        .with_prompt(format!("{what}: type the context name `{name}` to go on"))
        .allow_empty(true)
        .interact_text()
        .is_ok_and(|typed| typed.trim() == name)
}

pub fn confirm(question: &str) -> bool {
    Confirm::with_theme(&ColorfulTheme::default())
        .with_prompt(question)
        .default(false)
        .interact()
        .unwrap_or(false)
}

// The wizard's questions (`telltale init`). Each returns the answer or the
// error that ended the prompt (no terminal, interrupted).

fn failed(question: &str, e: dialoguer::Error) -> CommandError {
    // Ctrl-C arrives as a key in raw mode; the cursor dialoguer hid must come back.
    let _ = dialoguer::console::Term::stderr().show_cursor();
    let dialoguer::Error::IO(io) = &e;
    if io.kind() == std::io::ErrorKind::Interrupted {
        return CommandError::new(ErrorKind::Interrupted, "interrupted; nothing was written");
    }
    CommandError::environment(format!("prompt `{question}` failed: {e}"))
}

/// One of `items`; `default` is pre-selected.
pub fn select(question: &str, items: &[String], default: usize) -> Result<usize, CommandError> {
    Select::with_theme(&ColorfulTheme::default())
        .with_prompt(question)
        .items(items)
        .default(default)
        .interact()
        .map_err(|e| failed(question, e))
}

/// Any of `items`, with `ticked` pre-ticked (space toggles, enter accepts).
/// The answer is reported by `names` (items may carry long descriptions).
pub fn multi_select(
    question: &str,
    items: &[String],
    names: &[&str],
    ticked: &[bool],
) -> Result<Vec<usize>, CommandError> {
    let theme = ColorfulTheme::default();
    let picked = MultiSelect::with_theme(&theme)
        .with_prompt(question)
        .items(items)
        .defaults(ticked)
        .report(false)
        .interact()
        .map_err(|e| failed(question, e))?;
    let chosen: Vec<&str> = picked
        .iter()
        .filter_map(|i| names.get(*i).copied())
        .collect();
    let mut line = String::new();
    let _ = theme.format_multi_select_prompt_selection(&mut line, question, &chosen);
    let _ = dialoguer::console::Term::stderr().write_line(&line);
    Ok(picked)
}

/// A line of text. With a default, Enter takes it; `optional` lets an empty
/// answer through; `check` turns a bad answer into a message and asks again.
pub fn text(
    question: &str,
    default: Option<&str>,
    optional: bool,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<String, CommandError> {
    let theme = ColorfulTheme::default();
    let mut input = Input::<String>::with_theme(&theme)
        .with_prompt(question)
        .allow_empty(optional)
        .validate_with(move |s: &String| -> Result<(), String> {
            if s.is_empty() && optional {
                Ok(())
            } else {
                check(s.trim())
            }
        });
    if let Some(d) = default {
        input = input.default(d.to_string());
    }
    input
        .interact_text()
        .map(|s| s.trim().to_string())
        .map_err(|e| failed(question, e))
}

pub fn yes_no(question: &str, default: bool) -> Result<bool, CommandError> {
    Confirm::with_theme(&ColorfulTheme::default())
        .with_prompt(question)
        .default(default)
        .interact()
        .map_err(|e| failed(question, e))
}

/// Why an answer cannot be taken, before the question is asked again.
pub fn problem(text: &str) {
    let _ = dialoguer::console::Term::stderr()
        .write_line(&format!("{} {text}", dialoguer::console::style("✘").red()));
}

/// Ctrl-C during the wizard: dialoguer restores the terminal mode and
/// raises SIGINT, but leaves the cursor hidden. Show it, say so, exit 130.
/// The handler is registered before this returns, so no early Ctrl-C is missed.
pub fn exit_cleanly_on_interrupt() {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    else {
        return;
    };
    let Ok(mut sigint) = runtime.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    }) else {
        return;
    };
    std::thread::spawn(move || {
        runtime.block_on(async {
            if sigint.recv().await.is_some() {
                let _ = dialoguer::console::Term::stderr().show_cursor();
                eprintln!("\ninterrupted; nothing was written");
                std::process::exit(130);
            }
        });
    });
}
