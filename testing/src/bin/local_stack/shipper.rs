//! The log shipper stand-in: what Alloy does in the cluster (tail every
//! container's log and push it to Loki with namespace/pod/container labels),
//! done for the local stack's own daemons, whose logs go to the fake Loki.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::loki::{Labels, Store, now_nanos};

/// Polls each daemon's log file once a second and pushes the new lines.
pub async fn ship(store: Arc<Store>, namespace: String, logs: Vec<(String, PathBuf)>) {
    let mut offsets = vec![0u64; logs.len()];
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticker.tick().await;
        for (i, (daemon, path)) in logs.iter().enumerate() {
            let Some(text) = read_from(path, &mut offsets[i]) else {
                continue;
            };
            let labels: Labels = [
                ("namespace", namespace.as_str()),
                ("pod", &format!("{daemon}-0")),
                ("container", daemon),
                ("job", &format!("{namespace}/{daemon}")),
                ("stream", "stderr"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let ts = now_nanos();
            for (n, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
                // Distinct timestamps keep the lines' order, as Loki requires.
                store.push(labels.clone(), ts + n as i128, line.to_string());
            }
        }
    }
}

/// The complete lines appended since `offset`, which moves past them.
fn read_from(path: &PathBuf, offset: &mut u64) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(*offset)).ok()?;
    let mut buf = String::new();
    file.read_to_string(&mut buf).ok()?;
    let complete = buf.rfind('\n').map(|i| i + 1)?;
    *offset += complete as u64;
    Some(buf[..complete].to_string())
}
