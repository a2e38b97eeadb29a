//! The terminal's [`Reporter`]: phases through indicatif's progress lines
//! (or timestamped lines without a terminal), warnings and status lines
//! through the printer, verify's waiting line on a terminal.

use super::Printer;
use super::progress::{Progress, WaitLine};
use crate::install::interrupt::Notice;
use crate::model::Phase;
use crate::report::Reporter;

pub struct Terminal<'a> {
    printer: &'a Printer,
    progress: Progress,
    waiting: WaitLine,
}

impl<'a> Terminal<'a> {
    pub fn new(printer: &'a Printer) -> Terminal<'a> {
        Terminal {
            printer,
            progress: Progress::new(printer),
            waiting: WaitLine::new(printer),
        }
    }
}

impl crate::verify::Progress for Terminal<'_> {
    fn waiting(&self, pending: &[crate::verify::CheckId], left: std::time::Duration) {
        self.waiting.waiting(pending, left);
    }

    fn finished(&self) {
        self.waiting.finished();
    }
}

impl Reporter for Terminal<'_> {
    fn phase_started(&self, phase: Phase, text: &str) {
        self.progress.phase_started(phase, text);
    }

    fn step(&self, phase: Phase, text: &str) {
        self.progress.step(phase, text);
    }

    fn phase_finished(&self, phase: Phase, ok: bool, text: &str) {
        self.progress.phase_finished(phase, ok, text);
    }

    fn note(&self, text: &str) {
        self.progress.note(text);
    }

    fn warn(&self, text: &str) {
        self.printer.warn(text);
    }

    fn status(&self, text: &str) {
        self.printer.status(text);
    }

    fn detail(&self, text: &str) {
        if self.printer.verbose > 0 {
            self.printer.status(text);
        }
    }

    fn relay(&self) -> Option<fn(&str)> {
        (!self.printer.quiet).then_some(super::fleet_line as fn(&str))
    }

    fn fleet_notice(&self) -> fn(&str) {
        super::fleet_line
    }

    fn interrupt_notice(&self) -> fn(Notice) {
        super::interrupt_notice
    }
}
