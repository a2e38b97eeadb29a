//! Seed 000 §10, performance drift, against a REAL PostgreSQL (Debian's)
//! holding `finetune_results` with the seed's columns and no others: the
//! infrastructure dashboard's drift panels run their SQL as the bundle
//! ships it; the real postgres_exporter runs the ml-training plugin's custom
//! queries from the bundle's helm values and publishes what metrics.json
//! says; and the bundle's own ModelDrift expression, evaluated by real
//! Prometheus 3 scraping that exporter, fires when a new run's F1 drops.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::postgres::Postgres;
use crate::common::*;
use serde_json::Value;

const CONFIG: &str = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: t}\nspec:\n  profile: production\n  grafana:\n    datasources:\n      postgres: {host: 'db.ml.svc:5432', database: results, user: reader, password: {secretRef: {name: grafana-postgres, key: password}}}\n";

/// The seed's table: exactly the columns its queries name (no timestamp).
const TABLE: &str = "CREATE TABLE finetune_results (run_id integer, crypto text, cost_bps integer, \
     f1_macro double precision, sortino double precision, action_rate double precision, \
     cusum_block_rate double precision, n_train_samples integer)";

const CRYPTOS: [&str; 3] = ["AAVEUSDC", "OPUSDC", "UNIUSDC"];

/// One row of the fixture.
#[derive(Clone)]
struct Row {
    run: i64,
    crypto: &'static str,
    cost_bps: i64,
    f1: f64,
    sortino: f64,
    action: f64,
    cusum: f64,
    samples: i64,
}

/// Runs 1..=runs, every crypto at 15 and 30 bps, values varying with all three.
fn fixture(runs: i64) -> Vec<Row> {
    let mut rows = Vec::new();
    for run in 1..=runs {
        for (c, crypto) in CRYPTOS.iter().enumerate() {
            for cost_bps in [15, 30] {
                let k = c as f64 + if cost_bps == 15 { 0.0 } else { 0.5 };
                rows.push(Row {
                    run,
                    crypto,
                    cost_bps,
                    f1: 0.8 - 0.01 * run as f64 + 0.02 * k,
                    sortino: 1.5 - 0.05 * run as f64 + 0.3 * k,
                    action: 0.1 + 0.005 * run as f64 + 0.01 * k,
                    cusum: 0.95 - 0.002 * run as f64 - 0.001 * k,
                    samples: 27000 - 100 * run + 10 * c as i64,
                });
            }
        }
    }
    rows
}

fn insert(pg: &Postgres, rows: &[Row]) {
    let values: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "({}, '{}', {}, {}, {}, {}, {}, {})",
                r.run, r.crypto, r.cost_bps, r.f1, r.sortino, r.action, r.cusum, r.samples
            )
        })
        .collect();
    pg.query(&format!(
        "INSERT INTO finetune_results VALUES {}",
        values.join(", ")
    ));
}

fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.into_iter().collect();
    v.iter().sum::<f64>() / v.len() as f64
}

/// Per run, the mean of `field` over its rows (the seed's `AVG(..) GROUP BY run_id`).
fn per_run(rows: &[Row], field: fn(&Row) -> f64) -> BTreeMap<i64, f64> {
    let mut by: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for r in rows {
        by.entry(r.run).or_default().push(field(r));
    }
    by.into_iter().map(|(k, v)| (k, mean(v))).collect()
}

/// A run panel: its title, its value column, the fixture's field, and its
/// alert lines (column, factor of the moving average).
type Series = (
    &'static str,
    &'static str,
    fn(&Row) -> f64,
    &'static [(&'static str, f64)],
);

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// The drift panels of the bundle: title → (SQL, panel).
fn drift_panels(bundle: &telltale::render::Bundle) -> BTreeMap<String, (String, Value)> {
    let d: Value =
        serde_json::from_str(&bundle.files["grafana/dashboards/telltale-infrastructure.json"])
            .unwrap();
    let mut out = BTreeMap::new();
    for p in d["panels"].as_array().unwrap() {
        if p["datasource"]["type"] != "grafana-postgresql-datasource" || p["type"] == "row" {
            continue;
        }
        let sql = p["targets"][0]["rawSql"].as_str().unwrap().to_string();
        out.insert(p["title"].as_str().unwrap().to_string(), (sql, p.clone()));
    }
    out
}

