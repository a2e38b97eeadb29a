//! The cluster side: kube client, server-side apply, waits, lock, journal,
//! preflight.

pub mod journal;
pub mod loadjob;
pub mod lock;
pub mod logmarker;
pub mod objects;
pub mod portforward;
pub mod preflight;
pub mod quantity;
pub mod wait;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::error::CommandError;

/// How long to wait for a TCP connection to the API server: an unreachable
/// server must fail preflight quickly, not hang a CI job.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The cluster a command is about to act on, known from the kubeconfig alone.
#[derive(Debug, Clone)]
pub struct Target {
    pub context: String,
    pub server: String,
    /// The kubeconfig files read, passed on to helm.
    pub kubeconfig: Option<PathBuf>,
}

/// A connected client and the target it talks to.
#[derive(Clone)]
pub struct Kube {
    pub client: Client,
    pub target: Target,
}

impl Target {
    /// Whether the context name or server looks like production, so that
    /// acting on it takes an explicit confirmation.
    pub fn looks_like_production(&self) -> bool {
        const WORDS: [&str; 4] = ["prod", "production", "prd", "live"];
        [&self.context, &self.server].iter().any(|text| {
            text.to_lowercase()
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|word| WORDS.contains(&word))
        })
    }

    /// Flags that make helm act on the same cluster.
    pub fn helm_args(&self) -> Vec<String> {
        let mut args = vec!["--kube-context".to_string(), self.context.clone()];
        if let Some(path) = &self.kubeconfig {
            args.extend(["--kubeconfig".to_string(), path.display().to_string()]);
        }
        args
    }
}

fn read_kubeconfig(path: Option<&Path>) -> Result<Kubeconfig, CommandError> {
    let hint = "pass --kubeconfig FILE or set KUBECONFIG";
    match path {
        Some(path) => {
            let mut merged: Option<Kubeconfig> = None;
            for file in std::env::split_paths(path) {
                let next = Kubeconfig::read_from(&file).map_err(|e| {
                    CommandError::environment(format!(
                        "cannot read kubeconfig {}: {e}",
                        file.display()
                    ))
                    .with_hint(hint)
                })?;
                merged = Some(match merged {
                    None => next,
                    Some(m) => m.merge(next).map_err(|e| {
                        CommandError::environment(format!("cannot merge kubeconfigs: {e}"))
                    })?,
                });
            }
            merged.ok_or_else(|| CommandError::environment("the kubeconfig path is empty"))
        }
        None => Kubeconfig::read().map_err(|e| {
            CommandError::environment(format!("cannot read the kubeconfig: {e}")).with_hint(hint)
        }),
    }
}

/// A kubeconfig context and the cluster it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    pub name: String,
    pub cluster: String,
    /// The kubeconfig's current-context.
    pub current: bool,
}

/// The kubeconfig's contexts, the current one first, the rest in file order.
pub fn contexts(kubeconfig: Option<&Path>) -> Result<Vec<ContextEntry>, CommandError> {
    let config = read_kubeconfig(kubeconfig)?;
    let mut out: Vec<ContextEntry> = config
        .contexts
        .iter()
        .map(|c| ContextEntry {
            name: c.name.clone(),
            cluster: c
                .context
                .as_ref()
                .map(|c| c.cluster.clone())
                .unwrap_or_default(),
            current: config.current_context.as_ref() == Some(&c.name),
        })
        .collect();
    if let Some(current) = &config.current_context
        && let Some(pos) = out.iter().position(|c| &c.name == current)
    {
        let entry = out.remove(pos);
        out.insert(0, entry);
    }
    Ok(out)
}

/// Picks the context (`--context`, else current-context) and its server.
pub fn target(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<(Target, Kubeconfig), CommandError> {
    let config = read_kubeconfig(kubeconfig)?;
    let name = context
        .map(str::to_string)
        .or_else(|| config.current_context.clone())
        .ok_or_else(|| {
            CommandError::environment("the kubeconfig has no current context")
                .with_hint("pass --context NAME")
        })?;
    let Some(ctx) = config.contexts.iter().find(|c| c.name == name) else {
        let names: Vec<&str> = config.contexts.iter().map(|c| c.name.as_str()).collect();
        let mut err = CommandError::bad_input(format!(
            "context `{name}` is not in the kubeconfig (it has: {})",
            names.join(", ")
        ));
        if let Some(guess) = crate::model::suggest::did_you_mean(&name, names.iter().copied()) {
            err = err.with_hint(format!("did you mean `{guess}`?"));
        }
        return Err(err);
    };
    let cluster_name = ctx
        .context
        .as_ref()
        .map(|c| c.cluster.clone())
        .unwrap_or_default();
    let server = config
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .unwrap_or_default();
    Ok((
        Target {
            context: name,
            server,
            kubeconfig: kubeconfig.map(Path::to_path_buf),
        },
        config,
    ))
}

/// Builds a client for the target. Nothing is sent to the server yet.
pub async fn connect(target: Target, config: Kubeconfig) -> Result<Kube, CommandError> {
    let options = KubeConfigOptions {
        context: Some(target.context.clone()),
        ..Default::default()
    };
    let mut client_config = Config::from_custom_kubeconfig(config, &options)
        .await
        .map_err(|e| {
            CommandError::environment(format!("cannot use context `{}`: {e}", target.context))
        })?;
    client_config.connect_timeout = Some(CONNECT_TIMEOUT);
    client_config.read_timeout = Some(REQUEST_TIMEOUT);
    client_config.write_timeout = Some(REQUEST_TIMEOUT);
    let client = Client::try_from(client_config).map_err(|e| {
        CommandError::environment(format!("cannot build a client for {}: {e}", target.server))
    })?;
    Ok(Kube { client, target })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(context: &str, server: &str) -> Target {
        Target {
            context: context.into(),
            server: server.into(),
            kubeconfig: None,
        }
    }

    #[test]
    fn production_looking_contexts() {
        assert!(t("prod-eu-1", "https://10.0.0.1").looks_like_production());
        assert!(t("eks", "https://api.live.example.com").looks_like_production());
        assert!(t("gke_org_PRD_cluster", "").looks_like_production());
        assert!(!t("kind-telltale", "https://127.0.0.1:6443").looks_like_production());
        // Words, not substrings: "products" and "delivery" are not production.
        assert!(!t("products-dev", "https://delivery.example.com").looks_like_production());
    }
}
