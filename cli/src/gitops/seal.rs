//! The sops and sealed-secrets modes: a Secret is built in memory from its
//! sources and handed on stdin to `sops` (age recipients) or `kubeseal`
//! (the controller's certificate); only their encrypted output is kept.
//!
//! Encryption is not deterministic, so each encrypted object carries a
//! keyed digest of its plaintext ([`super::digest`]): a committed file with
//! the same digest is kept as it is (no new commit on every run), any
//! content change encrypts again; `--reseal` encrypts again regardless.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::SecretsMode;
use super::digest::{self, DigestKey};
use super::layout::{KeyValue, Pending, Target};
use crate::install::secrets::generate;
use crate::process::{ProcessError, Program};
use crate::secrets::{KeySource, Secret};

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("`{tool}` was not found on PATH; the {mode} secrets mode needs it")]
    Missing {
        tool: &'static str,
        mode: SecretsMode,
    },
    #[error("`{tool}` failed for {secret}: {output}")]
    Failed {
        tool: &'static str,
        secret: String,
        output: String,
    },
    #[error("cannot {mode} {secret}/{key}: {problem}")]
    Source {
        mode: SecretsMode,
        secret: String,
        key: String,
        problem: String,
    },
}

impl SealError {
    pub fn hint(&self) -> Option<String> {
        match self {
            SealError::Missing { tool: "sops", .. } => Some(
                "install sops (https://github.com/getsops/sops/releases) or choose another secrets mode (--secrets reference)".into(),
            ),
            SealError::Missing { .. } => Some(
                "install kubeseal (https://github.com/bitnami-labs/sealed-secrets/releases) or choose another secrets mode (--secrets reference)".into(),
            ),
            SealError::Source { .. } => Some(
                "sops and sealed-secrets need the values here: use {env: VAR} or {file: PATH} sources, or --secrets reference".into(),
            ),
            SealError::Failed { .. } => None,
        }
    }
}

/// What [`seal`] made.
#[derive(Debug, Default)]
pub struct Sealed {
    /// The encrypted files, path → content.
    pub files: BTreeMap<String, String>,
    /// `namespace/name key` of each generated value that got a new random
    /// value because the cluster's could not be read (the caller warns).
    pub generated: Vec<String>,
}

/// Encrypts the pending Secrets. `existing` reads the file as the branch
/// holds it; `cluster` the value a generated key has in the cluster
/// (namespace, name, key), reused so that encrypting again never rotates
/// a password Grafana and `verify` already use; `env` is the process
/// environment, passed in.
#[allow(clippy::too_many_arguments)]
pub fn seal(
    pending: &[Pending],
    target: &Target,
    existing: &dyn Fn(&str) -> Option<String>,
    reseal: bool,
    key: &DigestKey,
    cluster: &dyn Fn(&str, &str, &str) -> Option<Secret>,
    env: &dyn Fn(&str) -> Option<String>,
    tool: &dyn Fn(&'static str) -> String,
) -> Result<Sealed, SealError> {
    let mut out = BTreeMap::new();
    let mut generated = Vec::new();
    for p in pending {
        // Every value but the generated ones, which are made only when the
        // Secret is encrypted (a kept file keeps its generated password).
        let mut values = Vec::new();
        for (name, value) in &p.secret.keys {
            let value = resolve(value, env).map_err(|problem| SealError::Source {
                mode: target.secrets,
                secret: p.secret.name.clone(),
                key: name.clone(),
                problem,
            })?;
            values.push((name.clone(), value));
        }
        let content = key.digest(&p.secret.namespace, &p.secret.name, &values);
        if !reseal
            && let Some(text) = existing(&p.path)
            && committed_digest(&text).as_deref() == Some(content.as_str())
        {
            out.insert(p.path.clone(), text);
            continue;
        }
        let mut data = serde_json::Map::new();
        let empty = values.is_empty();
        for (name, value) in values {
            let value = match value {
                Some(v) => v,
                None => match cluster(&p.secret.namespace, &p.secret.name, &name) {
                    Some(v) => v,
                    None => {
                        generated.push(format!("{}/{} {name}", p.secret.namespace, p.secret.name));
                        generate().map_err(|e| SealError::Source {
                            mode: target.secrets,
                            secret: p.secret.name.clone(),
                            key: name.clone(),
                            problem: e.0,
                        })?
                    }
                },
            };
            data.insert(name, json!(value.expose()));
        }
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": p.secret.name, "namespace": p.secret.namespace,
                         "annotations": {digest::ANNOTATION: content}},
            "stringData": data,
        });
        let plain = Secret::new(super::yaml(&secret));
        let name = format!("{}/{}", p.secret.namespace, p.secret.name);
        let encrypted = match target.secrets {
            SecretsMode::Sops => {
                let recipients = target
                    .sops
                    .as_ref()
                    .map(|s| s.age.join(","))
                    .unwrap_or_default();
                run(
                    "sops",
                    &tool("sops"),
                    &[
                        "--encrypt",
                        "--age",
                        &recipients,
                        "--encrypted-regex",
                        "^(data|stringData)$",
                        "--input-type",
                        "yaml",
                        "--output-type",
                        "yaml",
                        "/dev/stdin",
                    ],
                    &plain,
                    &name,
                    target.secrets,
                )?
            }
            _ => {
                let cert = target
                    .sealed_secrets
                    .as_ref()
                    .map(|s| s.cert.clone())
                    .unwrap_or_default();
                let mut args = vec!["--cert", cert.as_str(), "--format", "yaml"];
                if empty {
                    // A Secret the stack mounts may have no key yet (no
                    // receiver configured); kubeseal refuses an empty one
                    // unless told it is meant.
                    args.push("--allow-empty-data");
                }
                let sealed = run(
                    "kubeseal",
                    &tool("kubeseal"),
                    &args,
                    &plain,
                    &name,
                    target.secrets,
                )?;
                with_digest(sealed, &content)
            }
        };
        out.insert(p.path.clone(), encrypted);
    }
    Ok(Sealed {
        files: out,
        generated,
    })
}

