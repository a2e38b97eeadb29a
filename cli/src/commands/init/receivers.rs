//! Receivers and where each one's secret comes from.
//!
//! The profile's receivers are shown ticked: unticking one writes
//! `enabled: false`, keeping it asks only what the profile leaves to the
//! site (with the profile's values as the defaults), and only answers that
//! differ from the profile are written. A value the profile cannot know
//! (an address, a number) may be left empty: the integration is then left
//! out, and `plan` says which keys to add, exactly as for a profile used
//! without init.

use std::collections::{BTreeMap, BTreeSet};

use super::InitArgs;
use super::answering::{Answering, Fallback, check, non_empty};
use crate::error::CommandError;
use crate::init::{self, ReceiverAnswers, ReceiverKind};
use crate::model::receiver_layer::{
    EmailLayer, PagerDutyLayer, ReceiversLayer, SlackLayer, SmsLayer, TwilioLayer,
};
use crate::secrets::SecretSource;
use crate::ui::prompt;

/// Each receiver flag: ticked with its source if one was given (`Some`), or
/// unticked (`None`).
pub(super) type ReceiverFlags = BTreeMap<ReceiverKind, Option<Option<SecretSource>>>;

/// The kinds the profile declares and does not switch off.
pub(super) fn declared(profile: &ReceiversLayer) -> BTreeSet<ReceiverKind> {
    let on = |enabled: Option<bool>| enabled != Some(false);
    ReceiverKind::ALL
        .into_iter()
        .filter(|k| match k {
            ReceiverKind::Slack => profile.slack.as_ref().is_some_and(|l| on(l.enabled)),
            ReceiverKind::Pagerduty => profile.pagerduty.as_ref().is_some_and(|l| on(l.enabled)),
            ReceiverKind::Email => profile.email.as_ref().is_some_and(|l| on(l.enabled)),
            ReceiverKind::Sms => profile.sms.as_ref().is_some_and(|l| on(l.enabled)),
        })
        .collect()
}

