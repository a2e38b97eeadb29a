//! `telltale verify` against the real local stack (Prometheus, Alertmanager
//! and node-exporter from Debian, on 127.0.0.1; see e2e/local-stack) with a
//! notification sink standing in for Slack, PagerDuty, SMTP and the SMS bridge.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::stack::LocalStack;
use serde_json::Value;

const CONFIG: &str = include_str!("../fixtures/configs/kind-receivers.yaml");

/// The sink's deliveries, as `GET /received` lists them.
fn received(stack: &LocalStack) -> Vec<Value> {
    ureq::get(&format!("{}/received", stack.url("sink")))
        .call()
        .unwrap()
        .body_mut()
        .read_json::<Vec<Value>>()
        .unwrap()
}

fn bundle_dir(dir: &Path) -> PathBuf {
    let bundle = crate::common::render_with("kind", Some(CONFIG), &[]);
    let out = dir.join("bundle");
    crate::common::write(&bundle, &out);
    out
}

fn verify(dir: &Path, stack: &LocalStack, checks: &str, extra: &[&str]) -> (i32, Value, String) {
    std::fs::write(dir.join("telltale.yaml"), CONFIG).unwrap();
    let out = assert_cmd::Command::cargo_bin("telltale")
        .unwrap()
        .current_dir(dir)
        .args(["verify", "-o", "json", "--checks", checks])
        .args(if extra.contains(&"--timeout") {
            &[][..]
        } else {
            &["--timeout", "30s"][..]
        })
        .args(["--prometheus-url", stack.url("prometheus")])
        .args(["--alertmanager-url", stack.url("alertmanager")])
        .args(extra)
        .output()
        .unwrap();
    json_outcome(out)
}

/// Exit code, the one JSON document on stdout, and stderr.
fn json_outcome(out: std::process::Output) -> (i32, Value, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("one JSON document on stdout ({e}); stderr:\n{stderr}"));
    (out.status.code().unwrap_or(-1), report, stderr)
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {report}"))
}

#[test]
fn all_green_on_the_local_stack_and_every_integration_receives() {
    let dir = tempfile::tempdir().unwrap();
    let stack = LocalStack::start(&bundle_dir(dir.path()), &[]);
    let junit = dir.path().join("verify.xml");
    let (code, report, stderr) = verify(
        dir.path(),
        &stack,
        "targets,rules,alertmanager,notifications",
        &["--junit", junit.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["ok"], true);
    for id in ["targets", "rules", "alertmanager", "notifications"] {
        let c = check(&report, id);
        assert_eq!(c["status"], "pass", "{c:#}");
        assert!(c["duration_ms"].is_u64());
        assert!(!c["evidence"].as_array().unwrap().is_empty(), "{c:#}");
    }
    let evidence = check(&report, "notifications")["evidence"].to_string();
    assert!(evidence.contains("SLO breach test"), "{evidence}");

    // The sink got every integration: Slack, PagerDuty, e-mail, the SMS bridge.
    let received = received(&stack);
    for integration in ["slack", "pagerduty", "email", "webhook"] {
        assert!(
            received.iter().any(|n| n["integration"] == integration),
            "no {integration} notification in {received:#?}"
        );
    }
    // Synthetic alerts carry the run id and are resolved by the run.
    assert!(
        received
            .iter()
            .any(|n| n.to_string().contains("telltale_synthetic"))
    );

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testcase classname=\"telltale.verify\" name=\"notifications\""));
    assert!(!xml.contains("<failure"), "{xml}");
}

