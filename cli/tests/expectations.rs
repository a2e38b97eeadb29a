//! Every expectation plan.json hands to verify is backed by something the
//! bundle installs or scrapes, or declares the outside system it needs
//! (`requires:`): the lint over every built-in profile, and `plugins lint`
//! refusing a plugin whose expected job nothing scrapes.

mod common;

use std::path::Path;

use telltale::render::{Bundle, UNBACKED};

/// The objects of a kind among the bundle's manifests, as (name, text).
fn objects<'a>(bundle: &'a Bundle, kind: &str) -> Vec<(&'a String, &'a String)> {
    common::files_with_prefix(bundle, "manifests/")
        .into_iter()
        .filter(|(_, text)| text.contains(&format!("kind: {kind}\n")))
        .collect()
}

#[test]
fn every_expectation_of_every_profile_is_backed_or_declares_what_it_requires() {
    for profile in common::PROFILES {
        let bundle = common::render_profile(profile);
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

#[test]
fn jobs_of_systems_outside_the_bundle_say_so_in_plan_json() {
    let bundle = common::render_profile("data-platform");
    let plan: serde_json::Value = serde_json::from_str(&bundle.plan_json).unwrap();
    let targets = plan["expectations"]["targets"].as_array().unwrap();
    for system in ["vault", "trino", "datahub", "superset"] {
        let t = targets
            .iter()
            .find(|t| t["job"] == system)
            .unwrap_or_else(|| panic!("{system} in {targets:?}"));
        assert_eq!(t["requires"], system, "{t}");
    }
    // The bundle's own jobs need nothing outside it.
    let apiserver = targets.iter().find(|t| t["job"] == "apiserver").unwrap();
    assert!(apiserver.get("requires").is_none(), "{apiserver}");
    assert_eq!(apiserver["scrapedBy"], "chart kube-prometheus-stack");
}

fn lint(dir: &Path) -> std::process::Output {
    common::telltale(dir)
        .env("PATH", std::env::var_os("PATH").unwrap())
        .args(["plugins", "lint", "demo"])
        .output()
        .unwrap()
}

#[test]
fn plugins_lint_refuses_an_expected_job_nothing_scrapes() {
    common::require_tool("promtool");
    common::require_tool("amtool");
    let dir = tempfile::tempdir().unwrap();
    common::telltale(dir.path())
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
    let out = common::telltale(dir.path())
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
    let bundle = common::render_profile("data-platform");
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
    for system in ["vault", "trino", "datahub", "superset"] {
        assert!(
            summary.contains(&format!("{system} (requires {system})")),
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
