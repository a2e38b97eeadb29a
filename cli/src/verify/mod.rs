//! `verify`: live checks that prove the stack works, each with its evidence.
//! Checks run concurrently, so a run takes about as long as its slowest one.
//! What to expect comes from plan.json's `expectations`.

pub mod alertmanager;
pub mod autoscaling;
pub mod grafana;
pub mod grafana_time;
pub mod grafana_variables;
pub mod http;
pub mod hub;
pub mod load;
pub mod loadgen;
pub mod loki;
pub mod notifications;
pub mod on_cluster;
pub mod prometheus;
pub mod remote_write;
pub mod report;
pub mod targets;
pub mod urls;

use std::time::Duration;

use tokio::time::Instant;

use serde::Serialize;

use crate::cluster::Kube;
use crate::render::Bundle;
use http::Http;

pub use crate::render::plan::CheckId;

/// pass, fail or skip: the same three outcomes as a preflight check.
pub use crate::cluster::preflight::Status;

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: CheckId,
    pub status: Status,
    pub duration_ms: u128,
    pub summary: String,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub checks: Vec<CheckResult>,
}

/// Where the stack answers.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    pub prometheus: Option<String>,
    pub alertmanager: Option<String>,
    pub grafana: Option<String>,
    pub loki: Option<String>,
}

/// Everything a check may read.
pub struct Context<'a> {
    pub bundle: &'a Bundle,
    pub http: Http,
    pub endpoints: Endpoints,
    /// How long a check may wait for the stack to settle (targets scraped,
    /// rules evaluated, notifications delivered): `--timeout`.
    pub timeout: Duration,
    /// When the run ends: `timeout` after it started. Every request and every
    /// wait ends by then (the load check adds the load's own duration).
    pub deadline: Instant,
    /// Labels synthetic alerts with this run, so they can be told apart.
    pub run_id: String,
    /// The cluster, when reachable: logs (namespaces, the marker pod),
    /// autoscaling (external metrics, HPAs) and load (the k6 Job) use it.
    pub kube: Option<Kube>,
    /// Grafana's client: the admin credentials from the cluster's Secret
    /// when no others were given.
    pub grafana: Http,
    pub load: LoadOptions,
    /// Labels every synthetic alert also carries: the hub's fleet verify
    /// sends each spoke's with its `cluster`.
    pub synthetic_labels: std::collections::BTreeMap<String, String>,
}

/// Overrides of plan.json's load test, from the command line.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub engine: load::Engine,
    pub url: Option<String>,
    pub rate: Option<u32>,
    pub duration: Option<Duration>,
}

/// What a check found: pass or fail, a one-line summary, evidence lines.
pub struct Finding {
    pub status: Status,
    pub summary: String,
    pub evidence: Vec<String>,
}

impl Finding {
    pub fn pass(summary: impl Into<String>, evidence: Vec<String>) -> Finding {
        Finding {
            status: Status::Pass,
            summary: summary.into(),
            evidence,
        }
    }
    pub fn fail(summary: impl Into<String>, evidence: Vec<String>) -> Finding {
        Finding {
            status: Status::Fail,
            summary: summary.into(),
            evidence,
        }
    }
    pub fn skip(summary: impl Into<String>) -> Finding {
        Finding {
            status: Status::Skip,
            summary: summary.into(),
            evidence: Vec::new(),
        }
    }
}

/// The checks plan.json's verify step lists: those the profile declares
/// something for (no `load` without a load test, no `logs` without logs).
pub fn declared(bundle: &Bundle) -> Vec<CheckId> {
    bundle.plan.verify_checks()
}

/// What a check asked for by name proves when the profile declares nothing
/// for it: it is skipped, saying so.
fn undeclared(id: CheckId) -> Finding {
    Finding::skip(match id {
        CheckId::Load => "the profile declares no load test (the k6 plugin does)",
        CheckId::Autoscaling => "the profile declares no external metric and no HPA",
        CheckId::Logs => "the profile collects no logs",
        CheckId::Dashboards => "the profile installs no dashboard",
        CheckId::RemoteWrite => "the bundle remote-writes nowhere (the remote-write plugin does)",
        _ => "the profile declares nothing for this check",
    })
}

/// How the summary of a check that could not run here begins.
pub const COULD_NOT_RUN: &str = "could not run";

/// Nothing ran (every check skipped) and something could not run: the run
/// proved nothing, which is no success.
pub fn proved_nothing(checks: &[CheckResult]) -> bool {
    checks.iter().all(|c| c.status == Status::Skip)
        && checks.iter().any(|c| c.summary.starts_with(COULD_NOT_RUN))
}

/// Where a check's service answers; without it the check cannot run here,
/// and is skipped with the flag that would make it run.
fn need<'a>(url: &'a Option<String>, flag: &str) -> Result<&'a str, Finding> {
    url.as_deref()
        .map(|u| u.trim_end_matches('/'))
        .ok_or_else(|| {
            Finding::skip(format!(
                "{COULD_NOT_RUN}: no endpoint (pass {flag}, or run where port-forwarding reaches the cluster)"
            ))
        })
}

/// Told while checks run, so a terminal can show what is being waited on.
pub trait Progress: Sync {
    /// Every second: the checks still running and the time left.
    fn waiting(&self, pending: &[CheckId], left: Duration);
    /// All checks are done.
    fn finished(&self);
}

/// No progress shown (JSON output, tests, `up`'s own display).
pub struct Quiet;

impl Progress for Quiet {
    fn waiting(&self, _: &[CheckId], _: Duration) {}
    fn finished(&self) {}
}

