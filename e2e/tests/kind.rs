//! End-to-end on a real cluster: needs TELLTALE_E2E_KUBECONFIG (kind, see
//! .github/workflows/e2e.yml) and helm on PATH. Without the cluster the test
//! is ignored with its reason, never reported as passed.

use assert_cmd::Command;
use serde_json::Value;

fn telltale(
    kubeconfig: &std::ffi::OsStr,
    dir: &std::path::Path,
    args: &[&str],
) -> (i32, Value, String) {
    let out = Command::cargo_bin("telltale")
        .unwrap()
        .env("KUBECONFIG", kubeconfig)
        .current_dir(dir)
        .args(args)
        .args(["-o", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("$ telltale {}\n{stderr}", args.join(" "));
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report, stderr)
}

fn outcomes(report: &Value) -> Vec<String> {
    report["phases"]
        .as_array()
        .map(|p| {
            p.iter()
                .map(|p| format!("{}={}", p["phase"], p["outcome"]))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "needs a cluster: set TELLTALE_E2E_KUBECONFIG and run with --ignored"]
fn up_is_idempotent_status_is_clean_and_down_removes_it() {
    let Some(kubeconfig) = std::env::var_os("TELLTALE_E2E_KUBECONFIG") else {
        panic!("TELLTALE_E2E_KUBECONFIG is not set: this test needs a kind cluster");
    };
    let dir = tempfile::tempdir().unwrap();

    let (code, report, stderr) = telltale(
        &kubeconfig,
        dir.path(),
        &["up", "--profile", "kind", "--yes", "--skip-verify"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["ok"], true);

    // Port-forwards to the stack by itself; the logs check starts a marker
    // pod and finds its line through Alloy and Loki.
    let (code, report, stderr) = telltale(
        &kubeconfig,
        dir.path(),
        &[
            "verify",
            "--profile",
            "kind",
            "--checks",
            "targets,rules,alertmanager,notifications,logs",
            "--timeout",
            "5m",
        ],
    );
    assert_eq!(code, 0, "{report:#}\n{stderr}");

    // Dashboards: Grafana (admin credentials from the generated Secret) and
    // both datasources must be healthy; a fresh kind cluster leaves some
    // panels without data, which the check lists.
    let (_, report, stderr) = telltale(
        &kubeconfig,
        dir.path(),
        &[
            "verify",
            "--profile",
            "kind",
            "--checks",
            "dashboards",
            "--timeout",
            "2m",
        ],
    );
    let evidence = report["checks"][0]["evidence"].to_string();
    assert!(evidence.contains("healthy"), "{report:#}\n{stderr}");
    assert!(evidence.contains("(prometheus): "), "{report:#}");
    assert!(evidence.contains("(loki): "), "{report:#}");
    assert!(!evidence.contains("is missing"), "{report:#}");

    let (code, report, stderr) = telltale(
        &kubeconfig,
        dir.path(),
        &["up", "--profile", "kind", "--yes", "--skip-verify"],
    );
    assert_eq!(code, 0, "{stderr}");
    let phases = outcomes(&report);
    assert!(
        phases.iter().all(|p| p.ends_with("=\"unchanged\"")),
        "second up changed something: {phases:?}"
    );

    let (code, report, stderr) =
        telltale(&kubeconfig, dir.path(), &["status", "--profile", "kind"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["drift"], serde_json::json!([]));
    assert_eq!(report["up_to_date"], true);

    let (code, _, stderr) = telltale(&kubeconfig, dir.path(), &["down", "--yes"]);
    assert_eq!(code, 0, "{stderr}");
    let (_, report, _) = telltale(&kubeconfig, dir.path(), &["status", "--profile", "kind"]);
    assert_eq!(report["installed"], false);
}
