//! Kestrel's event model: one typed record per source, and the names of their columns.
//!
//! Architecture invariant: this crate does no I/O, starts no runtime and knows nothing about
//! storage; it depends on `serde`, `serde_json` and `chrono` only. Everything above it (parsers,
//! rules, store, server) speaks these types.

pub mod audit;
pub mod dead_letter;
pub mod falco;
pub mod ingest;
pub mod records;
pub mod time;

pub use audit::{
    AuditEvent, AuditRecord, ObjectReference, ResponseStatus, UserInfo, AUDIT_API_VERSION_V1,
    AUDIT_API_VERSION_V1BETA1,
};
pub use dead_letter::DeadLetter;
pub use falco::FalcoEvent;
pub use ingest::{batch_id, BatchOrigin, IngestBatch, PodIdentity, INGEST_FORMAT_VERSION};
pub use records::{
    ContainerLog, DnsQuery, IngressAccess, JournalEntry, K8sEvent, LogStream, NetfilterLog,
};
