//! The agent → server batch (`POST /v1/ingest`): where the records came from, what they are,
//! and the identity that makes a re-sent batch land in storage once.
//!
//! On the wire a batch is this struct as JSON, zstd-compressed (`Content-Encoding: zstd`). Its
//! [`IngestBatch::id`] is derived from what it holds — agent, input, stream and range — never from
//! a counter, so a batch rebuilt after a crash from the same bytes of the same file has the same
//! identity as the one sent before the crash, and the server stores it once.

use serde::{Deserialize, Serialize};

use crate::records::{ContainerLog, DnsQuery, IngressAccess, JournalEntry, K8sEvent, NetfilterLog};
use crate::DeadLetter;

/// Version of the batch format; the server refuses versions it does not know.
pub const INGEST_FORMAT_VERSION: u32 = 1;

/// Kubernetes identity of the pod and container a file belongs to. Namespace, pod, uid and
/// container come from the log file's path; the rest from the agent's pod watch when it has one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodIdentity {
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub pod_uid: Option<String>,
    pub container: Option<String>,
    pub image: Option<String>,
    /// The pod's labels, as a JSON object.
    pub labels: Option<String>,
    /// Kind of the pod's top owner: `Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`...
    pub owner_kind: Option<String>,
    pub owner_name: Option<String>,
    pub service_account: Option<String>,
}

/// Where a batch's records came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOrigin {
    /// The agent's name (by default the node's name).
    pub agent: String,
    pub cluster: Option<String>,
    pub node: Option<String>,
    /// The configured input's name.
    pub input: String,
    /// The stream inside the input: a file's identity, a journal boot, a watch.
    pub stream: String,
    /// The file the records were read from, when they came from a file.
    pub file: Option<String>,
    /// The pod a container log file belongs to.
    pub pod: Option<PodIdentity>,
}

/// A batch of records sent by an agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestBatch {
    /// Always [`INGEST_FORMAT_VERSION`] when sent by this version.
    pub version: u32,
    /// The batch identity: see [`batch_id`].
    pub id: String,
    pub origin: BatchOrigin,
    /// First position covered (a byte offset in a file, or a sequence in another stream).
    pub start: u64,
    /// One past the last position covered.
    pub end: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_logs: Vec<ContainerLog>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IngressAccess>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<DnsQuery>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub netflow: Vec<NetfilterLog>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journal: Vec<JournalEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub k8s_events: Vec<K8sEvent>,
    /// Kubernetes audit events read from audit log files, one JSON object each, already
    /// redacted by the agent; the server parses them as it parses its webhook's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<String>,
    /// Lines the agent could not turn into records, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_letters: Vec<DeadLetter>,
}

impl IngestBatch {
    /// Number of records of every kind in the batch.
    pub fn record_count(&self) -> usize {
        self.container_logs.len()
            + self.ingress.len()
            + self.dns.len()
            + self.netflow.len()
            + self.journal.len()
            + self.k8s_events.len()
            + self.audit.len()
            + self.dead_letters.len()
    }
}

/// The identity of a batch: 32 hex digits of a hash of the agent, input, stream and range.
/// Stable across agent restarts and across versions (the hash is FNV-1a 128 over the fields
/// separated by NUL bytes, written out here so it never changes with a library's version).
pub fn batch_id(agent: &str, input: &str, stream: &str, start: u64, end: u64) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u128::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    feed(agent.as_bytes());
    feed(&[0]);
    feed(input.as_bytes());
    feed(&[0]);
    feed(stream.as_bytes());
    feed(&[0]);
    feed(&start.to_le_bytes());
    feed(&end.to_le_bytes());
    format!("{h:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_id_is_stable_and_depends_on_every_part() {
        let id = batch_id("node-1", "pods", "f1", 0, 100);
        assert_eq!(id, batch_id("node-1", "pods", "f1", 0, 100));
        assert_eq!(id.len(), 32);
        for other in [
            batch_id("node-2", "pods", "f1", 0, 100),
            batch_id("node-1", "pod", "f1", 0, 100),
            batch_id("node-1", "pods", "f2", 0, 100),
            batch_id("node-1", "pods", "f1", 1, 100),
            batch_id("node-1", "pods", "f1", 0, 101),
            // The separator keeps field boundaries: "ab"+"c" differs from "a"+"bc".
            batch_id("node-1", "podsf", "1", 0, 100),
        ] {
            assert_ne!(id, other);
        }
    }

    #[test]
    fn empty_record_kinds_are_left_out_of_the_json() {
        let batch = IngestBatch {
            version: INGEST_FORMAT_VERSION,
            id: "x".into(),
            ..Default::default()
        };
        let json = serde_json::to_string(&batch).unwrap();
        assert!(!json.contains("container_logs"), "{json}");
        let back: IngestBatch = serde_json::from_str(&json).unwrap();
        assert_eq!(back, batch);
    }
}
