//! minijinja for values.yaml and manifests: a few variables, strict.

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::model::{LocatedError, Source};

#[derive(Debug, Clone, Serialize)]
pub struct Context {
    pub namespace: String,
    pub cluster: String,
    pub profile: String,
}

/// The context of manifests and overlays: the plugin's resolved values too.
#[derive(Debug, Clone, Serialize)]
struct WithValues<'a> {
    #[serde(flatten)]
    ctx: &'a Context,
    values: &'a serde_json::Value,
}

/// Renders a manifest or overlay: `namespace`, `cluster`, `profile` and the
/// plugin's resolved `values` (defaults < profile < config < --set).
pub fn render_with_values(
    source: &Source,
    ctx: &Context,
    values: &serde_json::Value,
) -> Result<Source, LocatedError> {
    render_any(source, &WithValues { ctx, values })
}

/// Renders `source` as a template; an unknown variable is an error.
pub fn render(source: &Source, ctx: &Context) -> Result<Source, LocatedError> {
    render_any(source, ctx)
}

fn render_any<T: Serialize>(source: &Source, ctx: &T) -> Result<Source, LocatedError> {
    // Most content has no template syntax at all: skip the engine.
    if !source.text.contains("{{") && !source.text.contains("{%") {
        return Ok(source.clone());
    }
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.render_str(&source.text, ctx)
        .map(|text| Source::new(source.name.clone(), text))
        .map_err(|e| {
            let line = e.line().unwrap_or(1) as u64;
            LocatedError::new(source, line, 1, format!("template error: {}", e.detail().unwrap_or("invalid template")))
                .with_hint("values.yaml may use {{ namespace }}, {{ cluster }} and {{ profile }}, manifests and overlays also {{ values.KEY }}; wrap other braces in {% raw %}…{% endraw %}")
        })
}
