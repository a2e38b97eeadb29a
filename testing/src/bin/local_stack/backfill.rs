//! `--history DURATION`: Prometheus starts on that much history of the
//! series the bundle's dashboards read, so a 12 h dashboard load is timed on
//! 12 h of data rather than on minutes. Before the live Prometheus starts:
//!
//! 1. a first Prometheus, with the live configuration but a scratch data
//!    directory, scrapes every target a few times (the labels it gives are
//!    the ones the live one will give), and its API hands over the samples
//!    and the metric types;
//! 2. history.rs extends the series the dashboards (and the records they
//!    read) select backwards at the bundle's scrape interval, and the real
//!    `promtool tsdb create-blocks-from openmetrics` turns that into blocks
//!    in the live data directory;
//! 3. for each layer of records the dashboards read, a query-only
//!    Prometheus opens that directory and the real `promtool tsdb
//!    create-blocks-from rules` evaluates the bundle's recording rules over
//!    the history, the blocks joining the directory before the next layer.
//!
//! It writes under `STATE/history` (removed when done) and `STATE/prom`.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde_json::{Value, json};
use telltale::process::Program;
use telltale::verify::http::{Auth, Http, encode};

use super::LocalStackError;
use super::daemons;
use super::history::{self, Observed, Reads, Span};

/// Samples each series needs before its rate means something.
const SCRAPES: usize = 3;
/// Longest a promtool run may take.
const PROMTOOL_LIMIT: Duration = Duration::from_secs(300);

/// What to backfill.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub duration: Duration,
    /// The bundle's scrape (and rule evaluation) interval.
    pub step: Duration,
}

/// Where and with what the Prometheus runs happen.
pub struct Setup<'a> {
    pub prometheus: &'a Path,
    pub promtool: &'a Path,
    pub setpriv: Option<&'a Path>,
    pub state: &'a Path,
    /// The live Prometheus configuration: the first Prometheus scrapes and
    /// evaluates with it (sending no alerts).
    pub config: &'a Value,
    /// Where the live Prometheus will listen: the runs before it use it too.
    pub address: SocketAddr,
    pub ready_timeout: Duration,
}

/// What the history holds, for the JSON line and stderr.
#[derive(Debug, Clone)]
pub struct Summary {
    pub request: Request,
    /// Epoch seconds of the first and last sample.
    pub from: i64,
    pub to: i64,
    pub series: usize,
    pub samples: usize,
    /// Recording rules with results over the history (written), and in
    /// how many layers the records the dashboards read come.
    pub records: usize,
    pub layers: usize,
    pub took: Duration,
    pub notes: Vec<String>,
}

impl Summary {
    pub fn json(&self) -> Value {
        json!({
            "duration_seconds": self.request.duration.as_secs(),
            "step_seconds": self.request.step.as_secs_f64(),
            "from": self.from,
            "to": self.to,
            "series": self.series,
            "samples": self.samples,
            "records": self.records,
            "record_layers": self.layers,
            "seconds": (self.took.as_secs_f64() * 100.0).round() / 100.0,
        })
    }
}

fn failed(step: &'static str, message: impl std::fmt::Display) -> LocalStackError {
    LocalStackError::History {
        step,
        message: message.to_string(),
    }
}

