//! `targets` and `rules`: Prometheus's own view, from its HTTP API
//! (/api/v1/targets, streamed through [`super::targets`]; /api/v1/rules).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::targets::{MAX_LISTED, TargetsSeed};
use super::{Context, Finding, settle};

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct Rules {
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    name: String,
    health: String,
    #[serde(rename = "lastError", default)]
    last_error: String,
}

/// Every expected job has at least its minimum of targets up; every down
/// target is listed with its last error. A job that belongs to a system
/// outside the bundle (`requires`) is checked only when Prometheus
/// discovered it, and listed as skipped, with the reason, otherwise.
pub async fn targets(ctx: &Context<'_>, url: &str) -> Finding {
    let expected = &ctx.bundle.plan.expectations.targets;
    let api = format!("{url}/api/v1/targets?state=active");
    let jobs: BTreeSet<String> = expected.iter().map(|t| t.job.clone()).collect();
    settle(ctx.deadline, || async {
        let seed = TargetsSeed { jobs: jobs.clone() };
        let tallies = match ctx.http.get_json_streamed(&api, seed).await {
            Ok(t) => t,
            Err(e) => return Finding::fail(format!("Prometheus did not answer: {e}"), vec![]),
        };
        let mut evidence = Vec::new();
        let mut short = Vec::new();
        let mut skipped = Vec::new();
        let (mut up_total, mut total) = (0, 0);
        for want in expected {
            let of_job = tallies.get(&want.job).cloned().unwrap_or_default();
            if let (Some(system), 0) = (&want.requires, of_job.total) {
                evidence.push(format!(
                    "{}: skipped: requires {system}, which lives outside the bundle, and \
                     Prometheus discovered no target of it",
                    want.job
                ));
                skipped.push(format!("{} (requires {system})", want.job));
                continue;
            }
            let up = of_job.up;
            up_total += up;
            total += of_job.total;
            evidence.push(format!(
                "{}: {up}/{} up (min {}){}",
                want.job,
                of_job.total,
                want.min,
                if of_job.standin { " [stand-in]" } else { "" }
            ));
            if (up as u64) < want.min as u64 {
                short.push(want.job.clone());
            }
            if of_job.down_count > MAX_LISTED {
                evidence.push(format!(
                    "  … {} down targets of {}, the first {MAX_LISTED} listed",
                    of_job.down_count, want.job
                ));
            }
            for (instance, why) in &of_job.down {
                evidence.push(format!(
                    "  down: job {} instance {instance}: {why}",
                    want.job
                ));
            }
        }
        let skipped_note = if skipped.is_empty() {
            String::new()
        } else {
            format!("; skipped: {}", skipped.join(", "))
        };
        if short.is_empty() && skipped.len() == expected.len() && !expected.is_empty() {
            let mut finding = Finding::skip(format!(
                "every expected job lives outside the bundle{skipped_note}"
            ));
            finding.evidence = evidence;
            finding
        } else if short.is_empty() {
            Finding::pass(
                format!(
                    "{}, {up_total}/{total} targets up{skipped_note}",
                    crate::plural::count(expected.len() - skipped.len(), "job")
                ),
                evidence,
            )
        } else {
            Finding::fail(
                format!("below their minimum of targets up: {}", short.join(", ")),
                evidence,
            )
        }
    })
    .await
}

/// Every rule group of the bundle is loaded and every rule in it evaluates
/// without error; missing groups fail, extra ones are named.
pub async fn rules(ctx: &Context<'_>, url: &str) -> Finding {
    let expected: BTreeSet<&String> = ctx.bundle.plan.expectations.rule_groups.iter().collect();
    let api = format!("{url}/api/v1/rules");
    settle(ctx.deadline, || async {
        let rules: Envelope<Rules> = match ctx.http.get_json(&api).await {
            Ok(r) => r,
            Err(e) => return Finding::fail(format!("Prometheus did not answer: {e}"), vec![]),
        };
        let loaded: BTreeMap<&String, &Group> =
            rules.data.groups.iter().map(|g| (&g.name, g)).collect();
        let missing: Vec<&String> = expected
            .iter()
            .filter(|g| !loaded.contains_key(**g))
            .copied()
            .collect();
        let extra: Vec<&String> = loaded
            .keys()
            .filter(|g| !expected.contains(**g))
            .copied()
            .collect();
        let mut evidence = Vec::new();
        let mut broken = Vec::new();
        let mut pending = 0;
        let mut count = 0;
        for group in expected.iter().filter_map(|g| loaded.get(*g)) {
            let ok = group.rules.iter().filter(|r| r.health == "ok").count();
            evidence.push(format!(
                "{}: {ok}/{} rules ok",
                group.name,
                group.rules.len()
            ));
            for rule in &group.rules {
                count += 1;
                match rule.health.as_str() {
                    "ok" => {}
                    "err" => {
                        broken.push(format!("{}/{}", group.name, rule.name));
                        evidence.push(format!(
                            "error: {} / {}: {}",
                            group.name, rule.name, rule.last_error
                        ));
                    }
                    _ => pending += 1,
                }
            }
        }
        if !missing.is_empty() {
            evidence.push(format!(
                "missing groups: {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !extra.is_empty() {
            evidence.push(format!(
                "extra groups (not from this bundle): {}",
                extra
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !missing.is_empty() {
            Finding::fail(
                format!("{} rule group(s) not loaded", missing.len()),
                evidence,
            )
        } else if !broken.is_empty() {
            Finding::fail(
                format!(
                    "{} rule(s) fail to evaluate: {}",
                    broken.len(),
                    broken.join(", ")
                ),
                evidence,
            )
        } else if pending > 0 {
            evidence.push(format!("{pending} rule(s) not evaluated yet"));
            Finding::fail(
                format!("{pending} of {count} rules have not been evaluated yet"),
                evidence,
            )
        } else {
            Finding::pass(
                format!(
                    "{} loaded, {} evaluate without error",
                    crate::plural::count(expected.len(), "group"),
                    crate::plural::count(count, "rule")
                ),
                evidence,
            )
        }
    })
    .await
}

#[derive(Deserialize)]
struct Instant {
    result: Vec<InstantSample>,
}

#[derive(Deserialize)]
struct InstantSample {
    value: (f64, String),
}

/// An instant query's value: the sum over the returned series, 0 when
/// nothing matches (a counter nobody incremented yet).
pub async fn query_value(
    http: &super::http::Http,
    url: &str,
    expr: &str,
) -> Result<f64, super::http::HttpError> {
    let api = format!("{url}/api/v1/query?query={}", super::http::encode(expr));
    let answer: Envelope<Instant> = http.get_json(&api).await?;
    Ok(answer
        .data
        .result
        .iter()
        .filter_map(|s| s.value.1.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .sum())
}
