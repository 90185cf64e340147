//! Alerts posted to Kestrel in Alertmanager's format (`POST /api/v2/alerts`, also the old
//! `/api/v1/alerts`), as Prometheus, vmalert and Falcosidekick send them: a JSON array of
//! `{labels, annotations, startsAt, endsAt, generatorURL}`, only `labels` required. Each bad
//! item is reported on its own; the good ones around it are kept.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::model::NewAlert;

/// One posted alert, ready to record.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundAlert {
    pub alert: NewAlert,
    /// The sender's end time: in the past means resolved.
    pub ends_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct PostedAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default, rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(default, rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

fn time(field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    match value {
        None | Some("") | Some("0001-01-01T00:00:00Z") => Ok(None),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| format!("{field} {t:?} is not an RFC 3339 time: {e}")),
    }
}

/// Parses a body; returns the alerts and one message per item that was refused. Fails only
/// when the body is not a JSON array.
pub fn parse_alertmanager_alerts(
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(Vec<InboundAlert>, Vec<String>), String> {
    let items: Vec<Value> = serde_json::from_slice(body)
        .map_err(|e| format!("expected a JSON array of alerts: {e}"))?;
    let mut alerts = Vec::new();
    let mut problems = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match parse_one(item, now) {
            Ok(a) => alerts.push(a),
            Err(e) => problems.push(format!("alert {i}: {e}")),
        }
    }
    Ok((alerts, problems))
}

fn parse_one(item: Value, now: DateTime<Utc>) -> Result<InboundAlert, String> {
    let posted: PostedAlert = serde_json::from_value(item).map_err(|e| e.to_string())?;
    let labels: BTreeMap<String, String> = posted
        .labels
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if labels.is_empty() {
        return Err("labels are empty".into());
    }
    let starts_at = time("startsAt", posted.starts_at.as_deref())?;
    let ends_at = time("endsAt", posted.ends_at.as_deref())?;
    let label = |names: &[&str]| names.iter().find_map(|n| labels.get(*n).cloned());
    let rule = label(&["alertname", "rule"]).unwrap_or_else(|| "unnamed alert".into());
    let annotations = posted.annotations;
    let output = ["description", "info", "summary", "message"]
        .iter()
        .find_map(|k| annotations.get(*k).cloned())
        .unwrap_or_else(|| rule.clone());
    let tags = labels
        .get("tags")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let time = starts_at.unwrap_or(now);
    Ok(InboundAlert {
        alert: NewAlert {
            priority: label(&["priority", "severity"]).unwrap_or_default(),
            source: label(&["source"]).unwrap_or_else(|| "alertmanager".into()),
            rule,
            output,
            tags,
            labels,
            annotations,
            event: None,
            time: time.timestamp_nanos_opt().unwrap_or(i64::MAX),
            generator_url: posted.generator_url.filter(|u| !u.is_empty()),
        },
        ends_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_and_falcosidekick_payloads_are_read_and_bad_items_reported() {
        let now = Utc::now();
        let body = br#"[
          {"labels": {"alertname": "KubePodCrashLooping", "severity": "warning", "namespace": "shop"},
           "annotations": {"description": "pod shop/web-0 is crash looping"},
           "startsAt": "2026-11-20T09:00:01.123Z", "endsAt": "2026-11-20T09:10:00Z",
           "generatorURL": "http://prometheus/graph?g0.expr=x"},
          {"labels": {"rule": "Terminal shell in container", "priority": "Warning", "source": "syscall",
                      "tags": "container,shell", "hostname": "node-1"},
           "annotations": {"info": "A shell was spawned", "summary": "Terminal shell in container"}},
          {"annotations": {"summary": "no labels"}},
          {"labels": {}},
          {"labels": {"a": "b"}, "startsAt": "yesterday"}
        ]"#;
        let (alerts, problems) = parse_alertmanager_alerts(body, now).unwrap();
        assert_eq!(alerts.len(), 2);
        assert_eq!(problems.len(), 3, "{problems:?}");
        let prom = &alerts[0];
        assert_eq!(prom.alert.rule, "KubePodCrashLooping");
        assert_eq!(prom.alert.priority, "warning");
        assert_eq!(prom.alert.source, "alertmanager");
        assert_eq!(prom.alert.output, "pod shop/web-0 is crash looping");
        assert!(prom.ends_at.is_some());
        let falco = &alerts[1];
        assert_eq!(falco.alert.rule, "Terminal shell in container");
        assert_eq!(falco.alert.priority, "Warning");
        assert_eq!(falco.alert.source, "syscall");
        assert_eq!(falco.alert.output, "A shell was spawned");
        assert_eq!(falco.alert.tags, ["container", "shell"]);
        assert_eq!(falco.ends_at, None);
        assert!(parse_alertmanager_alerts(b"{}", now).is_err());
    }
}
