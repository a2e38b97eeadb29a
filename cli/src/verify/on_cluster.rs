//! verify's use case on a cluster: reach the cluster when a check or a
//! missing URL needs it (and only when its API server answers), port-forward
//! to what has no URL, read Grafana's admin credentials, and run the checks.
//! Progress and warnings go through the [`Reporter`]; the report is
//! returned for the command to print.

use std::path::Path;
use std::time::Duration;

use super::http::{Auth, Http};
use super::load::Engine;
use super::urls::insecure;
use super::{CheckId, Context, Endpoints, LoadOptions, Report};
use crate::cluster::{Kube, Pin};
use crate::error::{CommandError, ErrorKind};
use crate::render::Bundle;
use crate::report::Reporter;
use crate::secrets::Secret;
use crate::session::{self, Where};
use crate::verify;

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

/// `verify`'s use case: reaches the cluster when it is needed (refused when
/// it is not the bundle's pinned one; skipped with a warning when it does
/// not answer and URLs were given), then runs the checks.
pub async fn run_on_cluster(
    bundle: &Bundle,
    options: Options,
    at: &Where,
    reporter: &dyn Reporter,
) -> Result<Report, CommandError> {
    // The load's HPA is read from the cluster whatever the engine.
    let load_hpa = bundle
        .plan
        .expectations
        .load
        .as_ref()
        .is_some_and(|l| l.hpa.is_some());
    let kube = match connect_if_needed(at, bundle, &options, load_hpa).await {
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
            reporter.warn(&format!(
                "no cluster reachable ({why}): the checks that need it are skipped"
            ));
            None
        }
    };
    execute(bundle, options, kube, reporter).await
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
    at: &Where,
    bundle: &Bundle,
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
    let connected = match session::choose(at, None) {
        Ok(_) => match session::choose(at, Some(bundle)) {
            Ok(chosen) => chosen.connect().await,
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
    reporter: &dyn Reporter,
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
            reporter,
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
                reporter.warn(
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
    reporter.status(&format!(
        "verifying {} check(s) for profile {} (run {})",
        options.checks.len(),
        bundle.plan.profile,
        ctx.run_id
    ));
    Ok(verify::run(&ctx, &options.checks, reporter).await)
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
    reporter: &dyn Reporter,
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
                reporter.status(&format!("{what}: port-forwarded to {local}"));
                *url = Some(local);
            }
            Err(e) => reporter.warn(&format!("{what}: cannot port-forward: {e}")),
        }
    }
}

/// A spoke's cluster, through the context and pin of its bundle, when its
/// API server answers within [`API_PROBE`]; else why not.
pub async fn reach(kubeconfig: Option<&Path>, bundle: &Bundle) -> Result<Kube, String> {
    let pin = Pin::of(&bundle.plan.cluster);
    let (target, config) =
        crate::cluster::target(kubeconfig, pin.context).map_err(|e| crate::error::chain(&e))?;
    pin.check(&target).map_err(|e| crate::error::chain(&e))?;
    let kube = crate::cluster::connect(target, config)
        .await
        .map_err(|e| CommandError::from(e).message)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::recording::Recording;

    fn kind_bundle() -> Bundle {
        let catalog = crate::catalog::Catalog::load(&[]).unwrap();
        let request = crate::render::Request {
            profile: Some("kind".into()),
            ..Default::default()
        };
        crate::render::render(&catalog, &request).unwrap()
    }

    /// No cluster (a kubeconfig that is not there) and a URL given: the
    /// use case warns through the reporter, runs the check against the URL
    /// and returns the report; it prints nothing itself.
    #[test]
    fn an_unreachable_cluster_is_a_warning_through_the_reporter_when_urls_are_given() {
        let bundle = kind_bundle();
        let dir = tempfile::tempdir().unwrap();
        let at = Where {
            kubeconfig: Some(dir.path().join("no-such-kubeconfig")),
            ..Default::default()
        };
        let options = Options {
            checks: vec![CheckId::Targets],
            endpoints: Endpoints {
                // Nothing listens on port 9 here: the check fails fast.
                prometheus: Some("http://127.0.0.1:9".into()),
                ..Default::default()
            },
            timeout: Duration::from_secs(3),
            ..Options::for_up(&bundle)
        };
        let reporter = Recording::default();
        let report = session::runtime()
            .unwrap()
            .block_on(run_on_cluster(&bundle, options, &at, &reporter))
            .unwrap();
        assert!(!report.ok);
        assert_eq!(report.checks.len(), 1);
        let said = reporter.said();
        assert!(
            said[0].starts_with("warn: no cluster reachable ("),
            "{said:#?}"
        );
        assert!(
            said[1].starts_with("status: verifying 1 check(s) for profile kind"),
            "{said:#?}"
        );
        assert_eq!(said.last().map(String::as_str), Some("checks finished"));
    }
}
