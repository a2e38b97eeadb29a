//! Hands the rendered state to GitOps: a layout for the controller that will
//! own it (Flux, Argo CD, or the plain bundle), Secrets in a form that is
//! safe to commit, a scan that refuses to commit anything secret, a branch
//! pushed with the `git` program and one pull request through the GitHub
//! REST API (reqwest).
//!
//! `layout`, `flux`, `argocd`, `plain`, `pr` and `scan` are pure; `seal`
//! runs sops/kubeseal, `repo` runs git and `github` talks to GitHub. Nothing
//! here prints: the command layer reports.

pub mod argocd;
pub mod digest;
pub mod flux;
pub mod github;
pub mod layout;
pub mod plain;
pub mod pr;
pub mod publish;
pub mod reconcile;
pub mod repo;
pub mod scan;
pub mod seal;

pub use crate::model::config::{Layout, SecretsMode};

/// A YAML document for a committed file.
pub fn yaml(value: &serde_json::Value) -> String {
    // Serialising a serde_json::Value cannot fail: every key is a string.
    serde_saphyr::to_string(value).unwrap_or_default()
}

/// The part of a name that Kubernetes accepts as a DNS label.
pub fn dns_label(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    out[..out.len().min(63)].trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert_eq!(
            dns_label("https://grafana.github.io/helm-charts"),
            "https-grafana-github-io-helm-charts"
        );
        assert_eq!(dns_label("--A_b--"), "a-b");
    }
}
