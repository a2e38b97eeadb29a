//! The child daemons: spawning them with their output in `STATE/<name>.log`,
//! waiting until they answer, and stopping them (SIGTERM, then SIGKILL).
//!
//! Children run in their own process group, so a Ctrl-C reaches only the
//! local stack, which then stops them in order. Where `setpriv` exists they
//! are also started with a parent-death signal, so a local stack killed with
//! SIGKILL does not leave them behind; `kill_on_drop` covers a panic.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

use super::LocalStackError;

/// How long a child has to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(5);

pub struct Daemon {
    /// `prometheus`, `alertmanager`, `node_exporter`.
    pub name: &'static str,
    pub address: SocketAddr,
    /// The path whose 200 means ready.
    pub ready_path: &'static str,
    pub log: PathBuf,
    pub pid: u32,
    child: Child,
    exited: Option<ExitStatus>,
}

/// Spawns `program args…` with stdout and stderr appended to `log`.
pub fn spawn(
    name: &'static str,
    program: &Path,
    args: &[String],
    address: SocketAddr,
    ready_path: &'static str,
    log: PathBuf,
    setpriv: Option<&Path>,
) -> Result<Daemon, LocalStackError> {
    let file = std::fs::File::create(&log).map_err(|source| LocalStackError::Write {
        path: log.clone(),
        source,
    })?;
    let stderr = file.try_clone().map_err(|source| LocalStackError::Write {
        path: log.clone(),
        source,
    })?;
    let mut command = match setpriv {
        Some(setpriv) => {
            let mut c = Command::new(setpriv);
            c.arg("--pdeathsig").arg("TERM").arg("--").arg(program);
            c
        }
        None => Command::new(program),
    };
    command
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    eprintln!(
        "telltale-local-stack: starting {} {}",
        program.display(),
        args.join(" ")
    );
    let child = command.spawn().map_err(|source| LocalStackError::Spawn {
        program: program.to_path_buf(),
        source,
    })?;
    let pid = child.id().unwrap_or_default();
    Ok(Daemon {
        name,
        address,
        ready_path,
        log,
        pid,
        child,
        exited: None,
    })
}

impl Daemon {
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Whether the child has exited since the last look (reported once).
    pub fn newly_exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_some() {
            return None;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exited = Some(status);
                Some(status)
            }
            _ => None,
        }
    }

    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 40)
    }

    /// SIGTERM, wait up to [`GRACE`], then SIGKILL; always reaps.
    pub async fn stop(mut self) {
        if self.exited.is_some() || matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // tokio offers only SIGKILL; `kill` sends the polite signal without
        // unsafe code. Its own process group keeps a group-wide signal meant
        // for us (timeout(1), a terminal's Ctrl-C) from killing it first.
        let term = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .status()
            .await;
        match term {
            Ok(status) if status.success() => {
                if let Ok(Ok(_)) = timeout(GRACE, self.child.wait()).await {
                    return;
                }
                eprintln!(
                    "telltale-local-stack: {} did not stop within {GRACE:?} of SIGTERM; killing it",
                    self.name
                );
            }
            Ok(status) => eprintln!(
                "telltale-local-stack: `kill -TERM {}` failed ({status}); killing {}",
                self.pid, self.name
            ),
            Err(error) => eprintln!(
                "telltale-local-stack: cannot run `kill`: {error}; killing {}",
                self.name
            ),
        }
        let _ = self.child.kill().await;
    }
}

/// Stops every daemon at once.
pub async fn stop_all(daemons: Vec<Daemon>) {
    let handles: Vec<_> = daemons
        .into_iter()
        .map(|d| tokio::spawn(d.stop()))
        .collect();
    for handle in handles {
        let _ = handle.await;
    }
}

/// Waits until every daemon answers 200 on its ready path, failing early
/// when one exits and at `deadline` with the log tail of the first laggard.
pub async fn wait_ready(daemons: &mut [Daemon], within: Duration) -> Result<(), LocalStackError> {
    let deadline = Instant::now() + within;
    let mut ready = vec![false; daemons.len()];
    loop {
        for (daemon, ready) in daemons.iter_mut().zip(ready.iter_mut()) {
            if *ready {
                continue;
            }
            if let Some(status) = daemon.newly_exited() {
                return Err(LocalStackError::Exited {
                    name: daemon.name,
                    status: status.to_string(),
                    log: daemon.log.clone(),
                    tail: daemon.log_tail(),
                });
            }
            *ready = http_status(daemon.address, daemon.ready_path).await == Some(200);
        }
        if ready.iter().all(|r| *r) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let laggard = daemons
                .iter()
                .zip(&ready)
                .find(|(_, r)| !**r)
                .map(|(d, _)| d)
                .unwrap_or(&daemons[0]);
            return Err(LocalStackError::NotReady {
                name: laggard.name,
                url: format!("{}{}", laggard.url(), laggard.ready_path),
                seconds: within.as_secs(),
                log: laggard.log.clone(),
                tail: laggard.log_tail(),
            });
        }
        sleep(Duration::from_millis(100)).await;
    }
}

/// The status code of `GET path`, or None when nothing answers. A few lines
/// of HTTP/1.0 are all a readiness probe needs.
pub async fn http_status(address: SocketAddr, path: &str) -> Option<u16> {
    let probe = async {
        let mut stream = TcpStream::connect(address).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = Vec::new();
        let mut chunk = [0u8; 256];
        while head.len() < 12 {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&head);
        let mut words = head.split_whitespace();
        words.next().filter(|w| w.starts_with("HTTP/"))?;
        words.next()?.parse().ok()
    };
    timeout(Duration::from_secs(2), probe).await.ok().flatten()
}

/// The last `lines` lines of a log file (empty when unreadable).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