/// The program the secrets mode encrypts with, when it has one.
pub fn tool_of(mode: SecretsMode) -> Option<&'static str> {
    match mode {
        SecretsMode::Sops => Some("sops"),
        SecretsMode::SealedSecrets => Some("kubeseal"),
        SecretsMode::Reference | SecretsMode::ExternalSecrets => None,
    }
}

/// Refuses a mode whose program is not installed, before anything is
/// fetched (even when no Secret turns out to need encrypting again).
pub fn require_tool(
    mode: SecretsMode,
    tool: &dyn Fn(&'static str) -> String,
) -> Result<(), SealError> {
    match tool_of(mode) {
        Some(name) if !crate::process::on_path(&tool(name)) => {
            Err(SealError::Missing { tool: name, mode })
        }
        _ => Ok(()),
    }
}

/// A value as `up` would read it; `None` for a generated one.
fn resolve(
    value: &KeyValue,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, String> {
    let source = match value {
        KeyValue::Known(text) => return Ok(Some(Secret::new(text.clone()))),
        KeyValue::Source(s) => s,
    };
    match source {
        KeySource::Env(var) => env(var)
            .filter(|v| !v.is_empty())
            .map(|v| Some(Secret::new(v)))
            .ok_or_else(|| format!("environment variable {var} is not set")),
        KeySource::File(path) => std::fs::read_to_string(path)
            .map(|v| Some(Secret::new(v.trim_end_matches(['\n', '\r']))))
            .map_err(|e| format!("cannot read {path}: {e}")),
        KeySource::Fixed(v) => Ok(Some(Secret::new(v.clone()))),
        KeySource::Generated => Ok(None),
        KeySource::SecretRef { name, key } => Err(format!(
            "secretRef {name}/{key} lives in the cluster and is not read here"
        )),
        KeySource::Prompt => Err("a prompt source cannot be sealed unattended".into()),
    }
}

/// The content digest a committed sops Secret or SealedSecret was made
/// from: on the object (sops keeps metadata in clear) or, as kubeseal
/// copies it, on the SealedSecret's template.
fn committed_digest(text: &str) -> Option<String> {
    let value = serde_saphyr::from_str::<Value>(text).ok()?;
    [
        &value["metadata"]["annotations"][digest::ANNOTATION],
        &value["spec"]["template"]["metadata"]["annotations"][digest::ANNOTATION],
    ]
    .iter()
    .find_map(|v| v.as_str().map(str::to_string))
}

/// kubeseal's output with the digest on the SealedSecret itself, so a
/// later run finds it whatever kubeseal copied (the annotation is not
/// part of what the controller decrypts).
fn with_digest(sealed: String, content: &str) -> String {
    if committed_digest(&sealed).as_deref() == Some(content) {
        return sealed;
    }
    match serde_saphyr::from_str::<Value>(&sealed) {
        Ok(mut value) if value.is_object() => {
            if !value["metadata"].is_object() {
                value["metadata"] = json!({});
            }
            if !value["metadata"]["annotations"].is_object() {
                value["metadata"]["annotations"] = json!({});
            }
            value["metadata"]["annotations"][digest::ANNOTATION] = json!(content);
            super::yaml(&value)
        }
        _ => sealed,
    }
}

fn run(
    tool: &'static str,
    program: &str,
    args: &[&str],
    input: &Secret,
    secret: &str,
    mode: SecretsMode,
) -> Result<String, SealError> {
    // The plaintext goes on stdin only; the arguments name files and keys.
    let finished = Program::new(program)
        .args(args)
        .stdin(input.expose().as_bytes())
        .run()
        .map_err(|e| match e {
            ProcessError::NotFound { .. } => SealError::Missing { tool, mode },
            ProcessError::Failed { status, .. } => SealError::Failed {
                tool,
                secret: secret.to_string(),
                output: format!("exited with {status}: {}", e.stderr_tail(10)),
            },
            other => SealError::Failed {
                tool,
                secret: secret.to_string(),
                output: format!("could not run it: {other}"),
            },
        })?;
    Ok(finished.stdout_text())
}
