//! `telltale down`: uninstall in reverse phase order.

use clap::{ArgAction, Args};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams};

use super::GlobalArgs;
use super::access::{self, ConfirmArgs};
use super::up::{end_to_result, lock_error};
use crate::cluster::{journal, lock};
use crate::error::{CommandError, ErrorKind};
use crate::install::down::{AllowedReleases, DownOptions, Skipped, down};
use crate::install::interrupt::Interrupt;
use crate::install::{PhaseResult, RunEnd};
use crate::ui::reporter::Terminal;
use crate::ui::{Printer, prompt, table};

/// Remove what `up` installed, in reverse phase order: helm releases, then
/// the objects the journal recorded, then the journal. CRDs and persistent
/// volumes stay unless asked.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// Keep the CRDs telltale applied (their custom resources in other
    /// namespaces would go with them)
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true,
          default_missing_value = "true", value_name = "BOOL")]
    pub keep_crds: bool,
    /// Keep PersistentVolumeClaims and the namespace (metrics, logs,
    /// dashboards survive a reinstall)
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true,
          default_missing_value = "true", value_name = "BOOL")]
    pub keep_data: bool,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    ok: bool,
    context: &'a str,
    namespace: &'a str,
    phases: &'a [PhaseResult],
    /// Journal entries not deleted: outside the namespace, or without
    /// telltale's marks and this install's id.
    skipped: &'a [Skipped],
    namespace_deleted: bool,
}

pub fn run(args: DownArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    // The config (when there is one) says which context is allowed and
    // which namespace; down itself works from the journal.
    let rendered = access::optional_bundle(global)?;
    let pin = access::pin_of(rendered.as_ref());
    let namespace = access::namespace(global, rendered.as_ref());
    let (target, config) = access::target_for_write(global, &pin, &args.confirm, "down")?;
    if prompt::interactive(global.yes)
        && !prompt::confirm(&format!(
            "Remove the telltale stack from namespace {namespace} on {}?",
            target.context
        ))
    {
        return Err(CommandError::bad_input(
            "not confirmed; nothing was changed",
        ));
    }
    let releases: AllowedReleases = match &rendered {
        Some(bundle) => bundle
            .plan
            .releases
            .iter()
            .map(|r| r.name.clone())
            .collect(),
        None => global
            .catalog()?
            .plugins
            .iter()
            .filter_map(|(name, entry)| {
                let chart = entry.plugin.spec.chart.as_ref()?;
                Some(chart.release_name(name).to_string())
            })
            .collect(),
    };
    let options = DownOptions {
        keep_crds: args.keep_crds,
        keep_data: args.keep_data,
        releases,
    };
    access::runtime()?.block_on(async {
        let kube = access::connect(target, config).await?;
        let server = kube.target.server.clone();
        let progress = Terminal::new(printer);
        let interrupt = Interrupt::listen(crate::ui::interrupt_notice);
        let Some(journal) = journal::read(&kube, &namespace)
            .await
            .map_err(|e| super::up::journal_error(e, &namespace, &server))?
        else {
            printer.status(&format!(
                "nothing to remove: no telltale journal in namespace {namespace} on {}",
                kube.target.context
            ));
            return Ok(());
        };
        let helm = access::helm(&kube.target)
            .await
            .map_err(|e| CommandError::from_error(ErrorKind::Environment, &e))?;
        let lock = lock::acquire(&kube, &namespace, "down")
            .await
            .map_err(lock_error)?;
        if journal.install_id.is_empty() {
            printer.warn(
                "the journal has no install id (written by an older telltale): no object can be \
                 proven telltale's, so none is deleted; run `telltale up` once to mark them",
            );
        }
        let (results, end, skipped) = down(
            &kube, &helm, &namespace, journal, &options, &progress, &interrupt,
        )
        .await;
        let released = lock.release().await;
        let mut namespace_deleted = false;
        if end == RunEnd::Done && !options.keep_data {
            let api: Api<Namespace> = Api::all(kube.client.clone());
            match api.delete(&namespace, &DeleteParams::default()).await {
                Ok(_) => namespace_deleted = true,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(access::cluster_error("deleting the namespace", &server, e)),
            }
        } else if let Err(e) = released {
            printer.warn(&format!("the lock could not be released: {e}"));
        }
        let report = Report {
            ok: end == RunEnd::Done,
            context: &kube.target.context,
            namespace: &namespace,
            phases: &results,
            skipped: &skipped,
            namespace_deleted,
        };
        for s in &skipped {
            printer.warn(&format!("skipped {}: {}", s.object, s.reason));
        }
        if printer.is_json() {
            printer.json(&report);
        } else {
            let rows = results
                .iter()
                .map(|p| vec![p.phase.to_string(), p.detail.clone()])
                .collect();
            printer.out(&table::render(&["phase", "removed"], rows));
            if printer.verbose > 0 {
                for p in &results {
                    for c in &p.changes {
                        printer.out(&format!("  {}: {c}", p.phase));
                    }
                }
            }
            let kept: Vec<&str> = [
                (options.keep_crds, "CRDs (--keep-crds=false removes them)"),
                (
                    options.keep_data,
                    "volumes and the namespace (--keep-data=false removes them)",
                ),
            ]
            .iter()
            .filter(|(keep, _)| *keep)
            .map(|(_, what)| *what)
            .collect();
            if !kept.is_empty() && end == RunEnd::Done {
                printer.status(&format!("kept: {}", kept.join("; ")));
            }
        }
        end_to_result(end)
    })
}
