//! systemd journal entries, one `journalctl -o json` line each.
//!
//! journald's JSON: every value is a string, except a value that is not valid UTF-8 (an array of
//! byte numbers), a field repeated in one entry (an array of values), and a field too large for
//! journalctl's limit (`null`). The usual fields become columns; every other field goes, as it
//! was, into the entry's `fields` JSON object, so nothing journald recorded is lost.

use kestrel_event::JournalEntry;
use serde_json::{Map, Value};

/// Why a line is not a journal entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    #[error("empty line")]
    Empty,
    #[error("invalid JSON at column {column}: {reason}")]
    Json { column: usize, reason: String },
    #[error("not a JSON object")]
    NotObject,
    #[error("missing field `{field}`")]
    Missing { field: &'static str },
    #[error("field `{field}` is `{value}`: {reason}")]
    Value {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
}

impl JournalError {
    /// Short machine-readable cause for a dead letter.
    pub fn kind(&self) -> &'static str {
        match self {
            JournalError::Empty => "empty",
            JournalError::Json { .. } => "invalid_json",
            JournalError::NotObject | JournalError::Missing { .. } => "schema",
            JournalError::Value { .. } => "invalid_value",
        }
    }
}

/// Text of a journal value: a string as is; an array of byte numbers as lossy UTF-8; the values
/// of a repeated field joined with `\n`; `None` for `null` (journalctl's placeholder for a value
/// over its size limit).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            if let Some(bytes) = items
                .iter()
                .map(|b| b.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect::<Option<Vec<u8>>>()
            {
                return Some(String::from_utf8_lossy(&bytes).into_owned());
            }
            let parts: Vec<String> = items.iter().filter_map(text_of).collect();
            (!parts.is_empty()).then(|| parts.join("\n"))
        }
        other => Some(other.to_string()),
    }
}

/// Removes `key` and returns its text.
fn take_text(map: &mut Map<String, Value>, key: &str) -> Option<String> {
    map.remove(key).as_ref().and_then(text_of)
}

/// Removes `key` when its text parses as `T` and passes `valid` (a value that does not stays in
/// `fields`).
fn take_number<T: std::str::FromStr>(
    map: &mut Map<String, Value>,
    key: &str,
    valid: impl Fn(&T) -> bool,
) -> Option<T> {
    let n = map.get(key).and_then(text_of)?.trim().parse().ok()?;
    if !valid(&n) {
        return None;
    }
    map.remove(key);
    Some(n)
}

