//! `unlock`'s use case in two halves, so the confirmation prompt comes
//! between them outside any async code: [`inspect`] reads who holds the
//! lock, [`Held::break_lock`] deletes it.

use crate::cluster::Kube;
use crate::cluster::lock::{self, Holder};
use crate::error::CommandError;
use crate::session::{Chosen, cluster_error};

/// A connection to the cluster whose lock was read.
pub struct Held {
    kube: Kube,
    namespace: String,
}

/// Connects and reads the lock's holder (None: no lock is held).
pub async fn inspect(
    chosen: Chosen,
    namespace: &str,
) -> Result<(Held, Option<Holder>), CommandError> {
    let kube = chosen.connect().await?;
    let holder = lock::holder(&kube, namespace)
        .await
        .map_err(|e| cluster_error("reading the lock", &kube.target.server, e))?;
    let held = Held {
        kube,
        namespace: namespace.to_string(),
    };
    Ok((held, holder))
}

impl Held {
    pub async fn break_lock(&self) -> Result<(), CommandError> {
        lock::break_lock(&self.kube, &self.namespace)
            .await
            .map(|_| ())
            .map_err(|e| cluster_error("deleting the lock", &self.kube.target.server, e))
    }
}
