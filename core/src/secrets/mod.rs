//! Secret sources and the redacting secret type.
//!
//! A secret in telltale is always a *source* — an environment variable, a
//! file, an existing Kubernetes Secret or a prompt — never a literal in a
//! file. Resolved values live in [`Secret`], whose Debug and Display print a
//! placeholder, so a log line or an error cannot leak one by accident.

mod key_source;
mod redact;

use std::fmt;

pub use key_source::{BadKeySource, KeySource};
pub use redact::redact_credentials;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SecretSource {
    Env(String),
    File(String),
    SecretRef { name: String, key: String },
    Prompt,
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(var) => write!(f, "env:{var}"),
            SecretSource::File(path) => write!(f, "file:{path}"),
            SecretSource::SecretRef { name, key } => write!(f, "secretRef:{name}/{key}"),
            SecretSource::Prompt => f.write_str("prompt"),
        }
    }
}

pub const LITERAL_SECRET: &str = "a literal secret is not allowed here; write {env: VAR}, {file: PATH}, \
{secretRef: {name: NAME, key: KEY}} or {prompt: true}";

/// Said (with the snippet redacted) when `{env: …}` holds something that is
/// not a variable name: usually the secret itself, pasted.
pub const NOT_AN_ENV_NAME: &str = "`env` takes the name of an environment variable (letters, digits, `_`), \
not its value; the value given is not shown";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Repr {
    env: Option<String>,
    file: Option<String>,
    secret_ref: Option<SecretRefRepr>,
    prompt: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRefRepr {
    name: String,
    key: String,
}

impl Repr {
    fn into_source(self) -> Result<SecretSource, &'static str> {
        let given = [
            self.env.is_some(),
            self.file.is_some(),
            self.secret_ref.is_some(),
            self.prompt.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err("a secret source needs exactly one of env, file, secretRef, prompt");
        }
        if let Some(var) = self.env {
            if crate::model::validate::env_var_name(&var).is_err() {
                return Err(NOT_AN_ENV_NAME);
            }
            return Ok(SecretSource::Env(var));
        }
        if let Some(path) = self.file {
            if path.trim().is_empty() || path.len() > 4096 || path.contains('\0') {
                return Err("`file` takes the path of a file holding the secret");
            }
            return Ok(SecretSource::File(path));
        }
        if let Some(r) = self.secret_ref {
            return Ok(SecretSource::SecretRef {
                name: r.name,
                key: r.key,
            });
        }
        match self.prompt {
            Some(true) => Ok(SecretSource::Prompt),
            _ => Err("`prompt: false` is not a source; use env, file or secretRef"),
        }
    }
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SourceVisitor;
        impl<'de> Visitor<'de> for SourceVisitor {
            type Value = SecretSource;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a secret source ({env: VAR}, {file: PATH}, {secretRef: {name, key}} or {prompt: true})")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretSource, E> {
                Err(E::custom(LITERAL_SECRET))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretSource, E> {
                Err(E::custom(LITERAL_SECRET))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretSource, E> {
                Err(E::custom(LITERAL_SECRET))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SecretSource, A::Error> {
                let repr = Repr::deserialize(de::value::MapAccessDeserializer::new(map))?;
                repr.into_source().map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_any(SourceVisitor)
    }
}

/// A resolved secret value. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must hand it on (a Kubernetes Secret's data).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::yaml::{Source, parse};

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Holder {
        s: SecretSource,
    }

    #[test]
    fn sources_parse() {
        let h: Holder = parse(&Source::new("x", "s: {env: TOKEN}\n"), "x").unwrap();
        assert_eq!(h.s, SecretSource::Env("TOKEN".into()));
        let h: Holder = parse(
            &Source::new("x", "s: {secretRef: {name: a, key: b}}\n"),
            "x",
        )
        .unwrap();
        assert_eq!(h.s.to_string(), "secretRef:a/b");
    }

    #[test]
    fn literal_is_refused_with_location() {
        let e = parse::<Holder>(&Source::new("x.yaml", "s: hunter2\n"), "x").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(
            e.message.contains("a literal secret is not allowed"),
            "{}",
            e.message
        );
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn a_value_pasted_as_an_env_name_is_refused_unseen() {
        let pasted = format!("xoxb-{}", "canary-env-0123456789");
        let text = format!("s: {{env: \"{pasted}\"}}\n");
        let e = parse::<Holder>(&Source::new("x.yaml", text), "x").unwrap_err();
        assert!(e.message.contains("name of an environment variable"), "{e}");
        let shown = format!("{e} {:?}", e.snippet);
        assert!(!shown.contains("canary-env"), "{shown}");
    }

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("canary-123");
        assert!(!format!("{s} {s:?}").contains("canary"));
        assert_eq!(s.expose(), "canary-123");
    }
}
