//! A fake Grafana: Grafana cannot run on these machines, so this answers the
//! part of Grafana's HTTP API `telltale verify` uses, with the documented
//! shapes (https://grafana.com/docs/grafana/latest/developers/http_api/):
//! `GET /api/health`, `GET /api/datasources`,
//! `GET /api/datasources/uid/<uid>/health`, `GET /api/dashboards/uid/<uid>`,
//! `GET /api/search` and `POST /api/ds/query` (data frames). Dashboards are
//! the bundle's `grafana/dashboards/*.json`, as the sidecar would provision
//! them; queries go to the real local Prometheus and the fake Loki, so a
//! panel has data exactly when its query returns some. Every /api call but
//! /api/health needs the admin's basic auth, like Grafana.

use std::collections::BTreeMap;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use telltale::verify::http::{Auth, Http, encode};

pub struct Grafana {
    pub prometheus: String,
    pub loki: String,
    pub dashboards: BTreeMap<String, Value>,
    /// `Basic base64(admin:password)`.
    pub authorization: String,
    http: Http,
}

/// The version reported by /api/health: a current Grafana, marked as fake.
const VERSION: &str = "12.3.0-telltale-fake";

impl Grafana {
    pub fn new(
        prometheus: String,
        loki: String,
        dashboards_dir: &FsPath,
        password: &str,
    ) -> Grafana {
        let mut dashboards = BTreeMap::new();
        for entry in std::fs::read_dir(dashboards_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Ok(text) = std::fs::read_to_string(&path)
                && let Ok(json) = serde_json::from_str::<Value>(&text)
                && let Some(uid) = json["uid"].as_str()
            {
                dashboards.insert(uid.to_string(), json);
            }
        }
        Grafana {
            prometheus,
            loki,
            dashboards,
            authorization: format!("Basic {}", base64(&format!("admin:{password}"))),
            http: Http::new(Auth::None).expect("an HTTP client"),
        }
    }
}

pub fn router(grafana: Arc<Grafana>) -> Router {
    let admin = Router::new()
        .route("/api/datasources", get(datasources))
        .route("/api/datasources/uid/{uid}/health", get(datasource_health))
        .route("/api/dashboards/uid/{uid}", get(dashboard))
        .route("/api/search", get(search))
        .route("/api/ds/query", post(ds_query))
        .route_layer(axum::middleware::from_fn_with_state(
            grafana.clone(),
            require_admin,
        ));
    Router::new()
        .route(
            "/api/health",
            get(|| async {
                Json(json!({"commit": "telltale-fake", "database": "ok", "version": VERSION}))
            }),
        )
        .merge(admin)
        .with_state(grafana)
}

/// Every /api call but /api/health needs the admin's credentials.
async fn require_admin(
    State(g): State<Arc<Grafana>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match authorized(&g, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(denied) => denied,
    }
}

fn authorized(g: &Grafana, headers: &HeaderMap) -> Result<(), Response> {
    match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(v) if v == g.authorization => Ok(()),
        _ => Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Unauthorized"})),
        )
            .into_response()),
    }
}

fn datasource_list(g: &Grafana) -> Value {
    json!([
        {"id": 1, "uid": "prometheus", "orgId": 1, "name": "Prometheus", "type": "prometheus",
         "typeName": "Prometheus", "access": "proxy", "url": g.prometheus, "isDefault": true, "readOnly": true},
        {"id": 2, "uid": "loki", "orgId": 1, "name": "Loki", "type": "loki",
         "typeName": "Loki", "access": "proxy", "url": g.loki, "isDefault": false, "readOnly": true},
    ])
}

async fn datasources(State(g): State<Arc<Grafana>>) -> Response {
    Json(datasource_list(&g)).into_response()
}

async fn datasource_health(State(g): State<Arc<Grafana>>, Path(uid): Path<String>) -> Response {
    // The probes Grafana's own health checks make.
    let (probe, ok) = match uid.as_str() {
        "prometheus" => (
            format!("{}/api/v1/query?query=1%2B1", g.prometheus),
            "Successfully queried the Prometheus API.",
        ),
        "loki" => (
            format!("{}/loki/api/v1/labels", g.loki),
            "Data source successfully connected.",
        ),
        _ => {
            return not_found("Data source not found");
        }
    };
    match g.http.get_text(&probe).await {
        Ok(_) => Json(json!({"status": "OK", "message": ok})).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"status": "ERROR", "message": e.to_string()})),
        )
            .into_response(),
    }
}

