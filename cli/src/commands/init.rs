//! `telltale init`: the setup wizard, and the same answers as flags for CI.
//!
//! Every question is answered, in this order, by its flag, by a prompt (a
//! terminal and no --yes), or by its default (--yes, or no terminal when the
//! default is safe). The answers go into one [`Answers`] and
//! [`render_config`] makes the file, so typed and flag answers give the
//! same bytes. The file is rendered once through the real resolver before
//! it is written, so `plan` accepts what `init` writes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use super::GlobalArgs;
use crate::catalog::Catalog;
use crate::cluster::ContextEntry;
use crate::error::CommandError;
use crate::init::{
    self, Answers, EmailFields, GitOpsAnswer, InitError, Layout, ReceiverAnswers, ReceiverKind,
    SloAnswer, render_config,
};
use crate::model::Source;
use crate::model::suggest::did_you_mean;
use crate::render::resolve::DEFAULT_NAMESPACE;
use crate::render::{self, Request, resolve};
use crate::secrets::SecretSource;
use crate::ui::{Printer, prompt};

/// Write telltale.yaml: ask for the kube context, cluster name, profile,
/// extra plugins, notification receivers and where each secret comes from,
/// an SLO, retention and storage, and a GitOps repository. Enter at every
/// prompt gives a config `plan` accepts.
///
/// Every question has a flag. With --yes, or without a terminal, nothing is
/// asked: without a terminal --context and --profile are required (--yes
/// takes the current context and the default profile). The global --context,
/// --profile, -n and -f (the file to write, default ./telltale.yaml) apply.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Cluster name (metadata.name and spec.cluster.name) [default: the context's cluster]
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// Enable a plugin beyond the profile's (repeatable)
    #[arg(long = "plugin", value_name = "NAME")]
    pub plugins: Vec<String>,
    /// Drop one of the profile's plugins (repeatable)
    #[arg(long = "no-plugin", value_name = "NAME")]
    pub no_plugins: Vec<String>,
    /// Notify through KIND (slack, pagerduty, email, sms) with its secret from
    /// SOURCE: env:VAR, file:PATH, secretRef:NAME/KEY or prompt (asked at `up`)
    /// [default SOURCE: env:SLACK_WEBHOOK_URL, env:PAGERDUTY_ROUTING_KEY,
    /// env:SMTP_PASSWORD, env:TWILIO_AUTH_TOKEN] (repeatable)
    #[arg(long = "receiver", value_name = "KIND[=SOURCE]")]
    pub receivers: Vec<String>,
    /// Slack channel [default: #alerts]
    #[arg(long, value_name = "CHANNEL")]
    pub slack_channel: Option<String>,
    /// Email recipient (required with --receiver email)
    #[arg(long, value_name = "ADDR")]
    pub email_to: Option<String>,
    /// Email sender (required with --receiver email)
    #[arg(long, value_name = "ADDR")]
    pub email_from: Option<String>,
    /// SMTP server as host:port (required with --receiver email)
    #[arg(long, value_name = "HOST:PORT")]
    pub email_smarthost: Option<String>,
    /// SMTP user name; its password is the email receiver's SOURCE
    #[arg(long, value_name = "USER")]
    pub email_username: Option<String>,
    /// SMS recipients, comma-separated (required with --receiver sms)
    #[arg(long, value_name = "NUMBERS", value_delimiter = ',')]
    pub sms_to: Vec<String>,
    /// Twilio account SID (required with --receiver sms)
    #[arg(long, value_name = "SID")]
    pub twilio_account_sid: Option<String>,
    /// Twilio sender number (required with --receiver sms)
    #[arg(long, value_name = "NUMBER")]
    pub twilio_from: Option<String>,
    /// Add an availability SLO on this Prometheus job's http_requests_total
    #[arg(long, value_name = "JOB")]
    pub slo_job: Option<String>,
    /// SLO objective in percent [default: 99.9]
    #[arg(long, value_name = "PERCENT", requires = "slo_job")]
    pub slo_objective: Option<String>,
    /// SLO window [default: 30d]
    #[arg(long, value_name = "DURATION", requires = "slo_job")]
    pub slo_window: Option<String>,
    /// Prometheus retention [default: the profile's]
    #[arg(long, value_name = "DURATION")]
    pub retention: Option<String>,
    /// Prometheus volume size [default: the profile's]
    #[arg(long, value_name = "SIZE")]
    pub storage: Option<String>,
    /// GitOps repository (URL or path) for `telltale gitops` [default: none]
    #[arg(long, value_name = "URL")]
    pub gitops_repo: Option<String>,
    /// Path in the GitOps repository [default: clusters/<cluster-name>/observability]
    #[arg(long, value_name = "PATH", requires = "gitops_repo")]
    pub gitops_path: Option<String>,
    /// GitOps layout [default: flux]
    #[arg(long, value_enum, value_name = "LAYOUT", requires = "gitops_repo")]
    pub gitops_layout: Option<Layout>,
    /// Overwrite an existing file without asking
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A terminal and no --yes: prompt.
    Ask,
    /// --yes: take every default, detected ones included.
    Defaults,
    /// No terminal and no --yes: take safe defaults, refuse to guess the rest.
    Refuse,
}

