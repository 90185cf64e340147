//! An event from Falco: what its `http_output` posts with `json_output: true`, one row of the
//! `falco` table.
//!
//! Falco has already decided these are alerts (its rules ran on the node); Kestrel stores each
//! one and hands it to alerting. The Kubernetes identity Falco attaches in `output_fields`
//! (`k8s.ns.name`, `k8s.pod.name`, `container.*`) is promoted into columns named as in every
//! other table, so joins read naturally; the whole of `output_fields` stays as JSON.

use serde::{Deserialize, Serialize};

/// One Falco event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FalcoEvent {
    /// Falco's event time, UTC nanoseconds.
    pub time: i64,
    /// The cluster Kestrel watches (from the server's configuration).
    pub cluster: Option<String>,
    /// Falco's `uuid` of the event (Falco 0.38 and later): re-sent events are stored once.
    pub uuid: Option<String>,
    /// The Falco rule that fired.
    pub rule: String,
    /// Falco's priority name: `Emergency`, `Alert`, `Critical`, `Error`, `Warning`, `Notice`,
    /// `Informational`, `Debug`.
    pub priority: Option<String>,
    /// The rule's source: `syscall`, `k8s_audit`, a plugin's source.
    pub source: Option<String>,
    /// The host Falco runs on (in Kubernetes, usually the node's name).
    pub hostname: Option<String>,
    /// The rule's formatted output line.
    pub output: Option<String>,
    /// The rule's tags.
    pub tags: Vec<String>,
    /// `k8s.ns.name` (or `ka.target.namespace` for audit rules).
    pub namespace: Option<String>,
    /// `k8s.pod.name`.
    pub pod: Option<String>,
    /// `container.id`.
    pub container_id: Option<String>,
    /// `container.name`.
    pub container: Option<String>,
    /// `container.image.repository`, with `:container.image.tag` when Falco gives it.
    pub image: Option<String>,
    /// Falco's `output_fields` object as JSON text.
    pub output_fields: Option<String>,
}