#[test]
fn the_drift_panels_run_the_seeds_queries_on_a_real_postgresql_with_the_seeds_table() {
    let bundle = render_with("production", Some(CONFIG), &[]);
    let panels = drift_panels(&bundle);
    assert_eq!(
        panels.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "Action Rate Drift",
            "CUSUM Filter Rate",
            "F1 Macro Trend",
            "Sortino Trend",
            "Training Sample Trend"
        ]
    );
    let pg = Postgres::start();
    pg.query(TABLE);
    // 70 runs: more than the 60 shown, so the window and the limit both matter.
    let rows = fixture(70);
    insert(&pg, &rows);

    // F1, action rate, CUSUM rate, training samples: one point per run, the
    // 7-run moving average, and each alert line as a factor of it.
    let series: [Series; 4] = [
        (
            "F1 Macro Trend",
            "f1_macro",
            |r| r.f1,
            &[("alert: -10% of the 7-run average", 0.9)],
        ),
        (
            "Action Rate Drift",
            "action_rate",
            |r| r.action,
            &[("alert: +20%", 1.2), ("alert: -20%", 0.8)],
        ),
        ("CUSUM Filter Rate", "cusum_block_rate", |r| r.cusum, &[]),
        (
            "Training Sample Trend",
            "n_train_samples",
            |r| r.samples as f64,
            &[("alert: -15%", 0.85)],
        ),
    ];
    for (title, column, field, alerts) in series {
        let (sql, panel) = &panels[title];
        assert!(!sql.contains("created_at"), "{title}: {sql}");
        assert_eq!(panel["type"], "trend", "{title}");
        assert_eq!(panel["options"]["xField"], "run", "{title}");
        let result = pg.query(sql);
        let header = &result[0];
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| panic!("{title}: no column {name} in {header:?}"))
        };
        let expected = per_run(&rows, field);
        let data = &result[1..];
        assert_eq!(data.len(), 60, "{title}: the last 60 runs");
        for line in data {
            let run: i64 = line[col("run")].parse().unwrap();
            assert_eq!(line[col("run_id")], run.to_string(), "{title}");
            let value: f64 = line[col(column)].parse().unwrap();
            assert!(close(value, expected[&run]), "{title} run {run}: {value}");
            let window = mean(((run - 6).max(1)..=run).map(|r| expected[&r]));
            let avg: f64 = line[col("7-run moving average")].parse().unwrap();
            assert!(close(avg, window), "{title} run {run}: {avg} vs {window}");
            for (name, factor) in alerts {
                let v: f64 = line[col(name)].parse().unwrap();
                assert!(close(v, factor * window), "{title} {name} run {run}");
            }
        }
        let first: i64 = data[0][col("run")].parse().unwrap();
        assert_eq!(first, 11, "{title}: runs 11..=70, in order");
    }

    // Sortino: per run and crypto, at 15 bps only.
    let (sql, panel) = &panels["Sortino Trend"];
    assert_eq!(panel["type"], "trend");
    let result = pg.query(sql);
    assert_eq!(result[0], ["run", "crypto", "sortino"]);
    let mut expected: BTreeMap<(i64, String), Vec<f64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.cost_bps == 15) {
        expected
            .entry((r.run, r.crypto.to_string()))
            .or_default()
            .push(r.sortino);
    }
    let data = &result[1..];
    assert_eq!(data.len(), 60 * CRYPTOS.len());
    for line in data {
        let run: i64 = line[0].parse().unwrap();
        let value: f64 = line[2].parse().unwrap();
        let want = mean(expected[&(run, line[1].clone())].iter().copied());
        assert!(close(value, want), "sortino {line:?} vs {want}");
    }
}

