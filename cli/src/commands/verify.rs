//! `telltale verify`: prove the stack live.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::GlobalArgs;
use crate::cluster::Kube;
use crate::error::{CommandError, ErrorKind};
use crate::render;
use crate::render::Bundle;
use crate::secrets::Secret;
use crate::ui::Printer;
use crate::verify::http::{Auth, Http};
use crate::verify::load::Engine;
use crate::verify::{self, CheckId, Context, Endpoints, LoadOptions, Report, report};

/// Prove the stack works: targets up, rules loaded and evaluating,
/// Alertmanager ready with every tier receiver, a synthetic alert delivered
/// through every integration of every receiver, logs from every namespace,
/// every dashboard panel answering, external metrics and HPAs, and a load
/// test that moves the SLO series. What to expect comes from the bundle's
/// plan.json (same profile and config as `up`). Exits 1 when any check fails.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Checks to run (comma-separated) [default: all]
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
    /// Write a JUnit XML report here (for CI)
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// How long a check may wait for the stack to settle
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Where the load check's requests come from: a k6 Job in the cluster,
    /// or telltale's own generator on this machine
    #[arg(long, value_enum, value_name = "ENGINE", default_value = "k6")]
    pub load_engine: Engine,
    /// Send the load here instead of plan.json's URL (e.g. a port-forward)
    #[arg(long, value_name = "URL")]
    pub load_url: Option<String>,
    /// Requests per second instead of plan.json's
    #[arg(long, value_name = "N")]
    pub load_rate: Option<u32>,
    /// How long to load instead of plan.json's
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub load_duration: Option<Duration>,
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
    pub timeout: Duration,
    pub load: LoadOptions,
}

impl Options {
    /// The checks plan.json's verify step lists, with no URLs (port-forward).
    pub fn for_up(bundle: &Bundle) -> Options {
        let checks = bundle
            .plan
            .phases
            .iter()
            .flat_map(|p| &p.steps)
            .filter_map(|s| match s {
                crate::render::plan::Step::Verify { checks } => Some(checks),
                _ => None,
            })
            .flatten()
            .filter_map(|c| CheckId::ALL.into_iter().find(|id| id.name() == c))
            .collect();
        Options {
            checks,
            endpoints: Endpoints::default(),
            auth: Auth::None,
            explicit_auth: false,
            timeout: Duration::from_secs(60),
            load: LoadOptions::default(),
        }
    }
}

pub fn run(args: VerifyArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    let catalog = global.catalog()?;
    let bundle = render::render(&catalog, &global.request()?)?;
    let auth = match (&args.bearer_token_env, &args.basic_auth_env) {
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
    };
    let checks = if args.checks.is_empty() {
        CheckId::ALL.to_vec()
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
        explicit_auth: !matches!(auth, Auth::None),
        auth,
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
        let kube = connect_if_needed(global, printer, &options).await;
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

/// Exit 1 naming the failed checks.
pub fn report_to_result(report: &Report) -> Result<(), CommandError> {
    if report.ok {
        return Ok(());
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

/// The cluster, when a selected check or a missing URL needs it. Without
/// one, the checks that need it fail and say so.
async fn connect_if_needed(
    global: &GlobalArgs,
    printer: &Printer,
    options: &Options,
) -> Option<Kube> {
    let e = &options.endpoints;
    let wants = options.checks.iter().any(|c| {
        matches!(c, CheckId::Logs | CheckId::Autoscaling)
            || (*c == CheckId::Load && options.load.engine == Engine::K6)
    }) || (e.prometheus.is_none()
        || e.alertmanager.is_none()
        || e.grafana.is_none()
        || e.loki.is_none())
        && !options.checks.is_empty();
    if !wants {
        return None;
    }
    let connected = match super::access::target_for_read(global) {
        Ok((target, config)) => super::access::connect(target, config).await,
        Err(e) => Err(e),
    };
    match connected {
        Ok(kube) => Some(kube),
        Err(e) => {
            printer.warn(&format!("no cluster reachable: {}", e.message));
            None
        }
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
    let http =
        Http::new(options.auth.clone()).map_err(|e| CommandError::environment(e.to_string()))?;
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
    let grafana = match (&kube, options.explicit_auth) {
        (Some(kube), false) if options.checks.contains(&CheckId::Dashboards) => {
            match grafana_admin(kube, &bundle.plan.namespace).await {
                Some(auth) => http.with_credentials(auth),
                None => http.clone(),
            }
        }
        _ => http.clone(),
    };
    let ctx = Context {
        bundle,
        http,
        endpoints,
        timeout: options.timeout,
        run_id: verify::run_id(),
        kube,
        grafana,
        load: options.load,
    };
    printer.status(&format!(
        "verifying {} check(s) for profile {} (run {})",
        options.checks.len(),
        bundle.plan.profile,
        ctx.run_id
    ));
    Ok(verify::run(&ctx, &options.checks).await)
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
