//! verify benchmark (not a timed test): a real Prometheus on 127.0.0.1 with
//! 2,000 targets (one node-exporter, 2,000 label sets) and 1,000 recording
//! rules in 50 groups; `targets` + `rules` timed over 10 runs. Then a real
//! Alertmanager with a synthetic route (group_wait 0s) to a webhook sink:
//! one `notifications` round trip timed over 10 runs.
//!
//!     cargo bench -p telltale --bench verify
//!
//! Needs Debian's prometheus, prometheus-alertmanager, prometheus-node-exporter.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use telltale::model::plugin::TargetExpectation;
use telltale::render::alertmanager::TierIntegrations;
use telltale::render::{Request, render};
use telltale::verify::http::{Auth, Http};
use telltale::verify::{self, CheckId, Context, Endpoints};

const TARGETS: usize = 2000;
const GROUPS: usize = 50;
const RULES_PER_GROUP: usize = 20;

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(bin: &str, args: &[String], log: &Path) -> Daemon {
    Daemon(
        Command::new(bin)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e} (apt-get install prometheus prometheus-alertmanager prometheus-node-exporter)")),
    )
}

fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(url.trim_start_matches("http://")).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{url} never answered");
}

/// A webhook sink answering 200 to everything, on its own thread.
fn sink() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read headers, then the body announced by Content-Length.
            while let Ok(n) = stream.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    port
}

fn median(mut times: Vec<Duration>) -> (Duration, Duration, Duration) {
    times.sort();
    (times[0], times[times.len() / 2], times[times.len() - 1])
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (node_port, prom_port, am_port) = (port(), port(), port());

    // 2,000 targets: one node-exporter under 2,000 label sets.
    let mut config = format!(
        "global: {{scrape_interval: 30s, scrape_timeout: 20s, evaluation_interval: 15s}}\nrule_files: ['{}/rules/*.yaml']\nscrape_configs:\n- job_name: bench\n  static_configs:\n",
        d.display()
    );
    for i in 0..TARGETS {
        config.push_str(&format!(
            "  - targets: ['127.0.0.1:{node_port}']\n    labels: {{shard: '{i}'}}\n"
        ));
    }
    std::fs::write(d.join("prometheus.yml"), config).unwrap();
    std::fs::create_dir_all(d.join("rules")).unwrap();
    let mut groups = Vec::new();
    for g in 0..GROUPS {
        let name = format!("bench-{g:02}");
        let mut text = format!("groups:\n- name: {name}\n  interval: 1s\n  rules:\n");
        for r in 0..RULES_PER_GROUP {
            text.push_str(&format!(
                "  - record: bench:rule_{g}_{r}\n    expr: vector({r})\n"
            ));
        }
        std::fs::write(d.join(format!("rules/{name}.yaml")), text).unwrap();
        groups.push(name);
    }
    // Alertmanager: the synthetic route to a webhook sink.
    let sink_port = sink();
    std::fs::write(
        d.join("alertmanager.yaml"),
        format!(
            "route:\n  receiver: critical\n  routes:\n  - receiver: critical\n    matchers: ['telltale_synthetic=~\".+\"', 'telltale_receiver=\"critical\"']\n    group_by: ['...']\n    group_wait: 0s\n    group_interval: 1m\n    repeat_interval: 24h\nreceivers:\n- name: critical\n  webhook_configs:\n  - url: http://127.0.0.1:{sink_port}/sms\n"
        ),
    )
    .unwrap();

    let _node = spawn(
        "prometheus-node-exporter",
        &[
            format!("--web.listen-address=127.0.0.1:{node_port}"),
            // 2,000 label sets scrape one exporter: lift its concurrency cap.
            "--web.max-requests=0".into(),
            // …and make each scrape cheap: the bench measures verify, not node-exporter.
            "--collector.disable-defaults".into(),
            "--collector.loadavg".into(),
        ],
        &d.join("node.log"),
    );
    let _prom = spawn(
        "prometheus",
        &[
            format!("--config.file={}/prometheus.yml", d.display()),
            format!("--storage.tsdb.path={}/prom", d.display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &d.join("prometheus.log"),
    );
    let _am = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}/alertmanager.yaml", d.display()),
            format!("--storage.path={}/am", d.display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
        &d.join("am.log"),
    );
    let prometheus = format!("http://127.0.0.1:{prom_port}");
    let alertmanager = format!("http://127.0.0.1:{am_port}");
    wait_ready(&prometheus);
    wait_ready(&alertmanager);

    let mut bundle = render(
        &telltale::catalog::Catalog::load(&[]).unwrap(),
        &Request {
            profile: Some("kind".into()),
            ..Request::default()
        },
    )
    .unwrap();
    bundle.plan.expectations.targets = vec![TargetExpectation {
        job: "bench".into(),
        min: TARGETS as u32,
        requires: None,
        scraped_by: None,
    }];
    bundle.plan.expectations.rule_groups = groups;
    bundle.plan.alerting.receivers = vec![TierIntegrations {
        receiver: "critical".into(),
        integrations: vec!["sms-bridge".into()],
    }];
    bundle.files.insert(
        "alertmanager/routes-test.yaml".into(),
        "cases:\n- name: critical\n  labels: {severity: critical}\n  receivers: [critical]\n"
            .into(),
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ctx = Context {
            bundle: &bundle,
            http: Http::new(Auth::None).unwrap(),
            endpoints: Endpoints {
                prometheus: Some(prometheus.clone()),
                alertmanager: Some(alertmanager.clone()),
                ..Endpoints::default()
            },
            timeout: Duration::from_secs(120),
            deadline: tokio::time::Instant::now() + Duration::from_secs(120),
            run_id: verify::run_id(),
            kube: None,
            grafana: Http::new(Auth::None).unwrap(),
            load: Default::default(),
        };
        // Settle: every target scraped and every rule evaluated once.
        let first = verify::run(&ctx, &[CheckId::Targets, CheckId::Rules], &verify::Quiet).await;
        assert!(first.ok, "the bench stack did not settle: {first:#?}");

        let mut times = Vec::new();
        for _ in 0..10 {
            let start = Instant::now();
            let report = verify::run(&ctx, &[CheckId::Targets, CheckId::Rules], &verify::Quiet).await;
            times.push(start.elapsed());
            assert!(report.ok, "{report:#?}");
        }
        let (min, med, max) = median(times);
        println!(
            "targets + rules ({TARGETS} targets, {} rules): median {:.0} ms (min {:.0}, max {:.0}) over 10 runs",
            GROUPS * RULES_PER_GROUP,
            med.as_secs_f64() * 1e3,
            min.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );

        let mut times = Vec::new();
        for _ in 0..10 {
            let ctx = Context {
                bundle: &bundle,
                http: ctx.http.clone(),
                endpoints: ctx.endpoints.clone(),
                timeout: ctx.timeout,
                deadline: tokio::time::Instant::now() + ctx.timeout,
                run_id: verify::run_id(),
                kube: None,
                grafana: ctx.grafana.clone(),
                load: Default::default(),
            };
            let start = Instant::now();
            let report = verify::run(&ctx, &[CheckId::Notifications], &verify::Quiet).await;
            times.push(start.elapsed());
            assert!(report.ok, "{report:#?}");
        }
        let (min, med, max) = median(times);
        println!(
            "synthetic alert round trip (group_wait 0s, webhook): median {:.0} ms (min {:.0}, max {:.0}) over 10 runs",
            med.as_secs_f64() * 1e3,
            min.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    });
}
