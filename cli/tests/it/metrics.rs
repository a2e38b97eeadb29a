//! Metric provenance (issue 18): every metric name the rules and dashboards
//! of every profile's bundle read is listed in the bundle's metrics.json with
//! the component that publishes it; a name nothing declares is a `plan`
//! warning and a `plugins lint` error; and what the components that run here
//! declare is checked against their live /metrics: real Prometheus 3,
//! Alertmanager 0.33 and node-exporter 1.11 (with its textfile collector).
//! postgres_exporter's lists are checked in drift.rs, on a real PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;
use telltale::render::metrics;

/// Production with the site's PostgreSQL datasource, so the drift panels are in too.
const PRODUCTION_WITH_POSTGRES: &str = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: production\n  grafana:\n    datasources:\n      postgres: {host: 'db.ml.svc:5432', database: results, user: reader, password: {secretRef: {name: grafana-postgres, key: password}}}\n";

fn table(bundle: &telltale::render::Bundle) -> Vec<Value> {
    let v: Value = serde_json::from_str(&bundle.files["metrics.json"]).expect("metrics.json");
    v["metrics"].as_array().cloned().unwrap_or_default()
}

/// The metric names the bundle's files read, found from the files
/// themselves (not from the renderer's own bookkeeping).
fn read_by_files(bundle: &telltale::render::Bundle) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (_, text) in files_with_prefix(bundle, "prometheus/rules/") {
        let file: telltale::render::rules::RuleFile = serde_saphyr::from_str(text).unwrap();
        for group in file.groups {
            for u in metrics::rule_uses(&group.name, &group.rules).unwrap() {
                names.insert(u.metric);
            }
        }
    }
    for (path, text) in files_with_prefix(bundle, "grafana/dashboards/") {
        let d: Value = serde_json::from_str(text).unwrap();
        let uid = path.trim_start_matches("grafana/dashboards/");
        for u in metrics::dashboard_uses(uid, &d).unwrap() {
            names.insert(u.metric);
        }
    }
    names
}

