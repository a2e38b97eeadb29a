//! The one pull request, through three calls of the GitHub REST API (list
//! the open pull requests from the branch to the base; update the one found
//! when its title or body changed; else create it), made with reqwest, the
//! HTTP client verify already uses. `--github-api-url` points at GitHub
//! Enterprise (or, in the tests, at a fake).
//!
//! Bounded as verify's client is: every request has a timeout, every
//! answer is read with a size cap, and the token never appears in a
//! message (an error quotes the API's `message`, or a little of its body,
//! with the token blanked out).

use std::time::Duration;

use reqwest::{Method, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::secrets::Secret;

pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// The REST API version the calls are written against.
const API_VERSION: &str = "2022-11-28";
/// GitHub refuses requests without a User-Agent.
const USER_AGENT: &str = concat!("telltale/", env!("CARGO_PKG_VERSION"));
/// No call waits longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most an answer may weigh: ten pull requests are a few hundred KB.
const BODY_CAP: usize = 8 * 1024 * 1024;
/// How much of an error body a message quotes.
const QUOTE_CAP: usize = 200;

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

/// What the calls read of a pull request; GitHub sends much more.
#[derive(Debug, Deserialize)]
struct Pull {
    number: u64,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    body: Option<String>,
}

impl Pull {
    fn into_result(self, action: PrAction) -> PullRequest {
        PullRequest {
            number: self.number,
            url: self.html_url.unwrap_or_default(),
            action,
        }
    }
}

/// An error answer's `{"message": …}`.
#[derive(Debug, Deserialize)]
struct ApiMessage {
    message: String,
}

/// The client for one repository's pull requests.
struct Api<'a> {
    client: reqwest::Client,
    /// `…/repos/OWNER/NAME/pulls`, under the API URL's own path (GitHub
    /// Enterprise's `/api/v3`).
    pulls: Url,
    shown: &'a str,
    token: &'a Secret,
}

impl<'a> Api<'a> {
    fn new(req: &PrRequest<'a>) -> Result<Api<'a>, GithubError> {
        let api = req.api_url;
        let bad = |why: String| GithubError::ApiUrl(api.to_string(), why);
        let mut pulls = Url::parse(api).map_err(|e| bad(e.to_string()))?;
        if !matches!(pulls.scheme(), "https" | "http") || pulls.cannot_be_a_base() {
            return Err(bad("an http(s) URL is expected".into()));
        }
        pulls
            .path_segments_mut()
            .map_err(|()| bad("an http(s) URL is expected".into()))?
            .pop_if_empty()
            .extend(["repos", &req.repo.owner, &req.repo.name, "pulls"]);
        // Only the first call installs the provider (kube and verify use ring too).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| GithubError::Api {
                api: api.to_string(),
                action: "building the client",
                message: crate::error::chain(&e),
            })?;
        Ok(Api {
            client,
            pulls,
            shown: api,
            token: req.token,
        })
    }

    fn error(&self, action: &'static str, message: String) -> GithubError {
        GithubError::Api {
            api: self.shown.to_string(),
            action,
            message: match self.token.expose() {
                "" => message,
                token => message.replace(token, "[redacted]"),
            },
        }
    }

    /// One call: the JSON answer of a 2xx, else the API's message.
    async fn call<T: DeserializeOwned>(
        &self,
        action: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, GithubError> {
        let mut response = request
            .bearer_auth(self.token.expose())
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .send()
            .await
            .map_err(|e| self.error(action, crate::error::chain(&e)))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.error(action, crate::error::chain(&e)))?
        {
            if body.len() + chunk.len() > BODY_CAP {
                return Err(self.error(
                    action,
                    format!(
                        "HTTP {status}: the answer is larger than {} MiB; refused",
                        BODY_CAP >> 20
                    ),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let message = match serde_json::from_slice::<ApiMessage>(&body) {
                Ok(m) => format!("{status} {}", m.message),
                Err(_) => format!("{status}: {}", quote(&body)),
            };
            return Err(self.error(action, message));
        }
        serde_json::from_slice(&body).map_err(|e| {
            self.error(
                action,
                format!(
                    "HTTP {status}: not the expected answer ({e}): {}",
                    quote(&body)
                ),
            )
        })
    }

    fn at(&self, number: Option<u64>) -> Url {
        let mut url = self.pulls.clone();
        if let (Some(n), Ok(mut segments)) = (number, url.path_segments_mut()) {
            segments.push(&n.to_string());
        }
        url
    }
}

/// A short quote of a body, for a message.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(QUOTE_CAP) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Opens the pull request from `head` to `base`, or brings the open one up to date.
pub async fn open_or_update(req: &PrRequest<'_>) -> Result<PullRequest, GithubError> {
    let api = Api::new(req)?;
    let head = format!("{}:{}", req.repo.owner, req.head);
    let mut open_pulls = api.at(None);
    open_pulls
        .query_pairs_mut()
        .append_pair("state", "open")
        .append_pair("head", &head)
        .append_pair("base", req.base)
        .append_pair("per_page", "10");
    let list = api.client.get(open_pulls);
    let open: Vec<Pull> = api.call("listing pull requests", list).await?;
    if let Some(existing) = open.into_iter().next() {
        let same = existing.title.as_deref() == Some(req.title)
            && existing.body.as_deref().map(str::trim_end) == Some(req.body.trim_end());
        if same {
            return Ok(existing.into_result(PrAction::Unchanged));
        }
        let update = api
            .client
            .request(Method::PATCH, api.at(Some(existing.number)))
            .json(&serde_json::json!({"title": req.title, "body": req.body}));
        let updated: Pull = api.call("updating the pull request", update).await?;
        return Ok(updated.into_result(PrAction::Updated));
    }
    let create = api.client.post(api.at(None)).json(&serde_json::json!({
        "title": req.title,
        "head": req.head,
        "base": req.base,
        "body": req.body,
    }));
    let created: Pull = api.call("creating the pull request", create).await?;
    Ok(created.into_result(PrAction::Created))
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

    #[test]
    fn the_pulls_url_keeps_the_api_path() {
        let token = Secret::new("t".to_string());
        let repo = RepoName::parse("org/infra").unwrap();
        let url = |api_url: &str| {
            let req = PrRequest {
                api_url,
                token: &token,
                repo: &repo,
                head: "h",
                base: "main",
                title: "t",
                body: "b",
            };
            Api::new(&req).map(|api| (api.at(None).to_string(), api.at(Some(7)).to_string()))
        };
        assert_eq!(
            url("https://ghe.example.com/api/v3/").unwrap(),
            (
                "https://ghe.example.com/api/v3/repos/org/infra/pulls".to_string(),
                "https://ghe.example.com/api/v3/repos/org/infra/pulls/7".to_string()
            )
        );
        assert_eq!(
            url("https://api.github.com").unwrap().0,
            "https://api.github.com/repos/org/infra/pulls"
        );
        assert!(matches!(url("ftp://x/"), Err(GithubError::ApiUrl(..))));
        assert!(matches!(url("not a url"), Err(GithubError::ApiUrl(..))));
    }
}
