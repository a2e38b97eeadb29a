//! `telltale verify`: prove the stack live.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::GlobalArgs;
use crate::cluster::{Kube, Pin};
use crate::error::{CommandError, ErrorKind};
use crate::render;
use crate::render::Bundle;
use crate::secrets::Secret;
use crate::ui::Printer;
use crate::verify::http::{Auth, Http};
use crate::verify::hub::HubCheck;
use crate::verify::load::Engine;
use crate::verify::{self, CheckId, Context, Endpoints, LoadOptions, Report, report};

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
    let runtime = super::access::runtime()?;
    runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + args.timeout;
        // The marker of each spoke is written in that spoke when its
        // cluster answers, so that its own shipper carries it to the hub.
        let mut spokes = Vec::new();
        for name in names {
            let cluster = match (checks.contains(&HubCheck::Logs), bundles.get(&name)) {
                (true, Some(b)) => Some(
                    reach(global, b)
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

/// A spoke's cluster, through the context and pin of its bundle, when its
/// API server answers within [`API_PROBE`]; else why not.
async fn reach(global: &GlobalArgs, bundle: &Bundle) -> Result<Kube, String> {
    let pin = Pin::of(&bundle.plan.cluster);
    let (target, config) = crate::cluster::target(global.kubeconfig.as_deref(), pin.context)
        .map_err(|e| crate::error::chain(&e))?;
    pin.check(&target).map_err(|e| crate::error::chain(&e))?;
    let kube = super::access::connect(target, config)
        .await
        .map_err(|e| e.message)?;
    match tokio::time::timeout(API_PROBE, kube.client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(kube),
        Ok(Err(e)) => Err(format!(
            "the API server {} did not answer: {e}",
            kube.target.server
        )),
        Err(_) => Err(format!(
            "the API server {} did not answer within {}s",
            kube.target.server,
            API_PROBE.as_secs()
        )),
    }
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

/// Refuses, before any request, a URL verify could not use safely: not
/// http(s), credentials in the URL itself, or plain http to another host
/// while credentials are to be sent (unless `allow_insecure`). The message
/// names the flag, never the URL (it may carry a password).
pub(crate) fn check_url(
    flag: &str,
    url: &str,
    credentials: bool,
    allow_insecure: bool,
) -> Result<(), CommandError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| CommandError::bad_input(format!("{flag}: not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(CommandError::bad_input(format!(
            "{flag}: the scheme must be http or https, not `{}`",
            parsed.scheme()
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(CommandError::bad_input(format!(
            "{flag} carries credentials (user:password@): pass them with --basic-auth-env instead"
        ))
        .with_hint("the URL is not repeated here, since it holds a password"));
    }
    if credentials && !allow_insecure && insecure(&parsed) {
        return Err(CommandError::bad_input(format!(
            "{flag} is plain http to {}: the credentials would travel unencrypted",
            parsed.host_str().unwrap_or_default()
        ))
        .with_hint(
            "use https, a port-forward to 127.0.0.1, or pass --allow-insecure-credentials",
        ));
    }
    Ok(())
}

/// Plain http to a host other than this machine.
pub fn insecure(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    url.scheme() == "http" && !loopback
}

fn secret_env(var: &str) -> Result<Secret, CommandError> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Secret::new)
        .ok_or_else(|| CommandError::bad_input(format!("environment variable {var} is not set")))
}

/// What a verify run needs besides the bundle: `verify`'s flags, or
/// `up`'s defaults when it verifies what it installed.
pub struct Options {
    pub checks: Vec<CheckId>,
    pub endpoints: Endpoints,
    pub auth: Auth,
    /// Whether credentials were given: without them Grafana's admin
    /// credentials are read from the cluster.
    pub explicit_auth: bool,
    /// Credentials may go over plain http to another host.
    pub allow_insecure: bool,
    pub timeout: Duration,
    pub load: LoadOptions,
}

impl Options {
    /// The checks plan.json's verify step lists, with no URLs (port-forward).
    pub fn for_up(bundle: &Bundle) -> Options {
        Options {
            checks: verify::declared(bundle),
            endpoints: Endpoints::default(),
            auth: Auth::None,
            explicit_auth: false,
            allow_insecure: false,
            timeout: Duration::from_secs(60),
            load: LoadOptions::default(),
        }
    }
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
    let runtime = super::access::runtime()?;
    let report = runtime.block_on(async {
        let pin = super::access::pin_of(Some(&bundle));
        // The load's HPA is read from the cluster whatever the engine.
        let load_hpa = bundle
            .plan
            .expectations
            .load
            .as_ref()
            .is_some_and(|l| l.hpa.is_some());
        let kube = match connect_if_needed(global, &pin, &options, load_hpa).await {
            Reach::Connected(kube) => Some(kube),
            Reach::NotNeeded => None,
            Reach::Refused(e) => return Err(e),
            Reach::Unreachable(why) => {
                let e = &options.endpoints;
                if e.prometheus.is_none()
                    && e.alertmanager.is_none()
                    && e.grafana.is_none()
                    && e.loki.is_none()
                {
                    return Err(CommandError::environment(format!(
                        "nothing to verify against: no cluster reachable ({why}) and no URL given"
                    ))
                    .with_hint(
                        "point --kubeconfig/--context at the cluster, or pass --prometheus-url, \
                         --alertmanager-url, --grafana-url and --loki-url",
                    ));
                }
                printer.warn(&format!(
                    "no cluster reachable ({why}): the checks that need it are skipped"
                ));
                None
            }
        };
        execute(&bundle, options, kube, printer).await
    })?;
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
    report_to_result(&report)
}

/// Exit 1 naming the failed checks; exit 3 when no check could run.
pub fn report_to_result(report: &Report) -> Result<(), CommandError> {
    if report.ok {
        return Ok(());
    }
    if verify::proved_nothing(&report.checks) {
        let skipped: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| c.summary.starts_with(verify::COULD_NOT_RUN))
            .map(|c| c.id.name())
            .collect();
        return Err(CommandError::environment(format!(
            "nothing was verified: {} could not run here",
            skipped.join(", ")
        )));
    }
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.status == verify::Status::Fail)
        .map(|c| c.id.name())
        .collect();
    Err(CommandError::new(
        ErrorKind::Failed,
        format!("verification failed: {}", failed.join(", ")),
    ))
}

