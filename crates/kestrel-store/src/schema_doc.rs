//! The table reference page (`docs/schema.md`), generated from the schemas themselves plus a
//! description of each column. A test fails when a column has no description, a description
//! names a column that does not exist, or the committed page is stale.
//!
//! Column names are SQL-friendly snake_case; where an OpenTelemetry semantic convention names
//! the same thing, the page gives that attribute name beside the column.

use std::fmt::Write;

use crate::parquet_files::{BLOOM_COLUMNS, ROW_GROUP_ROWS};
use crate::schema::sql_type_name;
use crate::Table;

/// One column's documentation.
#[derive(Debug, Clone, Copy)]
pub struct ColumnDoc {
    /// The OpenTelemetry semantic-convention attribute of the same meaning, if there is one.
    pub otel: Option<&'static str>,
    pub description: &'static str,
}

const fn doc(otel: Option<&'static str>, description: &'static str) -> ColumnDoc {
    ColumnDoc { otel, description }
}

/// Columns with the same meaning in every table that has them (agent origin, pod identity).
/// A table-specific entry wins over these.
const COMMON: &[(&str, ColumnDoc)] = &[
    ("time", doc(None, "When it happened (UTC, nanoseconds); rows are sorted by it and files are partitioned by its date and hour.")),
    ("cluster", doc(Some("k8s.cluster.name"), "The cluster, as configured on the server or the agent.")),
    ("node", doc(Some("k8s.node.name"), "The node whose agent read the record.")),
    ("agent", doc(Some("service.instance.id"), "The agent that shipped the record.")),
    ("batch_id", doc(None, "Identity of the agent batch the row came in (a hash of agent, input, file and byte range); a re-sent batch is stored once.")),
    ("namespace", doc(Some("k8s.namespace.name"), "Namespace of the pod that wrote the record.")),
    ("pod", doc(Some("k8s.pod.name"), "Pod name, from the log file's path.")),
    ("pod_uid", doc(Some("k8s.pod.uid"), "Pod UID, from the log file's path.")),
    ("container", doc(Some("k8s.container.name"), "Container name, from the log file's path.")),
    ("image", doc(Some("container.image.name"), "Container image, from the pod watch (null without API access).")),
    ("labels", doc(None, "Pod labels as a JSON object, from the pod watch.")),
    ("owner_kind", doc(None, "Kind of the pod's top owner (Deployment, CronJob, DaemonSet, StatefulSet, ...).")),
    ("owner_name", doc(Some("k8s.deployment.name etc."), "Name of the pod's top owner.")),
    ("service_account", doc(None, "The pod's service account.")),
    ("file", doc(Some("log.file.path"), "The file the line was read from.")),
];

