//! `telltale verify`: prove the stack live.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::GlobalArgs;
use crate::error::{CommandError, ErrorKind};
use crate::render;
use crate::secrets::Secret;
use crate::ui::Printer;
use crate::verify::http::{Auth, Http};
use crate::verify::{self, CheckId, Context, Endpoints, report};

/// Prove the stack works: targets up, rules loaded and evaluating,
/// Alertmanager ready with every tier receiver, and a synthetic alert
/// delivered through every integration of every receiver. What to expect
/// comes from the bundle's plan.json (same profile and config as `up`).
/// Exits 1 when any check fails.
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
}

fn secret_env(var: &str) -> Result<Secret, CommandError> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Secret::new)
        .ok_or_else(|| CommandError::bad_input(format!("environment variable {var} is not set")))
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
    let runtime = super::access::runtime()?;
    let report = runtime.block_on(async {
        let http = Http::new(auth).map_err(|e| CommandError::environment(e.to_string()))?;
        let mut endpoints = Endpoints {
            prometheus: args.prometheus_url.clone(),
            alertmanager: args.alertmanager_url.clone(),
            grafana: args.grafana_url.clone(),
            loki: args.loki_url.clone(),
        };
        forward_missing(
            global,
            printer,
            &bundle.plan.namespace,
            &checks,
            &mut endpoints,
        )
        .await;
        let ctx = Context {
            bundle: &bundle,
            http,
            endpoints,
            timeout: args.timeout,
            run_id: verify::run_id(),
        };
        printer.status(&format!(
            "verifying {} check(s) for profile {} (run {})",
            checks.len(),
            bundle.plan.profile,
            ctx.run_id
        ));
        Ok::<_, CommandError>(verify::run(&ctx, &checks).await)
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
    if report.ok {
        Ok(())
    } else {
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
}

/// Port-forwards (like `kubectl port-forward svc/…`) to every service a
/// selected check needs and no URL was given for. Failing that, the check
/// itself fails and says which flag to pass.
async fn forward_missing(
    global: &GlobalArgs,
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
    let kube = match super::access::target_for_read(global) {
        Ok((target, config)) => match super::access::connect(target, config).await {
            Ok(kube) => kube,
            Err(e) => {
                printer.warn(&format!(
                    "no URLs given and no cluster to port-forward to: {}",
                    e.message
                ));
                return;
            }
        },
        Err(e) => {
            printer.warn(&format!(
                "no URLs given and no cluster to port-forward to: {}",
                e.message
            ));
            return;
        }
    };
    for (url, what, suffix) in wanted {
        let forwarded = async {
            let service =
                crate::cluster::portforward::find_service(&kube, namespace, what, suffix).await?;
            crate::cluster::portforward::forward(&kube, namespace, &service).await
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
