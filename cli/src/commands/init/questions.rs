//! The questions in the order the issue lists them, each answered by its
//! flag, a prompt or its default.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::InitArgs;
use super::answering::{Answering, Fallback, bad, check, non_empty};
use super::flags::Flags;
use super::receivers::ask_receivers;
use crate::catalog::Catalog;
use crate::commands::GlobalArgs;
use crate::error::CommandError;
use crate::init::{self, Answers, GitOpsAnswer, Layout, SloAnswer};
use crate::model::Source;
use crate::model::alerting::Integration;
use crate::model::plugin::Setting;
use crate::model::receiver_layer::ReceiversLayer;
use crate::render::resolve::DEFAULT_NAMESPACE;
use crate::render::{self, Request, resolve};
use crate::session::ContextEntry;
use crate::ui::prompt;

/// What the profile brings, to pre-tick plugins and offer its sizes as defaults.
pub(super) struct ProfileFacts {
    description: String,
    plugins: BTreeSet<String>,
    retention: Option<String>,
    storage: Option<String>,
    /// Its receivers as declared, complete or not: shown ticked.
    receivers: ReceiversLayer,
}

pub(super) fn profile_facts(
    catalog: &Catalog,
    profile: &str,
) -> Result<ProfileFacts, CommandError> {
    let resolved = resolve(
        catalog,
        &Request {
            profile: Some(profile.to_string()),
            ..Request::default()
        },
    )?;
    // The profile's value of a setting: where the first enabled plugin
    // declaring it keeps it (plugin.yaml `spec.settings`).
    let current = |setting: Setting| {
        resolved.plugins.iter().find_map(|p| {
            let path = p.entry.plugin.spec.settings.path(setting)?;
            path.split('.')
                .try_fold(&p.values, |v, key| v.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    };
    Ok(ProfileFacts {
        description: resolved.profile_description.clone(),
        plugins: resolved
            .plugins
            .iter()
            .map(|p| p.name().to_string())
            .collect(),
        receivers: resolved.declared_receivers.clone(),
        retention: current(Setting::Retention),
        storage: current(Setting::Storage),
    })
}

/// Where each enabled plugin declaring `setting` keeps it: (plugin, path).
fn holders(
    catalog: &Catalog,
    enabled: &BTreeSet<String>,
    setting: Setting,
) -> Vec<(String, String)> {
    enabled
        .iter()
        .filter_map(|name| {
            let path = catalog
                .plugins
                .get(name)?
                .plugin
                .spec
                .settings
                .path(setting)?;
            Some((name.clone(), path.to_string()))
        })
        .collect()
}

/// A name safe for metadata.name from a kubeconfig cluster name (which may be an ARN).
pub(super) fn tidy_name(text: &str) -> String {
    let mut out = String::new();
    for c in text.to_ascii_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "telltale".into()
    } else {
        out
    }
}

pub(super) fn ask_all(
    q: &mut Answering,
    args: &InitArgs,
    flags: Flags,
    global: &GlobalArgs,
    catalog: &Catalog,
    contexts: &[ContextEntry],
) -> Result<Answers, CommandError> {
    // Context: picked from the kubeconfig, the current one first.
    let names: Vec<String> = contexts.iter().map(|c| c.name.clone()).collect();
    let context_flag = if names.is_empty() {
        "--context NAME".to_string()
    } else {
        format!("--context NAME (the kubeconfig has: {})", names.join(", "))
    };
    let fallback = match contexts.iter().find(|c| c.current) {
        Some(current) => Fallback::Detected(current.name.clone()),
        None => Fallback::Required,
    };
    let context = q
        .get(flags.context, &context_flag, fallback, |_| {
            if contexts.is_empty() {
                return prompt::text("Kube context `up` will act on", None, false, non_empty);
            }
            let items: Vec<String> = contexts
                .iter()
                .map(|c| {
                    let current = if c.current { ", current" } else { "" };
                    format!("{} (cluster {}{current})", c.name, c.cluster)
                })
                .collect();
            prompt::select("Kube context", &items, 0).map(|i| names[i].clone())
        })?
        .unwrap_or_default();

    // Cluster name: the context's cluster, tidied.
    let cluster = contexts
        .iter()
        .find(|c| c.name == context)
        .map(|c| c.cluster.as_str())
        .filter(|c| !c.is_empty())
        .unwrap_or(&context);
    let cluster_name = q
        .get(
            args.cluster_name.clone(),
            "--cluster-name NAME",
            Fallback::Safe(tidy_name(cluster)),
            |d| prompt::text("Cluster name", d.as_deref(), false, non_empty),
        )?
        .unwrap_or_default();

    // Profile, with each one's description.
    let known = catalog.profile_names();
    let default_profile = init::default_profile(Some(&context), &known);
    let profile = q
        .get(
            flags.profile,
            &format!("--profile NAME (one of: {})", known.join(", ")),
            Fallback::Detected(default_profile.clone()),
            |d| {
                let items: Vec<String> = known
                    .iter()
                    .map(|name| {
                        let description = catalog
                            .profiles
                            .get(name)
                            .and_then(|e| e.profile.metadata.description.clone())
                            .unwrap_or_default();
                        format!("{name:<14} {description}")
                    })
                    .collect();
                let default = d
                    .and_then(|d| known.iter().position(|k| *k == d))
                    .unwrap_or(0);
                prompt::select("Profile", &items, default).map(|i| known[i].clone())
            },
        )?
        .unwrap_or(default_profile);
    let facts = profile_facts(catalog, &profile)?;

    // Plugins: every one in the catalogue, the profile's pre-ticked.
    let given: Option<BTreeMap<String, bool>> =
        (!args.plugins.is_empty() || !args.no_plugins.is_empty()).then(|| {
            args.plugins
                .iter()
                .map(|p| (p.clone(), true))
                .chain(args.no_plugins.iter().map(|p| (p.clone(), false)))
                .collect()
        });
    let chosen = q
        .get(
            given,
            "--plugin NAME",
            Fallback::Safe(BTreeMap::new()),
            |_| ask_plugins(catalog, &profile, &facts.plugins),
        )?
        .unwrap_or_default();
    // Only what differs from the profile is written.
    let plugins = changes(&facts.plugins, chosen);
    // The plugins enabled after the choice, and which of them keep the
    // retention and volume size init asks about.
    let mut enabled = facts.plugins.clone();
    for (name, on) in &plugins {
        if *on {
            enabled.insert(name.clone());
        } else {
            enabled.remove(name);
        }
    }
    let retention_at = holders(catalog, &enabled, Setting::Retention);
    let storage_at = holders(catalog, &enabled, Setting::Storage);

    // The enabled plugin that texts the SMS webhook, named in the picker
    // and the config's comment (plugin data: plugin.yaml spec.bridge).
    let sms_bridge = catalog
        .plugins
        .iter()
        .filter(|(name, _)| enabled.contains(*name))
        .find(|(_, entry)| entry.plugin.bridge_for(Integration::Sms).is_some())
        .map(|(name, _)| name.clone());
    let receivers = ask_receivers(
        q,
        args,
        flags.receivers,
        &facts.receivers,
        sms_bridge.as_deref(),
    )?;

    // One availability SLO, optional.
    let slo_job = q
        .get(
            args.slo_job.clone().map(Some),
            "--slo-job JOB",
            Fallback::Safe(None),
            |_| {
                if !prompt::yes_no("Add an availability SLO for an HTTP service?", false)? {
                    return Ok(None);
                }
                prompt::text(
                    "Prometheus job of the service (its http_requests_total)",
                    None,
                    false,
                    check(init::job_name),
                )
                .map(Some)
            },
        )?
        .flatten();
    let slo = match slo_job {
        None => None,
        Some(job) => {
            let objective = q
                .get(
                    flags.slo_objective,
                    "--slo-objective PERCENT",
                    Fallback::Safe(99.9),
                    |d| {
                        let d = d.map(|d| d.to_string());
                        prompt::text(
                            "Objective in percent",
                            d.as_deref(),
                            false,
                            check(init::objective),
                        )
                        .and_then(|s| init::objective(&s).map_err(bad))
                    },
                )?
                .unwrap_or(99.9);
            let window = q
                .get(
                    args.slo_window.clone(),
                    "--slo-window DURATION",
                    Fallback::Safe("30d".to_string()),
                    |d| prompt::text("SLO window", d.as_deref(), false, check(init::duration)),
                )?
                .unwrap_or_default();
            Some(SloAnswer {
                job,
                objective,
                window,
            })
        }
    };

    // Retention and storage: the profile's values are the defaults; only a change is written.
    let retention = if !retention_at.is_empty() {
        let default = facts.retention.clone().unwrap_or_else(|| "15d".into());
        q.get(
            args.retention.clone(),
            "--retention DURATION",
            Fallback::Safe(default.clone()),
            |d| {
                prompt::text(
                    "Prometheus retention",
                    d.as_deref(),
                    false,
                    check(init::duration),
                )
            },
        )?
        .filter(|r| *r != default)
    } else if args.retention.is_some() {
        return Err(CommandError::bad_input(
            "--retention: no enabled plugin keeps a retention (plugin.yaml spec.settings.retention)",
        )
        .with_hint("enable the plugin that runs Prometheus (--plugin), or drop --retention"));
    } else {
        None
    };
    let storage = match (&facts.storage, !storage_at.is_empty()) {
        (Some(default), true) => q
            .get(
                args.storage.clone(),
                "--storage SIZE",
                Fallback::Safe(default.clone()),
                |d| {
                    prompt::text(
                        "Prometheus volume size",
                        d.as_deref(),
                        false,
                        check(init::storage_size),
                    )
                },
            )?
            .filter(|s| s != default),
        _ if args.storage.is_some() => {
            return Err(CommandError::bad_input(format!(
                "--storage: profile `{profile}` gives Prometheus no volume to size"
            ))
            .with_hint("pick a profile with volumes (homelab, production), or drop --storage"));
        }
        _ => None,
    };

    // GitOps, optional; only repo, path and layout.
    let repo = q
        .get(
            args.gitops_repo.clone().map(Some),
            "--gitops-repo URL",
            Fallback::Safe(None),
            |_| {
                prompt::text(
                    "GitOps repository (URL or path; empty: none)",
                    None,
                    true,
                    non_empty,
                )
                .map(|s| (!s.is_empty()).then_some(s))
            },
        )?
        .flatten();
    let gitops = match repo {
        None => None,
        Some(repo) => {
            let path = q
                .get(
                    args.gitops_path.clone(),
                    "--gitops-path PATH",
                    Fallback::Safe(init::default_gitops_path(&cluster_name)),
                    |d| prompt::text("Path in the repository", d.as_deref(), false, non_empty),
                )?
                .unwrap_or_default();
            let layout = q
                .get(
                    args.gitops_layout,
                    "--gitops-layout LAYOUT",
                    Fallback::Safe(Layout::Flux),
                    |_| {
                        let items: Vec<String> =
                            Layout::ALL.iter().map(|l| l.as_str().to_string()).collect();
                        prompt::select("GitOps layout", &items, 0).map(|i| Layout::ALL[i])
                    },
                )?
                .unwrap_or_default();
            Some(GitOpsAnswer { repo, path, layout })
        }
    };

    Ok(Answers {
        context,
        cluster_name,
        namespace: global
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
        profile,
        profile_description: facts.description,
        plugins,
        receivers,
        slo,
        retention,
        storage,
        settings_at: [
            (Setting::Retention, retention_at),
            (Setting::Storage, storage_at),
        ]
        .into_iter()
        .collect(),
        sms_bridge,
        gitops,
    })
}

/// What differs from the profile's plugins.
fn changes(profile: &BTreeSet<String>, chosen: BTreeMap<String, bool>) -> BTreeMap<String, bool> {
    chosen
        .into_iter()
        .filter(|(name, on)| profile.contains(name) != *on)
        .collect()
}

/// Every plugin in the catalogue, the profile's pre-ticked. A pick that
/// breaks a plugin's requires/conflicts is explained and asked again, so
/// the wizard never ends in a file `plan` refuses.
fn ask_plugins(
    catalog: &Catalog,
    profile: &str,
    profile_plugins: &BTreeSet<String>,
) -> Result<BTreeMap<String, bool>, CommandError> {
    let names: Vec<&str> = catalog.plugins.keys().map(String::as_str).collect();
    let items: Vec<String> = catalog
        .plugins
        .values()
        .map(|e| {
            let old = if e.plugin.spec.deprecated.is_some() {
                " (deprecated)"
            } else {
                ""
            };
            format!("{:<22} {}{old}", e.name(), e.plugin.metadata.description)
        })
        .collect();
    let mut ticked: Vec<bool> = names.iter().map(|n| profile_plugins.contains(*n)).collect();
    loop {
        let picked = prompt::multi_select(
            "Plugins (space toggles, enter accepts)",
            &items,
            &names,
            &ticked,
        )?;
        let chosen: BTreeMap<String, bool> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), picked.contains(&i)))
            .collect();
        match plugins_render(catalog, profile, &changes(profile_plugins, chosen.clone())) {
            Ok(()) => return Ok(chosen),
            Err(e) => {
                prompt::problem(&e.message);
                ticked = names.iter().map(|n| chosen[*n]).collect();
            }
        }
    }
}

/// Whether the profile with these plugin changes renders.
fn plugins_render(
    catalog: &Catalog,
    profile: &str,
    plugins: &BTreeMap<String, bool>,
) -> Result<(), CommandError> {
    let probe = Answers {
        context: "probe".into(),
        cluster_name: "probe".into(),
        namespace: DEFAULT_NAMESPACE.into(),
        profile: profile.into(),
        profile_description: String::new(),
        plugins: plugins.clone(),
        receivers: Default::default(),
        slo: None,
        retention: None,
        storage: None,
        settings_at: BTreeMap::new(),
        sms_bridge: None,
        gitops: None,
    };
    let source = Source::new("telltale.yaml", init::render_config(&probe));
    render::render(
        catalog,
        &Request {
            config: Some(source),
            ..Request::default()
        },
    )
    .map(|_| ())
    .map_err(CommandError::from)
}
