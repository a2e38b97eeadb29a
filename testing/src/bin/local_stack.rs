//! telltale-local-stack: real Prometheus, Alertmanager and node-exporter on
//! 127.0.0.1, loaded with a telltale bundle's rules and routing, plus a
//! notification sink, so `telltale verify` can be exercised against real
//! daemons without a cluster. A binary of the telltale-testing package (the
//! product package carries no fakes); `e2e/local-stack` runs it.
//!
//! It writes only under its state directory (configs, secret files, daemon
//! storage and logs, `sink.jsonl`), prints exactly one JSON line on stdout
//! once everything answers, and runs until SIGTERM or SIGINT, then stops and
//! reaps its children and exits 0.

// A binary's root resolves modules next to itself, so name the directory.
#[path = "local_stack/backfill.rs"]
mod backfill;
#[path = "local_stack/config.rs"]
mod config;
#[path = "local_stack/daemons.rs"]
mod daemons;
#[path = "local_stack/grafana.rs"]
mod grafana;
#[path = "local_stack/history.rs"]
mod history;
#[path = "local_stack/loki.rs"]
mod loki;
#[path = "local_stack/shipper.rs"]
mod shipper;
#[path = "local_stack/sink.rs"]
mod sink;
#[path = "local_stack/smtp.rs"]
mod smtp;

use std::io::Write;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use config::{Endpoints, Plan, ScrapeAddresses};
use daemons::Daemon;
use sink::{Integration, Recorder, Statuses};

/// Runs Debian's Prometheus, Alertmanager and node-exporter on 127.0.0.1 with
/// a bundle's rules and routing, and a sink that records every notification
/// Alertmanager sends (Slack, PagerDuty, webhook, email). Prints one JSON line
/// with the URLs once ready; stop it with SIGTERM or Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "telltale-local-stack", version)]
struct Args {
    /// The bundle directory written by `telltale plan --out DIR`.
    #[arg(long, value_name = "DIR")]
    bundle: PathBuf,
    /// Where configs, secrets, daemon storage and logs go; default: a new
    /// temporary directory, kept on exit.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Make the sink answer CODE to INTEGRATION (slack, pagerduty, webhook,
    /// email), or only to one receiver's (`warning/slack=500`; not email,
    /// whose SMTP session does not name the receiver); repeatable. Email
    /// answers the code (4xx/5xx) to the DATA command.
    #[arg(long = "sink-status", value_name = "[RECEIVER/]INTEGRATION=CODE", value_parser = parse_sink_status)]
    sink_status: Vec<((Option<String>, Integration), u16)>,
    /// Make the fake Grafana miss this dashboard (by uid), as if its
    /// ConfigMap were never provisioned; repeatable.
    #[arg(long = "grafana-drop-dashboard", value_name = "UID")]
    grafana_drop_dashboard: Vec<String>,
    /// Make the fake Grafana answer every /api/ds/query this much later, as
    /// a slow Prometheus would (a fault, to see verify's load time fail).
    #[arg(long = "grafana-query-delay", value_name = "DURATION", value_parser = humantime::parse_duration)]
    grafana_query_delay: Option<Duration>,
    /// Make the fake Loki drop every line of this namespace, pushed by the
    /// shipper or through the push API, as if nothing collected it;
    /// repeatable.
    #[arg(long = "loki-drop-namespace", value_name = "NAMESPACE")]
    loki_drop_namespace: Vec<String>,
    /// Start Alertmanager without `--enable-feature=receiver-name-in-metrics`,
    /// as an Alertmanager older than 0.27 (or one whose operator drops the
    /// bundle's `enableFeatures`): its notification counters are then per
    /// integration only, and verify proves receivers one at a time.
    #[arg(long)]
    alertmanager_without_receiver_metrics: bool,
    /// Start Prometheus with `--web.enable-remote-write-receiver`: the
    /// stack is a fleet's hub, standing in for Mimir, and other
    /// Prometheus servers remote-write into it (/api/v1/write).
    #[arg(long)]
    remote_write_receiver: bool,
    /// Hold the port first picked for this daemon (prometheus,
    /// alertmanager, node-exporter) while it starts, as another process
    /// taking it would: the start is retried on new ports (a fault, to test
    /// that retry).
    #[arg(long, value_name = "DAEMON", value_parser = ["prometheus", "alertmanager", "node-exporter"])]
    take_first_port: Option<String>,
    /// Start Prometheus on this much history (`12h`) of the series the
    /// bundle's dashboards read, and of the recording rules they read:
    /// what the stack's own exporters export, extended backwards and written
    /// with promtool before Prometheus starts.
    #[arg(long, value_name = "DURATION", value_parser = parse_history)]
    history: Option<Duration>,
    /// The history's sample interval; default: the bundle's Prometheus
    /// scrape interval (kube-prometheus-stack's 30s unless it sets one).
    #[arg(long, value_name = "DURATION", requires = "history", value_parser = parse_interval)]
    history_interval: Option<Duration>,
    /// Prometheus' scrape and rule evaluation interval.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    scrape_interval: Duration,
    /// How long the daemons have to answer before the stack gives up.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    ready_timeout: Duration,
    /// The Prometheus binary.
    #[arg(long, env = "TELLTALE_PROMETHEUS", default_value = "prometheus")]
    prometheus_bin: PathBuf,
    /// The Alertmanager binary.
    #[arg(
        long,
        env = "TELLTALE_ALERTMANAGER",
        default_value = "prometheus-alertmanager"
    )]
    alertmanager_bin: PathBuf,
    /// The node-exporter binary.
    #[arg(
        long,
        env = "TELLTALE_NODE_EXPORTER",
        default_value = "prometheus-node-exporter"
    )]
    node_exporter_bin: PathBuf,
    /// promtool, to check the Prometheus configuration before starting.
    #[arg(long, env = "TELLTALE_PROMTOOL", default_value = "promtool")]
    promtool_bin: PathBuf,
    /// amtool, to check the Alertmanager configuration before starting.
    #[arg(long, env = "TELLTALE_AMTOOL", default_value = "amtool")]
    amtool_bin: PathBuf,
}

