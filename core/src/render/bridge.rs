//! What a plugin builds from the alerting config, generically:
//!
//! - `alerting/*.yaml`, templates whose objects (a bridge's config) are
//!   applied in the plugin's phase after its rules; besides what manifests
//!   see, they see `alerting`, the view of the integrations below;
//! - with plugin.yaml `spec.bridge` (the plugin carries an Alertmanager
//!   integration to its provider: sachet texts for `sms`), the
//!   integration's secret sources it names go to the plugin's Secret, and
//!   `plan` warns while the plugin is enabled but the integration is not
//!   configured; and a configured integration without its own `bridgeUrl`
//!   posts to the bridging plugin's `spec.bridge.url` (`default_url`).

use serde_json::{Value, json};

use super::alertmanager::sms_receivers;
use super::builder::Builder;
use super::plan::SecretKey;
use super::resolve::EnabledPlugin;
use super::{RenderError, objects, template};
use crate::catalog::Catalog;
use crate::model::Alerting;
use crate::model::alerting::Integration;
use crate::secrets::KeySource;

/// What `alerting/` templates see as `alerting`: each configured
/// integration a bridge serves, with its non-secret settings as the config
/// writes them and the Alertmanager receivers that use it. Today: `sms`,
/// `{to, twilio: {accountSid, from}, receivers: [{name, to}]}`.
pub fn alerting_view(alerting: &Alerting) -> Value {
    let mut view = json!({});
    if let Some(sms) = &alerting.receivers.sms {
        let receivers: Vec<Value> = sms_receivers(alerting)
            .into_iter()
            .map(|(name, to)| json!({"name": name, "to": to}))
            .collect();
        view["sms"] = json!({
            "to": sms.to,
            "twilio": {"accountSid": sms.twilio.account_sid, "from": sms.twilio.from},
            "receivers": receivers,
        });
    }
    view
}

/// The plugin's `alerting/` objects, in its phase.
pub fn objects(b: &mut Builder<'_>, p: &EnabledPlugin) -> Result<(), RenderError> {
    let templates = p.entry.files.files_in("alerting", ".yaml");
    if templates.is_empty() {
        return Ok(());
    }
    let view = alerting_view(&b.r.alerting);
    let secrets = p.secret_refs();
    let scope = template::Scope {
        values: Some(&p.values),
        secrets: Some(&secrets),
        datasources: Some(&b.datasources),
        alerting: Some(&view),
    };
    for (_, source) in templates {
        let rendered = template::render_in(&source, &b.ctx, scope)?;
        for o in objects::parse(&rendered, &b.r.namespace, p.name())? {
            b.objects.push((p.entry.plugin.spec.phase, o));
        }
    }
    Ok(())
}

/// The bridged integration's secret sources, as keys of the plugin's
/// Secret, and the warning when it is not configured (one that is
/// incomplete is already warned about as left out).
pub fn secret_keys(b: &mut Builder<'_>, p: &EnabledPlugin) -> Vec<SecretKey> {
    let Some(bridge) = &p.entry.plugin.spec.bridge else {
        return Vec::new();
    };
    let alerting = &b.r.alerting;
    let integration = bridge.integration;
    if !alerting.receivers.configured(integration)
        && !alerting.left_out.iter().any(|l| l == integration.as_str())
    {
        b.warnings.push(format!(
            "plugin {} is enabled but alerting.receivers.{} is not configured: {}",
            p.name(),
            integration.as_str(),
            bridge.unconfigured
        ));
    }
    bridge
        .secrets
        .iter()
        .filter_map(|s| {
            let source = alerting.receivers.secret_source(integration, &s.path)?;
            Some(SecretKey {
                key: s.key.clone(),
                source: KeySource::from(source),
            })
        })
        .collect()
}

/// Where the `sms` webhook goes when the config gives no `bridgeUrl`: the
/// `spec.bridge.url` of the plugin bridging `sms`, an enabled one first,
/// with the stack's namespace in it. The warnings: the bridging plugin is
/// not enabled (the webhook goes to a service nothing installs), or no
/// plugin bridges `sms` at all (the webhook is left out).
pub fn default_url(
    catalog: &Catalog,
    enabled: &[EnabledPlugin],
    alerting: &mut Alerting,
    namespace: &str,
) -> Vec<String> {
    let Some(sms) = alerting.receivers.sms.as_mut() else {
        return Vec::new();
    };
    if sms.bridge_url.is_some() {
        return Vec::new();
    }
    let bridging = |plugin: &crate::model::plugin::Plugin| {
        plugin
            .bridge_for(Integration::Sms)
            .and_then(|b| b.url.clone())
    };
    let on = enabled
        .iter()
        .find_map(|p| bridging(&p.entry.plugin).map(|url| (p.name().to_string(), url, true)));
    let any = || {
        catalog
            .plugins
            .iter()
            .find_map(|(name, e)| bridging(&e.plugin).map(|url| (name.clone(), url, false)))
    };
    match on.or_else(any) {
        Some((name, url, enabled)) => {
            let url = url.replace("{namespace}", namespace);
            let mut warnings = Vec::new();
            if !enabled {
                warnings.push(format!(
                    "alerting.receivers.sms posts to {url}, the service of plugin {name}, which is not enabled: enable it (spec.plugins.{name}.enabled: true) or set alerting.receivers.sms.bridgeUrl"
                ));
            }
            sms.bridge_url = Some(url);
            warnings
        }
        None => vec![
            "alerting.receivers.sms has no bridgeUrl and no plugin bridges sms (plugin.yaml spec.bridge.url): no SMS will be sent".to_string(),
        ],
    }
}
