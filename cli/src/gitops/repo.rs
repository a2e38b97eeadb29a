//! The repository side, through libgit2: fetch the base branch (and the
//! telltale branch when it exists) into a temporary bare repository, build
//! the new tree in memory, commit only when it differs, and push that one
//! branch. The base branch is never written.
//!
//! Credentials: the SSH agent for ssh URLs; `GITHUB_TOKEN` (passed in) for
//! https. A local path works too (libgit2's local transport, which runs no
//! server-side hooks).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use git2::build::TreeUpdateBuilder;
use git2::{
    Cred, CredentialType, Direction, FetchOptions, FileMode, Oid, PushOptions, RemoteCallbacks,
    Repository, Signature,
};

use crate::secrets::Secret;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot reach the repository {repo}: {message}")]
    Connect { repo: String, message: String },
    #[error(
        "the repository {path} does not exist: --repo is a local path (it has no URL scheme) and nothing is there"
    )]
    NoLocalRepo { path: String },
    #[error("the base branch `{base}` does not exist in {repo}")]
    NoBase { repo: String, base: String },
    #[error("no commit author: {0}")]
    Author(String),
    #[error("git: {0}")]
    Local(#[from] git2::Error),
    #[error("the remote rejected the push of `{branch}`: {status}{}", remote_text(.remote))]
    Rejected {
        branch: String,
        status: String,
        remote: String,
    },
    #[error("pushing `{branch}` failed: {message}{}", remote_text(.remote))]
    Push {
        branch: String,
        message: String,
        remote: String,
    },
}

fn remote_text(remote: &str) -> String {
    let lines: Vec<String> = remote
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("\n  remote: {l}"))
        .collect();
    lines.concat()
}

/// How to reach the remote.
pub struct Access {
    /// For https remotes (GitHub accepts it as the password of `x-access-token`).
    pub token: Option<Secret>,
}

/// Whether `repo` names a local path rather than a remote: no URL scheme and
/// not git's scp-like `host:path` form (a colon before the first slash).
pub fn is_local_path(repo: &str) -> bool {
    if repo.contains("://") {
        return false;
    }
    match (repo.find(':'), repo.find('/')) {
        (Some(colon), Some(slash)) => colon > slash,
        (Some(_), None) => false,
        _ => true,
    }
}

/// A URL or path with any user:password part hidden, for messages.
pub fn display_repo(repo: &str) -> String {
    match (repo.find("://"), repo.find('@')) {
        (Some(scheme), Some(at)) if at > scheme && repo[scheme + 3..at].contains(':') => {
            format!("{}***{}", &repo[..scheme + 3], &repo[at..])
        }
        _ => repo.to_string(),
    }
}

fn callbacks<'a>(access: &'a Access) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    let mut attempts = 0;
    callbacks.credentials(move |_url, username, allowed| {
        // libgit2 asks again after a refused credential; stop instead of looping.
        attempts += 1;
        if attempts > 3 {
            return Err(git2::Error::from_str(
                "authentication failed (SSH agent key or GITHUB_TOKEN refused)",
            ));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            return Cred::ssh_key_from_agent(username.unwrap_or("git"));
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            return match &access.token {
                Some(token) => Cred::userpass_plaintext("x-access-token", token.expose()),
                None => Err(git2::Error::from_str(
                    "the remote asks for a password: set GITHUB_TOKEN",
                )),
            };
        }
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(username.unwrap_or("git"));
        }
        Cred::default()
    });
    callbacks
}

/// The temporary clone and where the branch starts.
pub struct Checkout {
    _dir: tempfile::TempDir,
    repo: Repository,
    url: String,
    pub branch: String,
    pub base: String,
    /// The remote already has the branch (an earlier run); work continues on it.
    pub branch_exists: bool,
    start: Oid,
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// The tree is the same as the branch's (or the base's): nothing to commit.
    Unchanged,
    New(Oid),
}

impl Checkout {
    pub fn open(
        url: &str,
        branch: &str,
        base: &str,
        access: &Access,
    ) -> Result<Checkout, GitError> {
        let shown = display_repo(url);
        if is_local_path(url) && !std::path::Path::new(url).exists() {
            return Err(GitError::NoLocalRepo { path: shown });
        }
        let connect = |e: git2::Error| GitError::Connect {
            repo: shown.clone(),
            message: e.message().to_string(),
        };
        let dir = tempfile::Builder::new()
            .prefix("telltale-gitops-")
            .tempdir()
            .map_err(|e| GitError::Connect {
                repo: shown.clone(),
                message: format!("cannot create a temporary directory: {e}"),
            })?;
        let repo = Repository::init_bare(dir.path())?;
        let heads: Vec<String> = {
            let mut remote = repo.remote_anonymous(url)?;
            let connection = remote
                .connect_auth(Direction::Fetch, Some(callbacks(access)), None)
                .map_err(connect)?;
            connection
                .list()
                .map_err(connect)?
                .iter()
                .map(|h| h.name().to_string())
                .collect()
        };
        let has = |b: &str| heads.iter().any(|h| *h == format!("refs/heads/{b}"));
        if !has(base) {
            return Err(GitError::NoBase {
                repo: shown,
                base: base.to_string(),
            });
        }
        let branch_exists = has(branch);
        let mut specs = vec![format!("+refs/heads/{base}:refs/remotes/origin/{base}")];
        if branch_exists {
            specs.push(format!("+refs/heads/{branch}:refs/remotes/origin/{branch}"));
        }
        {
            let mut remote = repo.remote_anonymous(url)?;
            let mut options = FetchOptions::new();
            options.remote_callbacks(callbacks(access));
            remote
                .fetch(&specs, Some(&mut options), None)
                .map_err(connect)?;
        }
        let from = if branch_exists { branch } else { base };
        let start = repo.refname_to_id(&format!("refs/remotes/origin/{from}"))?;
        Ok(Checkout {
            _dir: dir,
            repo,
            url: url.to_string(),
            branch: branch.to_string(),
            base: base.to_string(),
            branch_exists,
            start,
        })
    }

