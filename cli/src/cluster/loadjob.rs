//! The k6 Job `verify`'s load check runs in the cluster: the k6 plugin's
//! script (ConfigMap `telltale-k6-script`, key `script.js`) wrapped by a
//! small entry script of ours whose `handleSummary` prints one JSON line we
//! can read back from the pod's log, whatever the k6 version.
//!
//! [`run_local`] runs the same script and wrapper with a k6 binary on this
//! machine (no cluster), which is how the suite proves both against real k6.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use serde::Deserialize;
use serde_json::json;

use super::Kube;
use crate::process::{ProcessError, Program};

/// The ConfigMap the k6 plugin ships.
pub const SCRIPT_CONFIGMAP: &str = "telltale-k6-script";
pub const IMAGE: &str = "grafana/k6:1.3.0";
const MARK: &str = "telltale-k6-summary ";

/// Imports the plugin's script and reports requests, failures and latency
/// percentiles on one line.
const ENTRY: &str = r#"import * as user from '/scripts/script.js';
export const options = Object.assign({}, user.options, { summaryTrendStats: ['med', 'p(95)', 'p(99)'] });
export default user.default;
export function handleSummary(data) {
  const m = data.metrics;
  const d = (m.http_req_duration || { values: {} }).values;
  const out = {
    requests: (m.http_reqs || { values: { count: 0 } }).values.count,
    failed: (m.http_req_failed || { values: { passes: 0 } }).values.passes,
    p50_ms: d['med'] || 0, p95_ms: d['p(95)'] || 0, p99_ms: d['p(99)'] || 0,
  };
  return { stdout: 'telltale-k6-summary ' + JSON.stringify(out) + '\n' };
}
"#;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct K6Summary {
    pub requests: f64,
    pub failed: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

pub fn name(run_id: &str) -> String {
    format!("telltale-load-{run_id}")
}

pub fn entry_configmap(namespace: &str, run_id: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name(run_id), "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "telltale", "telltale.dev/run": run_id}},
        "data": {"run.js": ENTRY},
    }))
    .expect("a valid ConfigMap")
}

pub fn job(namespace: &str, run_id: &str, url: &str, rate: u32, duration: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name(run_id), "namespace": namespace,
                     "labels": {"app.kubernetes.io/name": "telltale-load",
                                "app.kubernetes.io/managed-by": "telltale", "telltale.dev/run": run_id}},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "telltale-load", "telltale.dev/run": run_id}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": false,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 12345,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "k6",
                        "image": IMAGE,
                        "args": ["run", "--quiet", "--no-color", "--no-usage-report", "/entry/run.js"],
                        "env": [
                            {"name": "TARGET_URL", "value": url},
                            {"name": "RATE", "value": rate.to_string()},
                            {"name": "DURATION", "value": duration},
                        ],
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [
                            {"name": "script", "mountPath": "/scripts", "readOnly": true},
                            {"name": "entry", "mountPath": "/entry", "readOnly": true},
                        ],
                    }],
                    "volumes": [
                        {"name": "script", "configMap": {"name": SCRIPT_CONFIGMAP}},
                        {"name": "entry", "configMap": {"name": name(run_id)}},
                    ],
                },
            },
        },
    }))
    .expect("a valid Job")
}

/// Finds the summary line in a k6 pod's log.
pub fn parse_summary(log: &str) -> Option<K6Summary> {
    log.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(MARK.trim_end()))
        .and_then(|json| serde_json::from_str(json.trim()).ok())
}

#[derive(Debug, thiserror::Error)]
pub enum LoadJobError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error(
        "the ConfigMap {SCRIPT_CONFIGMAP} is missing in {0}: enable the k6 plugin, or run with --load-engine builtin"
    )]
    NoScript(String),
    #[error("the k6 Job {0} did not finish within {1}s")]
    Timeout(String, u64),
    #[error("the k6 Job {job} failed: {log}")]
    Failed { job: String, log: String },
    #[error("the k6 Job {job} printed no summary: {log}")]
    NoSummary { job: String, log: String },
    #[error("cannot run k6 ({bin}): {source}")]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the ConfigMap {SCRIPT_CONFIGMAP} has no script.js: {0}")]
    BadScript(String),
}

/// The k6 plugin's `script.js` from its rendered ConfigMap manifest.
pub fn script_from_configmap(manifest: &str) -> Result<String, LoadJobError> {
    let doc: serde_json::Value =
        serde_saphyr::from_str(manifest).map_err(|e| LoadJobError::BadScript(e.to_string()))?;
    doc["data"]["script.js"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| LoadJobError::BadScript("no data.script.js".into()))
}

