//! The inhibition rules of every profile's alertmanager.yaml, proven in a real
//! Alertmanager: `amtool config routes test` only knows routing, so each
//! inhibited pair of routes-test.yaml (label sets derived from the rule tests)
//! is posted to a live instance; and end to end, Prometheus 3 evaluating the
//! production rules over synthetic series and notifying Alertmanager 0.3x.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::common::{PROFILES, local, render_profile, write};

fn post(am: &local::Daemon, alerts: Value) {
    ureq::post(&format!("{}/api/v2/alerts", am.url))
        .send_json(&alerts)
        .unwrap_or_else(|e| panic!("posting alerts: {e}\n{}", am.log()));
}

fn alerts(am: &local::Daemon) -> Vec<Value> {
    let body: Value = ureq::get(&format!("{}/api/v2/alerts", am.url))
        .call()
        .expect("GET /api/v2/alerts")
        .body_mut()
        .read_json()
        .expect("alerts are JSON");
    body.as_array().cloned().unwrap_or_default()
}

fn alert(labels: &Value, case: usize, ends: Option<SystemTime>) -> Value {
    let mut labels = labels.clone();
    // Keeps the cases apart without touching any label an inhibit rule reads.
    labels["telltale_case"] = json!(case.to_string());
    let mut alert = json!({"labels": labels});
    if let Some(ends) = ends {
        alert["endsAt"] = json!(humantime::format_rfc3339_seconds(ends).to_string());
    }
    alert
}

/// The alert whose labels include `labels`, once Alertmanager reports it.
fn find(am: &local::Daemon, labels: &Value, case: usize) -> Option<Value> {
    alerts(am).into_iter().find(|a| {
        a["labels"]["telltale_case"] == json!(case.to_string())
            && labels
                .as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| &a["labels"][k] == v)
    })
}