#[test]
fn a_stopped_node_exporter_fails_targets_naming_the_job_and_instance() {
    let dir = tempfile::tempdir().unwrap();
    let stack = LocalStack::start(&bundle_dir(dir.path()), &[]);
    let pid = stack.urls["pids"]["node_exporter"].as_u64().unwrap();
    let node = stack
        .url("node_exporter")
        .trim_start_matches("http://")
        .to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    // Let Prometheus notice (1 s scrapes): verify gives up after its timeout.
    let (code, report, _) = verify(dir.path(), &stack, "targets", &["--timeout", "5s"]);
    assert_eq!(code, 1);
    let targets = check(&report, "targets");
    assert_eq!(targets["status"], "fail");
    assert!(
        targets["summary"]
            .as_str()
            .unwrap()
            .contains("node-exporter"),
        "{targets:#}"
    );
    let evidence = targets["evidence"].to_string();
    assert!(
        evidence.contains(&format!("down: job node-exporter instance {node}")),
        "{evidence}"
    );
}

#[test]
fn a_rule_that_fails_to_evaluate_fails_rules_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle_dir(dir.path());
    // Valid PromQL that errors at every evaluation: two series on the "one"
    // side of a group_left match on no labels (many-to-many).
    let nodes = bundle.join("prometheus/rules/telltale-nodes.yaml");
    let mut text = std::fs::read_to_string(&nodes).unwrap();
    text.push_str(
        "  - record: telltale:broken:ratio\n    expr: vector(1) * on() group_left() (vector(1) or label_replace(vector(2), \"a\", \"b\", \"\", \"\"))\n",
    );
    std::fs::write(&nodes, text).unwrap();
    let stack = LocalStack::start(&bundle, &[]);
    let (code, report, _) = verify(dir.path(), &stack, "rules", &["--timeout", "10s"]);
    assert_eq!(code, 1, "{report:#}");
    let rules = check(&report, "rules");
    assert!(
        rules["summary"]
            .as_str()
            .unwrap()
            .contains("telltale-nodes/telltale:broken:ratio"),
        "{rules:#}"
    );
}

#[test]
fn a_sink_answering_500_fails_notifications_naming_receiver_and_integration() {
    let dir = tempfile::tempdir().unwrap();
    let stack = LocalStack::start(
        &bundle_dir(dir.path()),
        &["--sink-status".as_ref(), "slack=500".as_ref()],
    );
    let (code, report, _) = verify(dir.path(), &stack, "notifications", &["--timeout", "20s"]);
    assert_eq!(code, 1, "{report:#}");
    let n = check(&report, "notifications");
    let summary = n["summary"].as_str().unwrap();
    assert!(
        summary.contains("critical: delivery failed on slack"),
        "{n:#}"
    );
}

/// The tier receivers of the bundle's plan.json and their integrations.
fn tier_integrations(bundle: &Path) -> Vec<(String, Vec<String>)> {
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("plan.json")).unwrap()).unwrap();
    plan["alerting"]["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let integrations = r["integrations"].as_array().unwrap();
            (
                r["receiver"].as_str().unwrap().to_string(),
                integrations
                    .iter()
                    .map(|i| i.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn receivers_that_share_an_integration_are_proven_each_on_its_own_counters() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle_dir(dir.path());
    let tiers = tier_integrations(&bundle);
    let integrations = |name: &str| &tiers.iter().find(|(r, _)| r == name).unwrap().1;
    let shared: Vec<&String> = integrations("critical")
        .iter()
        .filter(|i| integrations("security").contains(i))
        .collect();
    assert!(
        !shared.is_empty(),
        "critical and security share no integration: {tiers:?}"
    );
    let stack = LocalStack::start(&bundle, &[]);
    let (code, report, stderr) = verify(dir.path(), &stack, "notifications", &[]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let n = check(&report, "notifications");
    assert_eq!(n["status"], "pass", "{n:#}");
    let evidence: Vec<&str> = n["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        evidence[0].starts_with("per-receiver counters"),
        "{evidence:#?}"
    );
    for receiver in ["critical", "security"] {
        let line = evidence
            .iter()
            .find(|e| e.starts_with(&format!("{receiver}: delivered")))
            .unwrap_or_else(|| panic!("no proof for {receiver}: {evidence:#?}"));
        assert!(
            line.contains(&format!("counted on receiver_name=\"{receiver}\"")),
            "{line}"
        );
    }
}

/// Real traffic on the critical receiver: a new page every 50 ms (each its
/// own alert, in one group of the severity route) until the flag is set.
fn pager(stack: &LocalStack) -> (Arc<AtomicBool>, std::thread::JoinHandle<usize>) {
    let alerts = format!("{}/api/v2/alerts", stack.url("alertmanager"));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = serde_json::json!([{"labels": {
                    "alertname": "UnrelatedPage",
                    "severity": "critical",
                    "instance": format!("node-{n}"),
                }}]);
                ureq::post(&alerts).send_json(&body).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            n
        })
    };
    (stop, thread)
}