/// What an unasked question falls back to.
enum Fallback<T> {
    /// Taken whenever the question is not asked.
    Safe(T),
    /// Detected (the current context, a profile picked for it): taken with --yes only.
    Detected(T),
    /// No default: the flag is required when nobody can be asked.
    Required,
}

impl<T> Fallback<T> {
    fn value(self) -> Option<T> {
        match self {
            Fallback::Safe(v) | Fallback::Detected(v) => Some(v),
            Fallback::Required => None,
        }
    }
}

/// Collects the answers no flag gave and nobody could be asked for.
struct Answering {
    mode: Mode,
    missing: Vec<String>,
}

impl Answering {
    fn get<T>(
        &mut self,
        flag: Option<T>,
        flag_name: &str,
        fallback: Fallback<T>,
        ask: impl FnOnce(Option<T>) -> Result<T, CommandError>,
    ) -> Result<Option<T>, CommandError> {
        if flag.is_some() {
            return Ok(flag);
        }
        match (self.mode, fallback) {
            (Mode::Ask, fallback) => ask(fallback.value()).map(Some),
            (_, Fallback::Safe(v)) | (Mode::Defaults, Fallback::Detected(v)) => Ok(Some(v)),
            _ => {
                self.missing.push(flag_name.to_string());
                Ok(None)
            }
        }
    }
}

