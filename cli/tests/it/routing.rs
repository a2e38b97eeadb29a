//! The README's routing table, proven on the production bundle rendered
//! with the site's values (tests/fixtures/configs/production-site.yaml:
//! every integration present). The table is parsed out of README.md, so the
//! README and the routing cannot drift apart:
//!
//! - every row goes through real `amtool config routes test`, and every
//!   receiver of the bundle is in the README's receivers table with the
//!   integrations the bundle gives it;
//! - every row is posted to the real Alertmanager 0.33 of the local stack,
//!   loading the bundle's own alertmanager.yaml and template file, twice:
//!   rendered with business hours that contain "now" and with business hours
//!   that do not (chosen from the test's clock, through the time zone, as a
//!   user would set them). Inside, every row reaches exactly its receivers'
//!   integrations; outside, the rows the README says wait for business hours
//!   are held (received, active, not sent) and every other row is sent;
//! - the notification templates: what the sink receives (Slack, email,
//!   PagerDuty) holds the alert's summary, description, runbook and a link
//!   to a dashboard of the bundle that shows the alert's metric.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::stack::LocalStack;
use serde_json::{Value, json};
use telltale::render::Bundle;

const README: &str = include_str!("../../../README.md");
const SITE: &str = include_str!("../fixtures/configs/production-site.yaml");

/// One row of the README's routing table.
#[derive(Debug, Clone)]
struct Row {
    class: String,
    labels: Vec<(String, String)>,
    receivers: Vec<String>,
    when: String,
}

impl Row {
    /// Held outside business hours, as the README says.
    fn business_hours_only(&self) -> bool {
        self.when.contains("business hours")
    }
}

fn backticked(cell: &str) -> Vec<String> {
    regex::Regex::new("`([^`]+)`")
        .unwrap()
        .captures_iter(cell)
        .map(|c| c[1].to_string())
        .collect()
}

/// The rows (cells trimmed, header and separator dropped) of the first
/// markdown table at or after `marker`.
fn table_at(marker: &str) -> Vec<Vec<String>> {
    let start = README
        .find(marker)
        .unwrap_or_else(|| panic!("README.md has `{marker}`"));
    let mut rows = Vec::new();
    for line in README[start..].lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<String> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        rows.push(cells);
    }
    assert!(rows.len() > 2, "a table after `{marker}`");
    rows.drain(..2);
    rows
}

fn routing_table() -> Vec<Row> {
    table_at("<!-- routing-table")
        .into_iter()
        .map(|cells| {
            assert_eq!(cells.len(), 4, "{cells:?}");
            Row {
                class: cells[0].clone(),
                labels: backticked(&cells[1])
                    .iter()
                    .map(|l| {
                        let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{l}"));
                        (k.to_string(), v.to_string())
                    })
                    .collect(),
                receivers: backticked(&cells[2]),
                when: cells[3].clone(),
            }
        })
        .collect()
}

/// receiver → the integrations the README's receivers table gives it, by
/// the names plan.json uses.
fn receivers_table() -> BTreeMap<String, Vec<String>> {
    table_at("| receiver | integrations |")
        .into_iter()
        .map(|cells| {
            let name = backticked(&cells[0]).remove(0);
            let mut integrations: Vec<String> = cells[1]
                .split(',')
                .map(|i| i.trim().to_lowercase())
                .filter(|i| i != "none")
                .map(|i| match i.as_str() {
                    "sms" => "sms-bridge".to_string(),
                    "soc webhook" => "soc-webhook".to_string(),
                    other => other.to_string(),
                })
                .collect();
            integrations.sort();
            (name, integrations)
        })
        .collect()
}

fn site(profile: &str, business_hours: Option<&str>) -> String {
    let mut text = SITE.replace("profile: production", &format!("profile: {profile}"));
    if let Some(hours) = business_hours {
        text = text.replace(
            "  alerting:\n",
            &format!("  alerting:\n    businessHours: {hours}\n"),
        );
    }
    text
}

fn site_value(path: &[&str]) -> String {
    let doc: Value = serde_saphyr::from_str(SITE).unwrap();
    let mut v = &doc;
    for p in path {
        v = &v[*p];
    }
    v.as_str()
        .unwrap_or_else(|| panic!("{path:?} in the fixture"))
        .to_string()
}

