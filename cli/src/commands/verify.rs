//! `telltale verify`: prove the stack live.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::GlobalArgs;
use crate::error::CommandError;
use crate::render;
use crate::render::Bundle;
use crate::secrets::Secret;
use crate::ui::Printer;
use crate::ui::reporter::Terminal;
use crate::verify::http::{Auth, Http};
use crate::verify::hub::HubCheck;
use crate::verify::load::Engine;
use crate::verify::on_cluster::{self, Options};
use crate::verify::urls::check_url;
use crate::verify::{self, CheckId, Context, Endpoints, LoadOptions, report};

/// Prove the stack works: targets up, rules loaded and evaluating,
/// Alertmanager ready with every tier receiver, a synthetic alert delivered
/// through every integration of every receiver, logs from every namespace,
/// every dashboard panel answering, external metrics and HPAs, a load test
/// that moves the SLO series, and remote write sending to the central store. What to expect comes from the bundle's
/// plan.json (same profile and config as `up`): by default the checks the
/// profile declares. A check that cannot run here is skipped with the
/// reason. Exits 1 when any check fails, 3 when nothing can be reached.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Use the bundle `telltale plan --out DIR` wrote (its plan.json and the
    /// files it lists, each digest checked) instead of rendering it again
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Checks to run (comma-separated) [default: those the profile declares]
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub checks: Vec<CheckId>,
    /// Prometheus base URL
    #[arg(long, value_name = "URL")]
    pub prometheus_url: Option<String>,
    /// Alertmanager base URL
    #[arg(long, value_name = "URL")]
    pub alertmanager_url: Option<String>,
    /// Grafana base URL
    #[arg(long, value_name = "URL")]
    pub grafana_url: Option<String>,
    /// Loki base URL
    #[arg(long, value_name = "URL")]
    pub loki_url: Option<String>,
    /// Environment variable holding a bearer token for the URLs
    #[arg(long, value_name = "VAR", conflicts_with = "basic_auth_env")]
    pub bearer_token_env: Option<String>,
    /// Environment variable holding USER:PASSWORD for basic auth
    #[arg(long, value_name = "VAR")]
    pub basic_auth_env: Option<String>,
    /// Send credentials over plain http to a host other than this machine
    /// (they travel readable by anyone on the path)
    #[arg(long)]
    pub allow_insecure_credentials: bool,
    /// Write a JUnit XML report here (for CI)
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// The wall-clock bound of the run, every request included (the load
    /// check adds the load's duration); at most 24h
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Where the load check's requests come from: a k6 Job in the cluster,
    /// or telltale's own generator on this machine
    #[arg(long, value_enum, value_name = "ENGINE", default_value = "k6")]
    pub load_engine: Engine,
    /// Send the load here instead of plan.json's URL (e.g. a port-forward)
    #[arg(long, value_name = "URL")]
    pub load_url: Option<String>,
    /// Requests per second instead of plan.json's (1 to 10000)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_LOAD_RATE as i64))]
    pub load_rate: Option<u32>,
    /// How long to load instead of plan.json's; at most 1h
    #[arg(long, value_name = "DURATION", value_parser = parse_load_duration)]
    pub load_duration: Option<Duration>,
    /// With a Fleet config: how many clusters are verified at once (1 to 64)
    #[arg(long, value_name = "N", default_value = "4", value_parser = super::fleet::parse_parallel)]
    pub parallel: usize,
    /// With a Fleet config that names a hub (spec.hub): what is proven from
    /// the hub's central stores for every spoke (comma-separated)
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "LIST",
        default_value = "series,logs,rules,alerts"
    )]
    pub hub_checks: Vec<HubCheck>,
}

