//! Green on a fresh stack: the local stack (real Prometheus 3, Alertmanager
//! and node-exporter on 127.0.0.1), started for each built-in profile with
//! only what that profile's bundle installs, passes verify's checks that can
//! run here, and lists the systems outside the bundle as skipped.

mod common;

use common::stack::LocalStack;
use serde_json::Value;

#[test]
fn every_profile_is_green_on_its_own_local_stack_with_outside_systems_skipped() {
    for profile in common::PROFILES {
        let dir = tempfile::tempdir().unwrap();
        let bundle = common::render_profile(profile);
        let out = dir.path().join("bundle");
        common::write(&bundle, &out);
        let stack = LocalStack::start(&out, &[]);
        let result = common::telltale(dir.path())
            .args(["verify", "--profile", profile, "-o", "json"])
            .args(["--checks", "targets,rules,alertmanager"])
            .args(["--prometheus-url", stack.url("prometheus")])
            .args(["--alertmanager-url", stack.url("alertmanager")])
            .args(["--timeout", "40s"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        let report: Value = serde_json::from_slice(&result.stdout)
            .unwrap_or_else(|e| panic!("{profile}: one JSON document ({e}): {stderr}"));
        assert_eq!(result.status.code(), Some(0), "{profile}: {report:#}");
        let targets = &report["checks"][0];
        assert_eq!(targets["id"], "targets");
        assert_eq!(targets["status"], "pass", "{profile}: {targets:#}");
        // Every job of a system outside the bundle is listed as skipped.
        let summary = targets["summary"].as_str().unwrap();
        for t in &bundle.plan.expectations.targets {
            if let Some(system) = &t.requires {
                assert!(
                    summary.contains(&format!("{} (requires {system})", t.job)),
                    "{profile}: {summary}"
                );
            }
        }
    }
}