const AUDIT: &[(&str, ColumnDoc)] = &[
    ("time", doc(None, "`stageTimestamp`: when the event reached its stage.")),
    ("request_received_time", doc(None, "`requestReceivedTimestamp`.")),
    ("cluster", doc(Some("k8s.cluster.name"), "The cluster, as configured on the server.")),
    ("audit_id", doc(None, "`auditID`, unique per request; with `stage`, the identity used to drop re-sent events.")),
    ("stage", doc(None, "RequestReceived, ResponseStarted, ResponseComplete or Panic.")),
    ("level", doc(None, "Metadata, Request or RequestResponse.")),
    ("api_version", doc(None, "Version of the audit event format (`audit.k8s.io/v1`).")),
    ("verb", doc(None, "get, list, watch, create, update, patch, delete, deletecollection, ...")),
    ("request_uri", doc(Some("url.path"), "The request URI with its query string.")),
    ("user_name", doc(Some("user.name"), "The authenticated user.")),
    ("user_uid", doc(Some("user.id"), "The authenticated user's UID.")),
    ("user_groups", doc(None, "The authenticated user's groups.")),
    ("user_extra", doc(None, "The user's extra attributes as JSON (for service account tokens: the pod and node they were issued to).")),
    ("impersonated_user_name", doc(None, "The impersonated user, when the request impersonated one.")),
    ("impersonated_user_groups", doc(None, "The impersonated user's groups.")),
    ("source_ip", doc(Some("client.address"), "The first of `sourceIPs`: the client.")),
    ("source_ips", doc(None, "Every address of the request's path (X-Forwarded-For, then the peer).")),
    ("user_agent", doc(Some("user_agent.original"), "The client's user agent.")),
    ("resource", doc(None, "`objectRef.resource` (pods, secrets, clusterrolebindings, ...).")),
    ("subresource", doc(None, "`objectRef.subresource` (exec, attach, log, status, ...).")),
    ("namespace", doc(Some("k8s.namespace.name"), "`objectRef.namespace`: the namespace of the object acted on.")),
    ("name", doc(None, "`objectRef.name`: the object acted on.")),
    ("object_uid", doc(None, "`objectRef.uid`.")),
    ("api_group", doc(None, "`objectRef.apiGroup` (empty for the core group).")),
    ("object_api_version", doc(None, "`objectRef.apiVersion`.")),
    ("resource_version", doc(None, "`objectRef.resourceVersion`.")),
    ("response_code", doc(Some("http.response.status_code"), "HTTP status of the response.")),
    ("response_status", doc(None, "`responseStatus.status` (Success, Failure).")),
    ("response_reason", doc(None, "`responseStatus.reason` (Forbidden, NotFound, ...).")),
    ("response_message", doc(None, "`responseStatus.message`.")),
    ("authorization_decision", doc(None, "The `authorization.k8s.io/decision` annotation: allow or forbid.")),
    ("authorization_reason", doc(None, "The `authorization.k8s.io/reason` annotation: the RBAC rule that decided.")),
    ("annotations", doc(None, "Every annotation of the event, as a JSON object.")),
    ("request_object", doc(None, "The request body as JSON (level Request and above), with Secret values and tokens redacted.")),
    ("response_object", doc(None, "The response body as JSON (level RequestResponse), with Secret values and tokens redacted.")),
];

const DEAD_LETTER: &[(&str, ColumnDoc)] = &[
    ("time", doc(None, "When the input arrived.")),
    ("source", doc(None, "The input it came from (`audit_webhook`, `agent`, `audit_file`, ...).")),
    ("kind", doc(None, "What was wrong: an unreadable body, an item that is not an event, an event too large, ...")),
    ("reason", doc(None, "The parser's message.")),
    ("location", doc(None, "Where in the input (item index, byte offset, file and line).")),
    ("size_bytes", doc(None, "Size of the rejected input.")),
    ("payload", doc(None, "The input itself, redacted, cut to a bounded size: kept for a human to inspect and replay.")),
];

const CONTAINER_LOG: &[(&str, ColumnDoc)] = &[
    ("stream", doc(Some("log.iostream"), "stdout or stderr.")),
    ("message", doc(Some("body"), "The line, with CRI partial lines joined; JSON messages stay text (query them with json functions).")),
    ("truncated", doc(None, "True when the line was longer than the agent's `max_line_bytes` and was cut.")),
];

const INGRESS: &[(&str, ColumnDoc)] = &[
    (
        "client_ip",
        doc(
            Some("client.address"),
            "`$remote_addr`: the client (or the last proxy).",
        ),
    ),
    ("remote_user", doc(None, "`$remote_user` from basic auth.")),
    ("method", doc(Some("http.request.method"), "HTTP method.")),
    (
        "host",
        doc(
            Some("server.address"),
            "`$host`: the requested host (from the default format's upstream name when absent).",
        ),
    ),
    (
        "path",
        doc(Some("url.path"), "Request path with query string."),
    ),
    (
        "protocol",
        doc(Some("network.protocol.version"), "HTTP/1.1, HTTP/2.0, ..."),
    ),
    (
        "status",
        doc(Some("http.response.status_code"), "Response status."),
    ),
    (
        "body_bytes",
        doc(Some("http.response.body.size"), "`$body_bytes_sent`."),
    ),
    ("referer", doc(None, "`$http_referer`.")),
    (
        "user_agent",
        doc(Some("user_agent.original"), "`$http_user_agent`."),
    ),
    (
        "request_bytes",
        doc(Some("http.request.size"), "`$request_length`."),
    ),
    ("request_time", doc(None, "`$request_time` in seconds.")),
    (
        "upstream_name",
        doc(
            None,
            "`$proxy_upstream_name`: namespace-service-port of the backend.",
        ),
    ),
    (
        "upstream_alternative",
        doc(None, "`$proxy_alternative_upstream_name` (canary)."),
    ),
    (
        "upstream_addr",
        doc(None, "`$upstream_addr`: the pod(s) that answered."),
    ),
    (
        "upstream_bytes",
        doc(
            None,
            "`$upstream_response_length` (one value per upstream tried).",
        ),
    ),
    (
        "upstream_time",
        doc(
            None,
            "`$upstream_response_time` (one value per upstream tried).",
        ),
    ),
    (
        "upstream_status",
        doc(None, "`$upstream_status` (one value per upstream tried)."),
    ),
    ("request_id", doc(None, "`$req_id`.")),
    (
        "fields",
        doc(
            None,
            "Variables of a configured custom log format that have no column, as a JSON object.",
        ),
    ),
];