pub(super) fn ask_receivers(
    q: &mut Answering,
    args: &InitArgs,
    given: Option<ReceiverFlags>,
    profile: &ReceiversLayer,
    sms_bridge: Option<&str>,
) -> Result<ReceiverAnswers, CommandError> {
    let declared = declared(profile);
    let sources: BTreeMap<ReceiverKind, SecretSource> = given
        .iter()
        .flatten()
        .filter_map(|(k, v)| v.clone().flatten().map(|s| (*k, s)))
        .collect();
    let given_set = given.map(|flags| {
        let mut set = declared.clone();
        for (kind, on) in flags {
            if on.is_some() {
                set.insert(kind);
            } else {
                set.remove(&kind);
            }
        }
        set
    });
    let selected = q
        .get(
            given_set,
            "--receiver KIND=SOURCE",
            Fallback::Safe(declared.clone()),
            |_| {
                let items: Vec<String> = ReceiverKind::ALL
                    .iter()
                    .map(|k| {
                        let mark = if declared.contains(k) {
                            " (the profile's)"
                        } else {
                            ""
                        };
                        format!("{:<10} {}{mark}", k.as_str(), k.describe(sms_bridge))
                    })
                    .collect();
                let ticked: Vec<bool> = ReceiverKind::ALL
                    .iter()
                    .map(|k| declared.contains(k))
                    .collect();
                let picked = prompt::multi_select(
                    "Notification receivers (space toggles, enter accepts; none is fine)",
                    &items,
                    &ReceiverKind::ALL.map(ReceiverKind::as_str),
                    &ticked,
                )?;
                Ok(picked.into_iter().map(|i| ReceiverKind::ALL[i]).collect())
            },
        )?
        .unwrap_or_default();
    details_only_for_selected(args, &selected)?;

    let mut out = ReceiverAnswers::default();
    for kind in ReceiverKind::ALL {
        let ask = Asking {
            kind,
            from_profile: declared.contains(&kind),
        };
        if !selected.contains(&kind) {
            if ask.from_profile {
                drop_receiver(&mut out, kind);
            }
            continue;
        }
        let source = sources.get(&kind).cloned();
        match kind {
            ReceiverKind::Slack => {
                let p = profile.slack.clone().unwrap_or_default();
                let channel = q
                    .get(
                        args.slack_channel.clone(),
                        "--slack-channel CHANNEL",
                        Fallback::Safe(p.channel.clone().unwrap_or_else(|| "#alerts".into())),
                        |d| prompt::text("Slack channel", d.as_deref(), false, non_empty),
                    )?
                    .unwrap_or_default();
                let url = ask.secret(q, source, p.webhook_url.as_ref())?;
                out.slack = Some(SlackLayer {
                    enabled: None,
                    channel: differs(Some(channel), &p.channel),
                    webhook_url: differs(Some(url), &p.webhook_url),
                });
            }
            ReceiverKind::Pagerduty => {
                let p = profile.pagerduty.clone().unwrap_or_default();
                let key = ask.secret(q, source, p.routing_key.as_ref())?;
                out.pagerduty = Some(PagerDutyLayer {
                    routing_key: differs(Some(key), &p.routing_key),
                    ..Default::default()
                });
            }
            ReceiverKind::Email => {
                let p = profile.email.clone().unwrap_or_default();
                let to = ask.field(
                    q,
                    args.email_to.clone(),
                    "--email-to ADDR",
                    &p.to,
                    "Email to",
                )?;
                let from = ask.field(
                    q,
                    args.email_from.clone(),
                    "--email-from ADDR",
                    &p.from,
                    "Email from",
                )?;
                let smarthost = ask.field(
                    q,
                    args.email_smarthost.clone(),
                    "--email-smarthost HOST:PORT",
                    &p.smarthost,
                    "SMTP server (host:port)",
                )?;
                let username = q
                    .get(
                        args.email_username.clone().map(Some),
                        "--email-username USER",
                        Fallback::Safe(p.username.clone()),
                        |d| {
                            prompt::text(
                                "SMTP user name (empty: no authentication)",
                                d.flatten().as_deref(),
                                true,
                                non_empty,
                            )
                            .map(|s| (!s.is_empty()).then_some(s))
                        },
                    )?
                    .flatten();
                // A password only where the server authenticates (a user
                // name), or where the profile or a flag names its source.
                let password = if username.is_some() || p.password.is_some() || source.is_some() {
                    Some(ask.secret(q, source, p.password.as_ref())?)
                } else {
                    None
                };
                out.email = Some(EmailLayer {
                    to: differs(to, &p.to),
                    from: differs(from, &p.from),
                    smarthost: differs(smarthost, &p.smarthost),
                    username: differs(username, &p.username),
                    password: differs(password, &p.password),
                    ..Default::default()
                });
            }
            ReceiverKind::Sms => {
                let p = profile.sms.clone().unwrap_or_default();
                let t = p.twilio.clone().unwrap_or_default();
                let given_to = (!args.sms_to.is_empty()).then(|| args.sms_to.join(","));
                let to = ask
                    .field(
                        q,
                        given_to,
                        "--sms-to NUMBERS",
                        &p.to.as_ref().map(|to| to.join(",")),
                        "SMS recipients (comma-separated)",
                    )?
                    .map(|s| {
                        s.split(',')
                            .map(|n| n.trim().to_string())
                            .filter(|n| !n.is_empty())
                            .collect::<Vec<_>>()
                    });
                let sid = ask.field(
                    q,
                    args.twilio_account_sid.clone(),
                    "--twilio-account-sid SID",
                    &t.account_sid,
                    "Twilio account SID",
                )?;
                let from = ask.field(
                    q,
                    args.twilio_from.clone(),
                    "--twilio-from NUMBER",
                    &t.from,
                    "Twilio sender number",
                )?;
                let token = ask.secret(q, source, t.auth_token.as_ref())?;
                let twilio = TwilioLayer {
                    account_sid: differs(sid, &t.account_sid),
                    from: differs(from, &t.from),
                    auth_token: differs(Some(token), &t.auth_token),
                };
                out.sms = Some(SmsLayer {
                    to: differs(to, &p.to),
                    twilio: (twilio != TwilioLayer::default()).then_some(twilio),
                    ..Default::default()
                });
            }
        }
    }
    Ok(without_empty(out))
}

/// The questions of one receiver.
struct Asking {
    kind: ReceiverKind,
    /// The profile declares it: what it leaves to the site may stay empty.
    from_profile: bool,
}

impl Asking {
    /// A site value: the profile's is the default; without one it is
    /// required for a receiver the user added, optional (empty: left out
    /// until set) for one the profile declares.
    fn field(
        &self,
        q: &mut Answering,
        flag: Option<String>,
        flag_name: &str,
        profile: &Option<String>,
        question: &str,
    ) -> Result<Option<String>, CommandError> {
        let kind = self.kind.as_str();
        let fallback = match profile {
            Some(v) => Fallback::Safe(Some(v.clone())),
            None if self.from_profile => Fallback::Safe(None),
            None => Fallback::Required,
        };
        let optional = profile.is_none() && self.from_profile;
        let answer = q.get(flag.map(Some), flag_name, fallback, |d| {
            let question = if optional {
                format!("{question} (empty: leave {kind} out until it is set)")
            } else {
                question.to_string()
            };
            prompt::text(&question, d.flatten().as_deref(), optional, non_empty)
                .map(|s| (!s.is_empty()).then_some(s))
        })?;
        Ok(answer.flatten())
    }

    /// Where the secret comes from: a flag, the answer (the profile's
    /// source, else the conventional variable, is the default).
    fn secret(
        &self,
        q: &mut Answering,
        flag: Option<SecretSource>,
        profile: Option<&SecretSource>,
    ) -> Result<SecretSource, CommandError> {
        let default = profile
            .cloned()
            .unwrap_or_else(|| self.kind.default_source());
        let kind = self.kind;
        Ok(q.get(
            flag,
            &format!("--receiver {}=SOURCE", kind.as_str()),
            Fallback::Safe(default.clone()),
            |d| ask_source(kind, d.as_ref().unwrap_or(&default)),
        )?
        .unwrap_or(default))
    }
}

