//! The repository side, through the `git` program (as jj and cargo's
//! `net.git-fetch-with-cli` do): fetch the base branch (and the telltale
//! branch when it exists) into a temporary bare repository, build the new
//! commit with `git fast-import` (no work tree, nothing checked out), keep
//! it only when its tree differs, and push that one branch. The base branch
//! is never written.
//!
//! Every run goes through `process.rs` (stdin null, `LC_ALL=C`, traced at
//! `-v`, the whole stderr kept). Nothing prompts: `GIT_TERMINAL_PROMPT=0`,
//! and ssh runs in batch mode unless the user chose their own ssh command.
//! Credentials are git's own: the SSH agent and `~/.ssh/config` for ssh
//! URLs; for https, `GITHUB_TOKEN` (passed in) as the password of
//! `x-access-token` through a credential helper that reads it from the
//! environment (never from the command line), else the user's credential
//! helpers. A local path works too; unlike libgit2's, git's local transport
//! runs the repository's hooks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::{ProcessError, Program};
use crate::secrets::Secret;

/// How long one network exchange (ls-remote, fetch, push) may take.
const NETWORK_LIMIT: Duration = Duration::from_secs(600);
/// Where the token reaches the credential helper: an environment variable
/// of git's process, never an argument.
const TOKEN_ENV: &str = "TELLTALE_GIT_TOKEN";
/// The variables by which a git hook tells git which repository it is in
/// (`git rev-parse --local-env-vars`): telltale run from a hook must not
/// send its commands to that repository.
const REPOSITORY_ENV: [&str; 16] = [
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_INTERNAL_SUPER_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
];
/// Answers git's `get` with the token; stores and erases nothing.
/// The transports git may use (`GIT_ALLOW_PROTOCOL` overrides the user's
/// `protocol.*.allow`): never `ext::` or `fd::`, which run a command named
/// in the URL, whatever a config or a hostile `--repo` says.
const ALLOWED_PROTOCOLS: &str = "file:git:ssh:http:https";
const TOKEN_HELPER: &str = "!f() { test \"$1\" = get || exit 0; echo username=x-access-token; echo \"password=$TELLTALE_GIT_TOKEN\"; }; f";

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("`git` was not found on PATH; gitops runs git to fetch, commit and push")]
    NoGit,
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
    Local(String),
    /// git could not be started or did not finish in time: the process
    /// error's words, its I/O error as the cause.
    #[error(transparent)]
    Run(ProcessError),
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

impl GitError {
    /// The next thing to try, when there is one.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            GitError::NoLocalRepo { .. } => Some(
                "create it first (`git init --bare PATH`, or clone your infrastructure repository there), or pass the remote's URL (git@github.com:org/infra.git, https://…)",
            ),
            GitError::NoBase { .. } => Some(
                "pass --base with an existing branch (the repository needs at least one commit)",
            ),
            GitError::Connect { .. } => Some(
                "ssh URLs use your ssh set-up without prompting (a key in the SSH agent: ssh-add -l); https URLs use GITHUB_TOKEN, else git's credential helpers",
            ),
            GitError::NoGit => Some("install git (any 2.x); `git --version` must work"),
            GitError::Rejected { .. } | GitError::Push { .. } => Some(
                "the remote refused the telltale branch; check its protection rules, or pick another --branch",
            ),
            _ => None,
        }
    }
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

/// Whether `url` is an https URL (the scheme in any case, as git reads it).
fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
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

/// Whether `name` is a valid branch name, by git's rules for a ref
/// (`git check-ref-format refs/heads/NAME`): no component that starts with
/// `.` or ends with `.lock`, no `..`, `@{`, `//`, control character, space,
/// or any of `~^:?*[\`, and no leading or trailing `/` or `.`.
pub fn is_valid_branch(name: &str) -> bool {
    let full = format!("refs/heads/{name}");
    !name.is_empty()
        && !full.ends_with('/')
        && !full.ends_with('.')
        && !full.contains("..")
        && !full.contains("@{")
        && !full
            .chars()
            .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c))
        && full
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && !part.ends_with(".lock"))
}

/// `git`, with nothing of a surrounding repository and no prompt.
fn git() -> Program {
    REPOSITORY_ENV
        .iter()
        .fold(Program::new("git"), |p, var| p.env_remove(var))
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS)
}

/// The `origin` remote's URL of the repository at `path` (a work tree or a
/// bare repository), looked up there only, never in a directory above.
pub fn origin_of(path: &Path) -> Option<String> {
    let mut program = git()
        .arg("-C")
        .arg(path)
        .args(["config", "--get", "remote.origin.url"]);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        program = program.env("GIT_CEILING_DIRECTORIES", parent);
    }
    let url = program.run().ok()?.stdout_text().trim().to_string();
    (!url.is_empty()).then_some(url)
}

