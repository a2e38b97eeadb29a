//! `alertmanager`: Alertmanager's API (/-/ready, /api/v2/status). The
//! `notifications` check is in [`super::notifications`].

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use super::{Context, Finding, settle};

#[derive(Deserialize)]
struct AmStatus {
    cluster: Cluster,
    config: Config,
}

#[derive(Deserialize)]
struct Cluster {
    status: String,
}

#[derive(Deserialize)]
struct Config {
    original: String,
}

/// Ready, config loaded, every tier receiver present, cluster settled.
pub async fn status(ctx: &Context<'_>, url: &str) -> Finding {
    let expected = &ctx.bundle.plan.expectations.receivers;
    settle(ctx.deadline, || async {
        if let Err(e) = ctx.http.get_text(&format!("{url}/-/ready")).await {
            return Finding::fail(format!("Alertmanager is not ready: {e}"), vec![]);
        }
        let status: AmStatus = match ctx.http.get_json(&format!("{url}/api/v2/status")).await {
            Ok(s) => s,
            Err(e) => return Finding::fail(format!("no status: {e}"), vec![]),
        };
        let config: Value = match serde_saphyr::from_str(&status.config.original) {
            Ok(c) => c,
            Err(e) => {
                return Finding::fail(format!("the loaded config does not parse: {e}"), vec![]);
            }
        };
        let loaded: BTreeSet<&str> = config["receivers"]
            .as_array()
            .map(|r| r.iter().filter_map(|r| r["name"].as_str()).collect())
            .unwrap_or_default();
        let missing: Vec<&str> = expected
            .iter()
            .map(String::as_str)
            .filter(|r| !loaded.contains(r))
            .collect();
        let evidence = vec![
            format!("cluster: {}", status.cluster.status),
            format!(
                "receivers loaded: {}",
                loaded.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        ];
        if !missing.is_empty() {
            return Finding::fail(
                format!(
                    "receivers missing from the loaded config: {}",
                    missing.join(", ")
                ),
                evidence,
            );
        }
        if !matches!(status.cluster.status.as_str(), "ready" | "disabled") {
            return Finding::fail(
                format!("the cluster is {} (not settled)", status.cluster.status),
                evidence,
            );
        }
        Finding::pass(
            format!(
                "ready; {} tier receivers loaded; cluster {}",
                expected.len(),
                status.cluster.status
            ),
            evidence,
        )
    })
    .await
}
