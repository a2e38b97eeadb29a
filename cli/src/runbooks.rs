//! Which runbook each alert of the catalogue links to (for `runbook` and
//! its shell completion).

use crate::catalog::Catalog;
use crate::error::CommandError;
use crate::render::rules::parse_rule_file;

/// Every alert in the catalogue with the runbook file name it links to.
pub fn alert_runbooks(catalog: &Catalog) -> Result<Vec<(String, String, String)>, CommandError> {
    let mut out = Vec::new();
    for entry in catalog.plugins.values() {
        for (file, source) in entry.files.files_in("rules", ".yaml") {
            let group = parse_rule_file(&source, file.trim_end_matches(".yaml"))?;
            for rule in group.rules {
                let (Some(alert), Some(url)) = (rule.alert, rule.annotations.get("runbook_url"))
                else {
                    continue;
                };
                let runbook = url.rsplit('/').next().unwrap_or_default().to_string();
                out.push((alert, runbook, entry.name().to_string()));
            }
        }
    }
    Ok(out)
}
