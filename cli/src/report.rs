//! How a use case tells the user what is happening while it runs (uv's
//! `Reporter` shape): the use cases (`install`, `verify`, `gitops`, `fleet`)
//! call this trait and never print; `ui::reporter::Terminal` implements it
//! on the terminal, and a test can implement it to record what was said.
//!
//! The final result of a use case is not reported here: it is the typed
//! report the use case returns, which the command prints.

use crate::install::interrupt::Notice;
use crate::model::Phase;

/// verify's waiting line ([`crate::verify::Progress`]) is part of it, so a
/// use case hands the same reporter to the checks.
pub trait Reporter: crate::verify::Progress + Send + Sync {
    /// A phase of `up` or `down` starts.
    fn phase_started(&self, phase: Phase, text: &str);
    /// What the running phase does now.
    fn step(&self, phase: Phase, text: &str);
    /// A phase ended (or was found unchanged).
    fn phase_finished(&self, phase: Phase, ok: bool, text: &str);
    /// A progress message outside any phase ("resuming: …").
    fn note(&self, text: &str);
    /// Something the user should know that does not stop the run.
    fn warn(&self, text: &str);
    /// A status line (hidden with `-q`).
    fn status(&self, text: &str);
    /// A status line shown only with `-v`.
    fn detail(&self, text: &str);
    /// Where a fleet's child processes' stderr lines go as they come
    /// (already prefixed with the cluster); None: not shown (`-q`). A
    /// function, as the relaying tasks outlive any borrow.
    fn relay(&self) -> Option<fn(&str)>;
    /// A fleet run's own notice (an interrupt passed on), always shown.
    fn fleet_notice(&self) -> fn(&str);
    /// What an interrupt of the run does now. A function, not a method:
    /// the signal task outlives any borrow of the reporter.
    fn interrupt_notice(&self) -> fn(Notice);
}