fn wait_for(
    am: &local::Daemon,
    labels: &Value,
    case: usize,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    while Instant::now() < deadline {
        last = find(am, labels, case);
        if last.as_ref().is_some_and(&ok) {
            return last.unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("case {case}: {labels} never became {what}; last seen: {last:?}");
}

#[test]
fn every_inhibited_pair_is_suppressed_by_its_source_in_a_real_alertmanager() {
    for profile in PROFILES {
        let bundle = render_profile(profile);
        let dir = tempfile::tempdir().unwrap();
        write(&bundle, &dir.path().join("bundle"));
        let spec: Value = crate::common::routes_test(&bundle);
        let pairs = spec["inhibitions"].as_array().expect("inhibitions listed");
        assert!(pairs.len() >= 3, "{profile}: too few inhibited pairs");

        let am = local::alertmanager(
            &dir.path().join("bundle/alertmanager/alertmanager.yaml"),
            dir.path(),
        );
        for (case, pair) in pairs.iter().enumerate() {
            let (source, target) = (&pair["source"], &pair["target"]);
            // Alone, the target is active: the suppression below is the source's doing.
            post(&am, json!([alert(target, case, None)]));
            wait_for(&am, target, case, "active", |a| {
                a["status"]["state"] == "active"
            });

            post(&am, json!([alert(source, case, None)]));
            let src = wait_for(&am, source, case, "active", |a| {
                a["status"]["state"] == "active"
            });
            let fingerprint = src["fingerprint"].clone();
            wait_for(&am, target, case, "suppressed by its source", |a| {
                a["status"]["state"] == "suppressed"
                    && a["status"]["inhibitedBy"]
                        .as_array()
                        .is_some_and(|by| by.contains(&fingerprint))
            });

            // Resolving the source lifts the inhibition again.
            post(
                &am,
                json!([alert(
                    source,
                    case,
                    Some(SystemTime::now() - Duration::from_secs(1))
                )]),
            );
            wait_for(&am, target, case, "active again", |a| {
                a["status"]["state"] == "active"
            });
            post(
                &am,
                json!([alert(
                    target,
                    case,
                    Some(SystemTime::now() - Duration::from_secs(1))
                )]),
            );
            eprintln!("{profile}: {} — ok", pair["name"]);
        }
    }
}

// ---------------------------------------------------------------------------
// End to end: real Prometheus 3 evaluates the production bundle's rules over
// synthetic series and notifies a real Alertmanager running the bundle's
// alertmanager.yaml. Only `for:` is changed (to 0s): Prometheus keeps pending
// time in memory, and a test cannot wait the 24h CertificateExpiringSoon
// needs. The expressions and static labels (what an inhibit rule reads) are
// the bundle's.

/// The synthetic series, counters growing with wall time so rate()/increase()
/// see traffic.
fn synthetic_series(t: f64, now: f64) -> String {
    let errors = 100.0 * t; // 6000 5xx per minute
    [
        // Node worker-1 lost contact (Ready=Unknown); worker-2 is fine.
        r#"kube_node_info{node="worker-1"} 1"#.to_string(),
        r#"kube_node_info{node="worker-2"} 1"#.to_string(),
        r#"kube_node_status_condition{node="worker-1",condition="Ready",status="unknown"} 1"#.to_string(),
        r#"kube_node_status_condition{node="worker-2",condition="Ready",status="unknown"} 0"#.to_string(),
        // Two Pending pods: web-0 on worker-1 (silenced), api-0 on worker-2 (delivered).
        r#"kube_pod_status_phase{namespace="prod",pod="web-0",phase="Pending"} 1"#.to_string(),
        r#"kube_pod_info{namespace="prod",pod="web-0",node="worker-1",uid="u1"} 1"#.to_string(),
        r#"kube_pod_status_phase{namespace="prod",pod="api-0",phase="Pending"} 1"#.to_string(),
        r#"kube_pod_info{namespace="prod",pod="api-0",node="worker-2",uid="u2"} 1"#.to_string(),
        // 5xx from services prod/api (down: silenced) and prod/web (delivered).
        format!(r#"http_requests_total{{namespace="prod",service="api",code="500"}} {errors}"#),
        format!(r#"http_requests_total{{namespace="prod",service="web",code="500"}} {errors}"#),
        // PVC data-db-0 is 95% full: Full and NearFull both fire.
        r#"kubelet_volume_stats_used_bytes{namespace="prod",persistentvolumeclaim="data-db-0"} 95"#.to_string(),
        r#"kubelet_volume_stats_capacity_bytes{namespace="prod",persistentvolumeclaim="data-db-0"} 100"#.to_string(),
        // Certificate prod/api-tls expires in 2 days: Critical and ExpiringSoon.
        format!(
            r#"certmanager_certificate_expiration_timestamp_seconds{{namespace="prod",name="api-tls",issuer_name="letsencrypt",issuer_kind="ClusterIssuer"}} {}"#,
            now + 2.0 * 86400.0
        ),
        // The Airflow scheduler stopped beating: Down and HeartbeatSlow.
        r#"airflow_scheduler_heartbeat{job="airflow-statsd",instance="10.0.0.5:9102"} 1200"#.to_string(),
    ]
    .join("\n")
        + "\n"
}

#[test]
fn prometheus_3_fires_the_production_rules_and_alertmanager_inhibits_each_seed_pair() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = render_profile("production");
    write(&bundle, &dir.path().join("bundle"));
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let for_ = regex::Regex::new(r"(?m)^(\s+)for: \S+$").unwrap();
    for (path, text) in crate::common::files_with_prefix(&bundle, "prometheus/rules/") {
        let name = path.trim_start_matches("prometheus/rules/");
        std::fs::write(
            rules.join(name),
            for_.replace_all(text, "${1}for: 0s").as_ref(),
        )
        .unwrap();
    }
    let am = local::alertmanager(
        &dir.path().join("bundle/alertmanager/alertmanager.yaml"),
        dir.path(),
    );
    let exporter = local::exporter(synthetic_series);
    let am_host = am.url.trim_start_matches("http://");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s, external_labels: {{cluster: e2e}}}}\n\
             rule_files: ['{}/*.yaml']\n\
             alerting: {{alertmanagers: [{{static_configs: [{{targets: ['{am_host}']}}]}}]}}\n\
             scrape_configs:\n\
             - {{job_name: synthetic, honor_labels: true, static_configs: [{{targets: ['{}']}}]}}\n\
             # Service prod/api: its only target refuses connections (up == 0).\n\
             - {{job_name: api, static_configs: [{{targets: ['127.0.0.1:{}'], labels: {{namespace: prod, service: api}}}}]}}\n",
            rules.display(),
            exporter.addr,
            local::free_port()
        ),
    )
    .unwrap();
    let prom = local::prometheus(&config, dir.path());

    // (source, suppressed target, delivered control), by labels.
    let pairs = [
        (
            json!({"alertname": "NodeDown", "node": "worker-1"}),
            json!({"alertname": "PodStuckPending", "pod": "web-0", "node": "worker-1"}),
            Some(json!({"alertname": "PodStuckPending", "pod": "api-0", "node": "worker-2"})),
        ),
        (
            json!({"alertname": "ServiceTargetsDown", "namespace": "prod", "service": "api"}),
            json!({"alertname": "HTTP5xxSpike", "namespace": "prod", "service": "api"}),
            Some(json!({"alertname": "HTTP5xxSpike", "namespace": "prod", "service": "web"})),
        ),
        (
            json!({"alertname": "PersistentVolumeFull", "persistentvolumeclaim": "data-db-0"}),
            json!({"alertname": "PersistentVolumeNearFull", "persistentvolumeclaim": "data-db-0"}),
            None,
        ),
        (
            json!({"alertname": "CertificateExpiryCritical", "name": "api-tls"}),
            json!({"alertname": "CertificateExpiringSoon", "name": "api-tls"}),
            None,
        ),
        (
            json!({"alertname": "SchedulerDown", "instance": "10.0.0.5:9102"}),
            json!({"alertname": "SchedulerHeartbeatSlow", "instance": "10.0.0.5:9102"}),
            None,
        ),
    ];
    let has = |a: &Value, labels: &Value| {
        labels
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| &a["labels"][k] == v)
    };
    let deadline = Instant::now() + Duration::from_secs(50);
    let mut last = Vec::new();
    let mut missing = Vec::new();
    while Instant::now() < deadline {
        last = alerts(&am);
        missing.clear();
        for (source, target, control) in &pairs {
            // The source alert, and its escalated copies (same name and
            // labels plus `escalation`, firing at once here): any of them
            // may be the one Alertmanager names as the inhibitor.
            let sources: Vec<&Value> = last
                .iter()
                .filter(|a| has(a, source) && a["status"]["state"] == "active")
                .map(|a| &a["fingerprint"])
                .collect();
            if sources.is_empty() {
                missing.push(format!("{source} not active"));
                continue;
            }
            let suppressed = last.iter().any(|a| {
                has(a, target)
                    && a["status"]["state"] == "suppressed"
                    && a["status"]["inhibitedBy"]
                        .as_array()
                        .is_some_and(|by| by.iter().any(|f| sources.contains(&f)))
            });
            if !suppressed {
                missing.push(format!("{target} not suppressed by {source}"));
            }
            if let Some(control) = control
                && !last
                    .iter()
                    .any(|a| has(a, control) && a["status"]["state"] == "active")
            {
                missing.push(format!("{control} not delivered (active)"));
            }
        }
        if missing.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(exporter);
    let summary: Vec<String> = last
        .iter()
        .map(|a| {
            format!(
                "{} {} {}",
                a["labels"]["alertname"], a["status"]["state"], a["labels"]
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "after 50 s:\n{}\nalerts in Alertmanager:\n{}\nprometheus log tail:\n{}",
        missing.join("\n"),
        summary.join("\n"),
        prom.log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (source, target, _) in &pairs {
        eprintln!("{} suppresses {}", source["alertname"], target["alertname"]);
    }
}