/// The temporary bare repository every command of one run works in.
struct Git {
    dir: PathBuf,
    /// The user's own ssh command (GIT_SSH_COMMAND, GIT_SSH or core.sshCommand) wins over batch mode.
    own_ssh: bool,
}

impl Git {
    fn program(&self) -> Program {
        let mut program = git().arg("--git-dir").arg(&self.dir);
        if !self.own_ssh {
            // A host key to confirm or a passphrase to type fails instead of waiting.
            program = program.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
        }
        program
    }

    /// A command that talks to the remote at `url`, with the token's helper
    /// when there is a token and the URL is https (it replaces the user's
    /// helpers for this run): the token never goes over plain http, ssh or
    /// anything else.
    fn remote(&self, access: &Access, url: &str) -> Program {
        match &access.token {
            Some(token) if is_https(url) => self
                .program()
                .args(["-c", "credential.helper=", "-c"])
                .arg(format!("credential.helper={TOKEN_HELPER}"))
                .env(TOKEN_ENV, token.expose()),
            _ => self.program(),
        }
    }

    /// Runs a local command: its stdout, or what git said.
    fn local(&self, program: Program) -> Result<String, GitError> {
        program.run().map(|f| f.stdout_text()).map_err(local_error)
    }
}

/// A failed local git command: git's own last words, or that git is missing.
fn local_error(e: ProcessError) -> GitError {
    match e {
        ProcessError::NotFound { .. } => GitError::NoGit,
        ProcessError::Failed { .. } => GitError::Local(e.stderr_tail(3)),
        other => GitError::Run(other),
    }
}

/// What git said on stderr, without its progress lines.
fn said(e: &ProcessError) -> String {
    let text = e.stderr_tail(5);
    let text = text.trim();
    if text.is_empty() {
        e.to_string()
    } else {
        text.to_string()
    }
}

/// The temporary clone and where the branch starts.
pub struct Checkout {
    _dir: tempfile::TempDir,
    git: Git,
    url: String,
    pub branch: String,
    pub base: String,
    /// The remote already has the branch (an earlier run); work continues on it.
    pub branch_exists: bool,
    /// The commit the branch starts from (the branch's, else the base's).
    start: String,
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// The tree is the same as the branch's (or the base's): nothing to commit.
    Unchanged,
    /// The new commit's id (40 hex digits).
    New(String),
}

