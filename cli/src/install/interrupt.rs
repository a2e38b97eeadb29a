//! SIGINT/SIGTERM: the first asks the run to stop after the current step
//! settles (the executor checks between steps, records the phase in the
//! journal and releases the lock); a second one exits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::signal::unix::{SignalKind, signal};

#[derive(Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Starts listening; must be called inside the tokio runtime.
    pub fn listen() -> Interrupt {
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
                if inner.swap(true, Ordering::SeqCst) {
                    eprintln!(
                        "second interrupt: stopping now; the journal may not record the current step \
                         and the lock may remain (see `telltale unlock`)"
                    );
                    std::process::exit(130);
                }
                eprintln!(
                    "interrupted: finishing the current step, then stopping (again to stop now)"
                );
            }
        });
        flag
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
