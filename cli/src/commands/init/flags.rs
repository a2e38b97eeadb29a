//! The flags, checked before anything is asked.

use std::collections::BTreeMap;

use super::InitArgs;
use super::answering::bad;
use crate::catalog::Catalog;
use crate::commands::GlobalArgs;
use crate::error::CommandError;
use crate::init::{self, InitError, ReceiverKind};
use crate::model::suggest::did_you_mean;
use crate::secrets::SecretSource;
use crate::session::ContextEntry;

/// The flags, checked before anything is asked so a typo fails at once.
pub(super) struct Flags {
    pub(super) context: Option<String>,
    pub(super) profile: Option<String>,
    /// `--receiver KIND[=SOURCE]` (Some: ticked, with its source if given)
    /// and `--no-receiver KIND` (None: unticked), over the profile's.
    pub(super) receivers: Option<BTreeMap<ReceiverKind, Option<Option<SecretSource>>>>,
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
            if receivers.insert(kind, Some(source)).is_some() {
                return Err(CommandError::bad_input(format!(
                    "--receiver {} is given twice",
                    kind.as_str()
                )));
            }
        }
        for text in &args.no_receivers {
            let kind = ReceiverKind::parse(text).map_err(|e| bad(flag("--no-receiver", e)))?;
            if receivers.insert(kind, None).is_some() {
                return Err(CommandError::bad_input(format!(
                    "--receiver {0} and --no-receiver {0} contradict each other",
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
