//! Kubernetes events: an `events.k8s.io/v1` `Event` (or a `core/v1` `Event`), as JSON, bare or in
//! the watch envelope the API server streams (`{"type":"ADDED","object":{...}}`).
//!
//! The two APIs name the same things differently; each column takes the `events.k8s.io/v1` field
//! and falls back to its `core/v1` (and `deprecated*`) twin: `note`/`message`,
//! `regarding`/`involvedObject`, `reportingController`/`reportingComponent`/`source.component`,
//! `series.count`/`deprecatedCount`/`count`. Empty strings and `null` count as absent, since the
//! API server writes `"reportingComponent": ""` and `"eventTime": null` for old-style events.

use kestrel_event::K8sEvent;
use serde_json::{Map, Value};

use crate::timestamp::parse_rfc3339_nanos;

/// Why a JSON document is not a usable event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum K8sEventError {
    #[error("empty input")]
    Empty,
    #[error("invalid JSON at line {line} column {column}: {reason}")]
    Json {
        line: usize,
        column: usize,
        reason: String,
    },
    /// A JSON value that is not an `Event` object (a `Status`, a watch `ERROR` or `BOOKMARK`).
    #[error("not an Event: {found}")]
    NotEvent { found: String },
    #[error("field `{field}` is `{value}`: {reason}")]
    Value {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    /// None of the time fields is set.
    #[error("no time: none of series.lastObservedTime, eventTime, lastTimestamp, firstTimestamp, metadata.creationTimestamp")]
    NoTime,
}

impl K8sEventError {
    /// Short machine-readable cause for a dead letter.
    pub fn kind(&self) -> &'static str {
        match self {
            K8sEventError::Empty => "empty",
            K8sEventError::Json { .. } => "invalid_json",
            K8sEventError::NotEvent { .. } | K8sEventError::NoTime => "schema",
            K8sEventError::Value { .. } => "invalid_value",
        }
    }
}

/// A non-empty string at `path`.
fn text<'a>(obj: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let (last, parents) = path.split_last()?;
    let mut cur = obj;
    for p in parents {
        cur = cur.get(*p)?.as_object()?;
    }
    cur.get(*last)?.as_str().filter(|s| !s.is_empty())
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

/// Parses one event. Time is the latest observation: `series.lastObservedTime`, else
/// `eventTime`, else `deprecatedLastTimestamp`/`lastTimestamp`, else
/// `deprecatedFirstTimestamp`/`firstTimestamp`, else `metadata.creationTimestamp`.
pub fn parse_k8s_event(json: &[u8]) -> Result<K8sEvent, K8sEventError> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Err(K8sEventError::Empty);
    }
    let value: Value = serde_json::from_slice(json).map_err(|e| K8sEventError::Json {
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    })?;
    let Value::Object(mut top) = value else {
        return Err(K8sEventError::NotEvent {
            found: "a JSON value that is not an object".into(),
        });
    };
    // The watch envelope.
    if top.get("kind").is_none() && top.get("object").is_some_and(Value::is_object) {
        let watch_type = top
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if !matches!(watch_type.as_str(), "ADDED" | "MODIFIED" | "DELETED") {
            let message = top
                .get("object")
                .and_then(|o| o.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(K8sEventError::NotEvent {
                found: format!("watch event of type `{watch_type}` {message}")
                    .trim_end()
                    .to_owned(),
            });
        }
        if let Some(Value::Object(inner)) = top.remove("object") {
            top = inner;
        }
    }
    let e = &top;
    if let Some(kind) = e.get("kind") {
        if kind.as_str() != Some("Event") {
            return Err(K8sEventError::NotEvent {
                found: format!("kind {kind}"),
            });
        }
    }
    let regarding = if e.get("regarding").is_some_and(Value::is_object) {
        "regarding"
    } else {
        "involvedObject"
    };
    let r = |f: &str| owned(text(e, &[regarding, f]));
    Ok(K8sEvent {
        time: event_time(e)?,
        namespace: owned(text(e, &["metadata", "namespace"])),
        name: owned(text(e, &["metadata", "name"])),
        uid: owned(text(e, &["metadata", "uid"])),
        event_type: owned(text(e, &["type"])),
        reason: owned(text(e, &["reason"])),
        note: owned(text(e, &["note"]).or_else(|| text(e, &["message"]))),
        action: owned(text(e, &["action"])),
        reporting_controller: owned(
            text(e, &["reportingController"])
                .or_else(|| text(e, &["reportingComponent"]))
                .or_else(|| text(e, &["deprecatedSource", "component"]))
                .or_else(|| text(e, &["source", "component"])),
        ),
        reporting_instance: owned(
            text(e, &["reportingInstance"])
                .or_else(|| text(e, &["deprecatedSource", "host"]))
                .or_else(|| text(e, &["source", "host"])),
        ),
        regarding_kind: r("kind"),
        regarding_namespace: r("namespace"),
        regarding_name: r("name"),
        regarding_uid: r("uid"),
        regarding_field_path: r("fieldPath"),
        count: event_count(e)?,
        resource_version: owned(text(e, &["metadata", "resourceVersion"])),
    })
}