fn bad(e: InitError) -> CommandError {
    let err = CommandError::bad_input(e.message);
    match e.hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

/// Turns a wizard validator into dialoguer's shape.
fn check<T>(f: fn(&str) -> Result<T, InitError>) -> impl Fn(&str) -> Result<(), String> {
    move |s| f(s).map(|_| ()).map_err(|e| e.message)
}

fn non_empty(s: &str) -> Result<(), String> {
    if s.is_empty() {
        Err("an answer is needed".into())
    } else {
        Ok(())
    }
}

/// What the profile brings, to pre-tick plugins and offer its sizes as defaults.
struct ProfileFacts {
    description: String,
    plugins: BTreeSet<String>,
    retention: Option<String>,
    storage: Option<String>,
}

const KPS: &str = "kube-prometheus-stack";

fn profile_facts(catalog: &Catalog, profile: &str) -> Result<ProfileFacts, CommandError> {
    let resolved = resolve(
        catalog,
        &Request {
            profile: Some(profile.to_string()),
            ..Request::default()
        },
    )?;
    let kps = resolved.plugins.iter().find(|p| p.name() == KPS);
    let spec = kps.map(|p| &p.values["prometheus"]["prometheusSpec"]);
    let text = |v: &Value| v.as_str().map(str::to_string);
    Ok(ProfileFacts {
        description: resolved.profile_description.clone(),
        plugins: resolved.plugins.iter().map(|p| p.name().to_string()).collect(),
        retention: spec.and_then(|s| text(&s["retention"])),
        storage: spec.and_then(|s| {
            text(&s["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"])
        }),
    })
}

/// A name safe for metadata.name from a kubeconfig cluster name (which may be an ARN).
fn tidy_name(text: &str) -> String {
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

pub fn run(args: InitArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    let catalog = global.catalog()?;
    let path = global
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("telltale.yaml"));
    let mode = if prompt::interactive(global.yes) {
        Mode::Ask
    } else if global.yes {
        Mode::Defaults
    } else {
        Mode::Refuse
    };
    let exists = path.exists();
    if exists && !args.force && mode != Mode::Ask {
        return Err(CommandError::bad_input(format!(
            "{} exists; init does not overwrite it without asking",
            path.display()
        ))
        .with_hint("pass --force to replace it, or -f FILE to write another file"));
    }
    let contexts = match crate::cluster::contexts(global.kubeconfig.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            if mode == Mode::Ask || global.context.is_none() {
                printer.warn(&format!("{}; no context to pick from", e.message));
            }
            Vec::new()
        }
    };
    let flags = Flags::check(&args, global, &catalog, &contexts)?;
    let mut q = Answering {
        mode,
        missing: Vec::new(),
    };
    let answers = ask_all(&mut q, &args, flags, global, &catalog, &contexts)?;
    if !q.missing.is_empty() {
        let what = match mode {
            Mode::Refuse => "init has no terminal to ask on (and no --yes); missing answers",
            _ => "these answers have no default",
        };
        return Err(
            CommandError::bad_input(format!("{what}: {}", q.missing.join(", "))).with_hint(
                if mode == Mode::Refuse {
                    "pass these flags, or --yes to take the current context and the default profile"
                } else {
                    "pass these flags"
                },
            ),
        );
    }
    let text = render_config(&answers);
    // The file must be one `plan` accepts: render it the way plan does.
    let source = Source::new(path.display().to_string(), text.clone());
    render::render(
        &catalog,
        &Request {
            config: Some(source),
            ..Request::default()
        },
    )
    .map_err(|e| {
        CommandError::from(e)
            .with_hint("these answers do not make a valid config; nothing was written")
    })?;
    if mode == Mode::Ask {
        printer.status("");
        for (what, value) in summary(&answers) {
            printer.status(&format!("  {what:<12} {value}"));
        }
        let question = if exists {
            format!("{} exists. Overwrite it?", path.display())
        } else {
            format!("Write {}?", path.display())
        };
        if !prompt::yes_no(&question, !exists)? {
            printer.status("Nothing written.");
            return Ok(());
        }
    }
    std::fs::write(&path, &text)
        .map_err(|e| CommandError::environment(format!("cannot write {}: {e}", path.display())))?;
    if printer.is_json() {
        printer.json(&serde_json::json!({"path": path.display().to_string(), "written": true}));
        return Ok(());
    }
    printer.status(&format!("Wrote {}.", path.display()));
    let file = if global.config.is_some() {
        format!(" -f {}", path.display())
    } else {
        String::new()
    };
    printer.out(&format!(
        "Next:\n  telltale plan{file}      # render the bundle to ./telltale-out (no cluster needed)\n  telltale up{file}        # install on context {}\n  telltale verify{file}    # prove it live",
        answers.context
    ));
    if answers
        .receivers
        .secrets()
        .iter()
        .any(|(_, s)| **s == SecretSource::Prompt)
    {
        printer.status("Note: `up` asks for the prompt secrets, so it needs a terminal; CI uses env: or file: sources.");
    }
    Ok(())
}

/// The flags, checked before anything is asked so a typo fails at once.
struct Flags {
    context: Option<String>,
    profile: Option<String>,
    receivers: Option<BTreeMap<ReceiverKind, Option<SecretSource>>>,
    slo_objective: Option<f64>,
}

