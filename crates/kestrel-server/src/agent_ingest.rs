//! `POST /v1/ingest`: batches from node agents.
//!
//! ```text
//! body (zstd) ─► bounded decompress ─► IngestBatch (JSON) ─► check identity
//!    ─► one Arrow batch per table ─► store (all or nothing per table, de-duplicated by batch id)
//!    ─► audit lines ─► the audit pipeline (parse, redact, dedup by auditID, rules, alerts)
//! ```
//! The answer is 200 only when every record of the batch is durable, so the agent may then
//! advance its checkpoints. A batch sent again (the agent never saw the answer) is stored once:
//! its identity is derived from its content, and the store remembers identities it stored.

use std::collections::BTreeMap;
use std::io::Read;

use kestrel_alert::{EventRef, NewAlert};
use kestrel_event::{batch_id, IngestBatch, INGEST_FORMAT_VERSION};
use kestrel_rules::Event;
use kestrel_store::{StoreError, Table, TableRows};
use serde::Serialize;

use crate::ingest::{
    observe_sender, parse_config, record_alerts, rule_alert, store_batch, store_dead_letters,
};
use crate::metrics::source;
use crate::AppState;

/// Name of this input in metrics and dead letters.
const SOURCE: &str = "agent";

/// What storing an agent batch did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct AgentIngestSummary {
    /// The batch's identity.
    pub batch_id: String,
    /// Records stored now.
    pub accepted: usize,
    /// Records already stored by an earlier send of this batch.
    pub duplicates: usize,
    /// Records kept aside in the `dead_letter` table.
    pub dead_letters: usize,
    /// New or re-opened alerts.
    pub alerts: usize,
}

/// Why an agent batch was refused.
#[derive(Debug, thiserror::Error)]
pub enum AgentIngestError {
    /// The batch is malformed; sending it again will not help.
    #[error("{0}")]
    Invalid(String),
    /// The decompressed batch is larger than allowed.
    #[error("decompressed batch is larger than {0} bytes (ingest.max_body_bytes)")]
    TooLarge(usize),
    /// The store could not make the batch durable; the agent should retry.
    #[error("storage unavailable: {0}")]
    Store(#[from] StoreError),
}

/// Reads the body, decompressing zstd when `content_encoding` says so, never past `limit`
/// bytes: a small compressed body cannot expand into unbounded memory.
pub fn decode_body(
    body: &[u8],
    content_encoding: Option<&str>,
    limit: usize,
) -> Result<Vec<u8>, AgentIngestError> {
    match content_encoding.map(str::trim) {
        None | Some("") | Some("identity") => {
            if body.len() > limit {
                return Err(AgentIngestError::TooLarge(limit));
            }
            Ok(body.to_vec())
        }
        Some("zstd") => {
            let decoder = zstd::stream::read::Decoder::new(body)
                .map_err(|e| AgentIngestError::Invalid(format!("zstd: {e}")))?;
            let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
            decoder
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| AgentIngestError::Invalid(format!("zstd: {e}")))?;
            if out.len() > limit {
                return Err(AgentIngestError::TooLarge(limit));
            }
            Ok(out)
        }
        Some(other) => Err(AgentIngestError::Invalid(format!(
            "unsupported Content-Encoding {other:?}; send zstd or identity"
        ))),
    }
}

/// Parses and checks a decoded batch.
pub fn parse_batch(json: &[u8]) -> Result<IngestBatch, AgentIngestError> {
    let batch: IngestBatch = serde_json::from_slice(json)
        .map_err(|e| AgentIngestError::Invalid(format!("batch is not valid: {e}")))?;
    if batch.version != INGEST_FORMAT_VERSION {
        return Err(AgentIngestError::Invalid(format!(
            "batch format version {} is not supported (this server reads {INGEST_FORMAT_VERSION})",
            batch.version
        )));
    }
    let o = &batch.origin;
    if o.agent.is_empty() || o.input.is_empty() || o.stream.is_empty() {
        return Err(AgentIngestError::Invalid(
            "origin.agent, origin.input and origin.stream must not be empty".into(),
        ));
    }
    let expected = batch_id(&o.agent, &o.input, &o.stream, batch.start, batch.end);
    if batch.id != expected {
        return Err(AgentIngestError::Invalid(format!(
            "batch id {:?} does not match its origin and range (expected {expected})",
            batch.id
        )));
    }
    Ok(batch)
}