/// Parses one `journalctl -o json` line. `__REALTIME_TIMESTAMP` is required; a `PRIORITY`
/// outside 0..=7 or a `_PID` that is not a number stays in `fields` rather than failing the
/// entry.
pub fn parse_journal(line: &[u8]) -> Result<JournalEntry, JournalError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(JournalError::Empty);
    }
    let value: Value = serde_json::from_slice(line).map_err(|e| JournalError::Json {
        column: e.column(),
        reason: e.to_string(),
    })?;
    let Value::Object(mut map) = value else {
        return Err(JournalError::NotObject);
    };
    let ts = map
        .get("__REALTIME_TIMESTAMP")
        .ok_or(JournalError::Missing {
            field: "__REALTIME_TIMESTAMP",
        })?;
    let ts_text = text_of(ts).unwrap_or_default();
    let time = ts_text
        .parse::<i64>()
        .ok()
        .and_then(|us| us.checked_mul(1000))
        .ok_or_else(|| JournalError::Value {
            field: "__REALTIME_TIMESTAMP",
            value: ts_text.chars().take(32).collect(),
            reason: "expected microseconds since the epoch",
        })?;
    map.remove("__REALTIME_TIMESTAMP");
    let priority = take_number::<u8>(&mut map, "PRIORITY", |p| *p <= 7);
    Ok(JournalEntry {
        time,
        cursor: take_text(&mut map, "__CURSOR"),
        unit: take_text(&mut map, "_SYSTEMD_UNIT"),
        identifier: take_text(&mut map, "SYSLOG_IDENTIFIER"),
        message: take_text(&mut map, "MESSAGE"),
        priority,
        pid: take_number(&mut map, "_PID", |_| true),
        hostname: take_text(&mut map, "_HOSTNAME"),
        boot_id: take_text(&mut map, "_BOOT_ID"),
        fields: (!map.is_empty()).then(|| Value::Object(map).to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;
    use proptest::prelude::*;
    use serde_json::json;

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    fn fields(e: &JournalEntry) -> Value {
        serde_json::from_str(e.fields.as_deref().unwrap_or("{}")).unwrap()
    }

    #[test]
    fn sample_file() {
        let entries: Vec<JournalEntry> = testdata::lines("journal/journal.json")
            .iter()
            .enumerate()
            .map(|(i, l)| parse_journal(l).unwrap_or_else(|e| panic!("line {}: {e}", i + 1)))
            .collect();
        assert_eq!(entries.len(), 24);
        let kubelet = &entries[0];
        assert_eq!(
            kubelet,
            &JournalEntry {
                time: 1_795_165_201_123_456_000,
                cursor: s("s=0f6c2a3b4d5e4f60a1b2c3d4e5f60718;i=1a2b3;b=6d7e8f90a1b24c3d9e8f7a6b5c4d3e2f;m=b4a5c6d7;t=6448a1b2c3d4e;x=9f8e7d6c5b4a3928"),
                unit: s("kubelet.service"),
                identifier: s("kubelet"),
                message: s("I1120 09:00:01.123456    1234 kubelet.go:2345] \"SyncLoop ADD\" source=\"api\" pods=[\"shop/web-7d9c8b-x2x4k\"]"),
                priority: Some(6),
                pid: Some(1234),
                hostname: s("node-1"),
                boot_id: s("6d7e8f90a1b24c3d9e8f7a6b5c4d3e2f"),
                fields: kubelet.fields.clone(),
            }
        );
        let f = fields(kubelet);
        assert_eq!(f["_COMM"], "kubelet");
        assert_eq!(f["__MONOTONIC_TIMESTAMP"], "3030829015");
        assert!(f.get("MESSAGE").is_none() && f.get("_PID").is_none());
        // A message that is not UTF-8 arrives as bytes.
        let binary = entries
            .iter()
            .find(|e| e.identifier.as_deref() == Some("binary-logger"))
            .unwrap();
        assert_eq!(binary.message, s("caf\u{fffd} \u{1b}[31mred\u{1b}[0m"));
        // A repeated field stays an array in `fields`.
        let repeated = entries
            .iter()
            .find(|e| e.identifier.as_deref() == Some("multi-tag"))
            .unwrap();
        assert_eq!(fields(repeated)["TAG"], json!(["a", "b"]));
        // sshd: a security-relevant line with no unit.
        let sshd = entries
            .iter()
            .find(|e| e.identifier.as_deref() == Some("sshd"))
            .unwrap();
        assert!(sshd
            .message
            .as_deref()
            .unwrap()
            .starts_with("Failed password for invalid user admin"));
        assert_eq!(sshd.priority, Some(6));
        // A message over journalctl's size limit is null.
        assert!(entries
            .iter()
            .any(|e| e.message.is_none() && e.identifier.as_deref() == Some("huge")));
    }

    #[test]
    fn odd_values_stay_in_fields() {
        let e = parse_journal(
            br#"{"__REALTIME_TIMESTAMP":"1795165201000000","PRIORITY":"warning","_PID":"x","MESSAGE":["first","second"],"N":5}"#,
        )
        .unwrap();
        assert_eq!((e.priority, e.pid), (None, None));
        assert_eq!(e.message, s("first\nsecond"));
        assert_eq!(
            fields(&e),
            json!({"PRIORITY": "warning", "_PID": "x", "N": 5})
        );
        let e = parse_journal(br#"{"__REALTIME_TIMESTAMP":"1795165201000000","PRIORITY":"9"}"#)
            .unwrap();
        assert_eq!((e.priority, fields(&e)), (None, json!({"PRIORITY": "9"})));
        let e = parse_journal(br#"{"__REALTIME_TIMESTAMP":"1"}"#).unwrap();
        assert_eq!((e.time, e.fields), (1000, None));
    }

    #[test]
    fn malformed_lines() {
        let e = |l: &[u8]| parse_journal(l).unwrap_err();
        assert_eq!(e(b""), JournalError::Empty);
        assert_eq!(e(b"[1,2]"), JournalError::NotObject);
        assert!(matches!(
            e(b"{\"MESSAGE\":\"cut"),
            JournalError::Json { column: 15, .. }
        ));
        assert!(matches!(
            e(b"not json"),
            JournalError::Json { column: 2, .. }
        ));
        assert_eq!(
            e(br#"{"MESSAGE":"x"}"#),
            JournalError::Missing {
                field: "__REALTIME_TIMESTAMP"
            }
        );
        assert_eq!(
            e(br#"{"__REALTIME_TIMESTAMP":"soon"}"#),
            JournalError::Value {
                field: "__REALTIME_TIMESTAMP",
                value: "soon".into(),
                reason: "expected microseconds since the epoch"
            }
        );
        assert_eq!(
            e(br#"{"__REALTIME_TIMESTAMP":"99999999999999999"}"#).kind(),
            "invalid_value"
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_journal(&bytes);
        }

        #[test]
        fn no_field_is_lost(extra in proptest::collection::btree_map("[A-Z_]{1,8}", "[ -~]{0,10}", 0..6)) {
            let mut obj = json!({"__REALTIME_TIMESTAMP": "1795165201000000", "MESSAGE": "m"});
            for (k, v) in &extra {
                obj[k] = json!(v);
            }
            let e = parse_journal(obj.to_string().as_bytes()).unwrap();
            let f = fields(&e);
            for (k, v) in &extra {
                let kept = f.get(k).and_then(Value::as_str) == Some(v.as_str())
                    || [e.cursor.as_ref(), e.unit.as_ref(), e.identifier.as_ref(), e.message.as_ref(), e.hostname.as_ref(), e.boot_id.as_ref()]
                        .contains(&Some(v))
                    || (k == "PRIORITY" && e.priority.map(u32::from) == v.trim().parse().ok())
                    || (k == "_PID" && e.pid == v.trim().parse().ok())
                    || k == "__REALTIME_TIMESTAMP";
                prop_assert!(kept, "{} lost", k);
            }
        }
    }
}
