//! The events rules run on: one [`Source`] per Kestrel table (Falco's `k8s_audit` reads the
//! `audit` table), an [`Event`] that borrows one record of any source with the origin of its
//! batch, and [`OwnedEvent`], the same built from a table row as JSON (what `kestrel query`
//! prints and what rule tests write), so offline runs and tests read every source alike.

use std::fmt;

use kestrel_event::{
    AuditEvent, BatchOrigin, ContainerLog, DnsQuery, IngressAccess, JournalEntry, K8sEvent,
    NetfilterLog, PodIdentity,
};
use serde_json::{Map, Value};

/// An event source: what a rule's `source` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Kubernetes audit events (Falco's source name; the `audit` table).
    K8sAudit,
    ContainerLog,
    Ingress,
    Dns,
    Netflow,
    Journal,
    K8sEvent,
}

impl Source {
    /// Every source, in the order of [`Source::index`].
    pub const ALL: [Source; 7] = [
        Source::K8sAudit,
        Source::ContainerLog,
        Source::Ingress,
        Source::Dns,
        Source::Netflow,
        Source::Journal,
        Source::K8sEvent,
    ];

    /// The name a rule's `source` uses.
    pub fn name(self) -> &'static str {
        match self {
            Source::K8sAudit => "k8s_audit",
            Source::ContainerLog => "container_log",
            Source::Ingress => "ingress",
            Source::Dns => "dns",
            Source::Netflow => "netflow",
            Source::Journal => "journal",
            Source::K8sEvent => "k8s_event",
        }
    }

    /// The table holding the source's events.
    pub fn table(self) -> &'static str {
        match self {
            Source::K8sAudit => "audit",
            other => other.name(),
        }
    }

    /// The source a rule's `source` (or a table name) names; `None` for sources Kestrel does
    /// not evaluate (such as Falco's `syscall`).
    pub fn from_name(name: &str) -> Option<Source> {
        if name == "audit" {
            return Some(Source::K8sAudit);
        }
        Source::ALL.into_iter().find(|s| s.name() == name)
    }

    /// A dense index, for per-source tables.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether rows of this source carry the identity of the pod that wrote them.
    pub fn has_pod_identity(self) -> bool {
        matches!(self, Source::ContainerLog | Source::Ingress | Source::Dns)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of sources (a bit per [`Source::index`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SourceSet(u8);

impl SourceSet {
    pub const ALL: SourceSet = SourceSet(0x7f);
    pub const NONE: SourceSet = SourceSet(0);

    pub const fn of(s: Source) -> SourceSet {
        SourceSet(1 << s.index())
    }

    pub const fn with(self, s: Source) -> SourceSet {
        SourceSet(self.0 | 1 << s.index())
    }

    pub const fn without(self, s: Source) -> SourceSet {
        SourceSet(self.0 & !(1 << s.index()))
    }

    pub const fn union(self, other: SourceSet) -> SourceSet {
        SourceSet(self.0 | other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, s: Source) -> bool {
        self.0 & (1 << s.index()) != 0
    }

    pub fn intersects(self, other: SourceSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Source> {
        Source::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl fmt::Display for SourceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Source::name).collect();
        f.write_str(&names.join(", "))
    }
}

/// One event of any source, borrowed. Records of the agent's sources come with the origin of
/// their batch (node, cluster and, for container output, the pod's identity), when known.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    Audit(&'a AuditEvent),
    ContainerLog(&'a ContainerLog, Option<&'a BatchOrigin>),
    Ingress(&'a IngressAccess, Option<&'a BatchOrigin>),
    Dns(&'a DnsQuery, Option<&'a BatchOrigin>),
    Netflow(&'a NetfilterLog, Option<&'a BatchOrigin>),
    Journal(&'a JournalEntry, Option<&'a BatchOrigin>),
    K8sEvent(&'a K8sEvent, Option<&'a BatchOrigin>),
}

impl<'a> Event<'a> {
    pub fn source(&self) -> Source {
        match self {
            Event::Audit(_) => Source::K8sAudit,
            Event::ContainerLog(..) => Source::ContainerLog,
            Event::Ingress(..) => Source::Ingress,
            Event::Dns(..) => Source::Dns,
            Event::Netflow(..) => Source::Netflow,
            Event::Journal(..) => Source::Journal,
            Event::K8sEvent(..) => Source::K8sEvent,
        }
    }

    /// The event's time in UTC nanoseconds (an audit event's `stageTimestamp`, else its
    /// `requestReceivedTimestamp`); `None` when it has none.
    pub fn time(&self) -> Option<i64> {
        let t = match self {
            Event::Audit(e) => return e.event_time().map(kestrel_event::time::to_nanos),
            Event::ContainerLog(r, _) => r.time,
            Event::Ingress(r, _) => r.time,
            Event::Dns(r, _) => r.time,
            Event::Netflow(r, _) => r.time,
            Event::Journal(r, _) => r.time,
            Event::K8sEvent(r, _) => r.time,
        };
        (t != 0).then_some(t)
    }

    /// Where the record's batch came from (never for audit events).
    pub fn origin(&self) -> Option<&'a BatchOrigin> {
        match *self {
            Event::Audit(_) => None,
            Event::ContainerLog(_, o)
            | Event::Ingress(_, o)
            | Event::Dns(_, o)
            | Event::Netflow(_, o)
            | Event::Journal(_, o)
            | Event::K8sEvent(_, o) => o,
        }
    }

    /// The identity of the pod that wrote the record, for sources that have one.
    pub fn pod(&self) -> Option<&'a PodIdentity> {
        if self.source().has_pod_identity() {
            self.origin().and_then(|o| o.pod.as_ref())
        } else {
            None
        }
    }
}

/// One event of any source, owned: read from JSON by [`OwnedEvent::from_json`].
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedEvent {
    Audit(Box<AuditEvent>),
    ContainerLog(ContainerLog, BatchOrigin),
    Ingress(IngressAccess, BatchOrigin),
    Dns(DnsQuery, BatchOrigin),
    Netflow(NetfilterLog, BatchOrigin),
    Journal(JournalEntry, BatchOrigin),
    K8sEvent(K8sEvent, BatchOrigin),
}

/// Columns of a table row that belong to the batch's origin, not to the record.
const ORIGIN_COLUMNS: &[&str] = &["cluster", "node", "agent", "batch_id", "file"];
/// Columns of the pod identity, in the tables that have them.
const POD_COLUMNS: &[&str] = &[
    "namespace",
    "pod",
    "pod_uid",
    "container",
    "image",
    "labels",
    "owner_kind",
    "owner_name",
    "service_account",
];

impl OwnedEvent {
    pub fn as_event(&self) -> Event<'_> {
        match self {
            OwnedEvent::Audit(e) => Event::Audit(e),
            OwnedEvent::ContainerLog(r, o) => Event::ContainerLog(r, Some(o)),
            OwnedEvent::Ingress(r, o) => Event::Ingress(r, Some(o)),
            OwnedEvent::Dns(r, o) => Event::Dns(r, Some(o)),
            OwnedEvent::Netflow(r, o) => Event::Netflow(r, Some(o)),
            OwnedEvent::Journal(r, o) => Event::Journal(r, Some(o)),
            OwnedEvent::K8sEvent(r, o) => Event::K8sEvent(r, Some(o)),
        }
    }

    /// An event of `source` from JSON: an audit event as the API server writes it, or a row of
    /// the source's table as `kestrel query --format json` prints it (column names as keys;
    /// `time` as RFC 3339 text or UTC nanoseconds; `null` for missing values; `labels` and
    /// `fields` as JSON text or as objects). The row's origin and pod identity columns
    /// (`cluster`, `node`, `namespace`, `pod`, `container`, `image`, `labels`, ...) become the
    /// event's origin.
    pub fn from_json(source: Source, value: Value) -> Result<OwnedEvent, String> {
        if source == Source::K8sAudit {
            return serde_json::from_value(value)
                .map(|e| OwnedEvent::Audit(Box::new(e)))
                .map_err(|e| format!("not an audit event: {e}"));
        }
        let Value::Object(mut row) = value else {
            return Err(format!("a {source} event must be a JSON object"));
        };
        row.retain(|_, v| !v.is_null());
        if let Some(t) = row.get("time") {
            let nanos = time_nanos(t)?;
            row.insert("time".into(), Value::from(nanos));
        } else {
            row.insert("time".into(), Value::from(0));
        }
        for key in ["labels", "fields"] {
            if let Some(v @ Value::Object(_)) = row.get(key) {
                let text = v.to_string();
                row.insert(key.into(), Value::String(text));
            }
        }
        let origin = origin_of(source, &mut row);
        let bad = |e: serde_json::Error| format!("not a {source} row: {e}");
        Ok(match source {
            Source::K8sAudit => unreachable!("handled above"),
            Source::ContainerLog => {
                row.entry("stream").or_insert_with(|| "stdout".into());
                row.entry("message").or_insert_with(|| "".into());
                OwnedEvent::ContainerLog(from_row(row).map_err(bad)?, origin)
            }
            Source::Ingress => OwnedEvent::Ingress(from_row(row).map_err(bad)?, origin),
            Source::Dns => OwnedEvent::Dns(from_row(row).map_err(bad)?, origin),
            Source::Netflow => {
                row.entry("raw").or_insert_with(|| "".into());
                OwnedEvent::Netflow(from_row(row).map_err(bad)?, origin)
            }
            Source::Journal => OwnedEvent::Journal(from_row(row).map_err(bad)?, origin),
            Source::K8sEvent => OwnedEvent::K8sEvent(from_row(row).map_err(bad)?, origin),
        })
    }
}

