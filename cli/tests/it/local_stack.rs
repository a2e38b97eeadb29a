//! The local stack itself: started against rendered bundles, it must run
//! the real daemons with the bundle's rules and routing, deliver
//! Alertmanager's notifications to its sink, fail them on cue, and leave
//! nothing running after SIGTERM. Needs prometheus, prometheus-alertmanager,
//! prometheus-node-exporter, promtool and amtool on PATH.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const RECEIVERS: &str = r##"
apiVersion: telltale.dev/v1alpha1
kind: Config
metadata:
  name: local
spec:
  profile: kind
  alerting:
    receivers:
      slack: {channel: "#ops-alerts", webhookUrl: {env: SLACK_WEBHOOK_URL}}
      pagerduty: {routingKey: {env: PAGERDUTY_ROUTING_KEY}}
      email: {to: ops@example.com, from: am@example.com, smarthost: "smtp.example.com:587", username: am@example.com, password: {file: /run/secrets/smtp}}
      sms: {to: ["+15550100"], twilio: {accountSid: ACxxxx, from: "+15550199", authToken: {env: TWILIO_AUTH_TOKEN}}}
"##;

/// A running local stack, stopped with SIGTERM when dropped so a failing
/// assertion never leaves daemons behind.
struct Stack {
    child: Option<Child>,
    info: Value,
    bundle: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Stack {
    fn start(profile: &str, config: Option<&str>, extra: &[&str]) -> Stack {
        Stack::start_with(profile, config, extra, true)
    }

    /// `own_state`: pass `--state` (kept after the stack stops); without it
    /// the stack makes its own state directory and removes it when it stops.
    fn start_with(profile: &str, config: Option<&str>, extra: &[&str], own_state: bool) -> Stack {
        for tool in [
            "prometheus",
            "prometheus-alertmanager",
            "prometheus-node-exporter",
            "promtool",
            "amtool",
        ] {
            crate::common::require_tool(tool);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let bundle = dir.path().join("bundle");
        crate::common::write(&crate::common::render_with(profile, config, &[]), &bundle);
        let stderr = dir.path().join("stderr.log");
        let mut command = Command::new(crate::common::local_stack_bin());
        command.arg("--bundle").arg(&bundle);
        if own_state {
            command.arg("--state").arg(dir.path().join("state"));
        }
        let mut child = command
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr log"))
            .spawn()
            .expect("telltale-local-stack starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stack = Stack {
            child: Some(child),
            info: Value::Null,
            bundle,
            stderr,
            _dir: dir,
        };
        // The line comes once every daemon answers (≤ 30 s) or never.
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        assert!(
            matches!(read, Ok(n) if n > 0),
            "no JSON line on stdout ({read:?}); stderr:\n{}",
            stack.stderr()
        );
        stack.info = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout is not one JSON line ({e}): {line:?}"));
        stack
    }

    fn url(&self, key: &str) -> String {
        self.info[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {}", self.info))
            .to_string()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGTERM, then the exit status (killing it after 20 s).
    fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}

fn get_json(url: &str) -> Value {
    ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .body_mut()
        .read_json()
        .unwrap_or_else(|e| panic!("GET {url} is not JSON: {e}"))
}

fn get_text(url: &str) -> String {
    ureq::get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Polls `probe` until it returns Some, or fails with `what` and the last
/// thing it saw.
fn eventually<T>(within: Duration, what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what} did not happen within {within:?}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

fn post_critical_alert(stack: &Stack) {
    let alert = json!([{
        "labels": {"alertname": "LocalStackTest", "severity": "critical", "cluster": "local"},
        "annotations": {"summary": "the local stack delivers", "runbook_url": "https://example.com/rb"},
    }]);
    ureq::post(&format!("{}/api/v2/alerts", stack.url("alertmanager")))
        .send_json(&alert)
        .expect("Alertmanager accepts the alert");
}

/// The sum of `name`'s samples for one integration in Prometheus text
/// format. Alertmanager ≥ 0.27 splits the failure counters by `reason`
/// (and may add `receiver_name`), so every series of the integration counts.
fn metric(text: &str, name: &str, integration: &str) -> f64 {
    let wanted = format!("integration=\"{integration}\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|rest| rest.split_once('}'))
        .filter(|(labels, _)| labels.split(',').any(|kv| kv.trim() == wanted))
        .filter_map(|(_, value)| value.trim().parse::<f64>().ok())
        .sum()
}

fn expected_targets(bundle: &Path) -> Vec<(String, u64)> {
    let plan: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("plan.json")).unwrap()).unwrap();
    plan["expectations"]["targets"]
        .as_array()
        .expect("expectations.targets")
        .iter()
        .map(|t| {
            (
                t["job"].as_str().unwrap().to_string(),
                t["min"].as_u64().unwrap_or(1),
            )
        })
        .collect()
}

fn bundle_rule_groups(bundle: &Path) -> Vec<String> {
    let mut groups = Vec::new();
    for entry in std::fs::read_dir(bundle.join("prometheus/rules")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let doc: Value = serde_saphyr::from_str(&text).unwrap();
        for group in doc["groups"].as_array().unwrap() {
            groups.push(group["name"].as_str().unwrap().to_string());
        }
    }
    groups.sort();
    groups
}

fn accepts_connections(url: &str) -> bool {
    let address: SocketAddr = url
        .trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
}

#[test]
fn serves_the_bundle_and_stops_cleanly_on_sigterm() {
    let mut stack = Stack::start_with("kind", None, &[], false);
    let prometheus = stack.url("prometheus");

    // Every expected job, with at least `min` targets; node-exporter is real and up.
    let expected = expected_targets(&stack.bundle);
    assert!(!expected.is_empty());
    // Discovery lags readiness by a few seconds, so poll until it settles.
    let real = [
        "node-exporter",
        "kube-prometheus-stack-prometheus",
        "kube-prometheus-stack-alertmanager",
    ];
    eventually(
        Duration::from_secs(30),
        "every expected target, node-exporter up",
        || {
            let targets = get_json(&format!("{prometheus}/api/v1/targets"));
            let active = targets["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for (job, min) in &expected {
                let of_job: Vec<&Value> = active
                    .iter()
                    .filter(|t| t["labels"]["job"] == job.as_str())
                    .collect();
                if (of_job.len() as u64) < *min {
                    return Err(format!(
                        "job {job}: {} targets, expected ≥ {min}",
                        of_job.len()
                    ));
                }
                let standin = of_job
                    .iter()
                    .all(|t| t["labels"]["telltale_standin"] == "true");
                assert_eq!(
                    standin,
                    !real.contains(&job.as_str()),
                    "job {job} stand-in label: {of_job:?}"
                );
            }
            let node = active
                .iter()
                .find(|t| t["labels"]["job"] == "node-exporter")
                .cloned()
                .unwrap_or_default();
            if node["health"] == "up" {
                Ok(())
            } else {
                Err(node.to_string())
            }
        },
    );
    // The stand-in answers as an exporter.
    assert!(
        get_text(&format!("{}/metrics", stack.url("standin"))).contains("telltale_standin_up 1")
    );

    // Every rule group of the bundle is loaded.
    let rules = get_json(&format!("{prometheus}/api/v1/rules"));
    let mut loaded: Vec<String> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    loaded.sort();
    assert_eq!(loaded, bundle_rule_groups(&stack.bundle));

    // Alertmanager runs the bundle's routing, unchanged where it matters.
    let status = get_json(&format!("{}/api/v2/status", stack.url("alertmanager")));
    let original = status["config"]["original"]
        .as_str()
        .expect("config.original");
    for receiver in ["critical", "warning", "info", "security", "sla"] {
        assert!(
            original.contains(&format!("name: {receiver}")),
            "receiver {receiver} in:\n{original}"
        );
    }
    assert!(
        original.contains("business-hours"),
        "time intervals kept:\n{original}"
    );
    assert_eq!(status["cluster"]["status"], "disabled");

    // The sink answers and has received nothing yet.
    assert_eq!(
        get_json(&format!("{}/received", stack.url("sink"))),
        json!([])
    );

    // SIGTERM: exit 0, and nothing listens any more.
    let urls: Vec<String> = [
        "prometheus",
        "alertmanager",
        "node_exporter",
        "sink",
        "standin",
    ]
    .iter()
    .map(|k| stack.url(k))
    .collect();
    let pids: Vec<u64> = ["prometheus", "alertmanager", "node_exporter"]
        .iter()
        .map(|k| stack.info["pids"][k].as_u64().expect("pid"))
        .collect();
    let state = PathBuf::from(stack.info["state"].as_str().expect("the state directory"));
    assert!(state.join("secrets").is_dir(), "{}", state.display());
    let status = stack
        .stop()
        .expect("the local stack exits within 20 s of SIGTERM");
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        stack.stderr()
    );
    for url in &urls {
        assert!(
            !accepts_connections(url),
            "{url} still accepts connections after SIGTERM"
        );
    }
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "daemon {pid} still exists"
        );
    }
    // The state directory it made itself (its receivers' secret files among
    // them) is gone with it.
    assert!(!state.exists(), "{} is left behind", state.display());
}

/// The daemons bind the ports the stack picked a moment later; another
/// process can take one in between (seen under the suite's load). The stack
/// stops what it started and starts again on new ports.
#[test]
fn a_port_taken_before_its_daemon_binds_it_is_retried_on_new_ports() {
    let stack = Stack::start("kind", None, &["--take-first-port", "alertmanager"]);
    let stderr = stack.stderr();
    assert!(
        stderr.contains("bind: address already in use")
            && stderr.contains("starting again on new ports (attempt 2 of 3)"),
        "{stderr}"
    );
    // Alertmanager runs on its new port.
    let status = get_json(&format!("{}/api/v2/status", stack.url("alertmanager")));
    assert_eq!(status["cluster"]["status"], "disabled");
    // The first attempt's node-exporter was stopped, not left behind.
    let starts: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("prometheus-node-exporter --web.listen-address="))
        .filter_map(|l| l.split("--web.listen-address=").nth(1)?.split(' ').next())
        .collect();
    assert_eq!(starts.len(), 2, "{stderr}");
    assert!(
        !accepts_connections(&format!("http://{}", starts[0])),
        "the first attempt's node-exporter still listens on {}",
        starts[0]
    );
    assert!(accepts_connections(&stack.url("node_exporter")));
}