fn evidence_lines(check: &Value) -> Vec<String> {
    check["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn unrelated_notifications_on_the_same_receiver_make_notifications_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    let stack = LocalStack::start(&bundle_dir(dir.path()), &[]);
    // The traffic runs from just before verify until it ends: no quiet
    // window comes, so the retries end at --timeout.
    let (stop, pager) = pager(&stack);
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let (code, report, stderr) = verify(dir.path(), &stack, "notifications", &["--timeout", "5s"]);
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    pager.join().unwrap();
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    assert_eq!(report["ok"], false);
    let n = check(&report, "notifications");
    assert_eq!(n["status"], "fail", "{n:#}");
    let summary = n["summary"].as_str().unwrap();
    assert!(summary.starts_with("ambiguous: "), "{n:#}");
    assert!(summary.contains("critical: other alerts"), "{n:#}");
    assert!(summary.contains("UnrelatedPage"), "{n:#}");
    // It waited for a quiet window, bounded by --timeout.
    assert!(
        summary.contains("not retried: no quiet window within --timeout 5s"),
        "{n:#}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    // Receivers nobody else used are still proven, at the first attempt.
    let evidence = evidence_lines(n);
    assert!(
        evidence
            .iter()
            .any(|e| e.starts_with("warning: delivered") && !e.contains("attempt")),
        "{evidence:#?}"
    );
}

#[test]
fn traffic_that_stops_leaves_a_quiet_window_where_a_retry_proves_the_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let stack = LocalStack::start(&bundle_dir(dir.path()), &[]);
    let (stop, pager) = pager(&stack);
    std::thread::sleep(Duration::from_millis(200));
    let (code, report, stderr) = std::thread::scope(|s| {
        let run = s.spawn(|| verify(dir.path(), &stack, "notifications", &["--timeout", "60s"]));
        // The traffic stops a second into the run: long after verify's first
        // attempt, which sees it.
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        run.join().unwrap()
    });
    let pages = pager.join().unwrap();
    assert!(pages > 10, "{pages} pages");
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let n = check(&report, "notifications");
    assert_eq!(n["status"], "pass", "{n:#}");
    assert!(
        n["summary"]
            .as_str()
            .unwrap()
            .ends_with("after a retry in a quiet window"),
        "{n:#}"
    );
    let evidence = evidence_lines(n);
    assert!(
        evidence.iter().any(|e| e.starts_with(
            "ambiguous on attempt 1: critical: other alerts became active on the same receiver"
        ) && e.contains("UnrelatedPage")),
        "{evidence:#?}"
    );
    let proof = evidence
        .iter()
        .find(|e| e.starts_with("critical: delivered"))
        .unwrap_or_else(|| panic!("no proof for critical: {evidence:#?}"));
    assert!(proof.contains("on attempt 2, in a quiet window"), "{proof}");
    assert!(
        proof.contains("nothing else could have been counted"),
        "{proof}"
    );
    // The retry was a real notification of its own group: the sink got
    // critical's synthetic alert twice on each integration it has a path
    // for (the first attempt's and the retry's).
    let synthetic_slack = received(&stack)
        .iter()
        .filter(|r| r["path"] == "/slack/critical" && r.to_string().contains("TelltaleSynthetic"))
        .count();
    assert_eq!(synthetic_slack, 2, "{:#?}", received(&stack));
}

#[test]
fn without_receiver_metrics_receivers_are_proven_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let stack = LocalStack::start(
        &bundle_dir(dir.path()),
        &["--alertmanager-without-receiver-metrics".as_ref()],
    );
    // The real Alertmanager 0.33 started without the feature flag counts by
    // integration only.
    let metrics = ureq::get(&format!("{}/metrics", stack.url("alertmanager")))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let counters: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("alertmanager_notifications_total{"))
        .collect();
    assert!(!counters.is_empty(), "{metrics}");
    assert!(
        counters.iter().all(|l| !l.contains("receiver_name")),
        "{counters:#?}"
    );

    let (code, report, stderr) = verify(dir.path(), &stack, "notifications", &[]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let n = check(&report, "notifications");
    assert_eq!(n["status"], "pass", "{n:#}");
    let evidence = evidence_lines(n);
    assert!(
        evidence[0].starts_with("fallback: Alertmanager's counters carry no receiver_name"),
        "{evidence:#?}"
    );
    let tiers = tier_integrations(&bundle_dir(dir.path()));
    let mut proven = Vec::new();
    for line in evidence.iter().filter(|e| e.contains(": delivered via")) {
        assert!(
            line.contains("counted on the integration counters every receiver shares: ")
                && line.contains("no other synthetic alert in flight"),
            "{line}"
        );
        proven.push(line.split(':').next().unwrap().to_string());
    }
    // Every receiver with integrations, critical and security (which share
    // integrations) included, each proven on its own.
    let mut expected: Vec<String> = tiers
        .iter()
        .filter(|(_, i)| !i.is_empty())
        .map(|(r, _)| r.clone())
        .collect();
    expected.sort();
    let mut sorted = proven.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "{evidence:#?}");

    // One at a time, in the evidence's order: the sink got each receiver's
    // synthetic notifications before the next receiver's first.
    let order: Vec<String> = received(&stack)
        .iter()
        .filter(|r| r.to_string().contains("TelltaleSynthetic"))
        .filter_map(|r| {
            let path = r["path"].as_str()?;
            let mut parts = path.trim_start_matches('/').split('/');
            match parts.next()? {
                "slack" | "pagerduty" | "webhook" => parts.next().map(str::to_string),
                _ => None,
            }
        })
        .collect();
    let mut blocks: Vec<String> = order.clone();
    blocks.dedup();
    let with_paths: Vec<&String> = proven.iter().filter(|r| blocks.contains(r)).collect();
    assert_eq!(
        blocks.iter().collect::<Vec<_>>(),
        with_paths,
        "interleaved deliveries: {order:?}"
    );
}

