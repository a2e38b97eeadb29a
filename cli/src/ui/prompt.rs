//! dialoguer prompts, one theme. Callers ask only when the run is
//! interactive (a terminal and no --yes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dialoguer::console::{Term, truncate_str};
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

/// Set by whichever of the two Ctrl-C paths says "interrupted" first: the
/// prompt's `Interrupted` error (raw mode reads Ctrl-C as a key) or the
/// SIGINT handler (console raises the signal too). The other stays quiet,
/// so the message is printed once.
static INTERRUPT_SAID: AtomicBool = AtomicBool::new(false);

const INTERRUPTED: &str = "interrupted; nothing was written";

fn failed(question: &str, e: dialoguer::Error) -> CommandError {
    // Ctrl-C arrives as a key in raw mode; the cursor dialoguer hid must come back.
    let _ = Term::stderr().show_cursor();
    let dialoguer::Error::IO(io) = &e;
    if io.kind() == std::io::ErrorKind::Interrupted {
        if INTERRUPT_SAID.swap(true, Ordering::SeqCst) {
            // The signal handler said it and is exiting with 130; give it
            // the moment it needs rather than printing a second message.
            std::thread::sleep(Duration::from_secs(2));
        }
        return CommandError::new(ErrorKind::Interrupted, INTERRUPTED);
    }
    CommandError::environment(format!("prompt `{question}` failed")).with_source(&e)
}

/// Rows a list may take: the terminal's height less the prompt, the
/// question above it and a margin, so the cursor never scrolls out of view
/// (dialoguer pages the rest).
fn list_rows() -> usize {
    let (rows, _) = Term::stderr().size();
    usize::from(rows).saturating_sub(4).max(3)
}

/// Items cut to the terminal's width: a wrapped item takes two lines that
/// dialoguer does not count, and they stay on screen as stale lines.
fn fitted(items: &[String]) -> Vec<String> {
    let (_, cols) = Term::stderr().size();
    // The theme's marks ("  [x] ", "> ") take up to 6 columns.
    let width = usize::from(cols).saturating_sub(7).max(20);
    items
        .iter()
        .map(|i| truncate_str(i, width, "…").into_owned())
        .collect()
}

/// One of `items`; `default` is pre-selected.
pub fn select(question: &str, items: &[String], default: usize) -> Result<usize, CommandError> {
    Select::with_theme(&ColorfulTheme::default())
        .with_prompt(question)
        .items(fitted(items))
        .default(default)
        .max_length(list_rows())
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
        .items(fitted(items))
        .defaults(ticked)
        .max_length(list_rows())
        .report(false)
        .interact()
        .map_err(|e| failed(question, e))?;
    let chosen: Vec<&str> = picked
        .iter()
        .filter_map(|i| names.get(*i).copied())
        .collect();
    let mut line = String::new();
    let _ = theme.format_multi_select_prompt_selection(&mut line, question, &chosen);
    let _ = Term::stderr().write_line(&line);
    Ok(picked)
}

/// A line of text. With a default, Enter takes it; `optional` lets an empty
/// answer through; `check` turns a bad answer into a message and asks again.
/// Enter on a required question without a default says an answer is needed
/// (dialoguer alone would silently wait).
pub fn text(
    question: &str,
    default: Option<&str>,
    optional: bool,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<String, CommandError> {
    let theme = ColorfulTheme::default();
    let mut input = Input::<String>::with_theme(&theme)
        .with_prompt(question)
        .allow_empty(true)
        .validate_with(move |s: &String| -> Result<(), String> {
            match (s.trim().is_empty(), optional) {
                (true, true) => Ok(()),
                (true, false) => Err("an answer is needed here (Ctrl-C stops init)".into()),
                (false, _) => check(s.trim()),
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
    let _ = Term::stderr().write_line(&format!("{} {text}", dialoguer::console::style("✘").red()));
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
                if INTERRUPT_SAID.swap(true, Ordering::SeqCst) {
                    // The prompt's error path says it and exits 130.
                    return;
                }
                let _ = Term::stderr().show_cursor();
                super::stderr_line(format_args!("\n{INTERRUPTED}"));
                std::process::exit(130);
            }
        });
    });
}
