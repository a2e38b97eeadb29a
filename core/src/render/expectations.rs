//! What `verify` will prove: each plugin's expectations (templates
//! rendered with the namespace and its values), the load sized from an
//! autoscaler's scale-out point, and the bundle's own (rule groups,
//! receivers, dashboards, the jobs its monitors scrape).

use std::collections::{BTreeMap, BTreeSet};

use super::builder::Builder;
use super::objects::Object;
use super::plan::{CheckId, Expectations};
use super::resolve::EnabledPlugin;
use super::{RenderError, alertmanager, load, template};
use crate::model::plugin::{
    HpaExpectation, LoadExpectation, RemoteWriteExpectation, TargetExpectation,
};
use crate::model::{Phase, Source};

/// One plugin's expectations.
pub fn add_plugin(b: &mut Builder<'_>, p: &EnabledPlugin) -> Result<(), RenderError> {
    let spec = &p.entry.plugin.spec;
    let ex = &spec.expectations;
    for t in &ex.targets {
        // `scrapedBy: chart` holds only for a plugin that has a chart.
        let by_chart = t.scraped_by.as_deref() == Some("chart");
        b.expectations.targets.push(TargetExpectation {
            scraped_by: match (&spec.chart, by_chart) {
                (Some(chart), true) => Some(format!("chart {}", chart.name)),
                _ => None,
            },
            ..t.clone()
        });
    }
    b.expectations
        .log_namespaces
        .extend(ex.log_namespaces.iter().cloned());
    b.expectations
        .external_metrics
        .extend(ex.external_metrics.iter().cloned());
    let fields = Fields { b, p };
    // A queue's name and URL are the plugin's values (remote-write's `url`).
    let mut queues = Vec::new();
    for queue in &ex.remote_write {
        queues.push(RemoteWriteExpectation {
            name: fields.with_values(&queue.name)?,
            url: fields.with_values(&queue.url)?,
        });
    }
    let mut hpas = Vec::new();
    for hpa in &ex.hpas {
        hpas.push(HpaExpectation {
            namespace: fields.expand(&hpa.namespace)?,
            name: fields.expand(&hpa.name)?,
        });
    }
    let load = match &ex.load {
        Some(load) => Some(LoadExpectation {
            url: fields.expand(&load.url)?,
            hpa: load.hpa.as_deref().map(|h| fields.expand(h)).transpose()?,
            ..load.clone()
        }),
        None => None,
    };
    let scale_out = match &ex.scale_out {
        Some(s) => Some(scale_out_of(s, &fields)?),
        None => None,
    };
    b.expectations.remote_write.extend(queues);
    b.expectations.hpas.extend(hpas);
    if let Some(load) = load {
        if b.expectations.load.is_some() {
            b.warnings.push(format!(
                "plugin {} also defines a load expectation; the first one ({}) is used",
                p.name(),
                b.expectations.load.as_ref().map_or("", |l| l.url.as_str())
            ));
        } else {
            b.expectations.load = Some(load);
        }
    }
    if b.scale_out.is_none() {
        b.scale_out = scale_out;
    }
    Ok(())
}

/// A plugin's expectation fields: templates like its values.yaml (where
/// its HPA and load target live depends on the namespace), or like its
/// manifests (with `values`).
struct Fields<'b, 'a> {
    b: &'b Builder<'a>,
    p: &'b EnabledPlugin,
}

impl Fields<'_, '_> {
    fn source(&self, text: &str) -> Source {
        Source::new(self.p.entry.files.display("plugin.yaml"), text.to_string())
    }

    fn expand(&self, text: &str) -> Result<String, RenderError> {
        Ok(template::render(&self.source(text), &self.b.ctx)?.text)
    }

    fn with_values(&self, text: &str) -> Result<String, RenderError> {
        Ok(
            template::render_with_values(&self.source(text), &self.b.ctx, &self.p.values)?
                .text
                .trim()
                .to_string(),
        )
    }
}

/// The load sized from the autoscaler's scale-out point, when both exist.
pub fn derive_load(b: &mut Builder<'_>) {
    if let (Some(l), Some(s)) = (&b.expectations.load, &b.scale_out) {
        b.expectations.load = Some(load::derive(l, s));
    }
}

/// An autoscaler's `expectations.scaleOut`, its templates rendered with the
/// plugin's values and checked (file and key path on a bad one).
fn scale_out_of(
    s: &crate::model::plugin::ScaleOutExpectation,
    fields: &Fields<'_, '_>,
) -> Result<load::ScaleOut, RenderError> {
    let manifest = fields.p.entry.files.get("plugin.yaml").unwrap_or_default();
    let field = |text: &str| fields.with_values(text);
    let bad = |key: &str, value: &str, expected: &str| -> RenderError {
        crate::catalog::locate(
            &manifest,
            &format!("spec.expectations.scaleOut.{key}"),
            format!(
                "`{}` is not {expected}",
                value.chars().take(64).collect::<String>()
            ),
        )
        .into()
    };
    let duration = |key: &str, text: &str| -> Result<std::time::Duration, RenderError> {
        let value = field(text)?;
        humantime::parse_duration(&value)
            .ok()
            .filter(|d| !d.is_zero() && *d <= std::time::Duration::from_secs(3600))
            .ok_or_else(|| bad(key, &value, "a duration up to 1h (e.g. 2m)"))
    };
    let min = field(&s.min_replicas)?;
    let rps = field(&s.requests_per_replica)?;
    Ok(load::ScaleOut {
        hpa: field(&s.hpa)?,
        min_replicas: min
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| bad("minReplicas", &min, "a replica count from 1 to 1000"))?,
        requests_per_replica: rps
            .parse::<f64>()
            .ok()
            .filter(|r| r.is_finite() && *r > 0.0)
            .ok_or_else(|| {
                bad(
                    "requestsPerReplica",
                    &rps,
                    "a positive number of requests per second",
                )
            })?,
        window: duration("window", &s.window)?,
        interval: duration("interval", &s.interval)?,
    })
}

