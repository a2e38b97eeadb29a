//! `telltale plugins list|show|lint|new`

mod lint;

pub use lint::lint_problems;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::GlobalArgs;
use crate::catalog::{Catalog, PluginEntry};
use crate::error::CommandError;
use crate::model::Phase;
use crate::render::rules::{RuleGroup, parse_rule_file};
use crate::ui::{Printer, table};

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the built-in plugins and those from --plugin-dir
    List,
    /// Show a plugin: chart, phase, alerts, dashboards, runbooks, default values
    Show(ShowArgs),
    /// Validate a plugin directory: schema, render, promtool, runbook and test coverage
    Lint(LintArgs),
    /// Write a new plugin scaffold that passes lint
    New(NewArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[arg(add = clap_complete::ArgValueCompleter::new(super::complete::plugins))]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// The plugin directory (holds plugin.yaml)
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Name of the plugin (lowercase letters, digits and dashes)
    pub name: String,
    /// Directory to create it in [default: ./NAME]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct PluginSummary {
    pub name: String,
    pub version: String,
    pub phase: Phase,
    pub description: String,
}

pub fn run(
    cmd: PluginsCommand,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<(), CommandError> {
    match cmd {
        PluginsCommand::List => list(&global.catalog()?, printer),
        PluginsCommand::Show(args) => show(&global.catalog()?, &args.name, printer),
        PluginsCommand::Lint(args) => lint::run(&global.catalog()?, &args.dir, printer),
        PluginsCommand::New(args) => new(&args, printer),
    }
}

fn list(catalog: &Catalog, printer: &Printer) -> Result<(), CommandError> {
    let summaries: Vec<PluginSummary> = catalog
        .plugins
        .values()
        .map(|e| PluginSummary {
            name: e.name().to_string(),
            version: e.plugin.metadata.version.clone(),
            phase: e.plugin.spec.phase,
            description: e.plugin.metadata.description.clone(),
        })
        .collect();
    if printer.is_json() {
        printer.json(&summaries);
    } else {
        let rows = summaries
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.version.clone(),
                    s.phase.to_string(),
                    s.description.clone(),
                ]
            })
            .collect();
        printer.out(&table::render(
            &["name", "version", "phase", "description"],
            rows,
        ));
        let executables =
            crate::executables::discover(&std::env::var_os("PATH").unwrap_or_default());
        if !executables.is_empty() {
            printer.out(&format!(
                "\nexecutable plugins on PATH (telltale NAME …): {}",
                executables.join(", ")
            ));
        }
    }
    Ok(())
}

fn alerts_of(entry: &PluginEntry) -> Result<Vec<RuleGroup>, CommandError> {
    entry
        .files
        .files_in("rules", ".yaml")
        .into_iter()
        .map(|(file, source)| {
            parse_rule_file(&source, file.trim_end_matches(".yaml")).map_err(Into::into)
        })
        .collect()
}

fn show(catalog: &Catalog, name: &str, printer: &Printer) -> Result<(), CommandError> {
    let entry = catalog.plugins.get(name).ok_or_else(|| {
        CommandError::bad_input(format!("unknown plugin `{name}`"))
            .with_hint(catalog.plugin_hint(name))
    })?;
    let groups = alerts_of(entry)?;
    let alerts: Vec<String> = groups
        .iter()
        .flat_map(|g| g.rules.iter().filter_map(|r| r.alert.clone()))
        .collect();
    let files = |dir: &str, ext: &str| -> Vec<String> {
        entry
            .files
            .files_in(dir, ext)
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    };
    let dashboards = files("dashboards", ".json");
    let runbooks = files("runbooks", ".md");
    let values = entry
        .files
        .get("values.yaml")
        .map(|s| s.text)
        .unwrap_or_default();
    if printer.is_json() {
        printer.json(&serde_json::json!({
            "name": entry.name(), "builtin": entry.builtin, "source": entry.files.root,
            "plugin": entry.plugin, "alerts": alerts, "dashboards": dashboards, "runbooks": runbooks,
            "values": values,
        }));
        return Ok(());
    }
    let p = &entry.plugin;
    let chart = p
        .spec
        .chart
        .as_ref()
        .map(|c| format!("{} {} from {}", c.name, c.version, c.repository))
        .unwrap_or_else(|| "— (manifests only)".into());
    let mut text = format!(
        "{} {}: {}\nsource:     {}\nphase:      {}\nchart:      {chart}\nrequires:   {}\nalerts:     {}\ndashboards: {}\nrunbooks:   {}\n",
        p.metadata.name,
        p.metadata.version,
        p.metadata.description,
        entry.files.root,
        p.spec.phase,
        if p.spec.requires.is_empty() {
            "—".into()
        } else {
            p.spec.requires.join(", ")
        },
        if alerts.is_empty() {
            "—".into()
        } else {
            alerts.join(", ")
        },
        if dashboards.is_empty() {
            "—".into()
        } else {
            dashboards.join(", ")
        },
        if runbooks.is_empty() {
            "—".into()
        } else {
            runbooks.join(", ")
        },
    );
    if !p.spec.secrets.is_empty() {
        let secrets: Vec<String> = p
            .spec
            .secrets
            .iter()
            .map(|s| format!("{} ({})", s.path, s.description))
            .collect();
        text.push_str(&format!(
            "secrets:    {} - give each as a source under plugins.{}.values\n",
            secrets.join(", "),
            p.metadata.name
        ));
    }
    for published in &p.spec.publishes {
        text.push_str(&format!(
            "publishes:  {} ({}): {}\n",
            published.component,
            published.source,
            published.metrics.join(", ")
        ));
    }
    let overlays = files("overlays", ".yaml");
    if !overlays.is_empty() {
        text.push_str(&format!("overlays:   {}\n", overlays.join(", ")));
    }
    if let Some(hook) = &p.spec.alert_webhook {
        text.push_str(&format!(
            "receives:   every alert, as receiver `{}` ({})\n",
            hook.receiver, hook.url
        ));
    }
    if let Some(d) = &p.spec.deprecated {
        text.push_str(&format!("deprecated: {d}\n"));
    }
    if !values.is_empty() {
        text.push_str(&format!("\ndefault values:\n{}", values.trim_end()));
    }
    printer.out(text.trim_end());
    Ok(())
}