/// The answer when it differs from the profile's value, for the file.
fn differs<T: PartialEq>(answer: Option<T>, profile: &Option<T>) -> Option<T> {
    answer.filter(|a| profile.as_ref() != Some(a))
}

fn drop_receiver(out: &mut ReceiverAnswers, kind: ReceiverKind) {
    let off = Some(false);
    match kind {
        ReceiverKind::Slack => {
            out.slack = Some(SlackLayer {
                enabled: off,
                ..Default::default()
            })
        }
        ReceiverKind::Pagerduty => {
            out.pagerduty = Some(PagerDutyLayer {
                enabled: off,
                ..Default::default()
            })
        }
        ReceiverKind::Email => {
            out.email = Some(EmailLayer {
                enabled: off,
                ..Default::default()
            })
        }
        ReceiverKind::Sms => {
            out.sms = Some(SmsLayer {
                enabled: off,
                ..Default::default()
            })
        }
    }
}

/// Integrations whose every answer equals the profile's say nothing.
fn without_empty(mut r: ReceiverAnswers) -> ReceiverAnswers {
    if r.slack == Some(SlackLayer::default()) {
        r.slack = None;
    }
    if r.pagerduty == Some(PagerDutyLayer::default()) {
        r.pagerduty = None;
    }
    if r.email == Some(EmailLayer::default()) {
        r.email = None;
    }
    if r.sms == Some(SmsLayer::default()) {
        r.sms = None;
    }
    r
}

/// `--email-to` without email among the receivers is a mistake to say, not
/// a value to drop silently.
fn details_only_for_selected(
    args: &InitArgs,
    selected: &BTreeSet<ReceiverKind>,
) -> Result<(), CommandError> {
    for (name, given, kind) in [
        (
            "--slack-channel",
            args.slack_channel.is_some(),
            ReceiverKind::Slack,
        ),
        ("--email-to", args.email_to.is_some(), ReceiverKind::Email),
        (
            "--email-from",
            args.email_from.is_some(),
            ReceiverKind::Email,
        ),
        (
            "--email-smarthost",
            args.email_smarthost.is_some(),
            ReceiverKind::Email,
        ),
        (
            "--email-username",
            args.email_username.is_some(),
            ReceiverKind::Email,
        ),
        ("--sms-to", !args.sms_to.is_empty(), ReceiverKind::Sms),
        (
            "--twilio-account-sid",
            args.twilio_account_sid.is_some(),
            ReceiverKind::Sms,
        ),
        (
            "--twilio-from",
            args.twilio_from.is_some(),
            ReceiverKind::Sms,
        ),
    ] {
        if given && !selected.contains(&kind) {
            return Err(CommandError::bad_input(format!(
                "{name} is given but {} is not among the receivers",
                kind.as_str()
            ))
            .with_hint(format!("add --receiver {}", kind.as_str())));
        }
    }
    Ok(())
}

/// Where one secret comes from, `default` pre-selected. The value itself is
/// never asked for here: "type it" records `{prompt: true}` and `up` asks,
/// so the value goes only into the cluster Secret.
pub(super) fn ask_source(
    kind: ReceiverKind,
    default: &SecretSource,
) -> Result<SecretSource, CommandError> {
    let what = kind.secret_name();
    let items = [
        "environment variable (read by `up`)".to_string(),
        "file (read by `up`)".to_string(),
        "existing Kubernetes Secret in the namespace".to_string(),
        "type it when `up` runs (kept only in the cluster Secret)".to_string(),
    ];
    let (at, env, file, secret_ref) = match default {
        SecretSource::Env(v) => (0, Some(v.as_str()), None, None),
        SecretSource::File(p) => (1, None, Some(p.clone()), None),
        SecretSource::SecretRef { name, key } => (2, None, None, Some((name, key))),
        SecretSource::Prompt => (3, None, None, None),
    };
    match prompt::select(&format!("{what}: where does it come from?"), &items, at)? {
        0 => prompt::text(
            &format!("{what}: environment variable"),
            Some(env.unwrap_or(kind.default_env())),
            false,
            check(init::env_name),
        )
        .map(SecretSource::Env),
        1 => prompt::text(
            &format!("{what}: file"),
            Some(&file.unwrap_or_else(|| format!("/run/secrets/{}", kind.default_key()))),
            false,
            non_empty,
        )
        .map(SecretSource::File),
        2 => {
            let name = prompt::text(
                &format!("{what}: Secret name"),
                Some(secret_ref.map_or(init::DEFAULT_SECRET_NAME, |(n, _)| n.as_str())),
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
                Some(secret_ref.map_or(kind.default_key(), |(_, k)| k.as_str())),
                false,
                non_empty,
            )?;
            Ok(SecretSource::SecretRef { name, key })
        }
        _ => Ok(SecretSource::Prompt),
    }
}
