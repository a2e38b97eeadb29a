//! A fake Grafana: Grafana cannot run on these machines, so this answers the
//! part of Grafana's HTTP API `telltale verify` uses, with the documented
//! shapes (https://grafana.com/docs/grafana/latest/developers/http_api/):
//! `GET /api/health`, `GET /api/datasources`,
//! `GET /api/datasources/uid/<uid>/health`, `GET /api/dashboards/uid/<uid>`,
//! `GET /api/search`, `POST /api/ds/query` (data frames) and a Prometheus
//! datasource's `GET /api/datasources/uid/<uid>/resources/api/v1/…` (the
//! label, series and query APIs the template variables ask, passed on to
//! Prometheus as Grafana's resource handler does). Dashboards and
//! datasources are the bundle's, as Grafana's sidecars would provision them
//! (see [`Provisioned`]); queries go to the real local Prometheus and the fake Loki, so a
//! panel has data exactly when its query returns some. Every /api call but
//! /api/health needs the admin's basic auth, like Grafana.
//!
//! `/api/ds/query` does to a Prometheus query what Grafana's Prometheus
//! backend does (telltale::verify::grafana_time): the step from the
//! query's interval, points and the datasource's scrape interval, its
//! macros (`$__rate_interval`, `$__interval`, `$__range`…) filled in, the
//! range aligned to the step, instant queries at the end of the range, and
//! the queries of one request run concurrently. So the time a dashboard
//! takes through the fake is the real Prometheus' time for Grafana's
//! queries.

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
    pub dashboards: BTreeMap<String, Value>,
    /// The datasources Grafana was provisioned with, in the bundle's order.
    pub datasources: Vec<Datasource>,
    /// `Basic base64(admin:password)`.
    pub authorization: String,
    /// Added to every /api/ds/query and datasource resource answer
    /// (`--grafana-query-delay`).
    pub query_delay: std::time::Duration,
    http: Http,
}

/// A provisioned datasource, as Grafana lists it.
#[derive(Debug, Clone)]
pub struct Datasource {
    pub uid: String,
    pub name: String,
    pub kind: String,
    /// Where the fake sends its queries: the local Prometheus or the fake
    /// Loki; none for the kinds it cannot query (PostgreSQL).
    pub url: Option<String>,
    /// `jsonData.timeInterval`: the scrape interval Grafana is told, the
    /// lowest step it asks for (kube-prometheus-stack sets it to
    /// Prometheus' scrape interval, 30s by default).
    pub time_interval: Option<String>,
}

/// The version reported by /api/health: a current Grafana, marked as fake.
const VERSION: &str = "12.3.0-telltale-fake";

/// What Grafana is provisioned with, read from a bundle the way Grafana's
/// sidecars read the cluster: the dashboards and datasources are the
/// ConfigMaps under `manifests/` carrying the sidecar labels that
/// kube-prometheus-stack's values set (`grafana.sidecar.dashboards.label`,
/// `grafana.sidecar.datasources.label`, value `labelValue`), and the
/// chart's own default Prometheus datasource (`sidecar.datasources.uid`).
#[derive(Debug, Default)]
pub struct Provisioned {
    pub dashboards: BTreeMap<String, Value>,
    pub datasources: Vec<Datasource>,
    /// Said on stderr: what was left out and why.
    pub notes: Vec<String>,
}