/// Every cluster of the fleet, each against its own context (port-forwards)
/// or the endpoints its entry names, `--parallel` at a time.
fn run_fleet(
    fleet: &super::fleet::Fleet,
    args: &VerifyArgs,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<(), CommandError> {
    super::fleet::refuse_single_cluster_flags(
        global,
        &[
            ("--prometheus-url", args.prometheus_url.is_some()),
            ("--alertmanager-url", args.alertmanager_url.is_some()),
            ("--grafana-url", args.grafana_url.is_some()),
            ("--loki-url", args.loki_url.is_some()),
            ("--load-url", args.load_url.is_some()),
            ("--junit", args.junit.is_some()),
        ],
    )?;
    // Every selected cluster's bundle, read or rendered before anything
    // runs; the hub's checks use them too.
    let mut bundles: BTreeMap<String, Bundle> = BTreeMap::new();
    match &args.bundle {
        Some(dir) => {
            for cluster in fleet.members() {
                let member = super::plan_fleet::member_dir(dir, &cluster.name).ok_or_else(|| {
                    CommandError::bad_input(format!(
                        "--bundle {}: not a fleet's output (no fleet.json); `telltale plan` with the Fleet config writes one",
                        dir.display()
                    ))
                })?;
                let bundle = read_bundle(&member)
                    .map_err(|e| super::plan_fleet::in_cluster(&cluster.name, e))?;
                bundles.insert(cluster.name.clone(), bundle);
            }
        }
        None => {
            let rendered = super::plan_fleet::render_all(fleet, &global.catalog()?, global)?;
            for (cluster, bundle) in fleet.members().zip(rendered) {
                bundles.insert(cluster.name.clone(), bundle);
            }
        }
    }
    // The endpoints are checked like the flags they become.
    let credentials = args.bearer_token_env.is_some() || args.basic_auth_env.is_some();
    for cluster in fleet.members() {
        for (flag, url) in endpoint_flags(cluster) {
            check_url(&flag, &url, credentials, args.allow_insecure_credentials)
                .map_err(|e| super::plan_fleet::in_cluster(&cluster.name, e))?;
        }
    }
    if let Some(e) = fleet
        .doc
        .spec
        .hub
        .as_ref()
        .and_then(|h| h.endpoints.as_ref())
    {
        for (key, url) in [
            ("prometheus", &e.prometheus),
            ("alertmanager", &e.alertmanager),
            ("grafana", &e.grafana),
            ("loki", &e.loki),
        ] {
            if let Some(url) = url {
                check_url(
                    &format!("spec.hub.endpoints.{key}"),
                    url,
                    credentials,
                    args.allow_insecure_credentials,
                )?;
            }
        }
    }
    let runs = super::fleet::fan_out(
        fleet,
        args.parallel,
        printer,
        &|c| {
            endpoint_flags(c)
                .into_iter()
                .flat_map(|(flag, url)| [flag.into(), url.into()])
                .collect()
        },
        &super::fleet::summarise_verify,
    )?;
    let hub = match &fleet.doc.spec.hub {
        Some(hub) if !args.hub_checks.is_empty() => {
            Some(verify_hub(fleet, hub, &bundles, args, global, printer)?)
        }
        _ => None,
    };
    super::fleet::finish(fleet, "verify", &runs, hub.as_ref(), printer)
}

/// The hub's part of a fleet verify: its bundle (the fleet-wide rules and
/// the central routing), its central endpoints (`spec.hub.endpoints` over
/// the hub cluster's own), every other selected cluster as a spoke.
fn verify_hub(
    fleet: &super::fleet::Fleet,
    hub: &crate::model::fleet::Hub,
    bundles: &BTreeMap<String, Bundle>,
    args: &VerifyArgs,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<crate::verify::hub::HubReport, CommandError> {
    let (_, cluster) = fleet
        .doc
        .member(&hub.cluster)
        .map_err(CommandError::bad_input)?;
    let bundle = match &args.bundle {
        // The hub was selected: its bundle is already here.
        _ if bundles.contains_key(&cluster.name) => bundles[&cluster.name].clone(),
        Some(dir) => {
            let member = super::plan_fleet::member_dir(dir, &cluster.name)
                .unwrap_or_else(|| dir.join(&cluster.name));
            read_bundle(&member).map_err(|e| super::plan_fleet::in_cluster(&cluster.name, e))?
        }
        None => render::render(&global.catalog()?, &fleet.request(global, cluster))
            .map_err(|e| super::plan_fleet::in_cluster(&cluster.name, e.into()))?,
    };
    let own = cluster.endpoints.clone().unwrap_or_default();
    let central = hub.endpoints.clone().unwrap_or_default();
    let endpoints = Endpoints {
        prometheus: central.prometheus.or(own.prometheus),
        alertmanager: central.alertmanager.or(own.alertmanager),
        grafana: central.grafana.or(own.grafana),
        loki: central.loki.or(own.loki),
    };
    let auth = auth_of(args)?;
    let names: Vec<String> = fleet
        .members()
        .filter(|c| c.name != hub.cluster)
        .map(|c| c.name.clone())
        .collect();
    let mut checks = args.hub_checks.clone();
    checks.sort();
    checks.dedup();
    printer.status(&format!(
        "verifying from the hub {}: {} for {}",
        hub.cluster,
        checks
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", "),
        crate::plural::count(names.len(), "spoke")
    ));
    let runtime = crate::session::runtime()?;
    runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + args.timeout;
        // The marker of each spoke is written in that spoke when its
        // cluster answers, so that its own shipper carries it to the hub.
        let mut spokes = Vec::new();
        for name in names {
            let cluster = match (checks.contains(&HubCheck::Logs), bundles.get(&name)) {
                (true, Some(b)) => Some(
                    on_cluster::reach(global.kubeconfig.as_deref(), b)
                        .await
                        .map(|kube| (kube, b.plan.namespace.clone())),
                ),
                _ => None,
            };
            let tenants = bundles
                .get(&name)
                .map(crate::verify::hub::tenants_of)
                .unwrap_or_default();
            spokes.push(crate::verify::hub::Spoke {
                name,
                cluster,
                tenants,
            });
        }
        let mut http = Http::new(auth)
            .map_err(|e| CommandError::environment(e.to_string()))?
            .with_deadline(deadline + verify::REQUEST_GRACE);
        // A multi-tenant central store answers for the tenants named: all
        // the spokes' at once (Mimir's tenant federation, Loki's
        // multi-tenant queries); single-tenant stores ignore the header.
        let tenants: BTreeSet<&String> = spokes.iter().flat_map(|s| &s.tenants).collect();
        if !tenants.is_empty() {
            let joined: Vec<&str> = tenants.iter().map(|t| t.as_str()).collect();
            http = http.with_header(crate::verify::hub::TENANT_HEADER, joined.join("|"));
        }
        let ctx = Context {
            bundle: &bundle,
            grafana: http.clone(),
            http,
            endpoints,
            timeout: args.timeout,
            deadline,
            run_id: verify::run_id(),
            kube: None,
            load: LoadOptions::default(),
            synthetic_labels: Default::default(),
        };
        Ok(crate::verify::hub::run(&ctx, &hub.cluster, &spokes, &checks).await)
    })
}

