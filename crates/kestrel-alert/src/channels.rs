//! What each channel sends, in its provider's published format: Alertmanager's webhook (v4)
//! and `POST /api/v2/alerts`, Slack Block Kit, DingTalk robot (signed), PagerDuty Events v2,
//! an SMS gateway's templated request, and email (text and HTML parts). Pure: building a
//! message does no I/O; `notify` sends it.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::config::{ChannelKind, ReceiverConfig};
use crate::engine::Notification;
use crate::model::{Alert, AlertStatus};
use crate::template::{self, TemplateError, Templates};

/// How a response tells success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseCheck {
    /// A 2xx status.
    Status,
    /// A 2xx status and `{"errcode": 0}` (DingTalk answers 200 to refused messages).
    DingTalkErrcode,
}

/// One HTTP POST.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpPost {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub content_type: String,
    pub body: Vec<u8>,
    pub check: ResponseCheck,
}

impl HttpPost {
    fn json(url: String, headers: &BTreeMap<String, String>, body: &Value) -> HttpPost {
        HttpPost {
            url,
            headers: headers.clone(),
            content_type: "application/json".into(),
            body: serde_json::to_vec(body).expect("json serializes"),
            check: ResponseCheck::Status,
        }
    }
}

/// A message ready to send.
#[derive(Debug)]
pub enum Outgoing {
    /// One or more POSTs (an SMS per recipient).
    Http(Vec<HttpPost>),
    Email(Box<lettre::Message>),
}

/// A message that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("email: {0}")]
    Email(String),
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Alertmanager's "no end time".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn alert_url(external_url: Option<&str>, a: &Alert) -> Option<String> {
    external_url.map(|u| format!("{}/v1/alerts/{}", u.trim_end_matches('/'), a.id))
}

fn ends_at(a: &Alert, now: DateTime<Utc>) -> String {
    if a.status == AlertStatus::Resolved {
        a.status_at.clone().unwrap_or_else(|| rfc3339(now))
    } else {
        ZERO_TIME.into()
    }
}

/// The generic webhook's default body: Alertmanager's webhook format (version 4), each alert
/// with Kestrel's fields added (`id`, `rule`, `priority`, `output`, `count`, `state`, ...).
pub fn webhook_body(n: &Notification, external_url: Option<&str>) -> Value {
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            json!({
                "status": if a.status == AlertStatus::Resolved { "resolved" } else { "firing" },
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": a.first_seen,
                "endsAt": ends_at(a, n.created_at),
                "generatorURL": alert_url(external_url, a).unwrap_or_default(),
                "fingerprint": a.id,
                "id": a.id,
                "rule": a.rule,
                "priority": a.priority,
                "source": a.source,
                "output": a.output,
                "tags": a.tags,
                "count": a.count,
                "state": a.status,
                "status_by": a.status_by,
                "status_at": a.status_at,
                "event": a.event,
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": 0,
        "status": n.status,
        "receiver": n.receiver,
        "reason": n.reason.as_str(),
        "groupLabels": n.group_labels,
        "commonLabels": n.common_labels(),
        "commonAnnotations": n.common_annotations(),
        "externalURL": external_url.unwrap_or_default(),
        "alerts": alerts,
    })
}

/// A valid Prometheus label name (Alertmanager 0.25 checks annotation names too).
fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// One alert as Alertmanager's `POST /api/v2/alerts` takes it. A firing alert says it ends
/// at `valid_until` unless posted again, as Prometheus does.
pub fn alertmanager_alert(
    a: &Alert,
    external_url: Option<&str>,
    now: DateTime<Utc>,
    valid_until: DateTime<Utc>,
) -> Value {
    let mut labels: BTreeMap<String, String> = a
        .labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (label_name(k), v.clone()))
        .collect();
    labels
        .entry("alertname".into())
        .or_insert_with(|| a.rule.clone());
    if !a.priority.is_empty() {
        labels
            .entry("severity".into())
            .or_insert_with(|| a.priority.to_lowercase());
    }
    let mut annotations: BTreeMap<String, String> = a
        .annotations
        .iter()
        .map(|(k, v)| (label_name(k), v.clone()))
        .collect();
    annotations
        .entry("summary".into())
        .or_insert_with(|| a.output.clone());
    annotations.insert("kestrel_alert_id".into(), a.id.clone());
    if let Some(e) = &a.event {
        annotations.insert("kestrel_events_query".into(), e.query.clone());
    }
    let ends = if a.status == AlertStatus::Resolved {
        a.status_at.clone().unwrap_or_else(|| rfc3339(now))
    } else {
        rfc3339(valid_until)
    };
    let mut v = json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": a.first_seen,
        "endsAt": ends,
    });
    if let Some(url) = alert_url(external_url, a) {
        v["generatorURL"] = json!(url);
    }
    v
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Slack incoming webhook with Block Kit: a header, the text as mrkdwn, a context line.
/// Header text is limited to 150 characters and section text to 3000 by Slack.
pub fn slack_body(
    title: &str,
    text: &str,
    context: &str,
    channel: Option<&str>,
    username: Option<&str>,
) -> Value {
    let mut body = json!({
        "text": truncate(title, 3000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": truncate(title, 150), "emoji": true}},
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, 3000)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(context, 3000)}]},
        ],
    });
    if let Some(c) = channel {
        body["channel"] = json!(c);
    }
    if let Some(u) = username {
        body["username"] = json!(u);
    }
    body
}