impl Provisioned {
    /// `drop` names dashboards Grafana does not get (a fault: as if their
    /// ConfigMap were never picked up by the sidecar).
    pub fn from_bundle(bundle: &FsPath, prometheus: &str, loki: &str, drop: &[String]) -> Self {
        let mut out = Provisioned::default();
        let values = std::fs::read_to_string(bundle.join("helm/kube-prometheus-stack/values.yaml"))
            .ok()
            .and_then(|t| serde_saphyr::from_str::<Value>(&t).ok());
        let Some(values) = values else {
            // No kube-prometheus-stack: no Grafana in the bundle (the test
            // plugins). Grafana's stock datasources keep the fake usable,
            // and the dashboards are the bundle's files.
            out.notes.push(
                "the bundle installs no kube-prometheus-stack (no Grafana values): \
                 the fake Grafana gets the default Prometheus and Loki datasources"
                    .into(),
            );
            out.datasources = vec![
                Datasource::new("prometheus", "Prometheus", "prometheus", prometheus, loki),
                Datasource::new("loki", "Loki", "loki", prometheus, loki),
            ];
            for (uid, json) in dashboard_files(&bundle.join("grafana/dashboards")) {
                out.add_dashboard(uid, json, drop);
            }
            return out;
        };
        let sidecar = &values["grafana"]["sidecar"];
        let label = |kind: &str, default: &str| {
            let s = &sidecar[kind];
            (
                s["label"].as_str().unwrap_or(default).to_string(),
                s["labelValue"].as_str().unwrap_or("1").to_string(),
            )
        };
        let dashboard_label = label("dashboards", "grafana_dashboard");
        let datasource_label = label("datasources", "grafana_datasource");
        if sidecar["datasources"]["defaultDatasourceEnabled"] != Value::Bool(false) {
            let uid = sidecar["datasources"]["uid"]
                .as_str()
                .unwrap_or("prometheus");
            let mut ds = Datasource::new(uid, "Prometheus", "prometheus", prometheus, loki);
            // The chart's datasource template: defaultDatasourceScrapeInterval,
            // else Prometheus' scrapeInterval, else 30s.
            ds.time_interval = Some(
                sidecar["datasources"]["defaultDatasourceScrapeInterval"]
                    .as_str()
                    .or(values["prometheus"]["prometheusSpec"]["scrapeInterval"].as_str())
                    .unwrap_or("30s")
                    .to_string(),
            );
            out.datasources.push(ds);
        }
        for config_map in config_maps(&bundle.join("manifests")) {
            let labels = &config_map["metadata"]["labels"];
            let has =
                |(key, value): &(String, String)| labels[key.as_str()].as_str() == Some(value);
            let data = config_map["data"].as_object().cloned().unwrap_or_default();
            for (key, text) in data {
                let Some(text) = text.as_str() else { continue };
                if has(&dashboard_label) && key.ends_with(".json") {
                    match serde_json::from_str::<Value>(text) {
                        Ok(json) => match json["uid"].as_str() {
                            Some(uid) => out.add_dashboard(uid.to_string(), json.clone(), drop),
                            None => out.notes.push(format!("{key}: a dashboard without uid")),
                        },
                        Err(e) => out.notes.push(format!("{key}: not JSON ({e})")),
                    }
                }
                if has(&datasource_label) {
                    let doc: Value = serde_saphyr::from_str(text).unwrap_or_default();
                    for ds in doc["datasources"].as_array().into_iter().flatten() {
                        let (Some(uid), Some(kind)) = (ds["uid"].as_str(), ds["type"].as_str())
                        else {
                            continue;
                        };
                        let name = ds["name"].as_str().unwrap_or(uid);
                        let mut d = Datasource::new(uid, name, kind, prometheus, loki);
                        d.time_interval = ds["jsonData"]["timeInterval"].as_str().map(String::from);
                        out.datasources.push(d);
                    }
                }
            }
        }
        out
    }

    fn add_dashboard(&mut self, uid: String, json: Value, drop: &[String]) {
        if drop.contains(&uid) {
            self.notes.push(format!(
                "dashboard {uid} left out (--grafana-drop-dashboard)"
            ));
        } else {
            self.dashboards.insert(uid, json);
        }
    }
}

impl Datasource {
    fn new(uid: &str, name: &str, kind: &str, prometheus: &str, loki: &str) -> Self {
        let url = match kind {
            "prometheus" => Some(prometheus.to_string()),
            "loki" => Some(loki.to_string()),
            _ => None,
        };
        Datasource {
            uid: uid.into(),
            name: name.into(),
            kind: kind.into(),
            url,
            time_interval: None,
        }
    }
}

/// `DIR/*.json` dashboards by uid.
fn dashboard_files(dir: &FsPath) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json")
            && let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(json) = serde_json::from_str::<Value>(&text)
            && let Some(uid) = json["uid"].as_str()
        {
            out.push((uid.to_string(), json));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every ConfigMap under `dir` (the bundle's manifests, one object a file).
fn config_maps(dir: &FsPath) -> Vec<Value> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| serde_saphyr::from_str::<Value>(&t).ok())
        .filter(|v| v["kind"] == "ConfigMap")
        .collect()
}

impl Grafana {
    pub fn new(provisioned: Provisioned, password: &str) -> Grafana {
        Grafana {
            dashboards: provisioned.dashboards,
            datasources: provisioned.datasources,
            authorization: format!("Basic {}", base64(&format!("admin:{password}"))),
            query_delay: std::time::Duration::ZERO,
            http: Http::new(Auth::None).expect("an HTTP client"),
        }
    }

    fn datasource(&self, uid: &str) -> Option<&Datasource> {
        self.datasources.iter().find(|d| d.uid == uid)
    }
}

