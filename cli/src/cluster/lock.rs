//! The lock: a Lease in the stack's namespace naming who holds it. Creating
//! the Lease is the atomic step: a second `up`/`down` gets 409 and is told
//! who holds it.
//!
//! The Lease has a duration and the holder renews it in a background task
//! while it runs (every third of the duration). A holder that died (SIGKILL,
//! power loss) stops renewing; once `renewTime + leaseDurationSeconds` has
//! passed, the next run takes the Lease over (replacing it under the
//! resourceVersion it read, so two runs cannot both take it) and says so.
//! `telltale unlock` deletes a live Lease only with `--force`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use super::Kube;
use super::objects::MANAGED_BY;

pub const LEASE_NAME: &str = "telltale-lock";
const ANNOTATION: &str = "telltale.dev/";
/// How long a Lease stays live without renewal.
pub const LEASE_SECONDS: i32 = 60;

/// The Lease's duration; renewal runs every third of it.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub duration_seconds: i32,
}

impl Timing {
    /// [`LEASE_SECONDS`], or `TELLTALE_LEASE_SECONDS` (2..=3600) for tests
    /// and for links slow enough that a minute is too short.
    pub fn from_env() -> Timing {
        let duration_seconds = std::env::var("TELLTALE_LEASE_SECONDS")
            .ok()
            .and_then(|v| v.parse::<i32>().ok())
            .filter(|s| (2..=3600).contains(s))
            .unwrap_or(LEASE_SECONDS);
        Timing { duration_seconds }
    }

    fn renew_every(self) -> Duration {
        Duration::from_millis(u64::try_from(self.duration_seconds).unwrap_or(60) * 1000 / 3)
    }
}

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Holder {
    pub owner: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub started: String,
    /// The last renewal (or the acquisition), RFC 3339.
    pub renewed: String,
    /// Seconds the Lease lives after a renewal; none on a Lease written
    /// before telltale renewed its lock (it never expires).
    pub duration_seconds: Option<i32>,
    /// Whether the holder is still renewing (the Lease has not expired).
    pub live: bool,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {} (pid {}, `telltale {}`, since {}",
            self.owner, self.host, self.pid, self.command, self.started
        )?;
        match (self.live, self.duration_seconds) {
            (true, Some(_)) => write!(f, "; renewed {})", self.renewed),
            (true, None) => write!(f, "; a Lease without a duration: it never expires)"),
            (false, _) => write!(f, "; expired: not renewed since {})", self.renewed),
        }
    }
}

impl Holder {
    pub fn me(command: &str) -> Holder {
        Holder {
            owner: std::env::var("USER")
                .or_else(|_| std::env::var("USERNAME"))
                .unwrap_or_else(|_| "unknown".into()),
            host: hostname(),
            pid: std::process::id(),
            command: command.into(),
            started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            renewed: String::new(),
            duration_seconds: None,
            live: true,
        }
    }

    fn identity(&self) -> String {
        format!("{}@{}:{}", self.owner, self.host, self.pid)
    }

    fn from_lease(lease: &Lease) -> Holder {
        let get = |key: &str| {
            lease
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(&format!("{ANNOTATION}{key}")))
                .cloned()
                .unwrap_or_else(|| "?".into())
        };
        let spec = lease.spec.as_ref();
        let renewed = spec
            .and_then(|s| s.renew_time.as_ref().or(s.acquire_time.as_ref()))
            .map(|t| t.0);
        let duration_seconds = spec.and_then(|s| s.lease_duration_seconds);
        Holder {
            owner: get("owner"),
            host: get("host"),
            pid: get("pid").parse().unwrap_or(0),
            command: get("command"),
            started: get("started"),
            renewed: renewed.map(|t| t.to_string()).unwrap_or_else(|| "?".into()),
            duration_seconds,
            live: live(renewed, duration_seconds, Timestamp::now()),
        }
    }
}