fn amtool_routes(config: &Path, labels: &[(String, String)], want: &[String]) {
    let mut args: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !labels.iter().any(|(k, _)| k == "alertname") {
        args.push("alertname=RoutingTableRow".into());
    }
    // amtool exits non-zero when the receivers differ from --verify.receivers.
    let out = crate::common::run_ok(
        Command::new(crate::common::require_tool("amtool"))
            .args(["config", "routes", "test", "--config.file"])
            .arg(config)
            .arg(format!("--verify.receivers={}", want.join(",")))
            .args(&args),
    );
    assert_eq!(
        out.lines().next(),
        Some(want.join(",").as_str()),
        "{args:?}"
    );
}

fn integrations_of(bundle: &Bundle, receiver: &str) -> Option<Vec<String>> {
    bundle
        .plan
        .alerting
        .receivers
        .iter()
        .find(|t| t.receiver == receiver)
        .map(|t| {
            let mut i = t.integrations.clone();
            i.sort();
            i
        })
}

#[test]
fn every_row_of_the_readme_routing_table_is_what_amtool_resolves() {
    let rows = routing_table();
    assert!(rows.len() >= 10, "{rows:#?}");
    let dir = tempfile::tempdir().unwrap();
    let production = crate::common::render_with("production", Some(&site("production", None)), &[]);
    crate::common::write(&production, &dir.path().join("production"));
    let config = dir.path().join("production/alertmanager/alertmanager.yaml");
    for row in &rows {
        amtool_routes(&config, &row.labels, &row.receivers);
    }
    // The same alerts on the profile that makes the operations email the
    // default receiver: only the rows that went to `warning` for want of a
    // severity change.
    let data = crate::common::render_with("data-platform", Some(&site("data-platform", None)), &[]);
    crate::common::write(&data, &dir.path().join("data"));
    let data_config = dir.path().join("data/alertmanager/alertmanager.yaml");
    let mut defaulted = 0;
    for row in &rows {
        let severity = row.labels.iter().any(|(k, _)| k == "severity");
        let want = if severity {
            row.receivers.clone()
        } else {
            defaulted += 1;
            assert!(row.when.contains("`default`"), "{row:?}");
            vec!["default".to_string()]
        };
        amtool_routes(&data_config, &row.labels, &want);
    }
    assert_eq!(defaulted, 1, "one row without a severity");

    // The receivers table: every receiver of either bundle is in it, with
    // the integrations the bundle gives it, and every row names only them.
    let table = receivers_table();
    let mut seen = BTreeSet::new();
    for bundle in [&production, &data] {
        for tier in &bundle.plan.alerting.receivers {
            let listed = table.get(&tier.receiver).unwrap_or_else(|| {
                panic!(
                    "receiver {} is not in the README's receivers table",
                    tier.receiver
                )
            });
            assert_eq!(
                Some(listed.clone()),
                integrations_of(bundle, &tier.receiver),
                "README's integrations of {}",
                tier.receiver
            );
            seen.insert(tier.receiver.clone());
        }
    }
    let listed: BTreeSet<String> = table.keys().cloned().collect();
    assert_eq!(listed, seen, "the README lists receivers no bundle has");
    for row in &rows {
        for r in &row.receivers {
            assert!(table.contains_key(r), "{r} of {row:?}");
        }
    }
}

