//! The `alerting:` section of the server configuration: the routing tree, receivers and their
//! channels, inhibition rules. [`AlertingConfig::compile`] checks all of it and reports every
//! problem at once.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::matcher::{self, Matcher};
use crate::quiet::QuietCheck;
use crate::route::RouteTree;
use crate::template::Templates;
use crate::time_interval::{TimeInterval, TimeIntervalConfig};
use crate::AlertError;

/// Where alerts go and how they are grouped, silenced and escalated.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// The routing tree. Without one, every receiver gets every alert at once, one
    /// notification per alert.
    #[serde(default)]
    pub route: Option<RouteConfig>,
    /// Named receivers, each with one or more channels.
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    /// Alerts that mute others while they fire (Alertmanager's `inhibit_rules`).
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    /// Named recurring times, for routes' `mute_time_intervals` and `active_time_intervals`
    /// (Alertmanager's `time_intervals`; its older name `mute_time_intervals` is read too).
    #[serde(default, alias = "mute_time_intervals")]
    pub time_intervals: Vec<TimeIntervalConfig>,
    /// An alert not seen again for this long is resolved (by `timeout`), like `1h`. Without it,
    /// alerts stay open until resolved by hand or by their sender.
    #[serde(default, deserialize_with = "opt_duration")]
    pub resolve_timeout: Option<Duration>,
    /// The server's public URL, used for links in notifications (`generatorURL`, buttons).
    #[serde(default)]
    pub external_url: Option<String>,
    /// Senders that must not go quiet: data matching an entry that stops coming from one
    /// sender for `after` raises a `SourceQuiet` alert, resolved when data comes again.
    #[serde(default)]
    pub quiet_sources: Vec<QuietSourceConfig>,
}

/// One "silence is a signal" check. The labels of incoming data are `source` (the table:
/// `audit`, `container_log`, `ingress`, `dns`, `netflow`, `journal`, `k8s_event`, `falco`),
/// `input` (`webhook`, `falco`, or the agent's input name), `node`, `agent` and `cluster`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietSourceConfig {
    /// Name of the check, in the alert's `check` label.
    #[serde(default)]
    pub name: Option<String>,
    /// Which data the check watches, in Alertmanager's syntax: `['source="audit"']`.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Older form: label equals value, like `{source: audit}`.
    #[serde(default, rename = "match")]
    pub match_eq: BTreeMap<String, String>,
    /// Older form: label matches regex (anchored).
    #[serde(default)]
    pub match_re: BTreeMap<String, String>,
    /// Labels that name one sender, like `[node]`: each combination of their values is watched
    /// on its own, and data without them is not watched by this check. Empty: all matching data
    /// is one sender.
    #[serde(default)]
    pub per: Vec<String>,
    /// A sender that has sent before and then sends nothing for this long raises the alert,
    /// like `10m`.
    #[serde(deserialize_with = "duration")]
    pub after: Duration,
    /// The alert's `priority` label.
    #[serde(default = "default_quiet_priority")]
    pub priority: String,
}

/// A node of the routing tree; children inherit what they do not set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver of the alerts this route takes (required at the root).
    #[serde(default)]
    pub receiver: Option<String>,
    /// Labels that split alerts into notification groups; `[...]` groups by every label
    /// (one group per alert); empty puts all of the route's alerts in one group.
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// Conditions in Alertmanager's syntax: `['namespace="prod"', 'rule=~"Exec.*"']`.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Older form: label equals value.
    #[serde(default, rename = "match")]
    pub match_eq: BTreeMap<String, String>,
    /// Older form: label matches regex (anchored).
    #[serde(default)]
    pub match_re: BTreeMap<String, String>,
    /// Keep looking at the following sibling routes after this one matched.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Wait before a new group's first notification, to gather its alerts, like `30s`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub group_wait: Option<Duration>,
    /// Wait before notifying about alerts added to a group already notified, like `5m`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub group_interval: Option<Duration>,
    /// Wait before sending a notification again when nothing changed, like `4h`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub repeat_interval: Option<Duration>,
    /// Tiers of receivers told when an alert stays unacknowledged.
    #[serde(default)]
    pub escalation: Option<Vec<EscalationTierConfig>>,
    /// Names of `time_intervals` during which this route's notifications are not sent (the
    /// alerts are still grouped and sent when the interval ends). Not inherited by child
    /// routes, as in Alertmanager.
    #[serde(default)]
    pub mute_time_intervals: Vec<String>,
    /// Names of `time_intervals` outside of which this route's notifications are not sent.
    /// Not inherited by child routes.
    #[serde(default)]
    pub active_time_intervals: Vec<String>,
    /// Child routes, tried in order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// One escalation tier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationTierConfig {
    /// Time after an alert's first notification at which this tier is told, like `15m`.
    #[serde(deserialize_with = "duration")]
    pub after: Duration,
    /// Receivers of this tier.
    pub receivers: Vec<String>,
    /// Tell this tier again this often until the alert is acknowledged or the next tier is
    /// due, like `30m`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub repeat_interval: Option<Duration>,
}

