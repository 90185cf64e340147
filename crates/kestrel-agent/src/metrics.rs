//! The agent's Prometheus metrics, named `kestrel_agent_<name>_<unit>`, and its `/healthz` and
//! `/metrics` endpoints.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::buffer::BufferMetrics;
use crate::tail::TailMetrics;

/// Counters updated by the pipeline and the shipper.
#[derive(Debug, Default)]
pub struct AgentMetrics {
    /// Lines decoded from tailed files.
    pub lines_read: Counter,
    /// Lines that are not CRI or docker json-file log lines (sent as dead letters).
    pub parse_errors: Counter,
    /// Lines with bytes that are not UTF-8 (kept, with U+FFFD).
    pub invalid_utf8_lines: Counter,
    /// Lines cut at `max_line_bytes`.
    pub truncated_lines: Counter,
    /// Batches written to the disk buffer.
    pub batches_buffered: Counter,
    /// Batches the server acknowledged.
    pub batches_acked: Counter,
    /// Records the server acknowledged.
    pub records_acked: Counter,
    /// Batches the server refused as malformed (it kept them as dead letters).
    pub batches_rejected: Counter,
    /// Send attempts that failed and were retried.
    pub retries: Counter,
    /// Bytes sent (compressed).
    pub sent_bytes: Counter,
    /// Records dropped by a filter, by input and filter name.
    pub dropped_by_filter: Family<Vec<(String, String)>, Counter>,
    /// Secrets replaced, by pattern name.
    pub redactions: Family<Vec<(String, String)>, Counter>,
    /// Records made by multiline joining (of one line or more).
    pub multiline_records: Counter,
    /// Lines appended to a multiline record they did not start.
    pub multiline_continuation_lines: Counter,
    /// Multiline records cut at `max_bytes`.
    pub multiline_truncated_records: Counter,
    /// Multiline records shipped because their file was quiet for the timeout.
    pub multiline_timeout_flushes: Counter,
    /// Counters of the inputs that are not files, labelled by input.
    pub inputs: InputFamilies,
}

type InputLabels = Vec<(String, String)>;

/// Per-input counters of the journal, kmsg and Kubernetes events inputs.
#[derive(Debug, Default)]
pub struct InputFamilies {
    records: Family<InputLabels, Counter>,
    errors: Family<InputLabels, Counter>,
    lost: Family<InputLabels, Counter>,
    restarts: Family<InputLabels, Counter>,
}

/// The counters of one input that is not a file; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct InputMetrics {
    /// Records (journal entries, kernel records, events) read.
    pub records: Counter,
    /// Records that could not be parsed (sent as dead letters) and read errors.
    pub errors: Counter,
    /// Records known to be lost before they could be read (kernel ring buffer overwritten).
    pub lost: Counter,
    /// Restarts of the input's reader (`journalctl` exits, reopened devices, watch retries).
    pub restarts: Counter,
}

impl AgentMetrics {
    /// The counters of input `name` (created on first use).
    pub fn input(&self, name: &str) -> InputMetrics {
        let labels = vec![("input".to_owned(), name.to_owned())];
        let f = &self.inputs;
        InputMetrics {
            records: f.records.get_or_create(&labels).clone(),
            errors: f.errors.get_or_create(&labels).clone(),
            lost: f.lost.get_or_create(&labels).clone(),
            restarts: f.restarts.get_or_create(&labels).clone(),
        }
    }
}

/// Values read at scrape time from the tailers and the buffer.
#[derive(Debug)]
struct LiveCollector {
    tails: Vec<(String, Arc<TailMetrics>)>,
    buffer: Arc<BufferMetrics>,
}

impl Collector for LiveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counter = |enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64| {
            let e = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(v).encode(e)
        };
        let gauge = |enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64| {
            let e = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(v).encode(e)
        };
        let sum =
            |f: fn(&TailMetrics) -> u64| -> u64 { self.tails.iter().map(|(_, t)| f(t)).sum() };
        let l = Ordering::Relaxed;
        counter(
            &mut encoder,
            "kestrel_agent_read_bytes",
            "bytes read from tailed files",
            sum(|t| t.bytes_read.load(Ordering::Relaxed)),
        )?;
        counter(
            &mut encoder,
            "kestrel_agent_tail_lines",
            "lines read from tailed files",
            sum(|t| t.lines_read.load(Ordering::Relaxed)),
        )?;
        counter(
            &mut encoder,
            "kestrel_agent_rotations",
            "files renamed while tailed",
            sum(|t| t.rotations.load(Ordering::Relaxed)),
        )?;
        counter(
            &mut encoder,
            "kestrel_agent_truncations",
            "files found truncated",
            sum(|t| t.truncations.load(Ordering::Relaxed)),
        )?;
        counter(
            &mut encoder,
            "kestrel_agent_rotation_lost_bytes",
            "bytes lost to rotation or truncation before they could be read (should stay 0)",
            sum(|t| t.bytes_lost.load(Ordering::Relaxed)),
        )?;
        counter(
            &mut encoder,
            "kestrel_agent_read_errors",
            "errors reading files",
            sum(|t| t.read_errors.load(Ordering::Relaxed)),
        )?;
        gauge(
            &mut encoder,
            "kestrel_agent_lag_bytes",
            "bytes in tailed files not read yet",
            sum(|t| t.lag_bytes.load(Ordering::Relaxed)) as i64,
        )?;
        gauge(
            &mut encoder,
            "kestrel_agent_files_open",
            "file handles open",
            sum(|t| t.files_open.load(Ordering::Relaxed)) as i64,
        )?;
        gauge(
            &mut encoder,
            "kestrel_agent_files_tracked",
            "files tracked",
            sum(|t| t.files_tracked.load(Ordering::Relaxed)) as i64,
        )?;
        gauge(
            &mut encoder,
            "kestrel_agent_buffer_bytes",
            "bytes of batches in the disk buffer not yet acknowledged",
            self.buffer.bytes.load(l) as i64,
        )?;
        gauge(
            &mut encoder,
            "kestrel_agent_buffer_batches",
            "batches in the disk buffer not yet acknowledged",
            self.buffer.records.load(l) as i64,
        )?;
        counter(
            &mut encoder,
            "kestrel_agent_buffer_corrupt_records",
            "disk buffer records skipped as corrupt (their lines are read again)",
            self.buffer.corrupt_records.load(l),
        )?;
        counter(
            &mut encoder,
            "kestrel_agent_buffer_full_waits",
            "times reading paused because the disk buffer was full",
            self.buffer.full_waits.load(l),
        )?;
        Ok(())
    }
}