const DNS: &[(&str, ColumnDoc)] = &[
    (
        "client_ip",
        doc(
            Some("client.address"),
            "The querying client (usually a pod IP).",
        ),
    ),
    (
        "client_port",
        doc(Some("client.port"), "The client's source port."),
    ),
    ("query_id", doc(None, "DNS message ID.")),
    ("query_type", doc(None, "A, AAAA, SRV, TXT, ...")),
    ("query_class", doc(None, "Usually IN.")),
    (
        "query_name",
        doc(None, "The name asked for, with its trailing dot."),
    ),
    ("protocol", doc(Some("network.transport"), "udp or tcp.")),
    ("request_bytes", doc(None, "Size of the query.")),
    ("dnssec_ok", doc(None, "The DO bit.")),
    (
        "buffer_size",
        doc(None, "EDNS buffer size advertised by the client."),
    ),
    (
        "rcode",
        doc(None, "NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ..."),
    ),
    (
        "response_flags",
        doc(None, "Header flags of the answer (qr, aa, rd, ra, ...)."),
    ),
    ("response_bytes", doc(None, "Size of the answer.")),
    (
        "duration_ns",
        doc(None, "Time CoreDNS took to answer, in nanoseconds."),
    ),
];

const NETFLOW: &[(&str, ColumnDoc)] = &[
    (
        "prefix",
        doc(
            None,
            "The log prefix (for Calico: the policy action and name, e.g. `calico-packet: `).",
        ),
    ),
    ("in_interface", doc(None, "`IN=`: the receiving interface.")),
    ("out_interface", doc(None, "`OUT=`: the sending interface.")),
    ("mac", doc(None, "`MAC=`: destination, source and type.")),
    ("src_ip", doc(Some("source.address"), "`SRC=`.")),
    ("dst_ip", doc(Some("destination.address"), "`DST=`.")),
    (
        "protocol",
        doc(Some("network.transport"), "`PROTO=` (TCP, UDP, ICMP, ...)."),
    ),
    ("src_port", doc(Some("source.port"), "`SPT=`.")),
    ("dst_port", doc(Some("destination.port"), "`DPT=`.")),
    ("length", doc(None, "`LEN=`: packet length.")),
    ("ttl", doc(None, "`TTL=`.")),
    ("tcp_flags", doc(None, "TCP flags (SYN, ACK, ...).")),
    ("raw", doc(None, "The kernel line as read.")),
];

const JOURNAL: &[(&str, ColumnDoc)] = &[
    (
        "unit",
        doc(
            None,
            "`_SYSTEMD_UNIT` (kubelet.service, containerd.service, ...).",
        ),
    ),
    (
        "identifier",
        doc(Some("process.executable.name"), "`SYSLOG_IDENTIFIER`."),
    ),
    ("message", doc(Some("body"), "`MESSAGE`.")),
    (
        "priority",
        doc(
            Some("log.record.severity_number"),
            "`PRIORITY`, syslog severity 0 (emerg) to 7 (debug).",
        ),
    ),
    ("pid", doc(Some("process.pid"), "`_PID`.")),
    ("hostname", doc(Some("host.name"), "`_HOSTNAME`.")),
    ("boot_id", doc(None, "`_BOOT_ID`.")),
    (
        "cursor",
        doc(
            None,
            "`__CURSOR`: the entry's position in the journal, the agent's checkpoint.",
        ),
    ),
    (
        "fields",
        doc(None, "Every other journal field, as a JSON object."),
    ),
];