/// The credentials `--bearer-token-env` or `--basic-auth-env` name.
fn auth_of(args: &VerifyArgs) -> Result<Auth, CommandError> {
    Ok(match (&args.bearer_token_env, &args.basic_auth_env) {
        (Some(var), _) => Auth::Bearer(secret_env(var)?),
        (None, Some(var)) => {
            let pair = secret_env(var)?;
            let (user, password) = pair
                .expose()
                .split_once(':')
                .ok_or_else(|| CommandError::bad_input(format!("{var} must hold USER:PASSWORD")))?;
            Auth::Basic {
                user: user.to_string(),
                password: Secret::new(password),
            }
        }
        (None, None) => Auth::None,
    })
}

/// A fleet cluster's `endpoints`, as the URL flags of its verify run.
fn endpoint_flags(cluster: &crate::model::fleet::FleetCluster) -> Vec<(String, String)> {
    let Some(e) = &cluster.endpoints else {
        return Vec::new();
    };
    [
        ("--prometheus-url", &e.prometheus),
        ("--alertmanager-url", &e.alertmanager),
        ("--grafana-url", &e.grafana),
        ("--loki-url", &e.loki),
    ]
    .into_iter()
    .filter_map(|(flag, url)| Some((flag.to_string(), url.clone()?)))
    .collect()
}

/// The longest `--timeout`: a day is already longer than any stack takes
/// to settle, and far from the overflow of a clock.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The longest `--load-duration`.
pub const MAX_LOAD_DURATION: Duration = Duration::from_secs(3600);
/// The highest `--load-rate`: the generator holds one task per request in
/// flight, and k6's constant-arrival-rate needs as many VUs.
pub const MAX_LOAD_RATE: u32 = 10_000;

