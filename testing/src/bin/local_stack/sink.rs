//! The notification sink: HTTP endpoints shaped like Slack incoming
//! webhooks, the PagerDuty Events API v2 and a generic webhook, so that
//! Alertmanager's real notifiers have somewhere to deliver; plus the
//! stand-in exporter that answers scrapes for jobs the local stack cannot
//! run. Everything received is recorded in memory and in `sink.jsonl`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

/// Where a notification arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Integration {
    Slack,
    PagerDuty,
    Webhook,
    Email,
}

impl Integration {
    pub const ALL: [Integration; 4] = [Self::Slack, Self::PagerDuty, Self::Webhook, Self::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::PagerDuty => "pagerduty",
            Self::Webhook => "webhook",
            Self::Email => "email",
        }
    }
}

impl fmt::Display for Integration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Integration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|i| i.as_str()).collect();
                format!(
                    "unknown integration `{s}`; expected one of {}",
                    known.join(", ")
                )
            })
    }
}

/// The status the sink answers (`--sink-status`): per integration, or per
/// receiver and integration (`(Some("warning"), Slack)`), which wins.
#[derive(Debug, Clone, Default)]
pub struct Statuses(pub BTreeMap<(Option<String>, Integration), u16>);

impl Statuses {
    /// The status for `integration` on any receiver.
    pub fn get(&self, integration: Integration) -> Option<u16> {
        self.0.get(&(None, integration)).copied()
    }

    /// The status for what arrived at `path` (`/slack/<receiver>`, …): the
    /// receiver's own, else the integration's.
    pub fn for_path(&self, integration: Integration, path: &str) -> Option<u16> {
        let receiver = path
            .trim_start_matches('/')
            .split('/')
            .nth(1)
            .map(str::to_string);
        self.0
            .get(&(receiver, integration))
            .or_else(|| self.0.get(&(None, integration)))
            .copied()
    }
}

/// Every notification received, in order, mirrored to a JSON-lines file.
pub struct Recorder {
    entries: Mutex<Vec<Value>>,
    file: Arc<std::sync::Mutex<std::fs::File>>,
}

impl Recorder {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            entries: Mutex::new(Vec::new()),
            file: Arc::new(std::sync::Mutex::new(file)),
        })
    }

    pub async fn record(&self, integration: Integration, path: &str, body: Value, status: u16) {
        let entry = json!({
            "integration": integration.as_str(),
            "path": path,
            "body": body,
            "status": status,
        });
        let mut line = entry.to_string();
        line.push('\n');
        // Holding the entries lock while appending keeps file and memory in
        // the same order.
        let mut entries = self.entries.lock().await;
        let file = self.file.clone();
        let appended = tokio::task::spawn_blocking(move || match file.lock() {
            Ok(mut file) => file.write_all(line.as_bytes()),
            Err(_) => Err(std::io::Error::other("the sink.jsonl lock is poisoned")),
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Err(error) = appended {
            eprintln!("telltale-local-stack: cannot append to sink.jsonl: {error}");
        }
        entries.push(entry);
    }

    async fn all(&self) -> Vec<Value> {
        self.entries.lock().await.clone()
    }
}

#[derive(Clone)]
struct Sink {
    recorder: Arc<Recorder>,
    statuses: Arc<Statuses>,
}

/// `POST /slack/<receiver>`, `POST /pagerduty/<receiver>/v2/enqueue`,
/// `POST /webhook/<receiver>`, `GET /received`.
pub fn router(recorder: Arc<Recorder>, statuses: Arc<Statuses>) -> Router {
    Router::new()
        .route("/slack/{*rest}", post(slack))
        .route("/pagerduty/{*rest}", post(pagerduty))
        .route("/webhook/{*rest}", post(webhook))
        .route("/received", get(received))
        .with_state(Sink { recorder, statuses })
}

fn parse_body(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// The answered status, recorded with the body.
async fn accept(
    sink: &Sink,
    integration: Integration,
    uri: &Uri,
    body: &Bytes,
    default: u16,
) -> (u16, Value) {
    let status = sink
        .statuses
        .for_path(integration, uri.path())
        .unwrap_or(default);
    let parsed = parse_body(body);
    sink.recorder
        .record(integration, uri.path(), parsed.clone(), status)
        .await;
    (status, parsed)
}

fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn forced(code: u16) -> String {
    format!("telltale-local-stack answers {code} for this integration (--sink-status)")
}

async fn slack(State(sink): State<Sink>, uri: Uri, body: Bytes) -> Response {
    let (status, _) = accept(&sink, Integration::Slack, &uri, &body, 200).await;
    let text = if status < 300 {
        "ok".to_string()
    } else {
        forced(status)
    };
    (status_code(status), text).into_response()
}

async fn pagerduty(State(sink): State<Sink>, uri: Uri, body: Bytes) -> Response {
    let (status, parsed) = accept(&sink, Integration::PagerDuty, &uri, &body, 202).await;
    let answer = if status < 300 {
        let dedup_key = parsed
            .get("dedup_key")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| generated_key(&body));
        json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key})
    } else {
        json!({"status": "invalid event", "message": forced(status), "errors": [forced(status)]})
    };
    (status_code(status), axum::Json(answer)).into_response()
}

fn generated_key(body: &[u8]) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = Sha256::new();
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hasher.update(body);
    hasher
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn webhook(State(sink): State<Sink>, uri: Uri, body: Bytes) -> Response {
    let (status, _) = accept(&sink, Integration::Webhook, &uri, &body, 200).await;
    let text = if status < 300 {
        "ok".to_string()
    } else {
        forced(status)
    };
    (status_code(status), text).into_response()
}

async fn received(State(sink): State<Sink>) -> Response {
    axum::Json(sink.recorder.all().await).into_response()
}

/// The stand-in exporter: `GET /metrics` for the jobs the local stack
/// cannot run (kube-state-metrics, loki, …), labelled as stand-ins by the
/// scrape configuration.
pub fn standin_router() -> Router {
    let scrapes = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let served = requests.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let n = scrapes.fetch_add(1, Ordering::Relaxed) + 1;
                let r = requests.load(Ordering::Relaxed);
                async move {
                    let text = format!(
                        "# HELP telltale_standin_up Always 1: this target is telltale-local-stack standing in for a job it cannot run.\n\
                         # TYPE telltale_standin_up gauge\n\
                         telltale_standin_up 1\n\
                         # HELP telltale_standin_start_time_seconds When the stand-in exporter started, in seconds since the epoch.\n\
                         # TYPE telltale_standin_start_time_seconds gauge\n\
                         telltale_standin_start_time_seconds {started}\n\
                         # HELP telltale_standin_scrapes_total Scrapes the stand-in exporter has answered.\n\
                         # TYPE telltale_standin_scrapes_total counter\n\
                         telltale_standin_scrapes_total {n}\n\
                         # HELP telltale_standin_http_requests_total Requests to the stand-in service at /, the target of verify's load check.\n\
                         # TYPE telltale_standin_http_requests_total counter\n\
                         telltale_standin_http_requests_total{{code=\"200\"}} {r}\n"
                    );
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
                }
            }),
        )
        // A service to load: answers every GET and counts it.
        .route(
            "/",
            get(move || {
                served.fetch_add(1, Ordering::Relaxed);
                async { "ok\n" }
            }),
        )
}
