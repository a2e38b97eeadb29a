//! dialoguer prompts, one theme. Callers ask only when the run is
//! interactive (a terminal and no --yes).

use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Password};

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
