//! The secrets phase's inputs: every key of every planned Secret resolved
//! from its source (env, file, an existing Secret, a prompt), a generated
//! value kept once created, or a fixed non-secret constant.
//!
//! Values live only in [`Secret`]s and reach the cluster only as Secret
//! data; problems name the source, never the value.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::Api;

use crate::cluster::Kube;
use crate::render::plan::{Plan, SecretKey, Step};
use crate::secrets::{KeySource, Secret};

fn secret_steps(plan: &Plan) -> impl Iterator<Item = (&String, &String, &Vec<SecretKey>)> {
    plan.phases
        .iter()
        .flat_map(|p| &p.steps)
        .filter_map(|s| match s {
            Step::Secret {
                name,
                namespace,
                keys,
                ..
            } => Some((name, namespace, keys)),
            _ => None,
        })
}

/// Resolves the sources that do not depend on what is already in the
/// cluster. `prompt` asks only when `interactive`.
pub struct Resolved {
    /// By Secret (namespace, name) and key: two keys prompted for get their
    /// own answers (keyed by source, they once both got the last one).
    values: BTreeMap<(String, String, String), Secret>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceProblem(pub String);

async fn read_secret_ref(
    kube: &Kube,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Secret, SourceProblem> {
    let api: Api<KubeSecret> = Api::namespaced(kube.client.clone(), namespace);
    let found = api.get_opt(name).await.map_err(|e| {
        SourceProblem(format!(
            "cannot read Secret {name} in {namespace}: {}",
            crate::error::chain(&e)
        ))
    })?;
    let secret = found.ok_or_else(|| {
        SourceProblem(format!(
            "secretRef {name}/{key}: Secret {name} does not exist in {namespace}"
        ))
    })?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| {
            SourceProblem(format!(
                "secretRef {name}/{key}: Secret {name} has no key {key}"
            ))
        })?;
    String::from_utf8(bytes.0.clone())
        .map(Secret::new)
        .map_err(|_| SourceProblem(format!("secretRef {name}/{key}: the value is not UTF-8")))
}

/// The answers to the plan's `prompt` sources, asked before the runtime
/// starts (a prompt inside async code would block a runtime thread and
/// fight the progress lines). Without a terminal nothing is asked, and
/// each prompt source is a problem [`Resolved::resolve`] reports.
#[derive(Default)]
pub struct Prompted {
    interactive: bool,
    answers: BTreeMap<(String, String), Result<Secret, String>>,
}

impl Prompted {
    /// Asks, in plan order, for every key whose source is `prompt`, when
    /// `interactive`; `ask` is the terminal's (it gets `secret/key`).
    pub fn ask(
        plan: &Plan,
        interactive: bool,
        ask: &dyn Fn(&str) -> Result<Secret, String>,
    ) -> Prompted {
        let mut answers = BTreeMap::new();
        if interactive {
            for (name, _, keys) in secret_steps(plan) {
                for key in keys.iter().filter(|k| k.source == KeySource::Prompt) {
                    let answer = ask(&format!("{name}/{}", key.key));
                    answers.insert((name.clone(), key.key.clone()), answer);
                }
            }
        }
        Prompted {
            interactive,
            answers,
        }
    }
}

impl Resolved {
    /// Every source of the plan; the problems list says which ones cannot
    /// be resolved (env unset, file unreadable, Secret missing, no terminal
    /// to prompt on).
    pub async fn resolve(kube: &Kube, plan: &Plan, prompted: &Prompted) -> (Resolved, Vec<String>) {
        let interactive = prompted.interactive;
        let mut values = BTreeMap::new();
        let mut problems = Vec::new();
        for (name, namespace, keys) in secret_steps(plan) {
            for key in keys {
                let value = match &key.source {
                    KeySource::Env(var) => match std::env::var(var) {
                        Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
                        _ => Err(SourceProblem(format!(
                            "{name}/{}: environment variable {var} is not set",
                            key.key
                        ))),
                    },
                    KeySource::File(path) => std::fs::read_to_string(path)
                        .map(|v| Secret::new(v.trim_end_matches(['\n', '\r'])))
                        .map_err(|e| {
                            SourceProblem(format!("{name}/{}: cannot read {path}: {e}", key.key))
                        }),
                    KeySource::SecretRef { name: r, key: k } => {
                        read_secret_ref(kube, namespace, r, k).await
                    }
                    KeySource::Prompt if interactive => prompted
                        .answers
                        .get(&(name.clone(), key.key.clone()))
                        .cloned()
                        .unwrap_or_else(|| Err(format!("{name}/{} was not asked", key.key)))
                        .map_err(SourceProblem),
                    KeySource::Prompt => Err(SourceProblem(format!(
                        "{name}/{} is read from a prompt, but this run cannot prompt (no terminal, or --yes); \
                         use {{env: VAR}} or {{file: PATH}} in CI",
                        key.key
                    ))),
                    KeySource::Generated | KeySource::Fixed(_) => continue,
                };
                match value {
                    Ok(v) => {
                        values.insert((namespace.clone(), name.clone(), key.key.clone()), v);
                    }
                    Err(p) => problems.push(p.0),
                }
            }
        }
        (Resolved { values }, problems)
    }