/// A Lease is live until `renewed + duration`; one without a duration (an
/// older telltale's) or without any time never expires on its own.
fn live(renewed: Option<Timestamp>, duration: Option<i32>, now: Timestamp) -> bool {
    match (renewed, duration) {
        (Some(renewed), Some(duration)) => {
            renewed
                .as_second()
                .saturating_add(i64::from(duration.max(0)))
                >= now.as_second()
        }
        _ => true,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".into())
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the lock is held by {0}")]
    Held(Holder),
    #[error("cannot take the lock")]
    Api(#[from] kube::Error),
}

/// A held lock, renewed in the background; release it with [`Lock::release`].
pub struct Lock {
    api: Api<Lease>,
    uid: Option<String>,
    pub holder: Holder,
    /// The expired holder this run replaced, to report.
    pub took_over: Option<Holder>,
    renewal: tokio::task::JoinHandle<()>,
    /// Set when a renewal found the Lease gone or someone else's.
    lost: Arc<AtomicBool>,
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

pub async fn acquire(kube: &Kube, namespace: &str, command: &str) -> Result<Lock, LockError> {
    acquire_with(kube, namespace, command, Timing::from_env()).await
}

pub async fn acquire_with(
    kube: &Kube,
    namespace: &str,
    command: &str,
    timing: Timing,
) -> Result<Lock, LockError> {
    let api: Api<Lease> = Api::namespaced(kube.client.clone(), namespace);
    let holder = Holder::me(command);
    let annotations = [
        ("owner", holder.owner.clone()),
        ("host", holder.host.clone()),
        ("pid", holder.pid.to_string()),
        ("command", holder.command.clone()),
        ("started", holder.started.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{ANNOTATION}{k}"), v))
    .collect();
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(LEASE_NAME.into()),
            namespace: Some(namespace.into()),
            labels: Some([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())].into()),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.identity()),
            acquire_time: Some(MicroTime(Timestamp::now())),
            renew_time: Some(MicroTime(Timestamp::now())),
            lease_duration_seconds: Some(timing.duration_seconds),
            ..Default::default()
        }),
    };
    let (created, took_over) = match api.create(&PostParams::default(), &lease).await {
        Ok(created) => (created, None),
        Err(kube::Error::Api(e)) if e.code == 409 => match api.get_opt(LEASE_NAME).await? {
            Some(existing) => {
                let previous = Holder::from_lease(&existing);
                if previous.live {
                    return Err(LockError::Held(previous));
                }
                // Expired: replace it under the version read, so of two runs
                // taking over at once one gets 409.
                let mut replacement = lease.clone();
                replacement.metadata.resource_version = existing.metadata.resource_version;
                if let Some(spec) = replacement.spec.as_mut() {
                    spec.lease_transitions = Some(
                        existing
                            .spec
                            .as_ref()
                            .and_then(|s| s.lease_transitions)
                            .unwrap_or(0)
                            .saturating_add(1),
                    );
                }
                match api
                    .replace(LEASE_NAME, &PostParams::default(), &replacement)
                    .await
                {
                    Ok(replaced) => (replaced, Some(previous)),
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        return Err(match api.get_opt(LEASE_NAME).await? {
                            Some(now) => LockError::Held(Holder::from_lease(&now)),
                            None => LockError::Api(kube::Error::Api(e)),
                        });
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            // Released between our create and get: a retry is the caller's call.
            None => return Err(LockError::Api(kube::Error::Api(e))),
        },
        Err(e) => return Err(e.into()),
    };
    let uid = created.metadata.uid.clone();
    let lost = Arc::new(AtomicBool::new(false));
    let renewal = tokio::spawn(renew(
        api.clone(),
        uid.clone(),
        holder.identity(),
        timing,
        lost.clone(),
    ));
    Ok(Lock {
        api,
        uid,
        holder,
        took_over,
        renewal,
        lost,
    })
}

/// Renews the Lease every third of its duration until aborted; stops (and
/// sets `lost`) when the Lease is gone or is no longer this run's.
async fn renew(
    api: Api<Lease>,
    uid: Option<String>,
    identity: String,
    timing: Timing,
    lost: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(timing.renew_every()).await;
        let current = match api.get_opt(LEASE_NAME).await {
            Ok(current) => current,
            // A transient error: the next tick tries again, well before expiry.
            Err(_) => continue,
        };
        let Some(mut lease) = current.filter(|l| {
            l.metadata.uid == uid
                && l.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
                    == Some(identity.as_str())
        }) else {
            lost.store(true, Ordering::SeqCst);
            return;
        };
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        // A 409 means someone wrote it meanwhile: the next tick re-reads.
        let _ = api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await;
    }
}

impl Lock {
    /// Whether a renewal found the Lease gone or taken (someone ran
    /// `unlock --force`): the run was not protected for all of its time.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stops renewing and deletes the Lease, but only the one this run holds.
    pub async fn release(self) -> Result<(), kube::Error> {
        self.renewal.abort();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: self.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.api.delete(LEASE_NAME, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The current holder, if any.
pub async fn holder(kube: &Kube, namespace: &str) -> Result<Option<Holder>, kube::Error> {
    let api: Api<Lease> = Api::namespaced(kube.client.clone(), namespace);
    Ok(api
        .get_opt(LEASE_NAME)
        .await?
        .map(|l| Holder::from_lease(&l)))
}

/// Deletes the Lease whoever holds it (`telltale unlock`, after the command
/// checked it is expired or `--force` was given).
pub async fn break_lock(kube: &Kube, namespace: &str) -> Result<bool, kube::Error> {
    let api: Api<Lease> = Api::namespaced(kube.client.clone(), namespace);
    match api.delete(LEASE_NAME, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_only_after_its_duration_without_renewal() {
        let now = Timestamp::now();
        let ago = |s: i64| Timestamp::from_second(now.as_second() - s).unwrap();
        assert!(live(Some(ago(10)), Some(60), now));
        assert!(!live(Some(ago(61)), Some(60), now));
        // An older telltale's Lease, without a duration, never expires.
        assert!(live(Some(ago(100_000)), None, now));
        assert!(live(None, Some(60), now));
    }

    #[test]
    fn renewal_is_a_third_of_the_duration() {
        let t = Timing {
            duration_seconds: 60,
        };
        assert_eq!(t.renew_every(), Duration::from_secs(20));
    }
}
