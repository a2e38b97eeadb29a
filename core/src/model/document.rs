//! The versioned header every telltale document carries.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::yaml::{LocatedError, Source, parse};

pub const API_VERSION: &str = "telltale.dev/v1alpha1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Config,
    Profile,
    Plugin,
    Fleet,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Config => "Config",
            Kind::Profile => "Profile",
            Kind::Plugin => "Plugin",
            Kind::Fleet => "Fleet",
        }
    }

    fn article(self) -> String {
        format!("a {API_VERSION} {}", self.name())
    }
}

/// Only the header; everything else is ignored here.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    api_version: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
}

/// Parses `source` as a document of `kind`, checking the header first so a
/// Profile given where a Config belongs gets that message, not a list of
/// unknown fields.
pub fn parse_document<T: serde::de::DeserializeOwned>(
    source: &Source,
    kind: Kind,
) -> Result<T, LocatedError> {
    let what = kind.article();
    let header: Header = parse(source, &what)?;
    match &header.kind {
        None => {
            return Err(LocatedError::new(
                source,
                1,
                1,
                format!("missing `kind`; expected {what}"),
            )
            .with_hint(format!(
                "start the document with `apiVersion: {API_VERSION}` and `kind: {}`",
                kind.name()
            )));
        }
        Some(k) if k.value != kind.name() => {
            let loc = k.referenced;
            return Err(LocatedError::new(
                source,
                loc.line(),
                loc.column(),
                format!("this is a `{}` document; expected {what}", k.value),
            )
            .at_path("kind"));
        }
        Some(_) => {}
    }
    match &header.api_version {
        Some(v) if v.value != API_VERSION => {
            let loc = v.referenced;
            return Err(LocatedError::new(
                source,
                loc.line(),
                loc.column(),
                format!(
                    "unsupported apiVersion `{}`; expected `{API_VERSION}`",
                    v.value
                ),
            )
            .at_path("apiVersion"));
        }
        None => {
            return Err(LocatedError::new(
                source,
                1,
                1,
                format!("missing `apiVersion`; expected `{API_VERSION}`"),
            ));
        }
        Some(_) => {}
    }
    parse(source, &what)
}