async fn dashboard(State(g): State<Arc<Grafana>>, Path(uid): Path<String>) -> Response {
    match g.dashboards.get(&uid) {
        Some(d) => Json(json!({
            "dashboard": d,
            "meta": {"type": "db", "slug": uid, "folderTitle": "General", "provisioned": true},
        }))
        .into_response(),
        None => not_found("Dashboard not found"),
    }
}

async fn search(State(g): State<Arc<Grafana>>) -> Response {
    let hits: Vec<Value> = g
        .dashboards
        .iter()
        .map(|(uid, d)| json!({"uid": uid, "title": d["title"], "type": "dash-db", "uri": format!("db/{uid}")}))
        .collect();
    Json(hits).into_response()
}

async fn ds_query(State(g): State<Arc<Grafana>>, Json(body): Json<Value>) -> Response {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let from = relative(body["from"].as_str().unwrap_or("now-1h"), now);
    let to = relative(body["to"].as_str().unwrap_or("now"), now);
    let mut results = serde_json::Map::new();
    let mut any_error = false;
    for q in body["queries"].as_array().into_iter().flatten() {
        let ref_id = q["refId"].as_str().unwrap_or("A").to_string();
        let expr = q["expr"].as_str().unwrap_or_default();
        let step = (q["intervalMs"].as_i64().unwrap_or(60_000) / 1000).max(1);
        let answer = match q["datasource"]["uid"].as_str().unwrap_or_default() {
            "prometheus" => {
                let url = format!(
                    "{}/api/v1/query_range?query={}&start={from}&end={to}&step={step}",
                    g.prometheus,
                    encode(expr)
                );
                g.http
                    .get_json::<Value>(&url)
                    .await
                    .map(|v| frames(&ref_id, &v, "metric"))
            }
            "loki" => {
                let url = format!(
                    "{}/loki/api/v1/query_range?query={}&start={}&end={}&step={step}",
                    g.loki,
                    encode(expr),
                    from * 1_000_000_000,
                    to * 1_000_000_000
                );
                g.http
                    .get_json::<Value>(&url)
                    .await
                    .map(|v| frames(&ref_id, &v, "metric"))
            }
            other => Err(telltale::verify::http::HttpError::Failed {
                url: String::new(),
                message: format!("data source {other} not found"),
            }),
        };
        let entry = match answer {
            Ok(frames) => json!({"status": 200, "frames": frames}),
            Err(e) => {
                any_error = true;
                json!({"status": 400, "error": e.to_string(), "errorSource": "downstream"})
            }
        };
        results.insert(ref_id, entry);
    }
    // Grafana answers 400 when any query failed (207 with the multi-status
    // feature), always with every result in the body.
    let status = if any_error {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (status, Json(json!({"results": results}))).into_response()
}

fn not_found(message: &str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"message": message}))).into_response()
}

/// `now`, `now-1h`, `now-15m` or epoch milliseconds → epoch seconds.
fn relative(text: &str, now: i64) -> i64 {
    if let Some(rest) = text.strip_prefix("now") {
        return match rest.strip_prefix('-') {
            Some(d) => now - humantime::parse_duration(d).map_or(3600, |d| d.as_secs() as i64),
            None => now,
        };
    }
    text.parse::<i64>().map_or(now, |ms| ms / 1000)
}

/// A Prometheus or Loki matrix as data frames: one frame per series, a time
/// field and a value field carrying the series' labels.
fn frames(ref_id: &str, answer: &Value, label_key: &str) -> Value {
    let series = answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Value::Array(
        series
            .iter()
            .map(|s| {
                let points = s["values"].as_array().cloned().unwrap_or_default();
                let times: Vec<Value> = points
                    .iter()
                    .map(|p| json!((p[0].as_f64().unwrap_or(0.0) * 1000.0) as i64))
                    .collect();
                let values: Vec<Value> = points
                    .iter()
                    .map(|p| json!(p[1].as_str().and_then(|v| v.parse::<f64>().ok())))
                    .collect();
                json!({
                    "schema": {"refId": ref_id, "fields": [
                        {"name": "Time", "type": "time", "typeInfo": {"frame": "time.Time"}},
                        {"name": "Value", "type": "number", "typeInfo": {"frame": "float64"},
                         "labels": s[label_key]},
                    ]},
                    "data": {"values": [times, values]},
                })
            })
            .collect(),
    )
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_base64_of_user_colon_password() {
        assert_eq!(base64("admin:admin"), "YWRtaW46YWRtaW4=");
        assert_eq!(base64("a"), "YQ==");
        assert_eq!(base64("ab"), "YWI=");
    }

    #[test]
    fn relative_times() {
        assert_eq!(relative("now", 10_000), 10_000);
        assert_eq!(relative("now-1h", 10_000), 6_400);
        assert_eq!(relative("5000000", 10_000), 5_000);
    }
}