/// Runs the plugin's `script` with the k6 binary `k6` on this machine, wrapped
/// as in the Job, and returns the summary its `handleSummary` prints. The
/// script and wrapper go to a temporary directory that is removed afterwards;
/// k6 gets the same TARGET_URL, RATE and DURATION as the Job, no usage report.
pub async fn run_local(
    k6: &Path,
    script: &str,
    url: &str,
    rate: u32,
    duration: Duration,
) -> Result<K6Summary, LoadJobError> {
    let spawn_error = |source| LoadJobError::Spawn {
        bin: k6.display().to_string(),
        source,
    };
    let dir = tempfile::tempdir().map_err(spawn_error)?;
    std::fs::write(dir.path().join("script.js"), script).map_err(spawn_error)?;
    std::fs::write(
        dir.path().join("run.js"),
        ENTRY.replace("'/scripts/script.js'", "'./script.js'"),
    )
    .map_err(spawn_error)?;
    let limit = duration + Duration::from_secs(60);
    let output = Program::new(k6)
        .args([
            "run",
            "--quiet",
            "--no-color",
            "--no-usage-report",
            "run.js",
        ])
        .current_dir(dir.path())
        .env("TARGET_URL", url)
        .env("RATE", rate.to_string())
        .env("DURATION", format!("{}s", duration.as_secs().max(1)))
        .output_async(Some(limit), |_| ())
        .await
        .map_err(|e| match e {
            ProcessError::Timeout { .. } => {
                LoadJobError::Timeout("k6 (local)".into(), limit.as_secs())
            }
            ProcessError::NotFound { .. } => spawn_error(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not found",
            )),
            ProcessError::Spawn { source, .. } => spawn_error(source),
            other => spawn_error(std::io::Error::other(other.to_string())),
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
    // A crossed threshold exits 99 with the summary printed, as in the Job.
    match parse_summary(&stdout) {
        Some(summary) => Ok(summary),
        None if !output.status.success() => Err(LoadJobError::Failed {
            job: "k6 (local)".into(),
            log: tail,
        }),
        None => Err(LoadJobError::NoSummary {
            job: "k6 (local)".into(),
            log: tail,
        }),
    }
}

/// Runs the Job to completion, reads its summary, and deletes what it made.
pub async fn run(
    kube: &Kube,
    namespace: &str,
    run_id: &str,
    url: &str,
    rate: u32,
    duration: Duration,
) -> Result<K6Summary, LoadJobError> {
    let configmaps: Api<ConfigMap> = Api::namespaced(kube.client.clone(), namespace);
    if configmaps.get_opt(SCRIPT_CONFIGMAP).await?.is_none() {
        return Err(LoadJobError::NoScript(namespace.into()));
    }
    let jobs: Api<Job> = Api::namespaced(kube.client.clone(), namespace);
    configmaps
        .create(&PostParams::default(), &entry_configmap(namespace, run_id))
        .await?;
    let seconds = format!("{}s", duration.as_secs().max(1));
    let result = async {
        jobs.create(
            &PostParams::default(),
            &job(namespace, run_id, url, rate, &seconds),
        )
        .await?;
        // Image pull and start-up on top of the test itself.
        let limit = duration + Duration::from_secs(180);
        let deadline = Instant::now() + limit;
        let job_name = name(run_id);
        let succeeded = loop {
            let status = jobs.get(&job_name).await?.status.unwrap_or_default();
            if status.succeeded.unwrap_or(0) > 0 {
                break true;
            }
            if status.failed.unwrap_or(0) > 0 {
                break false;
            }
            if Instant::now() >= deadline {
                return Err(LoadJobError::Timeout(job_name, limit.as_secs()));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        let log = pod_log(kube, namespace, run_id).await?;
        let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        // k6 exits non-zero when a threshold of the script fails; the
        // summary is still printed and tells the story.
        match parse_summary(&log) {
            Some(summary) => Ok(summary),
            None if !succeeded => Err(LoadJobError::Failed {
                job: job_name,
                log: tail,
            }),
            None => Err(LoadJobError::NoSummary {
                job: job_name,
                log: tail,
            }),
        }
    }
    .await;
    let _ = jobs
        .delete(&name(run_id), &DeleteParams::background())
        .await;
    let _ = configmaps
        .delete(&name(run_id), &DeleteParams::default())
        .await;
    result
}

async fn pod_log(kube: &Kube, namespace: &str, run_id: &str) -> Result<String, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(kube.client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("telltale.dev/run={run_id}")))
        .await?;
    let Some(pod) = list.items.into_iter().find_map(|p| p.metadata.name) else {
        return Ok(String::new());
    };
    pods.logs(&pod, &LogParams::default()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_is_found_in_the_log() {
        let log = "some k6 banner\ntelltale-k6-summary {\"requests\":600,\"failed\":3,\"p50_ms\":12.5,\"p95_ms\":40,\"p99_ms\":80.25}\n";
        let s = parse_summary(log).unwrap();
        assert_eq!(s.requests, 600.0);
        assert_eq!(s.failed, 3.0);
        assert_eq!(s.p99_ms, 80.25);
        assert!(parse_summary("no summary here").is_none());
    }

    #[test]
    fn the_job_mounts_the_plugin_script_and_passes_the_load() {
        let job = job("monitoring", "abc", "http://model.ml:8080/", 25, "30s");
        let text = serde_json::to_string(&job).unwrap();
        for needle in [
            "\"TARGET_URL\"",
            "http://model.ml:8080/",
            "\"RATE\",\"value\":\"25\"",
            "\"DURATION\",\"value\":\"30s\"",
            SCRIPT_CONFIGMAP,
            "/entry/run.js",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        assert!(ENTRY.contains("/scripts/script.js"));
    }
}
