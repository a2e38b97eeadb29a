//! The lock: a Lease in the stack's namespace naming who holds it. Creating
//! the Lease is the atomic step: a second `up`/`down` gets 409 and is told
//! who holds it. `telltale unlock` deletes a stale one.

use std::fmt;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use super::Kube;
use super::objects::MANAGED_BY;

pub const LEASE_NAME: &str = "telltale-lock";
const ANNOTATION: &str = "telltale.dev/";

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Holder {
    pub owner: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub started: String,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {} (pid {}, `telltale {}`, since {})",
            self.owner, self.host, self.pid, self.command, self.started
        )
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
        Holder {
            owner: get("owner"),
            host: get("host"),
            pid: get("pid").parse().unwrap_or(0),
            command: get("command"),
            started: get("started"),
        }
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
    #[error("cannot take the lock: {0}")]
    Api(#[from] kube::Error),
}

/// A held lock; release it with [`Lock::release`].
pub struct Lock {
    api: Api<Lease>,
    uid: Option<String>,
    pub holder: Holder,
}

pub async fn acquire(kube: &Kube, namespace: &str, command: &str) -> Result<Lock, LockError> {
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
            acquire_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
            ..Default::default()
        }),
    };
    match api.create(&PostParams::default(), &lease).await {
        Ok(created) => Ok(Lock {
            api,
            uid: created.metadata.uid,
            holder,
        }),
        Err(kube::Error::Api(e)) if e.code == 409 => match api.get_opt(LEASE_NAME).await? {
            Some(existing) => Err(LockError::Held(Holder::from_lease(&existing))),
            // Released between our create and get: a retry is the caller's call.
            None => Err(LockError::Api(kube::Error::Api(e))),
        },
        Err(e) => Err(e.into()),
    }
}

impl Lock {
    /// Deletes the Lease, but only the one this run created.
    pub async fn release(self) -> Result<(), kube::Error> {
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

/// Deletes the Lease whoever holds it (`telltale unlock`).
pub async fn break_lock(kube: &Kube, namespace: &str) -> Result<bool, kube::Error> {
    let api: Api<Lease> = Api::namespaced(kube.client.clone(), namespace);
    match api.delete(LEASE_NAME, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}
