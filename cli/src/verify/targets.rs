//! Prometheus' `/api/v1/targets` answer, tallied per job while it streams
//! in: a large cluster's answer is megabytes (4.3 MB at 8,000 targets), and
//! the `targets` check needs only, for each job it expects, how many targets
//! are up, whether one is a stand-in, and the first few down ones. So the
//! answer goes through serde visitors (`data.activeTargets`, one target at a
//! time) and nothing but the tallies outlives a target: memory is flat in
//! the number of targets.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Down targets kept per job; a thousand identical lines help nobody.
pub const MAX_LISTED: usize = 20;

/// What the answer says about one job.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JobTally {
    pub total: usize,
    pub up: usize,
    /// A target of the job carries `telltale_standin="true"`.
    pub standin: bool,
    /// All down targets, of which the first [`MAX_LISTED`] are in `down`.
    pub down_count: usize,
    /// (instance, last error or health) of the first down targets.
    pub down: Vec<(String, String)>,
}

/// Tallies per job, for the jobs asked about only.
pub type Tallies = BTreeMap<String, JobTally>;

/// Reads a targets answer (`{"status":…,"data":{"activeTargets":[…],…}}`)
/// into tallies for `jobs`.
pub struct TargetsSeed {
    pub jobs: BTreeSet<String>,
}

/// One target, with only the fields the tally reads; the rest of the object
/// (discovered labels, scrape URL, …) is skipped without being kept.
#[derive(Deserialize)]
struct Target {
    labels: Labels,
    #[serde(default)]
    health: String,
    #[serde(rename = "lastError", default)]
    last_error: String,
}

#[derive(Deserialize)]
struct Labels {
    job: Option<String>,
    instance: Option<String>,
    telltale_standin: Option<String>,
}

impl<'de> DeserializeSeed<'de> for TargetsSeed {
    type Value = Tallies;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Tallies, D::Error> {
        de.deserialize_map(Envelope(self.jobs))
    }
}

/// The answer's envelope: only `data` is read.
struct Envelope(BTreeSet<String>);

impl<'de> Visitor<'de> for Envelope {
    type Value = Tallies;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Prometheus API answer (an object with `data`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tallies, A::Error> {
        let mut tallies = None;
        let jobs = self.0;
        while let Some(key) = map.next_key::<String>()? {
            if key == "data" && tallies.is_none() {
                tallies = Some(map.next_value_seed(Data(jobs.clone()))?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        tallies.ok_or_else(|| serde::de::Error::missing_field("data"))
    }
}

/// `data`: only `activeTargets` is read.
struct Data(BTreeSet<String>);

impl<'de> DeserializeSeed<'de> for Data {
    type Value = Tallies;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Tallies, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Data {
    type Value = Tallies;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with `activeTargets`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tallies, A::Error> {
        let mut tallies = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "activeTargets" && tallies.is_none() {
                tallies = Some(map.next_value_seed(Active(self.0.clone()))?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        tallies.ok_or_else(|| serde::de::Error::missing_field("activeTargets"))
    }
}

/// `activeTargets`: one target at a time, tallied and dropped.
struct Active(BTreeSet<String>);

impl<'de> DeserializeSeed<'de> for Active {
    type Value = Tallies;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Tallies, D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Active {
    type Value = Tallies;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of targets")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tallies, A::Error> {
        let mut tallies: Tallies = self
            .0
            .iter()
            .map(|job| (job.clone(), JobTally::default()))
            .collect();
        while let Some(target) = seq.next_element::<Target>()? {
            let Some(tally) = target
                .labels
                .job
                .as_ref()
                .and_then(|job| tallies.get_mut(job))
            else {
                continue;
            };
            tally.total += 1;
            tally.standin |= target.labels.telltale_standin.as_deref() == Some("true");
            if target.health == "up" {
                tally.up += 1;
                continue;
            }
            tally.down_count += 1;
            if tally.down.len() < MAX_LISTED {
                let why = if target.last_error.is_empty() {
                    format!("health {}", target.health)
                } else {
                    target.last_error
                };
                tally.down.push((
                    target.labels.instance.unwrap_or_else(|| "?".to_string()),
                    why,
                ));
            }
        }
        Ok(tallies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(text: &str, jobs: &[&str]) -> Result<Tallies, serde_json::Error> {
        let seed = TargetsSeed {
            jobs: jobs.iter().map(|j| j.to_string()).collect(),
        };
        let mut de = serde_json::Deserializer::from_str(text);
        seed.deserialize(&mut de)
    }

    #[test]
    fn tallies_the_jobs_asked_about_and_skips_the_rest() {
        let text = r#"{"status":"success","data":{"droppedTargets":[{"x":1}],"activeTargets":[
            {"labels":{"job":"node","instance":"a:1"},"health":"up","scrapeUrl":"http://a:1/metrics","discoveredLabels":{"__address__":"a:1"}},
            {"labels":{"job":"node","instance":"b:1"},"health":"down","lastError":"connection refused"},
            {"labels":{"job":"node","instance":"c:1"},"health":"unknown","lastError":""},
            {"labels":{"job":"app","instance":"s:1","telltale_standin":"true"},"health":"up"},
            {"labels":{"job":"other"},"health":"down"},
            {"labels":{"instance":"no-job"},"health":"down"}
        ]},"warnings":[]}"#;
        let t = tally(text, &["node", "app", "absent"]).unwrap();
        assert_eq!(
            t["node"],
            JobTally {
                total: 3,
                up: 1,
                standin: false,
                down_count: 2,
                down: vec![
                    ("b:1".into(), "connection refused".into()),
                    ("c:1".into(), "health unknown".into())
                ],
            }
        );
        assert_eq!((t["app"].up, t["app"].standin), (1, true));
        assert_eq!(t["absent"], JobTally::default());
        assert!(!t.contains_key("other"));
    }

    #[test]
    fn down_targets_past_the_cap_are_counted_not_kept() {
        let targets: Vec<String> = (0..500)
            .map(|i| format!(r#"{{"labels":{{"job":"j","instance":"i{i}"}},"health":"down"}}"#))
            .collect();
        let text = format!(r#"{{"data":{{"activeTargets":[{}]}}}}"#, targets.join(","));
        let t = tally(&text, &["j"]).unwrap();
        assert_eq!((t["j"].total, t["j"].down_count), (500, 500));
        assert_eq!(t["j"].down.len(), MAX_LISTED);
    }

    #[test]
    fn an_answer_without_targets_is_an_error_naming_what_is_missing() {
        let e = tally(r#"{"status":"error","error":"boom"}"#, &["j"]).unwrap_err();
        assert!(e.to_string().contains("missing field `data`"), "{e}");
        let e = tally(r#"{"data":{}}"#, &["j"]).unwrap_err();
        assert!(e.to_string().contains("activeTargets"), "{e}");
        let e = tally(r#"{"data":{"activeTargets":[{"labels":7}]}}"#, &["j"]).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
