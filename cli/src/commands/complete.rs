//! Dynamic completions: the values only the binary knows (profile and
//! plugin names of the catalogue, alert names of its rules, the kubeconfig's
//! contexts), offered by clap_complete's `COMPLETE=SHELL telltale …`
//! protocol. A completer never fails: whatever cannot be read offers nothing.

use std::ffi::OsStr;

use clap_complete::engine::CompletionCandidate;

use crate::catalog::Catalog;

fn matching(current: &OsStr, values: impl IntoIterator<Item = String>) -> Vec<CompletionCandidate> {
    let prefix = current.to_string_lossy();
    values
        .into_iter()
        .filter(|v| v.starts_with(prefix.as_ref()))
        .map(CompletionCandidate::new)
        .collect()
}

/// The built-in catalogue (plugins from --plugin-dir are not known while
/// completing: the flag may not even be typed yet).
fn catalog() -> Option<Catalog> {
    Catalog::load(&[]).ok()
}

pub fn profiles(current: &OsStr) -> Vec<CompletionCandidate> {
    matching(
        current,
        catalog().map(|c| c.profile_names()).unwrap_or_default(),
    )
}

pub fn plugins(current: &OsStr) -> Vec<CompletionCandidate> {
    matching(
        current,
        catalog()
            .map(|c| c.plugins.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default(),
    )
}

pub fn alerts(current: &OsStr) -> Vec<CompletionCandidate> {
    let names = catalog()
        .and_then(|c| crate::runbooks::alert_runbooks(&c).ok())
        .map(|a| a.into_iter().map(|(alert, _, _)| alert).collect::<Vec<_>>())
        .unwrap_or_default();
    matching(current, names)
}

/// The contexts of `KUBECONFIG` or `~/.kube/config`, the current one first.
pub fn contexts(current: &OsStr) -> Vec<CompletionCandidate> {
    let kubeconfig = std::env::var_os("KUBECONFIG").map(std::path::PathBuf::from);
    let names = crate::session::contexts(kubeconfig.as_deref())
        .map(|c| c.into_iter().map(|c| c.name).collect::<Vec<_>>())
        .unwrap_or_default();
    matching(current, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(c: Vec<CompletionCandidate>) -> Vec<String> {
        c.iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn catalogue_values_complete_by_prefix() {
        assert_eq!(values(profiles(OsStr::new("pro"))), ["production"]);
        assert!(
            values(plugins(OsStr::new("kube-"))).contains(&"kube-prometheus-stack".to_string())
        );
        assert!(values(alerts(OsStr::new("NodeD"))).contains(&"NodeDown".to_string()));
        assert!(values(profiles(OsStr::new("zzz"))).is_empty());
    }
}
