//! Pure parsers for Kestrel: bytes in, typed records and dead letters out.
//!
//! Architecture invariant: no I/O, no async runtime, no storage; everything here is a function of
//! its input (and of the `now_nanos` the caller passes), so it can be unit-tested, fuzzed
//! (`fuzz/` at the workspace root) and benchmarked in isolation.
//!
//! ```text
//! webhook body ──► parse_event_list ─┐                       ┌─► events (redacted)
//!                                    ├─► per item/line parse ┤
//! audit log     ──► parse_json_lines ┘                       └─► dead letters (redacted, cut)
//! ```
//!
//! The node agent's sources, one module per format, each line to one record, `Ok(None)` for a
//! line that is not a record of that source, or a typed error saying what is wrong and where:
//!
//! ```text
//! CRI line    ──► parse_cri ────┐                                   ┌─► ContainerLog
//! docker line ──► parse_docker ─┴─► PartialMerger ─► MultilineJoiner ┘   (borrowed until asked)
//! ingress line ─► IngressFormat::parse ──► IngressAccess
//! CoreDNS line ─► parse_coredns ─────────► DnsQuery
//! kmsg / kern.log ─► parse_kmsg / parse_kern_log ─► parse_packet ─► NetfilterLog
//! journalctl -o json ─► parse_journal ───► JournalEntry
//! Event JSON ──► parse_k8s_event ────────► K8sEvent
//! log path ───► parse_pod_log_path ──────► PodLogPath (namespace, pod, uid, container)
//! ```

pub mod audit;
pub mod coredns;
pub mod cri;
pub mod docker;
pub mod error;
pub mod falco;
pub mod ingress_nginx;
pub mod journal;
pub mod k8s_event;
pub mod merge;
pub mod multiline;
pub mod netfilter;
pub mod pod_path;
pub mod redact;
mod scan;
#[cfg(test)]
mod testdata;
pub mod timestamp;

pub use audit::{
    dead_letter_for_body, parse_event_list, parse_json_lines, AuditParseConfig, ParsedBatch,
    RedactConfig, REQUIRED_FIELDS, TRUNCATED_MARKER,
};
pub use coredns::{parse_coredns, CorednsError};
pub use cri::{parse_cri, CriError, CriLine};
pub use docker::{parse_docker, DockerError, DockerLine};
pub use error::BodyError;
pub use falco::{parse_falco_body, ParsedFalco};
pub use ingress_nginx::{
    parse_ingress_default, FormatError, IngressError, IngressFormat, DEFAULT_INGRESS_FORMAT,
};
pub use journal::{parse_journal, JournalError};
pub use k8s_event::{parse_k8s_event, K8sEventError};
pub use merge::{MergeStats, MergedLine, PartialMerger};
pub use multiline::{MultilineError, MultilineJoiner, MultilineStats};
pub use netfilter::{
    parse_kern_log, parse_kmsg, parse_packet, KernLogLine, KmsgRecord, NetfilterError,
};
pub use pod_path::{parse_pod_log_path, PodLogPath, PodPathError};
pub use redact::{redact_event, redact_lexical, redact_value, REDACTED};
pub use timestamp::{parse_rfc3339_nanos, TimestampError};