#[test]
fn verify_bundle_reads_plan_json_and_refuses_an_edited_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle_dir(dir.path());
    let stack = LocalStack::start(&bundle, &[]);
    // No telltale.yaml anywhere: only the bundle says what to expect.
    let cwd = tempfile::tempdir().unwrap();
    let run = || {
        assert_cmd::Command::cargo_bin("telltale")
            .unwrap()
            .current_dir(cwd.path())
            .args([
                "verify",
                "-o",
                "json",
                "--checks",
                "alertmanager,notifications",
            ])
            .arg("--bundle")
            .arg(&bundle)
            .args(["--timeout", "30s"])
            .args(["--alertmanager-url", stack.url("alertmanager")])
            .output()
            .unwrap()
    };
    let (code, report, stderr) = json_outcome(run());
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(check(&report, "notifications")["status"], "pass");

    let routes = bundle.join("alertmanager/routes-test.yaml");
    let mut text = std::fs::read_to_string(&routes).unwrap();
    text.push_str("# edited\n");
    std::fs::write(&routes, text).unwrap();
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("alertmanager/routes-test.yaml differs from the plan.json digest"),
        "{stderr}"
    );
}

// ---- logs, dashboards and load, through the fake Loki and Grafana ----

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// `--profile green --plugin-dir …`: the green test plugin alone, whose
/// panels, logs and load the local stack can all answer.
fn green_args(with_apps: bool) -> Vec<String> {
    let mut args = vec![
        "--profile".to_string(),
        format!("{FIXTURES}/profiles/green.yaml"),
        "--plugin-dir".to_string(),
        format!("{FIXTURES}/plugins"),
    ];
    if with_apps {
        args.extend([
            "--config".into(),
            format!("{FIXTURES}/configs/green-apps.yaml"),
        ]);
    }
    args
}

