//! `telltale unlock`: break a stale lock after showing who holds it.

use clap::Args;

use super::GlobalArgs;
use super::access;
use crate::cluster::lock;
use crate::error::CommandError;
use crate::ui::{Printer, prompt};

/// Break the lock a crashed or killed run left behind. Shows the holder
/// first; asks unless --yes.
#[derive(Debug, Args)]
pub struct UnlockArgs {}

pub fn run(_args: UnlockArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    let namespace = access::namespace(global, None);
    let (target, config) = access::target_for_read(global)?;
    access::runtime()?.block_on(async {
        let kube = access::connect(target, config).await?;
        let server = kube.target.server.clone();
        let holder = lock::holder(&kube, &namespace)
            .await
            .map_err(|e| access::cluster_error("reading the lock", &server, e))?;
        let Some(holder) = holder else {
            printer.status(&format!("no lock held in namespace {namespace}"));
            if printer.is_json() {
                printer.json(&serde_json::json!({"broken": false, "holder": null}));
            }
            return Ok(());
        };
        printer.status(&format!("the lock in {namespace} is held by {holder}"));
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
        lock::break_lock(&kube, &namespace)
            .await
            .map_err(|e| access::cluster_error("deleting the lock", &server, e))?;
        if printer.is_json() {
            printer.json(&serde_json::json!({"broken": true, "holder": holder}));
        } else {
            printer.out(&format!("lock broken (was held by {holder})"));
        }
        Ok(())
    })
}
