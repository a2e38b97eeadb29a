//! How one question gets its answer: the flag, a prompt, or a fallback,
//! and the list of flags that were needed when nobody could be asked.

use crate::error::CommandError;
use crate::init::InitError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// A terminal and no --yes: prompt.
    Ask,
    /// --yes: take every default, detected ones included.
    Defaults,
    /// No terminal and no --yes: take safe defaults, refuse to guess the rest.
    Refuse,
}

/// What an unasked question falls back to.
pub(super) enum Fallback<T> {
    /// Taken whenever the question is not asked.
    Safe(T),
    /// Detected (the current context, a profile picked for it): taken with --yes only.
    Detected(T),
    /// No default: the flag is required when nobody can be asked.
    Required,
}

impl<T> Fallback<T> {
    fn value(self) -> Option<T> {
        match self {
            Fallback::Safe(v) | Fallback::Detected(v) => Some(v),
            Fallback::Required => None,
        }
    }
}

/// Collects the answers no flag gave and nobody could be asked for.
pub(super) struct Answering {
    pub(super) mode: Mode,
    pub(super) missing: Vec<String>,
}

impl Answering {
    pub(super) fn get<T>(
        &mut self,
        flag: Option<T>,
        flag_name: &str,
        fallback: Fallback<T>,
        ask: impl FnOnce(Option<T>) -> Result<T, CommandError>,
    ) -> Result<Option<T>, CommandError> {
        if flag.is_some() {
            return Ok(flag);
        }
        match (self.mode, fallback) {
            (Mode::Ask, fallback) => ask(fallback.value()).map(Some),
            (_, Fallback::Safe(v)) | (Mode::Defaults, Fallback::Detected(v)) => Ok(Some(v)),
            _ => {
                self.missing.push(flag_name.to_string());
                Ok(None)
            }
        }
    }
}

pub(super) fn bad(e: InitError) -> CommandError {
    let err = CommandError::bad_input(e.message);
    match e.hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

/// Turns a wizard validator into dialoguer's shape.
pub(super) fn check<T>(f: fn(&str) -> Result<T, InitError>) -> impl Fn(&str) -> Result<(), String> {
    move |s| f(s).map(|_| ()).map_err(|e| e.message)
}

pub(super) fn non_empty(s: &str) -> Result<(), String> {
    if s.is_empty() {
        Err("an answer is needed".into())
    } else {
        Ok(())
    }
}
