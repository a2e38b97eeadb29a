//! `telltale plan`: render the bundle to a directory and print the phases.

use std::path::{Path, PathBuf};

use clap::Args;

use super::GlobalArgs;
use crate::catalog::Catalog;
use crate::error::CommandError;
use crate::render::{self, Bundle};
use crate::tools::{self, ToolError};
use crate::ui::{Printer, table};

/// Render the bundle (helm values, manifests per phase, rules and their
/// tests, alertmanager.yaml, dashboards, runbooks, plan.json) to a directory
/// and print the phase plan. Needs no cluster. The same input always gives
/// the same bytes. With a Fleet config: one bundle per cluster in
/// OUT/<cluster>/ and OUT/fleet.json.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Where to write the bundle; replaced only when empty or holding a
    /// bundle telltale wrote (every file listed in its plan.json, unchanged)
    #[arg(long, value_name = "DIR", default_value = "telltale-out")]
    pub out: PathBuf,
    /// Do not run promtool and amtool on the rendered bundle (by default
    /// they run when found on PATH, and a bundle they refuse is not written)
    #[arg(long)]
    pub no_tool_check: bool,
}

pub fn run(args: PlanArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    if let Some(fleet) = global.fleet()? {
        return super::plan_fleet::run(&fleet, &args, global, printer);
    }
    let catalog = global.catalog()?;
    let request = global.request()?;
    let bundle = render::render(&catalog, &request)?;
    for warning in &bundle.plan.warnings {
        printer.warn(warning);
    }
    if !args.no_tool_check {
        tool_check(&catalog, &bundle)?;
    }
    write_bundle(&bundle, &args.out)?;
    if printer.is_json() {
        printer.json_text(&bundle.plan_json);
        return Ok(());
    }
    printer.out(&phase_table(&bundle));
    let needs = bundle.plan.requirements();
    if !needs.is_empty() {
        printer.status(&format!(
            "\n`telltale up` will read (secret sources; the values never enter the bundle):\n  {}",
            needs.join("\n  ")
        ));
    }
    printer.status(&format!(
        "\nprofile {} · {} · {} written to {} · digest {}",
        bundle.plan.profile,
        crate::plural::count(bundle.plan.plugins.len(), "plugin"),
        crate::plural::count(bundle.files.len() + 1, "file"),
        args.out.display(),
        &bundle.plan.digest[..12],
    ));
    Ok(())
}

pub fn phase_table(bundle: &Bundle) -> String {
    let rows = bundle
        .plan
        .phases
        .iter()
        .map(|phase| {
            let mut kinds: Vec<String> = Vec::new();
            let applies = phase
                .steps
                .iter()
                .filter(|s| matches!(s, render::plan::Step::Apply { .. }))
                .count();
            for step in &phase.steps {
                if !matches!(
                    step,
                    render::plan::Step::Apply { .. } | render::plan::Step::Check { .. }
                ) {
                    kinds.push(step.describe());
                }
            }
            if applies > 0 {
                kinds.push(format!("apply {}", crate::plural::count(applies, "object")));
            }
            let checks = phase
                .steps
                .iter()
                .filter(|s| matches!(s, render::plan::Step::Check { .. }))
                .count();
            if checks > 0 {
                kinds.push(crate::plural::count(checks, "check"));
            }
            vec![
                format!("{:02}", phase.index),
                phase.name.to_string(),
                phase.steps.len().to_string(),
                if kinds.is_empty() {
                    "—".to_string()
                } else {
                    kinds.join("; ")
                },
            ]
        })
        .collect();
    table::render(&["#", "phase", "steps", "what"], rows)
}

/// Writes the bundle to `out` through sibling directories, so `out` holds
/// either the old bundle or the new one, never a mix; refuses to replace a
/// directory holding anything telltale did not write (see [`crate::outdir`]).
pub fn write_bundle(bundle: &Bundle, out: &Path) -> Result<(), CommandError> {
    let files = bundle
        .files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .chain(std::iter::once(("plan.json", bundle.plan_json.as_str())));
    write_files(out, files)
}

/// Writes `files` as the new content of `out` (see [`crate::outdir`]).
pub fn write_files<'a>(
    out: &Path,
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), CommandError> {
    Ok(crate::outdir::replace_dir(out, files)?)
}