fn green_bundle(dir: &Path) -> PathBuf {
    let out = dir.join("bundle");
    let status = assert_cmd::Command::cargo_bin("telltale")
        .unwrap()
        .current_dir(dir)
        .arg("plan")
        .args(green_args(false))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

/// Runs verify against every URL of the stack, Grafana with the admin
/// password the stack generated (or `password` when given).
fn verify_all(
    dir: &Path,
    stack: &LocalStack,
    profile: &[String],
    checks: &str,
    password: Option<&str>,
    extra: &[&str],
) -> (i32, Value, String) {
    let password = match password {
        Some(p) => p.to_string(),
        None => std::fs::read_to_string(stack.url("grafana_password_file")).unwrap(),
    };
    let out = assert_cmd::Command::cargo_bin("telltale")
        .unwrap()
        .current_dir(dir)
        .env("GRAFANA_AUTH", format!("admin:{password}"))
        .env("KUBECONFIG", dir.join("no-kubeconfig"))
        .arg("verify")
        .args(profile)
        .args(["-o", "json", "--checks", checks])
        .args(if extra.contains(&"--timeout") {
            &[][..]
        } else {
            &["--timeout", "15s"][..]
        })
        .args(["--prometheus-url", stack.url("prometheus")])
        .args(["--alertmanager-url", stack.url("alertmanager")])
        .args(["--grafana-url", stack.url("grafana")])
        .args(["--loki-url", stack.url("loki")])
        .args(["--basic-auth-env", "GRAFANA_AUTH"])
        .args(extra)
        .output()
        .unwrap();
    json_outcome(out)
}

#[test]
fn logs_and_dashboards_pass_through_loki_and_grafana() {
    let dir = tempfile::tempdir().unwrap();
    let stack = LocalStack::start(&green_bundle(dir.path()), &[]);
    let (code, report, stderr) = verify_all(
        dir.path(),
        &stack,
        &green_args(false),
        "targets,logs,dashboards",
        None,
        &[],
    );
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let logs = check(&report, "logs");
    assert_eq!(logs["status"], "pass", "{logs:#}");
    let evidence = logs["evidence"].to_string();
    // The shipper sent the daemons' logs under the stack's namespace; the
    // marker went through the push API, and the evidence says so.
    assert!(evidence.contains("monitoring: "), "{evidence}");
    assert!(
        evidence.contains("pushed through Loki's push API"),
        "{evidence}"
    );
    let dashboards = check(&report, "dashboards");
    assert_eq!(dashboards["status"], "pass", "{dashboards:#}");
    let evidence = dashboards["evidence"].to_string();
    for needle in [
        "datasource Prometheus (prometheus): Successfully queried",
        "datasource Loki (loki): Data source successfully connected",
        // Loaded as a browser would, and timed: three panel requests.
        "telltale-green: loads in ",
        "over 12 h (0 variable queries, then 3 panel request(s), ",
        // Three panels with queries (one inside a collapsed row); the text
        // panel has none.
        "3 panel(s) with data, 0 empty by their conditions, 0 without",
    ] {
        assert!(evidence.contains(needle), "{needle} in {evidence}");
    }

    // Wrong credentials: Grafana's 401 fails the check, and no password
    // appears in what verify prints.
    let (code, report, stderr) = verify_all(
        dir.path(),
        &stack,
        &green_args(false),
        "dashboards",
        Some("not-the-password-canary"),
        &[],
    );
    assert_eq!(code, 1, "{report:#}");
    let dashboards = check(&report, "dashboards");
    assert!(
        dashboards["summary"].as_str().unwrap().contains("401"),
        "{dashboards:#}"
    );
    assert!(!report.to_string().contains("not-the-password-canary"));
    assert!(!stderr.contains("not-the-password-canary"));
}

#[test]
fn a_namespace_without_logs_fails_logs_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let stack = LocalStack::start(&green_bundle(dir.path()), &[]);
    let (code, report, _) = verify_all(
        dir.path(),
        &stack,
        &green_args(true),
        "logs",
        None,
        &["--timeout", "3s"],
    );
    assert_eq!(code, 1, "{report:#}");
    let logs = check(&report, "logs");
    assert_eq!(
        logs["summary"], "no log lines in the last 10m from namespace(s) apps",
        "{logs:#}"
    );
    assert!(logs["evidence"].to_string().contains("monitoring: "));
}

