//! Tables fed by the node agent (`container_log`, `ingress`, `dns`, `netflow`, `journal`,
//! `k8s_event`): their schemas and the conversion of an agent's [`IngestBatch`] into one Arrow
//! batch per table.
//!
//! Each schema is derived from the same code that fills it (a batch of no rows), so a schema
//! and its rows can never disagree. Every row repeats its batch's origin — cluster, node, agent,
//! `batch_id` and, for container output, the pod's identity — so SQL needs no joins to say who
//! did what, and `batch_id` is the key that makes a re-sent batch land once.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, RecordBatch,
    StringBuilder, TimestampNanosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use kestrel_event::{
    BatchOrigin, ContainerLog, DnsQuery, IngestBatch, IngressAccess, JournalEntry, K8sEvent,
    NetfilterLog, PodIdentity,
};

use crate::rows::Table;
use crate::schema::time_type;

/// Builds a batch column by column; the schema is the list of columns pushed. Also used by
/// the `falco` table.
pub(crate) struct Columns {
    rows: usize,
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
}

impl Columns {
    pub(crate) fn new(rows: usize) -> Self {
        Columns {
            rows,
            fields: Vec::with_capacity(40),
            arrays: Vec::with_capacity(40),
        }
    }

    fn push(&mut self, name: &str, data_type: DataType, array: ArrayRef) {
        debug_assert_eq!(array.len(), self.rows, "column {name}");
        // Every column nullable: see the `schema` module.
        self.fields.push(Field::new(name, data_type, true));
        self.arrays.push(array);
    }

    pub(crate) fn time(&mut self, name: &str, values: impl Iterator<Item = Option<i64>>) {
        let mut b = TimestampNanosecondBuilder::with_capacity(self.rows).with_timezone("UTC");
        values.for_each(|v| b.append_option(v));
        self.push(name, time_type(), Arc::new(b.finish()));
    }

    pub(crate) fn text<'a>(&mut self, name: &str, values: impl Iterator<Item = Option<&'a str>>) {
        let mut b = StringBuilder::with_capacity(self.rows, self.rows * 16);
        values.for_each(|v| b.append_option(v));
        self.push(name, DataType::Utf8, Arc::new(b.finish()));
    }

    /// A `list<string>` column.
    pub(crate) fn text_list<'a>(&mut self, name: &str, values: impl Iterator<Item = &'a [String]>) {
        let mut b = ListBuilder::with_capacity(StringBuilder::new(), self.rows);
        for vs in values {
            for v in vs {
                b.values().append_value(v);
            }
            b.append(true);
        }
        let array = b.finish();
        let data_type = array.data_type().clone();
        self.push(name, data_type, Arc::new(array));
    }

    /// The same value in every row.
    fn repeated(&mut self, name: &str, value: Option<&str>) {
        let rows = self.rows;
        self.text(name, std::iter::repeat_n(value, rows));
    }

    pub(crate) fn int(&mut self, name: &str, values: impl Iterator<Item = Option<i64>>) {
        let mut b = Int64Builder::with_capacity(self.rows);
        values.for_each(|v| b.append_option(v));
        self.push(name, DataType::Int64, Arc::new(b.finish()));
    }

    fn float(&mut self, name: &str, values: impl Iterator<Item = Option<f64>>) {
        let mut b = Float64Builder::with_capacity(self.rows);
        values.for_each(|v| b.append_option(v));
        self.push(name, DataType::Float64, Arc::new(b.finish()));
    }

    fn boolean(&mut self, name: &str, values: impl Iterator<Item = Option<bool>>) {
        let mut b = BooleanBuilder::with_capacity(self.rows);
        values.for_each(|v| b.append_option(v));
        self.push(name, DataType::Boolean, Arc::new(b.finish()));
    }

    /// The origin columns every agent table starts with, after `time`.
    fn origin(&mut self, batch_id: &str, origin: &BatchOrigin) {
        self.repeated("cluster", origin.cluster.as_deref());
        self.repeated("node", origin.node.as_deref());
        self.repeated("agent", Some(&origin.agent));
        self.repeated("batch_id", Some(batch_id));
    }

    /// The pod identity columns, named alike in every table.
    fn pod(&mut self, pod: Option<&PodIdentity>, file: Option<&str>) {
        let p = |f: fn(&PodIdentity) -> &Option<String>| pod.and_then(|p| f(p).as_deref());
        self.repeated("namespace", p(|p| &p.namespace));
        self.repeated("pod", p(|p| &p.pod));
        self.repeated("pod_uid", p(|p| &p.pod_uid));
        self.repeated("container", p(|p| &p.container));
        self.repeated("image", p(|p| &p.image));
        self.repeated("labels", p(|p| &p.labels));
        self.repeated("owner_kind", p(|p| &p.owner_kind));
        self.repeated("owner_name", p(|p| &p.owner_name));
        self.repeated("service_account", p(|p| &p.service_account));
        self.repeated("file", file);
    }

    pub(crate) fn finish(self) -> RecordBatch {
        let schema = Arc::new(Schema::new(self.fields));
        RecordBatch::try_new(schema, self.arrays).expect("columns built with their own schema")
    }
}