#[test]
fn a_critical_alert_reaches_slack_pagerduty_sms_and_email() {
    let stack = Stack::start("kind", Some(RECEIVERS), &[]);
    post_critical_alert(&stack);
    let sink = stack.url("sink");
    // The critical route's group_wait is 10 s in the bundle.
    let received = eventually(
        Duration::from_secs(60),
        "notifications on every critical integration",
        || {
            let received = get_json(&format!("{sink}/received"));
            let list = received.as_array().cloned().unwrap_or_default();
            let has = |i: &str| list.iter().any(|n| n["integration"] == i);
            if ["slack", "pagerduty", "webhook", "email"]
                .iter()
                .all(|i| has(i))
            {
                Ok(list)
            } else {
                Err(received.to_string())
            }
        },
    );
    let find = |integration: &str| {
        received
            .iter()
            .find(|n| n["integration"] == integration)
            .unwrap()
    };

    let slack = find("slack");
    assert_eq!(slack["path"], "/slack/critical");
    assert_eq!(slack["status"], 200);
    // Alertmanager 0.25 puts the channel in an incoming webhook's body;
    // 0.33 leaves it out (the webhook URL fixes the channel), so the loaded
    // config is where the bundle's channel shows.
    if !slack["body"]["channel"].is_null() {
        assert_eq!(slack["body"]["channel"], "#ops-alerts");
    }
    let status = get_json(&format!("{}/api/v2/status", stack.url("alertmanager")));
    let original = status["config"]["original"].as_str().unwrap_or_default();
    assert!(
        original.contains("channel: '#ops-alerts'")
            || original.contains("channel: \"#ops-alerts\""),
        "the critical receiver's Slack channel in the loaded config:\n{original}"
    );
    assert!(
        slack["body"].to_string().contains("LocalStackTest"),
        "{slack}"
    );

    let pagerduty = find("pagerduty");
    assert_eq!(pagerduty["path"], "/pagerduty/critical/v2/enqueue");
    assert_eq!(pagerduty["status"], 202);
    assert_eq!(
        pagerduty["body"]["routing_key"].as_str().map(str::len),
        Some(32)
    );
    assert_eq!(pagerduty["body"]["event_action"], "trigger");

    let sms = find("webhook");
    assert_eq!(sms["path"], "/webhook/critical");
    assert_eq!(
        sms["body"]["alerts"][0]["labels"]["alertname"],
        "LocalStackTest"
    );

    let email = find("email");
    assert_eq!(email["path"], "mailto:ops@example.com");
    assert_eq!(email["status"], 250);
    let message = email["body"].as_str().expect("the message as text");
    assert!(
        message.contains("Subject: [FIRING] LocalStackTest (critical)"),
        "{message}"
    );

    // Everything recorded is also in STATE/sink.jsonl, one JSON object per line.
    let jsonl = std::fs::read_to_string(Path::new(&stack.url("state")).join("sink.jsonl")).unwrap();
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= received.len());
    assert_eq!(lines[..received.len()], received[..]);
}

