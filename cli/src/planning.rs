//! `plan`'s use case beside render: the bundle's own validators (promtool,
//! amtool) on the rendered files, and writing a bundle (or a fleet's
//! bundles) into the directory the user named.

use std::path::Path;

use crate::catalog::Catalog;
use crate::error::CommandError;
use crate::render::{self, Bundle};
use crate::tools::{self, ToolError};

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
pub fn tool_check(catalog: &Catalog, bundle: &Bundle) -> Result<(), CommandError> {
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

/// The bundle in `dir`: plan.json and every file it lists, refused when a
/// file is missing or its sha256 differs from plan.json's (an edited bundle
/// would be verified against expectations it no longer has).
pub fn read_bundle(dir: &std::path::Path) -> Result<Bundle, CommandError> {
    use sha2::{Digest, Sha256};
    let read = |rel: &str| {
        std::fs::read_to_string(dir.join(rel)).map_err(|e| {
            CommandError::bad_input(format!(
                "--bundle {}: cannot read {rel}: {e}",
                dir.display()
            ))
        })
    };
    let plan_json = read("plan.json")?;
    let plan: crate::render::plan::Plan = serde_json::from_str(&plan_json).map_err(|e| {
        CommandError::bad_input(format!(
            "--bundle {}: plan.json is not a telltale plan: {e}",
            dir.display()
        ))
    })?;
    let mut files = std::collections::BTreeMap::new();
    for (rel, digest) in &plan.files {
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(CommandError::bad_input(format!(
                "--bundle {}: plan.json lists a path outside the bundle: {rel}",
                dir.display()
            )));
        }
        let text = read(rel)?;
        let actual: String = Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if &actual != digest {
            return Err(CommandError::bad_input(format!(
                "--bundle {}: {rel} differs from the plan.json digest (run `telltale plan --out {}` again)",
                dir.display(),
                dir.display()
            )));
        }
        files.insert(rel.clone(), text);
    }
    Bundle::from_files(files, plan, plan_json)
        .map_err(|e| CommandError::bad_input(format!("--bundle {}: {e}", dir.display())))
}