/// Pushes one text column per optional string field, each named after its field.
macro_rules! text_columns {
    ($c:ident, $rows:ident; $($f:ident),* $(,)?) => {
        $( $c.text(stringify!($f), $rows.iter().map(|r| r.$f.as_deref())); )*
    };
}

fn n<T: Copy + Into<i64>>(v: Option<T>) -> Option<i64> {
    v.map(Into::into)
}

fn container_log_batch(id: &str, origin: &BatchOrigin, rows: &[ContainerLog]) -> RecordBatch {
    let mut c = Columns::new(rows.len());
    c.time("time", rows.iter().map(|r| Some(r.time)));
    c.origin(id, origin);
    c.pod(origin.pod.as_ref(), origin.file.as_deref());
    c.text("stream", rows.iter().map(|r| Some(r.stream.as_str())));
    c.text("message", rows.iter().map(|r| Some(r.message.as_str())));
    c.boolean("truncated", rows.iter().map(|r| Some(r.truncated)));
    c.finish()
}

fn ingress_batch(id: &str, origin: &BatchOrigin, rows: &[IngressAccess]) -> RecordBatch {
    let mut c = Columns::new(rows.len());
    c.time("time", rows.iter().map(|r| Some(r.time)));
    c.origin(id, origin);
    c.pod(origin.pod.as_ref(), origin.file.as_deref());
    text_columns!(c, rows; client_ip, remote_user, method, host, path, protocol);
    c.int("status", rows.iter().map(|r| n(r.status)));
    c.int(
        "body_bytes",
        rows.iter().map(|r| r.body_bytes.map(|v| v as i64)),
    );
    text_columns!(c, rows; referer, user_agent);
    c.int(
        "request_bytes",
        rows.iter().map(|r| r.request_bytes.map(|v| v as i64)),
    );
    c.float("request_time", rows.iter().map(|r| r.request_time));
    text_columns!(c, rows;
        upstream_name,
        upstream_alternative,
        upstream_addr,
        upstream_bytes,
        upstream_time,
        upstream_status,
        request_id,
        fields
    );
    c.finish()
}

fn dns_batch(id: &str, origin: &BatchOrigin, rows: &[DnsQuery]) -> RecordBatch {
    let mut c = Columns::new(rows.len());
    c.time("time", rows.iter().map(|r| Some(r.time)));
    c.origin(id, origin);
    c.pod(origin.pod.as_ref(), origin.file.as_deref());
    c.text("client_ip", rows.iter().map(|r| r.client_ip.as_deref()));
    c.int("client_port", rows.iter().map(|r| n(r.client_port)));
    c.int("query_id", rows.iter().map(|r| n(r.query_id)));
    text_columns!(c, rows; query_type, query_class, query_name, protocol);
    c.int("request_bytes", rows.iter().map(|r| n(r.request_bytes)));
    c.boolean("dnssec_ok", rows.iter().map(|r| r.dnssec_ok));
    c.int("buffer_size", rows.iter().map(|r| n(r.buffer_size)));
    text_columns!(c, rows; rcode, response_flags);
    c.int("response_bytes", rows.iter().map(|r| n(r.response_bytes)));
    c.int("duration_ns", rows.iter().map(|r| r.duration_ns));
    c.finish()
}

fn netflow_batch(id: &str, origin: &BatchOrigin, rows: &[NetfilterLog]) -> RecordBatch {
    let mut c = Columns::new(rows.len());
    c.time("time", rows.iter().map(|r| Some(r.time)));
    c.origin(id, origin);
    text_columns!(c, rows;
        prefix,
        in_interface,
        out_interface,
        mac,
        src_ip,
        dst_ip,
        protocol
    );
    c.int("src_port", rows.iter().map(|r| n(r.src_port)));
    c.int("dst_port", rows.iter().map(|r| n(r.dst_port)));
    c.int("length", rows.iter().map(|r| n(r.length)));
    c.int("ttl", rows.iter().map(|r| n(r.ttl)));
    text_columns!(c, rows; tcp_flags);
    c.text("raw", rows.iter().map(|r| Some(r.raw.as_str())));
    c.finish()
}

