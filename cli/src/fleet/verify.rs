//! `verify` of a fleet: every selected cluster's verify as its own process
//! (see [`super::fan_out`]), then, with `--hub-check`, the hub's checks of
//! the central stores for every spoke. The command prints the fleet report
//! ([`super::outcome`]).

use std::collections::{BTreeMap, BTreeSet};

use super::{Fleet, Inputs, MemberRun};
use crate::error::CommandError;
use crate::render::{self, Bundle};
use crate::report::Reporter;
use crate::verify::http::{Auth, Http};
use crate::verify::hub::{HubCheck, HubReport};
use crate::verify::on_cluster;
use crate::verify::urls::check_url;
use crate::verify::{self, Context, Endpoints, LoadOptions};

/// What `verify` asks of a fleet (its flags that apply to every cluster).
pub struct FleetVerify {
    /// `--bundle`: the fleet's `plan --out` directory.
    pub bundle: Option<std::path::PathBuf>,
    /// Whether credentials are sent (`--bearer-token-env`, `--basic-auth-env`).
    pub credentials: bool,
    pub allow_insecure_credentials: bool,
    pub parallel: usize,
    pub hub_checks: Vec<HubCheck>,
    pub timeout: std::time::Duration,
}

/// Every cluster of the fleet, each against its own context (port-forwards)
/// or the endpoints its entry names, `--parallel` at a time.
pub fn run(
    fleet: &Fleet,
    args: &FleetVerify,
    inputs: &Inputs<'_>,
    reporter: &dyn Reporter,
    auth_of: &dyn Fn() -> Result<Auth, CommandError>,
) -> Result<(Vec<MemberRun>, Option<HubReport>), CommandError> {
    // Every selected cluster's bundle, read or rendered before anything
    // runs; the hub's checks use them too.
    let mut bundles: BTreeMap<String, Bundle> = BTreeMap::new();
    match &args.bundle {
        Some(dir) => {
            for cluster in fleet.members() {
                let member = super::plan::member_dir(dir, &cluster.name).ok_or_else(|| {
                    CommandError::bad_input(format!(
                        "--bundle {}: not a fleet's output (no fleet.json); `telltale plan` with the Fleet config writes one",
                        dir.display()
                    ))
                })?;
                let bundle = crate::planning::read_bundle(&member)
                    .map_err(|e| super::plan::in_cluster(&cluster.name, e))?;
                bundles.insert(cluster.name.clone(), bundle);
            }
        }
        None => {
            let rendered = super::plan::render_all(fleet, &inputs.catalog()?, inputs)?;
            for (cluster, bundle) in fleet.members().zip(rendered) {
                bundles.insert(cluster.name.clone(), bundle);
            }
        }
    }
    // The endpoints are checked like the flags they become.
    let credentials = args.credentials;
    for cluster in fleet.members() {
        for (flag, url) in endpoint_flags(cluster) {
            check_url(&flag, &url, credentials, args.allow_insecure_credentials)
                .map_err(|e| super::plan::in_cluster(&cluster.name, e))?;
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
    let runs = super::fan_out(
        fleet,
        args.parallel,
        reporter,
        &|c| {
            endpoint_flags(c)
                .into_iter()
                .flat_map(|(flag, url)| [flag.into(), url.into()])
                .collect()
        },
        &super::summarise_verify,
    )?;
    let hub = match &fleet.doc.spec.hub {
        Some(hub) if !args.hub_checks.is_empty() => Some(verify_hub(
            fleet, hub, &bundles, args, inputs, reporter, auth_of,
        )?),
        _ => None,
    };
    Ok((runs, hub))
}

/// The hub's part of a fleet verify: its bundle (the fleet-wide rules and
/// the central routing), its central endpoints (`spec.hub.endpoints` over
/// the hub cluster's own), every other selected cluster as a spoke.
fn verify_hub(
    fleet: &Fleet,
    hub: &crate::model::fleet::Hub,
    bundles: &BTreeMap<String, Bundle>,
    args: &FleetVerify,
    inputs: &Inputs<'_>,
    reporter: &dyn Reporter,
    auth_of: &dyn Fn() -> Result<Auth, CommandError>,
) -> Result<HubReport, CommandError> {
    let (_, cluster) = fleet
        .doc
        .member(&hub.cluster)
        .map_err(CommandError::bad_input)?;
    let bundle = match &args.bundle {
        // The hub was selected: its bundle is already here.
        _ if bundles.contains_key(&cluster.name) => bundles[&cluster.name].clone(),
        Some(dir) => {
            let member = super::plan::member_dir(dir, &cluster.name)
                .unwrap_or_else(|| dir.join(&cluster.name));
            crate::planning::read_bundle(&member)
                .map_err(|e| super::plan::in_cluster(&cluster.name, e))?
        }
        None => render::render(&inputs.catalog()?, &fleet.request(inputs, cluster))
            .map_err(|e| super::plan::in_cluster(&cluster.name, e.into()))?,
    };
    let own = cluster.endpoints.clone().unwrap_or_default();
    let central = hub.endpoints.clone().unwrap_or_default();
    let endpoints = Endpoints {
        prometheus: central.prometheus.or(own.prometheus),
        alertmanager: central.alertmanager.or(own.alertmanager),
        grafana: central.grafana.or(own.grafana),
        loki: central.loki.or(own.loki),
    };
    let auth = auth_of()?;
    let names: Vec<String> = fleet
        .members()
        .filter(|c| c.name != hub.cluster)
        .map(|c| c.name.clone())
        .collect();
    let mut checks = args.hub_checks.clone();
    checks.sort();
    checks.dedup();
    reporter.status(&format!(
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
                    on_cluster::reach(inputs.at.kubeconfig.as_deref(), b)
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
