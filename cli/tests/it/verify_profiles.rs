//! Green on a fresh stack, red on a broken one. The local stack (real
//! Prometheus 3, Alertmanager and node-exporter on 127.0.0.1, the sink, and
//! the fake Loki and Grafana provisioned from the bundle), started for each
//! built-in profile with only what that profile's bundle installs, passes
//! every verify check that can run here, and lists what cannot (systems
//! outside the bundle, panels whose metrics nothing here exports, the
//! checks that need a cluster) as skipped with the reason. Breaking one
//! component then makes exactly the matching check fail.
//!
//! Time: one stack per profile and one verify per stack for the green
//! runs; the red cases reuse the production stack where the fault can be
//! made at run time (a rule file removed, node-exporter stopped) and start
//! one stack per start-up fault (sink status, Loki drop, Grafana drop).
//! A red run lasts its --timeout (the failing check retries until then),
//! long enough for the passing dashboards check on a busy 2-core machine.

use std::path::Path;
use std::process::Command;

use crate::common::stack::LocalStack;
use serde_json::Value;

/// Canary values for every receiver credential the profiles read from the
/// environment: verify must never print them.
const CANARIES: [(&str, &str); 4] = [
    (
        "SLACK_WEBHOOK_URL",
        "https://slack.invalid/canary-webhook-0001",
    ),
    ("PAGERDUTY_ROUTING_KEY", "canarypagerdutyroutingkey0000001"),
    ("TWILIO_AUTH_TOKEN", "canary-twilio-auth-token-0001"),
    (
        "POSTGRES_EXPORTER_DSN",
        "postgresql://exporter:canary-dsn-password@db:5432/x",
    ),
];

/// The checks a local stack can serve; autoscaling and load need a cluster
/// (the external metrics API, HPAs, the k6 Job) and are skipped by verify
/// itself with "could not run" when a profile declares them.
const LOCAL: [&str; 6] = [
    "targets",
    "rules",
    "alertmanager",
    "notifications",
    "logs",
    "dashboards",
];

struct Run {
    code: i32,
    report: Value,
    stderr: String,
}