/// DingTalk's signature: base64(HMAC-SHA256(key = secret, message = timestamp + "\n" + secret)),
/// URL-encoded, with the timestamp in milliseconds.
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The robot URL with `timestamp` and `sign` added when there is a secret.
pub fn dingtalk_url(url: &str, secret: Option<&str>, timestamp_ms: i64) -> String {
    match secret {
        None => url.to_string(),
        Some(s) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!(
                "{url}{sep}timestamp={timestamp_ms}&sign={}",
                dingtalk_sign(s, timestamp_ms)
            )
        }
    }
}

/// A DingTalk markdown message. A mention works only when the number also appears in the text.
pub fn dingtalk_body(title: &str, text: &str, at_mobiles: &[String], at_all: bool) -> Value {
    let mut text = text.to_string();
    if !at_mobiles.is_empty() {
        text.push_str("\n\n");
        text.push_str(
            &at_mobiles
                .iter()
                .map(|m| format!("@{m}"))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    json!({
        "msgtype": "markdown",
        "markdown": {"title": title, "text": text},
        "at": {"atMobiles": at_mobiles, "isAtAll": at_all},
    })
}

/// PagerDuty's severity for a Falco priority (or an Alertmanager `severity`).
pub fn pagerduty_severity(priority: &str) -> &'static str {
    match priority.to_ascii_lowercase().as_str() {
        "emergency" | "alert" | "critical" | "page" => "critical",
        "error" | "high" => "error",
        "warning" | "warn" | "medium" => "warning",
        _ => "info",
    }
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 3,
        "error" => 2,
        "warning" => 1,
        _ => 0,
    }
}

/// PagerDuty's `dedup_key` of a group: SHA-256 of the group key, as Alertmanager does.
pub fn pagerduty_dedup_key(group_key: &str) -> String {
    hex::encode(Sha256::digest(group_key.as_bytes()))
}

/// A PagerDuty Events API v2 event: `trigger` while any alert fires, else `resolve`.
pub fn pagerduty_body(
    n: &Notification,
    routing_key: &str,
    summary: &str,
    severity: Option<&str>,
    external_url: Option<&str>,
) -> Value {
    let dedup_key = pagerduty_dedup_key(&n.group_key);
    if n.status == "resolved" {
        return json!({"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key});
    }
    let severity = severity.unwrap_or_else(|| {
        n.firing()
            .map(|a| pagerduty_severity(&a.priority))
            .max_by_key(|s| severity_rank(s))
            .unwrap_or("info")
    });
    let common = n.common_labels();
    let details: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| json!({"id": a.id, "status": a.status, "rule": a.rule, "priority": a.priority, "output": a.output, "labels": a.labels, "count": a.count}))
        .collect();
    let mut payload = Map::new();
    payload.insert("summary".into(), json!(truncate(summary, 1024)));
    payload.insert(
        "source".into(),
        json!(common
            .get("cluster")
            .cloned()
            .unwrap_or_else(|| "kestrel".into())),
    );
    payload.insert("severity".into(), json!(severity));
    payload.insert("timestamp".into(), json!(rfc3339(n.created_at)));
    if let Some(ns) = common.get("namespace") {
        payload.insert("component".into(), json!(ns));
    }
    if let Some(rule) = common.get("rule").or(common.get("alertname")) {
        payload.insert("group".into(), json!(rule));
    }
    if let Some(src) = common.get("source") {
        payload.insert("class".into(), json!(src));
    }
    payload.insert(
        "custom_details".into(),
        json!({
            "firing": n.firing().count(),
            "resolved": n.resolved().count(),
            "reason": n.reason.as_str(),
            "alerts": details,
        }),
    );
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": payload,
        "client": "Kestrel",
    });
    if let Some(u) = external_url {
        body["client_url"] = json!(u);
        let links: Vec<Value> = n
            .alerts
            .iter()
            .filter_map(|a| alert_url(Some(u), a).map(|href| json!({"href": href, "text": a.rule})))
            .collect();
        body["links"] = json!(links);
    }
    body
}

