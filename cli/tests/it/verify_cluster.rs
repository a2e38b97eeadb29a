//! verify's checks that read the cluster (autoscaling: the external metrics
//! API and HPAs) against the fake API server.

use assert_cmd::Command;
use serde_json::{Value, json};

use crate::common::fake_api::FakeApi;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn verify(api: &FakeApi, dir: &std::path::Path) -> (i32, Value) {
    let kubeconfig = api.kubeconfig(&dir.join("kubeconfig"), "kind-telltale");
    let out = Command::cargo_bin("telltale")
        .unwrap()
        .current_dir(dir)
        .env_remove("KUBECONFIG")
        .args(["verify", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--profile", &format!("{FIXTURES}/profiles/green.yaml")])
        .args(["--plugin-dir", &format!("{FIXTURES}/plugins")])
        .args(["--config", &format!("{FIXTURES}/configs/green-scale.yaml")])
        .args(["--checks", "autoscaling", "-o", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("one JSON document ({e}); stderr:\n{stderr}"));
    (out.status.code().unwrap(), report["checks"][0].clone())
}

/// A fake API server holding the HPA ml/model with `status`.
fn api_with_hpa(status: Value) -> FakeApi {
    let api = FakeApi::start();
    api.register(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    );
    api.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}}));
    api.insert(hpa(status));
    api
}

fn hpa(status: Value) -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "model", "namespace": "ml"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "model"},
                    "minReplicas": 1, "maxReplicas": 5,
                    "metrics": [{"type": "External", "external": {
                        "metric": {"name": "model_p95_latency_seconds"},
                        "target": {"type": "Value", "value": "500m"}}}]},
           "status": status})
}

#[test]
fn autoscaling_passes_when_the_metric_is_served_and_the_hpa_has_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let api = api_with_hpa(
        json!({"currentReplicas": 2, "desiredReplicas": 2, "currentMetrics": [
        {"type": "External", "external": {"metric": {"name": "model_p95_latency_seconds"},
         "current": {"value": "350m"}}}]}),
    );
    // What Prometheus Adapter registers: one resource per external metric.
    api.register(
        "external.metrics.k8s.io",
        "v1beta1",
        "ExternalMetricValueList",
        "model_p95_latency_seconds",
        true,
    );
    let (code, check) = verify(&api, dir.path());
    assert_eq!(code, 0, "{check:#}");
    assert_eq!(check["status"], "pass");
    let evidence = check["evidence"].to_string();
    assert!(
        evidence.contains("external metric model_p95_latency_seconds: listed"),
        "{evidence}"
    );
    assert!(
        evidence.contains("HPA ml/model: model_p95_latency_seconds = 350m (replicas 2)"),
        "{evidence}"
    );
}

#[test]
fn autoscaling_names_an_unserved_metric_and_an_hpa_without_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let api = api_with_hpa(
        json!({"currentReplicas": 1, "desiredReplicas": 1, "conditions": [
        {"type": "ScalingActive", "status": "False", "reason": "FailedGetExternalMetric",
         "message": "the HPA was unable to compute the replica count"}]}),
    );
    let (code, check) = verify(&api, dir.path());
    assert_eq!(code, 1, "{check:#}");
    let summary = check["summary"].as_str().unwrap();
    assert!(
        summary.contains(
            "the external metrics API (/apis/external.metrics.k8s.io/v1beta1) is not served"
        ),
        "{summary}"
    );
    assert!(
        summary.contains(
            "HPA ml/model reports no current value: ScalingActive False: FailedGetExternalMetric"
        ),
        "{summary}"
    );
}

#[test]
fn autoscaling_without_a_cluster_is_skipped_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        Command::cargo_bin("telltale")
            .unwrap()
            .current_dir(dir.path())
            .env("KUBECONFIG", dir.path().join("missing"))
            .args([
                "verify",
                "--profile",
                &format!("{FIXTURES}/profiles/green.yaml"),
            ])
            .args(["--plugin-dir", &format!("{FIXTURES}/plugins")])
            .args(["--config", &format!("{FIXTURES}/configs/green-scale.yaml")])
            .args(["--checks", "autoscaling", "-o", "json"])
            .args(extra)
            .output()
            .unwrap()
    };
    // Nothing at all to verify against: the environment, exit 3.
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no cluster reachable"), "{stderr}");
    // With a URL: autoscaling could not run, and says why; a run that
    // proved nothing is still no success (exit 3), with the report.
    let out = run(&["--prometheus-url", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(3));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["checks"][0]["status"], "skip", "{report:#}");
    assert!(
        report["checks"][0]["summary"]
            .as_str()
            .unwrap()
            .starts_with("could not run: no cluster reachable"),
        "{report:#}"
    );
}