#[test]
fn sink_status_makes_alertmanager_see_failed_notifications() {
    let stack = Stack::start(
        "production",
        Some(include_str!(
            "../fixtures/configs/production-receivers.yaml"
        )),
        &[
            "--sink-status",
            "slack=500",
            "--sink-status",
            "pagerduty=400",
            "--sink-status",
            "email=554",
        ],
    );
    post_critical_alert(&stack);
    // Production pages PagerDuty at escalation level 3: the copy
    // Prometheus' escalation rules send after 30 unacknowledged minutes.
    ureq::post(&format!("{}/api/v2/alerts", stack.url("alertmanager")))
        .send_json(json!([{
            "labels": {"alertname": "LocalStackTest", "severity": "critical", "cluster": "local", "escalation": "3"},
            "annotations": {"summary": "the local stack delivers", "runbook_url": "https://example.com/rb"},
        }]))
        .expect("Alertmanager accepts the escalated alert");
    let metrics_url = format!("{}/metrics", stack.url("alertmanager"));
    // A 5xx is retried until the group_interval runs out, so Alertmanager
    // counts each failed attempt at once but the failed notification only
    // minutes later; a 4xx fails the notification outright.
    eventually(
        Duration::from_secs(60),
        "failed notifications in Alertmanager's metrics",
        || {
            let text = get_text(&metrics_url);
            let slack_attempts = metric(
                &text,
                "alertmanager_notification_requests_failed_total",
                "slack",
            );
            let email_attempts = metric(
                &text,
                "alertmanager_notification_requests_failed_total",
                "email",
            );
            let pagerduty_failed = metric(
                &text,
                "alertmanager_notifications_failed_total",
                "pagerduty",
            );
            let webhook_failed = metric(
                &text,
                "alertmanager_notification_requests_failed_total",
                "webhook",
            );
            assert_eq!(webhook_failed, 0.0, "the webhook was not told to fail");
            if slack_attempts > 0.0 && email_attempts > 0.0 && pagerduty_failed > 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "slack attempts {slack_attempts}, email attempts {email_attempts}, pagerduty {pagerduty_failed}"
                ))
            }
        },
    );
    let received = get_json(&format!("{}/received", stack.url("sink")));
    let statuses: Vec<(String, u64)> = received
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["integration"].as_str().unwrap().to_string(),
                n["status"].as_u64().unwrap(),
            )
        })
        .collect();
    for (integration, code) in [
        ("slack", 500),
        ("pagerduty", 400),
        ("email", 554),
        ("webhook", 200),
    ] {
        assert!(
            statuses.contains(&(integration.to_string(), code)),
            "{integration} answered {code}: {statuses:?}"
        );
    }
}