pub async fn backfill(
    setup: &Setup<'_>,
    reads: &Reads,
    request: Request,
) -> Result<Summary, LocalStackError> {
    let started = Instant::now();
    let scratch = setup.state.join("history");
    let _cleanup = super::RemoveOnDrop(Some(scratch.clone()));
    super::create_dir(&scratch)?;
    let http = Http::new(Auth::None).map_err(|e| failed("an HTTP client", e))?;
    let base = format!("http://{}", setup.address);

    // 1. What the daemons export now, as Prometheus labels it. The first
    // Prometheus evaluates the rules too (its own rule metrics are series
    // the dashboards read) but sends no alert: Alertmanager is live.
    let mut seed_config = setup.config.clone();
    if let Some(config) = seed_config.as_object_mut() {
        config.remove("alerting");
    }
    let seed_config_path = scratch.join("seed.yml");
    let yaml = serde_saphyr::to_string(&seed_config)
        .map_err(|e| failed("writing the first Prometheus' configuration", e))?;
    super::write(&seed_config_path, &yaml)?;
    let seed_dir = scratch.join("seed");
    let mut seed = vec![spawn_prometheus(
        setup,
        &seed_config_path,
        &seed_dir,
        "history-seed",
    )?];
    let seen = async {
        daemons::wait_ready(&mut seed, setup.ready_timeout).await?;
        wait_for_scrapes(&http, &base, setup.ready_timeout).await?;
        observe(&http, &base).await
    }
    .await;
    daemons::stop_all(seed).await;
    let (observed, metadata, end_ms) = seen?;

    // 2. The raw series, backwards from now.
    let wanted: Vec<Observed> = observed
        .into_iter()
        .filter(|s| s.samples.len() >= 2 && reads.wants(&s.labels))
        .collect();
    let step_ms = (request.step.as_millis() as i64).max(1);
    let span = Span {
        end_ms,
        step_ms,
        points: (request.duration.as_millis() as i64 / step_ms) as usize + 1,
    };
    let om = scratch.join("history.om");
    let file = std::fs::File::create(&om).map_err(|source| LocalStackError::Write {
        path: om.clone(),
        source,
    })?;
    let mut out = BufWriter::new(file);
    let written = history::write_openmetrics(&mut out, &wanted, &metadata, span)
        .and_then(|w| out.flush().map(|()| w))
        .map_err(|source| LocalStackError::Write {
            path: om.clone(),
            source,
        })?;
    drop(out);
    let data = setup.state.join("prom");
    super::create_dir(&data)?;
    promtool(
        setup,
        &[
            "tsdb".into(),
            "create-blocks-from".into(),
            "openmetrics".into(),
            "--quiet".into(),
            om.display().to_string(),
            data.display().to_string(),
        ],
    )
    .await?;
    let _ = std::fs::remove_file(&om);

    // 3. The records the dashboards read, layer by layer.
    let from_s = (end_ms - (span.points as i64 - 1) * step_ms) / 1000;
    let to_s = end_ms / 1000;
    let query_config = scratch.join("query.yml");
    super::write(
        &query_config,
        &format!(
            "global:\n  scrape_interval: {0}\n  evaluation_interval: {0}\n",
            super::config::prometheus_duration(request.step)
        ),
    )?;
    let mut records = 0;
    for (i, layer) in reads.layers.iter().enumerate() {
        let rules = scratch.join(format!("rules-{i}.yaml"));
        let blocks = scratch.join(format!("rules-{i}"));
        let mut query = vec![spawn_prometheus(
            setup,
            &query_config,
            &data,
            "history-query",
        )?];
        let evaluated = async {
            daemons::wait_ready(&mut query, setup.ready_timeout).await?;
            // promtool writes blocks rule by rule, a fixed cost each: the
            // rules that yield nothing over the history (most, where only a
            // cluster exports their inputs) would write nothing, so they are
            // left out after the same range query.
            let step = super::config::prometheus_duration(request.step);
            let kept: Vec<history::Record> = futures::stream::iter(layer.iter().map(|r| {
                let http = &http;
                let url = format!(
                    "{base}/api/v1/query_range?query={}&start={from_s}&end={to_s}&step={step}",
                    encode(&r.expr)
                );
                async move {
                    let answer: Result<Value, _> = http.get_json(&url).await;
                    let empty = answer
                        .is_ok_and(|v| v["data"]["result"].as_array().is_some_and(Vec::is_empty));
                    (!empty).then(|| r.clone())
                }
            }))
            .buffered(4)
            .filter_map(|r| async move { r })
            .collect()
            .await;
            if kept.is_empty() {
                return Ok(0);
            }
            let yaml = serde_saphyr::to_string(&history::rule_file(&kept))
                .map_err(|e| failed("writing the rules to backfill", e))?;
            super::write(&rules, &yaml)?;
            promtool(
                setup,
                &[
                    "tsdb".into(),
                    "create-blocks-from".into(),
                    "rules".into(),
                    "--quiet".into(),
                    format!("--url={base}"),
                    format!("--start={from_s}"),
                    format!("--end={to_s}"),
                    format!("--output-dir={}", blocks.display()),
                    format!(
                        "--eval-interval={}",
                        super::config::prometheus_duration(request.step)
                    ),
                    rules.display().to_string(),
                ],
            )
            .await
            .map(|()| kept.len())
        }
        .await;
        daemons::stop_all(query).await;
        records += evaluated?;
        move_blocks(&blocks, &data)?;
    }
    Ok(Summary {
        request,
        from: from_s,
        to: to_s,
        series: written.series,
        samples: written.samples,
        records,
        layers: reads.layers.len(),
        took: started.elapsed(),
        notes: reads.notes.clone(),
    })
}

