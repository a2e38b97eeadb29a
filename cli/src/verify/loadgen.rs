//! The builtin load generator (`verify --load-engine builtin`): an open-loop
//! generator that starts requests at a fixed rate whatever the latency, as
//! k6's constant-arrival-rate executor does, so a slow service cannot slow
//! the load down and hide its own latency.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::http::Http;

#[derive(Debug, Clone, PartialEq)]
pub struct LoadSummary {
    pub requests: u64,
    pub errors: u64,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub elapsed: Duration,
    /// The first error seen, to say why requests failed.
    pub first_error: Option<String>,
}

impl LoadSummary {
    pub fn error_ratio(&self) -> f64 {
        if self.requests == 0 {
            1.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }

    pub fn line(&self) -> String {
        format!(
            "{} requests in {:.1}s ({:.1}/s), {} errors; p50 {} p95 {} p99 {}",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.requests as f64 / self.elapsed.as_secs_f64().max(0.001),
            self.errors,
            ms(self.p50),
            ms(self.p95),
            ms(self.p99)
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

/// GETs `url` `rate` times a second for `duration`, then waits for the
/// requests in flight.
pub async fn run(http: &Http, url: &str, rate: u32, duration: Duration) -> LoadSummary {
    let rate = rate.max(1);
    let total = (rate as f64 * duration.as_secs_f64()).round().max(1.0) as u64;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut inflight = JoinSet::new();
    for _ in 0..total {
        ticker.tick().await;
        let http = http.clone();
        let url = url.to_string();
        inflight.spawn(async move {
            let sent = Instant::now();
            let outcome = http.get_status(&url).await;
            (sent.elapsed(), outcome)
        });
    }
    let mut latencies = Vec::with_capacity(total as usize);
    let mut errors = 0;
    let mut first_error = None;
    while let Some(joined) = inflight.join_next().await {
        let Ok((latency, outcome)) = joined else {
            errors += 1;
            continue;
        };
        latencies.push(latency);
        let failure = match outcome {
            Ok(status) if status < 400 => None,
            Ok(status) => Some(format!("HTTP {status}")),
            Err(e) => Some(e.to_string()),
        };
        if let Some(failure) = failure {
            errors += 1;
            first_error.get_or_insert(failure);
        }
    }
    latencies.sort();
    LoadSummary {
        requests: total,
        errors,
        p50: percentile(&latencies, 50.0),
        p95: percentile(&latencies, 95.0),
        p99: percentile(&latencies, 99.0),
        elapsed: started.elapsed(),
        first_error,
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&values, 95.0), Duration::from_millis(95));
        assert_eq!(percentile(&values, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
        assert_eq!(
            percentile(&[Duration::from_millis(7)], 50.0),
            Duration::from_millis(7)
        );
    }
}