/// Alertmanager's inhibition: while an alert matching `source_matchers` fires, alerts matching
/// `target_matchers` with the same values of the `equal` labels are muted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    /// Conditions on the muting alert.
    #[serde(default)]
    pub source_matchers: Vec<String>,
    /// Older form of `source_matchers`: equality.
    #[serde(default)]
    pub source_match: BTreeMap<String, String>,
    /// Older form of `source_matchers`: regex.
    #[serde(default)]
    pub source_match_re: BTreeMap<String, String>,
    /// Conditions on the muted alerts.
    #[serde(default)]
    pub target_matchers: Vec<String>,
    /// Older form of `target_matchers`: equality.
    #[serde(default)]
    pub target_match: BTreeMap<String, String>,
    /// Older form of `target_matchers`: regex.
    #[serde(default)]
    pub target_match_re: BTreeMap<String, String>,
    /// Labels whose values must be equal in both alerts.
    #[serde(default)]
    pub equal: Vec<String>,
}

/// A named receiver: one or more channels and how deliveries to them behave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Unique name, used by routes.
    pub name: String,
    /// A JSON webhook (Alertmanager's webhook format, or a templated body).
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    /// An Alertmanager: alerts are posted to its `/api/v2/alerts`.
    #[serde(default)]
    pub alertmanager: Option<AlertmanagerConfig>,
    /// A Slack incoming webhook (Block Kit message).
    #[serde(default)]
    pub slack: Option<SlackConfig>,
    /// A DingTalk group robot.
    #[serde(default)]
    pub dingtalk: Option<DingTalkConfig>,
    /// PagerDuty Events API v2.
    #[serde(default)]
    pub pagerduty: Option<PagerDutyConfig>,
    /// An SMS gateway reached over HTTP with a templated request.
    #[serde(default)]
    pub sms: Option<SmsConfig>,
    /// Email over SMTP.
    #[serde(default)]
    pub email: Option<EmailConfig>,
    /// Also notify when alerts are resolved.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Attempts before a delivery is given up (and logged as failed).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Time one attempt may take, like `10s`.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Wait before the first retry, doubled after each failure (up to 5m), like `1s`.
    #[serde(default = "default_backoff", deserialize_with = "duration")]
    pub initial_backoff: Duration,
    /// Notifications per minute at most; more wait their turn (per channel).
    #[serde(default)]
    pub max_per_minute: Option<u32>,
}

/// A generic webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Extra headers, e.g. `Authorization`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A template for the body; without it the body is Alertmanager's webhook JSON
    /// (version 4) with Kestrel's fields added to each alert.
    #[serde(default)]
    pub body: Option<String>,
    /// `Content-Type` of a templated body.
    #[serde(default = "default_json")]
    pub content_type: String,
}

/// An Alertmanager to forward to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Alertmanager's base URL, like `http://127.0.0.1:9093`; alerts go to `{url}/api/v2/alerts`.
    pub url: String,
    /// Firing alerts are posted again this often so Alertmanager does not resolve them, like
    /// `1m`; each post says they end 4 intervals later unless posted again.
    #[serde(default = "default_resend", deserialize_with = "duration")]
    pub resend_interval: Duration,
    /// Extra headers, e.g. `Authorization`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A Slack incoming webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming webhook URL (`https://hooks.slack.com/services/...`).
    pub url: String,
    /// Channel override (legacy webhooks only).
    #[serde(default)]
    pub channel: Option<String>,
    /// Sender name override (legacy webhooks only).
    #[serde(default)]
    pub username: Option<String>,
    /// Template of the header line.
    #[serde(default)]
    pub title: Option<String>,
    /// Template of the message text (Slack mrkdwn).
    #[serde(default)]
    pub text: Option<String>,
}

/// A DingTalk custom robot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingTalkConfig {
    /// The robot's webhook URL with its `access_token`.
    pub url: String,
    /// The robot's signing secret (`SEC...`); when set, requests are signed.
    #[serde(default)]
    pub secret: Option<String>,
    /// Template of the message title.
    #[serde(default)]
    pub title: Option<String>,
    /// Template of the markdown text.
    #[serde(default)]
    pub text: Option<String>,
    /// Mobile numbers to @-mention.
    #[serde(default)]
    pub at_mobiles: Vec<String>,
    /// @-mention everyone in the group.
    #[serde(default)]
    pub at_all: bool,
}