impl Flags {
    fn check(
        args: &InitArgs,
        global: &GlobalArgs,
        catalog: &Catalog,
        contexts: &[ContextEntry],
    ) -> Result<Flags, CommandError> {
        if let Some(c) = &global.context
            && !contexts.is_empty()
            && !contexts.iter().any(|e| &e.name == c)
        {
            let names: Vec<&str> = contexts.iter().map(|e| e.name.as_str()).collect();
            let mut err = CommandError::bad_input(format!(
                "context `{c}` is not in the kubeconfig (it has: {})",
                names.join(", ")
            ));
            if let Some(guess) = did_you_mean(c, names.iter().copied()) {
                err = err.with_hint(format!("did you mean `{guess}`?"));
            }
            return Err(err);
        }
        if let Some(p) = &global.profile {
            catalog.profile(p)?;
        }
        for name in args.plugins.iter().chain(&args.no_plugins) {
            if !catalog.plugins.contains_key(name) {
                return Err(CommandError::bad_input(format!("unknown plugin `{name}`"))
                    .with_hint(catalog.plugin_hint(name)));
            }
        }
        let mut receivers = BTreeMap::new();
        for text in &args.receivers {
            let (kind, source) = init::parse_receiver_flag(text).map_err(bad)?;
            if receivers.insert(kind, source).is_some() {
                return Err(CommandError::bad_input(format!(
                    "--receiver {} is given twice",
                    kind.as_str()
                )));
            }
        }
        if let Some(r) = &args.retention {
            init::duration(r).map_err(|e| bad(flag("--retention", e)))?;
        }
        if let Some(s) = &args.storage {
            init::storage_size(s).map_err(|e| bad(flag("--storage", e)))?;
        }
        if let Some(w) = &args.slo_window {
            init::duration(w).map_err(|e| bad(flag("--slo-window", e)))?;
        }
        if let Some(j) = &args.slo_job {
            init::job_name(j).map_err(|e| bad(flag("--slo-job", e)))?;
        }
        let slo_objective = args
            .slo_objective
            .as_deref()
            .map(init::objective)
            .transpose()
            .map_err(|e| bad(flag("--slo-objective", e)))?;
        for (name, given) in [
            ("--slack-channel", args.slack_channel.is_some()),
            ("--email-to", args.email_to.is_some()),
            ("--email-from", args.email_from.is_some()),
            ("--email-smarthost", args.email_smarthost.is_some()),
            ("--email-username", args.email_username.is_some()),
            ("--sms-to", !args.sms_to.is_empty()),
            ("--twilio-account-sid", args.twilio_account_sid.is_some()),
            ("--twilio-from", args.twilio_from.is_some()),
        ] {
            let kind = match name {
                "--slack-channel" => ReceiverKind::Slack,
                n if n.starts_with("--email") => ReceiverKind::Email,
                _ => ReceiverKind::Sms,
            };
            if given && !args.receivers.is_empty() && !receivers.contains_key(&kind) {
                return Err(CommandError::bad_input(format!(
                    "{name} is given but not --receiver {}",
                    kind.as_str()
                )));
            }
        }
        Ok(Flags {
            context: global.context.clone(),
            profile: global.profile.clone(),
            receivers: (!receivers.is_empty()).then_some(receivers),
            slo_objective,
        })
    }
}

fn flag(name: &str, e: InitError) -> InitError {
    InitError {
        message: format!("{name}: {}", e.message),
        hint: e.hint,
    }
}

