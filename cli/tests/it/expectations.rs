//! Every expectation plan.json hands to verify is backed by something the
//! bundle installs or scrapes, or declares the outside system it needs
//! (`requires:`): the lint over every built-in profile, and `plugins lint`
//! refusing a plugin whose expected job nothing scrapes.

use std::path::Path;

use telltale::render::{Bundle, UNBACKED};

/// The objects of a kind among the bundle's manifests, as (name, text).
fn objects<'a>(bundle: &'a Bundle, kind: &str) -> Vec<(&'a String, &'a String)> {
    crate::common::files_with_prefix(bundle, "manifests/")
        .into_iter()
        .filter(|(_, text)| text.contains(&format!("kind: {kind}\n")))
        .collect()
}

#[test]
fn every_expectation_of_every_profile_is_backed_or_declares_what_it_requires() {
    for profile in crate::common::PROFILES {
        let bundle = crate::common::render_profile(profile);
        let plan = &bundle.plan;
        let ex = &plan.expectations;
        let unbacked: Vec<&String> = plan
            .warnings
            .iter()
            .filter(|w| w.starts_with(UNBACKED))
            .collect();
        assert!(unbacked.is_empty(), "{profile}: {unbacked:#?}");
        for t in &ex.targets {
            assert!(
                t.scraped_by.is_some() || t.requires.is_some(),
                "{profile}: job {} has neither a scraper nor `requires:`",
                t.job
            );
            // A named monitor is one the bundle really holds.
            if let Some(monitor) = t.scraped_by.as_deref().filter(|b| !b.starts_with("chart ")) {
                let (kind, name) = monitor.split_once('/').unwrap();
                assert!(
                    objects(&bundle, kind)
                        .iter()
                        .any(|(_, text)| text.contains(&format!("name: {name}\n"))),
                    "{profile}: job {} names {monitor}, which the bundle does not hold",
                    t.job
                );
            }
            // A chart that scrapes it is one the bundle installs.
            if let Some(chart) = t
                .scraped_by
                .as_deref()
                .and_then(|b| b.strip_prefix("chart "))
            {
                assert!(
                    plan.releases.iter().any(|r| r.chart == chart),
                    "{profile}: job {} is scraped by chart {chart}, not installed",
                    t.job
                );
            }
        }
        for group in &ex.rule_groups {
            assert!(
                bundle
                    .files
                    .contains_key(&format!("prometheus/rules/{group}.yaml")),
                "{profile}: rule group {group} is not in the bundle"
            );
        }
        for uid in &ex.dashboards {
            assert!(
                bundle
                    .files
                    .contains_key(&format!("grafana/dashboards/{uid}.json")),
                "{profile}: dashboard {uid} is not in the bundle"
            );
        }
        if !ex.log_namespaces.is_empty() {
            assert!(
                plan.plugins
                    .iter()
                    .any(|p| p.phase == telltale::model::Phase::Logs),
                "{profile}: log namespaces expected but nothing collects logs"
            );
        }
        if !ex.external_metrics.is_empty() {
            assert!(
                plan.releases
                    .iter()
                    .any(|r| r.chart == "keda" || r.chart == "prometheus-adapter"),
                "{profile}: external metrics expected but no metrics adapter installed"
            );
        }
        for hpa in &ex.hpas {
            // Either the HPA itself, or the ScaledObject KEDA makes it from.
            let scaled = hpa.name.strip_prefix("keda-hpa-");
            let backed = objects(&bundle, "HorizontalPodAutoscaler")
                .iter()
                .any(|(_, text)| text.contains(&format!("name: {}\n", hpa.name)))
                || scaled.is_some_and(|name| {
                    objects(&bundle, "ScaledObject")
                        .iter()
                        .any(|(_, text)| text.contains(&format!("name: {name}\n")))
                });
            assert!(backed, "{profile}: HPA {} is not in the bundle", hpa.name);
        }
    }
}

/// data-platform's jobs of systems outside the bundle, and those systems.
const OUTSIDE: [(&str, &str); 6] = [
    ("vault", "vault"),
    ("trino", "trino"),
    ("datahub", "datahub"),
    ("minio", "minio"),
    ("doris-fe", "doris"),
    ("ingress-nginx", "ingress-nginx"),
];