/// Stores a checked batch; returns once every record is durable.
pub async fn store_agent_batch(
    state: &AppState,
    mut batch: IngestBatch,
) -> Result<AgentIngestSummary, AgentIngestError> {
    let mut summary = AgentIngestSummary {
        batch_id: batch.id.clone(),
        ..Default::default()
    };
    let audit_lines = std::mem::take(&mut batch.audit);
    let dead_letters = std::mem::take(&mut batch.dead_letters);
    let (tables, batch) = tokio::task::spawn_blocking(move || {
        let tables = kestrel_store::ingest_batches(&batch);
        (tables, batch)
    })
    .await
    .expect("building arrow batches does not panic");
    let origin = batch.origin.clone();
    let sources: Vec<&'static str> = tables.iter().map(|(t, _)| t.name()).collect();
    let mut fresh_tables = Vec::new();
    for (table, rows) in tables {
        let outcome = state
            .store
            .append(TableRows::Batch {
                table,
                rows,
                batch_key: batch.id.clone(),
            })
            .await?;
        summary.accepted += outcome.written;
        summary.duplicates += outcome.duplicates;
        if outcome.written > 0 {
            fresh_tables.push(table);
        }
    }
    // Rules run on records stored now, never on a re-sent batch's.
    if !fresh_tables.is_empty() {
        let state2 = state.clone();
        summary.alerts +=
            tokio::task::spawn_blocking(move || detect_records(&state2, &batch, &fresh_tables))
                .await
                .expect("detection does not panic");
    }
    // Counted here, before the audit lines: the audit pipeline counts those under its own
    // source, `agent_audit_file`.
    state
        .metrics
        .ingest_events
        .get_or_create(&source(SOURCE))
        .inc_by(summary.accepted as u64);
    state
        .metrics
        .ingest_duplicates
        .get_or_create(&source(SOURCE))
        .inc_by(summary.duplicates as u64);
    summary.dead_letters = dead_letters.len();
    store_dead_letters(state, dead_letters, SOURCE).await?;
    let has_audit = !audit_lines.is_empty();
    if has_audit {
        let cfg = parse_config(state);
        let now = kestrel_event::time::now_nanos();
        let parsed = tokio::task::spawn_blocking(move || {
            let mut joined = Vec::with_capacity(audit_lines.iter().map(|l| l.len() + 1).sum());
            for line in &audit_lines {
                joined.extend_from_slice(line.as_bytes());
                joined.push(b'\n');
            }
            kestrel_parse::parse_json_lines(&joined, 1, &cfg, "agent_audit_file", now)
        })
        .await
        .expect("parser does not panic");
        let audit = store_batch(state, parsed, "agent_audit_file")
            .await
            .map_err(|e| match e {
                crate::ingest::IngestError::Store(s) => AgentIngestError::Store(s),
                other => AgentIngestError::Invalid(other.to_string()),
            })?;
        summary.accepted += audit.accepted;
        summary.duplicates += audit.duplicates;
        summary.dead_letters += audit.dead_letters;
        summary.alerts += audit.alerts;
    }
    // Every source of the batch is durable: each has been heard from.
    for source in sources.into_iter().chain(has_audit.then_some("audit")) {
        observe_sender(
            state,
            source,
            &origin.input,
            origin.node.as_deref(),
            Some(&origin.agent),
            origin.cluster.as_deref(),
        );
    }
    Ok(summary)
}

