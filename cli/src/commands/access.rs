//! Getting to the cluster for the commands that act on it: which context,
//! whether the config allows it, whether it looks like production, and the
//! tokio runtime they run in.

use clap::Args;

use super::GlobalArgs;
use crate::cluster::{self, Kube, Pin, Target};
use crate::error::{CommandError, ErrorKind};
use crate::helm::{HelmCli, HelmError};
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

pub fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CommandError::environment("cannot start the async runtime").with_source(&e))
}

/// The pin of the rendered config, if any.
pub fn pin_of(bundle: Option<&crate::render::Bundle>) -> Pin<'_> {
    bundle.map(|b| Pin::of(&b.plan.cluster)).unwrap_or_default()
}

/// The target, refused before any request when it is not the config's
/// pinned cluster (context, server, CA), or looks like production without a
/// confirmation.
pub fn target_for_write(
    global: &GlobalArgs,
    pin: &Pin<'_>,
    confirm: &ConfirmArgs,
    what: &str,
) -> Result<(Target, kube::config::Kubeconfig), CommandError> {
    let (target, config) = target_pinned(global, pin)?;
    if target.looks_like_production() {
        let confirmed = match confirm.confirm_context.as_slice() {
            names if names.contains(&target.context) => true,
            [name, ..] => {
                return Err(CommandError::bad_input(format!(
                    "--confirm-context `{name}` does not match the context `{}`",
                    target.context
                )));
            }
            [] if prompt::interactive(global.yes) => prompt::type_to_confirm(
                &target.context,
                &format!(
                    "`telltale {what}` on a production-looking cluster ({})",
                    target.server
                ),
            ),
            [] => {
                return Err(CommandError::bad_input(format!(
                    "context `{}` ({}) looks like production; refusing to {what} without confirmation",
                    target.context, target.server
                ))
                .with_hint(format!("pass --confirm-context {}", target.context)));
            }
        };
        if !confirmed {
            return Err(CommandError::bad_input(
                "the context name was not confirmed; nothing was changed",
            ));
        }
    }
    Ok((target, config))
}

/// The target of a read that has no config to honour (verify's optional
/// cluster access).
pub fn target_for_read(
    global: &GlobalArgs,
) -> Result<(Target, kube::config::Kubeconfig), CommandError> {
    target_pinned(global, &Pin::default())
}

/// The target, refused before any request when it is not the pinned cluster.
pub fn target_pinned(
    global: &GlobalArgs,
    pin: &Pin<'_>,
) -> Result<(Target, kube::config::Kubeconfig), CommandError> {
    // One cluster of a Fleet is acted on through the context the fleet
    // gives it; a Config's pin is checked against the current context.
    let context = global
        .context
        .as_deref()
        .or(pin.context.filter(|_| global.member().is_some()));
    let (target, config) = cluster::target(global.kubeconfig.as_deref(), context)?;
    pin.check(&target)?;
    Ok((target, config))
}

pub async fn connect(
    target: Target,
    config: kube::config::Kubeconfig,
) -> Result<Kube, CommandError> {
    Ok(cluster::connect(target, config).await?)
}

/// helm, or why it is unusable (a preflight failure, not an early exit).
pub async fn helm(target: &Target) -> Result<HelmCli, HelmError> {
    HelmCli::detect(target.helm_args()).await
}

/// An API error while talking to the cluster after preflight.
/// A failed call to the API server, in plain words: what telltale was doing,
/// on which server, why it failed (connection refused, timed out, a name
/// that does not resolve, an untrusted certificate, refused credentials) and
/// the next command to try. The error chain stays in the causes.
pub fn cluster_error(
    what: &str,
    server: &str,
    e: impl std::error::Error + 'static,
) -> CommandError {
    let (why, hint) = plain_cause(&e);
    CommandError::new(
        ErrorKind::Environment,
        format!(
            "{what} on {server} failed: {}",
            why.replace("{server}", server)
        ),
    )
    .with_source(&e)
    .with_hint(hint.replace("{server}", server))
}

/// Why a call to the API server failed, and what to try next.
fn plain_cause(e: &(dyn std::error::Error + 'static)) -> (String, String) {
    let check = "check the address and that the cluster runs: `kubectl cluster-info` with the same --context/--kubeconfig";
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut root = e.to_string();
    while let Some(err) = current {
        if let Some(kube::Error::Api(status)) = err.downcast_ref::<kube::Error>() {
            return match status.code {
                401 => (
                    format!("the API server refused the credentials (401 Unauthorized: {})", status.message),
                    "the token or certificate of this context is wrong or expired: log in again (e.g. refresh the cloud credentials) and retry".into(),
                ),
                403 => (
                    format!("forbidden (403): {}", status.message),
                    "this user lacks the RBAC permission named above: `kubectl auth can-i --list` shows what it may do".into(),
                ),
                code => (format!("the API server answered {code}: {}", status.message), check.into()),
            };
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            let words = match io.kind() {
                ConnectionRefused => Some("connection refused: nothing listens at {server}"),
                TimedOut => Some("the connection timed out: {server} does not answer"),
                ConnectionReset | ConnectionAborted => Some("the server closed the connection"),
                HostUnreachable | NetworkUnreachable => Some("the host is unreachable from here"),
                _ => None,
            };
            if let Some(words) = words {
                return (words.to_string(), check.into());
            }
        }
        let text = err.to_string();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return (
                "the server's host name does not resolve".into(),
                "check the server address of this context (`kubectl config view --minify`) and your DNS or VPN".into(),
            );
        }
        if text.contains("certificate") || text.contains("InvalidCertificate") {
            return (
                format!("the TLS handshake failed: {text}"),
                "the context's certificate-authority-data does not match the server's certificate: fetch a fresh kubeconfig for this cluster".into(),
            );
        }
        root = text;
        current = err.source();
    }
    (root, check.into())
}
