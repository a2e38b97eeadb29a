//! A bundle read back from a directory (`verify --bundle`): its text is
//! parsed once, here, into the same typed data render produces, so nothing
//! downstream parses a file again. The caller has already checked every
//! file against plan.json's digests.

use std::collections::BTreeMap;

use super::Bundle;
use super::objects::Object;
use super::plan::{Plan, Step};
use super::routes::{self, RoutesTest};
use crate::model::Source;
use crate::model::node::Node;
use crate::model::yaml::parse;

impl Bundle {
    /// The bundle of `files`, as plan.json (`plan_json`, parsed into
    /// `plan`) describes it. Errors say which file does not hold what the
    /// plan says it holds.
    pub fn from_files(
        files: BTreeMap<String, String>,
        plan: Plan,
        plan_json: String,
    ) -> Result<Bundle, String> {
        let routes: RoutesTest = match files.get(routes::FILE) {
            Some(text) => parse(&Source::new(routes::FILE, text.clone()), "routing tests")
                .map_err(|e| e.to_string())?,
            None => return Err(format!("{} is missing", routes::FILE)),
        };
        let mut objects = BTreeMap::new();
        for step in plan.phases.iter().flat_map(|p| &p.steps) {
            let Step::Apply { file, .. } = step else {
                continue;
            };
            let text = files
                .get(file)
                .ok_or_else(|| format!("{file} is missing"))?;
            let node: Node = parse(
                &Source::new(file.clone(), text.clone()),
                "a Kubernetes object",
            )
            .map_err(|e| e.to_string())?;
            let value = node.to_json();
            let owner = value["metadata"]["labels"]["telltale.dev/component"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            objects.insert(file.clone(), Object { value, owner });
        }
        let mut values = BTreeMap::new();
        for release in &plan.releases {
            let text = files
                .get(&release.values)
                .ok_or_else(|| format!("{} is missing", release.values))?;
            let node: Node = parse(
                &Source::new(release.values.clone(), text.clone()),
                "helm values",
            )
            .map_err(|e| e.to_string())?;
            values.insert(release.values.clone(), node.to_json());
        }
        Ok(Bundle {
            files,
            plan,
            plan_json,
            // The declared rules are render's input, not a file: the pairs
            // they make are in `routes`.
            inhibitions: Vec::new(),
            routes,
            objects,
            values,
        })
    }
}
