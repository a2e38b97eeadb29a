//! Progress of a phased run on stderr: with a terminal, one indicatif line
//! per phase (spinner, elapsed time, current step); without one, plain
//! timestamped lines a CI log keeps readable.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Printer;
use crate::model::Phase;

enum Mode {
    Bars(MultiProgress),
    Lines,
    Silent,
}

pub struct Progress {
    mode: Mode,
    bars: Mutex<HashMap<Phase, ProgressBar>>,
}

impl Progress {
    pub fn new(printer: &Printer) -> Progress {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let mode = if printer.quiet {
            Mode::Silent
        } else if tty && !printer.is_json() {
            Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Mode::Lines
        };
        Progress {
            mode,
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn stamp() -> String {
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
    }

    pub fn phase_started(&self, phase: Phase, text: &str) {
        match &self.mode {
            Mode::Bars(multi) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner:.cyan} {prefix:<12} {elapsed:>4} {msg}")
                        .expect("template parses"),
                );
                bar.set_prefix(phase.name());
                bar.set_message(text.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                self.bars.lock().unwrap().insert(phase, bar);
            }
            Mode::Lines => super::stderr_line(format_args!("{} {phase}: {text}", Self::stamp())),
            Mode::Silent => {}
        }
    }

    pub fn step(&self, phase: Phase, text: &str) {
        match &self.mode {
            Mode::Bars(_) => {
                if let Some(bar) = self.bars.lock().unwrap().get(&phase) {
                    bar.set_message(text.to_string());
                }
            }
            Mode::Lines => super::stderr_line(format_args!("{} {phase}: {text}", Self::stamp())),
            Mode::Silent => {}
        }
    }

    pub fn phase_finished(&self, phase: Phase, ok: bool, text: &str) {
        match &self.mode {
            Mode::Bars(multi) => {
                let bar = self.bars.lock().unwrap().remove(&phase);
                let mark = if ok { "✓" } else { "✗" };
                match bar {
                    Some(bar) => {
                        bar.set_style(
                            ProgressStyle::with_template("{prefix:.bold} {msg}")
                                .expect("template parses"),
                        );
                        bar.set_prefix(format!("{mark} {:<12}", phase.name()));
                        bar.finish_with_message(text.to_string());
                    }
                    None => {
                        let _ = multi.println(format!("{mark} {:<12} {text}", phase.name()));
                    }
                }
            }
            Mode::Lines => super::stderr_line(format_args!("{} {phase}: {text}", Self::stamp())),
            Mode::Silent => {}
        }
    }

    /// A message outside any phase.
    pub fn note(&self, text: &str) {
        match &self.mode {
            Mode::Bars(multi) => {
                let _ = multi.println(text);
            }
            Mode::Lines => super::stderr_line(format_args!("{} {text}", Self::stamp())),
            Mode::Silent => {}
        }
    }
}

/// verify's progress line while checks wait: which are still running and
/// how long until the deadline, rewritten in place on a terminal only.
pub struct WaitLine {
    enabled: bool,
}

impl WaitLine {
    pub fn new(printer: &super::Printer) -> WaitLine {
        WaitLine {
            enabled: !printer.is_json()
                && !printer.quiet
                && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }
}

impl crate::verify::Progress for WaitLine {
    fn waiting(&self, pending: &[crate::verify::CheckId], left: std::time::Duration) {
        use std::io::Write as _;
        if !self.enabled {
            return;
        }
        let names: Vec<&str> = pending.iter().map(|c| c.name()).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K  waiting for {} — {}s left",
            names.join(", "),
            left.as_secs()
        );
        let _ = err.flush();
    }

    fn finished(&self) {
        use std::io::Write as _;
        if self.enabled {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
