//! The cluster side: kube client, server-side apply, waits, lock, journal,
//! preflight.

mod error;
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

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError, LoadDataError};
use kube::{Client, Config};
use sha2::{Digest, Sha256};

pub use error::ClusterError;

/// How long to wait for a TCP connection to the API server: an unreachable
/// server must fail preflight quickly, not hang a CI job.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The cluster a command is about to act on, known from the kubeconfig alone.
#[derive(Debug, Clone)]
pub struct Target {
    pub context: String,
    pub server: String,
    /// SHA-256 of the cluster's CA certificate (DER), lowercase hex: what
    /// `openssl x509 -noout -fingerprint -sha256` prints, without colons.
    /// None when the kubeconfig names no CA (or it cannot be read).
    pub ca_sha256: Option<String>,
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
    /// acting on it takes an explicit confirmation (see [`production_word`]).
    pub fn looks_like_production(&self) -> bool {
        [&self.context, &self.server].iter().any(|text| {
            text.to_lowercase()
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(production_word)
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

/// Region and environment codes that, glued to `prod`/`prd`, still say
/// production (`prodeu1`, `usprod`, `prdwest`).
const REGIONS: [&str; 24] = [
    "eu", "us", "uk", "ap", "apac", "emea", "amer", "na", "sa", "ca", "me", "af", "de", "fr", "jp",
    "in", "au", "cn", "br", "east", "west", "north", "south", "central",
];

/// One alphanumeric word of a context name or server URL says production
/// when one of its letter runs (the word cut where letters meet digits:
/// `prod01` → `prod`, `01`) is `prod`, `prd`, `production` or `live`, or is
/// `prod`/`prd` glued to a region code on either side (`prodeu`, `euprod`).
/// Anything else containing those letters is an ordinary word: `product`,
/// `reproduce`, `delivery`, `livestock` are not production.
pub fn production_word(word: &str) -> bool {
    const WORDS: [&str; 4] = ["prod", "production", "prd", "live"];
    let bytes = word.as_bytes();
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=bytes.len() {
        if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
            runs.push(&word[start..i]);
            start = i;
        }
    }
    runs.into_iter()
        .filter(|run| !run.is_empty() && !run.as_bytes()[0].is_ascii_digit())
        .any(|run| {
            WORDS.contains(&run)
                || ["prod", "prd"].iter().any(|p| {
                    run.strip_prefix(p)
                        .is_some_and(|rest| REGIONS.contains(&rest))
                        || run
                            .strip_suffix(p)
                            .is_some_and(|rest| REGIONS.contains(&rest))
                })
        })
}

/// What the config pins: the context name, and optionally the API server
/// URL and the CA certificate's SHA-256, so a kubeconfig whose context has
/// the right name but points elsewhere is refused.
#[derive(Debug, Clone, Default)]
pub struct Pin<'a> {
    pub context: Option<&'a str>,
    pub server: Option<&'a str>,
    pub ca_sha256: Option<&'a str>,
}

impl<'a> Pin<'a> {
    pub fn of(cluster: &'a crate::model::config::Cluster) -> Pin<'a> {
        Pin {
            context: cluster.context.as_deref(),
            server: cluster.server.as_ref().map(|s| s.as_str()),
            ca_sha256: cluster.ca_sha256.as_ref().map(|s| s.as_str()),
        }
    }

    /// Why the target is not the pinned cluster, or Ok. Makes no request.
    pub fn check(&self, target: &Target) -> Result<(), ClusterError> {
        if let Some(pinned) = self.context
            && pinned != target.context
        {
            return Err(ClusterError::ContextPin {
                pinned: pinned.into(),
                context: target.context.clone(),
                server: target.server.clone(),
            });
        }
        if let Some(pinned) = self.server
            && normalize_server(pinned) != normalize_server(&target.server)
        {
            return Err(ClusterError::ServerPin {
                pinned: pinned.into(),
                context: target.context.clone(),
                server: target.server.clone(),
            });
        }
        if let Some(pinned) = self.ca_sha256
            && target.ca_sha256.as_deref() != Some(pinned)
        {
            return Err(ClusterError::CaPin {
                pinned: pinned.into(),
                context: target.context.clone(),
                found: target.ca_sha256.clone(),
            });
        }
        Ok(())
    }
}

fn normalize_server(url: &str) -> String {
    // The target's server is masked: a pin with a password compares masked too.
    crate::secrets::redact_credentials(url.trim())
        .trim_end_matches('/')
        .to_ascii_lowercase()
}

/// SHA-256 of the first certificate in PEM (or raw DER) bytes.
pub fn ca_digest(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let der = match text.find("-----BEGIN CERTIFICATE-----") {
        Some(start) => {
            let body = &text[start + "-----BEGIN CERTIFICATE-----".len()..];
            let end = body.find("-----END CERTIFICATE-----")?;
            let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD.decode(b64).ok()?
        }
        None if !bytes.is_empty() => bytes.to_vec(),
        None => return None,
    };
    Some(
        Sha256::digest(&der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// A kubeconfig error as a message that never quotes the file: a
/// kubeconfig holds tokens and keys, and a YAML error's snippet could show
/// one. A parse error keeps only its line and column.
pub fn redacted_kubeconfig_error(e: &KubeconfigError) -> String {
    match e {
        KubeconfigError::Parse(inner) => {
            let text = inner.to_string();
            let at = regex::Regex::new(r"line (\d+)[^0-9]{1,12}(\d+)")
                .ok()
                .and_then(|re| {
                    re.captures(&text)
                        .map(|c| format!(" at line {}, column {}", &c[1], &c[2]))
                })
                .unwrap_or_default();
            format!(
                "it is not a valid kubeconfig{at} (the content is not shown: a kubeconfig holds credentials)"
            )
        }
        KubeconfigError::ReadConfig(io, _) => io.to_string(),
        KubeconfigError::LoadCertificateAuthority(d) => {
            format!("cannot load the certificate authority: {}", load_data(d))
        }
        KubeconfigError::LoadClientCertificate(d) => {
            format!("cannot load the client certificate: {}", load_data(d))
        }
        KubeconfigError::LoadClientKey(d) => {
            format!("cannot load the client key: {}", load_data(d))
        }
        KubeconfigError::ParseCertificates(_) => {
            "the certificates are not valid PEM (not shown)".into()
        }
        other => other.to_string(),
    }
}

fn load_data(e: &LoadDataError) -> String {
    match e {
        LoadDataError::DecodeBase64(_) => "the data is not valid base64 (not shown)".into(),
        LoadDataError::ReadFile(io, path) => format!("{}: {io}", path.display()),
        _ => "no data".into(),
    }
}

fn read_kubeconfig(path: Option<&Path>) -> Result<Kubeconfig, ClusterError> {
    match path {
        Some(path) => {
            let mut merged: Option<Kubeconfig> = None;
            for file in std::env::split_paths(path) {
                let next = Kubeconfig::read_from(&file).map_err(|e| ClusterError::ReadFile {
                    file: file.display().to_string(),
                    reason: redacted_kubeconfig_error(&e),
                })?;
                merged = Some(match merged {
                    None => next,
                    Some(m) => m.merge(next).map_err(|e| ClusterError::Merge {
                        reason: redacted_kubeconfig_error(&e),
                    })?,
                });
            }
            merged.ok_or(ClusterError::EmptyPath)
        }
        None => Kubeconfig::read().map_err(|e| ClusterError::ReadDefault {
            reason: redacted_kubeconfig_error(&e),
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
pub fn contexts(kubeconfig: Option<&Path>) -> Result<Vec<ContextEntry>, ClusterError> {
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
) -> Result<(Target, Kubeconfig), ClusterError> {
    let config = read_kubeconfig(kubeconfig)?;
    let name = context
        .map(str::to_string)
        .or_else(|| config.current_context.clone())
        .ok_or(ClusterError::NoCurrentContext)?;
    let Some(ctx) = config.contexts.iter().find(|c| c.name == name) else {
        return Err(ClusterError::UnknownContext {
            name,
            known: config.contexts.iter().map(|c| c.name.clone()).collect(),
        });
    };
    let cluster_name = ctx
        .context
        .as_ref()
        .map(|c| c.cluster.clone())
        .unwrap_or_default();
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref());
    // Shown in reports, errors and the journal, and compared with the pin;
    // never used to connect (the kubeconfig is): a password in the URL is
    // masked here, once.
    let server = crate::secrets::redact_credentials(
        &cluster.and_then(|c| c.server.clone()).unwrap_or_default(),
    );
    let ca_sha256 = cluster.and_then(|c| {
        if let Some(data) = &c.certificate_authority_data {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .ok()?;
            ca_digest(&bytes)
        } else if let Some(file) = &c.certificate_authority {
            ca_digest(&std::fs::read(file).ok()?)
        } else {
            None
        }
    });
    Ok((
        Target {
            context: name,
            server,
            ca_sha256,
            kubeconfig: kubeconfig.map(Path::to_path_buf),
        },
        config,
    ))
}

/// Builds a client for the target. Nothing is sent to the server yet.
pub async fn connect(target: Target, config: Kubeconfig) -> Result<Kube, ClusterError> {
    let options = KubeConfigOptions {
        context: Some(target.context.clone()),
        ..Default::default()
    };
    let mut client_config = Config::from_custom_kubeconfig(config, &options)
        .await
        .map_err(|e| ClusterError::UseContext {
            context: target.context.clone(),
            reason: redacted_kubeconfig_error(&e),
        })?;
    client_config.connect_timeout = Some(CONNECT_TIMEOUT);
    client_config.read_timeout = Some(REQUEST_TIMEOUT);
    client_config.write_timeout = Some(REQUEST_TIMEOUT);
    let client = Client::try_from(client_config).map_err(|source| ClusterError::Client {
        server: target.server.clone(),
        source,
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
            ca_sha256: None,
            kubeconfig: None,
        }
    }

    #[test]
    fn production_names_by_word_and_region_not_by_substring() {
        for name in [
            "prod",
            "prod-eu-1",
            "eks-prod01",
            "prod1",
            "prodeu1",
            "prd-payments",
            "shop-live",
            "gke_org_PRD_cluster",
            "production",
            "usprod",
            "euprod2",
            "prdwest",
            "arn:aws:eks:eu-west-1:123456789012:cluster/prod",
        ] {
            assert!(
                t(name, "").looks_like_production(),
                "{name} should look like production"
            );
        }
        for name in [
            "product-demo",
            "reproduce",
            "products-dev",
            "delivery",
            "livestock",
            "kind-telltale",
            "staging",
            "prodigy",
            "dev-eu1",
            "improd",
            "productionish",
        ] {
            assert!(
                !t(name, "").looks_like_production(),
                "{name} should not look like production"
            );
        }
        assert!(t("eks", "https://api.live.example.com").looks_like_production());
    }

    #[test]
    fn the_pin_covers_server_and_ca() {
        let mut target = t("kind-telltale", "https://127.0.0.1:6443/");
        target.ca_sha256 = Some("ab".repeat(32));
        let ok = Pin {
            context: Some("kind-telltale"),
            server: Some("https://127.0.0.1:6443"),
            ca_sha256: Some(&"ab".repeat(32)),
        };
        assert!(ok.check(&target).is_ok());
        let other_server = Pin {
            server: Some("https://10.0.0.1:6443"),
            ..ok.clone()
        };
        let e = other_server.check(&target).unwrap_err();
        assert!(!e.is_bad_input());
        assert!(e.to_string().contains("10.0.0.1"), "{e}");
        let other_ca = "cd".repeat(32);
        let e = Pin {
            ca_sha256: Some(&other_ca),
            ..ok.clone()
        }
        .check(&target)
        .unwrap_err();
        assert!(e.to_string().contains("CA sha256"), "{e}");
        target.ca_sha256 = None;
        assert!(ok.check(&target).is_err());
    }

    /// A password inside the kubeconfig's server URL never reaches what a
    /// report, an error or the journal shows (`up`/`status` `-o json` name
    /// the server), and a pin written with it still matches.
    #[test]
    fn a_password_in_the_server_url_is_masked_in_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let canary = "kubeconfig-server-canary-7f3a";
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: lab\nclusters:\n- name: lab\n  cluster: {{server: \"https://admin:{canary}@10.0.0.1:6443\"}}\ncontexts:\n- name: lab\n  context: {{cluster: lab, user: lab}}\nusers:\n- name: lab\n  user: {{token: t}}\n"
            ),
        )
        .unwrap();
        let (target, _) = target(Some(&kubeconfig), None).unwrap();
        assert_eq!(target.server, "https://***@10.0.0.1:6443");
        assert!(!format!("{target:?}").contains(canary));
        let pin = Pin {
            context: Some("lab"),
            server: Some(&format!("https://admin:{canary}@10.0.0.1:6443/")),
            ca_sha256: None,
        };
        assert!(pin.check(&target).is_ok());
    }

    #[test]
    fn ca_digest_is_the_sha256_of_the_der() {
        let der = b"not really a certificate";
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
        let expected: String = Sha256::digest(der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(ca_digest(pem.as_bytes()), Some(expected.clone()));
        assert_eq!(ca_digest(der), Some(expected));
        assert_eq!(ca_digest(b""), None);
    }

    #[test]
    fn production_looking_contexts_and_servers() {
        assert!(t("prod-eu-1", "https://10.0.0.1").looks_like_production());
        assert!(t("eks", "https://api.live.example.com").looks_like_production());
        assert!(t("gke_org_PRD_cluster", "").looks_like_production());
        assert!(!t("kind-telltale", "https://127.0.0.1:6443").looks_like_production());
        // Words, not substrings: "products" and "delivery" are not production.
        assert!(!t("products-dev", "https://delivery.example.com").looks_like_production());
    }
}