#[test]
fn dashboards_name_missing_dashboards_and_panels_without_data() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle_dir(dir.path());
    // A panel whose selector matches nothing although its metric exists
    // (a wrong label value), in the ConfigMap Grafana's sidecar loads.
    let config_map =
        bundle.join("manifests/08-dashboards/ConfigMap_monitoring_telltale-dashboard-telltale-cluster-health.yaml");
    let text = std::fs::read_to_string(&config_map).unwrap();
    let broken = text.replace(
        r#"node_cpu_seconds_total{mode=\"idle\"}"#,
        r#"node_cpu_seconds_total{mode=\"no-such-mode\"}"#,
    );
    assert_ne!(broken, text);
    std::fs::write(&config_map, broken).unwrap();
    // Grafana never gets this one (as if its ConfigMap were not provisioned).
    let stack = LocalStack::start(
        &bundle,
        &[
            "--grafana-drop-dashboard".as_ref(),
            "telltale-logs-overview".as_ref(),
        ],
    );
    std::fs::write(dir.path().join("telltale.yaml"), CONFIG).unwrap();
    let (code, report, _) = verify_all(dir.path(), &stack, &[], "dashboards", None, &[]);
    assert_eq!(code, 1, "{report:#}");
    let dashboards = check(&report, "dashboards");
    let summary = dashboards["summary"].as_str().unwrap();
    assert!(
        summary.contains("dashboard telltale-logs-overview is missing"),
        "{summary}"
    );
    assert!(summary.contains("1 panel(s) without data"), "{summary}");
    let evidence = dashboards["evidence"].to_string();
    assert!(
        evidence.contains(
            r#"no data: telltale-cluster-health / Node CPU Utilization: empty result; {__name__=\"node_cpu_seconds_total\",mode=\"no-such-mode\"} match nothing"#
        ),
        "{evidence}"
    );
    // The local stack has no API server: its panels are skipped, saying
    // why, never counted as having data and never failed.
    assert!(
        evidence.contains(
            "skipped: telltale-cluster-health / API Server Latency p99: no series of apiserver_request_duration_seconds_bucket anywhere"
        ),
        "{evidence}"
    );
}

