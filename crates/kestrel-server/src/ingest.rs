//! The audit ingest pipeline shared by the webhook endpoint and file replay.
//!
//! ```text
//! body ─► parse + redact (kestrel-parse) ─► dead letters ─► store (WAL, fsync)
//!                                   events ─► records ─► store (dedup) ─► rules ─► alerts ─► notify
//! ```
//! The caller answers 200 only after `ingest_audit` returns `Ok`: by then every event is durable.

use std::collections::BTreeMap;

use kestrel_alert::{EventRef, NewAlert};
use kestrel_event::{AuditEvent, AuditRecord, DeadLetter};
use kestrel_parse::{AuditParseConfig, BodyError, ParsedBatch};
use kestrel_rules::RuleMatch;
use kestrel_store::{StoreError, TableRows};
use serde::Serialize;
use tracing::warn;

use crate::metrics::source;
use crate::AppState;

/// What an ingest request did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct IngestSummary {
    /// Events stored now.
    pub accepted: usize,
    /// Events already stored before (re-sent), not stored again.
    pub duplicates: usize,
    /// Items kept aside in the `dead_letter` table.
    pub dead_letters: usize,
    /// New or re-opened alerts.
    pub alerts: usize,
}

/// Why an ingest request failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Nothing in the body could be read; it was dead-lettered.
    #[error("{0}")]
    BadBody(BodyError),
    /// The store could not make the data durable; the sender should retry.
    #[error("storage unavailable: {0}")]
    Store(#[from] StoreError),
}

/// Tells alerting's `quiet_sources` checks that data came: `source` is the table, `input` the
/// way in (`webhook`, `falco`, an agent's input), then who sent it. Call it once the data is
/// durable.
pub(crate) fn observe_sender(
    state: &AppState,
    source: &str,
    input: &str,
    node: Option<&str>,
    agent: Option<&str>,
    cluster: Option<&str>,
) {
    let mut labels = BTreeMap::new();
    labels.insert("source".to_string(), source.to_string());
    labels.insert("input".to_string(), input.to_string());
    let cluster = cluster.or(state.config.cluster.as_deref());
    for (name, value) in [("node", node), ("agent", agent), ("cluster", cluster)] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            labels.insert(name.to_string(), v.to_string());
        }
    }
    state.alerting.observe_data(&labels);
}

pub(crate) fn parse_config(state: &AppState) -> AuditParseConfig {
    let mut cfg = AuditParseConfig {
        max_event_bytes: state.config.ingest.max_event_bytes,
        ..AuditParseConfig::default()
    };
    cfg.redact.enabled = state.config.ingest.redact_secrets;
    cfg
}

/// Parses an `EventList` body and stores it; `source_name` names the input in dead letters and
/// metrics.
pub async fn ingest_event_list(
    state: &AppState,
    body: axum::body::Bytes,
    source_name: &'static str,
) -> Result<IngestSummary, IngestError> {
    let cfg = parse_config(state);
    let now = kestrel_event::time::now_nanos();
    let parsed = tokio::task::spawn_blocking(move || {
        kestrel_parse::parse_event_list(&body, &cfg, source_name, now).map_err(|e| {
            let dl = kestrel_parse::dead_letter_for_body(&body, &e, &cfg, source_name, now);
            Box::new((e, dl))
        })
    })
    .await
    .expect("parser does not panic");
    match parsed {
        Ok(batch) => store_batch(state, batch, source_name).await,
        Err(rejected) => {
            let (err, dead_letter) = *rejected;
            state
                .metrics
                .ingest_rejected_bodies
                .get_or_create(&source(source_name))
                .inc();
            store_dead_letters(state, vec![dead_letter], source_name).await?;
            Err(IngestError::BadBody(err))
        }
    }
}

pub(crate) async fn store_dead_letters(
    state: &AppState,
    dead_letters: Vec<DeadLetter>,
    source_name: &'static str,
) -> Result<(), StoreError> {
    if dead_letters.is_empty() {
        return Ok(());
    }
    let n = dead_letters.len() as u64;
    for d in &dead_letters {
        warn!(source = source_name, kind = %d.kind, location = ?d.location, reason = %d.reason, "input kept aside as a dead letter");
    }
    state
        .store
        .append(TableRows::DeadLetter(dead_letters))
        .await?;
    state
        .metrics
        .ingest_dead_letters
        .get_or_create(&source(source_name))
        .inc_by(n);
    Ok(())
}

