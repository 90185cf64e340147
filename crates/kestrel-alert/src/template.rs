//! Message templates (minijinja, Jinja syntax): the ones a configuration gives per receiver,
//! compiled when the configuration is checked, and good defaults per channel.
//!
//! Every template sees the notification: `receiver`, `status` (`firing`/`resolved`),
//! `reason` (`update`, `repeat`, `escalation N`), `group_key`, `group_labels`,
//! `common_labels`, `common_annotations`, `external_url`, and `alerts` / `firing` / `resolved`,
//! lists of alerts with `id`, `status`, `rule`, `priority`, `source`, `output`, `tags`,
//! `labels`, `annotations`, `count`, `first_seen`, `last_seen`, `status_by`, `url` (when
//! `external_url` is set) and `query` (SQL that fetches the alert's latest event).

use std::collections::HashSet;
use std::sync::Arc;

use minijinja::{AutoEscape, Environment};
use serde_json::{json, Value};

use crate::config::ReceiverConfig;
use crate::engine::Notification;

/// The header line: `[FIRING:2] Rule name`.
pub const DEFAULT_TITLE: &str =
    "[{{ status | upper }}{% if firing %}:{{ firing | length }}{% endif %}]\
{% if reason != 'update' %} ({{ reason }}){% endif %} \
{{ common_labels.rule or common_labels.alertname or alerts[0].rule }}";

/// Plain text, one paragraph per alert.
pub const DEFAULT_TEXT: &str =
    "{% for a in alerts %}{{ a.status | upper }} {{ a.priority }}: {{ a.rule }}
{{ a.output }}
{% for k, v in a.labels | items %}{{ k }}={{ v }} {% endfor %}
{% if a.status_by %}{{ a.status }} by {{ a.status_by }}
{% endif %}{% if a.url %}{{ a.url }}
{% endif %}{% if a.query %}events: {{ a.query }}
{% endif %}
{% endfor %}";

/// Slack mrkdwn.
pub const DEFAULT_SLACK_TEXT: &str =
    "{% for a in alerts %}*{{ a.status | upper }}* `{{ a.priority }}` *{{ a.rule }}*
{{ a.output }}{% if a.url %} <{{ a.url }}|details>{% endif %}
{% endfor %}";

/// DingTalk markdown.
pub const DEFAULT_MARKDOWN: &str = "### {{ title }}
{% for a in alerts %}
**{{ a.status | upper }}** {{ a.priority }} **{{ a.rule }}**

{{ a.output }}{% if a.url %} [details]({{ a.url }}){% endif %}
{% endfor %}";

/// Email HTML.
pub const DEFAULT_HTML: &str = "<h2>{{ title }}</h2>
{% for a in alerts %}<p><b>{{ a.status | upper }}</b> {{ a.priority }} <b>{{ a.rule }}</b><br>
{{ a.output }}{% if a.url %}<br><a href=\"{{ a.url }}\">details</a>{% endif %}</p>
{% endfor %}";

/// An SMS: short, one line per alert.
pub const DEFAULT_SMS_TEXT: &str = "{{ title }}{% for a in firing %}
{{ a.priority }}: {{ a.output | truncate(120) }}{% endfor %}";

/// The SMS gateway's request body.
pub const DEFAULT_SMS_BODY: &str = "{\"to\": {{ to | tojson }}, \"text\": {{ message | tojson }}}";

/// The compiled templates of a configuration.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
    custom: Arc<HashSet<String>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("custom", &self.custom)
            .finish()
    }
}

/// A template that failed to render.
#[derive(Debug, thiserror::Error)]
#[error("template {name}: {message}")]
pub struct TemplateError {
    pub name: String,
    pub message: String,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_keep_trailing_newline(false);
    // Jinja's `truncate` is not among minijinja's builtins; SMS and chat texts need it.
    env.add_filter("truncate", |s: String, max_chars: Option<usize>| {
        let max = max_chars.unwrap_or(255);
        if s.chars().count() <= max {
            s
        } else {
            let mut out: String = s.chars().take(max.saturating_sub(3)).collect();
            out.push_str("...");
            out
        }
    });
    env
}

const DEFAULTS: &[(&str, &str)] = &[
    ("title", DEFAULT_TITLE),
    ("text", DEFAULT_TEXT),
    ("slack.text", DEFAULT_SLACK_TEXT),
    ("markdown", DEFAULT_MARKDOWN),
    ("email.html", DEFAULT_HTML),
    ("sms.text", DEFAULT_SMS_TEXT),
    ("sms.body", DEFAULT_SMS_BODY),
];