const FALCO: &[(&str, ColumnDoc)] = &[
    ("time", doc(None, "Falco's event time (UTC, nanoseconds); rows are sorted by it and files are partitioned by its date and hour.")),
    ("cluster", doc(Some("k8s.cluster.name"), "The cluster, as configured on the server.")),
    ("hostname", doc(Some("host.name"), "The host Falco runs on (in Kubernetes, usually the node's name).")),
    ("uuid", doc(Some("event.id"), "Falco's id of the event; a re-sent event is stored once.")),
    ("rule", doc(Some("rule.name"), "The Falco rule that fired.")),
    ("priority", doc(None, "Falco's priority: Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug.")),
    ("source", doc(None, "The rule's source: syscall, k8s_audit, or a plugin's.")),
    ("output", doc(None, "The rule's formatted output line.")),
    ("tags", doc(None, "The rule's tags.")),
    ("namespace", doc(Some("k8s.namespace.name"), "`k8s.ns.name` of the output fields (or `ka.target.namespace` for audit rules).")),
    ("pod", doc(Some("k8s.pod.name"), "`k8s.pod.name` of the output fields.")),
    ("container_id", doc(Some("container.id"), "`container.id` of the output fields (null for the host).")),
    ("container", doc(Some("k8s.container.name"), "`container.name` of the output fields.")),
    ("image", doc(Some("container.image.name"), "`container.image.repository`, with `:tag` when Falco gives it.")),
    ("output_fields", doc(None, "All of Falco's output fields, as a JSON object.")),
];

const K8S_EVENT: &[(&str, ColumnDoc)] = &[
    ("time", doc(None, "`eventTime`, else `series.lastObservedTime`, `deprecatedLastTimestamp` or the creation time.")),
    ("node", doc(Some("k8s.node.name"), "The node of the cluster-mode agent that watched the event.")),
    ("namespace", doc(Some("k8s.namespace.name"), "The Event object's namespace.")),
    ("name", doc(None, "The Event object's name.")),
    ("uid", doc(None, "The Event object's UID.")),
    ("event_type", doc(None, "Normal or Warning.")),
    ("reason", doc(None, "Why: BackOff, FailedMount, Killing, Scheduled, ...")),
    ("note", doc(None, "The human-readable message.")),
    ("action", doc(None, "What was done or failed.")),
    ("reporting_controller", doc(None, "The component that reported it (kubelet, default-scheduler, ...).")),
    ("reporting_instance", doc(None, "Which instance of it (for the kubelet: its node).")),
    ("regarding_kind", doc(None, "Kind of the object the event is about.")),
    ("regarding_namespace", doc(None, "Its namespace.")),
    ("regarding_name", doc(None, "Its name.")),
    ("regarding_uid", doc(None, "Its UID.")),
    ("regarding_field_path", doc(None, "The part of it (e.g. `spec.containers{app}`).")),
    ("count", doc(None, "How many times it was seen (`series.count` or `deprecatedCount`).")),
    ("resource_version", doc(None, "The Event's resourceVersion, the watch position.")),
];

/// What a table holds, for the page.
fn table_intro(table: Table) -> &'static str {
    match table {
        Table::Audit => "Kubernetes audit events, from the API server's webhook, audit files read by the agent, or replayed files. Secret values are redacted before storage. Default retention 180 days.",
        Table::DeadLetter => "Input that could not become a record, kept with the reason so nothing is lost silently.",
        Table::ContainerLog => "Container stdout/stderr read by the node agent (CRI and docker json-file), with the pod's identity.",
        Table::Ingress => "ingress-nginx access logs (default or configured format), read from the controller pods' output.",
        Table::Dns => "CoreDNS query logs (the `log` plugin), read from the CoreDNS pods' output.",
        Table::Netflow => "Kernel netfilter LOG lines (iptables/Calico policy logging) from kern.log or /dev/kmsg.",
        Table::Journal => "systemd journal entries of the node's units (kubelet, containerd, docker, ...).",
        Table::K8sEvent => "Kubernetes events (`events.k8s.io/v1`) watched by the cluster-mode agent and kept beyond the API server's one hour.",
        Table::Falco => "Events posted by Falco's `http_output`; each new one is also an alert. Default retention 180 days.",
    }
}