/// Builds what `kind` of `receiver` sends for `n`. `now` signs DingTalk requests.
/// (The Alertmanager channel is built by its forwarder, which also re-posts.)
pub fn build(
    kind: ChannelKind,
    receiver: &ReceiverConfig,
    templates: &Templates,
    n: &Notification,
    external_url: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Outgoing, BuildError> {
    let ctx = template::context(n, external_url);
    let name = receiver.name.as_str();
    let title = |field: &str| templates.render(name, field, "title", &ctx);
    match kind {
        ChannelKind::Webhook => {
            let c = receiver.webhook.as_ref().expect("webhook configured");
            let post = match &c.body {
                None => HttpPost::json(c.url.clone(), &c.headers, &webhook_body(n, external_url)),
                Some(_) => HttpPost {
                    url: c.url.clone(),
                    headers: c.headers.clone(),
                    content_type: c.content_type.clone(),
                    body: templates
                        .render(name, "webhook.body", "text", &ctx)?
                        .into_bytes(),
                    check: ResponseCheck::Status,
                },
            };
            Ok(Outgoing::Http(vec![post]))
        }
        ChannelKind::Alertmanager => {
            let c = receiver
                .alertmanager
                .as_ref()
                .expect("alertmanager configured");
            let valid_until = now
                + chrono::Duration::from_std(c.resend_interval * 4)
                    .unwrap_or(chrono::Duration::MAX);
            let alerts: Vec<Value> = n
                .alerts
                .iter()
                .map(|a| alertmanager_alert(a, external_url, now, valid_until))
                .collect();
            Ok(Outgoing::Http(vec![HttpPost::json(
                alertmanager_endpoint(&c.url),
                &c.headers,
                &json!(alerts),
            )]))
        }
        ChannelKind::Slack => {
            let c = receiver.slack.as_ref().expect("slack configured");
            let title = title("slack.title")?;
            let text = templates.render(name, "slack.text", "slack.text", &ctx)?;
            let context = format!("Kestrel · {} · {}", n.reason.as_str(), n.receiver);
            let body = slack_body(
                &title,
                &text,
                &context,
                c.channel.as_deref(),
                c.username.as_deref(),
            );
            Ok(Outgoing::Http(vec![HttpPost::json(
                c.url.clone(),
                &BTreeMap::new(),
                &body,
            )]))
        }
        ChannelKind::DingTalk => {
            let c = receiver.dingtalk.as_ref().expect("dingtalk configured");
            let title = title("dingtalk.title")?;
            let ctx = template::with(&ctx, "title", json!(title));
            let text = templates.render(name, "dingtalk.text", "markdown", &ctx)?;
            let body = dingtalk_body(&title, &text, &c.at_mobiles, c.at_all);
            let mut post = HttpPost::json(
                dingtalk_url(&c.url, c.secret.as_deref(), now.timestamp_millis()),
                &BTreeMap::new(),
                &body,
            );
            post.check = ResponseCheck::DingTalkErrcode;
            Ok(Outgoing::Http(vec![post]))
        }
        ChannelKind::PagerDuty => {
            let c = receiver.pagerduty.as_ref().expect("pagerduty configured");
            let summary = title("pagerduty.summary")?;
            let body = pagerduty_body(
                n,
                &c.routing_key,
                &summary,
                c.severity.as_deref(),
                external_url,
            );
            Ok(Outgoing::Http(vec![HttpPost::json(
                c.url.clone(),
                &BTreeMap::new(),
                &body,
            )]))
        }
        ChannelKind::Sms => {
            let c = receiver.sms.as_ref().expect("sms configured");
            let title = templates.render(name, "sms.title", "title", &ctx)?;
            let ctx = template::with(&ctx, "title", json!(title));
            let message = templates.render(name, "sms.text", "sms.text", &ctx)?;
            let ctx = template::with(&ctx, "message", json!(message));
            let posts =
                c.to.iter()
                    .map(|to| {
                        let ctx = template::with(&ctx, "to", json!(to));
                        Ok(HttpPost {
                            url: c.url.clone(),
                            headers: c.headers.clone(),
                            content_type: c.content_type.clone(),
                            body: templates
                                .render(name, "sms.body", "sms.body", &ctx)?
                                .into_bytes(),
                            check: ResponseCheck::Status,
                        })
                    })
                    .collect::<Result<Vec<_>, TemplateError>>()?;
            Ok(Outgoing::Http(posts))
        }
        ChannelKind::Email => {
            let c = receiver.email.as_ref().expect("email configured");
            let subject = title("email.subject")?;
            let ctx = template::with(&ctx, "title", json!(subject));
            let text = templates.render(name, "email.text", "text", &ctx)?;
            let html = templates.render(name, "email.html", "email.html", &ctx)?;
            let mut m = lettre::Message::builder()
                .from(
                    c.from
                        .parse()
                        .map_err(|e| BuildError::Email(format!("from: {e}")))?,
                )
                .subject(subject);
            for to in &c.to {
                m = m.to(to
                    .parse()
                    .map_err(|e| BuildError::Email(format!("to {to}: {e}")))?);
            }
            let msg = m
                .multipart(lettre::message::MultiPart::alternative_plain_html(
                    text, html,
                ))
                .map_err(|e| BuildError::Email(e.to_string()))?;
            Ok(Outgoing::Email(Box::new(msg)))
        }
    }
}

/// `{url}/api/v2/alerts`.
pub fn alertmanager_endpoint(url: &str) -> String {
    format!("{}/api/v2/alerts", url.trim_end_matches('/'))
}

/// Tracks what an Alertmanager channel has told, so firing alerts are posted again before
/// Alertmanager's end time for them passes, and resolved ones are told once.
#[derive(Debug, Default)]
pub struct AlertmanagerForwarder {
    firing: BTreeMap<String, std::sync::Arc<Alert>>,
}

impl AlertmanagerForwarder {
    /// Takes a notification's alerts into account.
    pub fn observe(&mut self, n: &Notification) {
        for a in &n.alerts {
            if a.status == AlertStatus::Resolved {
                self.firing.remove(&a.id);
            } else {
                self.firing.insert(a.id.clone(), a.clone());
            }
        }
    }

    /// The body re-posting every firing alert, or `None` when none fires.
    pub fn resend_body(
        &self,
        external_url: Option<&str>,
        now: DateTime<Utc>,
        resend_interval: Duration,
    ) -> Option<Value> {
        if self.firing.is_empty() {
            return None;
        }
        let valid_until =
            now + chrono::Duration::from_std(resend_interval * 4).unwrap_or(chrono::Duration::MAX);
        Some(json!(self
            .firing
            .values()
            .map(|a| alertmanager_alert(a, external_url, now, valid_until))
            .collect::<Vec<_>>()))
    }

    pub fn firing_count(&self) -> usize {
        self.firing.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dingtalk_signature_matches_the_published_algorithm() {
        // Computed independently: printf '1700000000000\nSECabc' | openssl dgst -sha256
        // -hmac SECabc -binary | base64, then URL-encoded.
        let sign = dingtalk_sign("SECabc", 1_700_000_000_000);
        let decoded = percent_encoding::percent_decode_str(&sign)
            .decode_utf8()
            .unwrap()
            .to_string();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&decoded)
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"SECabc").unwrap();
        mac.update(b"1700000000000\nSECabc");
        mac.verify_slice(&raw).unwrap();
        assert!(!sign.contains('+') && !sign.contains('/') && !sign.contains('='));
        let url = dingtalk_url(
            "https://oapi.dingtalk.com/robot/send?access_token=t",
            Some("SECabc"),
            1_700_000_000_000,
        );
        assert!(url.starts_with(
            "https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=1700000000000&sign="
        ));
    }

    #[test]
    fn label_names_are_made_valid_for_alertmanager() {
        assert_eq!(label_name("ka.user.name"), "ka_user_name");
        assert_eq!(label_name("1x"), "_1x");
        assert_eq!(label_name("ok_name"), "ok_name");
    }
}
