//! `load`: generate the load plan.json describes (a k6 Job in the cluster,
//! or the builtin generator from this machine), report requests, errors and
//! p50/p95/p99, then prove the latency and throughput series in Prometheus
//! moved and, when an HPA is named, that it scaled out (seed 004), with the
//! HPA's decisions over the run as a timeline: its replicas, desired
//! replicas and metric values each time they changed, and the rescale
//! events the controller recorded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::Api;

use super::http::{Auth, Http};
use super::loadgen::{self, LoadSummary};
use super::{Context, Finding, prometheus};
use crate::cluster::loadjob;

/// Where the load comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// A k6 Job in the cluster, with the k6 plugin's script.
    #[default]
    K6,
    /// The generator built into telltale, run from this machine.
    Builtin,
    /// The k6 plugin's script from the bundle, with `k6` on this machine's
    /// PATH: the same script and summary as the Job, no cluster needed.
    K6Local,
}

/// Seed 002's reliability objective: fewer than 1% of requests fail.
const MAX_ERROR_RATIO: f64 = 0.01;

pub async fn load(ctx: &Context<'_>, prometheus_url: &str) -> Finding {
    let Some(want) = &ctx.bundle.plan.expectations.load else {
        return Finding::skip(
            "no plugin of this profile declares a load test (the k6 plugin does)",
        );
    };
    let url = ctx.load.url.clone().unwrap_or_else(|| want.url.clone());
    let duration = match humantime::parse_duration(&want.duration) {
        Ok(d) => ctx.load.duration.unwrap_or(d),
        Err(e) => {
            return Finding::fail(
                format!(
                    "plan.json's load duration `{}` is invalid: {e}",
                    want.duration
                ),
                vec![],
            );
        }
    };
    if ctx.load.engine == Engine::K6 && ctx.kube.is_none() {
        return Finding::skip(
            "could not run: the k6 engine needs a cluster; pass --load-engine builtin to load from here",
        );
    }
    let rate = ctx.load.rate.unwrap_or(want.rate);
    let mut evidence = vec![format!(
        "{} at {rate}/s for {}s against {url}",
        match ctx.load.engine {
            Engine::K6 => "k6 Job",
            Engine::Builtin => "builtin generator",
            Engine::K6Local => "k6 (local)",
        },
        duration.as_secs()
    )];

    let mut before = Vec::new();
    for expr in &want.moves {
        match prometheus::query_value(&ctx.http, prometheus_url, expr).await {
            Ok(v) => before.push(v),
            Err(e) => {
                return Finding::fail(
                    format!("cannot read `{expr}` before the load: {e}"),
                    evidence,
                );
            }
        }
    }
    let hpa = match (&want.hpa, &ctx.kube) {
        (Some(name), Some(kube)) => {
            let (ns, n) = name.split_once('/').unwrap_or(("default", name.as_str()));
            let api: Api<HorizontalPodAutoscaler> = Api::namespaced(kube.client.clone(), ns);
            let replicas = api
                .get_opt(n)
                .await
                .ok()
                .flatten()
                .and_then(|h| h.status)
                .and_then(|s| s.current_replicas)
                .unwrap_or(0);
            Some((name.clone(), api, n.to_string(), replicas))
        }
        _ => None,
    };
    // The HPA's decisions while the load runs and until the check ends.
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let watcher = hpa.as_ref().map(|(_, api, n, _)| {
        let (api, n, timeline) = (api.clone(), n.clone(), timeline.clone());
        let started = Instant::now();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                if let Ok(Some(h)) = api.get_opt(&n).await
                    && let Ok(mut t) = timeline.lock()
                {
                    t.observe(started.elapsed(), &h);
                }
                tokio::time::sleep(TIMELINE_POLL).await;
            }
        }))
    });

    let summary = match ctx.load.engine {
        Engine::Builtin => {
            let http = match Http::new(Auth::None) {
                Ok(h) => h,
                Err(e) => return Finding::fail(e.to_string(), evidence),
            };
            loadgen::run(&http, &url, rate, duration).await
        }
        Engine::K6Local => {
            let Some(manifest) = ctx.bundle.files.iter().find_map(|(path, text)| {
                path.ends_with(&format!("_{}.yaml", loadjob::SCRIPT_CONFIGMAP))
                    .then_some(text)
            }) else {
                return Finding::fail(
                    format!(
                        "the bundle has no {} ConfigMap: enable the k6 plugin, or use --load-engine builtin",
                        loadjob::SCRIPT_CONFIGMAP
                    ),
                    evidence,
                );
            };
            let script = match loadjob::script_from_configmap(manifest) {
                Ok(s) => s,
                Err(e) => return Finding::fail(e.to_string(), evidence),
            };
            let started = Instant::now();
            let k6 = std::path::Path::new("k6");
            match loadjob::run_local(k6, &script, &url, rate, duration).await {
                Ok(k6) => k6_summary(&k6, started.elapsed().min(duration)),
                Err(e) => return Finding::fail(e.to_string(), evidence),
            }
        }
        Engine::K6 => {
            let Some(kube) = &ctx.kube else {
                return Finding::fail(
                    "the k6 engine needs a cluster; pass --load-engine k6-local (k6 on this machine) or builtin to load from here",
                    evidence,
                );
            };
            let started = Instant::now();
            match loadjob::run(
                kube,
                &ctx.bundle.plan.namespace,
                &ctx.run_id,
                &url,
                rate,
                duration,
            )
            .await
            {
                Ok(k6) => k6_summary(&k6, started.elapsed().min(duration)),
                Err(e) => return Finding::fail(e.to_string(), evidence),
            }
        }
    };
    evidence.push(summary.line());
    if let Some(e) = &summary.first_error {
        evidence.push(format!("first error: {e}"));
    }

    // The series must move: give Prometheus a few scrapes to see the load.
    let mut problems = Vec::new();
    // The load took its own time: the waits end that much after the run's.
    let deadline = ctx.deadline + duration;
    let mut moved = vec![false; want.moves.len()];
    let mut after = before.clone();
    loop {
        for (i, expr) in want.moves.iter().enumerate() {
            if moved[i] {
                continue;
            }
            if let Ok(v) = prometheus::query_value(&ctx.http, prometheus_url, expr).await {
                after[i] = v;
                moved[i] = v > before[i];
            }
        }
        if moved.iter().all(|m| *m) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (i, expr) in want.moves.iter().enumerate() {
        evidence.push(format!("{expr}: {} → {}", before[i], after[i]));
        if !moved[i] {
            problems.push(format!(
                "`{expr}` did not move ({} → {})",
                before[i], after[i]
            ));
        }
    }

    if let Some((name, api, n, replicas_before)) = hpa {
        let mut replicas = replicas_before;
        while Instant::now() < deadline {
            replicas = api
                .get_opt(&n)
                .await
                .ok()
                .flatten()
                .and_then(|h| h.status)
                .and_then(|s| s.current_replicas)
                .unwrap_or(replicas);
            if replicas > replicas_before {
                break;
            }
            // Never past the deadline: the check's own bound is right after it.
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(Duration::from_secs(2).min(left)).await;
        }
        drop(watcher);
        evidence.push(format!(
            "HPA {name}: replicas {replicas_before} → {replicas}"
        ));
        if let Ok(t) = timeline.lock() {
            evidence.extend(t.lines(&name));
        }
        if let Some(kube) = &ctx.kube {
            let ns = name.split_once('/').map_or("default", |(ns, _)| ns);
            // Read at or after the deadline: within the grace a request gets.
            let events = rescale_events(kube, ns, &n);
            if let Ok(lines) = tokio::time::timeout(super::REQUEST_GRACE, events).await {
                evidence.extend(lines);
            }
        }
        if replicas <= replicas_before {
            problems.push(format!(
                "HPA {name} did not scale out ({replicas_before} → {replicas})"
            ));
        }
    } else if let Some(name) = &want.hpa {
        evidence.push(format!("HPA {name}: not checked (no cluster reachable)"));
    }

    if summary.error_ratio() > MAX_ERROR_RATIO {
        problems.insert(
            0,
            format!(
                "{} of {} requests failed ({:.1}% > 1%)",
                summary.errors,
                summary.requests,
                summary.error_ratio() * 100.0
            ),
        );
    }
    if problems.is_empty() {
        Finding::pass(
            format!(
                "{} requests, {} errors, p95 {:.0}ms; {} series moved",
                summary.requests,
                summary.errors,
                summary.p95.as_secs_f64() * 1000.0,
                want.moves.len()
            ),
            evidence,
        )
    } else {
        Finding::fail(problems.join("; "), evidence)
    }
}