/// The bundle's own expectations, once every stage has added to it: rule
/// groups, receivers, one expectation per job (and a warning for a job
/// nothing scrapes), the log namespaces, sorted lists.
pub fn finish(b: &mut Builder<'_>) {
    let mut groups = std::mem::take(&mut b.rule_groups);
    groups.sort();
    let ex = &mut b.expectations;
    ex.rule_groups = groups;
    ex.receivers = alertmanager::receiver_names(&b.r.alerting);
    ex.targets = merge_targets(std::mem::take(&mut ex.targets), &scraped_jobs(&b.objects));
    for t in &ex.targets {
        if t.scraped_by.is_none() && t.requires.is_none() {
            b.warnings.push(format!(
                "{UNBACKED} `{}`: nothing in the bundle scrapes it (add a ServiceMonitor, or \
                 declare the system it belongs to with `requires:` in the plugin's expectation)",
                t.job
            ));
        }
    }
    let mut log_ns: BTreeSet<String> = ex.log_namespaces.drain(..).collect();
    if b.r
        .plugins
        .iter()
        .any(|p| p.entry.plugin.spec.phase == Phase::Logs)
    {
        log_ns.insert(b.r.namespace.clone());
    }
    ex.log_namespaces = log_ns.into_iter().collect();
    ex.dashboards.sort();
    ex.external_metrics.sort();
    ex.external_metrics.dedup();
    ex.hpas.sort();
    ex.hpas.dedup();
}

/// The checks the verify step lists: those the bundle declares something for.
pub fn verify_checks(ex: &Expectations) -> Vec<CheckId> {
    let mut checks = vec![
        CheckId::Targets,
        CheckId::Rules,
        CheckId::Alertmanager,
        CheckId::Notifications,
    ];
    if !ex.log_namespaces.is_empty() {
        checks.push(CheckId::Logs);
    }
    if !ex.dashboards.is_empty() {
        checks.push(CheckId::Dashboards);
    }
    if !ex.external_metrics.is_empty() || !ex.hpas.is_empty() {
        checks.push(CheckId::Autoscaling);
    }
    if ex.load.is_some() {
        checks.push(CheckId::Load);
    }
    if !ex.remote_write.is_empty() {
        checks.push(CheckId::RemoteWrite);
    }
    checks
}

/// How a plan warning about an expected job nothing scrapes begins (the
/// lint of every profile looks for it).
pub const UNBACKED: &str = "expected target job";

/// The jobs the bundle's monitors make Prometheus scrape, each with the
/// object that does: a relabelling that sets `job`, a Probe's `jobName`, or
/// else (a ServiceMonitor's job is its Service's name) the monitor's name
/// and the names its selector matches.
fn scraped_jobs(objects: &[(Phase, Object)]) -> BTreeMap<String, String> {
    let mut jobs = BTreeMap::new();
    for (_, o) in objects {
        let kind = o.kind();
        if !matches!(
            kind,
            "ServiceMonitor" | "PodMonitor" | "Probe" | "ScrapeConfig"
        ) {
            continue;
        }
        let by = format!("{kind}/{}", o.name());
        let spec = &o.value["spec"];
        let mut names: Vec<String> = Vec::new();
        for endpoints in ["endpoints", "podMetricsEndpoints"] {
            for e in spec[endpoints].as_array().into_iter().flatten() {
                for r in e["relabelings"].as_array().into_iter().flatten() {
                    if r["targetLabel"] == "job"
                        && let Some(job) = r["replacement"].as_str()
                    {
                        names.push(job.to_string());
                    }
                }
            }
        }
        if let Some(job) = spec["jobName"].as_str() {
            names.push(job.to_string());
        }
        if names.is_empty() {
            names.push(o.name().to_string());
            if let Some(labels) = spec["selector"]["matchLabels"].as_object() {
                names.extend(labels.values().filter_map(|v| v.as_str().map(String::from)));
            }
        }
        for name in names {
            jobs.entry(name).or_insert_with(|| by.clone());
        }
    }
    jobs
}

/// One expectation per job: the highest minimum wins, what scrapes it is
/// the bundle's monitor or the plugin's chart, and a job the bundle scrapes
/// needs no outside system.
fn merge_targets(
    targets: Vec<TargetExpectation>,
    scraped: &BTreeMap<String, String>,
) -> Vec<TargetExpectation> {
    let mut by_job: BTreeMap<String, TargetExpectation> = BTreeMap::new();
    for t in targets {
        match by_job.get_mut(&t.job) {
            Some(known) => {
                known.min = known.min.max(t.min);
                known.scraped_by = known.scraped_by.take().or(t.scraped_by);
                known.requires = known.requires.take().or(t.requires);
            }
            None => {
                by_job.insert(t.job.clone(), t);
            }
        }
    }
    by_job
        .into_values()
        .map(|mut t| {
            if let Some(by) = scraped.get(&t.job) {
                t.scraped_by = Some(by.clone());
            }
            t
        })
        .collect()
}
