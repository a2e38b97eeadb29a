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

/// A [`Reporter`] that keeps what it was told, for tests of the use cases.
#[cfg(test)]
pub mod recording {
    use std::sync::Mutex;

    use super::Reporter;
    use crate::install::interrupt::Notice;
    use crate::model::Phase;

    #[derive(Default)]
    pub struct Recording {
        pub lines: Mutex<Vec<String>>,
    }

    impl Recording {
        fn push(&self, line: String) {
            self.lines.lock().unwrap().push(line);
        }

        pub fn said(&self) -> Vec<String> {
            self.lines.lock().unwrap().clone()
        }
    }

    fn ignore(_: Notice) {}
    fn drop_line(_: &str) {}

    impl crate::verify::Progress for Recording {
        fn waiting(&self, _: &[crate::verify::CheckId], _: std::time::Duration) {}
        fn finished(&self) {
            self.push("checks finished".into());
        }
    }

    impl Reporter for Recording {
        fn phase_started(&self, phase: Phase, text: &str) {
            self.push(format!("started {phase}: {text}"));
        }
        fn step(&self, phase: Phase, text: &str) {
            self.push(format!("step {phase}: {text}"));
        }
        fn phase_finished(&self, phase: Phase, ok: bool, text: &str) {
            self.push(format!("finished {phase} ok={ok}: {text}"));
        }
        fn note(&self, text: &str) {
            self.push(format!("note: {text}"));
        }
        fn warn(&self, text: &str) {
            self.push(format!("warn: {text}"));
        }
        fn status(&self, text: &str) {
            self.push(format!("status: {text}"));
        }
        fn detail(&self, text: &str) {
            self.push(format!("detail: {text}"));
        }
        fn relay(&self) -> Option<fn(&str)> {
            Some(drop_line)
        }
        fn fleet_notice(&self) -> fn(&str) {
            drop_line
        }
        fn interrupt_notice(&self) -> fn(Notice) {
            ignore
        }
    }
}