fn parse_sink_status(text: &str) -> Result<((Option<String>, Integration), u16), String> {
    let (integration, code) = text.split_once('=').ok_or_else(|| {
        format!("expected [RECEIVER/]INTEGRATION=CODE (e.g. slack=500), got `{text}`")
    })?;
    let (receiver, integration) = match integration.split_once('/') {
        Some((receiver, integration)) if !receiver.trim().is_empty() => {
            (Some(receiver.trim().to_string()), integration)
        }
        Some(_) => return Err(format!("`{text}`: the receiver before `/` is empty")),
        None => (None, integration),
    };
    let integration: Integration = integration.trim().parse()?;
    if receiver.is_some() && integration == Integration::Email {
        return Err(
            "email cannot be scoped to a receiver (the SMTP session does not name it); use email=CODE"
                .into(),
        );
    }
    let code: u16 = code
        .trim()
        .parse()
        .map_err(|_| format!("`{code}` is not a status code"))?;
    let valid = match integration {
        Integration::Email => code == 250 || (400..=599).contains(&code),
        _ => (100..=599).contains(&code),
    };
    if !valid {
        return Err(format!("{code} is not a valid status for {integration}"));
    }
    Ok(((receiver, integration), code))
}

fn parse_history(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    // Prometheus keeps 15 days by default; more would be dropped at once.
    if duration < Duration::from_secs(60) || duration > Duration::from_secs(14 * 86_400) {
        return Err("the history must be between 1m and 14d".into());
    }
    Ok(duration)
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration < Duration::from_millis(100) {
        return Err("the scrape interval must be at least 100ms".into());
    }
    Ok(duration)
}