/// A commit's author (and committer).
#[derive(Debug, Clone)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Checkout {
    pub fn open(
        url: &str,
        branch: &str,
        base: &str,
        access: &Access,
    ) -> Result<Checkout, GitError> {
        let shown = display_repo(url);
        if is_local_path(url) && !Path::new(url).exists() {
            return Err(GitError::NoLocalRepo { path: shown });
        }
        let connect = |e: ProcessError| match e {
            ProcessError::NotFound { .. } => GitError::NoGit,
            e => GitError::Connect {
                repo: shown.clone(),
                message: said(&e),
            },
        };
        let dir = tempfile::Builder::new()
            .prefix("telltale-gitops-")
            .tempdir()
            .map_err(|e| GitError::Connect {
                repo: shown.clone(),
                message: format!("cannot create a temporary directory: {e}"),
            })?;
        // No template: no hook of the user's runs in the temporary repository.
        git()
            .args(["init", "--quiet", "--bare", "--template="])
            .arg(dir.path())
            .run()
            .map_err(local_error)?;
        let mut git = Git {
            dir: dir.path().to_path_buf(),
            own_ssh: true,
        };
        let configured = git
            .program()
            .args(["config", "--get", "core.sshCommand"])
            .run()
            .is_ok();
        git.own_ssh = configured
            || std::env::var_os("GIT_SSH_COMMAND").is_some()
            || std::env::var_os("GIT_SSH").is_some();

        let listed = git
            .remote(access, url)
            .args(["ls-remote", "--heads", "--", url])
            .run_within(NETWORK_LIMIT)
            .map_err(connect)?
            .stdout_text();
        let heads: Vec<&str> = listed
            .lines()
            .filter_map(|l| l.split_once('\t').map(|(_, name)| name))
            .collect();
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
        git.remote(access, url)
            .args(["fetch", "--quiet", "--no-tags", "--", url])
            .args(&specs)
            .run_within(NETWORK_LIMIT)
            .map_err(connect)?;
        let from = if branch_exists { branch } else { base };
        let start = git
            .local(git.program().args([
                "rev-parse",
                "--verify",
                &format!("refs/remotes/origin/{from}^{{commit}}"),
            ]))?
            .trim()
            .to_string();
        Ok(Checkout {
            _dir: dir,
            git,
            url: url.to_string(),
            branch: branch.to_string(),
            base: base.to_string(),
            branch_exists,
            start,
        })
    }

    /// A file's content where the branch starts (the branch, else the base).
    pub fn read(&self, path: &str) -> Option<String> {
        let blob = self
            .git
            .program()
            .args(["cat-file", "blob", &format!("{}:{path}", self.start)])
            .run()
            .ok()?;
        String::from_utf8(blob.stdout).ok()
    }

    /// Replaces everything under `dir` with `files` (repository-relative
    /// paths) and commits on the branch when the tree changed.
    pub fn commit(
        &self,
        dir: &str,
        files: &BTreeMap<String, String>,
        message: &str,
        author: &Author,
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
        author: &Author,
    ) -> Result<Committed, GitError> {
        let candidate = "refs/telltale/candidate";
        let stream = import_stream(candidate, &self.start, dirs, files, message, author);
        self.git.local(
            self.git
                .program()
                .args(["fast-import", "--quiet", "--date-format=now", "--done"])
                .stdin(stream),
        )?;
        let trees = self.git.local(self.git.program().args([
            "rev-parse",
            &format!("{candidate}^{{tree}}"),
            &format!("{}^{{tree}}", self.start),
            candidate,
        ]))?;
        let ids: Vec<&str> = trees.lines().map(str::trim).collect();
        let [new_tree, old_tree, commit] = ids[..] else {
            return Err(GitError::Local(format!("rev-parse printed {trees:?}")));
        };
        if new_tree == old_tree {
            return Ok(Committed::Unchanged);
        }
        self.git.local(self.git.program().args([
            "update-ref",
            &format!("refs/heads/{}", self.branch),
            commit,
        ]))?;
        Ok(Committed::New(commit.to_string()))
    }

    /// Pushes the branch, and only the branch (never forced). The remote's
    /// own words come back in the error when it refuses.
    pub fn push(&self, access: &Access) -> Result<(), GitError> {
        let spec = format!("refs/heads/{0}:refs/heads/{0}", self.branch);
        let pushed = self
            .git
            .remote(access, &self.url)
            // No hook of the user's (core.hooksPath) runs on this push.
            .args([
                "-c",
                "core.hooksPath=/dev/null",
                "push",
                "--porcelain",
                "--",
            ])
            .arg(&self.url)
            .arg(&spec)
            .output_within(NETWORK_LIMIT);
        let finished = match pushed {
            Ok(finished) if finished.status.success() => return Ok(()),
            Ok(finished) => finished,
            Err(ProcessError::NotFound { .. }) => return Err(GitError::NoGit),
            Err(e) => {
                return Err(GitError::Push {
                    branch: self.branch.clone(),
                    message: e.to_string(),
                    remote: String::new(),
                });
            }
        };
        let stderr = finished.stderr_text();
        let remote = remote_lines(&stderr);
        match rejection(&finished.stdout_text(), &spec) {
            Some(status) => Err(GitError::Rejected {
                branch: self.branch.clone(),
                status,
                remote,
            }),
            None => Err(GitError::Push {
                branch: self.branch.clone(),
                message: crate::process::tail(
                    &stderr
                        .lines()
                        .filter(|l| !l.starts_with("remote:"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    3,
                ),
                remote,
            }),
        }
    }

    /// The author: the flags when given, else user.name/user.email from git config.
    pub fn author(&self, name: Option<&str>, email: Option<&str>) -> Result<Author, GitError> {
        let config = |key: &str| {
            let out = self
                .git
                .program()
                .args(["config", "--get", key])
                .run()
                .ok()?;
            let value = out.stdout_text().trim().to_string();
            (!value.is_empty()).then_some(value)
        };
        let name = name.map(String::from).or_else(|| config("user.name"));
        let email = email.map(String::from).or_else(|| config("user.email"));
        match (name, email) {
            (Some(name), Some(email)) => {
                // git's ident rules: the name and email are written between `<` `>` on one line.
                let bad = |s: &str| s.contains(['<', '>', '\n']) || s.trim().is_empty();
                if bad(&name) || bad(&email) {
                    return Err(GitError::Author(format!(
                        "`{name} <{email}>` is not a valid identity (no <, > or newline)"
                    )));
                }
                Ok(Author { name, email })
            }
            _ => Err(GitError::Author(
                "user.name and user.email are not set in git config".into(),
            )),
        }
    }
}

/// The `git fast-import` stream of one commit on top of `start`: everything
/// under `dir` removed first (files gone from the rendered state are gone
/// from the repository too), then every file written.
fn import_stream(
    reference: &str,
    start: &str,
    dirs: &[&str],
    files: &BTreeMap<String, String>,
    message: &str,
    author: &Author,
) -> Vec<u8> {
    let mut out = Vec::new();
    let ident = format!("{} <{}> now", author.name, author.email);
    out.extend_from_slice(
        format!("commit {reference}\nauthor {ident}\ncommitter {ident}\n").as_bytes(),
    );
    data(&mut out, message.as_bytes());
    out.extend_from_slice(format!("from {start}\n").as_bytes());
    // Removal first: files gone from the rendered state must be gone from
    // the repository too.
    if dirs.contains(&"") {
        out.extend_from_slice(b"deleteall\n");
    } else {
        for dir in dirs {
            out.extend_from_slice(format!("D {}\n", quoted(dir)).as_bytes());
        }
    }
    for (path, content) in files {
        out.extend_from_slice(format!("M 100644 inline {}\n", quoted(path)).as_bytes());
        data(&mut out, content.as_bytes());
    }
    out.extend_from_slice(b"done\n");
    out
}

/// fast-import's exact-length `data` block.
fn data(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(format!("data {}\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.push(b'\n');
}

/// A path as a C-style quoted string, which fast-import always accepts
/// (so no path can end a line early or start another command).
fn quoted(path: &str) -> String {
    let mut out = String::from("\"");
    for c in path.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The remote's own lines (`remote: …`) from a push's stderr.
fn remote_lines(stderr: &str) -> String {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("remote:"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why the remote refused `spec`, from `push --porcelain`'s line for it
/// (`!<TAB>from:to<TAB>[remote rejected] (pre-receive hook declined)`).
fn rejection(stdout: &str, spec: &str) -> Option<String> {
    stdout.lines().find_map(|line| {
        let mut fields = line.split('\t');
        let (flag, refs, summary) = (fields.next()?, fields.next()?, fields.next()?);
        if flag != "!" || refs != spec {
            return None;
        }
        // The reason in parentheses when there is one, else the summary.
        let reason = summary
            .split_once('(')
            .and_then(|(_, r)| r.strip_suffix(')'))
            .unwrap_or(summary);
        Some(reason.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_offered_to_https_remotes_only() {
        let git = Git {
            dir: PathBuf::from("/nonexistent"),
            own_ssh: false,
        };
        let access = Access {
            token: Some(Secret::new("CANARY-TOKEN")),
        };
        let helper = |url: &str| {
            git.remote(&access, url)
                .command_line()
                .contains("credential.helper=!")
        };
        assert!(helper("https://github.com/o/r.git"));
        assert!(helper("HTTPS://github.com/o/r.git"));
        for url in [
            "http://github.com/o/r.git",
            "git@github.com:o/r.git",
            "ssh://git@github.com/o/r.git",
            "git://github.com/o/r.git",
            "/srv/git/r.git",
        ] {
            assert!(!helper(url), "{url}");
        }
        assert!(
            !git.remote(&access, "https://h/r")
                .command_line()
                .contains("CANARY-TOKEN")
        );
    }

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

    /// The rules agree with the real `git check-ref-format` on every name.
    #[test]
    fn branch_names_follow_git_check_ref_format() {
        let names = [
            "main",
            "telltale/prod-eu-1",
            "frozen/obs",
            "a.b",
            "v1.2",
            "x@y",
            "a-",
            "-a",
            "",
            "@",
            "a..b",
            ".hidden",
            "a/.b",
            "a.lock",
            "a/b.lock/c",
            "a/",
            "/a",
            "a//b",
            "a.",
            "a b",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[b",
            "a\\b",
            "a@{1}",
            "a\tb",
            "a\u{7f}",
            "ü",
            "a/b/c",
            "lock.a",
            "a.lock.b",
            "@/x",
        ];
        for name in names {
            let git = std::process::Command::new("git")
                .args(["check-ref-format", &format!("refs/heads/{name}")])
                .status()
                .expect("git runs");
            assert_eq!(is_valid_branch(name), git.success(), "{name:?}");
        }
    }

    #[test]
    fn a_rejection_is_read_from_the_porcelain_line() {
        let stdout = "To git://127.0.0.1/R.git\n!\trefs/heads/frozen/obs:refs/heads/frozen/obs\t[remote rejected] (pre-receive hook declined)\nDone\n";
        assert_eq!(
            rejection(stdout, "refs/heads/frozen/obs:refs/heads/frozen/obs").as_deref(),
            Some("pre-receive hook declined")
        );
        assert_eq!(rejection(stdout, "refs/heads/x:refs/heads/x"), None);
        let stderr =
            "remote: branches under frozen/ are read-only\nTo git://…\nerror: failed to push\n";
        assert_eq!(remote_lines(stderr), "branches under frozen/ are read-only");
    }

    #[test]
    fn import_paths_are_quoted() {
        assert_eq!(quoted("a/b c.yaml"), "\"a/b c.yaml\"");
        assert_eq!(quoted("x\"\n\\"), "\"x\\\"\\n\\\\\"");
    }
}
