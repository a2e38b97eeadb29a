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

/// Renders `source` as a template; an unknown variable is an error.
pub fn render(source: &Source, ctx: &Context) -> Result<Source, LocatedError> {
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
                .with_hint("values.yaml and manifests may use {{ namespace }}, {{ cluster }} and {{ profile }}; wrap other braces in {% raw %}…{% endraw %}")
        })
}