impl Templates {
    /// Compiles the defaults and every receiver's templates; returns every problem at once.
    pub fn compile(receivers: &[ReceiverConfig]) -> Result<Templates, Vec<String>> {
        let mut env = environment();
        let mut problems = Vec::new();
        for (name, source) in DEFAULTS {
            env.add_template_owned(format!("default/{name}"), source.to_string())
                .expect("default templates compile");
        }
        let mut custom = HashSet::new();
        for r in receivers {
            let mut fields: Vec<(&str, &Option<String>)> = Vec::new();
            if let Some(c) = &r.webhook {
                fields.push(("webhook.body", &c.body));
            }
            if let Some(c) = &r.slack {
                fields.extend([("slack.title", &c.title), ("slack.text", &c.text)]);
            }
            if let Some(c) = &r.dingtalk {
                fields.extend([("dingtalk.title", &c.title), ("dingtalk.text", &c.text)]);
            }
            if let Some(c) = &r.pagerduty {
                fields.push(("pagerduty.summary", &c.summary));
            }
            if let Some(c) = &r.sms {
                fields.extend([("sms.text", &c.text), ("sms.body", &c.body)]);
            }
            if let Some(c) = &r.email {
                fields.extend([
                    ("email.subject", &c.subject),
                    ("email.text", &c.text),
                    ("email.html", &c.html),
                ]);
            }
            for (field, source) in fields {
                let Some(source) = source else { continue };
                let name = format!("{}/{field}", r.name);
                match env.add_template_owned(name.clone(), source.clone()) {
                    Ok(()) => {
                        custom.insert(name);
                    }
                    Err(e) => problems.push(format!("receiver {:?}: {field}: {e}", r.name)),
                }
            }
        }
        if problems.is_empty() {
            Ok(Templates {
                env: Arc::new(env),
                custom: Arc::new(custom),
            })
        } else {
            Err(problems)
        }
    }

    /// Renders the receiver's template for `field`, else the default `fallback`.
    pub fn render(
        &self,
        receiver: &str,
        field: &str,
        fallback: &str,
        ctx: &Value,
    ) -> Result<String, TemplateError> {
        let own = format!("{receiver}/{field}");
        let name = if self.custom.contains(&own) {
            own
        } else {
            format!("default/{fallback}")
        };
        let tmpl = self.env.get_template(&name).map_err(|e| TemplateError {
            name: name.clone(),
            message: e.to_string(),
        })?;
        tmpl.render(ctx)
            .map(|s| s.trim().to_string())
            .map_err(|e| TemplateError {
                name,
                message: e.to_string(),
            })
    }
}

/// The data a template sees for a notification.
pub fn context(n: &Notification, external_url: Option<&str>) -> Value {
    let alert = |a: &crate::model::Alert| {
        let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("fingerprint".into(), json!(a.id));
            obj.insert(
                "url".into(),
                json!(external_url.map(|u| format!(
                    "{}/v1/alerts/{}",
                    u.trim_end_matches('/'),
                    a.id
                ))),
            );
            obj.insert(
                "query".into(),
                json!(a.event.as_ref().map(|e| e.query.clone())),
            );
        }
        v
    };
    let alerts: Vec<Value> = n.alerts.iter().map(|a| alert(a)).collect();
    let firing: Vec<Value> = n.firing().map(alert).collect();
    let resolved: Vec<Value> = n.resolved().map(alert).collect();
    json!({
        "receiver": n.receiver,
        "status": n.status,
        "reason": n.reason.as_str(),
        "group_key": n.group_key,
        "group_labels": n.group_labels,
        "common_labels": n.common_labels(),
        "common_annotations": n.common_annotations(),
        "external_url": external_url,
        "alerts": alerts,
        "firing": firing,
        "resolved": resolved,
    })
}

/// `ctx` with `title` added (the DingTalk and email templates use it).
pub fn with(ctx: &Value, key: &str, value: Value) -> Value {
    let mut c = ctx.clone();
    if let Some(o) = c.as_object_mut() {
        o.insert(key.to_string(), value);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_template_renders() {
        let t = Templates::compile(&[]).unwrap();
        let ctx = json!({
            "receiver": "r", "status": "firing", "reason": "update", "group_key": "k",
            "group_labels": {}, "common_labels": {"rule": "Exec"}, "common_annotations": {},
            "external_url": null, "title": "T", "to": "+1", "message": "m",
            "alerts": [{"id": "1", "status": "firing", "rule": "Exec", "priority": "Warning",
                        "output": "o", "labels": {"a": "b"}, "url": null, "query": "SELECT 1"}],
            "firing": [{"id": "1", "status": "firing", "rule": "Exec", "priority": "Warning",
                        "output": "o", "labels": {"a": "b"}}],
            "resolved": [],
        });
        for (name, _) in DEFAULTS {
            t.render("r", name, name, &ctx)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(
            t.render("r", "title", "title", &ctx).unwrap(),
            "[FIRING:1] Exec"
        );
        assert_eq!(
            t.render("r", "sms.body", "sms.body", &ctx).unwrap(),
            r#"{"to": "+1", "text": "m"}"#
        );
    }
}
