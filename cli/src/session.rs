//! Getting to the cluster, for the use cases that act on it: which context
//! (the command line's, or the one a fleet gives its member), whether it is
//! the config's pinned cluster, the connection, helm, the tokio runtime, and
//! a failed API call in plain words.
//!
//! The commands say *where* ([`Where`]) and confirm production contexts
//! (a prompt, before any runtime starts); everything that reads a
//! kubeconfig or talks to a server is here or below.

use std::path::PathBuf;

use crate::cluster::{self, Kube, Pin, Target};
use crate::error::{CommandError, ErrorKind};
use crate::helm::{HelmCli, HelmError};
use crate::render::Bundle;

/// The oldest Kubernetes minor version preflight accepts (`version` says it).
pub use crate::cluster::preflight::MIN_MINOR as MIN_KUBERNETES_MINOR;
/// The kubeconfig's contexts (for `init` and shell completion): reading
/// the kubeconfig is this module's job.
pub use crate::cluster::{ContextEntry, contexts};

/// What the command line says about the cluster to act on.
#[derive(Debug, Clone, Default)]
pub struct Where {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// One cluster of a Fleet: its pinned context is the one to use.
    pub fleet_member: bool,
}

/// The cluster chosen (and checked against the pin), not yet connected.
pub struct Chosen {
    pub target: Target,
    config: kube::config::Kubeconfig,
}

impl Chosen {
    pub fn context(&self) -> &str {
        &self.target.context
    }

    pub fn server(&self) -> &str {
        &self.target.server
    }

    /// A word of the context's name or server is prod, prd, production, live.
    pub fn looks_like_production(&self) -> bool {
        self.target.looks_like_production()
    }

    pub async fn connect(self) -> Result<Kube, CommandError> {
        Ok(cluster::connect(self.target, self.config).await?)
    }
}

/// The pin of the rendered config, if any.
pub fn pin_of(bundle: Option<&Bundle>) -> Pin<'_> {
    bundle.map(|b| Pin::of(&b.plan.cluster)).unwrap_or_default()
}

/// The target, refused before any request when it is not the config's
/// pinned cluster (context, server, CA) of `bundle` (none: no pin).
pub fn choose(at: &Where, bundle: Option<&Bundle>) -> Result<Chosen, CommandError> {
    choose_pinned(at, &pin_of(bundle))
}

/// As [`choose`], with the pin given.
pub fn choose_pinned(at: &Where, pin: &Pin<'_>) -> Result<Chosen, CommandError> {
    // One cluster of a Fleet is acted on through the context the fleet
    // gives it; a Config's pin is checked against the current context.
    let context = at
        .context
        .as_deref()
        .or(pin.context.filter(|_| at.fleet_member));
    let (target, config) = cluster::target(at.kubeconfig.as_deref(), context)?;
    pin.check(&target)?;
    Ok(Chosen { target, config })
}

pub fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CommandError::environment("cannot start the async runtime").with_source(&e))
}

/// helm, or why it is unusable (a preflight failure, not an early exit).
pub async fn helm(target: &Target) -> Result<HelmCli, HelmError> {
    HelmCli::detect(target.helm_args()).await
}

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
