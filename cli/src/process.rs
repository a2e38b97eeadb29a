//! Every program telltale starts and reads back goes through here: helm,
//! promtool, amtool, sops, kubeseal, k6 and git. One set of rules, after jj's
//! `git_subprocess.rs`:
//!
//! - stdin is `/dev/null` unless the caller feeds it (helm values, a Secret
//!   to encrypt), so a program never waits on the terminal; what is fed is
//!   written from its own thread or task, so a program that answers before
//!   it has read everything cannot deadlock on a full pipe;
//! - `LC_ALL=C`, so the messages and versions read back are the ones parsed;
//! - the command line is traced at `-v` (arguments never carry a secret:
//!   secrets go on stdin or in the cluster; stdin is never traced);
//! - stdout and the whole stderr are kept, and a failure is a typed error
//!   with the exit status; the caller decides how much of stderr to show.
//!
//! Executable plugins are the exception: they get the terminal, and run
//! from `commands/external.rs`.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("`{program}` was not found")]
    NotFound { program: String },
    #[error("could not run `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {}s", .limit.as_secs())]
    Timeout { command: String, limit: Duration },
    #[error("`{command}` exited with {status}")]
    Failed {
        command: String,
        status: ExitStatus,
        /// The whole of what it wrote on stderr.
        stderr: String,
    },
}

impl ProcessError {
    /// The last `lines` lines of a failure's stderr: where tools say what
    /// went wrong after everything else they print.
    pub fn stderr_tail(&self, lines: usize) -> String {
        match self {
            ProcessError::Failed { stderr, .. } => tail(stderr, lines),
            _ => String::new(),
        }
    }
}

