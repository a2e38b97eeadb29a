//! The escalation chain (alerting.escalation) end to end on the local stack:
//! real Prometheus 3 evaluates the bundle's escalation rules over a
//! critical alert driven by a synthetic series (the stand-in target's
//! `up`), real Alertmanager 0.33 routes each level, and the sink records
//! every delivery per receiver. Time is scaled down: levels at 0s, 8s and
//! 16s, Prometheus evaluating every second.
//!
//! Two alerts fire together: one nobody acknowledges reaches level 1
//! (Slack + SMS), then level 2 (the next on-call's Slack channel), then
//! PagerDuty; the other is acknowledged with `telltale ack` once its level 1
//! arrived, and the sink shows level 1 only.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::stack::LocalStack;
use serde_json::Value;

const UNACKED: &str = "EscalationDrillUnacked";
const ACKED: &str = "EscalationDrillAcked";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn rule(name: &str) -> String {
    format!(
        r#"      - alert: {name}
        expr: up{{job="drill"}} == 1
        labels: {{severity: critical, priority: P0, category: availability}}
        annotations:
          summary: "Drill target {{{{ $labels.instance }}}} is up"
          description: "A test alert of the escalation chain."
          sla: "none"
          runbook_url: "https://telltale.dev/runbooks/DRILL.md"
"#
    )
}

/// A plugin with the two drill alerts, and a profile with the chain.
fn setup(dir: &Path) {
    write(
        &dir.join("plugins/drill/plugin.yaml"),
        "apiVersion: telltale.dev/v1alpha1\nkind: Plugin\nmetadata:\n  name: drill\n  version: 0.1.0\n  description: Critical alerts that fire on the local stack (escalation tests).\nspec:\n  phase: alerting\n  expectations:\n    targets: [{job: drill, min: 1}]\n",
    );
    write(
        &dir.join("plugins/drill/rules/telltale-drill.yaml"),
        &format!(
            "groups:\n  - name: telltale-drill\n    rules:\n{}{}",
            rule(UNACKED),
            rule(ACKED)
        ),
    );
    write(
        &dir.join("drill.yaml"),
        r##"apiVersion: telltale.dev/v1alpha1
kind: Profile
metadata: {name: drill, description: "The escalation drill (tests)"}
spec:
  plugins:
    drill: {enabled: true}
  alerting:
    receivers:
      slack: {channel: "#ops-alerts", webhookUrl: {env: SLACK_WEBHOOK_URL}}
      pagerduty: {routingKey: {env: PAGERDUTY_ROUTING_KEY}}
      sms: {to: ["+15550100"], twilio: {accountSid: ACxxxx, from: "+15550199", authToken: {env: TWILIO_AUTH_TOKEN}}}
    escalation:
      policy: levels
      levels:
        - {after: 0s, notify: [slack, sms]}
        - {after: 8s, notify: [slack], slackChannel: "#oncall-2"}
        - {after: 16s, notify: [pagerduty]}
"##,
    );
}

fn telltale(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("telltale").unwrap();
    cmd.current_dir(dir).env("NO_COLOR", "1");
    cmd
}

fn received(stack: &LocalStack) -> Vec<Value> {
    ureq::get(&format!("{}/received", stack.url("sink")))
        .call()
        .unwrap()
        .body_mut()
        .read_json::<Vec<Value>>()
        .unwrap()
}

/// Where a delivery of `alert` went: `slack:critical`, `webhook:critical`
/// (the SMS bridge), `slack:escalation-2`, `pagerduty`.
fn deliveries(all: &[Value], alert: &str) -> Vec<String> {
    all.iter()
        .filter(|e| e["body"].to_string().contains(alert))
        .map(|e| {
            let path = e["path"].as_str().unwrap_or_default();
            match e["integration"].as_str().unwrap_or_default() {
                "pagerduty" => "pagerduty".to_string(),
                integration => format!(
                    "{integration}:{}",
                    path.rsplit('/').next().unwrap_or_default()
                ),
            }
        })
        .collect()
}