fn table_docs(table: Table) -> &'static [(&'static str, ColumnDoc)] {
    match table {
        Table::Audit => AUDIT,
        Table::DeadLetter => DEAD_LETTER,
        Table::ContainerLog => CONTAINER_LOG,
        Table::Ingress => INGRESS,
        Table::Dns => DNS,
        Table::Netflow => NETFLOW,
        Table::Journal => JOURNAL,
        Table::K8sEvent => K8S_EVENT,
        Table::Falco => FALCO,
    }
}

/// The documentation of `table.column`: the table's own entry, else the common one.
pub fn column_doc(table: Table, column: &str) -> Option<ColumnDoc> {
    let find = |docs: &[(&str, ColumnDoc)]| docs.iter().find(|(c, _)| *c == column).map(|d| d.1);
    find(table_docs(table)).or_else(|| find(COMMON))
}

/// Problems with the documentation: undocumented columns, entries for missing columns.
pub fn doc_problems() -> Vec<String> {
    let mut problems = Vec::new();
    for table in Table::ALL {
        let schema = table.schema();
        for f in schema.fields() {
            if column_doc(table, f.name()).is_none() {
                problems.push(format!("{}.{} has no description", table.name(), f.name()));
            }
        }
        for (c, _) in table_docs(table) {
            if schema.field_with_name(c).is_err() {
                problems.push(format!(
                    "{}.{c} is described but the table has no such column",
                    table.name()
                ));
            }
        }
    }
    problems
}

/// The whole reference page as Markdown.
pub fn markdown() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Tables\n\n<!-- Generated from crates/kestrel-store/src/schema_doc.rs by its tests: \
         edit that file, then run `UPDATE_DOCS=1 cargo test -p kestrel-store schema_doc`. -->\n"
    );
    let _ = writeln!(
        out,
        "Every table is plain Hive-partitioned Parquet under the data directory \
         (`<root>/<table>/date=YYYY-MM-DD/hour=HH/*.parquet`), zstd-compressed, rows sorted by \
         `time`, row groups of up to {ROW_GROUP_ROWS} rows with statistics, and bloom filters on \
         the identity columns {}. Every column is nullable, so a column added later reads as \
         NULL in older files. DuckDB, Spark or pyarrow read these files as they are.\n",
        BLOOM_COLUMNS
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "Column names are snake_case for SQL; the OpenTelemetry column gives the semantic-convention \
         attribute of the same meaning where one exists.\n"
    );
    for table in Table::ALL {
        let _ = writeln!(out, "- [`{0}`](#{0})", table.name());
    }
    for table in Table::ALL {
        let _ = writeln!(out, "\n## {}\n\n{}\n", table.name(), table_intro(table));
        let _ = writeln!(out, "| column | type | OpenTelemetry | description |");
        let _ = writeln!(out, "|---|---|---|---|");
        for f in table.schema().fields() {
            let d = column_doc(table, f.name());
            let otel = d
                .and_then(|d| d.otel)
                .map(|o| format!("`{o}`"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                f.name(),
                sql_type_name(f.data_type()),
                otel,
                d.map(|d| d.description).unwrap_or("").replace('|', "\\|")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_is_described_and_nothing_else() {
        let problems = doc_problems();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// `docs/schema.md` is this module's output; `UPDATE_DOCS=1` rewrites it.
    #[test]
    fn schema_doc_page_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema.md");
        let want = markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/schema.md is stale: run `UPDATE_DOCS=1 cargo test -p kestrel-store schema_doc`"
        );
    }
}
