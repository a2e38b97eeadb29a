//! verify's k6 engine with **real k6** (`$TELLTALE_TEST_K6`, else `k6` on
//! PATH; `scripts/tools` installs k6 1.x): the k6 plugin's own script, as the
//! bundle renders it into its ConfigMap, runs through telltale's wrapper
//! (cluster/loadjob.rs) against the local stack's stand-in, and the summary
//! line the wrapper's `handleSummary` prints is parsed from that real run.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::stack::LocalStack;
use serde_json::Value;
use telltale::cluster::loadjob;

fn k6() -> PathBuf {
    match std::env::var_os("TELLTALE_TEST_K6").map(PathBuf::from) {
        Some(path) if path.is_file() => path,
        _ => crate::common::require_tool("k6"),
    }
}

/// The local stack for `profile`'s bundle, with its state in a temp dir.
struct Stack {
    stack: LocalStack,
    _dir: tempfile::TempDir,
}

impl Stack {
    fn start(profile: &str) -> Stack {
        let dir = tempfile::tempdir().expect("temp dir");
        let bundle = dir.path().join("bundle");
        crate::common::write(&crate::common::render_profile(profile), &bundle);
        let state = dir.path().join("state");
        let stack = LocalStack::start(&bundle, &["--state".as_ref(), state.as_os_str()]);
        Stack { stack, _dir: dir }
    }

    fn standin(&self) -> String {
        self.stack.url("standin").to_string()
    }

    fn prometheus(&self) -> String {
        self.stack.url("prometheus").to_string()
    }

    /// The stand-in's own request counter.
    fn requests_served(&self) -> f64 {
        let text = ureq::get(&format!("{}/metrics", self.standin()))
            .call()
            .expect("the stand-in answers")
            .body_mut()
            .read_to_string()
            .expect("metrics text");
        text.lines()
            .filter(|l| l.starts_with("telltale_standin_http_requests_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// The k6 plugin's script exactly as the ml-slo bundle ships it.
fn plugin_script() -> String {
    let bundle = crate::common::render_profile("ml-slo");
    let (_, manifest) = bundle
        .files
        .iter()
        .find(|(path, _)| path.ends_with("ConfigMap_monitoring_telltale-k6-script.yaml"))
        .expect("the ml-slo bundle ships the k6 script ConfigMap");
    loadjob::script_from_configmap(manifest).expect("the ConfigMap has script.js")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[test]
fn real_k6_runs_the_plugin_script_against_the_standin_and_its_summary_parses() {
    let k6 = k6();
    let stack = Stack::start("kind");
    let script = plugin_script();
    let before = stack.requests_served();
    let rt = runtime();
    let summary = rt
        .block_on(loadjob::run_local(
            &k6,
            &script,
            &format!("{}/", stack.standin()),
            20,
            Duration::from_secs(2),
        ))
        .unwrap_or_else(|e| panic!("real k6 with the plugin's script: {e}"));
    // constant-arrival-rate 20/s for 2s: about 40 iterations, one GET each.
    assert!(
        (30.0..=45.0).contains(&summary.requests),
        "requests in the summary: {summary:?}"
    );
    assert_eq!(summary.failed, 0.0, "{summary:?}");
    assert!(
        summary.p50_ms > 0.0
            && summary.p50_ms <= summary.p95_ms
            && summary.p95_ms <= summary.p99_ms,
        "percentiles from a real run: {summary:?}"
    );
    // The summary counts what the stand-in really served.
    let served = stack.requests_served() - before;
    assert_eq!(
        served, summary.requests,
        "stand-in served {served}, k6 says {summary:?}"
    );
}

#[test]
fn real_k6_against_a_dead_target_still_reports_every_request_failed() {
    let k6 = k6();
    let script = plugin_script();
    let dead_port = crate::common::local::dead_port();
    let dead = format!("http://127.0.0.1:{}/", dead_port.port);
    let summary = runtime()
        .block_on(loadjob::run_local(
            &k6,
            &script,
            &dead,
            10,
            Duration::from_secs(1),
        ))
        .unwrap_or_else(|e| {
            panic!("k6 exits 99 on the crossed thresholds, the summary is still read: {e}")
        });
    assert!(summary.requests >= 5.0, "{summary:?}");
    assert_eq!(summary.failed, summary.requests, "{summary:?}");
}

/// `verify --load-engine k6-local` end to end: the binary finds the k6
/// script in the ml-slo bundle and runs it with the k6 on PATH against the
/// stand-in. The stand-in is not the model server, so the model's series
/// cannot move and the check fails for exactly that reason, with k6's real
/// request count and no failed requests in the evidence.
#[test]
fn verify_with_the_k6_local_engine_runs_real_k6_from_the_bundle() {
    let k6 = k6();
    let stack = Stack::start("ml-slo");
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::join_paths(
        std::iter::once(k6.parent().expect("k6's directory").to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ),
    )
    .unwrap();
    let before = stack.requests_served();
    let out = crate::common::telltale(dir.path())
        .env("PATH", path)
        .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
        .args([
            "verify",
            "--profile",
            "ml-slo",
            "-o",
            "json",
            "--checks",
            "load",
        ])
        .args(["--prometheus-url", &stack.prometheus()])
        .args([
            "--load-engine",
            "k6-local",
            "--load-url",
            &format!("{}/", stack.standin()),
        ])
        .args([
            "--load-rate",
            "20",
            "--load-duration",
            "2s",
            "--timeout",
            "3s",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("one JSON document ({e}); stderr:\n{stderr}"));
    let load = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "load"))
        .unwrap_or_else(|| panic!("a load check in {report:#}"));
    let evidence = load["evidence"].to_string();
    assert!(evidence.contains("k6 (local) at 20/s for 2s"), "{load:#}");
    let served = stack.requests_served() - before;
    assert!(
        served >= 30.0,
        "the stand-in served k6's requests: {served}"
    );
    assert!(
        evidence.contains(&format!("{served} requests")),
        "k6's own count ({served}) in the evidence: {load:#}"
    );
    let summary = load["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("did not move"), "{load:#}");
    assert!(!summary.contains("requests failed"), "{load:#}");
    assert_eq!(out.status.code(), Some(1), "{load:#}\n{stderr}");
}