/// A task that stops when its handle goes, on every return path.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often the HPA is read for the timeline.
const TIMELINE_POLL: Duration = Duration::from_secs(3);
/// The most timeline entries kept (a flapping HPA over a long load).
const TIMELINE_MAX: usize = 50;

/// The HPA's state each time it changed: replicas, desired replicas and
/// the metric values it decided on, as `kubectl describe hpa` shows them.
#[derive(Debug, Default)]
pub struct Timeline {
    entries: Vec<(Duration, String)>,
}

impl Timeline {
    pub fn observe(&mut self, at: Duration, hpa: &HorizontalPodAutoscaler) {
        let state = describe_state(hpa);
        if self.entries.last().is_some_and(|(_, last)| *last == state)
            || self.entries.len() >= TIMELINE_MAX
        {
            return;
        }
        self.entries.push((at, state));
    }

    /// One evidence line per change, `t+SECONDS`.
    pub fn lines(&self, name: &str) -> Vec<String> {
        self.entries
            .iter()
            .map(|(at, state)| format!("HPA {name} at t+{}s: {state}", at.as_secs()))
            .collect()
    }
}

fn describe_state(hpa: &HorizontalPodAutoscaler) -> String {
    let status = hpa.status.as_ref();
    let current = status.and_then(|s| s.current_replicas).unwrap_or(0);
    let desired = status.map(|s| s.desired_replicas).unwrap_or(0);
    let targets: Vec<String> = hpa
        .spec
        .iter()
        .flat_map(|s| s.metrics.iter().flatten())
        .filter_map(|m| {
            let e = m.external.as_ref()?;
            let t = &e.target;
            let target = t
                .value
                .as_ref()
                .or(t.average_value.as_ref())
                .map(|q| q.0.clone())?;
            Some((e.metric.name.clone(), target))
        })
        .map(|(n, t)| format!("{n} target {t}"))
        .collect();
    let values = match super::autoscaling::current_values(hpa) {
        Ok(v) => v.join(", "),
        Err(why) => why,
    };
    let limited = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "ScalingLimited" && c.status == "True")
        .and_then(|c| c.reason.clone())
        .map(|r| format!("; limited: {r}"))
        .unwrap_or_default();
    let targets = if targets.is_empty() {
        String::new()
    } else {
        format!(" ({})", targets.join(", "))
    };
    format!("replicas {current}, desired {desired}; {values}{targets}{limited}")
}