fn new(args: &NewArgs, printer: &Printer) -> Result<(), CommandError> {
    let name = &args.name;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid {
        return Err(
            CommandError::bad_input(format!("`{name}` is not a valid plugin name"))
                .with_hint("use lowercase letters, digits and dashes, starting with a letter"),
        );
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(CommandError::bad_input(format!(
            "{} exists and is not empty",
            dir.display()
        )));
    }
    for (path, content) in scaffold(name) {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                CommandError::environment(format!("cannot create {}", parent.display()))
                    .with_source(&e)
            })?;
        }
        std::fs::write(&target, content).map_err(|e| {
            CommandError::environment(format!("cannot write {}", target.display())).with_source(&e)
        })?;
    }
    printer.out(&format!(
        "created plugin `{name}` in {}\nnext: edit plugin.yaml and the rules, then `telltale plugins lint {}`",
        dir.display(),
        dir.display()
    ));
    Ok(())
}

/// The files of a new plugin: a ServiceMonitor, one alert with its tests and runbook.
pub fn scaffold(name: &str) -> Vec<(String, String)> {
    let camel: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let alert = format!("{camel}Down");
    let runbook = format!("{}_DOWN", name.to_uppercase().replace('-', "_"));
    let api = crate::model::API_VERSION;
    vec![
        (
            "plugin.yaml".into(),
            format!(
                "apiVersion: {api}\nkind: Plugin\nmetadata:\n  name: {name}\n  version: 0.1.0\n  description: Scrapes {name} and alerts when it is down.\nspec:\n  phase: exporters\n  expectations:\n    targets:\n      - {{job: {name}, min: 1}}\n"
            ),
        ),
        (
            "manifests/servicemonitor.yaml".into(),
            format!(
                "# Scrapes the Service labelled app.kubernetes.io/name={name} on its `metrics` port.\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: {name}\n  namespace: \"{{{{ namespace }}}}\"\nspec:\n  jobLabel: app.kubernetes.io/name\n  namespaceSelector:\n    any: true\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: {name}\n  endpoints:\n    - port: metrics\n      interval: 30s\n"
            ),
        ),
        (
            format!("rules/{name}.yaml"),
            format!(
                "groups:\n  - name: {name}\n    rules:\n      - alert: {alert}\n        expr: up{{job=\"{name}\"}} == 0\n        for: 5m\n        labels:\n          severity: critical\n          priority: P0\n          category: availability\n        annotations:\n          summary: \"{name} target {{{{ $labels.instance }}}} is down\"\n          description: \"up is {{{{ $value }}}} for {{{{ $labels.instance }}}} of job {name} for 5 minutes.\"\n          sla: \"{name} available > 99.9%\"\n          runbook_url: https://telltale.dev/runbooks/{runbook}.md\n"
            ),
        ),
        (
            format!("tests/{name}_test.yaml"),
            format!(
                "rule_files:\n  - ../rules/{name}.yaml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'up{{job=\"{name}\", instance=\"a:9100\"}}'\n        values: '1 1 0 0 0 0 0 0 0 0'\n    alert_rule_test:\n      - eval_time: 3m\n        alertname: {alert}\n        exp_alerts: []\n      - eval_time: 9m\n        alertname: {alert}\n        exp_alerts:\n          - exp_labels:\n              severity: critical\n              priority: P0\n              category: availability\n              job: {name}\n              instance: a:9100\n            exp_annotations:\n              summary: \"{name} target a:9100 is down\"\n              description: \"up is 0 for a:9100 of job {name} for 5 minutes.\"\n              sla: \"{name} available > 99.9%\"\n              runbook_url: https://telltale.dev/runbooks/{runbook}.md\n"
            ),
        ),
        (
            format!("runbooks/{runbook}.md"),
            format!(
                "# RUNBOOK: {runbook}\n\n## Detection\nWhat triggered: {alert} — Prometheus could not scrape a {name} target for 5 minutes.\nWhere to look: Grafana › Cluster health › Targets; `kubectl get pods -A -l app.kubernetes.io/name={name}`\n\n## Diagnosis (first 3 checks)\n1. Is the pod running? `kubectl get pods -A -l app.kubernetes.io/name={name} -o wide`\n2. What does the target page say? `up{{job=\"{name}\"}}` and the last scrape error on /targets.\n3. Does the Service select the pod? `kubectl get endpoints -A -l app.kubernetes.io/name={name}`\n\n## Resolution\nRestart the pod (`kubectl rollout restart deploy/{name} -n <namespace>`) or fix the ServiceMonitor's port name.\n\n## Escalation\nIf unresolved in 15 min: contact the next on-call; after 30 min PagerDuty opens an incident.\n"
            ),
        ),
    ]
}
