//! The flags, checked before anything is asked.

use std::collections::BTreeMap;

use super::InitArgs;
use super::answering::bad;
use crate::catalog::Catalog;
use crate::cluster::ContextEntry;
use crate::commands::GlobalArgs;
use crate::error::CommandError;
use crate::init::{self, InitError, ReceiverKind};
use crate::model::suggest::did_you_mean;
use crate::secrets::SecretSource;

/// The flags, checked before anything is asked so a typo fails at once.
pub(super) struct Flags {
    pub(super) context: Option<String>,
    pub(super) profile: Option<String>,
    pub(super) receivers: Option<BTreeMap<ReceiverKind, Option<SecretSource>>>,
    pub(super) slo_objective: Option<f64>,
}

impl Flags {
    pub(super) fn check(
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

pub(super) fn flag(name: &str, e: InitError) -> InitError {
    InitError {
        message: format!("{name}: {}", e.message),
        hint: e.hint,
    }
}
