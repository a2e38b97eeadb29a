//! SIGINT/SIGTERM. The first asks the run to stop after the current step
//! settles (the executor checks between steps, records the phase in the
//! journal and releases the lock). The second stops the current step now:
//! the helm process groups telltale started are killed, the step is
//! abandoned, and the phase is still recorded as interrupted and the lock
//! released. Only a third exits at once.
//!
//! Also here: the registry of helm process groups, so a second interrupt
//! or a panic can kill the helm that is running (helm runs in its own group
//! so the terminal's Ctrl-C reaches telltale only).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

#[derive(Default)]
struct State {
    signals: AtomicU8,
    hard: Notify,
}

#[derive(Clone, Default)]
pub struct Interrupt(Arc<State>);

/// Which interrupt arrived, for the terminal layer to say what happens now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The current step finishes, then the run stops.
    First,
    /// helm and the current step stop now; the phase is still recorded.
    Second,
    /// telltale exits at once.
    Third,
}

impl Notice {
    pub fn message(self) -> &'static str {
        match self {
            Notice::First => {
                "interrupted: finishing the current step, then stopping (again to stop now)"
            }
            Notice::Second => {
                "second interrupt: stopping helm and the current step now; recording \
                 the phase and releasing the lock (again to exit at once)"
            }
            Notice::Third => {
                "third interrupt: exiting; the journal may not record the current step \
                 and the lock expires on its own (or see `telltale unlock`)"
            }
        }
    }
}

impl Interrupt {
    /// Starts listening; must be called inside the tokio runtime. `notice`
    /// tells the user (the terminal layer's; this module prints nothing).
    pub fn listen(notice: fn(Notice)) -> Interrupt {
        let flag = Interrupt::default();
        let inner = flag.0.clone();
        tokio::spawn(async move {
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                match inner.signals.fetch_add(1, Ordering::SeqCst) {
                    0 => notice(Notice::First),
                    1 => {
                        notice(Notice::Second);
                        // Wake the executor before helm dies, so the step is seen
                        // as abandoned rather than as a failed helm.
                        inner.hard.notify_waiters();
                        kill_helm_groups();
                    }
                    _ => {
                        kill_helm_groups();
                        notice(Notice::Third);
                        std::process::exit(130);
                    }
                }
            }
        });
        flag
    }

    pub fn is_set(&self) -> bool {
        self.0.signals.load(Ordering::SeqCst) > 0
    }

    /// Whether a second interrupt arrived (its helm was killed).
    pub fn is_hard(&self) -> bool {
        self.0.signals.load(Ordering::SeqCst) >= 2
    }

    /// Resolves once a second interrupt arrived (at once if it already has).
    pub async fn hard(&self) {
        let notified = self.0.hard.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.0.signals.load(Ordering::SeqCst) >= 2 {
            return;
        }
        notified.await;
    }
}

static HELM_GROUPS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// A running helm's process group, registered while it lives.
pub struct HelmGroup(Option<u32>);

impl HelmGroup {
    /// Registers the group led by `pid` (helm is spawned with
    /// `process_group(0)`, so its group id is its pid).
    pub fn track(pid: Option<u32>) -> HelmGroup {
        if let (Some(pid), Ok(mut groups)) = (pid, HELM_GROUPS.lock()) {
            groups.insert(pid);
        }
        HelmGroup(pid)
    }
}

impl Drop for HelmGroup {
    fn drop(&mut self) {
        if let (Some(pid), Ok(mut groups)) = (self.0, HELM_GROUPS.lock()) {
            groups.remove(&pid);
        }
    }
}

/// SIGKILL to every helm process group telltale started and that is still
/// registered (helm's own children go with it).
pub fn kill_helm_groups() {
    let groups: Vec<u32> = match HELM_GROUPS.lock() {
        Ok(groups) => groups.iter().copied().collect(),
        Err(_) => return,
    };
    for pid in groups.into_iter().filter(|pid| *pid > 1) {
        // kill(1) with a negative id names the group (the crate forbids
        // `unsafe`, so no libc::kill); a group already gone is fine.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