async fn run_check(id: CheckId, ctx: &Context<'_>) -> Finding {
    if !declared(ctx.bundle).contains(&id) {
        return undeclared(id);
    }
    let result = async {
        Ok::<Finding, Finding>(match id {
            CheckId::Targets => {
                prometheus::targets(ctx, need(&ctx.endpoints.prometheus, "--prometheus-url")?).await
            }
            CheckId::Rules => {
                prometheus::rules(ctx, need(&ctx.endpoints.prometheus, "--prometheus-url")?).await
            }
            CheckId::Alertmanager => {
                alertmanager::status(
                    ctx,
                    need(&ctx.endpoints.alertmanager, "--alertmanager-url")?,
                )
                .await
            }
            CheckId::Notifications => {
                notifications::notifications(
                    ctx,
                    need(&ctx.endpoints.alertmanager, "--alertmanager-url")?,
                )
                .await
            }
            CheckId::Logs => loki::logs(ctx, need(&ctx.endpoints.loki, "--loki-url")?).await,
            CheckId::Dashboards => {
                grafana::dashboards(
                    ctx,
                    need(&ctx.endpoints.grafana, "--grafana-url")?,
                    &ctx.grafana,
                )
                .await
            }
            CheckId::Autoscaling => autoscaling::autoscaling(ctx).await,
            CheckId::Load => {
                load::load(ctx, need(&ctx.endpoints.prometheus, "--prometheus-url")?).await
            }
            CheckId::RemoteWrite => {
                remote_write::remote_write(
                    ctx,
                    need(&ctx.endpoints.prometheus, "--prometheus-url")?,
                )
                .await
            }
        })
    }
    .await;
    result.unwrap_or_else(|finding| finding)
}

/// How long after the deadline a request may still finish: the last look
/// of a check that polls, started at the deadline, gets to see its answer.
pub const REQUEST_GRACE: Duration = Duration::from_millis(500);

/// A check that has not answered this long after the deadline is stopped:
/// its requests already ended at the deadline, this is what they may take to
/// say so.
const GRACE: Duration = Duration::from_secs(1);

/// The most a line of evidence or a summary may carry.
const LINE_CAP: usize = 2000;

/// How long the load check may run past the deadline: the load's own length.
pub fn load_duration(ctx: &Context<'_>) -> Duration {
    ctx.load.duration.unwrap_or_else(|| {
        ctx.bundle
            .plan
            .expectations
            .load
            .as_ref()
            .and_then(|l| humantime::parse_duration(&l.duration).ok())
            .unwrap_or_default()
    })
}

/// Runs the selected checks concurrently and collects their results in the
/// order asked. No check outlives the deadline (plus [`GRACE`]), and nothing
/// in the report carries the credentials the run sent.
pub async fn run(ctx: &Context<'_>, checks: &[CheckId], progress: &dyn Progress) -> Report {
    let pending = std::sync::Mutex::new(checks.to_vec());
    let pending = &pending;
    let mut secrets = ctx.http.secrets();
    secrets.extend(ctx.grafana.secrets());
    secrets.sort_by_key(|f| std::cmp::Reverse(f.len()));
    let secrets = &secrets;
    let futures = checks.iter().map(|id| async move {
        let started = Instant::now();
        let mut end = ctx.deadline + GRACE;
        if *id == CheckId::Load {
            end += load_duration(ctx);
        }
        let finding = tokio::time::timeout_at(end, run_check(*id, ctx))
            .await
            .unwrap_or_else(|_| {
                Finding::fail(
                    format!(
                        "did not finish within --timeout {}",
                        humantime::format_duration(ctx.timeout)
                    ),
                    vec![],
                )
            });
        if let Ok(mut left) = pending.lock() {
            left.retain(|c| c != id);
        }
        let clean = |text: &str| http::cap(&http::redact(text, secrets), LINE_CAP);
        CheckResult {
            id: *id,
            status: finding.status,
            duration_ms: started.elapsed().as_millis(),
            summary: clean(&finding.summary),
            evidence: finding.evidence.iter().map(|e| clean(e)).collect(),
        }
    });
    let all = futures::future::join_all(futures);
    tokio::pin!(all);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let checks = loop {
        tokio::select! {
            done = &mut all => break done,
            _ = tick.tick() => {
                let left = pending.lock().map(|p| p.clone()).unwrap_or_default();
                progress.waiting(&left, ctx.deadline.saturating_duration_since(Instant::now()));
            }
        }
    };
    progress.finished();
    Report {
        ok: checks.iter().all(|c| c.status != Status::Fail) && !proved_nothing(&checks),
        checks,
    }
}

/// Polls `attempt` until it passes or `deadline` passes; the last finding
/// is the answer. Used for things that settle (first scrapes, evaluations).
pub async fn settle<F, Fut>(deadline: Instant, mut attempt: F) -> Finding
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Finding>,
{
    let mut last: Option<Finding> = None;
    loop {
        let finding = attempt().await;
        if finding.status != Status::Fail {
            return finding;
        }
        if Instant::now() >= deadline {
            // An attempt the deadline cut short says less than the one
            // before it (why the stack had not settled).
            let cut = finding.summary.contains(http::CUT_BY_DEADLINE);
            return match last {
                Some(previous) if cut => previous,
                _ => finding,
            };
        }
        last = Some(finding);
        // The last look happens at the deadline, not after it.
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_millis(500))).await;
    }
}

/// A run id: 12 hex characters from the OS's random source.
pub fn run_id() -> String {
    let mut bytes = [0u8; 6];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
