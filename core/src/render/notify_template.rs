//! The notification templates: one Alertmanager template file that every
//! receiver's Slack, email and PagerDuty text comes from.
//!
//! The file travels as an extra key of the config Secret: the operator
//! mounts every key besides alertmanager.yaml in /etc/alertmanager/config/,
//! where `templates: ['/etc/alertmanager/config/*.tmpl']` finds it (the
//! layout kube-prometheus-stack's own templateFiles use). In the bundle it
//! sits next to alertmanager.yaml, as it does in the pod.
//!
//! Each alert is shown with its summary, description, SLA, runbook and,
//! when `alerting.grafanaUrl` is set, its dashboard: the dashboard of the
//! plugin that ships the alert when it ships one, else the dashboard that
//! holds the Alert History table. Prometheus knows nothing of dashboards,
//! so the choice is made here, at render time, as a lookup by alert name.

use std::collections::BTreeMap;
use std::fmt::Write;

/// The file name, in the bundle's alertmanager/ and in the Secret.
pub const FILE: &str = "telltale.tmpl";
/// Where the file is in the bundle.
pub const BUNDLE_PATH: &str = "alertmanager/telltale.tmpl";
/// Where the operator mounts the config Secret's extra keys.
pub const POD_DIR: &str = "/etc/alertmanager/config";

/// alertmanager.yaml's `templates:` entry.
pub fn glob() -> String {
    format!("{POD_DIR}/*.tmpl")
}

/// `config` (alertmanager.yaml as JSON) with its templates read from `dir`
/// instead of the pod's directory: how amtool and a local Alertmanager load
/// the bundle's own template files (the bundle holds them in `dir`).
pub fn templates_from(config: &mut serde_json::Value, dir: &std::path::Path) {
    let Some(list) = config
        .get_mut("templates")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return;
    };
    for entry in list {
        if let Some(rest) = entry
            .as_str()
            .and_then(|e| e.strip_prefix(POD_DIR))
            .map(|r| r.trim_start_matches('/').to_string())
        {
            *entry = serde_json::Value::String(dir.join(rest).to_string_lossy().into_owned());
        }
    }
}

/// Template names the receivers use.
pub const TITLE: &str = "telltale.title";
pub const TEXT: &str = "telltale.text";
pub const EMAIL_SUBJECT: &str = "telltale.email.subject";
pub const EMAIL_HTML: &str = "telltale.email.html";
pub const PAGERDUTY_DESCRIPTION: &str = "telltale.pagerduty.description";
pub const DASHBOARD_URL: &str = "telltale.dashboard.url";
pub const ALERT_TEXT: &str = "telltale.alert.text";

/// `{{ template "NAME" . }}`, what a receiver field holds.
pub fn call(name: &str) -> String {
    format!("{{{{ template \"{name}\" . }}}}")
}

/// Which dashboard each alert links to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertDashboards {
    /// Dashboard uid → the alerts that link it.
    pub by_uid: BTreeMap<String, Vec<String>>,
    /// The dashboard every other alert links (the Alert History table's).
    pub fallback: Option<String>,
}

impl AlertDashboards {
    /// Records the alerts of one plugin: its dashboard when it ships exactly
    /// one, the fallback otherwise (left to the lookup's default branch).
    pub fn add_plugin(&mut self, alerts: &[String], dashboards: &[String]) {
        if let [only] = dashboards {
            self.link(only, alerts);
        }
    }

    /// Links `alerts` to the dashboard `uid`.
    pub fn link(&mut self, uid: &str, alerts: &[String]) {
        let entry = self.by_uid.entry(uid.to_string()).or_default();
        for a in alerts {
            if !entry.contains(a) {
                entry.push(a.clone());
            }
        }
        entry.sort();
    }
}

