//! The core's own content: the base manifests (one directory per phase)
//! and the runbooks of the core alerts.

use super::builder::Builder;
use super::{RenderError, objects, template};
use crate::model::{LocatedError, Phase, Source};

/// The stage: base objects, then the core runbooks.
pub fn add(b: &mut Builder<'_>) -> Result<(), RenderError> {
    let manifests = &b.catalog.manifests;
    for dir in manifests.subdirs() {
        let phase = Phase::from_name(&dir)
            .filter(|p| p.installable())
            .ok_or_else(|| {
                LocatedError::new(
                    &Source::new(manifests.display(&dir), ""),
                    1,
                    1,
                    format!("`{dir}` is not a phase that installs objects"),
                )
            })?;
        for (_, source) in manifests.files_in(&dir, ".yaml") {
            let rendered = template::render(&source, &b.ctx)?;
            for o in objects::parse(&rendered, &b.r.namespace, "core")? {
                b.objects.push((phase, o));
            }
        }
    }
    for (name, source) in b.catalog.runbooks.files_in("", ".md") {
        b.files.add(
            "runbook",
            format!("runbooks/{name}"),
            &source.name,
            source.text,
        )?;
    }
    Ok(())
}
