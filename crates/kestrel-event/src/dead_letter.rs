//! Input that could not become a record: kept aside, with the reason, in the `dead_letter` table.

use serde::{Deserialize, Serialize};

/// One rejected input (a line, an event of a batch, or a whole body) and why it was rejected.
///
/// `payload` holds the input as received (lossy UTF-8), already redacted when it parsed as JSON,
/// and cut to a bounded size; for an event over `max_event_bytes` it holds only the event's
/// metadata (auditID, verb, user, objectRef) so an operator can find it at the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// When Kestrel rejected the input, in UTC nanoseconds.
    pub time: i64,
    /// Which input it came from, for example `audit_webhook` or `audit_file`.
    pub source: String,
    /// Short machine-readable cause, for example `invalid_json`, `schema`, `too_large`.
    pub kind: String,
    /// Human-readable reason with the position of the problem where known.
    pub reason: String,
    /// Where in the input: line number of a log file, or item index in an `EventList`.
    pub location: Option<String>,
    /// Size of the rejected input in bytes, before any truncation.
    pub size_bytes: i64,
    /// The input (redacted, truncated) or, for oversized events, their metadata as JSON.
    pub payload: String,
}