/// postgres_exporter on 127.0.0.1, killed on drop.
struct Exporter(std::process::Child, String, std::path::PathBuf);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn postgres_exporter(pg: &Postgres, queries: &str, dir: &std::path::Path) -> Exporter {
    let bin = std::env::var_os("TELLTALE_TEST_POSTGRES_EXPORTER")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| require_tool("postgres_exporter"));
    assert!(
        bin.is_file(),
        "postgres_exporter is required: run scripts/tools (Debian's prometheus-postgres-exporter)"
    );
    let file = dir.join("queries.yaml");
    std::fs::write(&file, queries).unwrap();
    let port = local::free_port();
    let log = dir.join("postgres_exporter.log");
    let child = Command::new(bin)
        .arg(format!("--extend.query-path={}", file.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .env("DATA_SOURCE_NAME", pg.dsn())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("postgres_exporter starts");
    Exporter(child, format!("127.0.0.1:{port}"), log)
}

/// Scrapes the exporter until `name` is on the page (bounded), returning
/// every sample as (name, labels, value).
fn scrape_until(exporter: &Exporter, name: &str) -> Vec<(String, String, f64)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut r) = ureq::get(&format!("http://{}/metrics", exporter.1)).call() {
            let text = r.body_mut().read_to_string().unwrap_or_default();
            let samples: Vec<(String, String, f64)> = text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .filter_map(|l| {
                    let (series, value) = l.rsplit_once(' ')?;
                    let (name, labels) = match series.split_once('{') {
                        Some((n, rest)) => (n, rest.trim_end_matches('}')),
                        None => (series, ""),
                    };
                    Some((name.to_string(), labels.to_string(), value.parse().ok()?))
                })
                .collect();
            if samples.iter().any(|(n, _, _)| n == name) {
                return samples;
            }
        }
        assert!(
            Instant::now() < deadline,
            "postgres_exporter never published {name}:\n{}",
            std::fs::read_to_string(&exporter.2).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn query(prometheus: &local::Daemon, promql: &str) -> Vec<Value> {
    let body: Value = ureq::get(&format!("{}/api/v1/query", prometheus.url))
        .query("query", promql)
        .call()
        .unwrap_or_else(|e| panic!("query {promql}: {e}"))
        .body_mut()
        .read_json()
        .unwrap();
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn postgres_exporter_publishes_the_drift_series_and_the_drift_alert_fires_on_them() {
    let bundle = render_profile("production");
    // The queries exactly as the bundle hands them to the chart.
    let values: Value =
        serde_saphyr::from_str(&bundle.files["helm/postgres-exporter/values.yaml"]).unwrap();
    let queries = values["config"]["queries"]
        .as_str()
        .expect("config.queries in postgres-exporter's values");
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start();
    pg.query(TABLE);
    let rows = fixture(8);
    insert(&pg, &rows);
    let exporter = postgres_exporter(&pg, queries, dir.path());
    let samples = scrape_until(&exporter, "finetune_results_f1_macro");
    let value = |name: &str, label: &str| -> f64 {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l.contains(label))
            .unwrap_or_else(|| panic!("{name}{{{label}}} not published"))
            .2
    };
    // The latest run is the greatest run_id.
    let latest: Vec<&Row> = rows.iter().filter(|r| r.run == 8).collect();
    let f1 = mean(latest.iter().map(|r| r.f1));
    assert!(close(value("finetune_results_f1_macro", ""), f1));
    assert!(close(
        value("finetune_results_action_rate", ""),
        mean(latest.iter().map(|r| r.action))
    ));
    assert!(close(
        value("finetune_results_n_train_samples", ""),
        mean(latest.iter().map(|r| r.samples as f64))
    ));
    assert_eq!(value("finetune_results_runs", ""), 8.0);
    for crypto in CRYPTOS {
        let want = mean(
            latest
                .iter()
                .filter(|r| r.crypto == crypto && r.cost_bps == 15)
                .map(|r| r.sortino),
        );
        let got = value(
            "finetune_results_by_crypto_sortino",
            &format!("crypto=\"{crypto}\""),
        );
        assert!(close(got, want), "{crypto}: {got} vs {want}");
    }
    // Every name the postgres_exporter components declare is on the page.
    let page: BTreeSet<&str> = samples.iter().map(|(n, _, _)| n.as_str()).collect();
    let mut missing = Vec::new();
    for entry in catalog().plugins.values() {
        for p in &entry.plugin.spec.publishes {
            if p.component.starts_with("postgres_exporter") {
                missing.extend(
                    p.metrics
                        .iter()
                        .filter(|m| !page.contains(m.as_str()))
                        .map(|m| format!("{} ({}): {m}", p.component, entry.name())),
                );
            }
        }
    }
    assert!(
        missing.is_empty(),
        "declared but not published:\n{}",
        missing.join("\n")
    );

    // The bundle's ModelDrift expression, by real Prometheus scraping the exporter.
    let rule_file: telltale::render::rules::RuleFile =
        serde_saphyr::from_str(&bundle.files["prometheus/rules/telltale-ml-training.yaml"])
            .unwrap();
    let drift = rule_file.groups[0]
        .rules
        .iter()
        .find(|r| r.alert.as_deref() == Some("ModelDrift"))
        .unwrap()
        .expr
        .clone();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - {{job_name: postgres-exporter, static_configs: [{{targets: ['{}']}}]}}\n",
            exporter.1
        ),
    )
    .unwrap();
    let prometheus = local::prometheus(&config, dir.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    while query(
        &prometheus,
        "count_over_time(finetune_results_f1_macro[1m])",
    )
    .first()
    .and_then(|r| r["value"][1].as_str()?.parse::<f64>().ok())
    .unwrap_or(0.0)
        < 5.0
    {
        assert!(Instant::now() < deadline, "{}", prometheus.log());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        query(&prometheus, &drift).is_empty(),
        "no drift while the runs are stable: {drift}"
    );
    // A new run whose F1 is 30% below the last one.
    let worse: Vec<Row> = latest
        .iter()
        .map(|r| Row {
            run: 9,
            f1: r.f1 * 0.7,
            ..(*r).clone()
        })
        .collect();
    insert(&pg, &worse);
    let deadline = Instant::now() + Duration::from_secs(30);
    let fired = loop {
        let result = query(&prometheus, &drift);
        if !result.is_empty() {
            break result;
        }
        assert!(
            Instant::now() < deadline,
            "ModelDrift's expression never held after an F1 drop: {drift}\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(fired[0]["metric"]["job"], "postgres-exporter", "{fired:?}");
    let drop: f64 = fired[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(
        drop > 0.1 && drop < 0.3,
        "drop {drop} (the new run is 30% lower)"
    );
}
