//! The plain layout: the bundle as `plan --out` writes it, under the path,
//! with its Secrets handled per the secrets mode like the other layouts.

use std::collections::BTreeMap;

use super::layout::{self, LayoutError, Rendered, Target};
use crate::render::Bundle;

pub fn render(bundle: &Bundle, target: &Target) -> Result<Rendered, LayoutError> {
    let m = layout::manifests(bundle, target)?;
    let mut files = BTreeMap::new();
    for (path, content) in &bundle.files {
        if !path.starts_with("manifests/") {
            files.insert(target.join(path), content.clone());
        }
    }
    files.insert(target.join("plan.json"), bundle.plan_json.clone());
    layout::manifests_dir(&m, target, &mut files);
    Ok(Rendered {
        files,
        pending: m.pending,
        secrets: m.secrets,
    })
}
