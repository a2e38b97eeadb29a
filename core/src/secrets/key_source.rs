//! Where one key of a planned Secret comes from: a secret source of the
//! config, a value generated once and kept, or a fixed non-secret constant.
//!
//! plan.json writes it as one string (`env:VAR`, `file:PATH`,
//! `secretRef:name/key`, `prompt`, `generated`, `fixed:VALUE`). It is parsed
//! once, where a plan is read; an unrecognised string is an error, never a
//! generated password. Errors never repeat the text: a hand-edited plan may
//! hold a pasted secret.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::SecretSource;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeySource {
    Env(String),
    File(String),
    SecretRef {
        name: String,
        key: String,
    },
    Prompt,
    /// 32 random characters made once and kept while the Secret exists.
    Generated,
    /// A constant that is not secret, such as a user name.
    Fixed(String),
}

impl From<&SecretSource> for KeySource {
    fn from(source: &SecretSource) -> KeySource {
        match source {
            SecretSource::Env(var) => KeySource::Env(var.clone()),
            SecretSource::File(path) => KeySource::File(path.clone()),
            SecretSource::SecretRef { name, key } => KeySource::SecretRef {
                name: name.clone(),
                key: key.clone(),
            },
            SecretSource::Prompt => KeySource::Prompt,
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env(var) => write!(f, "env:{var}"),
            KeySource::File(path) => write!(f, "file:{path}"),
            KeySource::SecretRef { name, key } => write!(f, "secretRef:{name}/{key}"),
            KeySource::Prompt => f.write_str("prompt"),
            KeySource::Generated => f.write_str("generated"),
            KeySource::Fixed(value) => write!(f, "fixed:{value}"),
        }
    }
}

/// Why a plan's source string is refused (the string itself is not shown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a secret source: {0} (expected env:VAR, file:PATH, secretRef:NAME/KEY, prompt, generated or fixed:VALUE; the text is not shown)"
)]
pub struct BadKeySource(&'static str);

impl FromStr for KeySource {
    type Err = BadKeySource;

    fn from_str(text: &str) -> Result<KeySource, BadKeySource> {
        if let Some(var) = text.strip_prefix("env:") {
            crate::model::validate::env_var_name(var)
                .map_err(|_| BadKeySource("env: takes a variable name"))?;
            return Ok(KeySource::Env(var.into()));
        }
        if let Some(path) = text.strip_prefix("file:") {
            if path.trim().is_empty() || path.contains('\0') {
                return Err(BadKeySource("file: takes a path"));
            }
            return Ok(KeySource::File(path.into()));
        }
        if let Some(r) = text.strip_prefix("secretRef:") {
            return match r.split_once('/') {
                Some((name, key)) if !name.is_empty() && !key.is_empty() => {
                    Ok(KeySource::SecretRef {
                        name: name.into(),
                        key: key.into(),
                    })
                }
                _ => Err(BadKeySource("secretRef: takes NAME/KEY")),
            };
        }
        if let Some(value) = text.strip_prefix("fixed:") {
            return Ok(KeySource::Fixed(value.into()));
        }
        match text {
            "prompt" => Ok(KeySource::Prompt),
            "generated" => Ok(KeySource::Generated),
            _ => Err(BadKeySource("unknown kind")),
        }
    }
}

impl Serialize for KeySource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeySource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_plan_string() {
        let all = [
            (
                "env:TWILIO_AUTH_TOKEN",
                KeySource::Env("TWILIO_AUTH_TOKEN".into()),
            ),
            (
                "file:/run/secrets/pg",
                KeySource::File("/run/secrets/pg".into()),
            ),
            (
                "secretRef:pg/password",
                KeySource::SecretRef {
                    name: "pg".into(),
                    key: "password".into(),
                },
            ),
            ("prompt", KeySource::Prompt),
            ("generated", KeySource::Generated),
            ("fixed:admin", KeySource::Fixed("admin".into())),
        ];
        for (text, source) in all {
            assert_eq!(text.parse::<KeySource>().as_ref(), Ok(&source), "{text}");
            assert_eq!(source.to_string(), text);
            let json = serde_json::to_string(&source).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<KeySource>(&json).unwrap(), source);
        }
    }

    #[test]
    fn an_unrecognised_source_is_an_error_that_hides_the_text() {
        for bad in [
            "canary-hunter2",
            "",
            "Generated",
            "env:",
            "env:fake-canary-not-a-variable-name",
            "file:",
            "secretRef:pg",
            "secretRef:/password",
            "prompt ",
        ] {
            let e = bad.parse::<KeySource>().unwrap_err();
            let shown = e.to_string();
            assert!(shown.starts_with("not a secret source"), "{bad}: {shown}");
            assert!(!shown.contains("canary"), "{shown}");
            let json = serde_json::to_string(bad).unwrap();
            assert!(serde_json::from_str::<KeySource>(&json).is_err(), "{bad}");
        }
    }
}
