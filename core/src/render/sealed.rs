//! The sealed-secrets hand-over. The sealed-secrets controller refuses to
//! overwrite a Secret it does not own ("already exists and is not managed
//! by SealedSecret", pkg/controller/controller.go) unless the Secret carries
//! `sealedsecrets.bitnami.com/managed: "true"`. When the config's GitOps
//! branch brings the Secrets as SealedSecrets, the Secrets `up` creates
//! carry that mark, so the controller adopts them (its ownerReference, the
//! SealedSecret's labels and data) instead of failing the sync.

use super::plan::Step;
use crate::model::config::{GitOps, SecretsMode};

pub const MANAGED_ANNOTATION: &str = "sealedsecrets.bitnami.com/managed";

/// The step with the adoption mark when the config hands Secrets to the
/// sealed-secrets controller; any other step or mode as it is.
pub fn adoptable(step: Step, gitops: Option<&GitOps>) -> Step {
    let sealed = gitops.and_then(|g| g.secrets) == Some(SecretsMode::SealedSecrets);
    match step {
        Step::Secret {
            name,
            namespace,
            keys,
            mut annotations,
        } if sealed => {
            annotations.insert(MANAGED_ANNOTATION.into(), "true".into());
            Step::Secret {
                name,
                namespace,
                keys,
                annotations,
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn secret() -> Step {
        Step::Secret {
            name: "telltale-grafana-admin".into(),
            namespace: "monitoring".into(),
            keys: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }

    fn annotations(step: &Step) -> BTreeMap<String, String> {
        match step {
            Step::Secret { annotations, .. } => annotations.clone(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn only_the_sealed_secrets_mode_marks_secrets_for_adoption() {
        let mode = |secrets| GitOps {
            secrets,
            ..Default::default()
        };
        let sealed = adoptable(secret(), Some(&mode(Some(SecretsMode::SealedSecrets))));
        assert_eq!(annotations(&sealed)[MANAGED_ANNOTATION], "true");
        for other in [None, Some(SecretsMode::Sops), Some(SecretsMode::Reference)] {
            assert!(annotations(&adoptable(secret(), Some(&mode(other)))).is_empty());
        }
        assert!(annotations(&adoptable(secret(), None)).is_empty());
    }
}