#[test]
fn builtin_load_moves_the_series_and_a_dead_target_fails() {
    let dir = tempfile::tempdir().unwrap();
    let stack = LocalStack::start(&green_bundle(dir.path()), &[]);
    let target = format!("{}/", stack.url("standin"));
    let (code, report, stderr) = verify_all(
        dir.path(),
        &stack,
        &green_args(false),
        "load",
        None,
        &["--load-engine", "builtin", "--load-url", &target],
    );
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let load = check(&report, "load");
    let evidence = load["evidence"].to_string();
    assert!(
        evidence.contains("builtin generator at 50/s for 2s"),
        "{evidence}"
    );
    assert!(evidence.contains("100 requests in"), "{evidence}");
    assert!(evidence.contains("p99"), "{evidence}");
    assert!(
        load["summary"].as_str().unwrap().contains("1 series moved"),
        "{load:#}"
    );

    // Nobody listens there: every request fails and nothing moves.
    let dead_port = crate::common::local::dead_port();
    let dead = format!("http://127.0.0.1:{}/", dead_port.port);
    let (code, report, _) = verify_all(
        dir.path(),
        &stack,
        &green_args(false),
        "load",
        None,
        &[
            "--load-engine",
            "builtin",
            "--load-url",
            &dead,
            "--timeout",
            "3s",
        ],
    );
    assert_eq!(code, 1, "{report:#}");
    let summary = check(&report, "load")["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(summary.contains("100 of 100 requests failed"), "{summary}");
    assert!(summary.contains("did not move"), "{summary}");
}

/// With a cluster (the fake API server): the namespaces to prove come from
/// the pods running there, and the marker is a real Pod that verify creates
/// and deletes. The test stands in for the kubelet and Alloy: it pushes the
/// marker pod's output, and a line from the app namespace, to Loki.
#[test]
fn logs_with_a_cluster_runs_a_marker_pod_and_covers_every_namespace_with_pods() {
    use crate::common::fake_api::FakeApi;
    use serde_json::json;

    let dir = tempfile::tempdir().unwrap();
    let stack = LocalStack::start(&green_bundle(dir.path()), &[]);
    let api = FakeApi::start();
    for ns in ["monitoring", "apps"] {
        api.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    api.insert(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "apps"},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
        "status": {"phase": "Running"}}));
    let kubeconfig = api.kubeconfig(&dir.path().join("kubeconfig"), "kind-telltale");

    let loki = stack.url("loki").to_string();
    let push = move |labels: serde_json::Value, line: &str| {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            .to_string();
        ureq::post(&format!("{loki}/loki/api/v1/push"))
            .send_json(json!({"streams": [{"stream": labels, "values": [[ts, line]]}]}))
            .unwrap();
    };
    push(json!({"namespace": "apps", "pod": "web-0"}), "GET / 200");
    let kubelet = || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Some(pod) = api.list("v1", "Pod").into_iter().find(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("telltale-log-marker-")
            }) {
                let script = pod["spec"]["containers"][0]["command"][2].as_str().unwrap();
                let marker = script
                    .trim_start_matches("echo ")
                    .split(';')
                    .next()
                    .unwrap();
                let name = pod["metadata"]["name"].as_str().unwrap();
                push(json!({"namespace": "monitoring", "pod": name}), marker);
                return pod;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("verify never created the marker pod");
    };

    let (pod, (code, report, stderr)) = std::thread::scope(|s| {
        let kubelet = s.spawn(kubelet);
        let verified = verify_all(
            dir.path(),
            &stack,
            &green_args(false),
            "logs",
            None,
            &["--kubeconfig", kubeconfig.to_str().unwrap()],
        );
        (kubelet.join().unwrap(), verified)
    });
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let evidence = check(&report, "logs")["evidence"].to_string();
    assert!(
        evidence.contains("the cluster (every namespace with running pods)"),
        "{evidence}"
    );
    assert!(evidence.contains("apps: 1 line(s)"), "{evidence}");
    assert!(
        evidence.contains("written by pod monitoring/telltale-log-marker-"),
        "{evidence}"
    );
    // The marker pod runs under the restricted Pod Security Standard…
    let container = &pod["spec"]["containers"][0];
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    // … and is gone afterwards.
    assert!(
        api.list("v1", "Pod").iter().all(|p| !p["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("telltale-log-marker-")),
        "the marker pod was left behind"
    );
}

/// The HPA the fake API server holds for the load tests, with `replicas`.
fn load_hpa(replicas: i32) -> Value {
    serde_json::json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "model", "namespace": "ml"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "model"},
                 "minReplicas": 1, "maxReplicas": 5,
                 "metrics": [{"type": "External", "external": {
                     "metric": {"name": "model_requests_per_second"},
                     "target": {"type": "AverageValue", "averageValue": "5"}}}]},
        "status": {"currentReplicas": replicas, "desiredReplicas": replicas, "currentMetrics": [
            {"type": "External", "external": {"metric": {"name": "model_requests_per_second"},
             "current": {"averageValue": if replicas > 1 { "5" } else { "0" }}}}]}})
}

