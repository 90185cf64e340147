//! Testing rules against stored events: `POST /v1/rules/test` loads the given rule YAML beside
//! the rules in force (so it may use their macros and lists), reads recent `audit` rows back as
//! audit events and reports what the given rules would have matched. Nothing is recorded: no
//! alert, no notification.

use std::collections::BTreeMap;

use kestrel_event::{AuditEvent, ObjectReference, ResponseStatus, UserInfo};
use kestrel_rules::{Detector, RuleSet};
use kestrel_store::QueryOptions;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::AppState;

/// The file name the tested YAML is loaded under (errors point into it).
pub const TEST_FILE: &str = "test.yaml";

/// Events read at most.
pub const MAX_EVENTS: usize = 100_000;

/// Matches answered at most.
const MAX_MATCHES: usize = 500;

/// What to test.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTestRequest {
    /// Falco-format YAML: rules, macros, lists.
    pub rules: String,
    /// RFC 3339; events at or after it. Default: one hour before `until`.
    #[serde(default)]
    pub since: Option<String>,
    /// RFC 3339; events before it. Default: now.
    #[serde(default)]
    pub until: Option<String>,
    /// Newest events read at most (default 10 000, at most 100 000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One would-be alert.
#[derive(Debug, Serialize)]
pub struct TestMatch {
    pub time: String,
    pub rule: String,
    pub priority: String,
    pub output: String,
    pub audit_id: String,
}

/// The outcome of a test.
#[derive(Debug, Serialize)]
pub struct RuleTestResult {
    /// Rules defined by the tested YAML and active.
    pub rules: Vec<String>,
    /// Problems in the YAML, with line and column.
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// Events read and evaluated.
    pub events: usize,
    /// True when more events were in the window than `limit`: the oldest were not read.
    pub events_truncated: bool,
    /// Matches per rule.
    pub counts: BTreeMap<String, usize>,
    /// Matches, newest first, at most 500.
    pub matches: Vec<TestMatch>,
}

/// Why a test could not run.
#[derive(Debug, thiserror::Error)]
pub enum RuleTestError {
    #[error("{0}")]
    BadRequest(String),
    #[error("reading events: {0}")]
    Query(#[from] kestrel_store::QueryError),
}

fn parse_time(what: &str, s: &str) -> Result<chrono::DateTime<chrono::Utc>, RuleTestError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| {
            RuleTestError::BadRequest(format!(
                "{what} {s:?} is not an RFC 3339 time like 2024-05-01T12:00:00Z"
            ))
        })
}

