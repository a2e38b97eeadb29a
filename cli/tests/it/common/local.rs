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

/// A port on 127.0.0.1 where nothing listens, held while the value lives:
/// its socket is bound but never listens, so a connection is refused at once
/// and no other test or daemon asking for a free port is given it meanwhile.
/// (A [`free_port`] used as "nothing answers here" was handed to another
/// test's server when the suite ran eight tests at a time.)
pub struct DeadPort {
    _socket: socket2::Socket,
    pub port: u16,
}

pub fn dead_port() -> DeadPort {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a TCP socket");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).expect("a port on 127.0.0.1");
    let port = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("a bound address")
        .port();
    DeadPort {
        _socket: socket,
        port,
    }
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
    start("alertmanager", dir, "/-/ready", None, |port| {
        let mut command = Command::new(&bin);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=");
        command
    })
}

/// Starts Prometheus 3 with `config` on a free port, storage under `dir`,
/// alerts re-sent every second, and waits until /-/ready answers.
pub fn prometheus(config: &Path, dir: &Path) -> Daemon {
    let config = config.to_path_buf();
    prometheus_with(dir, &[], None, |_| config.clone())
}

/// Prometheus 3 with storage under `dir` and `args` added. Its port is
/// chosen first and given to `config`, which writes the configuration
/// (a server that scrapes itself needs its own address) and returns its
/// path. `auth` is the `Authorization` header the readiness probe sends
/// when a `--web.config.file` requires one.
pub fn prometheus_with(
    dir: &Path,
    args: &[String],
    auth: Option<&str>,
    mut config: impl FnMut(u16) -> std::path::PathBuf,
) -> Daemon {
    let bin = super::require_tool("prometheus");
    let version = super::run_ok(Command::new(&bin).arg("--version"));
    assert!(
        version.contains("version 3."),
        "Prometheus 3 expected: {version}"
    );
    start("prometheus", dir, "/-/ready", auth, |port| {
        let mut command = Command::new(&bin);
        command
            .arg(format!("--config.file={}", config(port).display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--rules.alert.resend-delay=1s")
            .args(args);
        command
    })
}

/// Starts `command(port)` on a [`free_port`] and waits until `path`
/// answers. The daemon binds the port a moment after it was picked, and
/// another test can take it in between: a daemon that exits because the
/// address is in use is started again on a new port (three tries). Whether
/// it still runs is checked before each probe, so a daemon that exited is
/// not taken for whatever answers on its port.
fn start(
    name: &str,
    dir: &Path,
    path: &str,
    auth: Option<&str>,
    mut command: impl FnMut(u16) -> Command,
) -> Daemon {
    let log = dir.join(format!("{name}.log"));
    for attempt in 1..=3 {
        let port = free_port();
        let child = command(port)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let mut daemon = Daemon {
            name: name.into(),
            url: format!("http://127.0.0.1:{port}"),
            child,
            log: log.clone(),
        };
        match wait_ready(&mut daemon, path, auth) {
            Ok(()) => return daemon,
            Err(status) if attempt < 3 && daemon.log().contains("address already in use") => {
                eprintln!("{name} exited ({status}): port {port} was taken; again on a new port");
            }
            Err(status) => panic!(
                "{name} exited ({status}) before it was ready:\n{}",
                daemon.log()
            ),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// Waits for `path` to answer, sending `auth` (`Authorization` header value)
/// when the daemon's web config requires it; the exit status when the
/// daemon exits first.
fn wait_ready(
    daemon: &mut Daemon,
    path: &str,
    auth: Option<&str>,
) -> Result<(), std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("{}{path}", daemon.url);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = daemon.child.try_wait() {
            return Err(status);
        }
        let mut request = ureq::get(&url);
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        if request.call().is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{} never became ready at {url}:\n{}",
        daemon.name,
        daemon.log()
    );
}

/// A one-page exporter on 127.0.0.1 serving `body(seconds since start,
/// unix time)` in the text format; stopped when dropped.
pub struct Exporter {
    pub addr: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

pub fn exporter(body: impl Fn(f64, f64) -> String + Send + 'static) -> Exporter {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let start = Instant::now();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = conn.set_nonblocking(false);
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            let text = body(start.elapsed().as_secs_f64(), now);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    Exporter { addr, stop }
}

/// Prometheus 3 evaluating `bundle`'s rule files (every `for:` set to 0s, so
/// what fires fires at once) every second, scraping each exporter as its job
/// (labels the series carry are honoured), with no Alertmanager.
pub fn rules_over(
    bundle: &telltale::render::Bundle,
    dir: &Path,
    jobs: &[(&str, &Exporter)],
) -> Daemon {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let for_ = regex::Regex::new(r"(?m)^(\s+)for: \S+$").unwrap();
    for (path, text) in super::files_with_prefix(bundle, "prometheus/rules/") {
        let name = path.trim_start_matches("prometheus/rules/");
        let text = for_.replace_all(text, "${1}for: 0s");
        std::fs::write(rules.join(name), text.as_ref()).unwrap();
    }
    let scrape: String = jobs
        .iter()
        .map(|(job, e)| {
            format!(
                "- {{job_name: {job}, honor_labels: true, static_configs: [{{targets: ['{}']}}]}}\n",
                e.addr
            )
        })
        .collect();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: ['{}/*.yaml']\n\
             scrape_configs:\n{scrape}",
            rules.display(),
        ),
    )
    .unwrap();
    prometheus(&config, dir)
}

/// The alerts Prometheus reports (`/api/v1/alerts`), pending and firing.
pub fn prometheus_alerts(prometheus: &Daemon) -> Vec<serde_json::Value> {
    let body: serde_json::Value = ureq::get(&format!("{}/api/v1/alerts", prometheus.url))
        .call()
        .unwrap_or_else(|e| panic!("GET /api/v1/alerts: {e}\n{}", prometheus.log()))
        .body_mut()
        .read_json()
        .unwrap();
    body["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
