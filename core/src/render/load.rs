//! verify's load, sized from the autoscaler's own thresholds.
//!
//! A load under the thresholds proves nothing about scaling (seed 004:
//! "fire a synthetic load to increase P95 and observe HPA scaling
//! decisions"). When the bundle has both a load (the k6 plugin) and an
//! autoscaler that declares where it scales out (`expectations.scaleOut`),
//! the load's rate is twice what the minimum replicas absorb, so the HPA
//! wants twice the replicas, and it lasts long enough for the autoscaler to
//! see it. Pure: no I/O.

use std::time::Duration;

use crate::model::plugin::LoadExpectation;

/// The HPA controller's default sync period (kube-controller-manager
/// `--horizontal-pod-autoscaler-sync-period`).
pub const HPA_SYNC: Duration = Duration::from_secs(15);
/// Time for the first scrapes of the load to reach Prometheus.
pub const SCRAPE_MARGIN: Duration = Duration::from_secs(15);
/// The highest rate derived (verify's `--load-rate` bound).
pub const MAX_RATE: u32 = 10_000;

/// An autoscaler's scale-out point, with its templates rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleOut {
    pub hpa: String,
    pub min_replicas: u32,
    pub requests_per_replica: f64,
    pub window: Duration,
    pub interval: Duration,
}

/// `load` with its rate, duration and HPA derived from `scale`.
pub fn derive(load: &LoadExpectation, scale: &ScaleOut) -> LoadExpectation {
    let absorbed = scale.requests_per_replica * f64::from(scale.min_replicas.max(1));
    let rate = (2.0 * absorbed).ceil().clamp(1.0, f64::from(MAX_RATE)) as u32;
    // The rate window holds nothing but the load by then; the autoscaler
    // reads it within an interval; the HPA acts at its next sync.
    let duration = scale.window + scale.interval + HPA_SYNC + SCRAPE_MARGIN;
    LoadExpectation {
        rate,
        duration: format!("{}s", duration.as_secs()),
        hpa: Some(scale.hpa.clone()),
        derived: Some(format!(
            "rate {rate}/s = 2 × {} req/s per replica × {} replica(s): the HPA {} wants {} replicas; \
             duration {}s = the {}s rate window + the {}s polling interval + {}s HPA sync + {}s for the scrapes",
            scale.requests_per_replica,
            scale.min_replicas,
            scale.hpa,
            2 * scale.min_replicas.max(1),
            duration.as_secs(),
            scale.window.as_secs(),
            scale.interval.as_secs(),
            HPA_SYNC.as_secs(),
            SCRAPE_MARGIN.as_secs(),
        )),
        ..load.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load() -> LoadExpectation {
        LoadExpectation {
            url: "http://model/".into(),
            rate: 20,
            duration: "60s".into(),
            moves: vec![],
            hpa: None,
            derived: None,
        }
    }

    #[test]
    fn the_load_is_twice_what_the_minimum_replicas_absorb_for_long_enough() {
        let scale = ScaleOut {
            hpa: "ml/keda-hpa-model".into(),
            min_replicas: 2,
            requests_per_replica: 12.5,
            window: Duration::from_secs(120),
            interval: Duration::from_secs(15),
        };
        let l = derive(&load(), &scale);
        assert_eq!(l.rate, 50);
        assert_eq!(l.duration, "165s");
        assert_eq!(l.hpa.as_deref(), Some("ml/keda-hpa-model"));
        assert!(l.derived.unwrap().contains("wants 4 replicas"));
        assert_eq!(l.url, "http://model/");
    }

    #[test]
    fn the_rate_stays_within_verifys_bound() {
        let scale = ScaleOut {
            hpa: "a/b".into(),
            min_replicas: 100,
            requests_per_replica: 1000.0,
            window: Duration::from_secs(60),
            interval: Duration::from_secs(30),
        };
        assert_eq!(derive(&load(), &scale).rate, MAX_RATE);
    }
}