impl Run {
    fn check(&self, id: &str) -> &Value {
        self.report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {:#}", self.report))
    }

    fn status(&self, id: &str) -> &str {
        self.check(id)["status"].as_str().unwrap()
    }

    fn summary(&self, id: &str) -> &str {
        self.check(id)["summary"].as_str().unwrap()
    }

    /// Every check but `failing` passes (or is skipped for its own reason);
    /// `failing` fails.
    fn only_fails(&self, failing: &str, profile: &str) {
        self.only_fail(&[failing], profile);
    }

    fn only_fail(&self, failing: &[&str], profile: &str) {
        assert_eq!(
            self.code, 1,
            "{profile}: {:#}\n{}",
            self.report, self.stderr
        );
        for check in self.report["checks"].as_array().unwrap() {
            let id = check["id"].as_str().unwrap();
            if failing.contains(&id) {
                assert_eq!(check["status"], "fail", "{profile}: {check:#}");
            } else {
                assert_ne!(
                    check["status"], "fail",
                    "{profile}: {id} failed too: {check:#}"
                );
            }
        }
    }
}

/// `telltale verify` for `profile` against every URL of the stack, Grafana
/// with the admin password the stack generated; no cluster.
fn verify(
    dir: &Path,
    stack: &LocalStack,
    profile: &str,
    checks: Option<&str>,
    timeout: &str,
) -> Run {
    let password = std::fs::read_to_string(stack.url("grafana_password_file")).unwrap();
    let mut cmd = crate::common::telltale(dir);
    cmd.env("GRAFANA_AUTH", format!("admin:{password}"))
        .env("KUBECONFIG", dir.join("no-kubeconfig"))
        .envs(CANARIES)
        .args(["verify", "--profile", profile, "-o", "json"])
        .args(["--timeout", timeout])
        .args(["--prometheus-url", stack.url("prometheus")])
        .args(["--alertmanager-url", stack.url("alertmanager")])
        .args(["--grafana-url", stack.url("grafana")])
        .args(["--loki-url", stack.url("loki")])
        .args(["--basic-auth-env", "GRAFANA_AUTH"]);
    if let Some(checks) = checks {
        cmd.args(["--checks", checks]);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for (var, canary) in CANARIES {
        assert!(!stdout.contains(canary), "{profile}: ${var} on stdout");
        assert!(!stderr.contains(canary), "{profile}: ${var} on stderr");
    }
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{profile}: one JSON document ({e}): {stderr}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        report,
        stderr,
    }
}

fn bundle(dir: &Path, profile: &str) -> (telltale::render::Bundle, std::path::PathBuf) {
    let bundle = crate::common::render_profile(profile);
    let out = dir.join("bundle");
    crate::common::write(&bundle, &out);
    (bundle, out)
}

/// The green run: every declared check that can run here passes; the
/// rest are skipped, each with its reason.
fn assert_green(profile: &str, bundle: &telltale::render::Bundle, run: &Run) {
    assert_eq!(run.code, 0, "{profile}: {:#}\n{}", run.report, run.stderr);
    let declared = telltale::verify::declared(bundle);
    let has_integrations = bundle
        .plan
        .alerting
        .receivers
        .iter()
        .any(|r| !r.integrations.is_empty());
    for id in declared {
        let name = id.name();
        let (status, summary) = (run.status(name), run.summary(name));
        match name {
            "notifications" if !has_integrations => {
                assert_eq!(status, "skip", "{profile}: {summary}");
                assert!(
                    summary.contains("no receiver has an integration"),
                    "{profile}: {summary}"
                );
            }
            "autoscaling" | "load" => {
                // Without a cluster: no external metrics API, no HPA, no k6
                // Job to run (the builtin engine is proven in verify.rs).
                assert_eq!(status, "skip", "{profile}: {name}: {summary}");
                assert!(
                    summary.starts_with("could not run"),
                    "{profile}: {name}: {summary}"
                );
            }
            _ => {
                assert!(LOCAL.contains(&name), "{profile}: unexpected check {name}");
                assert_eq!(status, "pass", "{profile}: {name}: {:#}", run.check(name));
            }
        }
    }
    // Every job of a system outside the bundle is listed as skipped.
    let targets = run.summary("targets");
    for t in &bundle.plan.expectations.targets {
        if let Some(system) = &t.requires {
            assert!(
                targets.contains(&format!("{} (requires {system})", t.job)),
                "{profile}: {targets}"
            );
        }
    }
    // Every dashboard is there, and the panels nothing here can feed are
    // named as skipped, never counted as having data.
    let dashboards = run.check("dashboards");
    let evidence = dashboards["evidence"].to_string();
    for uid in &bundle.plan.expectations.dashboards {
        assert!(
            evidence.contains(&format!("\"{uid}: ")),
            "{profile}: {uid}: {evidence}"
        );
    }
    // Each dashboard is loaded as a browser would, over 12 h, and timed;
    // the check passing means each loaded in under 3 s (seed 000).
    for uid in &bundle.plan.expectations.dashboards {
        assert!(
            evidence.contains(&format!("\"{uid}: loads in ")),
            "{profile}: {uid}: {evidence}"
        );
    }
    assert!(
        dashboards["summary"]
            .as_str()
            .unwrap()
            .contains("each loads in under 3 s over 12 h"),
        "{profile}: {dashboards:#}"
    );
    // node-exporter is real here: its panels have data, never skipped.
    assert!(
        !evidence.contains("no series of node_"),
        "{profile}: {evidence}"
    );
    assert!(!evidence.contains("no data: "), "{profile}: {evidence}");
}

#[test]
fn every_profile_is_green_on_its_own_local_stack_with_outside_systems_skipped() {
    for profile in crate::common::PROFILES {
        if profile == "production" {
            // Green and red on the same stack: below.
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let (bundle, out) = bundle(dir.path(), profile);
        let stack = LocalStack::start(&out, &[]);
        let run = verify(dir.path(), &stack, profile, None, "40s");
        assert_green(profile, &bundle, &run);
    }
}

/// Prometheus re-reads its rule files, and the test waits (at most 20 s)
/// until its rules API shows `group` loaded or not, as `loaded` says: the
/// fault must be in place before verify looks, or a green verify would
/// prove nothing.
fn reload(stack: &LocalStack, group: &str, loaded: bool) {
    let prometheus = stack.url("prometheus");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        ureq::post(&format!("{prometheus}/-/reload"))
            .send_empty()
            .unwrap();
        let rules: Value = ureq::get(&format!("{prometheus}/api/v1/rules"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        let present = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|g| g["name"] == group);
        if present == loaded {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 20 s of reloads Prometheus still shows group {group} loaded = {present}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Each dashboard's load, from verify's evidence: `(uid, seconds,
/// variable queries, hours of data)`.
fn loads(run: &Run) -> Vec<(String, f64, usize, Option<f64>)> {
    run.check("dashboards")["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let line = e.as_str()?;
            let (uid, rest) = line.split_once(": loads in ")?;
            let seconds: f64 = rest.split(' ').next()?.parse().ok()?;
            let variables: usize = rest
                .split_once("12 h (")?
                .1
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            // `data over the last 11.9 h`, `… 4 min`, `… 30 s`, or `no data`.
            let hours = rest.split_once("data over the last ").and_then(|(_, h)| {
                let mut words = h.split(' ');
                let n: f64 = words.next()?.parse().ok()?;
                let unit = words.next()?;
                Some(match unit.trim_end_matches([';', ')']) {
                    "h" => n,
                    "min" => n / 60.0,
                    _ => n / 3600.0,
                })
            });
            Some((uid.to_string(), seconds, variables, hours))
        })
        .collect()
}

/// The query variables a dashboard of the bundle runs on load (refresh on
/// load or on time-range change), read from the bundle's own file.
fn variables_on_load(out: &Path, uid: &str) -> usize {
    let text = std::fs::read_to_string(out.join(format!("grafana/dashboards/{uid}.json"))).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query" && matches!(v["refresh"].as_u64(), Some(1) | Some(2)))
        .count()
}

/// Production on a stack with 12 h of history is green, and its dashboards
/// load in time over the 12 h. (Each broken component is a test below, on
/// its own stack, so they run side by side.)
#[test]
fn production_is_green_over_12_hours_of_history_and_its_dashboards_load_in_time() {
    let profile = "production";
    let dir = tempfile::tempdir().unwrap();
    let (bundle, out) = bundle(dir.path(), profile);
    // 12 h of history: the 12 h load is timed on 12 h of data.
    let stack = LocalStack::start(&out, &["--history".as_ref(), "12h".as_ref()]);
    let history = &stack.urls["history"];
    eprintln!("production --history 12h: {history}");
    assert_eq!(history["duration_seconds"], 43_200, "{history}");
    assert!(
        history["seconds"].as_f64().unwrap() < 60.0,
        "the history takes seconds: {history}"
    );
    let run = verify(dir.path(), &stack, profile, None, "40s");
    assert_green(profile, &bundle, &run);
    // Every dashboard loads in under 3 s over 12 h, its variable queries
    // counted in; those with data have it over the whole 12 h (the
    // infrastructure dashboard among them).
    let loads = loads(&run);
    assert_eq!(
        loads.len(),
        bundle.plan.expectations.dashboards.len(),
        "{loads:?}"
    );
    for (uid, seconds, variables, hours) in &loads {
        eprintln!(
            "production: {uid} loads in {seconds:.2} s over 12 h, {variables} variable queries, data over {hours:?} h"
        );
        assert!(*seconds < 3.0, "{uid}: {seconds} s");
        assert_eq!(*variables, variables_on_load(&out, uid), "{uid}");
        if let Some(hours) = hours {
            assert!(*hours >= 11.9, "{uid}: data over {hours} h only");
        }
    }
    let infrastructure = loads
        .iter()
        .find(|(uid, ..)| uid == "telltale-infrastructure")
        .expect("the infrastructure dashboard");
    assert_eq!(infrastructure.3, Some(12.0), "{infrastructure:?}");
    assert!(infrastructure.2 > 0, "{infrastructure:?}");
}

/// A rule file Prometheus no longer loads, then a stopped node-exporter,
/// each fail their own check and only that, on a stack that was green.
#[test]
fn production_names_an_unloaded_rule_group_then_a_stopped_exporter() {
    let profile = "production";
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = bundle(dir.path(), profile);
    let stack = LocalStack::start(&out, &[]);
    let all = LOCAL.join(",");

    // A rule file Prometheus no longer loads: rules names the group.
    let rules = out.join("prometheus/rules/telltale-nodes.yaml");
    let kept = std::fs::read(&rules).unwrap();
    std::fs::remove_file(&rules).unwrap();
    reload(&stack, "telltale-nodes", false);
    let run = verify(dir.path(), &stack, profile, Some(&all), "20s");
    run.only_fails("rules", profile);
    let rules_check = run.check("rules");
    assert!(
        rules_check["summary"]
            .as_str()
            .unwrap()
            .contains("not loaded")
            && rules_check["evidence"]
                .to_string()
                .contains("telltale-nodes"),
        "{rules_check:#}"
    );
    std::fs::write(&rules, kept).unwrap();
    reload(&stack, "telltale-nodes", true);

    // node-exporter stopped: targets names the job and the instance.
    let pid = stack.urls["pids"]["node_exporter"].as_u64().unwrap();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    // Prometheus marks the target down at its next failed scrape: wait for
    // that (at most 20 s), so verify looks at the fault, not the last scrape.
    let prometheus = stack.url("prometheus");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let targets: Value = ureq::get(&format!("{prometheus}/api/v1/targets"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        let down = targets["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["labels"]["job"] == "node-exporter" && t["health"] == "down");
        if down {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus never saw node-exporter down: {targets}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let run = verify(dir.path(), &stack, profile, Some(&all), "20s");
    run.only_fails("targets", profile);
    let node = stack
        .url("node_exporter")
        .trim_start_matches("http://")
        .to_string();
    let evidence = run.check("targets")["evidence"].to_string();
    assert!(
        evidence.contains(&format!("down: job node-exporter instance {node}")),
        "{evidence}"
    );
}

/// Production on a stack started with `flags`: only `failing` fails, and its
/// summary says `says`.
fn production_with_fault(flags: &[&str], failing: &str, says: &str, timeout: &str) -> Run {
    let profile = "production";
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = bundle(dir.path(), profile);
    let flags: Vec<&std::ffi::OsStr> = flags.iter().map(|f| f.as_ref()).collect();
    let stack = LocalStack::start(&out, &flags);
    let all = LOCAL.join(",");
    let run = verify(dir.path(), &stack, profile, Some(&all), timeout);
    run.only_fails(failing, profile);
    assert!(
        run.summary(failing).contains(says),
        "{failing}: {:#}",
        run.check(failing)
    );
    run
}

/// Prometheus answering each panel 0.5 s late: the infrastructure
/// dashboard's 45 panel requests, six at a time, take 8 rounds (4 s): over
/// the 3 s limit, named with its time; the smaller dashboards stay under it.
/// Every request (and the probes of the panels nothing here feeds) is
/// slower: a longer timeout.
#[test]
fn production_names_the_dashboard_that_loads_slower_than_3_s() {
    production_with_fault(
        &["--grafana-query-delay", "500ms"],
        "dashboards",
        "dashboard(s) load slower than 3 s over 12 h: telltale-infrastructure (",
        "60s",
    );
}

/// One receiver's Slack answers 500: notifications fails for that receiver;
/// the others on the same integration are delivered.
#[test]
fn production_names_the_one_receiver_whose_slack_fails() {
    let failing = "notifications";
    let run = production_with_fault(
        &["--sink-status", "warning/slack=500"],
        failing,
        "warning: delivery failed on slack",
        "20s",
    );
    let evidence = run.check(failing)["evidence"].to_string();
    for receiver in ["critical", "security", "sla"] {
        assert!(
            evidence.contains(&format!("{receiver}: delivered")),
            "{evidence}"
        );
    }
    assert!(
        !run.summary(failing).contains("critical"),
        "{}",
        run.summary(failing)
    );
}

#[test]
fn production_names_a_missing_dashboard() {
    production_with_fault(
        &["--grafana-drop-dashboard", "telltale-slo"],
        "dashboards",
        "dashboard telltale-slo is missing",
        "20s",
    );
}

/// Loki drops the bundle's only log namespace: logs names it. The logs
/// dashboard reads the same lines, so its panels (and only those) lose their
/// data too: the one failure shows in both places.
#[test]
fn production_names_the_log_namespace_loki_lost_in_logs_and_its_dashboard() {
    let profile = "production";
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = bundle(dir.path(), profile);
    let all = LOCAL.join(",");
    let stack = LocalStack::start(
        &out,
        &["--loki-drop-namespace".as_ref(), "monitoring".as_ref()],
    );
    let run = verify(dir.path(), &stack, profile, Some(&all), "20s");
    run.only_fail(&["logs", "dashboards"], profile);
    assert_eq!(
        run.summary("logs"),
        "no log lines in the last 10m from namespace(s) monitoring"
    );
    let silent: Vec<&str> = run.check("dashboards")["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str()?.trim_start().strip_prefix("no data: "))
        .collect();
    assert!(!silent.is_empty(), "{:#}", run.check("dashboards"));
    for line in silent {
        assert!(line.starts_with("telltale-logs-overview / "), "{line}");
    }
}