fn from_row<T: serde::de::DeserializeOwned>(row: Map<String, Value>) -> serde_json::Result<T> {
    serde_json::from_value(Value::Object(row))
}

fn time_nanos(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("`time` {n} is not nanoseconds since the epoch")),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| kestrel_event::time::to_nanos(t.to_utc()))
            .map_err(|_| format!("`time` {s:?} is not an RFC 3339 time")),
        other => Err(format!(
            "`time` {other} is neither RFC 3339 text nor nanoseconds"
        )),
    }
}

/// Takes the origin columns out of a row (the pod's columns only where the table has them).
fn origin_of(source: Source, row: &mut Map<String, Value>) -> BatchOrigin {
    let mut take = |k: &str| match row.remove(k) {
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
        None => None,
    };
    let mut o = BatchOrigin {
        cluster: take(ORIGIN_COLUMNS[0]),
        node: take(ORIGIN_COLUMNS[1]),
        agent: take(ORIGIN_COLUMNS[2]).unwrap_or_default(),
        ..Default::default()
    };
    take(ORIGIN_COLUMNS[3]);
    o.file = take(ORIGIN_COLUMNS[4]);
    if source.has_pod_identity() {
        let mut p: Vec<Option<String>> = POD_COLUMNS.iter().map(|k| take(k)).collect();
        let mut next = || p.remove(0);
        let pod = PodIdentity {
            namespace: next(),
            pod: next(),
            pod_uid: next(),
            container: next(),
            image: next(),
            labels: next(),
            owner_kind: next(),
            owner_name: next(),
            service_account: next(),
        };
        if pod != PodIdentity::default() {
            o.pod = Some(pod);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_round_trip_and_audit_is_an_alias() {
        for s in Source::ALL {
            assert_eq!(Source::from_name(s.name()), Some(s));
            assert_eq!(Source::from_name(s.table()), Some(s));
        }
        assert_eq!(Source::from_name("syscall"), None);
        let set = SourceSet::of(Source::Dns).with(Source::K8sAudit);
        assert_eq!(set.to_string(), "k8s_audit, dns");
        assert!(!set.contains(Source::Ingress));
    }

    #[test]
    fn rows_become_records_with_their_origin() {
        let row = json!({"time": "2026-11-20T09:00:01Z", "cluster": "prod", "node": "node-b",
            "agent": "node-b", "batch_id": "x", "namespace": "shop", "pod": "web-1",
            "container": "web", "image": "shop/web:1.4", "labels": {"app": "web"},
            "owner_kind": null, "stream": "stderr", "message": "boom", "truncated": null});
        let e = OwnedEvent::from_json(Source::ContainerLog, row).unwrap();
        let OwnedEvent::ContainerLog(r, o) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(r.message, "boom");
        assert_eq!(r.time, 1_795_165_201_000_000_000);
        assert_eq!(o.node.as_deref(), Some("node-b"));
        let pod = o.pod.as_ref().unwrap();
        assert_eq!(pod.namespace.as_deref(), Some("shop"));
        assert_eq!(pod.labels.as_deref(), Some(r#"{"app":"web"}"#));
        assert_eq!(e.as_event().time(), Some(1_795_165_201_000_000_000));

        // A Kubernetes event's `namespace` is its own column, not a pod's.
        let e = OwnedEvent::from_json(
            Source::K8sEvent,
            json!({"time": 5, "namespace": "shop", "reason": "BackOff"}),
        )
        .unwrap();
        let OwnedEvent::K8sEvent(r, o) = e else {
            panic!()
        };
        assert_eq!(r.namespace.as_deref(), Some("shop"));
        assert!(o.pod.is_none());

        let err = OwnedEvent::from_json(Source::Dns, json!({"time": "yesterday"})).unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
        let err = OwnedEvent::from_json(Source::Dns, json!({"client_port": "x"})).unwrap_err();
        assert!(err.contains("not a dns row"), "{err}");
    }
}