#[test]
fn jobs_of_systems_outside_the_bundle_say_so_in_plan_json() {
    let bundle = crate::common::render_profile("data-platform");
    let plan: serde_json::Value = serde_json::from_str(&bundle.plan_json).unwrap();
    let targets = plan["expectations"]["targets"].as_array().unwrap();
    for (job, system) in OUTSIDE {
        let t = targets
            .iter()
            .find(|t| t["job"] == job)
            .unwrap_or_else(|| panic!("{job} in {targets:?}"));
        assert_eq!(t["requires"], system, "{t}");
    }
    // Superset's StatsD exporter is the bundle's own: scraped, not required.
    let superset = targets.iter().find(|t| t["job"] == "superset").unwrap();
    assert!(superset.get("requires").is_none(), "{superset}");
    assert_eq!(superset["scrapedBy"], "ServiceMonitor/superset");
    // The bundle's own jobs need nothing outside it.
    let apiserver = targets.iter().find(|t| t["job"] == "apiserver").unwrap();
    assert!(apiserver.get("requires").is_none(), "{apiserver}");
    assert_eq!(apiserver["scrapedBy"], "chart kube-prometheus-stack");
}

fn lint(dir: &Path) -> std::process::Output {
    crate::common::telltale(dir)
        .env("PATH", std::env::var_os("PATH").unwrap())
        .args(["plugins", "lint", "demo"])
        .output()
        .unwrap()
}