fn spawn_prometheus(
    setup: &Setup<'_>,
    config: &Path,
    data: &Path,
    log: &str,
) -> Result<daemons::Daemon, LocalStackError> {
    daemons::spawn(
        "prometheus",
        setup.prometheus,
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address={}", setup.address),
        ],
        setup.address,
        "/-/ready",
        setup.state.join(format!("{log}.log")),
        setup.setpriv,
    )
}

async fn promtool(setup: &Setup<'_>, args: &[String]) -> Result<(), LocalStackError> {
    Program::new(setup.promtool)
        .args(args)
        .run_async(Some(PROMTOOL_LIMIT), |_| ())
        .await
        .map(|_| ())
        .map_err(|e| {
            let tail = e.stderr_tail(20);
            failed("promtool", format!("{e}\n{tail}"))
        })
}

/// Until every target has been scraped [`SCRAPES`] times (the first
/// scrape comes some 5 s after start: Prometheus' discovery manager sends
/// its first targets on a fixed 5 s tick).
async fn wait_for_scrapes(
    http: &Http,
    base: &str,
    within: Duration,
) -> Result<(), LocalStackError> {
    let deadline = Instant::now() + within;
    let query = format!(
        "{base}/api/v1/query?query={}",
        encode("min(count_over_time(up[10m]))")
    );
    loop {
        let answer: Result<Value, _> = http.get_json(&query).await;
        let scrapes = answer
            .ok()
            .and_then(|v| {
                v["data"]["result"][0]["value"][1]
                    .as_str()?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0);
        if scrapes >= SCRAPES as f64 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(failed(
                "waiting for the first scrapes",
                format!(
                    "after {}s some target has been scraped {scrapes} time(s), not {SCRAPES}",
                    within.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every series' raw samples of the last minutes, the metric types, and
/// the time asked at (epoch ms, to the second).
async fn observe(
    http: &Http,
    base: &str,
) -> Result<(Vec<Observed>, BTreeMap<String, String>, i64), LocalStackError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| failed("reading the clock", e))?
        .as_secs() as i64;
    let url = format!(
        "{base}/api/v1/query?query={}&time={now}",
        encode("{__name__=~\".+\"}[10m]")
    );
    let answer: Value = http
        .get_json(&url)
        .await
        .map_err(|e| failed("reading the first scrapes", e))?;
    let mut observed = Vec::new();
    for series in answer["data"]["result"].as_array().into_iter().flatten() {
        let labels: history::Labels = series["metric"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        let samples: Vec<(f64, f64)> = series["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p[0].as_f64()?, p[1].as_str()?.parse::<f64>().ok()?)))
            .collect();
        observed.push(Observed { labels, samples });
    }
    let meta: Value = http
        .get_json(&format!("{base}/api/v1/metadata"))
        .await
        .map_err(|e| failed("reading the metric types", e))?;
    let metadata = meta["data"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, entries)| {
            Some((name.clone(), entries[0]["type"].as_str()?.to_string()))
        })
        .collect();
    Ok((observed, metadata, now * 1000))
}

/// Moves the blocks promtool wrote into the data directory.
fn move_blocks(from: &Path, to: &Path) -> Result<(), LocalStackError> {
    let Ok(entries) = std::fs::read_dir(from) else {
        // No block: the records had no data over the history.
        return Ok(());
    };
    for entry in entries.flatten() {
        let path: PathBuf = entry.path();
        if path.is_dir() {
            let target = to.join(entry.file_name());
            std::fs::rename(&path, &target).map_err(|source| LocalStackError::Write {
                path: target,
                source,
            })?;
        }
    }
    Ok(())
}