pub fn router(grafana: Arc<Grafana>) -> Router {
    let admin = Router::new()
        .route("/api/datasources", get(datasources))
        .route("/api/datasources/uid/{uid}/health", get(datasource_health))
        .route("/api/dashboards/uid/{uid}", get(dashboard))
        .route("/api/search", get(search))
        .route("/api/ds/query", post(ds_query))
        .route(
            "/api/datasources/uid/{uid}/resources/{*path}",
            get(datasource_resource),
        )
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
    let default = g.datasources.iter().position(|d| d.kind == "prometheus");
    Value::Array(
        g.datasources
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mut json_data = json!({});
                if let Some(t) = &d.time_interval {
                    json_data["timeInterval"] = json!(t);
                }
                json!({"id": i + 1, "uid": d.uid, "orgId": 1, "name": d.name, "type": d.kind,
                       "typeName": d.kind, "access": "proxy", "url": d.url.clone().unwrap_or_default(),
                       "isDefault": Some(i) == default, "readOnly": true, "jsonData": json_data})
            })
            .collect(),
    )
}

async fn datasources(State(g): State<Arc<Grafana>>) -> Response {
    Json(datasource_list(&g)).into_response()
}

async fn datasource_health(State(g): State<Arc<Grafana>>, Path(uid): Path<String>) -> Response {
    let Some(ds) = g.datasource(&uid) else {
        return not_found("Data source not found");
    };
    // The probes Grafana's own health checks make.
    let (probe, ok) = match (ds.kind.as_str(), &ds.url) {
        ("prometheus", Some(url)) => (
            format!("{url}/api/v1/query?query=1%2B1"),
            "Successfully queried the Prometheus API.",
        ),
        ("loki", Some(url)) => (
            format!("{url}/loki/api/v1/labels"),
            "Data source successfully connected.",
        ),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"status": "ERROR", "message": format!(
                    "the fake Grafana cannot reach a {} datasource", ds.kind)})),
            )
                .into_response();
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
    tokio::time::sleep(g.query_delay).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let from = relative(body["from"].as_str().unwrap_or("now-1h"), now);
    let to = relative(body["to"].as_str().unwrap_or("now"), now);
    let queries: Vec<Value> = body["queries"].as_array().cloned().unwrap_or_default();
    // Grafana runs the queries of one request concurrently.
    let answers =
        futures::future::join_all(queries.iter().map(|q| one_query(&g, q, from, to))).await;
    let mut results = serde_json::Map::new();
    let mut any_error = false;
    for (q, answer) in queries.iter().zip(answers) {
        let ref_id = q["refId"].as_str().unwrap_or("A").to_string();
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

/// One query of a /api/ds/query request, `from` and `to` in epoch ms.
async fn one_query(
    g: &Grafana,
    q: &Value,
    from: i64,
    to: i64,
) -> Result<Value, telltale::verify::http::HttpError> {
    use telltale::verify::grafana_time as gt;
    let ref_id = q["refId"].as_str().unwrap_or("A");
    let expr = q["expr"].as_str().unwrap_or_default();
    let uid = q["datasource"]["uid"].as_str().unwrap_or_default();
    let ds = g.datasource(uid);
    match ds.map(|d| (d.kind.as_str(), d.url.as_deref())) {
        Some(("prometheus", Some(prometheus))) => {
            let range = std::time::Duration::from_millis((to - from).max(1) as u64);
            let scrape = ds.and_then(|d| d.time_interval.clone()).unwrap_or_default();
            let b = gt::backend(
                expr,
                range,
                q["interval"].as_str().unwrap_or_default(),
                q["intervalMs"].as_u64().unwrap_or(0),
                q["maxDataPoints"].as_u64().unwrap_or(0),
                q["intervalFactor"].as_u64().unwrap_or(1),
                &scrape,
            );
            let seconds = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
            let instant = q["instant"] == json!(true) && q["range"] != json!(true);
            if instant {
                let url = format!(
                    "{prometheus}/api/v1/query?query={}&time={}",
                    encode(&b.expr),
                    seconds(to)
                );
                g.http
                    .get_json::<Value>(&url)
                    .await
                    .map(|v| frames(ref_id, &v, "metric"))
            } else {
                let url = format!(
                    "{prometheus}/api/v1/query_range?query={}&start={}&end={}&step={}",
                    encode(&b.expr),
                    seconds(gt::align(from, b.step)),
                    seconds(gt::align(to, b.step)),
                    b.step.as_secs_f64()
                );
                g.http
                    .get_json::<Value>(&url)
                    .await
                    .map(|v| frames(ref_id, &v, "metric"))
            }
        }
        Some(("loki", Some(loki))) => {
            let range = std::time::Duration::from_millis((to - from).max(1) as u64);
            let b = gt::loki_backend(expr, range, q["intervalMs"].as_u64().unwrap_or(60_000));
            let step = b.step.as_secs().max(1);
            let url = format!(
                "{loki}/loki/api/v1/query_range?query={}&start={}&end={}&step={step}",
                encode(&b.expr),
                from * 1_000_000,
                to * 1_000_000
            );
            g.http
                .get_json::<Value>(&url)
                .await
                .map(|v| frames(ref_id, &v, "metric"))
        }
        _ => Err(telltale::verify::http::HttpError::Failed {
            url: String::new(),
            message: format!("data source {uid} not found"),
        }),
    }
}

/// A Prometheus datasource's resource call (`api/v1/series`,
/// `api/v1/label/<name>/values`, `api/v1/labels`, `api/v1/query`…): passed
/// on to Prometheus with its query string, Prometheus' answer returned
/// as it is.
async fn datasource_resource(
    State(g): State<Arc<Grafana>>,
    Path((uid, path)): Path<(String, String)>,
    uri: axum::http::Uri,
) -> Response {
    tokio::time::sleep(g.query_delay).await;
    let Some(ds) = g.datasource(&uid) else {
        return not_found("Data source not found");
    };
    let (Some(prometheus), true) = (&ds.url, ds.kind == "prometheus") else {
        return not_found("the fake Grafana has resources only for Prometheus datasources");
    };
    if !path.starts_with("api/v1/") || path.contains("..") {
        return not_found("Not found");
    }
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    match g
        .http
        .get_for_json::<Value>(&format!("{prometheus}/{path}{query}"))
        .await
    {
        Ok((status, body)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            Json(body),
        )
            .into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"status": "error", "errorType": "unavailable", "error": e.to_string()})),
        )
            .into_response(),
    }
}

