//! How the install use cases' endings become the command's error: a failed
//! or interrupted run, and a journal that cannot be read.

use super::RunEnd;
use crate::cluster::journal;
use crate::error::{CommandError, ErrorKind};

/// A journal that cannot be read: exit 3 (the cluster's state is wrong, not
/// the command line), with the commands that recover.
pub fn journal_error(e: journal::JournalError, ns: &str, server: &str) -> CommandError {
    match e {
        journal::JournalError::Corrupt(_) => CommandError::environment(format!(
            "{e}; nothing was changed"
        ))
        .with_hint(format!(
            "inspect it with `kubectl -n {ns} get configmap {cm} -o yaml`; to recover, delete it \
             (`kubectl -n {ns} delete configmap {cm}`) and run `telltale up`, which re-applies \
             every phase and writes a new journal (then `telltale down` works again)",
            cm = journal::CONFIGMAP
        )),
        other => crate::session::cluster_error("reading the journal", server, other),
    }
}

/// How a run of phases ended, as the command's result.
pub fn end_to_result(end: RunEnd) -> Result<(), CommandError> {
    match end {
        RunEnd::Done => Ok(()),
        RunEnd::Failed { phase, error } => Err(CommandError::new(
            ErrorKind::Failed,
            format!("phase {phase} failed: {error}"),
        )
        .with_hint("fix the cause and run `telltale up` again: it resumes at this phase")),
        RunEnd::Interrupted { phase } => Err(CommandError::new(
            ErrorKind::Interrupted,
            format!("interrupted during phase {phase}; the journal records what was applied"),
        )
        .with_hint("`telltale up` resumes at this phase")),
    }
}
