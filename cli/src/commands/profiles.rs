//! `telltale profiles list|show`

use clap::{Args, Subcommand};
use serde::Serialize;

use super::GlobalArgs;
use crate::catalog::Catalog;
use crate::error::CommandError;
use crate::render::{Request, resolve};
use crate::ui::{Printer, table};

#[derive(Debug, Subcommand)]
pub enum ProfilesCommand {
    /// List the built-in profiles
    List,
    /// Show a profile: its chain, plugins and document
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A built-in profile name or a path to a Profile file
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct ProfileSummary {
    pub name: String,
    pub description: String,
    pub extends: Option<String>,
    /// The plugins the profile enables, through its whole chain.
    pub plugins: Vec<String>,
}

fn summary(catalog: &Catalog, name: &str) -> Result<(ProfileSummary, Vec<String>), CommandError> {
    let entry = catalog.profile(name)?;
    let resolved = resolve(
        catalog,
        &Request {
            profile: Some(name.to_string()),
            ..Request::default()
        },
    )?;
    Ok((
        ProfileSummary {
            name: entry.profile.metadata.name.clone(),
            description: entry
                .profile
                .metadata
                .description
                .clone()
                .unwrap_or_default(),
            extends: entry.profile.spec.extends.clone(),
            plugins: resolved
                .plugins
                .iter()
                .map(|p| p.name().to_string())
                .collect(),
        },
        resolved.profile_chain,
    ))
}

pub fn run(
    cmd: ProfilesCommand,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<(), CommandError> {
    let catalog = global.catalog()?;
    match cmd {
        ProfilesCommand::List => {
            let summaries = catalog
                .profile_names()
                .iter()
                .map(|n| summary(&catalog, n).map(|(s, _)| s))
                .collect::<Result<Vec<_>, _>>()?;
            if printer.is_json() {
                printer.json(&summaries);
            } else {
                let rows = summaries
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.extends.clone().unwrap_or_else(|| "—".into()),
                            s.description.clone(),
                        ]
                    })
                    .collect();
                printer.out(&table::render(&["name", "extends", "description"], rows));
            }
        }
        ProfilesCommand::Show(args) => {
            let (s, chain) = summary(&catalog, &args.name)?;
            let source = catalog.profile(&args.name)?.source;
            if printer.is_json() {
                printer.json(&serde_json::json!({
                    "name": s.name, "description": s.description, "extends": s.extends,
                    "chain": chain, "plugins": s.plugins, "source": source.name, "document": source.text,
                }));
            } else {
                printer.out(&format!(
                    "{}: {}\nchain:   {}\nplugins: {}\nsource:  {}\n\n{}",
                    s.name,
                    s.description,
                    chain.join(" → "),
                    s.plugins.join(", "),
                    source.name,
                    source.text.trim_end()
                ));
            }
        }
    }
    Ok(())
}