fn event_time(e: &Map<String, Value>) -> Result<i64, K8sEventError> {
    const CANDIDATES: [(&str, &[&str]); 7] = [
        ("series.lastObservedTime", &["series", "lastObservedTime"]),
        ("eventTime", &["eventTime"]),
        ("deprecatedLastTimestamp", &["deprecatedLastTimestamp"]),
        ("lastTimestamp", &["lastTimestamp"]),
        ("deprecatedFirstTimestamp", &["deprecatedFirstTimestamp"]),
        ("firstTimestamp", &["firstTimestamp"]),
        (
            "metadata.creationTimestamp",
            &["metadata", "creationTimestamp"],
        ),
    ];
    for (field, path) in CANDIDATES {
        if let Some(t) = text(e, path) {
            return parse_rfc3339_nanos(t.as_bytes()).map_err(|err| K8sEventError::Value {
                field,
                value: t.chars().take(40).collect(),
                reason: if err.reason.contains("range") {
                    "time out of range"
                } else {
                    "expected an RFC 3339 time"
                },
            });
        }
    }
    Err(K8sEventError::NoTime)
}

fn event_count(e: &Map<String, Value>) -> Result<Option<i32>, K8sEventError> {
    let candidates: [(&'static str, Option<&Value>); 3] = [
        ("series.count", e.get("series").and_then(|s| s.get("count"))),
        ("deprecatedCount", e.get("deprecatedCount")),
        ("count", e.get("count")),
    ];
    for (field, v) in candidates {
        match v {
            None | Some(Value::Null) => continue,
            Some(v) => {
                return v
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| K8sEventError::Value {
                        field,
                        value: v.to_string().chars().take(40).collect(),
                        reason: "expected a 32-bit integer",
                    })
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;
    use proptest::prelude::*;

    const SEC: i64 = 1_000_000_000;
    /// 2026-11-20T09:00:00Z.
    const NINE: i64 = 1_795_165_200 * SEC;

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    fn sample(name: &str) -> Result<K8sEvent, K8sEventError> {
        parse_k8s_event(&testdata::read(&format!("k8s-events/{name}")))
    }

    #[test]
    fn events_api_with_a_series() {
        assert_eq!(
            sample("backoff-series.json").unwrap(),
            K8sEvent {
                time: NINE + SEC + 654_321_000,
                namespace: s("shop"),
                name: s("web-7d9c8b-x2x4k.1879a2b3c4d5e6f7"),
                uid: s("3b1f5c2e-8a4d-4e6f-9b7a-1c2d3e4f5a6b"),
                event_type: s("Warning"),
                reason: s("BackOff"),
                note: s("Back-off restarting failed container web in pod web-7d9c8b-x2x4k_shop(9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a)"),
                action: s("Backoff"),
                reporting_controller: s("kubelet"),
                reporting_instance: s("node-1"),
                regarding_kind: s("Pod"),
                regarding_namespace: s("shop"),
                regarding_name: s("web-7d9c8b-x2x4k"),
                regarding_uid: s("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"),
                regarding_field_path: s("spec.containers{web}"),
                count: Some(17),
                resource_version: s("4815162342"),
            }
        );
    }

    #[test]
    fn events_api_without_a_series() {
        let e = sample("scheduled.json").unwrap();
        assert_eq!(e.time, NINE + 2 * SEC + 321_000);
        assert_eq!(
            (e.count, e.reporting_controller.as_deref()),
            (None, Some("default-scheduler"))
        );
        assert_eq!(e.regarding_field_path, None);
        let e = sample("created-only.json").unwrap();
        assert_eq!(e.time, NINE + 4 * SEC);
        assert_eq!(e.reporting_instance, None);
    }

    #[test]
    fn core_v1_events() {
        let e = sample("core-v1-pulled.json").unwrap();
        assert_eq!(e.time, NINE - 20 * SEC, "lastTimestamp");
        assert_eq!(e.count, Some(3));
        assert_eq!(
            e.note
                .as_deref()
                .map(|n| n.starts_with("Successfully pulled image \"registry")),
            Some(true)
        );
        assert_eq!(
            (e.reporting_controller, e.reporting_instance),
            (s("kubelet"), s("node-1"))
        );
        assert_eq!(
            (e.regarding_kind, e.regarding_field_path),
            (s("Pod"), s("spec.containers{web}"))
        );
        let e = sample("core-v1-first-only.json").unwrap();
        assert_eq!(e.time, NINE - 600 * SEC, "firstTimestamp");
        assert_eq!((e.regarding_kind, e.regarding_namespace), (s("Node"), None));
        assert_eq!(e.reporting_controller, s("node-controller"));
    }

    #[test]
    fn watch_envelopes() {
        let e = sample("watch-modified.json").unwrap();
        assert_eq!(
            (e.regarding_kind, e.reason),
            (s("Deployment"), s("ScalingReplicaSet"))
        );
        assert_eq!(e.time, NINE + 3 * SEC + 100_000_000);
        assert_eq!(
            sample("watch-error-gone.json").unwrap_err(),
            K8sEventError::NotEvent {
                found:
                    "watch event of type `ERROR` too old resource version: 4815160000 (4815162342)"
                        .into()
            }
        );
    }

    #[test]
    fn malformed_events() {
        let e = |j: &str| parse_k8s_event(j.as_bytes()).unwrap_err();
        assert_eq!(e(" \n"), K8sEventError::Empty);
        assert!(matches!(
            e("{\"kind\":"),
            K8sEventError::Json {
                line: 1,
                column: 8,
                ..
            }
        ));
        assert_eq!(
            e("[]"),
            K8sEventError::NotEvent {
                found: "a JSON value that is not an object".into()
            }
        );
        assert_eq!(
            e(r#"{"kind":"Pod","metadata":{"creationTimestamp":"2026-11-20T09:00:00Z"}}"#),
            K8sEventError::NotEvent {
                found: "kind \"Pod\"".into()
            }
        );
        assert_eq!(e(r#"{"kind":"Event","reason":"X"}"#), K8sEventError::NoTime);
        assert_eq!(
            e(r#"{"kind":"Event","eventTime":"yesterday"}"#),
            K8sEventError::Value {
                field: "eventTime",
                value: "yesterday".into(),
                reason: "expected an RFC 3339 time"
            }
        );
        assert_eq!(
            e(r#"{"kind":"Event","eventTime":"2026-11-20T09:00:00Z","count":"many"}"#),
            K8sEventError::Value {
                field: "count",
                value: "\"many\"".into(),
                reason: "expected a 32-bit integer"
            }
        );
        assert_eq!(
            e(r#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"12"}}}"#).kind(),
            "schema"
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_k8s_event(&bytes);
        }
    }
}