/// The controller's rescale events for the HPA (`SuccessfulRescale`: "New
/// size: N; reason: …"), oldest first; none when events cannot be read.
async fn rescale_events(kube: &crate::cluster::Kube, namespace: &str, name: &str) -> Vec<String> {
    use k8s_openapi::api::core::v1::Event;
    let api: Api<Event> = Api::namespaced(kube.client.clone(), namespace);
    let params = kube::api::ListParams::default().fields(&format!(
        "involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name={name}"
    ));
    let Ok(list) = api.list(&params).await else {
        return Vec::new();
    };
    let mut events: Vec<&Event> = list
        .items
        .iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some(name)
                && e.reason.as_deref() == Some("SuccessfulRescale")
        })
        .collect();
    events.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    events
        .iter()
        .map(|e| {
            format!(
                "HPA {namespace}/{name} event SuccessfulRescale: {}",
                e.message.as_deref().unwrap_or_default()
            )
        })
        .collect()
}

/// k6's summary (from the Job or a local run) as the load check reports it.
fn k6_summary(k6: &loadjob::K6Summary, elapsed: Duration) -> LoadSummary {
    LoadSummary {
        requests: k6.requests as u64,
        errors: k6.failed as u64,
        p50: Duration::from_secs_f64(k6.p50_ms / 1000.0),
        p95: Duration::from_secs_f64(k6.p95_ms / 1000.0),
        p99: Duration::from_secs_f64(k6.p99_ms / 1000.0),
        elapsed,
        first_error: None,
    }
}