/// Runs a rule test.
pub async fn run(state: &AppState, req: RuleTestRequest) -> Result<RuleTestResult, RuleTestError> {
    let until = match &req.until {
        Some(s) => parse_time("until", s)?,
        None => chrono::Utc::now(),
    };
    let since = match &req.since {
        Some(s) => parse_time("since", s)?,
        None => until - chrono::Duration::hours(1),
    };
    let limit = req.limit.unwrap_or(10_000).clamp(1, MAX_EVENTS);

    let mut sources = crate::rule_sources(&state.config).map_err(|e| {
        RuleTestError::BadRequest(format!("the configured rule files cannot be read: {e:#}"))
    })?;
    sources.push((TEST_FILE.to_string(), req.rules));
    let (rules, report) = RuleSet::from_sources(&sources);
    let in_test = |file: &str| file == TEST_FILE;
    let tested: Vec<String> = rules
        .rules()
        .into_iter()
        .filter(|r| r.active && in_test(&r.file))
        .map(|r| r.name)
        .collect();
    let errors = report
        .errors
        .iter()
        .filter(|e| in_test(&e.location.file))
        .map(|e| e.to_string())
        .collect();
    let warnings = report
        .warnings
        .iter()
        .filter(|w| in_test(&w.location.file))
        .map(|w| w.to_string())
        .collect();

    let sql = format!(
        "SELECT * FROM audit WHERE time >= TIMESTAMP '{}' AND time < TIMESTAMP '{}' ORDER BY time DESC",
        kestrel_event::time::to_rfc3339(since.timestamp_nanos_opt().unwrap_or(i64::MIN)),
        kestrel_event::time::to_rfc3339(until.timestamp_nanos_opt().unwrap_or(i64::MAX)),
    );
    let opts = QueryOptions {
        max_rows: limit,
        timeout: state.config.query.timeout,
        memory_limit_bytes: state.config.query.memory_limit_bytes,
        ..QueryOptions::default()
    };
    let result = state.store.query(&sql, &opts).await?;
    let events_truncated = result.truncated;
    let columns = result.columns;
    let rows = result.rows;
    let names = tested.clone();
    let (counts, matches, events) = tokio::task::spawn_blocking(move || {
        let mut counts = BTreeMap::new();
        let mut matches = std::collections::VecDeque::new();
        // A fresh detector, so stateful rules (thresholds, sequences, ...) are tested too,
        // oldest event first with each event's own time as the clock.
        let mut detector = Detector::new(rules);
        let mut clock = since.timestamp_nanos_opt().unwrap_or(i64::MIN);
        for row in rows.iter().rev() {
            let map: Map<String, Value> =
                columns.iter().cloned().zip(row.iter().cloned()).collect();
            let event = event_from_row(&map);
            if let Some(t) = event.event_time() {
                clock = kestrel_event::time::to_nanos(t);
            }
            for m in detector.evaluate_audit(&event, clock) {
                if !names.contains(&m.rule) {
                    continue;
                }
                *counts.entry(m.rule.clone()).or_insert(0) += 1;
                // Keep the newest matches.
                if matches.len() == MAX_MATCHES {
                    matches.pop_front();
                }
                matches.push_back(TestMatch {
                    time: text(&map, "time").unwrap_or_default(),
                    rule: m.rule,
                    priority: m.priority.to_string(),
                    output: m.output,
                    audit_id: event.audit_id.clone(),
                });
            }
        }
        // Newest first, like the events read.
        let matches: Vec<TestMatch> = matches.into_iter().rev().collect();
        (counts, matches, rows.len())
    })
    .await
    .expect("rule evaluation does not panic");
    Ok(RuleTestResult {
        rules: tested,
        errors,
        warnings,
        events,
        events_truncated,
        counts,
        matches,
    })
}

fn text(row: &Map<String, Value>, column: &str) -> Option<String> {
    row.get(column).and_then(Value::as_str).map(str::to_owned)
}

