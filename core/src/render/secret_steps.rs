//! The core's Secret steps, first in the secrets phase: Grafana's admin
//! credentials (a fixed user, a password generated once and kept) and the
//! receivers' credentials Alertmanager mounts. The plugins' Secrets and the
//! datasources' follow, in the order their stages add them; the values are
//! never in the bundle, only where `up` reads them.

use std::collections::BTreeMap;

use super::builder::Builder;
use super::plan::{SecretKey, Step};
use super::{GRAFANA_ADMIN_SECRET, alertmanager};
use crate::secrets::KeySource;

/// The stage: the core's Secrets before every other.
pub fn add(b: &mut Builder<'_>) {
    let namespace = &b.r.namespace;
    let admin = Step::Secret {
        name: GRAFANA_ADMIN_SECRET.into(),
        namespace: namespace.clone(),
        keys: vec![
            SecretKey {
                key: "admin-user".into(),
                source: KeySource::Fixed("admin".into()),
            },
            SecretKey {
                key: "admin-password".into(),
                source: KeySource::Generated,
            },
        ],
        annotations: BTreeMap::new(),
    };
    let receivers = Step::Secret {
        name: alertmanager::RECEIVER_SECRET.into(),
        namespace: namespace.clone(),
        keys: alertmanager::receiver_secret_keys(&b.r.alerting)
            .iter()
            .map(|(key, source)| SecretKey {
                key: key.clone(),
                source: KeySource::from(source),
            })
            .collect(),
        annotations: BTreeMap::new(),
    };
    b.secret_steps.splice(0..0, [admin, receivers]);
}
