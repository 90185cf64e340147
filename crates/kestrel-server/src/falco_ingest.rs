//! Falco's `http_output`: events posted as JSON are stored in the `falco` table and each new
//! one becomes an alert, so routing, grouping, silences and inhibition apply to them.
//!
//! ```text
//! body ─► parse_falco_body ─► dead letters ─► store
//!                   events ─► store (WAL, fsync; de-duplicated by uuid) ─► new ones ─► alerts
//! ```
//! The answer is 200 only once every event is durable. Falco cannot send an `Authorization`
//! header, so besides a bearer token the endpoint takes a client certificate (`tls.
//! client_ca_file`) or a token in the URL (`/v1/ingest/falco/<token>`); the API never logs
//! that path.

use std::collections::BTreeMap;

use kestrel_alert::{EventRef, NewAlert};
use kestrel_event::FalcoEvent;
use kestrel_store::{StoreError, TableRows};
use serde::Serialize;

use crate::ingest::store_dead_letters;
use crate::metrics::source;
use crate::AppState;

/// Name of this input in metrics and dead letters.
pub const SOURCE: &str = "falco";

/// What a Falco post did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct FalcoIngestSummary {
    /// Events stored now.
    pub accepted: usize,
    /// Events with a `uuid` stored before (re-sent), not stored again.
    pub duplicates: usize,
    /// Items kept aside in the `dead_letter` table.
    pub dead_letters: usize,
    /// New or re-opened alerts.
    pub alerts: usize,
}

/// Why a Falco post failed.
#[derive(Debug, thiserror::Error)]
pub enum FalcoIngestError {
    /// Nothing in the body was a Falco event; it was kept as a dead letter.
    #[error("{0}")]
    Invalid(String),
    /// The store could not make the events durable; the sender should retry.
    #[error("storage unavailable: {0}")]
    Store(#[from] StoreError),
}

/// Parses a body posted by Falco, stores it, and records an alert per new event.
pub async fn ingest_falco(
    state: &AppState,
    body: axum::body::Bytes,
) -> Result<FalcoIngestSummary, FalcoIngestError> {
    let now = kestrel_event::time::now_nanos();
    let parsed =
        tokio::task::spawn_blocking(move || kestrel_parse::parse_falco_body(&body, SOURCE, now))
            .await
            .expect("the parser does not panic");
    let mut summary = FalcoIngestSummary {
        dead_letters: parsed.dead_letters.len(),
        ..Default::default()
    };
    let refused = (parsed.events.is_empty() && !parsed.dead_letters.is_empty())
        .then(|| parsed.dead_letters[0].reason.clone());
    store_dead_letters(state, parsed.dead_letters, SOURCE).await?;
    if let Some(reason) = refused {
        return Err(FalcoIngestError::Invalid(reason));
    }
    let mut events = parsed.events;
    for e in &mut events {
        e.cluster.clone_from(&state.config.cluster);
    }
    let outcome = state.store.append(TableRows::Falco(events.clone())).await?;
    summary.accepted = outcome.written;
    summary.duplicates = outcome.duplicates;
    state
        .metrics
        .ingest_events
        .get_or_create(&source(SOURCE))
        .inc_by(outcome.written as u64);
    state
        .metrics
        .ingest_duplicates
        .get_or_create(&source(SOURCE))
        .inc_by(outcome.duplicates as u64);
    let hosts: std::collections::BTreeSet<Option<String>> =
        events.iter().map(|e| e.hostname.clone()).collect();
    for host in hosts {
        crate::ingest::observe_sender(state, SOURCE, SOURCE, host.as_deref(), None, None);
    }
    let fresh: Vec<FalcoEvent> = events
        .into_iter()
        .zip(outcome.accepted)
        .filter_map(|(e, ok)| ok.then_some(e))
        .collect();
    let state2 = state.clone();
    summary.alerts = tokio::task::spawn_blocking(move || {
        crate::ingest::record_alerts(&state2, fresh.iter().map(falco_alert))
    })
    .await
    .expect("recording alerts does not panic");
    Ok(summary)
}

fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The alert a Falco event becomes. Its identity (labels) is the rule, priority, source, host,
/// namespace, pod and tags: the same rule on the same pod again is a duplicate, counted and not
/// re-sent. The output line and the output fields are annotations.
pub fn falco_alert(e: &FalcoEvent) -> NewAlert {
    let mut labels = BTreeMap::new();
    labels.insert("rule".to_string(), e.rule.clone());
    let mut label = |name: &str, value: &Option<String>| {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            labels.insert(name.to_string(), v.clone());
        }
    };
    label("priority", &e.priority);
    label("source", &e.source);
    label("hostname", &e.hostname);
    label("namespace", &e.namespace);
    label("pod", &e.pod);
    label("cluster", &e.cluster);
    if !e.tags.is_empty() {
        let mut tags = e.tags.clone();
        tags.sort();
        labels.insert("tags".to_string(), tags.join(","));
    }
    let mut annotations = BTreeMap::new();
    if let Some(fields) = e
        .output_fields
        .as_deref()
        .and_then(|f| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(f).ok())
    {
        for (k, v) in fields {
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            annotations.insert(k, text);
        }
    }
    let output = e.output.clone().unwrap_or_else(|| e.rule.clone());
    annotations.insert("summary".to_string(), output.clone());
    let event = match &e.uuid {
        Some(uuid) => EventRef {
            table: "falco".into(),
            id: uuid.clone(),
            query: format!("SELECT * FROM falco WHERE uuid = {}", sql_text(uuid)),
        },
        None => {
            let time = kestrel_event::time::to_rfc3339(e.time);
            EventRef {
                table: "falco".into(),
                id: format!("{time} {}", e.rule),
                query: format!(
                    "SELECT * FROM falco WHERE time = {} AND rule = {}",
                    sql_text(&time),
                    sql_text(&e.rule)
                ),
            }
        }
    };
    NewAlert {
        rule: e.rule.clone(),
        priority: e.priority.clone().unwrap_or_default(),
        source: e.source.clone().unwrap_or_else(|| SOURCE.into()),
        output,
        tags: e.tags.clone(),
        labels,
        annotations,
        event: Some(event),
        time: e.time,
        generator_url: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_falco_event_becomes_an_alert_labelled_by_its_identity() {
        let e = FalcoEvent {
            time: 1_795_165_201_123_456_789,
            uuid: Some("u'1".into()),
            rule: "Terminal shell in container".into(),
            priority: Some("Warning".into()),
            source: Some("syscall".into()),
            hostname: Some("node-1".into()),
            output: Some("Shell spawned (user=root)".into()),
            tags: vec!["shell".into(), "container".into()],
            namespace: Some("shop".into()),
            pod: Some("web-0".into()),
            output_fields: Some(r#"{"proc.cmdline":"sh","evt.num":42,"fd.name":null}"#.into()),
            ..Default::default()
        };
        let a = falco_alert(&e);
        let labels: Vec<(&str, &str)> = a
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("hostname", "node-1"),
                ("namespace", "shop"),
                ("pod", "web-0"),
                ("priority", "Warning"),
                ("rule", "Terminal shell in container"),
                ("source", "syscall"),
                ("tags", "container,shell"),
            ]
        );
        assert_eq!(a.annotations["summary"], "Shell spawned (user=root)");
        assert_eq!(a.annotations["evt.num"], "42");
        assert!(!a.annotations.contains_key("fd.name"));
        let event = a.event.unwrap();
        assert_eq!(event.query, "SELECT * FROM falco WHERE uuid = 'u''1'");
    }
}
