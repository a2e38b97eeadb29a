//! The one pull request, through the GitHub REST API (octocrab): found by
//! its head branch and base, updated when its title or body changed,
//! created when there is none. `--github-api-url` points at GitHub
//! Enterprise (or, in the tests, at a fake).

use octocrab::Octocrab;
use octocrab::params::State;

use crate::secrets::Secret;

pub const DEFAULT_API_URL: &str = "https://api.github.com";

#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("`{0}` is not an API URL: {1}")]
    ApiUrl(String, String),
    #[error("GitHub API at {api}: {action} failed: {message}")]
    Api {
        api: String,
        action: &'static str,
        message: String,
    },
}

/// `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoName {
    pub owner: String,
    pub name: String,
}

impl std::fmt::Display for RepoName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

impl RepoName {
    pub fn parse(text: &str) -> Option<RepoName> {
        let (owner, name) = text.trim_end_matches(".git").split_once('/')?;
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        (valid(owner) && valid(name)).then(|| RepoName {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }

    /// `owner/name` from a github.com remote: `git@github.com:o/r.git`,
    /// `ssh://git@github.com/o/r.git`, `https://github.com/o/r(.git)`.
    pub fn from_remote(url: &str) -> Option<RepoName> {
        let rest = url
            .strip_prefix("git@github.com:")
            .or_else(|| url.strip_prefix("ssh://git@github.com/"))
            .or_else(|| url.strip_prefix("https://github.com/"))
            .or_else(|| {
                // https://user@github.com/… or with a token
                let after = url.strip_prefix("https://")?;
                after.split_once("@github.com/").map(|(_, r)| r)
            })?;
        RepoName::parse(rest.trim_end_matches('/'))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrAction {
    Created,
    Updated,
    Unchanged,
}

#[derive(Debug, Clone)]
pub struct PullRequest {
    pub number: u64,
    pub url: String,
    pub action: PrAction,
}

pub struct PrRequest<'a> {
    pub api_url: &'a str,
    pub token: &'a Secret,
    pub repo: &'a RepoName,
    pub head: &'a str,
    pub base: &'a str,
    pub title: &'a str,
    pub body: &'a str,
}

fn api_error(api: &str, action: &'static str, e: octocrab::Error) -> GithubError {
    let message = match &e {
        octocrab::Error::GitHub { source, .. } => {
            format!("{} {}", source.status_code, source.message)
        }
        other => {
            let mut text = other.to_string();
            let mut cause = std::error::Error::source(other);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            text
        }
    };
    GithubError::Api {
        api: api.to_string(),
        action,
        message,
    }
}

/// Opens the pull request from `head` to `base`, or brings the open one up to date.
pub async fn open_or_update(req: &PrRequest<'_>) -> Result<PullRequest, GithubError> {
    let api = req.api_url;
    let client = Octocrab::builder()
        .base_uri(api)
        .map_err(|e| GithubError::ApiUrl(api.to_string(), e.to_string()))?
        .personal_token(req.token.expose().to_string())
        .build()
        .map_err(|e| api_error(api, "building the client", e))?;
    let pulls = client.pulls(&req.repo.owner, &req.repo.name);
    let open = pulls
        .list()
        .state(State::Open)
        .head(format!("{}:{}", req.repo.owner, req.head))
        .base(req.base)
        .per_page(10u8)
        .send()
        .await
        .map_err(|e| api_error(api, "listing pull requests", e))?;
    let url_of = |pr: &octocrab::models::pulls::PullRequest| {
        pr.html_url
            .as_ref()
            .map(|u| u.to_string())
            .unwrap_or_default()
    };
    if let Some(existing) = open.items.first() {
        let same = existing.title.as_deref() == Some(req.title)
            && existing.body.as_deref().map(str::trim_end) == Some(req.body.trim_end());
        if same {
            return Ok(PullRequest {
                number: existing.number,
                url: url_of(existing),
                action: PrAction::Unchanged,
            });
        }
        let updated = pulls
            .update(existing.number)
            .title(req.title)
            .body(req.body)
            .send()
            .await
            .map_err(|e| api_error(api, "updating the pull request", e))?;
        return Ok(PullRequest {
            number: updated.number,
            url: url_of(&updated),
            action: PrAction::Updated,
        });
    }
    let created = pulls
        .create(req.title, req.head, req.base)
        .body(req.body)
        .send()
        .await
        .map_err(|e| api_error(api, "creating the pull request", e))?;
    Ok(PullRequest {
        number: created.number,
        url: url_of(&created),
        action: PrAction::Created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names_from_remotes() {
        for url in [
            "git@github.com:org/infra.git",
            "ssh://git@github.com/org/infra.git",
            "https://github.com/org/infra",
            "https://x-access-token:t@github.com/org/infra.git",
        ] {
            assert_eq!(
                RepoName::from_remote(url).unwrap().to_string(),
                "org/infra",
                "{url}"
            );
        }
        assert!(RepoName::from_remote("/tmp/repo.git").is_none());
        assert!(RepoName::parse("no-slash").is_none());
    }
}
