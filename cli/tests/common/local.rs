//! Real Prometheus-family daemons started on 127.0.0.1 for one test and
//! killed when it ends.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now. The daemon binds it a moment later;
/// the race with other processes is accepted, as in every port-picking test.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A child process killed (and reaped) on drop, so a failing assertion never
/// leaves a daemon behind.
pub struct Daemon {
    pub name: String,
    pub url: String,
    child: Child,
    log: std::path::PathBuf,
}

impl Daemon {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Alertmanager with `config` on a free port, storage under `dir`,
/// clustering off, and waits until /-/ready answers.
pub fn alertmanager(config: &Path, dir: &Path) -> Daemon {
    let bin = super::require_tool("prometheus-alertmanager");
    let port = free_port();
    let log = dir.join("alertmanager.log");
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("alertmanager starts");
    let daemon = Daemon {
        name: "alertmanager".into(),
        url: format!("http://127.0.0.1:{port}"),
        child,
        log,
    };
    wait_ready(&daemon, "/-/ready");
    daemon
}

fn wait_ready(daemon: &Daemon, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("{}{path}", daemon.url);
    while Instant::now() < deadline {
        if ureq::get(&url).call().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{} never became ready at {url}:\n{}",
        daemon.name,
        daemon.log()
    );
}
