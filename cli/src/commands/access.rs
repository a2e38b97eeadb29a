//! The command line's side of reaching a cluster: the `--confirm-context`
//! flag, which cluster the global flags name, the bundle whose pin is
//! honoured, and the production confirmation (a prompt, asked before any
//! runtime starts). Reading the kubeconfig and connecting are in
//! `crate::session`.

use clap::Args;

use super::GlobalArgs;
use crate::error::CommandError;
use crate::session::{self, Chosen, Where};
use crate::ui::prompt;

#[derive(Debug, Clone, Args)]
pub struct ConfirmArgs {
    /// Act on a production-looking context (a word of its name or server is
    /// prod, prd, production or live, also as in prod01 or prodeu1): repeat
    /// its name here in non-interactive runs (repeatable: a fleet's
    /// production contexts, each named)
    #[arg(long, value_name = "NAME")]
    pub confirm_context: Vec<String>,
}

/// The bundle the config or `--profile` renders, when there is either:
/// `down` and `status` work from the journal but honour the config's
/// pinned context and namespace.
pub fn optional_bundle(global: &GlobalArgs) -> Result<Option<crate::render::Bundle>, CommandError> {
    let request = global.request()?;
    if request.config.is_none() && request.profile.is_none() {
        return Ok(None);
    }
    Ok(Some(crate::render::render(&global.catalog()?, &request)?))
}

/// `-n`, else the bundle's namespace, else the default.
pub fn namespace(global: &GlobalArgs, bundle: Option<&crate::render::Bundle>) -> String {
    global
        .namespace
        .clone()
        .or_else(|| bundle.map(|b| b.plan.namespace.clone()))
        .unwrap_or_else(|| crate::render::resolve::DEFAULT_NAMESPACE.into())
}

/// Where the global flags say the cluster is.
pub fn at(global: &GlobalArgs) -> Where {
    Where {
        kubeconfig: global.kubeconfig.clone(),
        context: global.context.clone(),
        fleet_member: global.member().is_some(),
    }
}

/// The target, refused before any request when it is not the config's
/// pinned cluster (context, server, CA), or looks like production without a
/// confirmation.
pub fn target_for_write(
    global: &GlobalArgs,
    bundle: Option<&crate::render::Bundle>,
    confirm: &ConfirmArgs,
    what: &str,
) -> Result<Chosen, CommandError> {
    let chosen = session::choose(&at(global), bundle)?;
    if chosen.looks_like_production() {
        let confirmed = match confirm.confirm_context.as_slice() {
            names if names.iter().any(|n| n == chosen.context()) => true,
            [name, ..] => {
                return Err(CommandError::bad_input(format!(
                    "--confirm-context `{name}` does not match the context `{}`",
                    chosen.context()
                )));
            }
            [] if prompt::interactive(global.yes) => prompt::type_to_confirm(
                chosen.context(),
                &format!(
                    "`telltale {what}` on a production-looking cluster ({})",
                    chosen.server()
                ),
            ),
            [] => {
                return Err(CommandError::bad_input(format!(
                    "context `{}` ({}) looks like production; refusing to {what} without confirmation",
                    chosen.context(),
                    chosen.server()
                ))
                .with_hint(format!("pass --confirm-context {}", chosen.context())));
            }
        };
        if !confirmed {
            return Err(CommandError::bad_input(
                "the context name was not confirmed; nothing was changed",
            ));
        }
    }
    Ok(chosen)
}

/// The target of a read, refused before any request when it is not the
/// pinned cluster of `bundle`.
pub fn target_pinned(
    global: &GlobalArgs,
    bundle: Option<&crate::render::Bundle>,
) -> Result<Chosen, CommandError> {
    session::choose(&at(global), bundle)
}