enum Reach {
    Connected(Kube),
    NotNeeded,
    /// Why not, in a few words.
    Unreachable(String),
    /// The kubeconfig points at another cluster than the config pins: no
    /// request is made, and verify stops (proof from the wrong cluster is
    /// worse than none).
    Refused(CommandError),
}

/// How long verify waits for the API server's first answer.
const API_PROBE: Duration = Duration::from_secs(5);

/// The cluster, when a selected check or a missing URL needs it, and only
/// when its API server answers (a kubeconfig alone proves nothing).
async fn connect_if_needed(
    global: &GlobalArgs,
    pin: &Pin<'_>,
    options: &Options,
    load_hpa: bool,
) -> Reach {
    let e = &options.endpoints;
    let wants = options.checks.iter().any(|c| {
        matches!(c, CheckId::Logs | CheckId::Autoscaling)
            || (*c == CheckId::Load && (options.load.engine == Engine::K6 || load_hpa))
    }) || (e.prometheus.is_none()
        || e.alertmanager.is_none()
        || e.grafana.is_none()
        || e.loki.is_none())
        && !options.checks.is_empty();
    if !wants {
        return Reach::NotNeeded;
    }
    let connected = match super::access::target_for_read(global) {
        Ok(_) => match super::access::target_pinned(global, pin) {
            Ok((target, config)) => super::access::connect(target, config).await,
            Err(e) => return Reach::Refused(e),
        },
        Err(e) => Err(e),
    };
    let kube = match connected {
        Ok(kube) => kube,
        Err(e) => return Reach::Unreachable(e.message),
    };
    let probe = API_PROBE.min(options.timeout);
    match tokio::time::timeout(probe, kube.client.apiserver_version()).await {
        Ok(Ok(_)) => Reach::Connected(kube),
        Ok(Err(e)) => Reach::Unreachable(format!(
            "the API server {} did not answer: {e}",
            kube.target.server
        )),
        Err(_) => Reach::Unreachable(format!(
            "the API server {} did not answer within {}s",
            kube.target.server,
            probe.as_secs()
        )),
    }
}

