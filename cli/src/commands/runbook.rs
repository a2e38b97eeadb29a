//! `telltale runbook ALERT`: print the runbook an alert links to.

use clap::Args;

use super::GlobalArgs;
use crate::error::CommandError;
use crate::model::suggest::did_you_mean;
use crate::runbooks::alert_runbooks;
use crate::ui::Printer;

/// Print the runbook of an alert (any built-in or --plugin-dir plugin)
#[derive(Debug, Args)]
pub struct RunbookArgs {
    /// The alert name, e.g. NodeDown
    #[arg(add = clap_complete::ArgValueCompleter::new(super::complete::alerts))]
    pub alert: String,
}

pub fn run(args: RunbookArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    let catalog = global.catalog()?;
    let alerts = alert_runbooks(&catalog)?;
    let Some((_, runbook, plugin)) = alerts.iter().find(|(a, _, _)| *a == args.alert) else {
        let hint = did_you_mean(&args.alert, alerts.iter().map(|(a, _, _)| a.as_str()))
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| "`telltale plugins show NAME` lists a plugin's alerts".into());
        return Err(
            CommandError::bad_input(format!("unknown alert `{}`", args.alert)).with_hint(hint),
        );
    };
    let text = catalog.plugins[plugin]
        .files
        .get(&format!("runbooks/{runbook}"))
        .or_else(|| catalog.runbooks.get(runbook))
        .ok_or_else(|| {
            CommandError::bad_input(format!(
                "alert `{}` links to {runbook}, which no plugin ships",
                args.alert
            ))
        })?;
    if printer.is_json() {
        printer.json(&serde_json::json!({"alert": args.alert, "runbook": runbook, "plugin": plugin, "markdown": text.text}));
    } else {
        printer.out(text.text.trim_end());
    }
    Ok(())
}
