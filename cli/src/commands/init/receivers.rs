//! Receivers and where each one's secret comes from.

use std::collections::BTreeMap;

use super::InitArgs;
use super::answering::{Answering, Fallback, check, non_empty};
use crate::error::CommandError;
use crate::init::{self, EmailFields, ReceiverAnswers, ReceiverKind};
use crate::secrets::SecretSource;
use crate::ui::prompt;

pub(super) fn ask_receivers(
    q: &mut Answering,
    args: &InitArgs,
    given: Option<BTreeMap<ReceiverKind, Option<SecretSource>>>,
) -> Result<ReceiverAnswers, CommandError> {
    let selected = q
        .get(
            given,
            "--receiver KIND=SOURCE",
            Fallback::Safe(BTreeMap::new()),
            |_| {
                let items: Vec<String> = ReceiverKind::ALL
                    .iter()
                    .map(|k| format!("{:<10} {}", k.as_str(), k.describe()))
                    .collect();
                let picked = prompt::multi_select(
                    "Notification receivers (space toggles, enter accepts; none is fine)",
                    &items,
                    &ReceiverKind::ALL.map(ReceiverKind::as_str),
                    &[false; 4],
                )?;
                Ok(picked
                    .into_iter()
                    .map(|i| (ReceiverKind::ALL[i], None))
                    .collect())
            },
        )?
        .unwrap_or_default();
    let mut out = ReceiverAnswers::default();
    for (kind, source) in selected {
        let secret = |q: &mut Answering, source: Option<SecretSource>| {
            q.get(
                source,
                &format!("--receiver {}=SOURCE", kind.as_str()),
                Fallback::Safe(kind.default_source()),
                |_| ask_source(kind),
            )
            .map(|s| s.unwrap_or_else(|| kind.default_source()))
        };
        let required = |q: &mut Answering, flag: Option<String>, name: &str, question: &str| {
            q.get(flag, name, Fallback::Required, |_| {
                prompt::text(question, None, false, non_empty)
            })
            .map(Option::unwrap_or_default)
        };
        match kind {
            ReceiverKind::Slack => {
                let channel = q
                    .get(
                        args.slack_channel.clone(),
                        "--slack-channel CHANNEL",
                        Fallback::Safe("#alerts".to_string()),
                        |d| prompt::text("Slack channel", d.as_deref(), false, non_empty),
                    )?
                    .unwrap_or_default();
                out.slack = Some(init::slack(&channel, secret(q, source)?));
            }
            ReceiverKind::Pagerduty => out.pagerduty = Some(init::pagerduty(secret(q, source)?)),
            ReceiverKind::Email => {
                let to = required(q, args.email_to.clone(), "--email-to ADDR", "Email to")?;
                let from = required(
                    q,
                    args.email_from.clone(),
                    "--email-from ADDR",
                    "Email from",
                )?;
                let smarthost = required(
                    q,
                    args.email_smarthost.clone(),
                    "--email-smarthost HOST:PORT",
                    "SMTP server (host:port)",
                )?;
                let username = q
                    .get(
                        args.email_username.clone().map(Some),
                        "--email-username USER",
                        Fallback::Safe(None),
                        |_| {
                            prompt::text(
                                "SMTP user name (empty: no authentication)",
                                None,
                                true,
                                non_empty,
                            )
                            .map(|s| (!s.is_empty()).then_some(s))
                        },
                    )?
                    .flatten();
                let password = match (&username, source) {
                    (_, Some(s)) => Some(s),
                    (Some(_), None) => Some(secret(q, None)?),
                    (None, None) => None,
                };
                out.email = Some(init::email(EmailFields {
                    to,
                    from,
                    smarthost,
                    username,
                    password,
                }));
            }
            ReceiverKind::Sms => {
                let to = q
                    .get(
                        (!args.sms_to.is_empty()).then(|| args.sms_to.clone()),
                        "--sms-to NUMBERS",
                        Fallback::Required,
                        |_| {
                            prompt::text("SMS recipients (comma-separated)", None, false, non_empty)
                                .map(|s| {
                                    s.split(',')
                                        .map(|n| n.trim().to_string())
                                        .filter(|n| !n.is_empty())
                                        .collect()
                                })
                        },
                    )?
                    .unwrap_or_default();
                let sid = required(
                    q,
                    args.twilio_account_sid.clone(),
                    "--twilio-account-sid SID",
                    "Twilio account SID",
                )?;
                let from = required(
                    q,
                    args.twilio_from.clone(),
                    "--twilio-from NUMBER",
                    "Twilio sender number",
                )?;
                out.sms = Some(init::sms(to, sid, from, secret(q, source)?));
            }
        }
    }
    Ok(out)
}

/// Where one secret comes from. The value itself is never asked for here:
/// "type it" records `{prompt: true}` and `up` asks, so the value goes only
/// into the cluster Secret.
pub(super) fn ask_source(kind: ReceiverKind) -> Result<SecretSource, CommandError> {
    let what = kind.secret_name();
    let items = [
        "environment variable (read by `up`)".to_string(),
        "file (read by `up`)".to_string(),
        "existing Kubernetes Secret in the namespace".to_string(),
        "type it when `up` runs (kept only in the cluster Secret)".to_string(),
    ];
    match prompt::select(&format!("{what}: where does it come from?"), &items, 0)? {
        0 => prompt::text(
            &format!("{what}: environment variable"),
            Some(kind.default_env()),
            false,
            check(init::env_name),
        )
        .map(SecretSource::Env),
        1 => prompt::text(
            &format!("{what}: file"),
            Some(&format!("/run/secrets/{}", kind.default_key())),
            false,
            non_empty,
        )
        .map(SecretSource::File),
        2 => {
            let name = prompt::text(
                &format!("{what}: Secret name"),
                Some(init::DEFAULT_SECRET_NAME),
                false,
                |s| {
                    if init::k8s_name(s) {
                        Ok(())
                    } else {
                        Err("not a Kubernetes name (lower case, digits, - and .)".into())
                    }
                },
            )?;
            let key = prompt::text(
                &format!("{what}: key in {name}"),
                Some(kind.default_key()),
                false,
                non_empty,
            )?;
            Ok(SecretSource::SecretRef { name, key })
        }
        _ => Ok(SecretSource::Prompt),
    }
}