fn journal_batch(id: &str, origin: &BatchOrigin, rows: &[JournalEntry]) -> RecordBatch {
    let mut c = Columns::new(rows.len());
    c.time("time", rows.iter().map(|r| Some(r.time)));
    c.origin(id, origin);
    text_columns!(c, rows; unit, identifier, message);
    c.int("priority", rows.iter().map(|r| n(r.priority)));
    c.int("pid", rows.iter().map(|r| n(r.pid)));
    text_columns!(c, rows; hostname, boot_id, cursor, fields);
    c.finish()
}

fn k8s_event_batch(id: &str, origin: &BatchOrigin, rows: &[K8sEvent]) -> RecordBatch {
    let mut c = Columns::new(rows.len());
    c.time("time", rows.iter().map(|r| Some(r.time)));
    c.origin(id, origin);
    text_columns!(c, rows;
        namespace,
        name,
        uid,
        event_type,
        reason,
        note,
        action,
        reporting_controller,
        reporting_instance,
        regarding_kind,
        regarding_namespace,
        regarding_name,
        regarding_uid,
        regarding_field_path
    );
    c.int("count", rows.iter().map(|r| n(r.count)));
    text_columns!(c, rows; resource_version);
    c.finish()
}

/// The schema of an agent-fed table; `None` for the other tables.
pub(crate) fn schema(table: Table) -> Option<SchemaRef> {
    static SCHEMAS: OnceLock<Vec<(Table, SchemaRef)>> = OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            let empty = IngestBatch::default();
            let o = &empty.origin;
            [
                (Table::ContainerLog, container_log_batch("", o, &[])),
                (Table::Ingress, ingress_batch("", o, &[])),
                (Table::Dns, dns_batch("", o, &[])),
                (Table::Netflow, netflow_batch("", o, &[])),
                (Table::Journal, journal_batch("", o, &[])),
                (Table::K8sEvent, k8s_event_batch("", o, &[])),
            ]
            .into_iter()
            .map(|(t, b)| (t, b.schema()))
            .collect()
        })
        .iter()
        .find(|(t, _)| *t == table)
        .map(|(_, s)| Arc::clone(s))
}

/// The agent batch's records as one Arrow batch per table that has rows. Audit lines and dead
/// letters are not included: the server runs them through its audit pipeline.
pub fn ingest_batches(batch: &IngestBatch) -> Vec<(Table, RecordBatch)> {
    let (id, o) = (batch.id.as_str(), &batch.origin);
    let mut out = Vec::new();
    if !batch.container_logs.is_empty() {
        out.push((
            Table::ContainerLog,
            container_log_batch(id, o, &batch.container_logs),
        ));
    }
    if !batch.ingress.is_empty() {
        out.push((Table::Ingress, ingress_batch(id, o, &batch.ingress)));
    }
    if !batch.dns.is_empty() {
        out.push((Table::Dns, dns_batch(id, o, &batch.dns)));
    }
    if !batch.netflow.is_empty() {
        out.push((Table::Netflow, netflow_batch(id, o, &batch.netflow)));
    }
    if !batch.journal.is_empty() {
        out.push((Table::Journal, journal_batch(id, o, &batch.journal)));
    }
    if !batch.k8s_events.is_empty() {
        out.push((Table::K8sEvent, k8s_event_batch(id, o, &batch.k8s_events)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_event::LogStream;

    #[test]
    fn schemas_match_the_batches_built_from_rows() {
        let batch = IngestBatch {
            id: "b1".into(),
            origin: BatchOrigin {
                agent: "node-1".into(),
                pod: Some(PodIdentity {
                    namespace: Some("shop".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            container_logs: vec![ContainerLog {
                time: 1,
                stream: LogStream::Stderr,
                message: "boom".into(),
                truncated: false,
            }],
            ingress: vec![IngressAccess::default()],
            dns: vec![DnsQuery::default()],
            netflow: vec![NetfilterLog::default()],
            journal: vec![JournalEntry::default()],
            k8s_events: vec![K8sEvent::default()],
            ..Default::default()
        };
        let batches = ingest_batches(&batch);
        assert_eq!(batches.len(), 6);
        for (table, b) in batches {
            let schema = schema(table).unwrap();
            assert_eq!(b.schema(), schema, "{table:?}");
            assert!(schema.fields().iter().all(|f| f.is_nullable()));
            assert_eq!(schema.field(0).name(), "time");
            assert!(schema.field_with_name("batch_id").is_ok());
        }
    }
}