#[derive(Debug, thiserror::Error)]
pub enum LocalStackError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid {what}: {message}")]
    Parse {
        path: PathBuf,
        what: &'static str,
        message: String,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    #[error("`{program}` was not found on PATH; install it: apt-get install {package}")]
    NotFound {
        program: PathBuf,
        package: &'static str,
    },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} rejected {path}:\n{output}")]
    Invalid {
        tool: String,
        path: PathBuf,
        output: String,
    },
    #[error("{name} exited ({status}) before it was ready; last lines of {log}:\n{tail}")]
    Exited {
        name: &'static str,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{name} did not answer 200 at {url} within {seconds}s; last lines of {log}:\n{tail}")]
    NotReady {
        name: &'static str,
        url: String,
        seconds: u64,
        log: PathBuf,
        tail: String,
    },
    #[error("cannot install the signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("the history could not be written ({step}): {message}")]
    History { step: &'static str, message: String },
}

impl LocalStackError {
    /// A daemon that could not listen because its port was taken after it
    /// was picked (Go's net package: "bind: address already in use").
    fn port_taken(&self) -> bool {
        matches!(self, LocalStackError::Exited { tail, .. } if tail.contains("address already in use"))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("telltale-local-stack: error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), LocalStackError> {
    // Signals first: a SIGTERM during start-up must still stop the children.
    let mut sigterm = signal(SignalKind::terminate()).map_err(LocalStackError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(LocalStackError::Signals)?;

    let programs = Programs::resolve(&args)?;
    let bundle = absolute(&args.bundle)?;
    let plan_path = bundle.join("plan.json");
    let plan: Plan =
        serde_json::from_str(&read(&plan_path)?).map_err(|e| LocalStackError::Parse {
            path: plan_path.clone(),
            what: "plan.json",
            message: e.to_string(),
        })?;
    let am_path = bundle.join("alertmanager").join("alertmanager.yaml");
    let am_bundle: Value =
        serde_saphyr::from_str(&read(&am_path)?).map_err(|e| LocalStackError::Parse {
            path: am_path.clone(),
            what: "YAML",
            message: e.to_string(),
        })?;
    let rules_dir = bundle.join("prometheus").join("rules");
    if !rules_dir.is_dir() {
        return Err(LocalStackError::Read {
            path: rules_dir,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the bundle has no prometheus/rules",
            ),
        });
    }

    let state = state_dir(args.state.as_deref())?;
    // A state directory the stack made itself (no --state) holds the
    // receivers' secret files and the daemons' data: it goes when the stack
    // stops, on every path, so test runs never pile up in the temp dir.
    let _cleanup = RemoveOnDrop(args.state.is_none().then(|| state.clone()));
    let secrets_dir = state.join("secrets");
    create_dir(&secrets_dir)?;

    // In-process servers keep their listeners: no port race for them.
    let sink_listener = listen().await?;
    let smtp_listener = listen().await?;
    let standin_listener = listen().await?;
    let loki_listener = listen().await?;
    let grafana_listener = listen().await?;
    let loki_addr = local_addr(&loki_listener)?;
    let grafana_addr = local_addr(&grafana_listener)?;
    let sink_addr = local_addr(&sink_listener)?;
    let smtp_addr = local_addr(&smtp_listener)?;
    let standin_addr = local_addr(&standin_listener)?;

    let statuses = Arc::new(Statuses(args.sink_status.iter().cloned().collect()));
    let recorder = Arc::new(
        Recorder::create(&state.join("sink.jsonl")).map_err(|source| LocalStackError::Write {
            path: state.join("sink.jsonl"),
            source,
        })?,
    );
    tokio::spawn(serve(
        sink_listener,
        sink::router(recorder.clone(), statuses.clone()),
    ));
    tokio::spawn(serve(standin_listener, sink::standin_router()));
    tokio::spawn(smtp::serve(
        smtp_listener,
        recorder.clone(),
        statuses.clone(),
    ));

    let endpoints = Endpoints {
        sink: format!("http://{sink_addr}"),
        smtp: smtp_addr.to_string(),
    };
    let mut am = config::alertmanager(am_bundle, &secrets_dir, &endpoints);
    // The notification templates are the bundle's own files, next to its
    // alertmanager.yaml (in the pod: /etc/alertmanager/config/).
    telltale::render::notify_template::templates_from(&mut am.config, &bundle.join("alertmanager"));
    for warning in &am.warnings {
        eprintln!("telltale-local-stack: warning: {warning}");
    }
    for (path, contents) in &am.secrets {
        write(path, contents)?;
    }
    let am_config = state.join("alertmanager.yaml");
    write(&am_config, &to_yaml(&am.config, &am_config)?)?;
    check(
        &programs.amtool,
        &["check-config".into(), am_config.display().to_string()],
        &am_config,
    )
    .await?;

    // The daemons bind their own ports a moment after they are picked, and
    // another process can take one in between (seen under the suite's load:
    // "bind: address already in use"). Such a start is stopped, its data
    // removed, and started again on new ports.
    // Only the daemons' data directories this run made are removed before
    // a retry: a --state DIR given again keeps what an earlier run left.
    let made: Vec<PathBuf> = ["prom", "am"]
        .iter()
        .map(|d| state.join(d))
        .filter(|d| !d.exists())
        .collect();
    let mut attempt = 1;
    let (addresses, provisioned, summary, mut children) = loop {
        let addresses = free_addresses()?;
        let _taken = match (attempt, args.take_first_port.as_deref()) {
            (1, Some(daemon)) => {
                let slot = ["prometheus", "alertmanager", "node-exporter"]
                    .iter()
                    .position(|d| *d == daemon)
                    .unwrap_or_default();
                Some(StdListener::bind(addresses[slot]).map_err(LocalStackError::Bind)?)
            }
            _ => None,
        };
        let mut children: Vec<Daemon> = Vec::new();
        let inputs = Daemons {
            programs: &programs,
            bundle: &bundle,
            plan: &plan,
            rules_dir: &rules_dir,
            state: &state,
            am_config: &am_config,
            loki_addr,
            standin_addr,
        };
        let launched = tokio::select! {
            launched = launch(&args, &inputs, addresses, &mut children) => launched,
            _ = sigterm.recv() => { daemons::stop_all(children).await; return Ok(()); }
            _ = sigint.recv() => { daemons::stop_all(children).await; return Ok(()); }
        };
        match launched {
            Ok((provisioned, summary)) => break (addresses, provisioned, summary, children),
            Err(error) if attempt < PORT_ATTEMPTS && error.port_taken() => {
                daemons::stop_all(children).await;
                eprintln!("telltale-local-stack: {error}");
                attempt += 1;
                eprintln!(
                    "telltale-local-stack: a port was taken between picking and binding it; starting again on new ports (attempt {attempt} of {PORT_ATTEMPTS})"
                );
                for data in &made {
                    let _ = std::fs::remove_dir_all(data);
                }
            }
            Err(error) => {
                daemons::stop_all(children).await;
                return Err(error);
            }
        }
    };
    let [prom_addr, am_addr, node_addr] = addresses;

    // Loki and Grafana cannot run here: fakes stand in (see their modules),
    // fed by a shipper that sends the daemons' own logs to Loki the way
    // Alloy would, under the stack's namespace.
    let store = Arc::new(loki::Store::dropping(args.loki_drop_namespace.clone()));
    tokio::spawn(serve(loki_listener, loki::router(store.clone())));
    tokio::spawn(shipper::ship(
        store,
        plan.namespace.clone(),
        children
            .iter()
            .map(|d| (d.name.to_string(), d.log.clone()))
            .collect(),
    ));
    let password = grafana_password();
    let password_file = secrets_dir.join("grafana-admin-password");
    write(&password_file, &password)?;
    for note in &provisioned.notes {
        eprintln!("telltale-local-stack: grafana: {note}");
    }
    let mut fake_grafana = grafana::Grafana::new(provisioned, &password);
    fake_grafana.query_delay = args.grafana_query_delay.unwrap_or_default();
    tokio::spawn(serve(
        grafana_listener,
        grafana::router(Arc::new(fake_grafana)),
    ));

    let pid = |name: &str| children.iter().find(|d| d.name == name).map(|d| d.pid);
    let line = json!({
        "prometheus": format!("http://{prom_addr}"),
        "alertmanager": format!("http://{am_addr}"),
        "node_exporter": format!("http://{node_addr}"),
        "sink": endpoints.sink,
        "smtp": endpoints.smtp,
        "standin": format!("http://{standin_addr}"),
        "loki": format!("http://{loki_addr}"),
        "grafana": format!("http://{grafana_addr}"),
        "grafana_user": "admin",
        "grafana_password_file": password_file.display().to_string(),
        "state": state.display().to_string(),
        "history": summary.as_ref().map(backfill::Summary::json),
        "pids": {
            "prometheus": pid("prometheus"),
            "alertmanager": pid("alertmanager"),
            "node_exporter": pid("node_exporter"),
        },
    });
    let mut stdout = std::io::stdout().lock();
    // A reader that went away is not a reason to stop the stack.
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    drop(stdout);
    eprintln!("telltale-local-stack: ready");
    eprintln!("  prometheus     http://{prom_addr}");
    eprintln!("  alertmanager   http://{am_addr}");
    eprintln!("  node-exporter  http://{node_addr}");
    eprintln!("  sink           {}  (GET /received)", endpoints.sink);
    eprintln!("  smtp           {}", endpoints.smtp);
    eprintln!("  stand-in       http://{standin_addr}/metrics");
    eprintln!("  loki (fake)    http://{loki_addr}");
    eprintln!(
        "  grafana (fake) http://{grafana_addr}  (admin, password in {})",
        password_file.display()
    );
    eprintln!("  state          {}", state.display());
    eprintln!("stop with Ctrl-C (or SIGTERM)");

    let mut watch = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = watch.tick() => {
                // A daemon killed on purpose (to test verify) is reported,
                // not replaced, and does not stop the others.
                for daemon in children.iter_mut() {
                    if let Some(status) = daemon.newly_exited() {
                        eprintln!("telltale-local-stack: {} exited ({status}); see {}", daemon.name, daemon.log.display());
                    }
                }
            }
        }
    }
    eprintln!("telltale-local-stack: stopping");
    daemons::stop_all(children).await;
    Ok(())
}

/// How many times the daemons are started on freshly picked ports.
const PORT_ATTEMPTS: u32 = 3;

/// What starting the daemons needs besides their ports.
struct Daemons<'a> {
    programs: &'a Programs,
    bundle: &'a Path,
    plan: &'a Plan,
    rules_dir: &'a Path,
    state: &'a Path,
    am_config: &'a Path,
    loki_addr: SocketAddr,
    standin_addr: SocketAddr,
}