/// Runs the checks: port-forwards to what has no URL, reads Grafana's admin
/// credentials when none were given, and collects the report.
pub async fn execute(
    bundle: &Bundle,
    options: Options,
    kube: Option<Kube>,
    printer: &Printer,
) -> Result<Report, CommandError> {
    // The clock starts before the port-forwards: they count against --timeout.
    let deadline = tokio::time::Instant::now() + options.timeout;
    let http = Http::new(options.auth.clone())
        .map_err(|e| CommandError::environment(e.to_string()))?
        .with_deadline(deadline + verify::REQUEST_GRACE);
    let mut endpoints = options.endpoints.clone();
    if let Some(kube) = &kube {
        forward_missing(
            kube,
            printer,
            &bundle.plan.namespace,
            &options.checks,
            &mut endpoints,
        )
        .await;
    }
    let grafana_insecure = endpoints
        .grafana
        .as_deref()
        .and_then(|u| reqwest::Url::parse(u).ok())
        .is_some_and(|u| insecure(&u));
    let grafana = match (&kube, options.explicit_auth) {
        (Some(kube), false) if options.checks.contains(&CheckId::Dashboards) => {
            if grafana_insecure && !options.allow_insecure {
                printer.warn(
                    "--grafana-url is plain http to another host: Grafana's admin credentials \
                     are not sent (use https or a port-forward, or pass --allow-insecure-credentials)",
                );
                http.clone()
            } else {
                match grafana_admin(kube, &bundle.plan.namespace).await {
                    Some(auth) => http.with_credentials(auth),
                    None => http.clone(),
                }
            }
        }
        _ => http.clone(),
    };
    let ctx = Context {
        bundle,
        http,
        endpoints,
        timeout: options.timeout,
        deadline,
        run_id: verify::run_id(),
        kube,
        grafana,
        load: options.load,
        synthetic_labels: Default::default(),
    };
    printer.status(&format!(
        "verifying {} check(s) for profile {} (run {})",
        options.checks.len(),
        bundle.plan.profile,
        ctx.run_id
    ));
    let line = crate::ui::progress::WaitLine::new(printer);
    Ok(verify::run(&ctx, &options.checks, &line).await)
}

/// Grafana's admin credentials from the Secret `up` generated.
async fn grafana_admin(kube: &Kube, namespace: &str) -> Option<Auth> {
    use k8s_openapi::api::core::v1::Secret as KubeSecret;
    let api: kube::Api<KubeSecret> = kube::Api::namespaced(kube.client.clone(), namespace);
    let secret = api
        .get_opt(crate::render::GRAFANA_ADMIN_SECRET)
        .await
        .ok()??;
    let data = secret.data?;
    let text = |key: &str| {
        data.get(key)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    Some(Auth::Basic {
        user: text("admin-user")?,
        password: Secret::new(text("admin-password")?),
    })
}

/// Port-forwards (like `kubectl port-forward svc/…`) to every service a
/// selected check needs and no URL was given for. Failing that, the check
/// itself fails and says which flag to pass.
async fn forward_missing(
    kube: &Kube,
    printer: &Printer,
    namespace: &str,
    checks: &[CheckId],
    endpoints: &mut Endpoints,
) {
    let needs = |ids: &[CheckId]| checks.iter().any(|c| ids.contains(c));
    let wanted: Vec<(&mut Option<String>, &str, &str)> = [
        (
            &mut endpoints.prometheus,
            needs(&[CheckId::Targets, CheckId::Rules, CheckId::Load]),
            "Prometheus",
            "-prometheus",
        ),
        (
            &mut endpoints.alertmanager,
            needs(&[CheckId::Alertmanager, CheckId::Notifications]),
            "Alertmanager",
            "-alertmanager",
        ),
        (
            &mut endpoints.grafana,
            needs(&[CheckId::Dashboards]),
            "Grafana",
            "-grafana",
        ),
        (
            &mut endpoints.loki,
            needs(&[CheckId::Logs]),
            "Loki",
            "-loki",
        ),
    ]
    .into_iter()
    .filter(|(url, needed, _, _)| url.is_none() && *needed)
    .map(|(url, _, what, suffix)| (url, what, suffix))
    .collect();
    if wanted.is_empty() {
        return;
    }
    for (url, what, suffix) in wanted {
        let forwarded = async {
            let service =
                crate::cluster::portforward::find_service(kube, namespace, what, suffix).await?;
            crate::cluster::portforward::forward(kube, namespace, &service).await
        }
        .await;
        match forwarded {
            Ok(local) => {
                printer.status(&format!("{what}: port-forwarded to {local}"));
                *url = Some(local);
            }
            Err(e) => printer.warn(&format!("{what}: cannot port-forward: {e}")),
        }
    }
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