#[test]
fn every_metric_of_every_profile_is_published_by_a_component_of_its_bundle() {
    let mut bundles: Vec<(String, telltale::render::Bundle)> = PROFILES
        .iter()
        .map(|p| (p.to_string(), render_profile(p)))
        .collect();
    bundles.push((
        "production+postgres".into(),
        render_with("production", Some(PRODUCTION_WITH_POSTGRES), &[]),
    ));
    let mut problems = Vec::new();
    for (name, bundle) in &bundles {
        let rows = table(bundle);
        let listed: BTreeSet<String> = rows
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            listed,
            read_by_files(bundle),
            "{name}: metrics.json lists exactly what the rules and dashboards read"
        );
        for r in &rows {
            if r["publishedBy"].as_array().is_none_or(|p| p.is_empty()) {
                problems.push(format!("{name}: {r}"));
            }
        }
        for w in &bundle.plan.warnings {
            if w.starts_with(&format!("{} `", metrics::UNPUBLISHED)) {
                problems.push(format!("{name}: warning {w}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "metrics nothing in the bundle publishes:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_drift_alert_reads_what_postgres_exporter_publishes_from_the_seeds_table() {
    let bundle = render_profile("production");
    let rows = table(&bundle);
    let f1 = rows
        .iter()
        .find(|r| r["name"] == "finetune_results_f1_macro")
        .expect("the drift alert reads finetune_results_f1_macro");
    assert!(
        f1["publishedBy"].to_string().contains("postgres_exporter"),
        "{f1}"
    );
    assert!(f1["usedBy"].to_string().contains("ModelDrift"), "{f1}");
    // Nothing reads a Pushgateway series, and nothing expects a Pushgateway.
    assert!(!bundle.files["metrics.json"].contains("ml_model_f1_macro"));
    assert!(
        !bundle.plan_json.contains("pushgateway"),
        "no profile installs a Pushgateway"
    );
}

#[test]
fn a_panel_on_another_plugins_series_is_left_out_without_that_plugin() {
    // kind has no Airflow, PostgreSQL exporter, cert-manager or blackbox exporter.
    let kind = render_profile("kind");
    let d: Value =
        serde_json::from_str(&kind.files["grafana/dashboards/telltale-infrastructure.json"])
            .unwrap();
    // What the panels query (descriptions may name a metric in prose).
    let exprs = |d: &Value| -> String {
        let mut out = String::new();
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push_str(t["expr"].as_str().unwrap_or_default());
                out.push('\n');
            }
        }
        out
    };
    let text = exprs(&d);
    for metric in [
        "airflow:scheduler_heartbeat:age_seconds",
        "pg_stat_activity_count",
        "certmanager_certificate_expiration_timestamp_seconds",
        "probe_dns_lookup_time_seconds",
    ] {
        assert!(!text.contains(metric), "kind reads {metric}");
    }
    // The DNS panel keeps its CoreDNS query; only the blackbox one goes.
    assert!(text.contains("coredns_dns_request_duration_seconds_bucket"));
    // Production has them all.
    let production = render_profile("production");
    let raw = &production.files["grafana/dashboards/telltale-infrastructure.json"];
    assert!(!raw.contains("x-telltale-requires"));
    let text = exprs(&serde_json::from_str(raw).unwrap());
    for metric in [
        "airflow:scheduler_heartbeat:age_seconds",
        "pg_stat_activity_count",
        "probe_dns_lookup_time_seconds",
    ] {
        assert!(text.contains(metric), "production lost {metric}");
    }
}

#[test]
fn a_metric_nothing_publishes_is_a_plan_warning_and_a_lint_error() {
    require_tool("promtool");
    require_tool("amtool");
    let dir = tempfile::tempdir().unwrap();
    telltale(dir.path())
        .args(["plugins", "new", "demo"])
        .assert()
        .success();
    // The scaffold's alert (and its promtool test) on a series of the demo's own.
    for file in ["demo/rules/demo.yaml", "demo/tests/demo_test.yaml"] {
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("up{job="), "{text}");
        std::fs::write(&path, text.replace("up{job=", "demo_widgets_up{job=")).unwrap();
    }
    let with_path = |cmd: &mut assert_cmd::Command| {
        cmd.env("PATH", std::env::var_os("PATH").unwrap());
    };
    let mut lint = telltale(dir.path());
    with_path(&mut lint);
    let output = lint.args(["plugins", "lint", "demo"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("metric `demo_widgets_up` (read by rule demo/DemoDown)"),
        "{stdout}"
    );

    let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: kind\n  plugins: {demo: {enabled: true}}\n";
    std::fs::write(dir.path().join("telltale.yaml"), config).unwrap();
    let plan = |dir: &Path| {
        telltale(dir)
            .args(["plan", "--plugin-dir", "demo", "--out", "out"])
            .output()
            .unwrap()
    };
    let output = plan(dir.path());
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "warning: metric `demo_widgets_up` is published by no component of this bundle; read by rule demo/DemoDown"
        ),
        "{stderr}"
    );
    let listed: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/metrics.json")).unwrap(),
    )
    .unwrap();
    let row = listed["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "demo_widgets_up")
        .unwrap()
        .clone();
    assert_eq!(row["publishedBy"], serde_json::json!([]));

    // Declared: lint passes and plan no longer warns.
    let manifest = dir.path().join("demo/plugin.yaml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("  publishes:\n    - {component: demo_exporter, source: https://example.com/demo, metrics: [demo_widgets_up]}\n");
    std::fs::write(&manifest, text).unwrap();
    let mut lint = telltale(dir.path());
    with_path(&mut lint);
    lint.args(["plugins", "lint", "demo"]).assert().code(0);
    std::fs::remove_dir_all(dir.path().join("out")).unwrap();
    let output = plan(dir.path());
    assert!(output.status.success());
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("demo_widgets_up"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The series names of a text-format /metrics page.
fn exposed(url: &str) -> BTreeSet<String> {
    let text = ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .body_mut()
        .read_to_string()
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
        .collect()
}

/// What each component of the catalogue declares, by component name.
fn declared() -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in catalog().plugins.values() {
        for p in &entry.plugin.spec.publishes {
            out.entry(p.component.clone())
                .or_default()
                .extend(p.metrics.iter().cloned());
        }
    }
    out
}

fn wait_for(url: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ureq::get(url).call().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{url} never answered:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// node-exporter with the textfile collector on `textfiles`, killed on drop.
struct NodeExporter(std::process::Child, String);

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node_exporter(textfiles: &Path, dir: &Path) -> NodeExporter {
    let bin = require_tool("prometheus-node-exporter");
    let port = local::free_port();
    let log = dir.join("node-exporter.log");
    let child = Command::new(bin)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--collector.textfile.directory={}",
            textfiles.display()
        ))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("node-exporter starts");
    let url = format!("http://127.0.0.1:{port}/metrics");
    let exporter = NodeExporter(child, url.clone());
    wait_for(&url, &log);
    exporter
}

#[test]
fn declared_metrics_are_in_the_live_metrics_of_the_components_that_run_here() {
    let dir = tempfile::tempdir().unwrap();
    // Alertmanager with one receiver; Prometheus scraping itself, with one
    // rule group and Alertmanager to notify (so its rule and notifier series exist).
    let am_config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        "route: {receiver: sink}\nreceivers:\n  - name: sink\n    webhook_configs: [{url: 'http://127.0.0.1:9/'}]\n",
    )
    .unwrap();
    let alertmanager = local::alertmanager(&am_config, dir.path());
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups: [{name: g, rules: [{record: 'job:up:sum', expr: 'sum by (job) (up)'}]}]\n",
    )
    .unwrap();
    let am = alertmanager.url.trim_start_matches("http://").to_string();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: ['{}']\n\
             alerting: {{alertmanagers: [{{static_configs: [{{targets: ['{am}']}}]}}]}}\n\
             scrape_configs: []\n",
            rules.display()
        ),
    )
    .unwrap();
    let prometheus = local::prometheus(&config, dir.path());
    let textfiles = dir.path().join("textfile");
    std::fs::create_dir_all(&textfiles).unwrap();
    std::fs::write(
        textfiles.join("demo.prom"),
        "# TYPE demo_last_run_seconds gauge\ndemo_last_run_seconds 1\n",
    )
    .unwrap();
    let node = node_exporter(&textfiles, dir.path());
    // Give Prometheus a rule evaluation before reading its page.
    std::thread::sleep(Duration::from_secs(2));

    let live: [(&str, String); 4] = [
        ("prometheus", format!("{}/metrics", prometheus.url)),
        ("alertmanager", format!("{}/metrics", alertmanager.url)),
        ("node-exporter", node.1.clone()),
        ("node-exporter (textfile collector)", node.1.clone()),
    ];
    let declared = declared();
    let mut problems = Vec::new();
    for (component, url) in &live {
        let names = declared
            .get(*component)
            .unwrap_or_else(|| panic!("no plugin declares component {component}"));
        let page = exposed(url);
        for name in names {
            if !page.contains(name) {
                problems.push(format!("{component} does not expose {name} ({url})"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