/// Prometheus' config for these ports, Grafana's provisioning pointing at
/// them, the history when asked, then the daemons (into `children`, so
/// that the caller stops them on every path).
async fn launch(
    args: &Args,
    daemons: &Daemons<'_>,
    addresses: [SocketAddr; 3],
    children: &mut Vec<Daemon>,
) -> Result<(grafana::Provisioned, Option<backfill::Summary>), LocalStackError> {
    let Daemons {
        programs,
        bundle,
        plan,
        rules_dir,
        state,
        am_config,
        loki_addr,
        standin_addr,
    } = *daemons;
    let [prom_addr, am_addr, node_addr] = addresses;
    let scrape = ScrapeAddresses {
        prometheus: prom_addr.to_string(),
        alertmanager: am_addr.to_string(),
        node_exporter: node_addr.to_string(),
        standin: standin_addr.to_string(),
    };
    let prom = config::prometheus(
        rules_dir,
        &plan.expectations.targets,
        &scrape,
        args.scrape_interval,
    );
    let prom_config = state.join("prometheus.yml");
    write(&prom_config, &to_yaml(&prom, &prom_config)?)?;
    check(
        &programs.promtool,
        &[
            "check".into(),
            "config".into(),
            prom_config.display().to_string(),
        ],
        &prom_config,
    )
    .await?;

    // Grafana's provisioning is read now: the history follows what its
    // dashboards read.
    let provisioned = grafana::Provisioned::from_bundle(
        bundle,
        &format!("http://{prom_addr}"),
        &format!("http://{loki_addr}"),
        &args.grafana_drop_dashboard,
    );
    let history = match args.history {
        Some(duration) => Some((
            history_reads(&provisioned, rules_dir)?,
            backfill::Request {
                duration,
                step: args
                    .history_interval
                    .unwrap_or_else(|| config::bundle_scrape_interval(bundle)),
            },
        )),
        None => None,
    };

    let setup = backfill::Setup {
        prometheus: &programs.prometheus,
        promtool: &programs.promtool,
        setpriv: programs.setpriv.as_deref(),
        state,
        config: &prom,
        address: prom_addr,
        ready_timeout: args.ready_timeout,
    };
    let summary = start(
        programs,
        state,
        am_config,
        &prom_config,
        addresses,
        !args.alertmanager_without_receiver_metrics,
        &setup,
        history.as_ref(),
        children,
    )
    .await?;
    Ok((provisioned, summary))
}