/// The load sized from an autoscaler's scale-out point (fixture green-hpa:
/// 5 req/s per replica from 1 replica → 10/s against ml/model), the HPA read
/// from the fake API server. The test stands in for the HPA controller: it
/// rescales the HPA (and records the controller's event) while the load runs.
#[test]
fn load_sized_from_the_scale_out_point_reports_the_hpa_timeline_and_needs_a_scale_out() {
    use crate::common::fake_api::FakeApi;
    let dir = tempfile::tempdir().unwrap();
    let args = vec![
        "--profile".to_string(),
        format!("{FIXTURES}/profiles/green.yaml"),
        "--plugin-dir".to_string(),
        format!("{FIXTURES}/plugins"),
        "--config".to_string(),
        format!("{FIXTURES}/configs/green-hpa.yaml"),
    ];
    let plan = assert_cmd::Command::cargo_bin("telltale")
        .unwrap()
        .current_dir(dir.path())
        .arg("plan")
        .args(&args)
        .args(["-o", "json", "--out"])
        .arg(dir.path().join("hpa-bundle"))
        .output()
        .unwrap();
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let load = &plan["expectations"]["load"];
    assert_eq!(load["rate"], 10, "{load:#}");
    assert_eq!(load["hpa"], "ml/model", "{load:#}");
    assert_eq!(load["duration"], "33s", "{load:#}");
    assert!(
        load["derived"]
            .as_str()
            .unwrap()
            .contains("wants 2 replicas"),
        "{load:#}"
    );

    let stack = LocalStack::start(&green_bundle(dir.path()), &[]);
    let target = format!("{}/", stack.url("standin"));
    let api = FakeApi::start();
    api.register(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    );
    api.insert(
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}}),
    );
    api.insert(load_hpa(1));
    let kubeconfig = api.kubeconfig(&dir.path().join("kubeconfig"), "kind-telltale");
    let run = |timeout: &str| {
        verify_all(
            dir.path(),
            &stack,
            &args,
            "load",
            None,
            &[
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--load-engine",
                "builtin",
                "--load-url",
                &target,
                "--load-duration",
                "4s",
                "--timeout",
                timeout,
            ],
        )
    };

    // Nothing rescales it: the check fails, and the timeline shows why.
    let (code, report, stderr) = run("8s");
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    let load = check(&report, "load");
    assert!(
        load["summary"]
            .as_str()
            .unwrap()
            .contains("HPA ml/model did not scale out (1 → 1)"),
        "{load:#}"
    );
    let evidence = load["evidence"].to_string();
    assert!(
        evidence.contains("builtin generator at 10/s for 4s"),
        "{evidence}"
    );
    assert!(
        evidence.contains("HPA ml/model at t+0s: replicas 1, desired 1; model_requests_per_second = 0 (model_requests_per_second target 5)"),
        "{evidence}"
    );

    // The controller stand-in rescales it two seconds into the load.
    let (code, report, stderr) = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_secs(2));
            api.insert(load_hpa(2));
            api.insert(serde_json::json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "model.1", "namespace": "ml"},
                "involvedObject": {"kind": "HorizontalPodAutoscaler", "name": "model", "namespace": "ml"},
                "reason": "SuccessfulRescale", "type": "Normal",
                "message": "New size: 2; reason: external metric model_requests_per_second above target"}));
        });
        run("10s")
    });
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let evidence = check(&report, "load")["evidence"].to_string();
    assert!(
        evidence.contains("HPA ml/model: replicas 1 → 2"),
        "{evidence}"
    );
    assert!(
        evidence.contains("HPA ml/model at t+0s: replicas 1, desired 1"),
        "{evidence}"
    );
    assert!(
        regex::Regex::new(
            r"HPA ml/model at t\+[1-9]\d*s: replicas 2, desired 2; model_requests_per_second = 5"
        )
        .unwrap()
        .is_match(&evidence),
        "{evidence}"
    );
    assert!(
        evidence.contains("HPA ml/model event SuccessfulRescale: New size: 2; reason: external metric model_requests_per_second above target"),
        "{evidence}"
    );
}
