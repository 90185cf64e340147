//! Typed records of the sources the node agent collects: container output, ingress access
//! logs, CoreDNS queries, netfilter (network-policy) log lines, systemd journal entries and
//! Kubernetes events.
//!
//! Each record holds what its source line says. Who produced it (cluster, node, pod identity,
//! labels) is the same for every line of one file, so it travels once per batch in
//! [`crate::ingest::BatchOrigin`] and the server repeats it into each row's columns.
//!
//! Field names are short snake_case, never SQL keywords, and they become column names as they
//! are; `docs/schemas.md` maps them to OpenTelemetry attributes.

use serde::{Deserialize, Serialize};

/// Which output stream of a container a line was written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    /// The stream's name as kubelet writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One line of a container's output, after the runtime's partial lines were joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerLog {
    /// When the runtime received the line (the first part of a joined line), UTC nanoseconds.
    pub time: i64,
    /// `stdout` or `stderr`.
    pub stream: LogStream,
    /// The line without its trailing newline; invalid UTF-8 replaced by U+FFFD.
    pub message: String,
    /// True when the line was longer than the agent's `max_line_bytes` and was cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// One request in an ingress controller's access log (ingress-nginx's default
/// `log-format-upstream`, or a format the user configured). A `-` in the log is `None` here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngressAccess {
    /// When the request was logged, UTC nanoseconds (the container runtime's time of the line,
    /// which is finer than nginx's `$time_local`).
    pub time: i64,
    /// `$remote_addr`: the client address as nginx saw it.
    pub client_ip: Option<String>,
    /// `$remote_user`.
    pub remote_user: Option<String>,
    /// HTTP method of the request line.
    pub method: Option<String>,
    /// `$host` when the format has it.
    pub host: Option<String>,
    /// Path and query of the request line.
    pub path: Option<String>,
    /// Protocol of the request line, for example `HTTP/1.1`.
    pub protocol: Option<String>,
    /// `$status`.
    pub status: Option<u16>,
    /// `$body_bytes_sent`.
    pub body_bytes: Option<u64>,
    /// `$http_referer`.
    pub referer: Option<String>,
    /// `$http_user_agent`.
    pub user_agent: Option<String>,
    /// `$request_length`: bytes of the request, headers and body.
    pub request_bytes: Option<u64>,
    /// `$request_time` in seconds.
    pub request_time: Option<f64>,
    /// `$proxy_upstream_name`, for example `default-web-80`.
    pub upstream_name: Option<String>,
    /// `$proxy_alternative_upstream_name` (canary).
    pub upstream_alternative: Option<String>,
    /// `$upstream_addr`; several upstreams stay comma-separated as nginx writes them.
    pub upstream_addr: Option<String>,
    /// `$upstream_response_length`.
    pub upstream_bytes: Option<String>,
    /// `$upstream_response_time`.
    pub upstream_time: Option<String>,
    /// `$upstream_status`.
    pub upstream_status: Option<String>,
    /// `$req_id`.
    pub request_id: Option<String>,
    /// Variables of a configured format that have no column of their own (for example
    /// `$http_x_forwarded_for`, `$ssl_protocol`), as a JSON object of strings; `None` when there
    /// are none.
    #[serde(default)]
    pub fields: Option<String>,
}

/// One query answered by CoreDNS, from its `log` plugin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsQuery {
    /// When the query was logged, UTC nanoseconds.
    pub time: i64,
    /// The client's address, without brackets for IPv6.
    pub client_ip: Option<String>,
    pub client_port: Option<u16>,
    /// The DNS message id.
    pub query_id: Option<u32>,
    /// Record type asked for: `A`, `AAAA`, `TXT`...
    pub query_type: Option<String>,
    /// Class, nearly always `IN`.
    pub query_class: Option<String>,
    /// The name asked for, as written (with its trailing dot).
    pub query_name: Option<String>,
    /// `udp` or `tcp`.
    pub protocol: Option<String>,
    /// Size of the request in bytes.
    pub request_bytes: Option<u32>,
    /// The DNSSEC OK bit.
    pub dnssec_ok: Option<bool>,
    /// Advertised EDNS0 buffer size.
    pub buffer_size: Option<u32>,
    /// Response code: `NOERROR`, `NXDOMAIN`, `SERVFAIL`...
    pub rcode: Option<String>,
    /// Response flags as CoreDNS prints them, for example `qr,rd,ra`.
    pub response_flags: Option<String>,
    /// Size of the response in bytes.
    pub response_bytes: Option<u32>,
    /// Time CoreDNS took to answer, in nanoseconds.
    pub duration_ns: Option<i64>,
}