/// Starts node-exporter and Alertmanager, writes the history when asked
/// (with both answering: its first Prometheus scrapes them), then starts
/// Prometheus and waits until all three answer.
#[allow(clippy::too_many_arguments)]
async fn start(
    programs: &Programs,
    state: &Path,
    am_config: &Path,
    prom_config: &Path,
    addresses: [SocketAddr; 3],
    receiver_metrics: bool,
    setup: &backfill::Setup<'_>,
    history: Option<&(history::Reads, backfill::Request)>,
    children: &mut Vec<Daemon>,
) -> Result<Option<backfill::Summary>, LocalStackError> {
    start_exporters(
        programs,
        state,
        am_config,
        addresses,
        receiver_metrics,
        children,
    )?;
    let mut summary = None;
    if let Some((reads, request)) = history {
        daemons::wait_ready(children, setup.ready_timeout).await?;
        let done = backfill::backfill(setup, reads, *request).await?;
        eprintln!(
            "telltale-local-stack: history: {} of {} series ({} samples, every {}); of the {} recording rule(s) the dashboards read ({} layer(s)), {} have data over it; written in {:.1} s",
            humantime::format_duration(done.request.duration),
            done.series,
            done.samples,
            config::prometheus_duration(done.request.step),
            reads.layers.iter().map(Vec::len).sum::<usize>(),
            done.layers,
            done.records,
            done.took.as_secs_f64()
        );
        for note in &done.notes {
            eprintln!("telltale-local-stack: history: {note}");
        }
        summary = Some(done);
    }
    start_prometheus(programs, state, prom_config, addresses[0], children)?;
    daemons::wait_ready(children, setup.ready_timeout).await?;
    Ok(summary)
}

