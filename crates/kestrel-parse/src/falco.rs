//! Falco's JSON output, as its `http_output` posts it (`json_output: true`): one object per
//! request, `{uuid, output, priority, rule, time, output_fields, source, tags, hostname}`.
//! A body of several objects (a JSON array, or objects one per line as in Falco's file output)
//! is read too. Each item that is not a Falco event becomes a dead letter; the good ones around
//! it are kept.

use kestrel_event::{DeadLetter, FalcoEvent};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::redact::redact_lexical;
use crate::timestamp::parse_rfc3339_nanos;

/// Falco events read from a body, and what could not be read.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ParsedFalco {
    pub events: Vec<FalcoEvent>,
    pub dead_letters: Vec<DeadLetter>,
}

/// Longest payload kept in a dead letter.
const MAX_DEAD_LETTER_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
struct Posted {
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    output_fields: Option<Map<String, Value>>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    hostname: Option<String>,
}

/// Reads a body posted by Falco. `now` (UTC nanoseconds) stamps dead letters and events that
/// carry no readable time; `source_name` names the input in dead letters.
pub fn parse_falco_body(body: &[u8], source_name: &str, now: i64) -> ParsedFalco {
    let mut out = ParsedFalco::default();
    let dead = |kind: &str, reason: String, location: Option<String>, payload: &[u8]| {
        let cut = &payload[..payload.len().min(MAX_DEAD_LETTER_BYTES)];
        DeadLetter {
            time: now,
            source: source_name.to_string(),
            kind: kind.to_string(),
            reason,
            location,
            size_bytes: payload.len() as i64,
            payload: redact_lexical(&String::from_utf8_lossy(cut)),
        }
    };
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        out.dead_letters
            .push(dead("empty", "empty body".into(), None, body));
        return out;
    }
    let items: Vec<(usize, Value)> = if trimmed.first() == Some(&b'[') {
        match serde_json::from_slice::<Vec<Value>>(trimmed) {
            Ok(items) => items.into_iter().enumerate().collect(),
            Err(e) => {
                out.dead_letters.push(dead(
                    "invalid_json",
                    format!("not a JSON array of Falco events: {e}"),
                    None,
                    body,
                ));
                return out;
            }
        }
    } else {
        let mut items = Vec::new();
        let mut stream = serde_json::Deserializer::from_slice(trimmed).into_iter::<Value>();
        loop {
            let start = stream.byte_offset();
            match stream.next() {
                None => break,
                Some(Ok(v)) => items.push((items.len(), v)),
                Some(Err(e)) => {
                    // A stream of JSON cannot be resumed after an error: the rest is one dead
                    // letter. Falco writes plain text unless `json_output: true`.
                    let hint = if items.is_empty() {
                        " (is `json_output: true` set in falco.yaml?)"
                    } else {
                        ""
                    };
                    out.dead_letters.push(dead(
                        "invalid_json",
                        format!("not JSON{hint}: {e}"),
                        Some(format!("item {}", items.len())),
                        &trimmed[start..],
                    ));
                    break;
                }
            }
        }
        items
    };
    for (i, item) in items {
        match event(item, now) {
            Ok(e) => out.events.push(e),
            Err((reason, item)) => {
                let text = item.to_string();
                out.dead_letters.push(dead(
                    "schema",
                    reason,
                    Some(format!("item {i}")),
                    text.as_bytes(),
                ));
            }
        }
    }
    out
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