fn ask_all(
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
    let fallback = match names.first() {
        Some(current) => Fallback::Detected(current.clone()),
        None => Fallback::Required,
    };
    let context = q
        .get(flags.context, &context_flag, fallback, |_| {
            if contexts.is_empty() {
                return prompt::text("Kube context `up` will act on", None, false, non_empty);
            }
            let items: Vec<String> = contexts
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let current = if i == 0 { ", current" } else { "" };
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
            |_| {
                let names: Vec<&String> = catalog.plugins.keys().collect();
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
                let ticked: Vec<bool> = names.iter().map(|n| facts.plugins.contains(*n)).collect();
                let picked = prompt::multi_select(
                    "Plugins (space toggles, enter accepts)",
                    &items,
                    &ticked,
                )?;
                Ok(names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| ((*n).clone(), picked.contains(&i)))
                    .collect())
            },
        )?
        .unwrap_or_default();
    // Only what differs from the profile is written.
    let plugins: BTreeMap<String, bool> = chosen
        .into_iter()
        .filter(|(name, on)| facts.plugins.contains(name) != *on)
        .collect();
    let kps_enabled = plugins
        .get(KPS)
        .copied()
        .unwrap_or(facts.plugins.contains(KPS));

    let receivers = ask_receivers(q, args, flags.receivers)?;

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
    let retention = if kps_enabled {
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
            "--retention sets Prometheus's retention, but kube-prometheus-stack is not enabled",
        ));
    } else {
        None
    };
    let storage = match (&facts.storage, kps_enabled) {
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
        gitops,
    })
}

fn ask_receivers(
    q: &mut Answering,
    args: &InitArgs,
    given: Option<BTreeMap<ReceiverKind, Option<SecretSource>>>,
) -> Result<ReceiverAnswers, CommandError> {
    let selected = q
        .get(
            given,
            "--receiver KIND=SOURCE",
            Fallback::Safe(BTreeMap::new()),
            |_| {
                let items: Vec<String> = ReceiverKind::ALL
                    .iter()
                    .map(|k| format!("{:<10} {}", k.as_str(), k.describe()))
                    .collect();
                let picked = prompt::multi_select(
                    "Notification receivers (space toggles, enter accepts; none is fine)",
                    &items,
                    &[false; 4],
                )?;
                Ok(picked
                    .into_iter()
                    .map(|i| (ReceiverKind::ALL[i], None))
                    .collect())
            },
        )?
        .unwrap_or_default();
    let mut out = ReceiverAnswers::default();
    for (kind, source) in selected {
        let secret = |q: &mut Answering, source: Option<SecretSource>| {
            q.get(
                source,
                &format!("--receiver {}=SOURCE", kind.as_str()),
                Fallback::Safe(kind.default_source()),
                |_| ask_source(kind),
            )
            .map(|s| s.unwrap_or_else(|| kind.default_source()))
        };
        let required = |q: &mut Answering, flag: Option<String>, name: &str, question: &str| {
            q.get(flag, name, Fallback::Required, |_| {
                prompt::text(question, None, false, non_empty)
            })
            .map(Option::unwrap_or_default)
        };
        match kind {
            ReceiverKind::Slack => {
                let channel = q
                    .get(
                        args.slack_channel.clone(),
                        "--slack-channel CHANNEL",
                        Fallback::Safe("#alerts".to_string()),
                        |d| prompt::text("Slack channel", d.as_deref(), false, non_empty),
                    )?
                    .unwrap_or_default();
                out.slack = Some(init::slack(&channel, secret(q, source)?));
            }
            ReceiverKind::Pagerduty => out.pagerduty = Some(init::pagerduty(secret(q, source)?)),
            ReceiverKind::Email => {
                let to = required(q, args.email_to.clone(), "--email-to ADDR", "Email to")?;
                let from = required(
                    q,
                    args.email_from.clone(),
                    "--email-from ADDR",
                    "Email from",
                )?;
                let smarthost = required(
                    q,
                    args.email_smarthost.clone(),
                    "--email-smarthost HOST:PORT",
                    "SMTP server (host:port)",
                )?;
                let username = q
                    .get(
                        args.email_username.clone().map(Some),
                        "--email-username USER",
                        Fallback::Safe(None),
                        |_| {
                            prompt::text(
                                "SMTP user name (empty: no authentication)",
                                None,
                                true,
                                non_empty,
                            )
                            .map(|s| (!s.is_empty()).then_some(s))
                        },
                    )?
                    .flatten();
                let password = match (&username, source) {
                    (_, Some(s)) => Some(s),
                    (Some(_), None) => Some(secret(q, None)?),
                    (None, None) => None,
                };
                out.email = Some(init::email(EmailFields {
                    to,
                    from,
                    smarthost,
                    username,
                    password,
                }));
            }
            ReceiverKind::Sms => {
                let to = q
                    .get(
                        (!args.sms_to.is_empty()).then(|| args.sms_to.clone()),
                        "--sms-to NUMBERS",
                        Fallback::Required,
                        |_| {
                            prompt::text("SMS recipients (comma-separated)", None, false, non_empty)
                                .map(|s| {
                                    s.split(',')
                                        .map(|n| n.trim().to_string())
                                        .filter(|n| !n.is_empty())
                                        .collect()
                                })
                        },
                    )?
                    .unwrap_or_default();
                let sid = required(
                    q,
                    args.twilio_account_sid.clone(),
                    "--twilio-account-sid SID",
                    "Twilio account SID",
                )?;
                let from = required(
                    q,
                    args.twilio_from.clone(),
                    "--twilio-from NUMBER",
                    "Twilio sender number",
                )?;
                out.sms = Some(init::sms(to, sid, from, secret(q, source)?));
            }
        }
    }
    Ok(out)
}