/// Builds the registry of the agent's metrics.
pub fn registry(
    metrics: &AgentMetrics,
    tails: Vec<(String, Arc<TailMetrics>)>,
    buffer: Arc<BufferMetrics>,
) -> Registry {
    let mut r = Registry::default();
    let mut counter = |name: &str, help: &str, c: &Counter| r.register(name, help, c.clone());
    counter(
        "kestrel_agent_lines",
        "lines decoded from tailed files",
        &metrics.lines_read,
    );
    counter(
        "kestrel_agent_parse_errors",
        "lines that are not container log lines (sent as dead letters)",
        &metrics.parse_errors,
    );
    counter(
        "kestrel_agent_invalid_utf8_lines",
        "lines with bytes that are not UTF-8 (kept lossy)",
        &metrics.invalid_utf8_lines,
    );
    counter(
        "kestrel_agent_truncated_lines",
        "lines cut at max_line_bytes",
        &metrics.truncated_lines,
    );
    counter(
        "kestrel_agent_batches_buffered",
        "batches written to the disk buffer",
        &metrics.batches_buffered,
    );
    counter(
        "kestrel_agent_batches_acked",
        "batches acknowledged by the server",
        &metrics.batches_acked,
    );
    counter(
        "kestrel_agent_records_acked",
        "records acknowledged by the server",
        &metrics.records_acked,
    );
    counter(
        "kestrel_agent_batches_rejected",
        "batches the server refused as malformed (kept there as dead letters)",
        &metrics.batches_rejected,
    );
    counter(
        "kestrel_agent_retries",
        "failed sends, retried",
        &metrics.retries,
    );
    counter(
        "kestrel_agent_sent_bytes",
        "compressed bytes sent",
        &metrics.sent_bytes,
    );
    counter(
        "kestrel_agent_multiline_records",
        "records made by multiline joining",
        &metrics.multiline_records,
    );
    counter(
        "kestrel_agent_multiline_continuation_lines",
        "lines joined to a multiline record they did not start",
        &metrics.multiline_continuation_lines,
    );
    counter(
        "kestrel_agent_multiline_truncated_records",
        "multiline records cut at max_bytes",
        &metrics.multiline_truncated_records,
    );
    counter(
        "kestrel_agent_multiline_timeout_flushes",
        "multiline records shipped after their file was quiet for the timeout",
        &metrics.multiline_timeout_flushes,
    );
    let inputs = &metrics.inputs;
    r.register(
        "kestrel_agent_input_records",
        "records read by the journal, kmsg and Kubernetes events inputs",
        inputs.records.clone(),
    );
    r.register(
        "kestrel_agent_input_errors",
        "records of those inputs that could not be parsed (sent as dead letters), and read errors",
        inputs.errors.clone(),
    );
    r.register(
        "kestrel_agent_input_lost_records",
        "records lost before they could be read (kernel ring buffer overwritten)",
        inputs.lost.clone(),
    );
    r.register(
        "kestrel_agent_input_restarts",
        "restarts of an input's reader (journalctl exits, watch failures)",
        inputs.restarts.clone(),
    );
    r.register(
        "kestrel_agent_dropped_by_filter",
        "records dropped by a filter, by input and filter",
        metrics.dropped_by_filter.clone(),
    );
    r.register(
        "kestrel_agent_redactions",
        "secrets replaced in messages on the node, by pattern",
        metrics.redactions.clone(),
    );
    r.register_collector(Box::new(LiveCollector { tails, buffer }));
    r
}

/// Serves `/healthz` and `/metrics` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let registry = Arc::clone(&registry);
                async move {
                    let mut out = String::new();
                    match encode(&mut out, &registry) {
                        Ok(()) => (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            out,
                        )
                            .into_response(),
                        Err(_) => (
                            [(axum::http::header::CONTENT_TYPE, "text/plain")],
                            "cannot encode metrics".to_string(),
                        )
                            .into_response(),
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    Ok(local)
}