/// The bundle's own validators on the rendered files, before anything is
/// written: what promtool or amtool refuse, Prometheus and Alertmanager would
/// refuse in the cluster. A tool that is not on PATH is skipped.
pub(crate) fn tool_check(catalog: &Catalog, bundle: &Bundle) -> Result<(), CommandError> {
    let staging = tempfile::tempdir().map_err(|e| {
        CommandError::environment("cannot create a temporary directory").with_source(&e)
    })?;
    let root = staging.path().join("bundle");
    write_bundle(bundle, &root)?;
    let rules: Vec<&str> = bundle
        .files
        .keys()
        .filter(|p| p.starts_with("prometheus/rules/"))
        .map(String::as_str)
        .collect();
    if !rules.is_empty() {
        let mut args = vec!["check", "rules"];
        args.extend(rules.iter().copied());
        refused(tools::run("promtool", &args, &root), |output| {
            let named: Vec<&str> = rules
                .iter()
                .copied()
                .filter(|r| output.contains(r))
                .collect();
            rule_origins(
                catalog,
                bundle,
                if named.is_empty() { &rules } else { &named },
            )
        })?;
    }
    // amtool reads the bundle's own template files (in the pod they are in
    // /etc/alertmanager/config/), so a template that does not parse is
    // refused here too.
    let am_path = root.join("alertmanager/alertmanager.yaml");
    if let Some(text) = bundle.files.get("alertmanager/alertmanager.yaml")
        && let Ok(mut config) = serde_saphyr::from_str::<serde_json::Value>(text)
    {
        render::notify_template::templates_from(&mut config, &root.join("alertmanager"));
        let staged = render::to_yaml("alertmanager/alertmanager.yaml", &config)
            .map_err(|e| CommandError::environment(e.to_string()))?;
        std::fs::write(&am_path, staged).map_err(|e| {
            CommandError::environment(format!("cannot write {}", am_path.display())).with_source(&e)
        })?;
    }
    refused(
        tools::run(
            "amtool",
            &["check-config", "alertmanager/alertmanager.yaml"],
            &root,
        ),
        |_| {
            "alertmanager/alertmanager.yaml comes from spec.alerting (receivers, security, sla, businessHours, escalation) of the config and its profiles, and the plugins' alertWebhook".to_string()
        },
    )
}

fn refused(
    result: Result<String, ToolError>,
    origin: impl FnOnce(&str) -> String,
) -> Result<(), CommandError> {
    match result {
        Ok(_) | Err(ToolError::NotFound { .. }) => Ok(()),
        Err(ToolError::Failed {
            command, output, ..
        }) => {
            let tool = command
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            Err(CommandError::bad_input(format!(
                "the rendered bundle does not pass `{command}`; nothing was written:\n{output}"
            ))
            .with_hint(format!("{}; fix that input (or pass --no-tool-check to write the bundle anyway and inspect it with {tool})", origin(&output))))
        }
        Err(e @ ToolError::Spawn { .. }) => Err(CommandError::environment(e.to_string())),
    }
}

/// Which input each rule file comes from: a plugin's rules/ or the SLOs.
fn rule_origins(catalog: &Catalog, bundle: &Bundle, rules: &[&str]) -> String {
    let mut out = Vec::new();
    for path in rules {
        let stem = path
            .trim_start_matches("prometheus/rules/")
            .trim_end_matches(".yaml");
        let from = if let Some(slo) = stem.strip_prefix("telltale-slo-") {
            format!("SLO `{slo}` in spec.slos")
        } else if stem == crate::render::escalation::GROUP {
            "spec.alerting.escalation and the bundle's critical alerts".to_string()
        } else {
            bundle
                .plan
                .plugins
                .iter()
                .find(|p| {
                    catalog
                        .plugins
                        .get(&p.name)
                        .is_some_and(|e| e.files.contains(&format!("rules/{stem}.yaml")))
                })
                .map(|p| match catalog.plugins.get(&p.name) {
                    Some(e) => e.files.display(&format!("rules/{stem}.yaml")),
                    None => format!("plugin {}", p.name),
                })
                .unwrap_or_else(|| "the core rules".into())
        };
        out.push(format!("{path} comes from {from}"));
    }
    out.join("; ")
}