    /// The data of a planned Secret. Generated keys keep the value the
    /// cluster already holds; new ones get 32 random characters.
    pub fn data(
        &self,
        (namespace, name): (&str, &str),
        keys: &[SecretKey],
        existing: Option<&KubeSecret>,
    ) -> Result<BTreeMap<String, Secret>, SourceProblem> {
        let mut data = BTreeMap::new();
        for key in keys {
            let value = match &key.source {
                KeySource::Generated => {
                    let kept = existing
                        .and_then(|s| s.data.as_ref())
                        .and_then(|d| d.get(&key.key))
                        .and_then(|b| String::from_utf8(b.0.clone()).ok());
                    match kept {
                        Some(v) => Secret::new(v),
                        None => generate()?,
                    }
                }
                KeySource::Fixed(v) => Secret::new(v.clone()),
                _ => self
                    .values
                    .get(&(namespace.to_string(), name.to_string(), key.key.clone()))
                    .cloned()
                    .ok_or_else(|| SourceProblem(format!("{} is unresolved", key.source)))?,
            };
            data.insert(key.key.clone(), value);
        }
        Ok(data)
    }
}

/// Whether the cluster's Secret already holds exactly this data.
pub fn matches(existing: Option<&KubeSecret>, data: &BTreeMap<String, Secret>) -> bool {
    let Some(existing) = existing else {
        return false;
    };
    let empty = BTreeMap::new();
    let live = existing.data.as_ref().unwrap_or(&empty);
    live.len() == data.len()
        && data
            .iter()
            .all(|(k, v)| live.get(k).is_some_and(|b| b.0 == v.expose().as_bytes()))
}

/// Whether the live Secret carries every annotation the step asks for.
pub fn annotated(existing: Option<&KubeSecret>, wanted: &BTreeMap<String, String>) -> bool {
    let live = existing.and_then(|s| s.metadata.annotations.as_ref());
    wanted
        .iter()
        .all(|(k, v)| live.and_then(|a| a.get(k)) == Some(v))
}

pub fn to_bytes(data: &BTreeMap<String, Secret>) -> BTreeMap<String, ByteString> {
    data.iter()
        .map(|(k, v)| (k.clone(), ByteString(v.expose().as_bytes().to_vec())))
        .collect()
}

/// 32 characters from the OS's random source, alphanumeric so any consumer
/// (env, URL, config file) takes it unquoted.
pub fn generate() -> Result<Secret, SourceProblem> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        SourceProblem(format!(
            "no randomness for a generated secret: {}",
            crate::error::chain(&e)
        ))
    })?;
    Ok(Secret::new(
        bytes
            .iter()
            .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
            .collect::<String>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan whose Slack webhook and PagerDuty key are prompted for.
    fn prompting_plan() -> Plan {
        let config = "apiVersion: telltale.dev/v1alpha1\nkind: Config\nmetadata: {name: lab}\nspec:\n  profile: kind\n  alerting:\n    receivers:\n      slack: {channel: \"#ops\", webhookUrl: {prompt: true}}\n      pagerduty: {routingKey: {prompt: true}}\n";
        let catalog = crate::catalog::Catalog::load(&[]).unwrap();
        let request = crate::render::Request {
            config: Some(crate::model::Source::new("telltale.yaml", config)),
            ..Default::default()
        };
        crate::render::render(&catalog, &request).unwrap().plan
    }

    #[test]
    fn prompts_are_asked_up_front_in_plan_order_and_only_when_interactive() {
        let plan = prompting_plan();
        let wanted: Vec<String> = secret_steps(&plan)
            .flat_map(|(name, _, keys)| {
                keys.iter()
                    .filter(|k| k.source == KeySource::Prompt)
                    .map(move |k| format!("{name}/{}", k.key))
            })
            .collect();
        assert_eq!(wanted.len(), 2, "{wanted:?}");
        let asked = std::sync::Mutex::new(Vec::new());
        let ask = |what: &str| {
            asked.lock().unwrap().push(what.to_string());
            Ok(Secret::new(format!("answer for {what}")))
        };
        let prompted = Prompted::ask(&plan, true, &ask);
        assert_eq!(*asked.lock().unwrap(), wanted);
        assert_eq!(prompted.answers.len(), 2);
        assert!(prompted.interactive);

        asked.lock().unwrap().clear();
        let quiet = Prompted::ask(&plan, false, &ask);
        assert!(asked.lock().unwrap().is_empty(), "asked without a terminal");
        assert!(!quiet.interactive && quiet.answers.is_empty());
    }

    /// Two keys prompted for (the Slack webhook and the PagerDuty key) each
    /// get their own answer in their Secret's data.
    #[tokio::test]
    async fn each_prompted_key_keeps_its_own_answer() {
        let plan = prompting_plan();
        let ask = |what: &str| Ok(Secret::new(format!("answer for {what}")));
        let prompted = Prompted::ask(&plan, true, &ask);
        // Never called: the plan reads no existing Secret.
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let kube = Kube {
            client: kube::Client::try_from(config).unwrap(),
            target: crate::cluster::Target {
                context: "lab".into(),
                server: "http://127.0.0.1:1".into(),
                ca_sha256: None,
                kubeconfig: None,
            },
        };
        let (resolved, problems) = Resolved::resolve(&kube, &plan, &prompted).await;
        assert!(problems.is_empty(), "{problems:?}");
        let mut checked = 0;
        for (name, namespace, keys) in secret_steps(&plan) {
            let data = resolved.data((namespace, name), keys, None).unwrap();
            for key in keys.iter().filter(|k| k.source == KeySource::Prompt) {
                assert_eq!(
                    data[&key.key].expose(),
                    format!("answer for {name}/{}", key.key)
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 2);
    }

    #[test]
    fn generated_values_are_kept() {
        let keys = vec![SecretKey {
            key: "admin-password".into(),
            source: KeySource::Generated,
        }];
        let resolved = Resolved {
            values: BTreeMap::new(),
        };
        let first = resolved.data(("ns", "s"), &keys, None).unwrap();
        assert_eq!(first["admin-password"].expose().len(), 32);
        let existing = KubeSecret {
            data: Some(to_bytes(&first)),
            ..Default::default()
        };
        let second = resolved.data(("ns", "s"), &keys, Some(&existing)).unwrap();
        assert_eq!(first, second);
        assert!(matches(Some(&existing), &second));
        assert_ne!(resolved.data(("ns", "s"), &keys, None).unwrap(), first);
    }
}