/// Stores parsed events and dead letters, then runs the rules on the events that were new.
pub async fn store_batch(
    state: &AppState,
    batch: ParsedBatch,
    source_name: &'static str,
) -> Result<IngestSummary, IngestError> {
    let ParsedBatch {
        events,
        dead_letters,
    } = batch;
    let mut summary = IngestSummary {
        dead_letters: dead_letters.len(),
        ..Default::default()
    };
    store_dead_letters(state, dead_letters, source_name).await?;
    if events.is_empty() {
        return Ok(summary);
    }
    let cluster = state.config.cluster.as_deref();
    let records: Vec<AuditRecord> = events
        .iter()
        .map(|e| AuditRecord::from_event(e, cluster))
        .collect();
    let outcome = state.store.append(TableRows::Audit(records)).await?;
    summary.accepted = outcome.written;
    summary.duplicates = outcome.duplicates;
    state
        .metrics
        .ingest_events
        .get_or_create(&source(source_name))
        .inc_by(outcome.written as u64);
    state
        .metrics
        .ingest_duplicates
        .get_or_create(&source(source_name))
        .inc_by(outcome.duplicates as u64);

    let fresh: Vec<AuditEvent> = events
        .into_iter()
        .zip(outcome.accepted)
        .filter_map(|(e, ok)| ok.then_some(e))
        .collect();
    let state2 = state.clone();
    summary.alerts = tokio::task::spawn_blocking(move || detect(&state2, &fresh))
        .await
        .expect("detection does not panic");
    Ok(summary)
}

/// Runs the rules over events and turns matches into alerts; returns how many alerts were new.
///
/// Stateful rules count with each event's own time (events without one use the time they
/// arrived), so a replayed file counts like the live stream it came from.
fn detect(state: &AppState, events: &[AuditEvent]) -> usize {
    let rules = state.rules.load();
    let arrived = kestrel_event::time::now_nanos();
    let mut matches = Vec::new();
    state.detection.evaluate_audit(
        &rules,
        events.iter().map(|e| {
            let t = e
                .event_time()
                .map(kestrel_event::time::to_nanos)
                .unwrap_or(arrived);
            (e, t)
        }),
        |event, m| matches.push((event, m)),
    );
    // Alerts are recorded outside the detector's lock.
    state.metrics.rule_matches.inc_by(matches.len() as u64);
    let alerts: Vec<NewAlert> = matches
        .into_iter()
        .map(|(event, m)| new_alert(state, event, m))
        .collect();
    record_alerts(state, alerts)
}

/// Records alerts (new, or a repeat of a known one); returns how many were new or re-opened.
/// A failure is logged per alert and does not stop the others.
pub(crate) fn record_alerts(state: &AppState, alerts: impl IntoIterator<Item = NewAlert>) -> usize {
    let mut new_alerts = 0;
    for alert in alerts {
        match state.alerting.record(&alert) {
            Ok((_, true)) => {
                new_alerts += 1;
                state.metrics.alerts_notified.inc();
            }
            Ok((_, false)) => {}
            Err(e) => {
                warn!(error = %e, rule = %alert.rule, source = %alert.source, "cannot record alert")
            }
        }
    }
    new_alerts
}

/// The alert of a rule match, whatever the event's source: labelled with the rule, priority,
/// source, sorted tags, `cluster` and the caller's `labels` (the actor or pod), annotated with
/// the output fields and, for a threshold, sequence or suppression, `match_count`.
pub(crate) fn rule_alert(
    m: RuleMatch,
    cluster: Option<&String>,
    mut labels: BTreeMap<String, String>,
    event: Option<EventRef>,
    time: i64,
) -> NewAlert {
    labels.insert("rule".to_string(), m.rule.clone());
    labels.insert("priority".to_string(), m.priority.to_string());
    labels.insert("source".to_string(), m.source.clone());
    if !m.tags.is_empty() {
        let mut tags = m.tags.clone();
        tags.sort();
        labels.insert("tags".to_string(), tags.join(","));
    }
    if let Some(cluster) = cluster {
        labels.insert("cluster".to_string(), cluster.clone());
    }
    let mut annotations = m.output_fields;
    if m.count > 1 {
        // A threshold, sequence or suppression stands for several matches.
        annotations.insert("match_count".to_string(), m.count.to_string());
    }
    NewAlert {
        rule: m.rule,
        priority: m.priority.to_string(),
        source: m.source,
        output: m.output,
        tags: m.tags,
        labels,
        annotations,
        event,
        time,
        generator_url: None,
    }
}

fn new_alert(state: &AppState, event: &AuditEvent, m: RuleMatch) -> NewAlert {
    let mut labels = BTreeMap::new();
    if !event.user.username.is_empty() {
        labels.insert("user_name".to_string(), event.user.username.clone());
    }
    if let Some(ns) = event.object_ref_field(|o| o.namespace.as_ref()) {
        labels.insert("namespace".to_string(), ns.to_string());
    }
    let event_ref = (!event.audit_id.is_empty()).then(|| EventRef {
        table: "audit".into(),
        id: event.audit_id.clone(),
        query: format!(
            "SELECT * FROM audit WHERE audit_id = '{}' ORDER BY time",
            event.audit_id.replace('\'', "''")
        ),
    });
    let time = event
        .event_time()
        .map(kestrel_event::time::to_nanos)
        .unwrap_or_else(kestrel_event::time::now_nanos);
    rule_alert(m, state.config.cluster.as_ref(), labels, event_ref, time)
}
