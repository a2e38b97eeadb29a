//! `telltale plugins lint DIR`: everything that can be proved about a plugin
//! without a cluster.
//!
//! 1. schema: plugin.yaml parses strictly, name == directory, semver, exact chart version;
//! 2. templates: values.yaml and manifests render and parse, dashboards follow the contract;
//!    every metric the rules and dashboards read is published by the plugin
//!    (`spec.publishes`), a plugin it requires, a plugin a panel requires, its
//!    own recording rules or Prometheus itself;
//! 3. alerts: labels, annotations, a runbook that exists and has the four
//!    sections, a promtool case where each alert fires and one where it stays silent;
//! 4. promtool `check rules` and `test rules` on the plugin's own files;
//! 5. the plugin enabled in the `kind` profile (with what it requires, without
//!    what it conflicts with, its secrets as env sources and every receiver
//!    configured) renders, and amtool accepts the routing and every route case.
//!
//! Problems are collected and printed together; a missing promtool or amtool
//! is an environment error, never a silent pass.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::catalog::{Catalog, PluginEntry, Tree, load_plugin};
use crate::error::{CommandError, ErrorKind};
use crate::model::Source;
use crate::model::node::Node;
use crate::model::yaml::parse;
use crate::render::{self, Request, dashboards, metrics, objects, template};
use crate::tools::{self, ToolError};
use crate::ui::Printer;

use super::alerts_of;

/// The profile a plugin is rendered in: the smallest one with the metrics backbone.
const LINT_PROFILE: &str = "kind";
/// The env variable every secret source of the lint render names (never read).
const LINT_SECRET_ENV: &str = "TELLTALE_LINT_SECRET";
/// The sections every runbook has (seed 000's template).
const RUNBOOK_SECTIONS: [&str; 4] = [
    "## Detection",
    "## Diagnosis",
    "## Resolution",
    "## Escalation",
];