/// Where one secret comes from. The value itself is never asked for here:
/// "type it" records `{prompt: true}` and `up` asks, so the value goes only
/// into the cluster Secret.
fn ask_source(kind: ReceiverKind) -> Result<SecretSource, CommandError> {
    let what = kind.secret_name();
    let items = [
        format!("environment variable (read by `up`)"),
        "file (read by `up`)".to_string(),
        "existing Kubernetes Secret in the namespace".to_string(),
        "type it when `up` runs (kept only in the cluster Secret)".to_string(),
    ];
    match prompt::select(&format!("{what}: where does it come from?"), &items, 0)? {
        0 => prompt::text(
            &format!("{what}: environment variable"),
            Some(kind.default_env()),
            false,
            check(init::env_name),
        )
        .map(SecretSource::Env),
        1 => prompt::text(
            &format!("{what}: file"),
            Some(&format!("/run/secrets/{}", kind.default_key())),
            false,
            non_empty,
        )
        .map(SecretSource::File),
        2 => {
            let name = prompt::text(
                &format!("{what}: Secret name"),
                Some(init::DEFAULT_SECRET_NAME),
                false,
                |s| {
                    if init::k8s_name(s) {
                        Ok(())
                    } else {
                        Err("not a Kubernetes name (lower case, digits, - and .)".into())
                    }
                },
            )?;
            let key = prompt::text(
                &format!("{what}: key in {name}"),
                Some(kind.default_key()),
                false,
                non_empty,
            )?;
            Ok(SecretSource::SecretRef { name, key })
        }
        _ => Ok(SecretSource::Prompt),
    }
}

/// One line per choice, for the confirmation.
fn summary(a: &Answers) -> Vec<(&'static str, String)> {
    let mut lines = vec![
        ("context", a.context.clone()),
        ("cluster", a.cluster_name.clone()),
        ("profile", a.profile.clone()),
        ("namespace", a.namespace.clone()),
    ];
    if !a.plugins.is_empty() {
        let changes: Vec<String> = a
            .plugins
            .iter()
            .map(|(n, on)| format!("{}{n}", if *on { "+" } else { "-" }))
            .collect();
        lines.push(("plugins", changes.join(" ")));
    }
    for (what, source) in a.receivers.secrets() {
        lines.push(("secret", format!("{what} from {source}")));
    }
    if let Some(slo) = &a.slo {
        lines.push((
            "slo",
            format!("{} {}% over {}", slo.job, slo.objective, slo.window),
        ));
    }
    if let Some(r) = &a.retention {
        lines.push(("retention", r.clone()));
    }
    if let Some(s) = &a.storage {
        lines.push(("storage", s.clone()));
    }
    if let Some(g) = &a.gitops {
        lines.push((
            "gitops",
            format!("{} {} ({})", g.repo, g.path, g.layout.as_str()),
        ));
    }
    lines
}