#[test]
fn plugins_lint_refuses_an_expected_job_nothing_scrapes() {
    crate::common::require_tool("promtool");
    crate::common::require_tool("amtool");
    let dir = tempfile::tempdir().unwrap();
    crate::common::telltale(dir.path())
        .args(["plugins", "new", "demo"])
        .assert()
        .success();
    // Without its ServiceMonitor, the scaffold's job is scraped by nothing.
    std::fs::remove_file(dir.path().join("demo/manifests/servicemonitor.yaml")).unwrap();
    let out = lint(dir.path());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("expected target job `demo`"), "{text}");
    assert!(text.contains("requires:"), "{text}");

    // Declaring the outside system it belongs to is the other way to pass.
    let manifest = dir.path().join("demo/plugin.yaml");
    let yaml = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        yaml.replace(
            "{job: demo, min: 1}",
            "{job: demo, min: 1, requires: demo-db}",
        ),
    )
    .unwrap();
    let out = lint(dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Prometheus stand-in answering /api/v1/targets with `targets` (job,
/// health) as active targets; every other path 404.
fn fake_prometheus(targets: Vec<(String, &'static str)>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let active: Vec<serde_json::Value> = targets
        .iter()
        .map(|(job, health)| {
            serde_json::json!({"labels": {"job": job, "instance": format!("{job}:9100")},
                               "health": health, "lastError": ""})
        })
        .collect();
    let body =
        serde_json::json!({"status": "success", "data": {"activeTargets": active}}).to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if head.contains("/api/v1/targets") {
                ("200 OK", body.as_str())
            } else {
                ("404 Not Found", "")
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn verify_targets(url: &str) -> (i32, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::common::telltale(dir.path())
        .args([
            "verify",
            "--profile",
            "data-platform",
            "--checks",
            "targets",
        ])
        .args(["--prometheus-url", url, "--timeout", "3s", "-o", "json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (out.status.code().unwrap(), report["checks"][0].clone())
}

#[test]
fn verify_skips_absent_outside_systems_and_checks_present_ones() {
    let bundle = crate::common::render_profile("data-platform");
    let ex = &bundle.plan.expectations.targets;
    // Everything the bundle installs is up; the outside systems are absent.
    let own: Vec<(String, &str)> = ex
        .iter()
        .filter(|t| t.requires.is_none())
        .flat_map(|t| std::iter::repeat_n((t.job.clone(), "up"), t.min as usize))
        .collect();
    let (code, check) = verify_targets(&fake_prometheus(own.clone()));
    assert_eq!(code, 0, "{check}");
    assert_eq!(check["status"], "pass", "{check}");
    let summary = check["summary"].as_str().unwrap();
    for (job, system) in OUTSIDE {
        assert!(
            summary.contains(&format!("{job} (requires {system})")),
            "{summary}"
        );
    }
    let evidence = check["evidence"].to_string();
    assert!(
        evidence.contains("vault: skipped: requires vault"),
        "{evidence}"
    );

    // Present but down: then it is checked, and fails.
    let mut with_vault = own;
    with_vault.push(("vault".into(), "down"));
    let (code, check) = verify_targets(&fake_prometheus(with_vault));
    assert_eq!(code, 1, "{check}");
    assert!(
        check["summary"].as_str().unwrap().contains("vault"),
        "{check}"
    );
}

/// The objects of `kind` in the bundle, parsed (by their own `kind`).
fn parsed(bundle: &Bundle, kind: &str) -> Vec<serde_json::Value> {
    objects(bundle, kind)
        .into_iter()
        .map(|(_, text)| serde_saphyr::from_str::<serde_json::Value>(text).unwrap())
        .filter(|o| o["kind"] == kind)
        .collect()
}

/// The one object of `kind` in the bundle.
fn object(bundle: &Bundle, kind: &str) -> serde_json::Value {
    let found = parsed(bundle, kind);
    assert_eq!(found.len(), 1, "one {kind}");
    found.into_iter().next().unwrap()
}

fn number(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::Number(n) => n.as_f64().unwrap(),
        serde_json::Value::String(s) => match s.strip_suffix('m') {
            Some(milli) => milli.parse::<f64>().unwrap() / 1000.0,
            None => s.parse().unwrap(),
        },
        other => panic!("not a number: {other}"),
    }
}

/// The seconds podinfo's `/delay/N` waits, from the load's URL.
fn delay_seconds(url: &str) -> f64 {
    url.rsplit_once("/delay/")
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or_else(|| panic!("the load does not slow the requests down: {url}"))
}

/// A query with the bundle's recording rules it reads replaced by their
/// expressions (the triggers read the model-serving records, whose rate
/// windows are what the load must outlast).
fn expanded(bundle: &Bundle, query: &str) -> String {
    let mut out = query.to_string();
    for (path, text) in &bundle.files {
        if !path.starts_with("prometheus/rules/") {
            continue;
        }
        let doc: serde_json::Value = serde_saphyr::from_str(text).unwrap();
        for group in doc["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().into_iter().flatten() {
                if let (Some(record), Some(expr)) = (rule["record"].as_str(), rule["expr"].as_str())
                    && query.contains(record)
                {
                    out.push_str(&format!("\n{expr}"));
                }
            }
        }
    }
    out
}

/// The `[window]` of a rate() in PromQL, in seconds.
fn rate_window(query: &str) -> u64 {
    let w = regex::Regex::new(r"\[(\d+)m\]")
        .unwrap()
        .captures(query)
        .unwrap_or_else(|| panic!("no [Nm] window in {query}"));
    w[1].parse::<u64>().unwrap() * 60
}

fn seconds(duration: &str) -> u64 {
    humantime::parse_duration(duration).unwrap().as_secs()
}

/// ml-slo's load crosses the thresholds of the ScaledObject the bundle
/// really renders (read from it, with KEDA's and the HPA's semantics), and
/// lasts as long as the triggers need to see it.
#[test]
fn ml_slos_load_crosses_the_keda_triggers_it_is_sized_from() {
    let bundle = crate::common::render_profile("ml-slo");
    let load = bundle.plan.expectations.load.clone().unwrap();
    let so = object(&bundle, "ScaledObject");
    let min = number(&so["spec"]["minReplicaCount"]);
    let triggers = so["spec"]["triggers"].as_array().unwrap();
    let latency = triggers
        .iter()
        .find(|t| t["metadata"]["query"].as_str().unwrap().contains("p95"))
        .unwrap();
    let throughput = triggers
        .iter()
        .find(|t| {
            t["metadata"]["query"]
                .as_str()
                .unwrap()
                .contains("http_requests")
        })
        .unwrap();
    // p95 is one value for the service: compared as is.
    assert_eq!(latency["metricType"], "Value");
    assert_eq!(throughput["metricType"], "AverageValue");
    // AverageValue: desired = ceil(rate / threshold), above the minimum.
    let threshold = number(&throughput["metadata"]["threshold"]);
    let desired = (f64::from(load.rate) / threshold).ceil();
    assert!(
        desired > min,
        "rate {} → {desired} replicas, min {min}",
        load.rate
    );
    // Value: desired = ceil(min × p95 / threshold); each request takes the delay.
    let p95 = number(&latency["metadata"]["threshold"]);
    assert!(
        (min * delay_seconds(&load.url) / p95).ceil() > min,
        "{} vs p95 threshold {p95}",
        load.url
    );
    // Long enough for the trigger's rate window and a polling interval.
    let window = rate_window(&expanded(
        &bundle,
        throughput["metadata"]["query"].as_str().unwrap(),
    ));
    let polling = number(&so["spec"]["pollingInterval"]) as u64;
    assert!(
        seconds(&load.duration) >= window + polling,
        "{} < {window}s + {polling}s",
        load.duration
    );
    assert_eq!(
        load.hpa.as_deref(),
        Some(
            format!(
                "monitoring/keda-hpa-{}",
                so["metadata"]["name"].as_str().unwrap()
            )
            .as_str()
        )
    );
    assert!(load.derived.unwrap().contains("wants"));
}

/// The Prometheus Adapter alternative: its HPA asks for one model and
/// version, the adapter's rules keep those labels, the demo server's series
/// carry them (pod labels through the ServiceMonitor), and the load crosses
/// the HPA's targets.
#[test]
fn the_prometheus_adapter_hpa_selects_model_and_version_and_the_load_crosses_it() {
    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: ml-slo\n  plugins:\n    keda: {enabled: false}\n    prometheus-adapter: {enabled: true}\n";
    let bundle = crate::common::render_with("ml-slo", Some(config), &[]);
    let load = bundle.plan.expectations.load.clone().unwrap();
    let hpa = object(&bundle, "HorizontalPodAutoscaler");
    let metrics = hpa["spec"]["metrics"].as_array().unwrap();
    let target = hpa["spec"]["scaleTargetRef"]["name"].clone();
    let deployment = parsed(&bundle, "Deployment")
        .into_iter()
        .find(|d| d["metadata"]["name"] == target)
        .unwrap_or_else(|| panic!("the HPA's target {target} is in the bundle"));
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let monitor = parsed(&bundle, "ServiceMonitor")
        .into_iter()
        .find(|m| m["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "model-server")
        .unwrap();
    let carried: Vec<&str> = monitor["spec"]["podTargetLabels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let values: serde_json::Value =
        serde_saphyr::from_str(&bundle.files["helm/prometheus-adapter/values.yaml"]).unwrap();
    let rules = values["rules"]["external"].as_array().unwrap();
    for m in metrics {
        let name = m["external"]["metric"]["name"].as_str().unwrap();
        let selector = m["external"]["metric"]["selector"]["matchLabels"]
            .as_object()
            .unwrap();
        let rule = rules
            .iter()
            .find(|r| r["name"]["as"] == name)
            .unwrap_or_else(|| panic!("no adapter rule serves {name}"));
        let query = rule["metricsQuery"].as_str().unwrap();
        for (label, value) in selector {
            assert_eq!(
                &pod_labels[label], value,
                "{name}: the pods are {label}={value}"
            );
            assert!(
                carried.contains(&label.as_str()),
                "{label} reaches the series"
            );
            assert!(
                query.contains(label.as_str()),
                "{name} keeps {label}: {query}"
            );
        }
        assert_eq!(selector.len(), 2, "model and version");
    }
    let min = number(&hpa["spec"]["minReplicas"]);
    let goal = |name: &str| {
        &metrics
            .iter()
            .find(|m| m["external"]["metric"]["name"] == name)
            .unwrap()["external"]["target"]
    };
    let rps = goal("model_requests_per_second");
    assert_eq!(rps["type"], "AverageValue");
    assert!((f64::from(load.rate) / number(&rps["averageValue"])).ceil() > min);
    let p95 = goal("model_latency_p95_seconds");
    assert_eq!(p95["type"], "Value");
    assert!((min * delay_seconds(&load.url) / number(&p95["value"])).ceil() > min);
    assert_eq!(load.hpa.as_deref(), Some("monitoring/model-server"));
}
