//! `telltale unlock`: break a stale lock after showing who holds it.

use clap::Args;

use super::GlobalArgs;
use super::access::{self, ConfirmArgs};
use crate::error::CommandError;
use crate::ui::{Printer, prompt};

/// Break the lock a crashed or killed run left behind. Shows the holder
/// first; asks unless --yes. A lock whose holder still renews it (a run in
/// progress) is refused unless --force. Honours the config's pinned cluster
/// and asks for the context name on a production-looking one, as `up` does.
#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Break the lock even though its holder is still renewing it (the run
    /// may be alive: only when you know it is not)
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
}

pub fn run(args: UnlockArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    let rendered = access::optional_bundle(global)?;
    let namespace = access::namespace(global, rendered.as_ref());
    let chosen = access::target_for_write(global, rendered.as_ref(), &args.confirm, "unlock")?;
    // Two halves: the confirmation prompt comes between them, outside the
    // runtime.
    let runtime = crate::session::runtime()?;
    let (held, holder) = runtime.block_on(crate::install::unlock::inspect(chosen, &namespace))?;
    let Some(holder) = holder else {
        printer.status(&format!("no lock held in namespace {namespace}"));
        if printer.is_json() {
            printer.json(&serde_json::json!({"broken": false, "holder": null}));
        }
        return Ok(());
    };
    printer.status(&format!("the lock in {namespace} is held by {holder}"));
    if holder.live && !args.force {
        return Err(CommandError::new(
            crate::error::ErrorKind::Locked,
            "the lock is live: its holder is still renewing it, so that run is probably \
             still going; nothing was changed",
        )
        .with_hint(match holder.duration_seconds {
            Some(s) => format!(
                "wait for it to finish; a dead run's lock expires {s}s after its last renewal \
                 and the next `telltale up` takes it over. `--force` breaks it anyway"
            ),
            None => "this Lease has no duration (an older telltale wrote it) and never \
                     expires: make sure that run is gone, then pass --force"
                .to_string(),
        }));
    }
    if !global.yes {
        if !prompt::interactive(false) {
            return Err(CommandError::bad_input(
                "breaking a lock needs confirmation; nothing was changed",
            )
            .with_hint("make sure that run is gone, then pass --yes"));
        }
        if !prompt::confirm("Break it? Only do this if that run is gone") {
            return Err(CommandError::bad_input("not confirmed; the lock stays"));
        }
    }
    runtime.block_on(held.break_lock())?;
    if printer.is_json() {
        printer.json(&serde_json::json!({"broken": true, "holder": holder}));
    } else {
        printer.out(&format!("lock broken (was held by {holder})"));
    }
    Ok(())
}
