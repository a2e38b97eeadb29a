//! The only terminal I/O: the printer, tables, warnings and error reports.

pub mod fleet;
pub mod progress;
pub mod prompt;
pub mod reporter;
pub mod table;
pub mod usage;
pub mod verify;

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::CommandError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
    /// The same document as `json`, written as YAML (as kubectl's `-o yaml`).
    Yaml,
}

impl OutputFormat {
    /// `document` (JSON) in this format; text is given as JSON.
    pub fn render(self, document: &serde_json::Value) -> String {
        match self {
            OutputFormat::Yaml => serde_saphyr::to_string(document)
                .map(|y| y.trim_end().to_string())
                .unwrap_or_else(|_| "null".into()),
            _ => serde_json::to_string_pretty(document).unwrap_or_else(|_| "null".into()),
        }
    }
}

/// Whether anything went to stdout, so an error never adds a second document.
static STDOUT_USED: AtomicBool = AtomicBool::new(false);

/// A line on stderr. `eprintln!` panics when stderr is a closed pipe
/// (`telltale status 2>&1 | true`); a message nobody can read is dropped.
pub fn stderr_line(text: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

/// What an interrupt of `up` or `down` does now, on stderr.
pub fn interrupt_notice(notice: crate::install::interrupt::Notice) {
    stderr_line(format_args!("{}", notice.message()));
}

/// A fleet run's own notice, or one line a cluster's telltale wrote to
/// its stderr (already prefixed with the cluster), on stderr as it comes.
pub fn fleet_line(text: &str) {
    stderr_line(format_args!("{text}"));
}

/// A `-v` line on stderr: the programs telltale starts, as they start.
pub fn trace(text: &str) {
    stderr_line(format_args!("  {text}"));
}

/// `{"ok": false, "error": {…}}`: the same words as the text report (which
/// never holds a secret), without the snippet, which quotes input.
pub fn error_document(error: &CommandError) -> serde_json::Value {
    serde_json::json!({
        "ok": false,
        "error": {
            "code": error.exit_code(),
            "kind": error.kind.name(),
            "message": redact_credentials(&error.message),
            "location": error.location,
            "path": error.key_path,
            "hint": error.hint.as_deref().map(redact_credentials),
            "causes": causes(error),
        }
    })
}

/// The causes worth printing, redacted: the first ones repeat the message
/// when a caller passed the error itself to `with_source`.
fn causes(error: &CommandError) -> Vec<String> {
    error
        .causes
        .iter()
        .skip_while(|c| **c == error.message)
        .map(|c| redact_credentials(c))
        .collect()
}

// Credentials in URLs and query strings, masked: the core's, so the
// cluster layer masks a kubeconfig server the same way.
pub use crate::secrets::redact_credentials;

/// Where a command's results and messages go. With JSON output stdout holds
/// exactly one document; everything else goes to stderr.
#[derive(Debug, Clone)]
pub struct Printer {
    pub format: OutputFormat,
    pub color: bool,
    pub quiet: bool,
    pub verbose: u8,
}

impl Printer {
    /// Whether stdout holds one machine-readable document (`-o json` or
    /// `-o yaml`) instead of text.
    pub fn is_json(&self) -> bool {
        matches!(self.format, OutputFormat::Json | OutputFormat::Yaml)
    }

    /// A result line on stdout. A closed pipe is not an error (`telltale … | head`).
    pub fn out(&self, text: &str) {
        STDOUT_USED.store(true, Ordering::Relaxed);
        let mut stdout = io::stdout().lock();
        let _ = writeln!(stdout, "{text}");
    }

    /// Bytes as they are on stdout (a completion script).
    pub fn raw(&self, bytes: &[u8]) {
        STDOUT_USED.store(true, Ordering::Relaxed);
        let _ = io::stdout().lock().write_all(bytes);
    }

    /// The command's document, as JSON or YAML per `-o`.
    pub fn json<T: serde::Serialize>(&self, value: &T) {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.out(&self.format.render(&value));
    }

    /// A document that already exists as JSON text (plan.json): verbatim
    /// with `-o json`, so it stays byte-identical to the file; converted with
    /// `-o yaml`.
    pub fn json_text(&self, text: &str) {
        match (self.format, serde_json::from_str::<serde_json::Value>(text)) {
            (OutputFormat::Yaml, Ok(value)) => self.out(&self.format.render(&value)),
            _ => self.out(text.trim_end()),
        }
    }

    /// A progress or status line on stderr, hidden with -q.
    pub fn status(&self, text: &str) {
        if !self.quiet {
            stderr_line(format_args!("{text}"));
        }
    }

    /// A warning often quotes an error (a lock not released, a context
    /// not read), so it is redacted as an error is.
    pub fn warn(&self, text: &str) {
        let text = redact_credentials(text);
        stderr_line(format_args!("{}: {text}", self.paint("warning", "33")));
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[1;{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// The error on stderr; with `-o json`, also as one JSON document on
    /// stdout, unless the command already printed its document there (a
    /// verify report with a failed check is the result, not a second error).
    pub fn report_error(&self, error: &CommandError) {
        if self.is_json() && !STDOUT_USED.load(Ordering::Relaxed) {
            self.json(&error_document(error));
        }
        let mut stderr = io::stderr().lock();
        let message = redact_credentials(&error.message);
        let _ = writeln!(stderr, "{}: {message}", self.paint("error", "31"));
        if let Some(snippet) = &error.snippet {
            let _ = writeln!(stderr, "{snippet}");
        }
        // jj's shape: one cause on the line, several numbered below.
        match causes(error).as_slice() {
            [] => {}
            [only] => {
                let _ = writeln!(stderr, "{} {only}", self.paint("Caused by:", "33"));
            }
            many => {
                let _ = writeln!(stderr, "{}", self.paint("Caused by:", "33"));
                for (i, cause) in many.iter().enumerate() {
                    let _ = writeln!(stderr, "{}: {cause}", i + 1);
                }
            }
        }
        if let Some(hint) = &error.hint {
            let hint = redact_credentials(hint);
            let _ = writeln!(stderr, "{}: {hint}", self.paint("hint", "36"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_error_lists_redacted_causes_after_the_message() {
        let mut e = CommandError::environment("reading on https://a:pw@h failed");
        e.causes = vec![
            "reading on https://a:pw@h failed".into(),
            "tcp connect error".into(),
            "for url (https://a:pw@h/x)".into(),
        ];
        let doc = error_document(&e);
        assert_eq!(doc["error"]["message"], "reading on https://***@h failed");
        assert_eq!(
            doc["error"]["causes"],
            serde_json::json!(["tcp connect error", "for url (https://***@h/x)"])
        );
    }
}