pub fn run(catalog: &Catalog, dir: &Path, printer: &Printer) -> Result<(), CommandError> {
    let tree = Tree::from_disk(dir)
        .map_err(|e| CommandError::bad_input(format!("cannot read {}: {e}", dir.display())))?;
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_default();
    let entry = load_plugin(tree, &name, false)?;
    let mut problems = lint_problems(catalog, &entry)?;
    let scratch = Scratch::new()?;
    problems.extend(promtool_problems(&entry.files, &scratch.path)?);
    problems.extend(render_problems(catalog, &entry, &scratch.path)?);
    if printer.is_json() {
        printer.json(
            &json!({"plugin": entry.name(), "ok": problems.is_empty(), "problems": problems}),
        );
    } else if problems.is_empty() {
        printer.out(&format!(
            "✓ {} {}: schema, render in profile {LINT_PROFILE}, promtool, amtool, runbooks and tests OK",
            entry.name(),
            entry.plugin.metadata.version
        ));
    } else {
        for p in &problems {
            printer.out(&format!("✗ {p}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CommandError::new(
            ErrorKind::BadInput,
            format!(
                "plugin `{}` has {} problem(s)",
                entry.name(),
                problems.len()
            ),
        ))
    }
}

/// Everything about the plugin's own files that needs no external tool.
pub fn lint_problems(catalog: &Catalog, entry: &PluginEntry) -> Result<Vec<String>, CommandError> {
    let ctx = template::Context {
        namespace: "monitoring".into(),
        cluster: "lint".into(),
        profile: "lint".into(),
    };
    let tree = &entry.files;
    let mut defaults = json!({});
    if let Some(values) = tree.get("values.yaml") {
        let rendered = template::render(&values, &ctx)?;
        let node: Node = parse(&rendered, "helm values (a mapping)")?;
        if node.as_map().is_none() {
            return Err(CommandError::bad_input(format!(
                "{}: values must be a mapping",
                values.name
            )));
        }
        defaults = node.to_json();
    }
    for (_, source) in tree.files_in("manifests", ".yaml") {
        objects::parse(
            &template::render_with_values(&source, &ctx, &defaults)?,
            "monitoring",
            entry.name(),
        )?;
    }
    for (_, source) in tree.files_in("overlays", ".yaml") {
        let rendered = template::render_with_values(&source, &ctx, &defaults)?;
        // An overlay that renders to nothing changes nothing (render skips
        // it too), e.g. kube-prometheus-stack's without datasources.
        if rendered.text.trim().is_empty() {
            continue;
        }
        if parse::<Node>(&rendered, "helm values (a mapping)")?
            .as_map()
            .is_none()
        {
            return Err(CommandError::bad_input(format!(
                "{}: an overlay must be a mapping of helm values",
                source.name
            )));
        }
    }
    let groups = alerts_of(entry)?;
    let tests: Vec<_> = tree
        .files_in("tests", "_test.yaml")
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let mut dashboard_uses = Vec::new();
    let mut panel_requires = BTreeSet::new();
    for (file, source) in tree.files_in("dashboards", ".json") {
        let uid = file.trim_end_matches(".json");
        let raw: Value = serde_json::from_str(&source.text).unwrap_or_default();
        let mut known: Vec<&str> = crate::model::config::Datasource::names();
        known.extend(catalog.plugins.keys().map(String::as_str));
        known.push(entry.name());
        // Every part kept: each is checked with what it requires (an unknown
        // name is refused by prepare, with a suggestion).
        let requirements = dashboards::Requirements {
            known: &known,
            available: &known,
        };
        let Some(dashboard) = dashboards::prepare(&source, uid, requirements)? else {
            continue;
        };
        panel_requires.extend(dashboards::requirements(&raw));
        match metrics::dashboard_uses(uid, &dashboard) {
            Ok(uses) => dashboard_uses.extend(uses),
            Err(e) => return Err(CommandError::bad_input(format!("dashboards/{file}: {e}"))),
        }
    }
    let runbook_exists =
        |name: &str| tree.contains(&format!("runbooks/{name}")) || catalog.runbooks.contains(name);
    let mut problems = crate::lint::check_groups(&groups, &tests, &runbook_exists)?;
    problems.extend(metric_problems(
        catalog,
        entry,
        &groups,
        dashboard_uses,
        &panel_requires,
    ));
    for group in &groups {
        if !tree.contains(&format!("tests/{}_test.yaml", group.name)) {
            problems.push(format!(
                "rule group {}: no tests/{}_test.yaml",
                group.name, group.name
            ));
        }
    }
    problems.extend(runbook_problems(tree, &groups));
    Ok(problems)
}

/// Every metric the plugin's rules and dashboards read has a publisher the
/// plugin can count on: itself, what it requires, the plugin a panel
/// requires, its own recording rules, or Prometheus' synthetic series.
fn metric_problems(
    catalog: &Catalog,
    entry: &PluginEntry,
    groups: &[crate::render::rules::RuleGroup],
    dashboard_uses: Vec<metrics::Use>,
    panel_requires: &BTreeSet<String>,
) -> Vec<String> {
    let spec = &entry.plugin.spec;
    let mut publishers = metrics::Publishers::with_synthetic();
    // The bundle records every alert's value for dashboards (Alert History).
    publishers.add(
        render::alert_values::METRIC,
        &format!("recording rule {}", render::alert_values::GROUP),
    );
    let own = std::iter::once((entry.name(), spec));
    let others: Vec<&PluginEntry> = spec
        .requires
        .iter()
        .chain(panel_requires)
        .filter_map(|name| catalog.plugins.get(name))
        .collect();
    for (name, s) in own.chain(others.iter().map(|e| (e.name(), &e.plugin.spec))) {
        for p in &s.publishes {
            for metric in &p.metrics {
                publishers.add(metric, &format!("{} ({name})", p.component));
            }
        }
    }
    // The recording rules of a plugin this one requires (or a panel does)
    // publish their records too: the heartbeat stat reads airflow's.
    for other in &others {
        for group in alerts_of(other).unwrap_or_default() {
            for rule in &group.rules {
                if let Some(record) = &rule.record {
                    publishers.add(
                        record,
                        &format!("recording rule {} ({})", group.name, other.name()),
                    );
                }
            }
        }
    }
    let mut uses = dashboard_uses;
    let mut problems = Vec::new();
    for group in groups {
        for rule in &group.rules {
            if let Some(record) = &rule.record {
                publishers.add(record, &format!("recording rule {}", group.name));
            }
        }
        match metrics::rule_uses(&group.name, &group.rules) {
            Ok(u) => uses.extend(u),
            Err(e) => problems.push(e),
        }
    }
    let table = metrics::provenance(&uses, &publishers);
    problems.extend(
        table
            .iter()
            .filter(|p| p.published_by.is_empty())
            .map(|p| {
                format!(
                    "metric `{}` (read by {}) is published by nothing this plugin declares or requires: \
                     list it under spec.publishes ({{component, source, metrics}}) or require the plugin that does",
                    p.name,
                    p.used_by.join("; ")
                )
            }),
    );
    problems
}

/// Every runbook of the plugin has the template's sections and is linked by an alert.
fn runbook_problems(tree: &Tree, groups: &[crate::render::rules::RuleGroup]) -> Vec<String> {
    let linked: BTreeSet<String> = groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter_map(|r| r.annotations.get("runbook_url"))
        .filter_map(|url| url.rsplit('/').next().map(String::from))
        .collect();
    let mut problems = Vec::new();
    for (file, source) in tree.files_in("runbooks", ".md") {
        let title = format!("# RUNBOOK: {}", file.trim_end_matches(".md"));
        if !source.text.lines().any(|l| l.trim() == title) {
            problems.push(format!(
                "runbooks/{file}: the first heading must be `{title}`"
            ));
        }
        for section in RUNBOOK_SECTIONS {
            if !source.text.lines().any(|l| l.starts_with(section)) {
                problems.push(format!("runbooks/{file}: no `{section}` section"));
            }
        }
        if !linked.contains(&file) {
            problems.push(format!(
                "runbooks/{file}: no alert links it (annotation runbook_url)"
            ));
        }
    }
    problems
}

/// promtool on the plugin's own rules and tests, in a scratch copy.
fn promtool_problems(tree: &Tree, scratch: &Path) -> Result<Vec<String>, CommandError> {
    let rules: Vec<_> = tree.files_in("rules", ".yaml");
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let root = scratch.join("plugin");
    for dir in ["rules", "tests"] {
        write(&root.join(dir), tree.files_in(dir, ".yaml"))?;
    }
    let mut problems = Vec::new();
    let rule_args: Vec<String> = rules.iter().map(|(f, _)| format!("rules/{f}")).collect();
    let tests: Vec<String> = tree
        .files_in("tests", "_test.yaml")
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    // promtool on PATH, and a second major when TELLTALE_PROMTOOL2 names one:
    // range selectors and le/quantile values differ between Prometheus 2 and 3.
    let mut promtools = vec!["promtool".to_string()];
    if let Some(two) = std::env::var_os("TELLTALE_PROMTOOL2").filter(|p| !p.is_empty()) {
        promtools.push(two.to_string_lossy().into_owned());
    }
    for promtool in &promtools {
        let mut args = vec!["check", "rules"];
        args.extend(rule_args.iter().map(String::as_str));
        record(
            &mut problems,
            "promtool",
            tools::run(promtool, &args, &root),
        )?;
        if !tests.is_empty() {
            let mut args = vec!["test", "rules"];
            args.extend(tests.iter().map(String::as_str));
            record(
                &mut problems,
                "promtool",
                tools::run(promtool, &args, &root.join("tests")),
            )?;
        }
    }
    Ok(problems)
}

/// The plugin rendered in the lint profile, and amtool on the routing.
fn render_problems(
    catalog: &Catalog,
    entry: &PluginEntry,
    scratch: &Path,
) -> Result<Vec<String>, CommandError> {
    let mut catalog = catalog.clone();
    // The directory wins over a built-in of the same name: that is what is linted.
    catalog
        .plugins
        .insert(entry.name().to_string(), entry.clone());
    let config = lint_config(&catalog, entry);
    let request = Request {
        config: Some(Source::new(
            format!("lint config for {}", entry.name()),
            serde_json::to_string_pretty(&config).unwrap_or_default(),
        )),
        ..Request::default()
    };
    let bundle = match render::render(&catalog, &request) {
        Ok(bundle) => bundle,
        Err(e) => {
            return Ok(vec![format!(
                "does not render in profile {LINT_PROFILE}: {e}{}",
                e.hint().map(|h| format!(" ({h})")).unwrap_or_default()
            )]);
        }
    };
    let root = scratch.join("bundle");
    crate::planning::write_bundle(&bundle, &root)?;
    // Inhibitions on the label sets the bundle's alerts really fire with.
    let fired = render::alertmanager::fired_alerts(
        bundle
            .files
            .iter()
            .filter(|(p, _)| p.starts_with("prometheus/tests/"))
            .map(|(_, t)| t),
    );
    // The linted plugin's own rules are checked whether or not they select
    // anything (a typo in an alert name must not just drop the rule); the
    // others only where they apply to this bundle.
    let own = &entry.plugin.spec.inhibitions;
    let others: Vec<_> = bundle
        .inhibitions
        .iter()
        .filter(|rule| !own.contains(rule))
        .cloned()
        .collect();
    let mut rules = own.clone();
    rules.extend(render::alertmanager::inhibitions_for(&others, &fired));
    let mut problems = render::alertmanager::inhibition_problems(&rules, &fired);
    // An expectation nothing in the bundle backs and no `requires:` excuses.
    problems.extend(
        bundle
            .plan
            .warnings
            .iter()
            .filter(|w| w.starts_with(render::UNBACKED))
            .cloned(),
    );
    record(
        &mut problems,
        "amtool",
        tools::run(
            "amtool",
            &["check-config", "alertmanager/alertmanager.yaml"],
            &root,
        ),
    )?;
    for case in &bundle.routes.cases {
        let receivers: Vec<&str> = case.receivers.iter().map(String::as_str).collect();
        let labels: Vec<String> = case
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let verify = format!("--verify.receivers={}", receivers.join(","));
        let mut args = vec![
            "config",
            "routes",
            "test",
            "--config.file",
            "alertmanager/alertmanager.yaml",
            verify.as_str(),
        ];
        args.extend(labels.iter().map(String::as_str));
        record(&mut problems, "amtool", tools::run("amtool", &args, &root))?;
    }
    Ok(problems)
}

/// A config that enables the plugin on top of the lint profile.
fn lint_config(catalog: &Catalog, entry: &PluginEntry) -> Value {
    let name = entry.name();
    // The plugin and, transitively, what it requires.
    let mut on: BTreeSet<String> = BTreeSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(next) = todo.pop() {
        if on.insert(next.clone())
            && let Some(e) = catalog.plugins.get(&next)
        {
            todo.extend(e.plugin.spec.requires.iter().cloned());
        }
    }
    // Whatever conflicts with one of them, in either direction, is switched off.
    let off: BTreeSet<String> = catalog
        .plugins
        .values()
        .filter(|other| !on.contains(other.name()))
        .filter(|other| {
            other.plugin.spec.conflicts.iter().any(|c| on.contains(c))
                || on.iter().any(|n| {
                    catalog
                        .plugins
                        .get(n)
                        .is_some_and(|e| e.plugin.spec.conflicts.iter().any(|c| c == other.name()))
                })
        })
        .map(|other| other.name().to_string())
        .collect();
    let secret = json!({"env": LINT_SECRET_ENV});
    let mut plugins = serde_json::Map::new();
    for p in &on {
        let mut settings = json!({"enabled": true});
        if let Some(e) = catalog.plugins.get(p) {
            for s in &e.plugin.spec.secrets {
                let path = render::values::split_path(&s.path);
                let nested = render::values::nest(&path, secret.clone());
                render::values::merge(&mut settings, json!({"values": nested}));
            }
        }
        plugins.insert(p.clone(), settings);
    }
    for p in off {
        plugins.insert(p, json!({"enabled": false}));
    }
    json!({
        "apiVersion": crate::model::API_VERSION,
        "kind": "Config",
        "metadata": {"name": "lint"},
        "spec": {
            "profile": LINT_PROFILE,
            "plugins": plugins,
            // Every integration, so the routing a plugin touches is exercised in full.
            "alerting": {"receivers": {
                "slack": {"channel": "#lint", "webhookUrl": secret},
                "pagerduty": {"routingKey": secret},
                "sms": {"to": ["+15550100"], "twilio": {
                    "accountSid": "AC00000000000000000000000000000000",
                    "from": "+15550199",
                    "authToken": secret,
                }},
            }},
        },
    })
}

fn record(
    problems: &mut Vec<String>,
    tool: &str,
    result: Result<String, ToolError>,
) -> Result<(), CommandError> {
    match result {
        Ok(_) => Ok(()),
        Err(ToolError::Failed {
            command, output, ..
        }) => {
            problems.push(format!("{command} failed:\n{output}"));
            Ok(())
        }
        Err(e @ ToolError::NotFound { .. }) => {
            Err(CommandError::environment(e.to_string()).with_hint(ToolError::install_hint(tool)))
        }
        Err(e) => Err(CommandError::environment(e.to_string())),
    }
}

fn write(dir: &Path, files: Vec<(String, Source)>) -> Result<(), CommandError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CommandError::environment(format!("cannot create {}: {e}", dir.display())))?;
    for (file, source) in files {
        let path = dir.join(&file);
        std::fs::write(&path, source.text).map_err(|e| {
            CommandError::environment(format!("cannot write {}: {e}", path.display()))
        })?;
    }
    Ok(())
}

/// A scratch directory, removed when lint is done.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Result<Scratch, CommandError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("telltale-lint-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| {
            CommandError::environment(format!("cannot create {}: {e}", path.display()))
        })?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