/// The Etc/GMT zone where the local hour is `local` while it is `utc` in
/// UTC (POSIX signs: Etc/GMT-2 is two hours ahead of UTC).
fn zone_where_hour_is(local: i64, utc: i64) -> String {
    let mut offset = (local - utc).rem_euclid(24);
    if offset > 12 {
        offset -= 24;
    }
    match offset {
        0 => "Etc/UTC".into(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// Where a notification to `receiver` arrives at the local stack's sink, per
/// integration of the receiver in the bundle's alertmanager.yaml:
/// `(integration, path)`.
fn exits(config: &Value, receiver: &str) -> BTreeSet<(String, String)> {
    let r = config["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == receiver)
        .unwrap_or_else(|| panic!("no receiver {receiver}"));
    let mut out = BTreeSet::new();
    for (key, integration) in [
        ("slack_configs", "slack"),
        ("pagerduty_configs", "pagerduty"),
        ("webhook_configs", "webhook"),
        ("email_configs", "email"),
    ] {
        for c in r[key].as_array().into_iter().flatten() {
            let path = match integration {
                "email" => format!("mailto:{}", c["to"].as_str().unwrap()),
                "pagerduty" => format!("/pagerduty/{receiver}/v2/enqueue"),
                other => format!("/{other}/{receiver}"),
            };
            out.insert((integration.to_string(), path));
        }
    }
    out
}

fn received(stack: &LocalStack) -> Vec<Value> {
    ureq::get(&format!("{}/received", stack.url("sink")))
        .call()
        .unwrap()
        .body_mut()
        .read_json::<Vec<Value>>()
        .unwrap()
}

fn delivered(all: &[Value], alertname: &str) -> BTreeSet<(String, String)> {
    all.iter()
        .filter(|e| e["body"].to_string().contains(alertname))
        .map(|e| {
            (
                e["integration"].as_str().unwrap_or_default().to_string(),
                e["path"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The alert `name` as the bundle's promtool tests fire it: its labels and
/// its expanded annotations.
fn fired_in_tests(bundle: &Bundle, name: &str) -> (BTreeMap<String, String>, Value) {
    for (_, text) in crate::common::files_with_prefix(bundle, "prometheus/tests/") {
        let doc: Value = serde_saphyr::from_str(text).unwrap();
        for test in doc["tests"].as_array().into_iter().flatten() {
            for case in test["alert_rule_test"].as_array().into_iter().flatten() {
                if case["alertname"] != name {
                    continue;
                }
                if let Some(alert) = case["exp_alerts"].as_array().and_then(|a| a.first()) {
                    let mut labels: BTreeMap<String, String> = alert["exp_labels"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect();
                    labels.insert("alertname".into(), name.into());
                    return (labels, alert["exp_annotations"].clone());
                }
            }
        }
    }
    panic!("{name} never fires in the bundle's tests")
}

/// Quoted-printable, as Alertmanager's email notifier writes its parts.
fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Run {
    name: &'static str,
    bundle: Bundle,
    config: Value,
    stack: LocalStack,
    _dir: tempfile::TempDir,
}

fn start(name: &'static str, business_hours: &str) -> Run {
    let bundle = crate::common::render_with(
        "production",
        Some(&site("production", Some(business_hours))),
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    crate::common::write(&bundle, dir.path());
    let config: Value =
        serde_saphyr::from_str(&bundle.files["alertmanager/alertmanager.yaml"]).unwrap();
    let stack = LocalStack::start(dir.path(), &[]);
    Run {
        name,
        bundle,
        config,
        stack,
        _dir: dir,
    }
}

fn post(run: &Run, alerts: &Value) {
    ureq::post(&format!("{}/api/v2/alerts", run.stack.url("alertmanager")))
        .send_json(alerts)
        .unwrap_or_else(|e| panic!("{}: Alertmanager takes the alerts: {e}", run.name));
}

#[test]
fn business_hours_hold_capacity_planning_and_nothing_else_on_the_real_alertmanager() {
    let rows = routing_table();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let utc_hour = now / 3600 % 24;
    // 09:00-17:00 every day (Alertmanager weeks run Sunday to Saturday), in a zone where it is now about noon, and in
    // one where it is about 2 in the morning.
    let hours = |zone: String| {
        format!(
            "{{timezone: {zone}, weekdays: [\"sunday:saturday\"], start: \"09:00\", end: \"17:00\"}}"
        )
    };
    let inside_zone = zone_where_hour_is(12, utc_hour);
    let outside_zone = zone_where_hour_is(2, utc_hour);
    let runs = [
        start("inside business hours", &hours(inside_zone.clone())),
        start("outside business hours", &hours(outside_zone.clone())),
    ];
    for (run, zone) in runs.iter().zip([&inside_zone, &outside_zone]) {
        assert_eq!(
            run.config["time_intervals"][0]["time_intervals"][0]["location"], **zone,
            "{}: the bundle's business hours are the config's",
            run.name
        );
    }
    let cluster = site_value(&["spec", "cluster", "name"]);
    let runbook = format!(
        "{}/ROUTING.md",
        site_value(&["spec", "alerting", "runbookBaseUrl"])
    );
    // One alert per row, and the bundle's own SchedulerDown as its tests
    // fire it (its level-3 copy too, for PagerDuty's text).
    let name = |i: usize| format!("RoutingTableRow{i:02}");
    let (scheduler_labels, scheduler_annotations) =
        fired_in_tests(&runs[0].bundle, "SchedulerDown");
    let mut alerts = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let mut labels: BTreeMap<String, String> = row.labels.iter().cloned().collect();
        labels.insert("alertname".into(), name(i));
        labels.insert("cluster".into(), cluster.clone());
        alerts.push(json!({
            "labels": labels,
            "annotations": {
                "summary": format!("Routing table row {i}: {}", row.class),
                "description": format!("The README's row `{}`, posted by cli/tests/it/routing.rs.", row.class),
                "sla": "none",
                "runbook_url": runbook,
            },
        }));
    }
    let mut scheduler = scheduler_labels.clone();
    scheduler.insert("cluster".into(), cluster.clone());
    let mut escalated = scheduler.clone();
    escalated.insert("escalation".into(), "3".into());
    for labels in [&scheduler, &escalated] {
        alerts.push(json!({"labels": labels, "annotations": scheduler_annotations}));
    }
    let alerts = Value::Array(alerts);
    let posted = Instant::now();
    for run in &runs {
        post(run, &alerts);
    }

    // What each row must reach, per run: its receivers' integrations, none
    // outside business hours for the rows that wait for them.
    let expected = |run: &Run, row: &Row| -> BTreeSet<(String, String)> {
        if run.name.starts_with("outside") && row.business_hours_only() {
            return BTreeSet::new();
        }
        row.receivers
            .iter()
            .flat_map(|r| exits(&run.config, r))
            .collect()
    };
    for row in &rows {
        if row.when.starts_with("never") {
            assert!(expected(&runs[0], row).is_empty(), "{row:?}");
        }
    }
    // Until every expected notification is in (warning's group_wait is
    // 30s), and at least 45s: long enough that a held alert would have been
    // sent with the others of its route.
    let deadline = posted + Duration::from_secs(150);
    let mut got: Vec<Vec<Value>>;
    loop {
        got = runs.iter().map(|r| received(&r.stack)).collect();
        let complete = runs.iter().zip(&got).all(|(run, all)| {
            rows.iter()
                .enumerate()
                .all(|(i, row)| delivered(all, &name(i)).is_superset(&expected(run, row)))
        });
        if (complete && posted.elapsed() >= Duration::from_secs(45)) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut report = String::new();
    let mut failed = false;
    for (run, all) in runs.iter().zip(&got) {
        for (i, row) in rows.iter().enumerate() {
            let want = expected(run, row);
            let have = delivered(all, &name(i));
            let ok = want == have;
            failed |= !ok;
            report.push_str(&format!(
                "{} {}: {} `{}` want {want:?} got {have:?}\n",
                if ok { "ok  " } else { "FAIL" },
                run.name,
                name(i),
                row.class
            ));
        }
    }
    assert!(!failed, "{report}");
    let held: Vec<usize> = (0..rows.len())
        .filter(|i| rows[*i].business_hours_only())
        .collect();
    assert!(!held.is_empty(), "the README has business-hours rows");
    // Held, not lost: outside business hours Alertmanager has the alerts,
    // active (neither silenced nor inhibited), and has sent nothing.
    let am = runs[1].stack.url("alertmanager");
    for i in &held {
        let filter = format!("alertname=\"{}\"", name(*i));
        let listed: Vec<Value> = ureq::get(&format!("{am}/api/v2/alerts"))
            .query("filter", &filter)
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        assert_eq!(listed.len(), 1, "{filter}: {listed:#?}");
        assert_eq!(listed[0]["status"]["state"], "active", "{listed:#?}");
        assert_eq!(listed[0]["status"]["silencedBy"], json!([]), "{listed:#?}");
        assert_eq!(listed[0]["status"]["inhibitedBy"], json!([]), "{listed:#?}");
    }

    // The templates, as the real Alertmanager rendered them.
    templates_are_rendered(
        &runs[0],
        &got[0],
        &scheduler_labels,
        &scheduler_annotations,
        &name(0),
    );
}

/// What the sink received for SchedulerDown holds its summary,
/// description, runbook and a dashboard of the bundle showing its metric;
/// a row alert (no plugin of its own) links the Alert History dashboard.
fn templates_are_rendered(
    run: &Run,
    all: &[Value],
    labels: &BTreeMap<String, String>,
    annotations: &Value,
    row_alert: &str,
) {
    let grafana = site_value(&["spec", "alerting", "grafanaUrl"]);
    let cluster = site_value(&["spec", "cluster", "name"]);
    let link = regex::Regex::new(&format!(
        r"{}/d/([a-z0-9-]+)\?var-cluster={}",
        regex::escape(&grafana),
        regex::escape(&cluster)
    ))
    .unwrap();
    let dashboard = |text: &str| -> String {
        let uid = link
            .captures(text)
            .unwrap_or_else(|| panic!("no dashboard link in:\n{text}"))[1]
            .to_string();
        run.bundle
            .files
            .get(&format!("grafana/dashboards/{uid}.json"))
            .unwrap_or_else(|| panic!("the link names {uid}, which the bundle does not have"))
            .clone()
    };
    let name = labels["alertname"].as_str();
    let text_of = |a: &str| annotations[a].as_str().unwrap().to_string();
    // The metric the alert's rule reads, from the bundle's rule file.
    let rule = run
        .bundle
        .files
        .iter()
        .filter(|(p, _)| p.starts_with("prometheus/rules/"))
        .find_map(|(_, t)| {
            t.split("- alert: ")
                .find(|r| r.starts_with(&format!("{name}\n")))
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("the rule of {name}"));
    let metric = regex::Regex::new(r"([a-z_:][a-z0-9_:]*)\{")
        .unwrap()
        .captures(&rule)
        .unwrap()[1]
        .to_string();
    let one = |integration: &str, path: &str, alert: &str| -> Value {
        all.iter()
            .find(|e| {
                e["integration"] == integration
                    && e["path"].as_str().is_some_and(|p| p.starts_with(path))
                    && e["body"].to_string().contains(alert)
            })
            .unwrap_or_else(|| panic!("no {integration} {path} notification of {alert}"))
            .clone()
    };
    let must_hold = |what: &str, text: &str| {
        for a in ["summary", "description", "runbook_url"] {
            assert!(text.contains(&text_of(a)), "{what} lacks the {a}:\n{text}");
        }
        let d = dashboard(text);
        assert!(
            d.contains(&metric),
            "{what} links a dashboard without {metric}"
        );
    };
    // Slack, level 1.
    let slack = one("slack", "/slack/critical", name);
    let text = slack["body"]["attachments"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    must_hold("Slack", &text);
    // Email, level 1: text and HTML parts.
    let to = exits(&run.config, "critical")
        .into_iter()
        .find(|(i, _)| i == "email")
        .map(|(_, p)| p)
        .unwrap();
    let mail = quoted_printable(one("email", &to, name)["body"].as_str().unwrap());
    must_hold("email", &mail);
    assert!(
        mail.contains(&format!(
            "<a href=\"{}\">Runbook</a>",
            text_of("runbook_url")
        )),
        "{mail}"
    );
    // PagerDuty, level 3: the summary and the links in its details.
    let pd = one("pagerduty", "/pagerduty/escalation-3", name);
    let payload = &pd["body"]["payload"];
    assert!(
        payload["summary"]
            .as_str()
            .unwrap()
            .contains(&text_of("summary")),
        "{payload:#}"
    );
    let details = &payload["custom_details"];
    assert_eq!(
        details["runbook"],
        text_of("runbook_url").as_str(),
        "{payload:#}"
    );
    assert!(dashboard(details["dashboard"].as_str().unwrap()).contains(&metric));
    // …and the event's links, which PagerDuty shows on the incident.
    let links: Vec<(&str, &str)> = pd["body"]["links"]
        .as_array()
        .unwrap_or_else(|| panic!("links in {:#}", pd["body"]))
        .iter()
        .map(|l| (l["text"].as_str().unwrap(), l["href"].as_str().unwrap()))
        .collect();
    assert_eq!(
        links[0],
        ("Runbook", text_of("runbook_url").as_str()),
        "{links:?}"
    );
    assert_eq!(links[1].0, "Dashboard", "{links:?}");
    assert!(dashboard(links[1].1).contains(&metric));
    // An alert no plugin ships links the Alert History table.
    let row = one("slack", "/slack/critical", row_alert);
    let text = row["body"]["attachments"][0]["text"].as_str().unwrap();
    assert!(
        dashboard(text).contains(telltale::render::alert_values::METRIC),
        "{text}"
    );
}
