//! The command-level error: what failed, why, the hint, and the exit code.
//!
//! Library errors carry their context; this type only sorts them into the
//! exit codes of the command-line contract and keeps the cause chain.

use std::fmt;

use crate::catalog::CatalogError;
use crate::cluster::ClusterError;
use crate::cluster::lock::LockError;
use crate::gitops::digest::{DigestError, KEY_ENV};
use crate::gitops::repo::GitError;
use crate::gitops::seal::SealError;
use crate::model::LocatedError;
use crate::outdir::OutDirError;
use crate::render::RenderError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A check or verification failed.
    Failed,
    /// Usage, profile, plugin or values error.
    BadInput,
    /// Cluster unreachable, tool missing, preflight, git/GitHub.
    Environment,
    /// The lock is held.
    Locked,
    Interrupted,
}

impl ErrorKind {
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Failed => 1,
            ErrorKind::BadInput => 2,
            ErrorKind::Environment => 3,
            ErrorKind::Locked => 4,
            ErrorKind::Interrupted => 130,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
    /// The offending source line, for located errors.
    pub snippet: Option<String>,
    /// `file:line:col` (and the key path) of a located error: a config file,
    /// a profile, or the flag (`--set #2`).
    pub location: Option<String>,
    /// The offending key's dotted path, when known.
    pub key_path: Option<String>,
}

impl CommandError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            causes: Vec::new(),
            hint: None,
            snippet: None,
            location: None,
            key_path: None,
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadInput, message)
    }

    pub fn environment(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Environment, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A library error as it is: its words are the message, its `source()`
    /// chain the causes (printed as `Caused by:` lines).
    pub fn from_error(kind: ErrorKind, error: &(dyn std::error::Error + 'static)) -> Self {
        let err = Self::new(kind, error.to_string());
        match error.source() {
            Some(source) => err.with_source(source),
            None => err,
        }
    }

    /// Appends `error` and its `source()` chain to the causes. A cause
    /// whose words already end the line before it (`#[error("…: {0}")]`
    /// over a `#[from]`) is not repeated.
    pub fn with_source(mut self, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut current = Some(error);
        while let Some(e) = current {
            let words = e.to_string();
            let before = self.causes.last().unwrap_or(&self.message);
            if !before.ends_with(&words) {
                self.causes.push(words);
            }
            current = e.source();
        }
        self
    }

    pub fn exit_code(&self) -> i32 {
        self.kind.exit_code()
    }
}

/// An error and its causes on one line (`what: why: why`), for the places
/// that keep a failure as text: a phase's error in the journal and the
/// report, a warning), or where a library's words need another's (reqwest's
/// own message is "error sending request"; the cause says why). A cause
/// whose words are already in the text (hyper and kube repeat their
/// source's) is skipped.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(cause) = current {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        current = cause.source();
    }
    text
}

impl ErrorKind {
    /// The kind's name in JSON error documents.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Failed => "failed",
            ErrorKind::BadInput => "bad_input",
            ErrorKind::Environment => "environment",
            ErrorKind::Locked => "locked",
            ErrorKind::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<LocatedError> for CommandError {
    fn from(e: LocatedError) -> Self {
        Self {
            kind: ErrorKind::BadInput,
            message: e.to_string(),
            causes: Vec::new(),
            hint: e.hint.clone(),
            snippet: e.snippet.clone(),
            location: Some(format!("{}:{}:{}", e.file, e.line, e.column)),
            key_path: e.key_path.clone(),
        }
    }
}

impl From<ClusterError> for CommandError {
    fn from(e: ClusterError) -> Self {
        let kind = if e.is_bad_input() {
            ErrorKind::BadInput
        } else {
            ErrorKind::Environment
        };
        let mut err = CommandError::from_error(kind, &e);
        err.hint = e.hint();
        err
    }
}

impl From<LockError> for CommandError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Held(holder) => CommandError::new(
                ErrorKind::Locked,
                format!("another telltale run holds the lock: {holder}"),
            )
            .with_hint("wait for it to finish; if it died, `telltale unlock` breaks the lock"),
            api @ LockError::Api(_) => CommandError::from_error(ErrorKind::Environment, &api),
        }
    }
}

