//! `telltale verify` against the real local stack (Prometheus, Alertmanager
//! and node-exporter from Debian, on 127.0.0.1; see e2e/local-stack) with a
//! notification sink standing in for Slack, PagerDuty, SMTP and the SMS bridge.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const CONFIG: &str = include_str!("fixtures/configs/kind-receivers.yaml");

/// A running local stack, stopped (SIGTERM, then reaped) on drop.
struct LocalStack {
    child: Child,
    urls: Value,
}

impl LocalStack {
    fn start(bundle: &Path, extra: &[&str]) -> LocalStack {
        for tool in [
            "prometheus",
            "prometheus-alertmanager",
            "prometheus-node-exporter",
        ] {
            common::require_tool(tool);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_telltale-local-stack"))
            .arg("--bundle")
            .arg(bundle)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the local stack starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let urls: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the local stack prints its URLs as JSON ({e}): {line:?}"));
        LocalStack { child, urls }
    }

    fn url(&self, name: &str) -> &str {
        self.urls[name].as_str().unwrap()
    }

    fn received(&self) -> Vec<Value> {
        ureq::get(&format!("{}/received", self.url("sink")))
            .call()
            .unwrap()
            .body_mut()
            .read_json::<Vec<Value>>()
            .unwrap()
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn bundle_dir(dir: &Path) -> PathBuf {
    let bundle = common::render_with("kind", Some(CONFIG), &[]);
    let out = dir.join("bundle");
    common::write(&bundle, &out);
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
    assert!(evidence.contains("seed 004 breach test"), "{evidence}");

    // The sink got every integration: Slack, PagerDuty, e-mail, the SMS bridge.
    let received = stack.received();
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
    let stack = LocalStack::start(&bundle_dir(dir.path()), &["--sink-status", "slack=500"]);
    let (code, report, _) = verify(dir.path(), &stack, "notifications", &["--timeout", "20s"]);
    assert_eq!(code, 1, "{report:#}");
    let n = check(&report, "notifications");
    let summary = n["summary"].as_str().unwrap();
    assert!(
        summary.contains("critical: delivery failed on slack"),
        "{n:#}"
    );
}
