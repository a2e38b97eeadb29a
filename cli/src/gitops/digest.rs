//! The content digest that tells whether an encrypted Secret is stale.
//!
//! sops and kubeseal encrypt with fresh randomness, so the committed
//! ciphertext cannot be compared with the plaintext. Each encrypted object
//! carries an annotation [`ANNOTATION`] with a digest of the plaintext it
//! was made from; a run re-encrypts exactly when that digest changes.
//!
//! Why an HMAC and not a plain sha256: the annotation is committed (and
//! lands on the Secret in the cluster). A plain hash of a short password or
//! a webhook token is a brute-force target for anyone who can read the
//! repository. The digest is HMAC-SHA256 under a 256-bit key that is never
//! committed: `TELLTALE_GITOPS_DIGEST_KEY` (set it in CI so every runner
//! agrees), else a random key kept in `~/.config/telltale/gitops-digest.key`
//! (mode 0600), made on first use. Without the key the digest says nothing
//! about the values. A different key (another machine) only means one
//! re-encryption: the annotation names the key by an id derived from it, so
//! a digest under another key is never taken as a match.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::secrets::Secret;

/// The annotation on the encrypted Secret/SealedSecret.
pub const ANNOTATION: &str = "telltale.dev/content-digest";
/// The environment variable that holds the key (any string; hashed to 32 bytes).
pub const KEY_ENV: &str = "TELLTALE_GITOPS_DIGEST_KEY";

/// Why there is no key: the environment names no place for it, or the
/// key file cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("neither {KEY_ENV} nor HOME is set")]
    NoPlace,
    #[error("no randomness for the key")]
    Random(#[source] getrandom::Error),
    #[error("cannot create {}", .dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", .file.display())]
    Write {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An HMAC key. Debug never shows it.
pub struct DigestKey([u8; 32]);

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey(<redacted>)")
    }
}

impl DigestKey {
    pub fn from_text(text: &str) -> DigestKey {
        DigestKey(Sha256::digest(text.as_bytes()).into())
    }

    /// The key from `TELLTALE_GITOPS_DIGEST_KEY`, else the user's key file
    /// (created when missing). `home` is `$XDG_CONFIG_HOME` or `$HOME/.config`.
    pub fn load(env: &dyn Fn(&str) -> Option<String>) -> Result<DigestKey, DigestError> {
        if let Some(text) = env(KEY_ENV).filter(|t| !t.is_empty()) {
            return Ok(DigestKey::from_text(&text));
        }
        let dir = env("XDG_CONFIG_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")))
            .ok_or(DigestError::NoPlace)?
            .join("telltale");
        let file = dir.join("gitops-digest.key");
        if let Ok(text) = std::fs::read_to_string(&file) {
            return Ok(DigestKey::from_text(text.trim()));
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(DigestError::Random)?;
        let text = hex(&bytes);
        std::fs::create_dir_all(&dir).map_err(|source| DigestError::CreateDir {
            dir: dir.clone(),
            source,
        })?;
        write_private(&file, &text).map_err(|source| DigestError::Write {
            file: file.clone(),
            source,
        })?;
        Ok(DigestKey::from_text(&text))
    }

    /// Names the key without revealing it.
    fn id(&self) -> String {
        hex(&self.mac(b"telltale key id")[..4])
    }

    /// HMAC-SHA256 (RFC 2104); the key is exactly one hash block's half.
    fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.0);
        let pad = |byte: u8| -> Vec<u8> { block.iter().map(|b| b ^ byte).collect() };
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize()
            .into()
    }

    /// The annotation value for a Secret's content: every key and value,
    /// length-prefixed so no two contents share an encoding. A `None` value
    /// (a generated one) counts as the word "generated", so a generated
    /// password alone never makes the Secret stale.
    pub fn digest(&self, namespace: &str, name: &str, keys: &[(String, Option<Secret>)]) -> String {
        let mut message = Vec::new();
        let mut field = |bytes: &[u8]| {
            message.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            message.extend_from_slice(bytes);
        };
        field(namespace.as_bytes());
        field(name.as_bytes());
        let mut sorted: Vec<&(String, Option<Secret>)> = keys.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, value) in sorted {
            field(key.as_bytes());
            match value {
                Some(v) => field(v.expose().as_bytes()),
                None => field(b"\0generated"),
            }
        }
        format!("hmac-sha256:{}:{}", self.id(), hex(&self.mac(&message)))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &str) -> Vec<(String, Option<Secret>)> {
        vec![("url".into(), Some(Secret::new(v))), ("pw".into(), None)]
    }

    #[test]
    fn content_name_and_key_change_the_digest() {
        let k = DigestKey::from_text("k");
        let a = k.digest("ns", "s", &keys("a"));
        assert_eq!(a, k.digest("ns", "s", &keys("a")), "deterministic");
        assert_ne!(a, k.digest("ns", "s", &keys("b")), "content counts");
        assert_ne!(a, k.digest("ns", "t", &keys("a")), "the name counts");
        assert_ne!(
            a,
            DigestKey::from_text("other").digest("ns", "s", &keys("a")),
            "another key, another digest (and id)"
        );
        // A plain sha256 of the value does not appear.
        let plain = hex(&Sha256::digest(b"a"));
        assert!(!a.contains(&plain));
    }

    #[test]
    fn hmac_is_standard() {
        // Python's hmac.new(b"\x0b" * 32, b"Hi There", hashlib.sha256).
        let k = DigestKey([0x0b; 32]);
        assert_eq!(
            hex(&k.mac(b"Hi There")),
            "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"
        );
    }
}