/// PagerDuty Events API v2.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// The integration's routing key.
    pub routing_key: String,
    /// The Events API endpoint.
    #[serde(default = "default_pagerduty_url")]
    pub url: String,
    /// Template of the summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// Fixed severity (`critical`, `error`, `warning`, `info`); by default derived from the
    /// alerts' priority.
    #[serde(default)]
    pub severity: Option<String>,
}

/// An SMS gateway: one HTTP request per recipient, with a templated body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// The gateway's URL.
    pub url: String,
    /// Phone numbers to send to.
    pub to: Vec<String>,
    /// Extra headers (credentials).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Template of the message text (`message` in the body template).
    #[serde(default)]
    pub text: Option<String>,
    /// Template of the request body; sees `to`, `message` and the notification.
    #[serde(default)]
    pub body: Option<String>,
    /// `Content-Type` of the body.
    #[serde(default = "default_json")]
    pub content_type: String,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (only for a relay on the same host or network).
    None,
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the start (SMTPS, usually port 465).
    Tls,
}

/// Email over SMTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server, `host:port`.
    pub smarthost: String,
    /// Sender address.
    pub from: String,
    /// Recipient addresses.
    pub to: Vec<String>,
    /// `none`, `starttls` or `tls`.
    #[serde(default = "default_smtp_tls")]
    pub tls: SmtpTls,
    /// SMTP login.
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP password.
    #[serde(default)]
    pub password: Option<String>,
    /// Template of the subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// Template of the plain-text part.
    #[serde(default)]
    pub text: Option<String>,
    /// Template of the HTML part.
    #[serde(default)]
    pub html: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_json() -> String {
    "application/json".into()
}
fn default_max_attempts() -> u32 {
    6
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_resend() -> Duration {
    Duration::from_secs(60)
}
fn default_pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".into()
}
fn default_quiet_priority() -> String {
    "Warning".into()
}
fn default_smtp_tls() -> SmtpTls {
    SmtpTls::Starttls
}

/// Reads a duration written with a unit: `500ms`, `30s`, `5m`, `180d`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!("invalid duration {s:?} (write e.g. 30s, 5m): {e}"))
    })
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Which channel of a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    Webhook,
    Alertmanager,
    Slack,
    DingTalk,
    PagerDuty,
    Sms,
    Email,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Alertmanager => "alertmanager",
            ChannelKind::Slack => "slack",
            ChannelKind::DingTalk => "dingtalk",
            ChannelKind::PagerDuty => "pagerduty",
            ChannelKind::Sms => "sms",
            ChannelKind::Email => "email",
        }
    }
}

impl ReceiverConfig {
    /// The channels configured, in a fixed order.
    pub fn channels(&self) -> Vec<ChannelKind> {
        let mut out = Vec::new();
        if self.webhook.is_some() {
            out.push(ChannelKind::Webhook);
        }
        if self.alertmanager.is_some() {
            out.push(ChannelKind::Alertmanager);
        }
        if self.slack.is_some() {
            out.push(ChannelKind::Slack);
        }
        if self.dingtalk.is_some() {
            out.push(ChannelKind::DingTalk);
        }
        if self.pagerduty.is_some() {
            out.push(ChannelKind::PagerDuty);
        }
        if self.sms.is_some() {
            out.push(ChannelKind::Sms);
        }
        if self.email.is_some() {
            out.push(ChannelKind::Email);
        }
        out
    }

    fn urls(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        if let Some(c) = &self.webhook {
            out.push(("webhook.url", c.url.as_str()));
        }
        if let Some(c) = &self.alertmanager {
            out.push(("alertmanager.url", c.url.as_str()));
        }
        if let Some(c) = &self.slack {
            out.push(("slack.url", c.url.as_str()));
        }
        if let Some(c) = &self.dingtalk {
            out.push(("dingtalk.url", c.url.as_str()));
        }
        if let Some(c) = &self.pagerduty {
            out.push(("pagerduty.url", c.url.as_str()));
        }
        if let Some(c) = &self.sms {
            out.push(("sms.url", c.url.as_str()));
        }
        out
    }
}

/// One inhibition rule, compiled.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

/// A checked configuration, ready to run.
#[derive(Debug, Clone)]
pub struct CompiledAlerting {
    pub config: AlertingConfig,
    pub routes: RouteTree,
    pub inhibit_rules: Vec<InhibitRule>,
    pub templates: Templates,
    pub quiet_checks: Vec<QuietCheck>,
    /// Named time intervals, compiled.
    pub time_intervals: BTreeMap<String, Vec<TimeInterval>>,
}