/// The last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether `program` would be found: a path that is an executable file,
/// or a name in a directory of PATH (`/bin:/usr/bin` when PATH is unset,
/// as the C library searches then).
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return runnable(Path::new(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    std::env::split_paths(&path).any(|dir| runnable(&dir.join(program)))
}

/// Where `-v` sends the command lines; set once by the terminal layer.
static TRACE: OnceLock<fn(&str)> = OnceLock::new();

/// Makes every started program's command line go to `trace` (`-v`).
pub fn set_trace(trace: fn(&str)) {
    let _ = TRACE.set(trace);
}

/// A finished program: its exit status and everything it wrote.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Finished {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// One program to run, built up as `std::process::Command` is.
#[derive(Debug, Clone)]
pub struct Program {
    program: PathBuf,
    args: Vec<OsString>,
    cwd: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    env_removed: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    own_group: bool,
}

impl Program {
    pub fn new(program: impl Into<PathBuf>) -> Program {
        Program {
            program: program.into(),
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
            env_removed: Vec::new(),
            stdin: None,
            own_group: false,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Program {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Program
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Program {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Program {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Leaves `key` out of its environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Program {
        self.env_removed.push(key.as_ref().to_os_string());
        self
    }

    /// Bytes for its stdin (values, a Secret to encrypt); never traced.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Program {
        self.stdin = Some(bytes.into());
        self
    }

    /// Its own process group: a Ctrl-C at the terminal reaches telltale
    /// only, which decides when the program stops (helm).
    pub fn own_process_group(mut self) -> Program {
        self.own_group = true;
        self
    }

    pub fn name(&self) -> String {
        self.program.display().to_string()
    }

    /// The command line, for messages and `-v`, with the password of any
    /// URL in it hidden (`https://user:***@host/…`).
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(|a| hide_url_password(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn command(&self) -> std::process::Command {
        if let Some(trace) = TRACE.get() {
            trace(&format!("running {}", self.command_line()));
        }
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&self.args)
            .env("LC_ALL", "C")
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for k in &self.env_removed {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        if self.own_group {
            std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        }
        cmd
    }

    fn spawn_error(&self, source: std::io::Error) -> ProcessError {
        match source.kind() {
            std::io::ErrorKind::NotFound => ProcessError::NotFound {
                program: self.name(),
            },
            _ => ProcessError::Spawn {
                program: self.name(),
                source,
            },
        }
    }

    /// Writes what it is fed from a thread of its own.
    fn feed(&self, child: &mut std::process::Child) -> Option<std::thread::JoinHandle<()>> {
        let bytes = self.stdin.clone()?;
        let mut pipe = child.stdin.take()?;
        Some(std::thread::spawn(move || {
            // A program that exits without reading all of it closes the
            // pipe; its exit status says what happened.
            let _ = pipe.write_all(&bytes);
        }))
    }

    /// Runs it to the end, whatever its exit status.
    pub fn output(&self) -> Result<Finished, ProcessError> {
        let mut child = self.command().spawn().map_err(|e| self.spawn_error(e))?;
        let writer = self.feed(&mut child);
        let output = child.wait_with_output().map_err(|e| self.spawn_error(e))?;
        if let Some(writer) = writer {
            let _ = writer.join();
        }
        Ok(Finished {
            status: output.status,
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }

    /// Runs it; a non-zero exit is [`ProcessError::Failed`].
    pub fn run(&self) -> Result<Finished, ProcessError> {
        self.output().and_then(|f| self.succeeded(f))
    }

    /// [`Program::output`] without a runtime, killed after `limit`: a
    /// peer that never answers (a git server) cannot hold the run. Its
    /// output is awaited until the same deadline, since a program it
    /// started (ssh) may keep the pipes open after it exits.
    pub fn output_within(&self, limit: Duration) -> Result<Finished, ProcessError> {
        let deadline = Instant::now() + limit;
        let timeout = || ProcessError::Timeout {
            command: self.command_line(),
            limit,
        };
        let mut child = self.command().spawn().map_err(|e| self.spawn_error(e))?;
        let writer = self.feed(&mut child);
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            let (sender, receiver) = mpsc::channel();
            if let Some(mut pipe) = pipe {
                std::thread::spawn(move || {
                    let mut bytes = Vec::new();
                    let _ = pipe.read_to_end(&mut bytes);
                    let _ = sender.send(bytes);
                });
            }
            receiver
        };
        let stdout = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let stderr = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| self.spawn_error(e))? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(timeout());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let collect = |receiver: mpsc::Receiver<Vec<u8>>| {
            receiver
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .map_err(|_| timeout())
        };
        let (stdout, stderr) = (collect(stdout)?, collect(stderr)?);
        if let Some(writer) = writer {
            let _ = writer.join();
        }
        Ok(Finished {
            status,
            stdout,
            stderr,
        })
    }

    /// [`Program::run`], killed after `limit` (see [`Program::output_within`]).
    pub fn run_within(&self, limit: Duration) -> Result<Finished, ProcessError> {
        self.output_within(limit).and_then(|f| self.succeeded(f))
    }

    /// [`Program::output`] on the async runtime, killed when dropped or
    /// after `limit`. `on_spawn` gets the child's pid and returns a guard
    /// held until it exits (helm's process group is tracked that way, so a
    /// second Ctrl-C can stop it).
    pub async fn output_async<G>(
        &self,
        limit: Option<Duration>,
        on_spawn: impl FnOnce(Option<u32>) -> G,
    ) -> Result<Finished, ProcessError> {
        let mut child = tokio::process::Command::from(self.command())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        let _guard = on_spawn(child.id());
        let writer = match (self.stdin.clone(), child.stdin.take()) {
            (Some(bytes), Some(mut pipe)) => Some(tokio::spawn(async move {
                let _ = pipe.write_all(&bytes).await;
            })),
            _ => None,
        };
        let waited = child.wait_with_output();
        let output =
            match limit {
                Some(limit) => tokio::time::timeout(limit, waited).await.map_err(|_| {
                    ProcessError::Timeout {
                        command: self.command_line(),
                        limit,
                    }
                })?,
                None => waited.await,
            }
            .map_err(|e| self.spawn_error(e))?;
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        Ok(Finished {
            status: output.status,
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }

    fn succeeded(&self, finished: Finished) -> Result<Finished, ProcessError> {
        if finished.status.success() {
            Ok(finished)
        } else {
            Err(ProcessError::Failed {
                command: self.command_line(),
                status: finished.status,
                stderr: finished.stderr_text(),
            })
        }
    }

    /// [`Program::run`] on the async runtime.
    pub async fn run_async<G>(
        &self,
        limit: Option<Duration>,
        on_spawn: impl FnOnce(Option<u32>) -> G,
    ) -> Result<Finished, ProcessError> {
        let finished = self.output_async(limit, on_spawn).await?;
        self.succeeded(finished)
    }
}

/// `arg` with the password of a `scheme://user:password@host` URL in it
/// replaced by `***` (a user may write a token into `--repo`).
fn hide_url_password(arg: &str) -> String {
    let Some(scheme) = arg.find("://") else {
        return arg.to_string();
    };
    let rest = &arg[scheme + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return arg.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &arg[..scheme + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => arg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_url_never_reaches_the_command_line() {
        let program = Program::new("git").args([
            "push",
            "--",
            "https://x-access-token:CANARY-7f3a@github.com/o/r.git",
            "refs/heads/a:refs/heads/a",
        ]);
        let line = program.command_line();
        assert!(!line.contains("CANARY-7f3a"), "{line}");
        assert!(
            line.contains("https://x-access-token:***@github.com/o/r.git"),
            "{line}"
        );
        for kept in [
            "https://github.com/o/r.git",
            "git@github.com:o/r.git",
            "a:b@c",
            "ssh://git@host/r",
        ] {
            assert_eq!(hide_url_password(kept), kept);
        }
    }

    #[test]
    fn stdin_is_null_unless_fed_and_the_locale_is_c() {
        let out = Program::new("sh")
            .args(["-c", "cat; printf '%s' \"$LC_ALL\""])
            .run()
            .unwrap();
        assert_eq!(out.stdout_text(), "C", "nothing read from a terminal");
        let out = Program::new("sh")
            .args(["-c", "cat"])
            .stdin("fed")
            .run()
            .unwrap();
        assert_eq!(out.stdout_text(), "fed");
    }

    #[test]
    fn a_failure_keeps_the_status_and_the_whole_stderr() {
        let err = Program::new("sh")
            .args(["-c", "for i in 1 2 3 4 5; do echo line$i >&2; done; exit 7"])
            .run()
            .unwrap_err();
        match &err {
            ProcessError::Failed { status, stderr, .. } => {
                assert_eq!(status.code(), Some(7));
                assert_eq!(stderr.lines().count(), 5);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.stderr_tail(2), "line4\nline5");
        assert!(err.to_string().starts_with("`sh -c for i in"), "{err}");
    }

    #[test]
    fn a_missing_program_is_not_found() {
        let err = Program::new("telltale-no-such-program").run().unwrap_err();
        assert!(matches!(err, ProcessError::NotFound { .. }), "{err:?}");
        assert!(!on_path("telltale-no-such-program"));
        assert!(on_path("sh"));
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().to_str().unwrap();
        assert!(!on_path(path), "a file that is not executable");
        let mut perms = std::fs::metadata(path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(path, perms).unwrap();
        assert!(on_path(path));
    }

    #[test]
    fn a_program_that_stops_reading_does_not_block_the_writer() {
        // 8 MiB into a program that reads nothing: the pipe fills, the
        // program exits, and the run still ends.
        let out = Program::new("sh")
            .args(["-c", "exit 0"])
            .stdin(vec![b'x'; 8 << 20])
            .run()
            .unwrap();
        assert!(out.status.success());
    }

    #[test]
    fn runs_within_a_limit_are_bounded_and_keep_their_output() {
        let started = Instant::now();
        let err = Program::new("sleep")
            .arg("5")
            .run_within(Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(err, ProcessError::Timeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
        let out = Program::new("sh")
            .args(["-c", "cat; echo said >&2; exit 3"])
            .stdin("fed")
            .output_within(Duration::from_secs(30))
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout_text(), "fed");
        assert_eq!(out.stderr_text(), "said\n");
    }

    #[test]
    fn a_removed_variable_is_not_passed_on() {
        let out = Program::new("sh")
            .args(["-c", "printf '%s' \"${HOME-unset}\""])
            .env_remove("HOME")
            .run()
            .unwrap();
        assert_eq!(out.stdout_text(), "unset");
    }

    #[tokio::test]
    async fn async_runs_are_bounded() {
        let err = Program::new("sleep")
            .arg("5")
            .run_async(Some(Duration::from_millis(100)), |_| ())
            .await
            .unwrap_err();
        assert!(matches!(err, ProcessError::Timeout { .. }), "{err:?}");
        let out = Program::new("sh")
            .args(["-c", "cat"])
            .stdin("values")
            .run_async(None, |pid| assert!(pid.is_some()))
            .await
            .unwrap();
        assert_eq!(out.stdout_text(), "values");
    }
}