fn texts(row: &Map<String, Value>, column: &str) -> Vec<String> {
    row.get(column)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A column holding JSON text, parsed (the store keeps bodies and maps as JSON text).
fn json<T: serde::de::DeserializeOwned>(row: &Map<String, Value>, column: &str) -> Option<T> {
    row.get(column)
        .and_then(Value::as_str)
        .and_then(|t| serde_json::from_str(t).ok())
}

fn time(row: &Map<String, Value>, column: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    text(row, column)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// An `audit` row (as a query answers it) read back as the audit event it was made from: every
/// field the rules read is a column, bodies and maps are JSON text.
pub fn event_from_row(row: &Map<String, Value>) -> AuditEvent {
    let object_ref = ObjectReference {
        resource: text(row, "resource"),
        namespace: text(row, "namespace"),
        name: text(row, "name"),
        uid: text(row, "object_uid"),
        api_group: text(row, "api_group"),
        api_version: text(row, "object_api_version"),
        resource_version: text(row, "resource_version"),
        subresource: text(row, "subresource"),
    };
    let has_object = object_ref != ObjectReference::default();
    let response_status = ResponseStatus {
        code: row
            .get("response_code")
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok()),
        status: text(row, "response_status"),
        reason: text(row, "response_reason"),
        message: text(row, "response_message"),
        details: None,
        metadata: None,
    };
    let has_status = response_status != ResponseStatus::default();
    AuditEvent {
        kind: Some("Event".into()),
        api_version: text(row, "api_version"),
        level: text(row, "level").unwrap_or_default(),
        audit_id: text(row, "audit_id").unwrap_or_default(),
        stage: text(row, "stage").unwrap_or_default(),
        request_uri: text(row, "request_uri").unwrap_or_default(),
        verb: text(row, "verb").unwrap_or_default(),
        user: UserInfo {
            username: text(row, "user_name").unwrap_or_default(),
            uid: text(row, "user_uid"),
            groups: texts(row, "user_groups"),
            extra: json(row, "user_extra").unwrap_or_default(),
        },
        impersonated_user: text(row, "impersonated_user_name").map(|username| UserInfo {
            username,
            groups: texts(row, "impersonated_user_groups"),
            ..Default::default()
        }),
        source_ips: texts(row, "source_ips"),
        user_agent: text(row, "user_agent"),
        object_ref: has_object.then_some(object_ref),
        response_status: has_status.then_some(response_status),
        request_object: json(row, "request_object"),
        response_object: json(row, "response_object"),
        request_received_timestamp: time(row, "request_received_time"),
        stage_timestamp: time(row, "time"),
        annotations: json(row, "annotations").unwrap_or_default(),
        timestamp: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_event::AuditRecord;
    use serde_json::json;

    #[test]
    fn a_row_reads_back_as_the_event_it_was_made_from() {
        let original: AuditEvent = serde_json::from_value(json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
            "auditID": "a-1", "stage": "ResponseComplete",
            "requestURI": "/api/v1/namespaces/shop/pods", "verb": "create",
            "user": {"username": "alice", "uid": "u1", "groups": ["devs"], "extra": {"scopes": ["x"]}},
            "impersonatedUser": {"username": "bob", "groups": ["ops"]},
            "sourceIPs": ["203.0.113.9", "10.0.0.1"], "userAgent": "kubectl/v1.31.0",
            "objectRef": {"resource": "pods", "namespace": "shop", "name": "web-0", "apiVersion": "v1"},
            "responseStatus": {"code": 201},
            "requestObject": {"kind": "Pod", "spec": {"containers": [{"name": "c", "image": "alpine"}]}},
            "requestReceivedTimestamp": "2026-11-20T09:00:01.123456Z",
            "stageTimestamp": "2026-11-20T09:00:01.223456Z",
            "annotations": {"authorization.k8s.io/decision": "allow"}
        }))
        .unwrap();
        let record = AuditRecord::from_event(&original, None);
        // The row as a query answers it: the record's fields under their column names.
        let row = json!({
            "time": kestrel_event::time::to_rfc3339(record.time),
            "request_received_time": record.request_received_time.map(kestrel_event::time::to_rfc3339),
            "audit_id": record.audit_id, "stage": record.stage, "level": record.level,
            "api_version": record.api_version, "verb": record.verb, "request_uri": record.request_uri,
            "user_name": record.user_name, "user_uid": record.user_uid, "user_groups": record.user_groups,
            "user_extra": record.user_extra, "impersonated_user_name": record.impersonated_user_name,
            "impersonated_user_groups": record.impersonated_user_groups,
            "source_ip": record.source_ip, "source_ips": record.source_ips, "user_agent": record.user_agent,
            "resource": record.resource, "namespace": record.namespace, "name": record.name,
            "object_api_version": record.object_api_version, "response_code": record.response_code,
            "annotations": record.annotations, "request_object": record.request_object,
        });
        let back = event_from_row(row.as_object().unwrap());
        assert_eq!(back.user, original.user);
        assert_eq!(back.impersonated_user, original.impersonated_user);
        assert_eq!(back.object_ref, original.object_ref);
        assert_eq!(back.response_status, original.response_status);
        assert_eq!(back.request_object, original.request_object);
        assert_eq!(back.annotations, original.annotations);
        assert_eq!(back.source_ips, original.source_ips);
        assert_eq!(back.event_time(), original.event_time());
        assert_eq!(
            back.request_received_timestamp,
            original.request_received_timestamp
        );
        assert_eq!(
            (back.verb, back.stage, back.audit_id),
            (original.verb, original.stage, original.audit_id)
        );
    }
}