fn event(item: Value, now: i64) -> Result<FalcoEvent, (String, Value)> {
    if !item.is_object() {
        return Err(("a Falco event is a JSON object".into(), item));
    }
    let posted: Posted = match Posted::deserialize(&item) {
        Ok(p) => p,
        Err(e) => return Err((format!("not a Falco event: {e}"), item)),
    };
    let Some(rule) = non_empty(posted.rule) else {
        return Err(("not a Falco event: no `rule`".into(), item));
    };
    let time = posted
        .time
        .as_deref()
        .and_then(|t| parse_rfc3339_nanos(t.as_bytes()).ok())
        .unwrap_or(now);
    let fields = posted.output_fields.unwrap_or_default();
    let field = |name: &str| match fields.get(name) {
        Some(Value::String(s)) if !s.is_empty() && s != "<NA>" => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let image =
        field("container.image.repository").map(|repo| match field("container.image.tag") {
            Some(tag) => format!("{repo}:{tag}"),
            None => repo,
        });
    Ok(FalcoEvent {
        time,
        cluster: None,
        uuid: non_empty(posted.uuid),
        rule,
        priority: non_empty(posted.priority),
        source: non_empty(posted.source),
        hostname: non_empty(posted.hostname),
        output: non_empty(posted.output),
        tags: posted.tags.unwrap_or_default(),
        namespace: field("k8s.ns.name").or_else(|| field("ka.target.namespace")),
        pod: field("k8s.pod.name"),
        container_id: field("container.id").filter(|id| id != "host"),
        container: field("container.name").filter(|n| n != "host"),
        image,
        output_fields: (!fields.is_empty()).then(|| Value::Object(fields.clone()).to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHELL: &str = r#"{"uuid":"4c1a6c52-2d4e-4b8f-9d0a-0f8f3c1b2a11","output":"09:00:01.123456789: Warning Shell spawned in a container (user=root container=web-0 shell=sh)","priority":"Warning","rule":"Terminal shell in container","time":"2026-11-20T09:00:01.123456789Z","output_fields":{"container.id":"a1b2c3d4e5f6","container.name":"web","container.image.repository":"ghcr.io/shop/web","container.image.tag":"1.4.2","k8s.ns.name":"shop","k8s.pod.name":"web-0","proc.cmdline":"sh","user.name":"root","evt.time":1795165201123456789},"source":"syscall","tags":["container","shell","mitre_execution"],"hostname":"node-1"}"#;

    #[test]
    fn falco_http_output_becomes_an_event_with_promoted_kubernetes_columns() {
        let parsed = parse_falco_body(SHELL.as_bytes(), "falco", 7);
        assert!(parsed.dead_letters.is_empty(), "{:?}", parsed.dead_letters);
        let e = &parsed.events[0];
        assert_eq!(e.rule, "Terminal shell in container");
        assert_eq!(e.time, 1_795_165_201_123_456_789);
        assert_eq!(e.priority.as_deref(), Some("Warning"));
        assert_eq!(e.source.as_deref(), Some("syscall"));
        assert_eq!(e.hostname.as_deref(), Some("node-1"));
        assert_eq!(e.tags, ["container", "shell", "mitre_execution"]);
        assert_eq!(e.namespace.as_deref(), Some("shop"));
        assert_eq!(e.pod.as_deref(), Some("web-0"));
        assert_eq!(e.container_id.as_deref(), Some("a1b2c3d4e5f6"));
        assert_eq!(e.container.as_deref(), Some("web"));
        assert_eq!(e.image.as_deref(), Some("ghcr.io/shop/web:1.4.2"));
        assert_eq!(
            e.uuid.as_deref(),
            Some("4c1a6c52-2d4e-4b8f-9d0a-0f8f3c1b2a11")
        );
        let fields: Value = serde_json::from_str(e.output_fields.as_deref().unwrap()).unwrap();
        assert_eq!(fields["proc.cmdline"], "sh");
    }

    #[test]
    fn several_events_per_body_and_bad_items_become_dead_letters() {
        let host = r#"{"rule":"Read sensitive file untrusted","priority":"Warning","time":"2026-11-20T09:00:02Z","source":"syscall","hostname":"node-2","output_fields":{"container.id":"host","k8s.ns.name":"<NA>","fd.name":"/etc/shadow"}}"#;
        let lines = format!("{SHELL}\n{host}\n");
        let parsed = parse_falco_body(lines.as_bytes(), "falco", 7);
        assert_eq!(parsed.events.len(), 2);
        let h = &parsed.events[1];
        assert_eq!(
            (h.container_id.as_ref(), h.namespace.as_ref()),
            (None, None)
        );
        assert!(h.tags.is_empty() && h.uuid.is_none());

        let array = format!(r#"[{SHELL}, {{"output":"no rule"}}, 3, {host}]"#);
        let parsed = parse_falco_body(array.as_bytes(), "falco", 7);
        assert_eq!(parsed.events.len(), 2);
        assert_eq!(parsed.dead_letters.len(), 2);
        assert_eq!(parsed.dead_letters[0].location.as_deref(), Some("item 1"));
        assert!(parsed.dead_letters[0].reason.contains("no `rule`"));

        // A truncated second object: the first is kept, the rest is one dead letter.
        let cut = format!("{SHELL}\n{}", &host[..40]);
        let parsed = parse_falco_body(cut.as_bytes(), "falco", 7);
        assert_eq!(parsed.events.len(), 1);
        assert_eq!(parsed.dead_letters.len(), 1);
        assert_eq!(parsed.dead_letters[0].kind, "invalid_json");
    }

    #[test]
    fn plain_text_output_is_refused_with_a_hint_and_a_missing_time_takes_now() {
        let parsed = parse_falco_body(
            b"09:00:01.123: Warning Shell spawned in a container (user=root)",
            "falco",
            7,
        );
        assert!(parsed.events.is_empty());
        assert!(parsed.dead_letters[0].reason.contains("json_output: true"));
        assert_eq!(parse_falco_body(b"  ", "falco", 7).dead_letters.len(), 1);
        let parsed = parse_falco_body(br#"{"rule":"x","time":"yesterday"}"#, "falco", 7);
        assert_eq!(parsed.events[0].time, 7);
    }
}
