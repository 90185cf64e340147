//! The alert model: what a rule match becomes, and its identity.
//!
//! An alert's identity is the fingerprint of all its labels, as in Alertmanager. For a rule
//! match the labels are `rule`, `priority`, `source` (the rule's Falco source, like
//! `k8s_audit`), `tags` (sorted, comma-joined), and, when known, `cluster`, `namespace` and
//! `user_name`: the same rule hitting another namespace or user is another alert; the same rule
//! by the same user in the same namespace again is a duplicate, counted and not re-sent. The
//! detail of each occurrence (output fields, the event) goes into annotations and `event`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "firing" => Some(AlertStatus::Firing),
            "acknowledged" => Some(AlertStatus::Acknowledged),
            "resolved" => Some(AlertStatus::Resolved),
            _ => None,
        }
    }
}

/// The event behind an alert, and the SQL that fetches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRef {
    /// Table the event is in (`audit`, ...).
    pub table: String,
    /// The event's identity in that table (for audit: the `auditID`).
    pub id: String,
    /// A query that returns the event.
    pub query: String,
}

/// A rule match, as handed to [`crate::AlertStore::record`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub rule: String,
    /// Falco priority name (`Critical`, `Warning`, ...).
    pub priority: String,
    pub source: String,
    pub output: String,
    pub tags: Vec<String>,
    /// Identity of the alert: rule, priority, source and the entities involved.
    pub labels: BTreeMap<String, String>,
    /// Extra detail that does not make the alert distinct (the output fields).
    pub annotations: BTreeMap<String, String>,
    pub event: Option<EventRef>,
    /// Event time, UTC nanoseconds.
    pub time: i64,
    /// Where the alert came from, for alerts posted by another system (`generatorURL`).
    pub generator_url: Option<String>,
}

/// An alert as stored and listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The fingerprint of the labels (hex), also the alert's id.
    pub id: String,
    pub rule: String,
    pub priority: String,
    pub source: String,
    pub status: AlertStatus,
    /// The output text of the latest occurrence.
    pub output: String,
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The event of the latest occurrence.
    pub event: Option<EventRef>,
    /// First and latest occurrence, RFC 3339.
    pub first_seen: String,
    pub last_seen: String,
    /// Occurrences, the first included; duplicates are counted, not re-sent.
    pub count: i64,
    /// Who changed the status last, and when (RFC 3339).
    pub status_by: Option<String>,
    pub status_at: Option<String>,
    /// The sender's link, for alerts posted by another system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

/// The identity of a set of labels: SHA-256 over the sorted `name=value` pairs, hex, 16 bytes.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update([0xff]);
        h.update(v.as_bytes());
        h.update([0xfe]);
    }
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_depends_on_every_label_and_not_on_order_of_insertion() {
        let mut a = BTreeMap::new();
        a.insert("rule".to_string(), "x".to_string());
        a.insert("namespace".to_string(), "ns".to_string());
        let mut b = BTreeMap::new();
        b.insert("namespace".to_string(), "ns".to_string());
        b.insert("rule".to_string(), "x".to_string());
        assert_eq!(fingerprint(&a), fingerprint(&b));
        b.insert("rule".to_string(), "y".to_string());
        assert_ne!(fingerprint(&a), fingerprint(&b));
        // Separators keep ("ab","c") and ("a","bc") apart.
        let one: BTreeMap<_, _> = [("ab".to_string(), "c".to_string())].into();
        let two: BTreeMap<_, _> = [("a".to_string(), "bc".to_string())].into();
        assert_ne!(fingerprint(&one), fingerprint(&two));
    }
}