impl From<OutDirError> for CommandError {
    /// A directory telltale may not replace is the user's to change (2);
    /// failing I/O is the environment (3).
    fn from(e: OutDirError) -> Self {
        let kind = if e.is_bad_input() {
            ErrorKind::BadInput
        } else {
            ErrorKind::Environment
        };
        let mut err = CommandError::from_error(kind, &e);
        err.hint = e.hint();
        err
    }
}

impl From<SealError> for CommandError {
    /// A sealing or encrypting tool missing or failing is the environment's
    /// (3); a secret source that cannot be read is bad input (2).
    fn from(e: SealError) -> Self {
        let kind = match e {
            SealError::Missing { .. } | SealError::Failed { .. } => ErrorKind::Environment,
            SealError::Source { .. } => ErrorKind::BadInput,
        };
        let mut err = CommandError::new(kind, e.to_string());
        err.hint = e.hint();
        err
    }
}

impl From<DigestError> for CommandError {
    /// No key for the content digest of sealed or encrypted Secrets.
    fn from(e: DigestError) -> Self {
        CommandError::environment("no key for the content digest")
            .with_source(&e)
            .with_hint(format!("set {KEY_ENV} (e.g. a CI secret), or HOME"))
    }
}

impl From<GitError> for CommandError {
    /// Every git failure is the environment's (3): a repository, a remote,
    /// a credential or git itself.
    fn from(e: GitError) -> Self {
        let mut err = CommandError::from_error(ErrorKind::Environment, &e);
        err.hint = e.hint().map(str::to_string);
        err
    }
}

impl From<CatalogError> for CommandError {
    fn from(e: CatalogError) -> Self {
        let hint = e.hint();
        match e {
            CatalogError::Invalid(located) => located.into(),
            CatalogError::Read { path, source } => {
                let mut err = CommandError::bad_input(format!("cannot read {path}: {source}"));
                err.hint = hint;
                err
            }
            other => {
                let mut err = CommandError::bad_input(other.to_string());
                err.hint = hint;
                err
            }
        }
    }
}

impl From<RenderError> for CommandError {
    fn from(e: RenderError) -> Self {
        let hint = e.hint();
        match e {
            RenderError::Invalid(located) => located.into(),
            RenderError::Catalog(c) => c.into(),
            other => {
                let mut err = CommandError::bad_input(other.to_string());
                err.hint = hint;
                err
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `#[error("…: {0}")]` over a `#[from]`: the shape that used to
    /// repeat its cause.
    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("cannot take the lock")]
        Clean(#[source] std::io::Error),
        #[error("cannot run helm: {0}")]
        Pasted(#[from] std::io::Error),
    }

    fn io() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused")
    }

    #[test]
    fn from_error_keeps_the_words_and_the_chain_once() {
        let e = CommandError::from_error(ErrorKind::Environment, &Outer::Clean(io()));
        assert_eq!(e.message, "cannot take the lock");
        assert_eq!(e.causes, ["connection refused"]);
        assert_eq!(e.exit_code(), 3);
        let e = CommandError::from_error(ErrorKind::Environment, &Outer::Pasted(io()));
        assert_eq!(e.message, "cannot run helm: connection refused");
        assert!(e.causes.is_empty(), "{:?}", e.causes);
        let e = CommandError::environment("no key").with_source(&Outer::Clean(io()));
        assert_eq!(e.causes, ["cannot take the lock", "connection refused"]);
    }

    #[test]
    fn chain_is_one_line_without_repeats() {
        assert_eq!(
            chain(&Outer::Clean(io())),
            "cannot take the lock: connection refused"
        );
        assert_eq!(
            chain(&Outer::Pasted(io())),
            "cannot run helm: connection refused"
        );
        // A cause quoted mid-sentence (hyper's and kube's shape) is not
        // repeated at the end either.
        #[derive(Debug, thiserror::Error)]
        #[error("client error ({0}) while connecting")]
        struct Quoted(#[source] std::io::Error);
        assert_eq!(
            chain(&Quoted(io())),
            "client error (connection refused) while connecting"
        );
    }

    #[test]
    fn a_cluster_error_keeps_its_kind_and_hint() {
        let e: CommandError = ClusterError::UnknownContext {
            name: "kind-teltale".into(),
            known: vec!["kind-telltale".into()],
        }
        .into();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(e.hint.as_deref(), Some("did you mean `kind-telltale`?"));
        let e: CommandError = ClusterError::NoCurrentContext.into();
        assert_eq!(e.exit_code(), 3);
    }
}
