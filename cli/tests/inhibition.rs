//! The inhibition rules of every profile's alertmanager.yaml, proven in a real
//! Alertmanager: `amtool config routes test` only knows routing, so each
//! inhibited pair of routes-test.yaml is posted to a live instance.

mod common;

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use common::{PROFILES, local, render_profile, write};

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
        let spec: Value = common::routes_test(&bundle);
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
