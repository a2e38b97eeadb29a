//! The local stack (`telltale-local-stack`: real Prometheus, Alertmanager and
//! node-exporter on 127.0.0.1, with the sink, stand-in and fakes) started for
//! one test and stopped (SIGTERM, then reaped) when it ends.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub struct LocalStack {
    child: Child,
    /// The JSON line the stack prints: its URLs, pids and state directory.
    pub urls: Value,
}

impl LocalStack {
    /// Starts the stack on `bundle` with `extra` arguments (`--state DIR`,
    /// `--sink-status slack=500`, …) and waits for its JSON line.
    pub fn start(bundle: &Path, extra: &[&std::ffi::OsStr]) -> LocalStack {
        for tool in [
            "prometheus",
            "prometheus-alertmanager",
            "prometheus-node-exporter",
        ] {
            super::require_tool(tool);
        }
        let mut child = Command::new(crate::common::local_stack_bin())
            .arg("--bundle")
            .arg(bundle)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the local stack starts");
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line);
        let urls: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!("the local stack prints its URLs as JSON ({e}, {read:?}): {line:?}")
        });
        LocalStack { child, urls }
    }

    pub fn url(&self, name: &str) -> &str {
        self.urls[name]
            .as_str()
            .unwrap_or_else(|| panic!("the local stack has no {name} URL: {}", self.urls))
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