#[test]
fn unacknowledged_alerts_climb_every_level_and_an_acknowledged_one_stops_at_the_first() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let bundle = dir.path().join("bundle");
    let out = telltale(dir.path())
        .args([
            "plan",
            "--profile",
            "drill.yaml",
            "--plugin-dir",
            "plugins",
            "--out",
        ])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The generated promtool test holds at this scale too (seconds).
    crate::common::run_ok(
        std::process::Command::new(crate::common::require_tool("promtool"))
            .current_dir(bundle.join("prometheus/tests"))
            .args(["test", "rules", "telltale-escalation_test.yaml"]),
    );

    let stack = LocalStack::start(&bundle, &[]);
    let am = stack.url("alertmanager").to_string();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    // When each delivery was first seen, per alert.
    let mut seen: Vec<(String, String, Duration)> = Vec::new();
    let mut acked = false;
    let mut done_at: Option<Instant> = None;
    while Instant::now() < deadline {
        let all = received(&stack);
        for alert in [UNACKED, ACKED] {
            for d in deliveries(&all, alert) {
                if !seen.iter().any(|(a, x, _)| a == alert && *x == d) {
                    seen.push((alert.to_string(), d, started.elapsed()));
                }
            }
        }
        let has = |alert: &str, d: &str| seen.iter().any(|(a, x, _)| a == alert && x == d);
        if !acked && has(ACKED, "slack:critical") {
            // Hostile input first: exit 2, nothing created.
            let typo = telltale(dir.path())
                .args(["ack", "EscalationDrillAckd", "--alertmanager-url", &am])
                .output()
                .unwrap();
            assert_eq!(typo.status.code(), Some(2), "{typo:?}");
            assert!(
                String::from_utf8_lossy(&typo.stderr).contains("did you mean"),
                "{}",
                String::from_utf8_lossy(&typo.stderr)
            );
            let out = telltale(dir.path())
                .args(["ack", ACKED, "--alertmanager-url", &am, "-o", "json"])
                .args([
                    "--author",
                    "drill",
                    "--comment",
                    "on it",
                    "--duration",
                    "10m",
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let report: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                report["silenceId"].as_str().is_some_and(|s| !s.is_empty()),
                "{report}"
            );
            acked = true;
        }
        // Once the unacknowledged alert reached PagerDuty, the acknowledged
        // one's level 3 would have too (both fire together): a few more
        // evaluations and group waits, then the verdict.
        if has(UNACKED, "pagerduty") && done_at.is_none() {
            done_at = Some(Instant::now() + Duration::from_secs(4));
        }
        if done_at.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let summary = format!("{seen:#?}");
    let at = |alert: &str, d: &str| {
        seen.iter()
            .find(|(a, x, _)| a == alert && x == d)
            .map(|(_, _, t)| *t)
            .unwrap_or_else(|| panic!("{alert} never reached {d}; deliveries:\n{summary}"))
    };
    // Unacknowledged: level 1 (Slack + SMS), then level 2, then PagerDuty,
    // each about a level's delay (8s) after the one before.
    let l1 = at(UNACKED, "slack:critical");
    at(UNACKED, "webhook:critical");
    let l2 = at(UNACKED, "slack:escalation-2");
    let l3 = at(UNACKED, "pagerduty");
    assert!(
        l2 >= l1 + Duration::from_secs(5) && l3 >= l2 + Duration::from_secs(5),
        "levels out of time: {summary}"
    );
    // Acknowledged after level 1: level 1 only.
    assert!(acked, "{summary}");
    let mut acked_levels: Vec<&str> = seen
        .iter()
        .filter(|(a, _, _)| a == ACKED)
        .map(|(_, d, _)| d.as_str())
        .collect();
    acked_levels.sort();
    assert_eq!(
        acked_levels,
        ["slack:critical", "webhook:critical"],
        "{summary}"
    );
    // …although Prometheus did escalate it: Alertmanager holds its level 2
    // and 3 copies, muted by the acknowledgement.
    let silenced: Vec<Value> = ureq::get(&format!(
        "{am}/api/v2/alerts?silenced=true&active=false&filter=alertname%3D%22{ACKED}%22"
    ))
    .call()
    .unwrap()
    .body_mut()
    .read_json()
    .unwrap();
    let mut levels: Vec<&str> = silenced
        .iter()
        .filter(|a| a["status"]["state"] == "suppressed")
        .filter_map(|a| a["labels"]["escalation"].as_str())
        .collect();
    levels.sort();
    assert_eq!(levels, ["2", "3"], "{silenced:#?}");
}

#[test]
fn ack_refuses_hostile_input_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens here: each refusal must come before a request.
    let url = "http://127.0.0.1:9";
    for args in [
        vec!["ack", "Node Down", "--alertmanager-url", url],
        vec![
            "ack",
            "NodeDown",
            "--matcher",
            "node",
            "--alertmanager-url",
            url,
        ],
        vec![
            "ack",
            "NodeDown",
            "--matcher",
            "alertname=X",
            "--alertmanager-url",
            url,
        ],
        vec![
            "ack",
            "NodeDown",
            "--matcher",
            "pod=~(",
            "--alertmanager-url",
            url,
        ],
        vec![
            "ack",
            "NodeDown",
            "--duration",
            "30d",
            "--alertmanager-url",
            url,
        ],
        vec!["ack", "NodeDown", "--alertmanager-url", "ftp://127.0.0.1:9"],
        vec![
            "ack",
            "NodeDown",
            "--alertmanager-url",
            "http://u:p@127.0.0.1:9",
        ],
    ] {
        let out = telltale(dir.path()).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("u:p@"), "{stderr}");
    }
}
