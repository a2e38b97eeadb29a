//! `telltale plan`: render the bundle to a directory and print the phases.

use std::path::{Path, PathBuf};

use clap::Args;

use super::GlobalArgs;
use crate::error::CommandError;
use crate::render::{self, Bundle};
use crate::ui::{Printer, table};

/// Render the bundle (helm values, manifests per phase, rules and their
/// tests, alertmanager.yaml, dashboards, runbooks, plan.json) to a directory
/// and print the phase plan. Needs no cluster. The same input always gives
/// the same bytes.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Where to write the bundle; an existing bundle there is replaced
    #[arg(long, value_name = "DIR", default_value = "telltale-out")]
    pub out: PathBuf,
}

pub fn run(args: PlanArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    let catalog = global.catalog()?;
    let request = global.request()?;
    let bundle = render::render(&catalog, &request)?;
    for warning in &bundle.plan.warnings {
        printer.warn(warning);
    }
    write_bundle(&bundle, &args.out)?;
    if printer.is_json() {
        printer.out(bundle.plan_json.trim_end());
        return Ok(());
    }
    printer.out(&phase_table(&bundle));
    printer.status(&format!(
        "\nprofile {} · {} plugins · {} files written to {} · digest {}",
        bundle.plan.profile,
        bundle.plan.plugins.len(),
        bundle.files.len() + 1,
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
                kinds.push(format!("apply {applies} objects"));
            }
            let checks = phase
                .steps
                .iter()
                .filter(|s| matches!(s, render::plan::Step::Check { .. }))
                .count();
            if checks > 0 {
                kinds.push(format!("{checks} checks"));
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

/// Writes the bundle to `out` through a sibling temporary directory, so `out`
/// holds either the old bundle or the new one, never a mix. Refuses to
/// replace a directory that is not a bundle.
pub fn write_bundle(bundle: &Bundle, out: &Path) -> Result<(), CommandError> {
    let io = |what: &str, path: &Path, e: std::io::Error| {
        CommandError::environment(format!("cannot {what} {}: {e}", path.display()))
    };
    if out.exists() {
        let is_bundle = out.join("plan.json").is_file();
        let is_empty = std::fs::read_dir(out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !is_bundle && !is_empty {
            return Err(CommandError::bad_input(format!(
                "{} exists and is not a telltale bundle (no plan.json); refusing to replace it",
                out.display()
            ))
            .with_hint("pass --out with a new or empty directory"));
        }
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "bundle".into());
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let write_all = || -> Result<(), CommandError> {
        for (path, content) in bundle.files.iter().chain(std::iter::once((
            &"plan.json".to_string(),
            &bundle.plan_json,
        ))) {
            let target = tmp.join(path);
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
            }
            std::fs::write(&target, content).map_err(|e| io("write", &target, e))?;
        }
        Ok(())
    };
    if let Err(e) = write_all() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| io("replace", out, e))?;
    }
    std::fs::rename(&tmp, out).map_err(|e| io("move the bundle to", out, e))?;
    Ok(())
}