/// The dashboards' queries and the bundle's recording rules.
fn history_reads(
    provisioned: &grafana::Provisioned,
    rules_dir: &Path,
) -> Result<history::Reads, LocalStackError> {
    let queries: Vec<String> = provisioned
        .dashboards
        .values()
        .flat_map(history::dashboard_queries)
        .collect();
    let mut records = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(rules_dir)
        .map_err(|source| LocalStackError::Read {
            path: rules_dir.to_path_buf(),
            source,
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for path in files {
        let file: Value =
            serde_saphyr::from_str(&read(&path)?).map_err(|e| LocalStackError::Parse {
                path: path.clone(),
                what: "YAML",
                message: e.to_string(),
            })?;
        records.extend(history::records(&file));
    }
    Ok(history::Reads::new(&queries, &records))
}

fn start_exporters(
    programs: &Programs,
    state: &Path,
    am_config: &Path,
    [_, am_addr, node_addr]: [SocketAddr; 3],
    receiver_metrics: bool,
    children: &mut Vec<Daemon>,
) -> Result<(), LocalStackError> {
    let setpriv = programs.setpriv.as_deref();
    children.push(daemons::spawn(
        "node_exporter",
        &programs.node_exporter,
        &[
            format!("--web.listen-address={node_addr}"),
            // The collectors the bundle's dashboards and rules read (the
            // chart runs node-exporter's defaults, a superset); the rest
            // stay off to keep scrapes of this shared machine cheap.
            "--collector.disable-defaults".into(),
            "--collector.cpu".into(),
            "--collector.meminfo".into(),
            "--collector.filesystem".into(),
            "--collector.loadavg".into(),
            "--collector.uname".into(),
            "--collector.netdev".into(),
            "--collector.diskstats".into(),
            "--collector.filefd".into(),
            "--collector.stat".into(),
            "--collector.time".into(),
            "--collector.vmstat".into(),
            "--collector.pressure".into(),
        ],
        node_addr,
        "/metrics",
        state.join("node_exporter.log"),
        setpriv,
    )?);
    let mut am_args = vec![
        format!("--config.file={}", am_config.display()),
        format!("--storage.path={}", state.join("am").display()),
        format!("--web.listen-address={am_addr}"),
        // Links in notifications point here rather than at the hostname.
        format!("--web.external-url=http://{am_addr}"),
        "--cluster.listen-address=".into(),
    ];
    if receiver_metrics {
        // As the bundle's alertmanagerSpec.enableFeatures: counters by receiver.
        am_args.push("--enable-feature=receiver-name-in-metrics".into());
    }
    children.push(daemons::spawn(
        "alertmanager",
        &programs.alertmanager,
        &am_args,
        am_addr,
        "/-/ready",
        state.join("alertmanager.log"),
        setpriv,
    )?);
    Ok(())
}

fn start_prometheus(
    programs: &Programs,
    state: &Path,
    prom_config: &Path,
    prom_addr: SocketAddr,
    children: &mut Vec<Daemon>,
) -> Result<(), LocalStackError> {
    let mut flags = vec![
        format!("--config.file={}", prom_config.display()),
        format!("--storage.tsdb.path={}", state.join("prom").display()),
        format!("--web.listen-address={prom_addr}"),
        format!("--web.external-url=http://{prom_addr}"),
        "--web.enable-lifecycle".into(),
    ];
    flags.extend(programs.prometheus_flags.iter().cloned());
    children.push(daemons::spawn(
        "prometheus",
        &programs.prometheus,
        &flags,
        prom_addr,
        "/-/ready",
        state.join("prometheus.log"),
        programs.setpriv.as_deref(),
    )?);
    Ok(())
}

/// The external programs, resolved on PATH before anything starts.
struct Programs {
    prometheus: PathBuf,
    alertmanager: PathBuf,
    node_exporter: PathBuf,
    promtool: PathBuf,
    amtool: PathBuf,
    /// util-linux `setpriv`, for a parent-death signal; optional.
    setpriv: Option<PathBuf>,
    /// Prometheus' flags beyond the stack's own.
    prometheus_flags: Vec<String>,
}

impl Programs {
    fn resolve(args: &Args) -> Result<Self, LocalStackError> {
        let need = |program: &Path, package: &'static str| {
            which(program).ok_or_else(|| LocalStackError::NotFound {
                program: program.to_path_buf(),
                package,
            })
        };
        Ok(Self {
            prometheus: need(&args.prometheus_bin, "prometheus")?,
            alertmanager: need(&args.alertmanager_bin, "prometheus-alertmanager")?,
            node_exporter: need(&args.node_exporter_bin, "prometheus-node-exporter")?,
            promtool: need(&args.promtool_bin, "prometheus")?,
            amtool: need(&args.amtool_bin, "prometheus-alertmanager")?,
            setpriv: which(Path::new("setpriv")),
            prometheus_flags: if args.remote_write_receiver {
                vec!["--web.enable-remote-write-receiver".into()]
            } else {
                Vec::new()
            },
        })
    }
}

fn which(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Runs a validator; its output is the error when it refuses.
async fn check(tool: &Path, args: &[String], path: &Path) -> Result<(), LocalStackError> {
    let output = tokio::process::Command::new(tool)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|source| LocalStackError::Spawn {
            program: tool.to_path_buf(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(LocalStackError::Invalid {
        tool: tool.display().to_string(),
        path: path.to_path_buf(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

async fn serve(listener: TcpListener, router: axum::Router) {
    if let Err(error) = axum::serve(listener, router).await {
        eprintln!("telltale-local-stack: HTTP server stopped: {error}");
    }
}

async fn listen() -> Result<TcpListener, LocalStackError> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(LocalStackError::Bind)
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, LocalStackError> {
    listener.local_addr().map_err(LocalStackError::Bind)
}

/// Three distinct free ports, held together while picking so they differ.
/// A fresh password for the fake Grafana's admin, so that verify's
/// credentials path is exercised for real.
fn grafana_password() -> String {
    let mut bytes = [0u8; 12];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn free_addresses() -> Result<[SocketAddr; 3], LocalStackError> {
    let listeners = [
        StdListener::bind("127.0.0.1:0"),
        StdListener::bind("127.0.0.1:0"),
        StdListener::bind("127.0.0.1:0"),
    ];
    let mut out = [SocketAddr::from(([127, 0, 0, 1], 0)); 3];
    for (slot, listener) in out.iter_mut().zip(listeners) {
        *slot = listener
            .and_then(|l| l.local_addr())
            .map_err(LocalStackError::Bind)?;
    }
    Ok(out)
}

/// Removes the directory it holds when dropped (best effort).
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn state_dir(requested: Option<&Path>) -> Result<PathBuf, LocalStackError> {
    let dir = match requested {
        Some(dir) => dir.to_path_buf(),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            std::env::temp_dir().join(format!(
                "telltale-local-stack-{}-{nanos:08x}",
                std::process::id()
            ))
        }
    };
    create_dir(&dir)?;
    absolute(&dir)
}

fn absolute(path: &Path) -> Result<PathBuf, LocalStackError> {
    std::fs::canonicalize(path).map_err(|source| LocalStackError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn create_dir(dir: &Path) -> Result<(), LocalStackError> {
    std::fs::create_dir_all(dir).map_err(|source| LocalStackError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

fn read(path: &Path) -> Result<String, LocalStackError> {
    std::fs::read_to_string(path).map_err(|source| LocalStackError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, contents: &str) -> Result<(), LocalStackError> {
    std::fs::write(path, contents).map_err(|source| LocalStackError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn to_yaml(value: &Value, path: &Path) -> Result<String, LocalStackError> {
    serde_saphyr::to_string(value).map_err(|e| LocalStackError::Parse {
        path: path.to_path_buf(),
        what: "YAML (while writing)",
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_status_is_per_integration_or_per_receiver() {
        assert_eq!(
            parse_sink_status("slack=500"),
            Ok(((None, Integration::Slack), 500))
        );
        assert_eq!(
            parse_sink_status("warning/slack=503"),
            Ok(((Some("warning".into()), Integration::Slack), 503))
        );
        assert!(parse_sink_status("/slack=500").is_err());
        assert!(parse_sink_status("critical/email=550").is_err());
        let statuses = Statuses(
            [
                ((None, Integration::Slack), 500),
                ((Some("warning".into()), Integration::Slack), 503),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(
            statuses.for_path(Integration::Slack, "/slack/warning"),
            Some(503)
        );
        assert_eq!(
            statuses.for_path(Integration::Slack, "/slack/critical"),
            Some(500)
        );
        assert_eq!(
            statuses.for_path(Integration::PagerDuty, "/pagerduty/warning/v2/enqueue"),
            None
        );
    }
}
