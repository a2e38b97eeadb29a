//! `telltale verify`: prove the stack live.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::GlobalArgs;
use crate::error::CommandError;
use crate::render;
use crate::secrets::Secret;
use crate::ui::Printer;
use crate::ui::reporter::Terminal;
use crate::verify::http::Auth;
use crate::verify::hub::HubCheck;
use crate::verify::load::Engine;
use crate::verify::on_cluster::{self, Options};
use crate::verify::urls::check_url;
use crate::verify::{self, CheckId, Endpoints, LoadOptions, report};

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
    #[arg(long, value_name = "N", default_value = "4", value_parser = crate::fleet::parse_parallel)]
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

/// The credentials `--bearer-token-env` or `--basic-auth-env` name.
pub fn auth_of(args: &VerifyArgs) -> Result<Auth, CommandError> {
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
        global.refuse_single_cluster_flags(&[
            ("--prometheus-url", args.prometheus_url.is_some()),
            ("--alertmanager-url", args.alertmanager_url.is_some()),
            ("--grafana-url", args.grafana_url.is_some()),
            ("--loki-url", args.loki_url.is_some()),
            ("--load-url", args.load_url.is_some()),
            ("--junit", args.junit.is_some()),
        ])?;
        let request = crate::fleet::verify::FleetVerify {
            bundle: args.bundle.clone(),
            credentials: args.bearer_token_env.is_some() || args.basic_auth_env.is_some(),
            allow_insecure_credentials: args.allow_insecure_credentials,
            parallel: args.parallel,
            hub_checks: args.hub_checks.clone(),
            timeout: args.timeout,
        };
        let (runs, hub) = crate::fleet::verify::run(
            &fleet,
            &request,
            &global.fleet_inputs(),
            &Terminal::new(printer),
            &|| auth_of(&args),
        )?;
        let (report, result) = crate::fleet::outcome(&fleet, "verify", &runs, hub.as_ref());
        crate::ui::fleet::print_report(printer, &report);
        return result;
    }
    let bundle = match &args.bundle {
        // A fleet's member reads its own directory of the fleet's output.
        Some(dir) => match global
            .fleet_member
            .as_deref()
            .and_then(|m| crate::fleet::plan::member_dir(dir, m))
        {
            Some(member) => crate::planning::read_bundle(&member)?,
            None => crate::planning::read_bundle(dir)?,
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
        printer.out(&crate::ui::verify::text(&report, printer.verbose > 0));
    }
    on_cluster::report_to_result(&report)
}