fn bounded_duration(text: &str, max: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    if d > max {
        return Err(format!(
            "must be at most {}",
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    bounded_duration(text, MAX_TIMEOUT)
}

fn parse_load_duration(text: &str) -> Result<Duration, String> {
    bounded_duration(text, MAX_LOAD_DURATION)
}

fn secret_env(var: &str) -> Result<Secret, CommandError> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Secret::new)
        .ok_or_else(|| CommandError::bad_input(format!("environment variable {var} is not set")))
}

pub fn run(args: VerifyArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    if let Some(fleet) = global.fleet()? {
        return run_fleet(&fleet, &args, global, printer);
    }
    let bundle = match &args.bundle {
        // A fleet's member reads its own directory of the fleet's output.
        Some(dir) => match global
            .fleet_member
            .as_deref()
            .and_then(|m| super::plan_fleet::member_dir(dir, m))
        {
            Some(member) => read_bundle(&member)?,
            None => read_bundle(dir)?,
        },
        None => render::render(&global.catalog()?, &global.request()?)?,
    };
    let auth = auth_of(&args)?;
    let urls = [
        ("--prometheus-url", &args.prometheus_url),
        ("--alertmanager-url", &args.alertmanager_url),
        ("--grafana-url", &args.grafana_url),
        ("--loki-url", &args.loki_url),
    ];
    for (flag, url) in urls {
        if let Some(url) = url {
            check_url(flag, url, auth.is_some(), args.allow_insecure_credentials)?;
        }
    }
    if let Some(url) = &args.load_url {
        // The load carries no credentials, but a password in it would be printed.
        check_url("--load-url", url, false, true)?;
    }
    let checks = if args.checks.is_empty() {
        verify::declared(&bundle)
    } else {
        let mut c = args.checks.clone();
        c.sort();
        c.dedup();
        c
    };
    let options = Options {
        checks,
        endpoints: Endpoints {
            prometheus: args.prometheus_url.clone(),
            alertmanager: args.alertmanager_url.clone(),
            grafana: args.grafana_url.clone(),
            loki: args.loki_url.clone(),
        },
        explicit_auth: auth.is_some(),
        auth,
        allow_insecure: args.allow_insecure_credentials,
        timeout: args.timeout,
        load: LoadOptions {
            engine: args.load_engine,
            url: args.load_url.clone(),
            rate: args.load_rate,
            duration: args.load_duration,
        },
    };
    let reporter = Terminal::new(printer);
    let at = super::access::at(global);
    let report = crate::session::runtime()?
        .block_on(on_cluster::run_on_cluster(&bundle, options, &at, &reporter))?;
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&report)).map_err(|e| {
            CommandError::environment(format!("cannot write {}: {e}", path.display()))
        })?;
    }
    if printer.is_json() {
        printer.json(&report);
    } else {
        printer.out(&report::text(&report, printer.verbose > 0));
    }
    on_cluster::report_to_result(&report)
}

/// The bundle in `dir`: plan.json and every file it lists, refused when a
/// file is missing or its sha256 differs from plan.json's (an edited bundle
/// would be verified against expectations it no longer has).
fn read_bundle(dir: &std::path::Path) -> Result<Bundle, CommandError> {
    use sha2::{Digest, Sha256};
    let read = |rel: &str| {
        std::fs::read_to_string(dir.join(rel)).map_err(|e| {
            CommandError::bad_input(format!(
                "--bundle {}: cannot read {rel}: {e}",
                dir.display()
            ))
        })
    };
    let plan_json = read("plan.json")?;
    let plan: render::plan::Plan = serde_json::from_str(&plan_json).map_err(|e| {
        CommandError::bad_input(format!(
            "--bundle {}: plan.json is not a telltale plan: {e}",
            dir.display()
        ))
    })?;
    let mut files = std::collections::BTreeMap::new();
    for (rel, digest) in &plan.files {
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(CommandError::bad_input(format!(
                "--bundle {}: plan.json lists a path outside the bundle: {rel}",
                dir.display()
            )));
        }
        let text = read(rel)?;
        let actual: String = Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if &actual != digest {
            return Err(CommandError::bad_input(format!(
                "--bundle {}: {rel} differs from the plan.json digest (run `telltale plan --out {}` again)",
                dir.display(),
                dir.display()
            )));
        }
        files.insert(rel.clone(), text);
    }
    Bundle::from_files(files, plan, plan_json)
        .map_err(|e| CommandError::bad_input(format!("--bundle {}: {e}", dir.display())))
}