#[test]
fn bad_arguments_are_refused_before_anything_starts() {
    let bin = crate::common::local_stack_bin();
    let out = Command::new(&bin)
        .args(["--bundle", "/nonexistent", "--sink-status", "teams=500"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown integration `teams`"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(&bin)
        .arg("--bundle")
        .arg(dir.path().join("missing"))
        .arg("--state")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing on stdout when it fails");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing"), "{stderr}");
}

/// One instant query's vector, `[labels, value]` per series.
fn instant(prometheus: &str, query: &str) -> Vec<(Value, f64)> {
    let answer: Value = ureq::get(&format!("{prometheus}/api/v1/query"))
        .query("query", query)
        .call()
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .body_mut()
        .read_json()
        .unwrap();
    answer["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{query}: {answer}"))
        .iter()
        .map(|s| {
            (
                s["metric"].clone(),
                s["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn history_gives_prometheus_hours_of_what_the_dashboards_read_before_it_starts() {
    let stack = Stack::start("kind", None, &["--history", "2h"]);
    let prometheus = stack.url("prometheus");
    // What was written, and how long it took: seconds, not minutes (most
    // of it the first Prometheus' first scrapes, some 5 s after it starts).
    let history = &stack.info["history"];
    let series = history["series"].as_u64().unwrap();
    assert!(series >= 20, "{history}");
    // 2 h at the bundle's 30 s scrape interval: 241 points a series.
    assert_eq!(history["step_seconds"], 30.0, "{history}");
    assert_eq!(history["samples"].as_u64(), Some(series * 241), "{history}");
    let took = history["seconds"].as_f64().unwrap();
    assert!(took < 60.0, "the history took {took} s: {history}");
    eprintln!("kind --history 2h: {history}");

    // node-exporter's CPU counters go back 2 h at a step of 30 s, never
    // resetting where the history meets the live scrapes, and have a rate
    // an hour ago.
    let cpu = instant(
        &prometheus,
        "count_over_time(node_cpu_seconds_total[2h] offset 1m)",
    );
    assert!(!cpu.is_empty());
    assert!(cpu.iter().all(|(_, n)| *n >= 236.0), "{cpu:?}");
    let resets = instant(&prometheus, "resets(node_cpu_seconds_total[3h])");
    assert!(resets.iter().all(|(_, n)| *n == 0.0), "{resets:?}");
    let busy = instant(
        &prometheus,
        "sum(rate(node_cpu_seconds_total{mode!=\"idle\"}[5m] offset 1h))",
    );
    assert!(busy.len() == 1 && busy[0].1 >= 0.0, "{busy:?}");
    // `up` of every scraped job, a stand-in's too: the dashboards read it.
    let up = instant(&prometheus, "count by (job) (up offset 1h)");
    assert_eq!(
        up.len(),
        expected_targets(&stack.bundle).len(),
        "every expected job has history: {up:?}"
    );
    // A series no dashboard reads is only live (once the live Prometheus
    // has scraped itself); alerts are never backfilled.
    eventually(
        Duration::from_secs(30),
        "a live scrape of Prometheus",
        || {
            let live = instant(&prometheus, "prometheus_http_requests_total");
            if live.is_empty() {
                Err("no series yet".into())
            } else {
                Ok(())
            }
        },
    );
    assert!(instant(&prometheus, "prometheus_http_requests_total offset 1h").is_empty());
    assert!(instant(&prometheus, "count_over_time(ALERTS[2h] offset 5m)").is_empty());
    // The records the dashboards read, evaluated by promtool over the
    // history: NodeDown's value (no kube_node_info here: `vector(0) < 1`).
    let records = instant(
        &prometheus,
        "count_over_time(telltale:alert_value{alertname=\"NodeDown\"}[2h] offset 1m)",
    );
    assert!(
        records.len() == 1 && records[0].1 >= 200.0,
        "NodeDown's record over the history: {records:?}"
    );
}

#[test]
fn a_history_out_of_bounds_is_refused_before_anything_starts() {
    let bin = crate::common::local_stack_bin();
    for (args, says) in [
        (
            &["--bundle", "/nonexistent", "--history", "10s"][..],
            "between 1m and 14d",
        ),
        (
            &["--bundle", "/nonexistent", "--history-interval", "30s"][..],
            "--history",
        ),
    ] {
        let out = Command::new(&bin).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