fn not_found(message: &str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"message": message}))).into_response()
}

/// `now`, `now-1h`, `now-15m` or epoch milliseconds → epoch milliseconds
/// (`now` given in milliseconds).
fn relative(text: &str, now: i64) -> i64 {
    if let Some(rest) = text.strip_prefix("now") {
        return match rest.strip_prefix('-') {
            Some(d) => {
                now - humantime::parse_duration(d).map_or(3_600_000, |d| d.as_millis() as i64)
            }
            None => now,
        };
    }
    text.parse::<i64>().unwrap_or(now)
}

/// A Prometheus or Loki matrix as data frames: one frame per series, a time
/// field and a value field carrying the series' labels.
/// An instant answer (a vector, or a scalar) is one point per series.
fn frames(ref_id: &str, answer: &Value, label_key: &str) -> Value {
    let series = match answer["data"]["resultType"].as_str() {
        Some("scalar") => vec![json!({"value": answer["data"]["result"]})],
        _ => answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
    };
    Value::Array(
        series
            .iter()
            .map(|s| {
                let points = match (&s["values"], &s["value"]) {
                    (Value::Array(points), _) => points.clone(),
                    (_, Value::Array(point)) => vec![Value::Array(point.clone())],
                    _ => Vec::new(),
                };
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
    fn grafana_gets_what_the_sidecars_would_load_from_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "helm/kube-prometheus-stack/values.yaml",
            "grafana:\n  sidecar:\n    dashboards: {label: dash, labelValue: \"yes\"}\n    datasources: {uid: prom}\n",
        );
        let dashboard = |uid: &str, label: &str| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {uid}\n  labels: {{{label}: \"yes\"}}\ndata:\n  {uid}.json: |\n    {{\"uid\": \"{uid}\", \"title\": \"T\"}}\n"
            )
        };
        write("manifests/08/a.yaml", &dashboard("kept", "dash"));
        write("manifests/08/b.yaml", &dashboard("dropped", "dash"));
        write("manifests/08/c.yaml", &dashboard("unlabelled", "other"));
        write(
            "manifests/05/ds.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ds\n  labels: {grafana_datasource: \"1\"}\ndata:\n  loki.yaml: |\n    datasources:\n      - {name: Logs, type: loki, uid: logs}\n      - {name: PG, type: grafana-postgresql-datasource, uid: pg}\n",
        );
        let p = Provisioned::from_bundle(dir.path(), "http://p", "http://l", &["dropped".into()]);
        assert_eq!(p.dashboards.keys().collect::<Vec<_>>(), ["kept"]);
        let ds: Vec<(&str, &str, Option<&str>)> = p
            .datasources
            .iter()
            .map(|d| (d.uid.as_str(), d.kind.as_str(), d.url.as_deref()))
            .collect();
        assert_eq!(
            ds,
            [
                ("prom", "prometheus", Some("http://p")),
                ("logs", "loki", Some("http://l")),
                ("pg", "grafana-postgresql-datasource", None),
            ]
        );
        assert!(
            p.notes.iter().any(|n| n.contains("dropped")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn relative_times() {
        assert_eq!(relative("now", 10_000_000), 10_000_000);
        assert_eq!(relative("now-1h", 10_000_000), 6_400_000);
        assert_eq!(relative("5000000", 10_000_000), 5_000_000);
    }
}