impl AlertingConfig {
    /// Checks the whole section and returns every problem at once.
    pub fn validate(&self) -> Result<(), AlertError> {
        self.compile().map(|_| ())
    }

    /// Checks everything and builds the routing tree, inhibition rules and templates.
    pub fn compile(&self) -> Result<CompiledAlerting, AlertError> {
        let mut problems = Vec::new();
        let mut names = HashSet::new();
        for r in &self.receivers {
            let at = format!("receiver {:?}", r.name);
            if r.name.is_empty() {
                problems.push("a receiver has an empty name".to_string());
            }
            if !names.insert(r.name.as_str()) {
                problems.push(format!("{at} is defined twice"));
            }
            if r.channels().is_empty() {
                problems.push(format!(
                    "{at} has no channel (webhook, alertmanager, slack, dingtalk, pagerduty, sms or email)"
                ));
            }
            for (key, url) in r.urls() {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    problems.push(format!(
                        "{at}: {key} {url:?} must start with http:// or https://"
                    ));
                }
            }
            if r.max_attempts == 0 {
                problems.push(format!("{at}: max_attempts must be at least 1"));
            }
            if r.max_per_minute == Some(0) {
                problems.push(format!(
                    "{at}: max_per_minute must be at least 1 (leave it out for no limit)"
                ));
            }
            if let Some(p) = &r.pagerduty {
                if let Some(s) = &p.severity {
                    if !matches!(s.as_str(), "critical" | "error" | "warning" | "info") {
                        problems.push(format!(
                            "{at}: pagerduty.severity {s:?} must be critical, error, warning or info"
                        ));
                    }
                }
                if p.routing_key.is_empty() {
                    problems.push(format!("{at}: pagerduty.routing_key is empty"));
                }
            }
            if let Some(s) = &r.sms {
                if s.to.is_empty() {
                    problems.push(format!("{at}: sms.to lists no phone number"));
                }
            }
            if let Some(e) = &r.email {
                if e.to.is_empty() {
                    problems.push(format!("{at}: email.to lists no address"));
                }
                for addr in std::iter::once(&e.from).chain(&e.to) {
                    if addr.parse::<lettre::message::Mailbox>().is_err() {
                        problems.push(format!("{at}: {addr:?} is not an email address"));
                    }
                }
                if e.smarthost
                    .rsplit_once(':')
                    .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
                {
                    problems.push(format!(
                        "{at}: email.smarthost {:?} must be host:port",
                        e.smarthost
                    ));
                }
                if e.username.is_some() != e.password.is_some() {
                    problems.push(format!(
                        "{at}: email.username and email.password go together"
                    ));
                }
            }
        }
        if let Some(url) = &self.external_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(format!(
                    "external_url {url:?} must start with http:// or https://"
                ));
            }
        }
        let (routes, route_problems) = RouteTree::compile(self.route.as_ref(), &self.receivers);
        problems.extend(route_problems);
        for (at, name) in routes.receiver_references() {
            if !name.is_empty() && !names.contains(name.as_str()) {
                problems.push(format!(
                    "{at} names receiver {name:?}, which is not defined"
                ));
            }
        }
        let mut inhibit_rules = Vec::new();
        for (i, r) in self.inhibit_rules.iter().enumerate() {
            let at = format!("inhibit_rules[{i}]");
            let source =
                matcher::from_config(&r.source_matchers, &r.source_match, &r.source_match_re);
            let target =
                matcher::from_config(&r.target_matchers, &r.target_match, &r.target_match_re);
            match (source, target) {
                (Ok(source), Ok(target)) => {
                    if source.is_empty() || target.is_empty() {
                        problems.push(format!(
                            "{at}: needs both source and target matchers (it would mute everything)"
                        ));
                    }
                    inhibit_rules.push(InhibitRule {
                        source,
                        target,
                        equal: r.equal.clone(),
                    });
                }
                (s, t) => {
                    for e in s.err().into_iter().chain(t.err()).flatten() {
                        problems.push(format!("{at}: {e}"));
                    }
                }
            }
        }
        let mut time_intervals = BTreeMap::new();
        for (i, t) in self.time_intervals.iter().enumerate() {
            let at = format!("time_intervals[{i}] ({:?})", t.name);
            if t.name.is_empty() {
                problems.push(format!("time_intervals[{i}]: name is empty"));
            }
            let compiled: Vec<TimeInterval> = t
                .time_intervals
                .iter()
                .enumerate()
                .filter_map(|(j, spec)| {
                    spec.compile(&format!("{at}.time_intervals[{j}]"), &mut problems)
                })
                .collect();
            if time_intervals.insert(t.name.clone(), compiled).is_some() {
                problems.push(format!("{at}: the name is used twice"));
            }
        }
        for (at, name) in routes.time_interval_references() {
            if !time_intervals.contains_key(&name) {
                problems.push(format!(
                    "{at} names time interval {name:?}, which is not defined"
                ));
            }
        }
        let mut quiet_checks = Vec::new();
        let mut quiet_names = HashSet::new();
        for (i, q) in self.quiet_sources.iter().enumerate() {
            let at = match &q.name {
                Some(n) => format!("quiet_sources[{i}] ({n:?})"),
                None => format!("quiet_sources[{i}]"),
            };
            if let Some(n) = &q.name {
                if n.is_empty() {
                    problems.push(format!("{at}: name is empty"));
                } else if !quiet_names.insert(n.as_str()) {
                    problems.push(format!("{at}: the name is used twice"));
                }
            }
            if q.after.is_zero() {
                problems.push(format!("{at}: after must be longer than 0s"));
            }
            if q.priority.is_empty() {
                problems.push(format!("{at}: priority is empty"));
            }
            if q.per.iter().any(|p| p.is_empty()) {
                problems.push(format!("{at}: per names an empty label"));
            }
            match matcher::from_config(&q.matchers, &q.match_eq, &q.match_re) {
                Ok(matchers) => quiet_checks.push(QuietCheck {
                    name: q.name.clone(),
                    matchers,
                    per: q.per.clone(),
                    after: q.after,
                    priority: q.priority.clone(),
                }),
                Err(es) => problems.extend(es.into_iter().map(|e| format!("{at}: {e}"))),
            }
        }
        let templates = match Templates::compile(&self.receivers) {
            Ok(t) => Some(t),
            Err(ps) => {
                problems.extend(ps);
                None
            }
        };
        match templates {
            Some(templates) if problems.is_empty() => Ok(CompiledAlerting {
                config: self.clone(),
                routes,
                inhibit_rules,
                templates,
                quiet_checks,
                time_intervals,
            }),
            _ => Err(AlertError::Config(problems)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_reports_every_problem() {
        let cfg: AlertingConfig = serde_yaml_ng::from_str(
            r#"
route:
  receiver: missing
  routes:
    - matchers: ['rule=~"("']
      receiver: a
    - match: {namespace: prod}
      receiver: nope
receivers:
  - name: a
    webhook: {url: ftp://x}
    max_attempts: 0
  - name: a
  - name: e
    email: {smarthost: nohost, from: "not an address", to: []}
  - name: t
    slack: {url: "https://hooks.slack.test/x", text: "{{ unclosed"}
inhibit_rules:
  - source_matchers: ['priority="Critical"']
quiet_sources:
  - {name: q, match_re: {source: "("}, per: [node], after: 0s}
  - {name: q, per: [agent], after: 5m}
"#,
        )
        .unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        for needle in [
            "ftp://x",
            "max_attempts",
            "defined twice",
            "no channel",
            "\"missing\"",
            "\"nope\"",
            "bad regex",
            "smarthost",
            "not an email address",
            "email.to",
            "receiver \"t\": slack.text",
            "inhibit_rules[0]",
            "quiet_sources[0] (\"q\"): after",
            "quiet_sources[0] (\"q\"): invalid matcher",
            "quiet_sources[1] (\"q\"): the name is used twice",
        ] {
            assert!(err.contains(needle), "{needle} not in {err}");
        }
    }

    #[test]
    fn durations_take_units() {
        let cfg: AlertingConfig = serde_yaml_ng::from_str(
            "receivers:\n  - name: a\n    webhook: {url: 'http://127.0.0.1:1/x'}\n    timeout: 250ms\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.receivers[0].timeout, Duration::from_millis(250));
        assert!(serde_yaml_ng::from_str::<AlertingConfig>(
            "receivers:\n  - name: a\n    webhook: {url: 'http://x'}\n    timeout: soon\n"
        )
        .is_err());
    }

    #[test]
    fn the_issue_example_works_verbatim() {
        let cfg: AlertingConfig = serde_yaml_ng::from_str(
            r#"
route:
  receiver: am
  group_by: [rule]
  group_wait: 1s
receivers:
  - name: am
    alertmanager:
      url: http://127.0.0.1:9093
"#,
        )
        .unwrap();
        let c = cfg.compile().unwrap();
        let root = c.routes.node(0);
        assert_eq!(root.receiver, "am");
        assert_eq!(root.group_wait, Duration::from_secs(1));
    }
}