    /// A file's content where the branch starts (the branch, else the base).
    pub fn read(&self, path: &str) -> Option<String> {
        let tree = self.repo.find_commit(self.start).ok()?.tree().ok()?;
        let entry = tree.get_path(Path::new(path)).ok()?;
        let blob = entry.to_object(&self.repo).ok()?.peel_to_blob().ok()?;
        String::from_utf8(blob.content().to_vec()).ok()
    }

    /// Replaces everything under `dir` with `files` (repository-relative
    /// paths) and commits on the branch when the tree changed.
    pub fn commit(
        &self,
        dir: &str,
        files: &BTreeMap<String, String>,
        message: &str,
        author: &Signature<'_>,
    ) -> Result<Committed, GitError> {
        self.commit_dirs(&[dir], files, message, author)
    }

    /// Replaces everything under each of `dirs` (a fleet: one per cluster)
    /// with `files`, in one commit when the tree changed.
    pub fn commit_dirs(
        &self,
        dirs: &[&str],
        files: &BTreeMap<String, String>,
        message: &str,
        author: &Signature<'_>,
    ) -> Result<Committed, GitError> {
        let parent = self.repo.find_commit(self.start)?;
        let baseline = parent.tree()?;
        // Removal first, as its own update: files that are gone from the
        // rendered state must be gone from the repository too.
        let cleared = if dirs.contains(&"") {
            self.repo.find_tree(self.repo.treebuilder(None)?.write()?)?
        } else {
            let mut cleared = baseline.clone();
            for dir in dirs {
                if cleared.get_path(Path::new(dir)).is_ok() {
                    let id = TreeUpdateBuilder::new()
                        .remove(dir)
                        .create_updated(&self.repo, &cleared)?;
                    cleared = self.repo.find_tree(id)?;
                }
            }
            cleared
        };
        let mut update = TreeUpdateBuilder::new();
        for (path, content) in files {
            let blob = self.repo.blob(content.as_bytes())?;
            update.upsert(path.as_str(), blob, FileMode::Blob);
        }
        let tree_id = update.create_updated(&self.repo, &cleared)?;
        if tree_id == baseline.id() {
            return Ok(Committed::Unchanged);
        }
        let tree = self.repo.find_tree(tree_id)?;
        let id = self.repo.commit(
            Some(&format!("refs/heads/{}", self.branch)),
            author,
            author,
            message,
            &tree,
            &[&parent],
        )?;
        Ok(Committed::New(id))
    }

    /// Pushes the branch, and only the branch. The remote's own words come
    /// back in the error when it refuses.
    pub fn push(&self, access: &Access) -> Result<(), GitError> {
        let rejected: RefCell<Option<String>> = RefCell::new(None);
        let said = RefCell::new(String::new());
        let result = {
            let mut callbacks = callbacks(access);
            callbacks.push_update_reference(|_refname, status| {
                if let Some(status) = status {
                    *rejected.borrow_mut() = Some(status.to_string());
                }
                Ok(())
            });
            callbacks.sideband_progress(|data| {
                said.borrow_mut().push_str(&String::from_utf8_lossy(data));
                true
            });
            let mut options = PushOptions::new();
            options.remote_callbacks(callbacks);
            let mut remote = self.repo.remote_anonymous(&self.url)?;
            let spec = format!("refs/heads/{0}:refs/heads/{0}", self.branch);
            remote.push(&[spec.as_str()], Some(&mut options))
        };
        let remote = said.into_inner();
        if let Err(e) = result {
            return Err(GitError::Push {
                branch: self.branch.clone(),
                message: e.message().to_string(),
                remote,
            });
        }
        if let Some(status) = rejected.into_inner() {
            return Err(GitError::Rejected {
                branch: self.branch.clone(),
                status,
                remote,
            });
        }
        Ok(())
    }

    /// The author: the flags when given, else user.name/user.email from git config.
    pub fn author(
        &self,
        name: Option<&str>,
        email: Option<&str>,
    ) -> Result<Signature<'static>, GitError> {
        let config = self.repo.config()?;
        let name = name
            .map(String::from)
            .or_else(|| config.get_string("user.name").ok());
        let email = email
            .map(String::from)
            .or_else(|| config.get_string("user.email").ok());
        match (name, email) {
            (Some(n), Some(e)) => {
                Signature::now(&n, &e).map_err(|e| GitError::Author(e.message().to_string()))
            }
            _ => Err(GitError::Author(
                "user.name and user.email are not set in git config".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_and_remotes_are_told_apart() {
        for local in ["../infra", "/srv/git/infra.git", "infra", "./a:b"] {
            assert!(is_local_path(local), "{local}");
        }
        for remote in [
            "git@github.com:org/infra.git",
            "github.com:org/infra",
            "https://github.com/org/infra.git",
            "file:///srv/git/infra.git",
        ] {
            assert!(!is_local_path(remote), "{remote}");
        }
    }
}