/// One packet logged by netfilter (iptables/nftables `LOG`, Calico policy logging).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetfilterLog {
    /// When the kernel logged the packet, UTC nanoseconds.
    pub time: i64,
    /// The log prefix the rule set, for example `calico-packet: ` (trimmed).
    pub prefix: Option<String>,
    /// `IN=`: the interface the packet came in on.
    pub in_interface: Option<String>,
    /// `OUT=`: the interface it was going out on.
    pub out_interface: Option<String>,
    /// `MAC=`.
    pub mac: Option<String>,
    pub src_ip: Option<String>,
    pub dst_ip: Option<String>,
    /// `PROTO=`: `TCP`, `UDP`, `ICMP`...
    pub protocol: Option<String>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// `LEN=`: packet length in bytes.
    pub length: Option<u32>,
    pub ttl: Option<u16>,
    /// The TCP flags present (`SYN ACK`...), space-separated.
    pub tcp_flags: Option<String>,
    /// The whole line, so nothing the kernel wrote is lost.
    pub raw: String,
}

/// One entry of the systemd journal (`journalctl -o json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// `__REALTIME_TIMESTAMP`, UTC nanoseconds.
    pub time: i64,
    /// `__CURSOR`: where to resume after this entry.
    pub cursor: Option<String>,
    /// `_SYSTEMD_UNIT`.
    pub unit: Option<String>,
    /// `SYSLOG_IDENTIFIER`.
    pub identifier: Option<String>,
    /// `MESSAGE` (byte arrays decoded as lossy UTF-8).
    pub message: Option<String>,
    /// `PRIORITY` (0 emerg … 7 debug).
    pub priority: Option<u8>,
    /// `_PID`.
    pub pid: Option<u32>,
    /// `_HOSTNAME`.
    pub hostname: Option<String>,
    /// `_BOOT_ID`.
    pub boot_id: Option<String>,
    /// Every other field of the entry, as a JSON object.
    pub fields: Option<String>,
}

/// One Kubernetes event (`events.k8s.io/v1` `Event`, or `core/v1` `Event`), kept beyond the API
/// server's retention. A repeated event is one object updated in place; each update the watch
/// sees is one record, timed at the latest observation it reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct K8sEvent {
    /// The latest observation: `series.lastObservedTime`, else `eventTime`, else
    /// `deprecatedLastTimestamp` (core/v1 `lastTimestamp`), else `deprecatedFirstTimestamp`
    /// (`firstTimestamp`), else the object's creation time; UTC nanoseconds.
    pub time: i64,
    /// The event object's namespace.
    pub namespace: Option<String>,
    /// The event object's name.
    pub name: Option<String>,
    pub uid: Option<String>,
    /// `Normal` or `Warning`.
    pub event_type: Option<String>,
    pub reason: Option<String>,
    /// `note` (core/v1 `message`): the human-readable message.
    pub note: Option<String>,
    pub action: Option<String>,
    pub reporting_controller: Option<String>,
    pub reporting_instance: Option<String>,
    pub regarding_kind: Option<String>,
    pub regarding_namespace: Option<String>,
    pub regarding_name: Option<String>,
    pub regarding_uid: Option<String>,
    pub regarding_field_path: Option<String>,
    /// How many times the event was seen (`series.count`, else `deprecatedCount` / core/v1
    /// `count`).
    pub count: Option<i32>,
    pub resource_version: Option<String>,
}
