//! `telltale init`: the setup wizard, and the same answers as flags for CI.
//!
//! Every question is answered, in this order, by its flag, by a prompt (a
//! terminal and no --yes), or by its default (--yes, or no terminal when the
//! default is safe). The answers go into one [`Answers`] and
//! [`render_config`] makes the file, so typed and flag answers give the
//! same bytes. The file is rendered once through the real resolver before
//! it is written, so `plan` accepts what `init` writes.

mod answering;
mod flags;
mod questions;
mod receivers;

use answering::{Answering, Mode};
use flags::Flags;
use questions::ask_all;

use std::path::PathBuf;

use clap::Args;

use super::GlobalArgs;
use crate::error::CommandError;
use crate::init::{Answers, Layout, render_config};
use crate::model::Source;
use crate::render::plan::{Plan, Step};
use crate::render::{self, Request};
use crate::ui::{Printer, prompt};

/// The answers as flags (the help text is on `Command::Init`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Answers")]
pub struct InitArgs {
    /// Cluster name (metadata.name and spec.cluster.name) [default: the context's cluster]
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// Enable a plugin beyond the profile's (repeatable)
    #[arg(long = "plugin", value_name = "NAME", add = clap_complete::ArgValueCompleter::new(crate::commands::complete::plugins))]
    pub plugins: Vec<String>,
    /// Drop one of the profile's plugins (repeatable)
    #[arg(long = "no-plugin", value_name = "NAME", add = clap_complete::ArgValueCompleter::new(crate::commands::complete::plugins))]
    pub no_plugins: Vec<String>,
    /// Notify through KIND (slack, pagerduty, email, sms) with its secret from
    /// SOURCE: env:VAR, file:PATH, secretRef:NAME/KEY or prompt (asked at `up`)
    /// [default SOURCE: env:SLACK_WEBHOOK_URL, env:PAGERDUTY_ROUTING_KEY,
    /// env:SMTP_PASSWORD, env:TWILIO_AUTH_TOKEN] (repeatable)
    #[arg(long = "receiver", value_name = "KIND[=SOURCE]")]
    pub receivers: Vec<String>,
    /// Drop one of the profile's receivers (repeatable): written as
    /// `enabled: false`, so the profile's integration is left out
    #[arg(long = "no-receiver", value_name = "KIND")]
    pub no_receivers: Vec<String>,
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

pub fn run(args: InitArgs, global: &GlobalArgs, printer: &Printer) -> Result<(), CommandError> {
    if !(global.set.is_empty() && global.set_string.is_empty() && global.set_file.is_empty()) {
        return Err(CommandError::bad_input("init does not take --set").with_hint(
            "init writes the answers it asks for; add other values under spec.set in the file, or pass --set to plan and up",
        ));
    }
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
    if mode == Mode::Ask {
        prompt::exit_cleanly_on_interrupt();
    }
    let exists = path.exists();
    if exists && !args.force && mode != Mode::Ask {
        return Err(CommandError::bad_input(format!(
            "{} exists; init does not overwrite it without asking",
            path.display()
        ))
        .with_hint("pass --force to replace it, or -f FILE to write another file"));
    }
    let contexts = match crate::session::contexts(global.kubeconfig.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            if mode == Mode::Ask || global.context.is_none() {
                printer.warn(&format!("{e}; no context to pick from"));
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
    let bundle = render::render(
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
        for (what, value) in summary(&answers, &bundle.plan) {
            printer.status(&format!("  {what:<12} {value}"));
        }
        let question = if exists {
            format!("{} exists. Overwrite it?", path.display())
        } else {
            format!("Write {}?", path.display())
        };
        if !prompt::yes_no(&question, !exists)? {
            printer.status("Nothing written.");
            if printer.is_json() {
                printer.json(
                    &serde_json::json!({"path": path.display().to_string(), "written": false}),
                );
            }
            return Ok(());
        }
    }
    write_whole(&path, &text).map_err(|e| {
        CommandError::environment(format!("cannot write {}", path.display())).with_source(&e)
    })?;
    if printer.is_json() {
        printer.json(&serde_json::json!({"path": path.display().to_string(), "written": true}));
        return Ok(());
    }
    printer.status(&format!("Wrote {}.", path.display()));
    if mode != Mode::Ask {
        // Nobody saw a summary: what the file leaves out and what `up` will
        // need are said now, as `plan` would say them.
        for warning in &bundle.plan.warnings {
            printer.warn(warning);
        }
        let needs = bundle.plan.requirements();
        if !needs.is_empty() {
            printer.status(&format!(
                "`telltale up` will read (secret sources; the values never enter the bundle):\n  {}",
                needs.join("\n  ")
            ));
        }
    }
    let mut file = if global.config.is_some() {
        format!(" -f {}", path.display())
    } else {
        String::new()
    };
    // The file may name plugins from these directories; plan and up need them too.
    for dir in &global.plugin_dir {
        file.push_str(&format!(" --plugin-dir {}", dir.display()));
    }
    printer.out(&format!(
        "Next:\n  telltale plan{file}      # render the bundle to ./telltale-out (no cluster needed)\n  telltale up{file}        # install on context {}\n  telltale verify{file}    # prove it live",
        answers.context
    ));
    if bundle
        .plan
        .phases
        .iter()
        .flat_map(|p| &p.steps)
        .any(|step| matches!(step, Step::Secret { keys, .. } if keys.iter().any(|k| k.source == crate::secrets::KeySource::Prompt)))
    {
        printer.status("Note: `up` asks for the prompt secrets, so it needs a terminal; CI uses env: or file: sources.");
    }
    Ok(())
}

/// Writes next to the target and renames, so an interrupted run never
/// leaves half a config where the old one was.
/// The temporary file is created new (never through a link left there) and
/// only a regular file (or nothing) at `path` is replaced.
fn write_whole(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && !meta.is_file()
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "it exists and is not a regular file",
        ));
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".init-tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// One line per choice, then what the bundle will hold, for the
/// confirmation: the plugins and receivers it deploys, what it leaves out
/// and why, and the secret sources `up` will read.
fn summary(a: &Answers, plan: &Plan) -> Vec<(&'static str, String)> {
    let mut lines = vec![
        ("context", a.context.clone()),
        ("cluster", a.cluster_name.clone()),
        ("profile", a.profile.clone()),
        ("namespace", a.namespace.clone()),
    ];
    let plugins: Vec<&str> = plan.plugins.iter().map(|p| p.name.as_str()).collect();
    lines.push(("plugins", plugins.join(", ")));
    let mut integrations = std::collections::BTreeSet::new();
    for tier in &plan.alerting.receivers {
        integrations.extend(tier.integrations.iter().map(String::as_str));
    }
    lines.push((
        "receivers",
        if integrations.is_empty() {
            "none (alerts show in Alertmanager and Grafana only)".into()
        } else {
            integrations.into_iter().collect::<Vec<_>>().join(", ")
        },
    ));
    if let Some(slo) = &a.slo {
        lines.push((
            "slo",
            format!("{} {}% over {}", slo.job, slo.objective, slo.window),
        ));
    }
    if let Some(r) = &a.retention {
        lines.push(("retention", r.clone()));
    } else {
        lines.push(("retention", "the profile's".into()));
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
    for warning in &plan.warnings {
        lines.push(("warning", warning.clone()));
    }
    for need in plan.requirements() {
        lines.push(("up reads", need));
    }
    lines
}