/// Runs the rules over the records of `batch` in the `fresh` tables and records the alerts;
/// returns how many alerts were new or re-opened.
fn detect_records(state: &AppState, batch: &IngestBatch, fresh: &[Table]) -> usize {
    let o = Some(&batch.origin);
    let mut events: Vec<Event<'_>> = Vec::new();
    for table in fresh {
        match table {
            Table::ContainerLog => events.extend(
                batch
                    .container_logs
                    .iter()
                    .map(|r| Event::ContainerLog(r, o)),
            ),
            Table::Ingress => events.extend(batch.ingress.iter().map(|r| Event::Ingress(r, o))),
            Table::Dns => events.extend(batch.dns.iter().map(|r| Event::Dns(r, o))),
            Table::Netflow => events.extend(batch.netflow.iter().map(|r| Event::Netflow(r, o))),
            Table::Journal => events.extend(batch.journal.iter().map(|r| Event::Journal(r, o))),
            Table::K8sEvent => {
                events.extend(batch.k8s_events.iter().map(|r| Event::K8sEvent(r, o)))
            }
            _ => {}
        }
    }
    if events.is_empty() {
        return 0;
    }
    let arrived = kestrel_event::time::now_nanos();
    let rules = state.rules.load();
    let mut alerts = Vec::new();
    state.detection.evaluate(
        &rules,
        events.into_iter().map(|e| {
            let t = e.time().unwrap_or(arrived);
            (e, t)
        }),
        |event, m| alerts.push(record_alert(state, batch, event, m, arrived)),
    );
    state.metrics.rule_matches.inc_by(alerts.len() as u64);
    record_alerts(state, alerts)
}

/// The alert of a rule match on an agent record: labelled with the cluster, node and pod it
/// came from, linked to the batch's rows.
fn record_alert(
    state: &AppState,
    batch: &IngestBatch,
    event: &Event<'_>,
    m: kestrel_rules::RuleMatch,
    arrived: i64,
) -> NewAlert {
    let mut labels = BTreeMap::new();
    let origin = &batch.origin;
    if let Some(node) = &origin.node {
        labels.insert("node".to_string(), node.clone());
    }
    if let Some(pod) = event.pod() {
        if let Some(ns) = &pod.namespace {
            labels.insert("namespace".to_string(), ns.clone());
        }
        if let Some(name) = &pod.pod {
            labels.insert("pod".to_string(), name.clone());
        }
    }
    let table = event.source().table();
    let event_ref = EventRef {
        table: table.into(),
        id: batch.id.clone(),
        query: format!(
            "SELECT * FROM {table} WHERE batch_id = '{}' ORDER BY time",
            batch.id.replace('\'', "''")
        ),
    };
    let cluster = origin.cluster.as_ref().or(state.config.cluster.as_ref());
    rule_alert(
        m,
        cluster,
        labels,
        Some(event_ref),
        event.time().unwrap_or(arrived),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_bodies_are_decoded_within_the_limit() {
        let json = br#"{"hello":"world"}"#.repeat(1000);
        let compressed = zstd::encode_all(&json[..], 3).unwrap();
        assert_eq!(
            decode_body(&compressed, Some("zstd"), json.len()).unwrap(),
            json
        );
        // One byte short of the decompressed size: refused, whatever the compressed size.
        assert!(matches!(
            decode_body(&compressed, Some("zstd"), json.len() - 1),
            Err(AgentIngestError::TooLarge(_))
        ));
        assert!(matches!(
            decode_body(b"not zstd", Some("zstd"), 100),
            Err(AgentIngestError::Invalid(_))
        ));
        assert!(matches!(
            decode_body(b"{}", Some("gzip"), 100),
            Err(AgentIngestError::Invalid(_))
        ));
        assert_eq!(decode_body(b"{}", None, 100).unwrap(), b"{}");
    }

    #[test]
    fn a_batch_must_carry_the_identity_of_its_content() {
        let mut batch = IngestBatch {
            version: INGEST_FORMAT_VERSION,
            origin: kestrel_event::BatchOrigin {
                agent: "node-1".into(),
                input: "pods".into(),
                stream: "f1".into(),
                ..Default::default()
            },
            start: 0,
            end: 10,
            ..Default::default()
        };
        batch.id = batch_id("node-1", "pods", "f1", 0, 10);
        let ok = serde_json::to_vec(&batch).unwrap();
        assert!(parse_batch(&ok).is_ok());
        batch.end = 11;
        let err = parse_batch(&serde_json::to_vec(&batch).unwrap()).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        batch.version = 99;
        let err = parse_batch(&serde_json::to_vec(&batch).unwrap()).unwrap_err();
        assert!(err.to_string().contains("version 99"), "{err}");
        assert!(parse_batch(b"{\"version\":1").is_err());
    }
}
