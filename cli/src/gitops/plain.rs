//! The plain layout: the bundle as `plan --out` writes it, under the path,
//! with its Secrets handled per the secrets mode like the other layouts,
//! its objects in the same layers, and a top kustomization.yaml listing the
//! layers in the order they are applied (crds, secrets, manifests; the
//! releases, from plan.json and values/, go between secrets and manifests).

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
    let layers = layout::layer_dirs(&m, target, &mut files);
    files.insert(
        target.join("kustomization.yaml"),
        layout::kustomization(&layers.iter().map(|l| l.to_string()).collect::<Vec<_>>()),
    );
    Ok(Rendered {
        files,
        pending: m.pending,
        secrets: m.secrets,
    })
}
