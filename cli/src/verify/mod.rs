//! `verify`: live checks that prove the stack works, each with its evidence.
//! Checks run concurrently, so a run takes about as long as its slowest one.
//! What to expect comes from plan.json's `expectations`.

pub mod alertmanager;
pub mod autoscaling;
pub mod grafana;
pub mod http;
pub mod load;
pub mod loadgen;
pub mod loki;
pub mod prometheus;
pub mod report;

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cluster::Kube;
use crate::render::Bundle;
use http::Http;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CheckId {
    Targets,
    Rules,
    Alertmanager,
    Notifications,
    Logs,
    Dashboards,
    Autoscaling,
    Load,
}

impl CheckId {
    pub const ALL: [CheckId; 8] = [
        CheckId::Targets,
        CheckId::Rules,
        CheckId::Alertmanager,
        CheckId::Notifications,
        CheckId::Logs,
        CheckId::Dashboards,
        CheckId::Autoscaling,
        CheckId::Load,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CheckId::Targets => "targets",
            CheckId::Rules => "rules",
            CheckId::Alertmanager => "alertmanager",
            CheckId::Notifications => "notifications",
            CheckId::Logs => "logs",
            CheckId::Dashboards => "dashboards",
            CheckId::Autoscaling => "autoscaling",
            CheckId::Load => "load",
        }
    }
}

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
    /// rules evaluated, notifications delivered).
    pub timeout: Duration,
    /// Labels synthetic alerts with this run, so they can be told apart.
    pub run_id: String,
    /// The cluster, when reachable: logs (namespaces, the marker pod),
    /// autoscaling (external metrics, HPAs) and load (the k6 Job) use it.
    pub kube: Option<Kube>,
    /// Grafana's client: the admin credentials from the cluster's Secret
    /// when no others were given.
    pub grafana: Http,
    pub load: LoadOptions,
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

fn need<'a>(url: &'a Option<String>, flag: &str) -> Result<&'a str, Finding> {
    url.as_deref()
        .map(|u| u.trim_end_matches('/'))
        .ok_or_else(|| {
            Finding::fail(
                format!(
                    "no endpoint: pass {flag} (or run where port-forwarding reaches the cluster)"
                ),
                vec![],
            )
        })
}

async fn run_check(id: CheckId, ctx: &Context<'_>) -> Finding {
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
                alertmanager::notifications(
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
        })
    }
    .await;
    result.unwrap_or_else(|finding| finding)
}

/// Runs the selected checks concurrently and collects their results in the
/// order asked.
pub async fn run(ctx: &Context<'_>, checks: &[CheckId]) -> Report {
    let futures = checks.iter().map(|id| async move {
        let started = Instant::now();
        let finding = run_check(*id, ctx).await;
        CheckResult {
            id: *id,
            status: finding.status,
            duration_ms: started.elapsed().as_millis(),
            summary: finding.summary,
            evidence: finding.evidence,
        }
    });
    let checks = futures::future::join_all(futures).await;
    Report {
        ok: checks.iter().all(|c| c.status != Status::Fail),
        checks,
    }
}

/// Polls `attempt` until it passes or the deadline passes; the last finding
/// is the answer. Used for things that settle (first scrapes, evaluations).
pub async fn settle<F, Fut>(timeout: Duration, mut attempt: F) -> Finding
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Finding>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let finding = attempt().await;
        if finding.status != Status::Fail || Instant::now() >= deadline {
            return finding;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A run id: 12 hex characters from the OS's random source.
pub fn run_id() -> String {
    let mut bytes = [0u8; 6];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