/// The template file. `grafana_url` is checked by the model (URL
/// characters only), so it is safe inside a template string.
pub fn render(grafana_url: Option<&str>, dashboards: &AlertDashboards) -> String {
    let mut t = String::new();
    t.push_str(
        "{{/* telltale's notification templates. Every receiver's Slack, email and\n     PagerDuty text comes from here; rendered by telltale from the bundle's\n     alerts and dashboards (edit the config, not this file). */}}\n\n",
    );
    let _ = writeln!(
        t,
        "{{{{ define \"{TITLE}\" }}}}[{{{{ .Status | toUpper }}}}{{{{ if eq .Status \"firing\" }}}}:{{{{ .Alerts.Firing | len }}}}{{{{ end }}}}] {{{{ .CommonLabels.alertname }}}}{{{{ end }}}}\n"
    );
    let _ = writeln!(
        t,
        "{{{{ define \"{EMAIL_SUBJECT}\" }}}}[{{{{ .Status | toUpper }}}}] {{{{ .CommonLabels.alertname }}}} ({{{{ .CommonLabels.severity }}}}){{{{ end }}}}\n"
    );
    // The dashboard of one alert (`.` is an alert), with its cluster
    // selected: every telltale dashboard has a `cluster` variable.
    let dashboard = grafana_url.map(|base| {
        let base = base.trim_end_matches('/');
        let url = |uid: &str| {
            format!(
                "{base}/d/{uid}{{{{ if .Labels.cluster }}}}?var-cluster={{{{ .Labels.cluster | urlquery }}}}{{{{ end }}}}"
            )
        };
        let mut body = String::new();
        let mut first = true;
        for (uid, alerts) in &dashboards.by_uid {
            if alerts.is_empty() {
                continue;
            }
            let names: Vec<String> = alerts.iter().map(|a| format!("\"{a}\"")).collect();
            let _ = write!(
                body,
                "{{{{ {} eq .Labels.alertname {} }}}}{}",
                if first { "if" } else { "else if" },
                names.join(" "),
                url(uid)
            );
            first = false;
        }
        let fallback = match &dashboards.fallback {
            Some(uid) => url(uid),
            None => format!("{base}/alerting/list"),
        };
        if first {
            body = fallback;
        } else {
            let _ = write!(body, "{{{{ else }}}}{fallback}{{{{ end }}}}");
        }
        body
    });
    if let Some(body) = &dashboard {
        let _ = writeln!(
            t,
            "{{{{/* The dashboard of one alert: its plugin's, else the Alert History's. */}}}}\n{{{{ define \"{DASHBOARD_URL}\" }}}}{body}{{{{ end }}}}\n"
        );
    }
    let dashboard_line = if dashboard.is_some() {
        format!("Dashboard: {}\n", call(DASHBOARD_URL))
    } else {
        String::new()
    };
    // One alert, as text (Slack's *bold*; plain in mail).
    let _ = writeln!(
        t,
        "{{{{ define \"{ALERT_TEXT}\" }}}}*{{{{ .Annotations.summary }}}}*\n{{{{ .Annotations.description }}}}\nSLA: {{{{ .Annotations.sla }}}}\nRunbook: {{{{ .Annotations.runbook_url }}}}\n{dashboard_line}{{{{ end }}}}\n"
    );
    let _ = writeln!(
        t,
        "{{{{ define \"{TEXT}\" }}}}{{{{ range .Alerts }}}}{}\n{{{{ end }}}}{{{{ end }}}}\n",
        call(ALERT_TEXT)
    );
    let dashboard_link = if dashboard.is_some() {
        format!(" · <a href=\"{}\">Dashboard</a>", call(DASHBOARD_URL))
    } else {
        String::new()
    };
    let _ = writeln!(
        t,
        "{{{{ define \"{EMAIL_HTML}\" }}}}<html><body>\n<h2>{}</h2>\n{{{{ range .Alerts }}}}<h3>{{{{ .Annotations.summary }}}}</h3>\n<p>{{{{ .Annotations.description }}}}</p>\n<p>SLA: {{{{ .Annotations.sla }}}}</p>\n<p><a href=\"{{{{ .Annotations.runbook_url }}}}\">Runbook</a>{dashboard_link}</p>\n{{{{ end }}}}</body></html>{{{{ end }}}}\n",
        call(TITLE)
    );
    let _ = writeln!(
        t,
        "{{{{ define \"{PAGERDUTY_DESCRIPTION}\" }}}}{{{{ .CommonLabels.alertname }}}}: {{{{ (index .Alerts 0).Annotations.summary }}}}{{{{ if gt (len .Alerts) 1 }}}} (and {{{{ len .Alerts }}}} alerts in all){{{{ end }}}}{{{{ end }}}}"
    );
    t
}

/// PagerDuty's `details`: only the first alert's links and the count.
/// Alertmanager (0.33) parses every rendered details value as YAML, and
/// again inside what it parsed: free text holding `: ` (most descriptions)
/// arrives as a map, whatever the quoting. So no free text goes here; the
/// summary is the incident's title (`description`, sent as written) and
/// the runbook and dashboard are also the event's links.
pub fn pagerduty_details(with_dashboard: bool) -> serde_json::Value {
    let mut d = serde_json::json!({
        "runbook": "{{ (index .Alerts 0).Annotations.runbook_url }}",
        "firing": "{{ .Alerts.Firing | len }}",
    });
    if with_dashboard {
        d["dashboard"] = serde_json::json!(format!(
            "{{{{ template \"{DASHBOARD_URL}\" (index .Alerts 0) }}}}"
        ));
    }
    d
}

/// PagerDuty's `links`: the first alert's runbook and dashboard.
pub fn pagerduty_links(with_dashboard: bool) -> serde_json::Value {
    let mut links = vec![serde_json::json!({
        "href": "{{ (index .Alerts 0).Annotations.runbook_url }}",
        "text": "Runbook",
    })];
    if with_dashboard {
        links.push(serde_json::json!({
            "href": format!("{{{{ template \"{DASHBOARD_URL}\" (index .Alerts 0) }}}}"),
            "text": "Dashboard",
        }));
    }
    serde_json::Value::Array(links)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_link_their_plugins_dashboard_and_the_rest_the_fallback() {
        let mut d = AlertDashboards {
            fallback: Some("telltale-infrastructure".into()),
            ..Default::default()
        };
        d.add_plugin(&["SchedulerDown".into()], &["telltale-airflow".into()]);
        // Two dashboards: no choice, the fallback.
        d.add_plugin(
            &["NodeDown".into()],
            &["a".to_string(), "telltale-infrastructure".into()],
        );
        let t = render(Some("https://grafana.corp.test/"), &d);
        assert!(t.contains("{{ if eq .Labels.alertname \"SchedulerDown\" }}https://grafana.corp.test/d/telltale-airflow{{ if .Labels.cluster }}"), "{t}");
        assert!(
            t.contains("{{ else }}https://grafana.corp.test/d/telltale-infrastructure"),
            "{t}"
        );
        assert!(!t.contains("NodeDown"), "{t}");
        // Without Grafana's URL no dashboard line at all.
        let bare = render(None, &d);
        assert!(!bare.contains("Dashboard"), "{bare}");
        assert!(bare.contains("Runbook: {{ .Annotations.runbook_url }}"));
    }
}
