//! What can go wrong before telltale talks to a cluster: reading the
//! kubeconfig, picking the context, the config's pin, building the client.
//!
//! The messages never quote a kubeconfig (it holds tokens and keys): a
//! kubeconfig error arrives here already redacted
//! ([`super::redacted_kubeconfig_error`]), so it is carried as text, not as
//! a `#[source]` whose chain could print the file. The command layer sorts
//! these into exit codes (`From<ClusterError> for CommandError`).

/// A kubeconfig, context or client problem, or a target that is not the
/// pinned cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "the config pins context `{pinned}`, but this run would act on `{context}` ({server}); nothing was changed"
    )]
    ContextPin {
        pinned: String,
        context: String,
        server: String,
    },
    #[error(
        "the config pins API server {pinned}, but context `{context}` points at {server}; nothing was changed"
    )]
    ServerPin {
        pinned: String,
        context: String,
        server: String,
    },
    #[error(
        "the config pins the cluster CA sha256 {pinned}, but context `{context}` has {}; nothing was changed",
        found.as_ref().map_or("no CA certificate".to_string(), |f| format!("CA sha256 {f}"))
    )]
    CaPin {
        pinned: String,
        context: String,
        found: Option<String>,
    },
    /// `reason` is already redacted.
    #[error("cannot read kubeconfig {file}: {reason}")]
    ReadFile { file: String, reason: String },
    #[error("cannot read the kubeconfig: {reason}")]
    ReadDefault { reason: String },
    #[error("cannot merge kubeconfigs: {reason}")]
    Merge { reason: String },
    #[error("the kubeconfig path is empty")]
    EmptyPath,
    #[error("the kubeconfig has no current context")]
    NoCurrentContext,
    #[error("context `{name}` is not in the kubeconfig (it has: {})", known.join(", "))]
    UnknownContext { name: String, known: Vec<String> },
    #[error("cannot use context `{context}`: {reason}")]
    UseContext { context: String, reason: String },
    /// The client's TLS or proxy set-up failed; nothing was sent.
    #[error("cannot build a client for {server}")]
    Client {
        server: String,
        #[source]
        source: kube::Error,
    },
}

impl ClusterError {
    /// A context the user named that does not exist is bad input (exit 2);
    /// everything else is the environment (exit 3).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ClusterError::UnknownContext { .. })
    }

    /// The next thing to try, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            ClusterError::ContextPin { pinned, .. } => Some(format!(
                "pass --context {pinned}, or change spec.cluster.context in the config"
            )),
            ClusterError::ServerPin { .. } => Some(
                "check which cluster this kubeconfig reaches, or change spec.cluster.server in the config"
                    .into(),
            ),
            ClusterError::CaPin { .. } => Some(
                "compare `openssl x509 -noout -fingerprint -sha256` of the cluster CA, or change spec.cluster.caSha256"
                    .into(),
            ),
            ClusterError::ReadFile { .. } | ClusterError::ReadDefault { .. } => {
                Some("pass --kubeconfig FILE or set KUBECONFIG".into())
            }
            ClusterError::NoCurrentContext => Some("pass --context NAME".into()),
            ClusterError::UnknownContext { name, known } => {
                crate::model::suggest::did_you_mean(name, known.iter().map(String::as_str))
                    .map(|guess| format!("did you mean `{guess}`?"))
            }
            _ => None,
        }
    }
}
