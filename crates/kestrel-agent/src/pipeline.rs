//! From tailed chunks to batches: decode container log lines (CRI or docker json-file), join
//! partial lines, recognise ingress and DNS logs, attach the pod's identity, and cut batches
//! whose identity is derived from the file bytes they cover.
//!
//! Acknowledgement flows back through [`Ticket`]s: a tailed chunk is acknowledged to the tailer
//! (its checkpoint may advance) only when every batch holding its lines is acknowledged by the
//! server. A chunk can feed two batches: a line split by the runtime (`P` parts) that is not
//! complete at the chunk's end is carried into the next chunk's batch, so a batch's range never
//! ends inside such a line.
//!
//! After a restart, batches found in the disk buffer are re-sent as they were ([`ResumeRanges`]):
//! lines they cover are skipped when the tailer reads them again, so each byte of a file is in
//! exactly one batch identity, whatever the tailer's chunk boundaries are this time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Instant;

use kestrel_event::{
    batch_id, BatchOrigin, ContainerLog, DeadLetter, DnsQuery, IngestBatch, IngressAccess,
    LogStream, NetfilterLog, PodIdentity, INGEST_FORMAT_VERSION,
};
use kestrel_parse::{parse_cri, parse_docker, MultilineJoiner, PartialMerger};

use crate::buffer::BatchMeta;
use crate::config::PodLogsInput;
use crate::kube::PodMetadataStore;
use crate::metrics::AgentMetrics;
use crate::process::{ActiveFilters, Processing};
use crate::tail::{AckHandle, Chunk, FileKey};

/// Waits for the batches holding a chunk's lines (or, for inputs that are not files, a
/// batch's position); acknowledges it when the last one is acknowledged.
pub struct Ticket {
    remaining: AtomicUsize,
    target: AckTarget,
}

/// Whom a ticket acknowledges.
enum AckTarget {
    /// A tailed file's chunk ending at `end`.
    File {
        file: FileKey,
        end: u64,
        tailer: AckHandle,
    },
    /// The checkpoint of an input that is not a file (journal, kmsg, Kubernetes events).
    Position(Box<dyn OnAck>),
}

/// Called when every batch a ticket waits for is acknowledged by the server.
pub trait OnAck: Send + Sync + std::fmt::Debug {
    fn acknowledged(&self);
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Ticket");
        match &self.target {
            AckTarget::File { file, end, .. } => d.field("file", file).field("end", end),
            AckTarget::Position(p) => d.field("position", p),
        };
        d.field("remaining", &self.remaining).finish()
    }
}

impl Ticket {
    /// The end of the file chunk the ticket acknowledges; tickets of positions (inputs that
    /// are not files) never take part in a file's byte ranges and count as unbounded.
    fn end(&self) -> u64 {
        match &self.target {
            AckTarget::File { end, .. } => *end,
            AckTarget::Position(_) => u64::MAX,
        }
    }

    fn new(file: FileKey, end: u64, tailer: AckHandle) -> Arc<Ticket> {
        // One reference held by the pipeline until it has handed the chunk out.
        Arc::new(Ticket {
            remaining: AtomicUsize::new(1),
            target: AckTarget::File { file, end, tailer },
        })
    }

    /// A ticket that calls `target` once acknowledged; the caller holds it once (release that
    /// hold when the batches are handed out).
    pub fn for_position(target: Box<dyn OnAck>) -> Arc<Ticket> {
        Arc::new(Ticket {
            remaining: AtomicUsize::new(1),
            target: AckTarget::Position(target),
        })
    }

    fn hold(self: &Arc<Self>) -> Arc<Ticket> {
        self.remaining.fetch_add(1, Ordering::AcqRel);
        Arc::clone(self)
    }

    /// One holder is done.
    pub fn release(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            match &self.target {
                AckTarget::File { file, end, tailer } => {
                    tailer.ack(*file, *end);
                }
                AckTarget::Position(p) => p.acknowledged(),
            }
        }
    }
}

/// Byte ranges of files held by batches that were in the disk buffer at start, and the tickets
/// waiting for them.
#[derive(Debug, Default)]
pub struct ResumeRanges {
    /// Per stream (file key): `(start, end, acknowledged, waiting tickets)`.
    ranges: Mutex<HashMap<String, Vec<ResumeRange>>>,
}

#[derive(Debug)]
struct ResumeRange {
    batch: String,
    start: u64,
    end: u64,
    acked: bool,
    waiting: Vec<Arc<Ticket>>,
}

impl ResumeRanges {
    /// The ranges of the buffered batches of one input.
    pub fn new(input: &str, buffered: &[BatchMeta]) -> ResumeRanges {
        let mut map: HashMap<String, Vec<ResumeRange>> = HashMap::new();
        for m in buffered
            .iter()
            .filter(|m| m.input == input && m.end > m.start)
        {
            map.entry(m.stream.clone()).or_default().push(ResumeRange {
                batch: m.id.clone(),
                start: m.start,
                end: m.end,
                acked: false,
                waiting: Vec::new(),
            });
        }
        ResumeRanges {
            ranges: Mutex::new(map),
        }
    }

    /// If `[start, end)` of `stream` lies in a buffered batch's range, makes `ticket` wait for
    /// that batch (unless already acknowledged) and returns true.
    pub(crate) fn cover(&self, stream: &str, start: u64, end: u64, ticket: &Arc<Ticket>) -> bool {
        let mut ranges = self.ranges.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = ranges.get_mut(stream) else {
            return false;
        };
        let Some(r) = list.iter_mut().find(|r| r.start <= start && end <= r.end) else {
            return false;
        };
        if !r.acked && !r.waiting.iter().any(|t| Arc::ptr_eq(t, ticket)) {
            r.waiting.push(ticket.hold());
        }
        true
    }

    /// A buffered batch was acknowledged: release the tickets waiting for it.
    pub fn acked(&self, stream: &str, batch: &str) {
        let waiting = {
            let mut ranges = self.ranges.lock().unwrap_or_else(|p| p.into_inner());
            let Some(r) = ranges
                .get_mut(stream)
                .and_then(|l| l.iter_mut().find(|r| r.batch == batch))
            else {
                return;
            };
            r.acked = true;
            std::mem::take(&mut r.waiting)
        };
        for t in waiting {
            t.release();
        }
    }

    fn is_empty(&self) -> bool {
        self.ranges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

/// A batch ready to compress and buffer, and the tickets it holds.
#[derive(Debug)]
pub struct PendingBatch {
    pub batch: IngestBatch,
    pub tickets: Vec<Arc<Ticket>>,
}

/// A decoded container runtime line: time, stream, whether it is a partial line, message.
type DecodedLine<'a> = (i64, LogStream, bool, &'a [u8]);

/// What a pod log file's lines are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    Plain,
    Ingress,
    Dns,
}

/// A record waiting for its batch, with the bytes of the file it came from: its first line's
/// start and its last line's end.
struct Ready {
    start: u64,
    end: u64,
    record: Record,
}

/// A record of any table. The rare, large kinds are boxed so that moving the common one
/// (a container log line) stays cheap.
enum Record {
    Log(ContainerLog),
    Ingress(Box<IngressAccess>),
    Dns(Box<DnsQuery>),
    Netflow(Box<NetfilterLog>),
    Audit(String),
    Dead(Box<DeadLetter>),
}

/// Per-file state: the partial-line merger, the multiline joiner, records not yet in a batch,
/// and the tickets of the chunks whose bytes they hold.
struct FileState {
    merger: PartialMerger,
    joiner: Option<MultilineJoiner>,
    /// The pod annotation's pattern the joiner was made from, if it was.
    joiner_annotation: Option<String>,
    /// Identity from the path.
    pod: Option<PodIdentity>,
    /// Identity with the API's metadata, as of the last chunk.
    enriched: Option<PodIdentity>,
    path: Arc<Path>,
    kind: LineKind,
    skip: bool,
    /// The file's key, the batches' stream.
    stream: String,
    filters: ActiveFilters,
    /// Start of the oldest incomplete split line, per stream.
    partial_start: [Option<u64>; 2],
    /// First byte and end of the record the joiner holds, per stream.
    joined: [Option<(u64, u64)>; 2],
    /// Complete records not yet in a batch, in the order they were completed.
    ready: Vec<Ready>,
    /// Where the file's next batch starts: every byte before it is in a batch or needed none.
    batch_start: u64,
    /// Tickets of the chunks holding bytes at or after `batch_start`.
    tickets: Vec<Arc<Ticket>>,
    /// End of the last chunk read.
    read_end: u64,
}

impl FileState {
    /// Whether records or parts of them wait in this file's state.
    fn holds_records(&self) -> bool {
        !self.ready.is_empty()
            || self.partial_start.iter().any(Option::is_some)
            || self.joined.iter().any(Option::is_some)
    }
}

fn stream_slot(s: LogStream) -> usize {
    match s {
        LogStream::Stdout => 0,
        LogStream::Stderr => 1,
    }
}

/// The Kubernetes identity of a log file from its path (`kestrel_parse::parse_pod_log_path`).
pub fn pod_identity_from_path(path: &Path) -> Option<PodIdentity> {
    kestrel_parse::parse_pod_log_path(path.to_str()?)
        .ok()
        .map(|p| p.identity())
}

/// Who is sending: the agent's name, and the node and cluster its records come from.
#[derive(Debug, Clone, Default)]
pub struct AgentIdentity {
    pub agent: String,
    pub node: Option<String>,
    pub cluster: Option<String>,
}

/// How the lines of an input's files are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// Container runtime lines (CRI or docker json-file), under kubelet's pod log layout.
    Container,
    /// Kubernetes audit events, one JSON object per line; redacted on the node.
    Audit,
    /// Syslog kern.log lines; netfilter packet lines become `netflow` records, others are
    /// skipped. The offset is the zone of traditional syslog stamps, in seconds east of UTC.
    KernLog { utc_offset_secs: i32 },
}

/// Turns the chunks of one file input into batches.
pub struct PodLogPipeline {
    identity: AgentIdentity,
    format: LineFormat,
    input: PodLogsInput,
    input_name: String,
    files: HashMap<FileKey, FileState>,
    resume: Arc<ResumeRanges>,
    tailer: AckHandle,
    metrics: Arc<AgentMetrics>,
    /// Kubernetes metadata for container logs, when the API is used.
    pod_metadata: Option<PodMetadataStore>,
    processing: Processing,
    /// Redactions since they were last added to the metrics, by pattern.
    redaction_counts: Vec<u64>,
    /// The clock of multiline timeouts.
    clock: Instant,
}

/// What the line loop needs besides the file's state.
struct LineContext<'a> {
    processing: &'a Processing,
    metrics: &'a AgentMetrics,
    redaction_counts: &'a mut Vec<u64>,
    input_name: &'a str,
}

impl PodLogPipeline {
    pub fn new(
        identity: AgentIdentity,
        input: PodLogsInput,
        input_name: String,
        resume: Arc<ResumeRanges>,
        tailer: AckHandle,
        metrics: Arc<AgentMetrics>,
    ) -> Self {
        let processing = Processing::none();
        PodLogPipeline {
            identity,
            format: LineFormat::Container,
            input,
            input_name,
            files: HashMap::new(),
            resume,
            tailer,
            metrics,
            pod_metadata: None,
            redaction_counts: processing.redactor.new_counts(),
            processing,
            clock: Instant::now(),
        }
    }

    /// Enriches container logs' pod identity from `store` and skips excluded pods' lines.
    pub fn with_pod_metadata(mut self, store: PodMetadataStore) -> Self {
        self.pod_metadata = Some(store);
        self
    }

    /// Reads the input's lines in `format` instead of as container logs.
    pub fn with_format(mut self, format: LineFormat) -> Self {
        self.format = format;
        self
    }

    /// Joins, filters and redacts records as `processing` says (by default nothing is).
    pub fn with_processing(mut self, processing: Processing) -> Self {
        self.redaction_counts = processing.redactor.new_counts();
        self.processing = processing;
        self
    }

    /// Nanoseconds on the pipeline's monotonic clock.
    pub fn now(&self) -> i64 {
        i64::try_from(self.clock.elapsed().as_nanos()).unwrap_or(i64::MAX)
    }

    /// Whether a multiline record waits for more lines or its timeout.
    pub fn has_pending_records(&self) -> bool {
        self.files
            .values()
            .any(|f| f.joiner.as_ref().is_some_and(MultilineJoiner::has_pending))
    }

    fn file_state(&mut self, key: FileKey, path: &Arc<Path>, start: u64) -> &mut FileState {
        let input = &self.input;
        let is_container = self.format == LineFormat::Container;
        let processing = &self.processing;
        self.files.entry(key).or_insert_with(|| {
            let pod = if is_container {
                pod_identity_from_path(path)
            } else {
                None
            };
            let (ns, name, container) = pod
                .as_ref()
                .map(|p| {
                    (
                        p.namespace.clone().unwrap_or_default(),
                        p.pod.clone().unwrap_or_default(),
                        p.container.clone().unwrap_or_default(),
                    )
                })
                .unwrap_or_default();
            let skip = (!input.include_namespaces.is_empty()
                && !input.include_namespaces.contains(&ns))
                || input.exclude_namespaces.contains(&ns);
            let kind = if input
                .ingress
                .iter()
                .any(|m| m.matches(&ns, &name, &container))
            {
                LineKind::Ingress
            } else if input.dns.iter().any(|m| m.matches(&ns, &name, &container)) {
                LineKind::Dns
            } else {
                LineKind::Plain
            };
            let joiner = if is_container {
                processing.multiline.joiner_for(&ns, &name, &container)
            } else {
                None
            };
            FileState {
                merger: PartialMerger::new(input.max_line_bytes),
                joiner,
                joiner_annotation: None,
                enriched: pod.clone(),
                pod,
                path: Arc::clone(path),
                kind,
                skip,
                stream: key.to_string(),
                filters: ActiveFilters::default(),
                partial_start: [None, None],
                joined: [None, None],
                ready: Vec::new(),
                batch_start: start,
                tickets: Vec::new(),
                read_end: start,
            }
        })
    }

    /// Decodes a chunk into zero or more batches.
    pub fn process(&mut self, chunk: Chunk) -> Vec<PendingBatch> {
        let now = self.now();
        self.process_at(chunk, now)
    }

    /// [`PodLogPipeline::process`] at `now` on the multiline clock.
    pub fn process_at(&mut self, chunk: Chunk, now: i64) -> Vec<PendingBatch> {
        let ticket = Ticket::new(chunk.file, chunk.end, self.tailer.clone());
        let stream_key = chunk.file.to_string();
        let resume = Arc::clone(&self.resume);
        let use_resume = !resume.is_empty();
        let metrics = Arc::clone(&self.metrics);
        let format = self.format;
        let path_text = chunk.path.display().to_string();
        let pod_metadata = self.pod_metadata.clone();
        let processing = self.processing.clone();
        // Per chunk, not per file: the pod's labels may change, and its metadata may arrive
        // after its first lines (until then the path's metadata is used).
        let mut pod = self
            .file_state(chunk.file, &chunk.path, chunk.start)
            .pod
            .clone();
        let mut excluded = false;
        let mut annotation = None;
        if let (Some(store), Some(pod)) = (&pod_metadata, pod.as_mut()) {
            store.enrich(pod);
            if let Some(uid) = pod.pod_uid.as_deref() {
                excluded = store.is_excluded(uid);
                annotation = store.multiline_start(uid);
            }
        }
        let mut out = Vec::new();
        let mut cx = LineContext {
            processing: &processing,
            metrics: &metrics,
            redaction_counts: &mut self.redaction_counts,
            input_name: &self.input_name,
        };
        let state = self.files.get_mut(&chunk.file).expect("state made above");
        if chunk.start < state.read_end {
            // The file was truncated and is read again from an earlier offset: what was held
            // of it is complete as it is.
            flush_merger(state, &mut cx, now, state.read_end);
            flush_joiner(state, &mut cx, None);
            let end = state.read_end;
            out.extend(self_cut(&self.identity, &self.input_name, state, end));
            state.tickets.drain(..).for_each(|t| t.release());
        }
        if state.tickets.is_empty() && !state.holds_records() {
            state.batch_start = chunk.start;
        }
        state.tickets.push(ticket.hold());
        state.read_end = chunk.end;
        if annotation.is_some() && annotation != state.joiner_annotation {
            if let Some(joiner) = processing
                .multiline
                .joiner_for_annotation(annotation.as_deref().unwrap_or_default())
            {
                // Records begun under the old pattern are complete as they are.
                flush_joiner(state, &mut cx, None);
                state.joiner = Some(joiner);
                state.joiner_annotation = annotation;
            }
        }
        if format == LineFormat::Container {
            state.filters = processing.filters.for_pod(pod.as_ref());
        } else if state.filters.is_empty() && !processing.filters.is_empty() {
            state.filters = processing.filters.for_pod(None);
        }
        state.enriched = pod;

        metrics.lines_read.inc_by(u64::from(chunk.lines));
        for line in chunk.lines() {
            if use_resume && resume.cover(&stream_key, line.start, line.end, &ticket) {
                // Already in a buffered batch that is being re-sent: what came before is
                // complete and goes into a batch ending there; the next one starts after it.
                flush_merger(state, &mut cx, now, line.start);
                flush_joiner(state, &mut cx, None);
                out.extend(self_cut(
                    &self.identity,
                    &self.input_name,
                    state,
                    line.start,
                ));
                state.batch_start = line.end;
                state.tickets.retain(|t| {
                    let keep = t.end() > line.end;
                    if !keep {
                        t.release();
                    }
                    keep
                });
                continue;
            }
            if state.skip || excluded {
                continue;
            }
            let bytes = line.bytes.strip_suffix(b"\n").unwrap_or(line.bytes);
            let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            if bytes.is_empty() {
                continue;
            }
            match format {
                LineFormat::Container => {}
                LineFormat::Audit => {
                    if let Some(record) = audit_line(bytes, &path_text, line.start, &mut cx, state)
                    {
                        state.ready.push(Ready {
                            start: line.start,
                            end: line.end,
                            record,
                        });
                    }
                    continue;
                }
                LineFormat::KernLog { utc_offset_secs } => {
                    if let Some(record) = kern_log_line(
                        bytes,
                        utc_offset_secs,
                        &path_text,
                        line.start,
                        &mut cx,
                        state,
                    ) {
                        state.ready.push(Ready {
                            start: line.start,
                            end: line.end,
                            record,
                        });
                    }
                    continue;
                }
            }
            // Docker's message may need unescaping (an owned string); CRI's is borrowed from
            // the chunk, so a plain CRI line is never copied before it becomes a record.
            let docker;
            let decoded: Result<DecodedLine<'_>, (&str, String)> = if bytes[0] == b'{' {
                match parse_docker(bytes) {
                    Ok(d) => {
                        docker = d;
                        Ok((
                            docker.time,
                            docker.stream,
                            docker.partial,
                            docker.message.as_bytes(),
                        ))
                    }
                    Err(e) => Err((e.kind(), e.to_string())),
                }
            } else {
                match parse_cri(bytes) {
                    Ok(c) => Ok((c.time, c.stream, c.partial, c.message)),
                    Err(e) => Err((e.kind(), e.to_string())),
                }
            };
            let (time, stream, partial, message) = match decoded {
                Ok(d) => d,
                Err((kind, reason)) => {
                    let dead = reject(
                        "pod_logs",
                        kind,
                        reason,
                        format!("{path_text}:{}", line.start),
                        bytes,
                        &mut cx,
                    );
                    state.ready.push(Ready {
                        start: line.start,
                        end: line.end,
                        record: Record::Dead(Box::new(dead)),
                    });
                    continue;
                }
            };
            let slot = stream_slot(stream);
            if state.partial_start[slot].is_none() && partial {
                state.partial_start[slot] = Some(line.start);
            }
            if let Some(merged) = state.merger.push(time, stream, partial, message) {
                let start = state.partial_start[stream_slot(merged.stream)]
                    .take()
                    .unwrap_or(line.start);
                if merged.invalid_utf8 {
                    metrics.invalid_utf8_lines.inc();
                }
                if merged.truncated {
                    metrics.truncated_lines.inc();
                }
                let log = merged.into_container_log();
                join_line(state, &mut cx, log, start, line.end, now);
            }
        }
        if chunk.finished {
            // The file is gone and read to its end: a split line that never got its last part,
            // and a multiline record still waiting, are complete as they are.
            flush_merger(state, &mut cx, now, chunk.end);
            flush_joiner(state, &mut cx, None);
        }
        out.extend(self_cut(&self.identity, &self.input_name, state, chunk.end));
        if chunk.finished {
            if let Some(state) = self.files.remove(&chunk.file) {
                state.tickets.iter().for_each(|t| t.release());
            }
        }
        self.publish_counts();
        // The pipeline's own reference: released now that every batch holds its own.
        ticket.release();
        out
    }

    /// Ships multiline records whose file has been quiet for their timeout (on the pipeline's
    /// clock); call it now and then while no chunk arrives.
    pub fn flush_expired(&mut self) -> Vec<PendingBatch> {
        let now = self.now();
        self.flush_expired_at(now)
    }

    /// [`PodLogPipeline::flush_expired`] at `now` on the multiline clock.
    pub fn flush_expired_at(&mut self, now: i64) -> Vec<PendingBatch> {
        let mut out = Vec::new();
        let processing = self.processing.clone();
        let metrics = Arc::clone(&self.metrics);
        let mut cx = LineContext {
            processing: &processing,
            metrics: &metrics,
            redaction_counts: &mut self.redaction_counts,
            input_name: &self.input_name,
        };
        for state in self.files.values_mut() {
            let due = state
                .joiner
                .as_ref()
                .and_then(MultilineJoiner::next_deadline)
                .is_some_and(|d| d <= now);
            if !due {
                continue;
            }
            flush_joiner(state, &mut cx, Some(now));
            let end = state.read_end;
            out.extend(self_cut(&self.identity, &self.input_name, state, end));
        }
        self.publish_counts();
        out
    }

    /// Adds the redactions counted since the last call to the metrics.
    fn publish_counts(&mut self) {
        if self.redaction_counts.iter().all(|c| *c == 0) {
            return;
        }
        for (name, count) in self
            .processing
            .redactor
            .names()
            .zip(self.redaction_counts.iter_mut())
        {
            if *count > 0 {
                self.metrics
                    .redactions
                    .get_or_create(&vec![("pattern".to_string(), name.to_string())])
                    .inc_by(*count);
                *count = 0;
            }
        }
    }
}

/// A whole line (after the runtime's parts were merged), covering `[start, end)` of the file:
/// into the multiline joiner if the file has one, else straight to the ready records.
fn join_line(
    state: &mut FileState,
    cx: &mut LineContext<'_>,
    log: ContainerLog,
    start: u64,
    end: u64,
    now: i64,
) {
    let Some(joiner) = state.joiner.as_mut() else {
        finish_record(state, cx, log, start, end);
        return;
    };
    let slot = stream_slot(log.stream);
    let before = joiner.stats();
    let done = joiner.push(log, now);
    let after = joiner.stats();
    cx.metrics
        .multiline_continuation_lines
        .inc_by(after.continuation_lines - before.continuation_lines);
    cx.metrics
        .multiline_truncated_records
        .inc_by(after.truncated_records - before.truncated_records);
    match done {
        Some(record) => {
            let (s, e) = state.joined[slot]
                .replace((start, end))
                .expect("a completed record was held");
            finish_record(state, cx, record, s, e);
        }
        None => match &mut state.joined[slot] {
            Some((_, e)) => *e = end,
            held => *held = Some((start, end)),
        },
    }
}

/// Emits the joiner's records: those whose timeout passed at `now`, or all of them.
fn flush_joiner(state: &mut FileState, cx: &mut LineContext<'_>, now: Option<i64>) {
    loop {
        let Some(joiner) = state.joiner.as_mut() else {
            return;
        };
        let record = match now {
            Some(now) => joiner.flush_expired(now),
            None => joiner.flush(),
        };
        let Some(record) = record else { return };
        if now.is_some() {
            cx.metrics.multiline_timeout_flushes.inc();
        }
        let Some((s, e)) = state.joined[stream_slot(record.stream)].take() else {
            continue;
        };
        finish_record(state, cx, record, s, e);
    }
}

/// Emits split lines whose last part never came (their file ended, or a buffered batch follows
/// them); they end at `end`.
fn flush_merger(state: &mut FileState, cx: &mut LineContext<'_>, now: i64, end: u64) {
    while let Some(merged) = state.merger.flush() {
        let start = state.partial_start[stream_slot(merged.stream)]
            .take()
            .unwrap_or(end);
        let log = merged.into_container_log();
        join_line(state, cx, log, start, end, now);
    }
    state.partial_start = [None, None];
}

/// A complete container log record: filtered, redacted, recognised (ingress, DNS), made ready.
fn finish_record(
    state: &mut FileState,
    cx: &mut LineContext<'_>,
    mut log: ContainerLog,
    start: u64,
    end: u64,
) {
    if state.joiner.is_some() {
        cx.metrics.multiline_records.inc();
    }
    if let Some(filter) = state.filters.dropping(&log.message) {
        cx.metrics
            .dropped_by_filter
            .get_or_create(&vec![
                ("input".to_string(), cx.input_name.to_string()),
                (
                    "filter".to_string(),
                    cx.processing.filters.name(filter).to_string(),
                ),
            ])
            .inc();
        return;
    }
    if let std::borrow::Cow::Owned(redacted) = cx
        .processing
        .redactor
        .redact(&log.message, cx.redaction_counts)
    {
        log.message = redacted;
    }
    let record = match state.kind {
        LineKind::Ingress => {
            match kestrel_parse::parse_ingress_default(log.message.as_bytes(), Some(log.time)) {
                Ok(access) => Record::Ingress(Box::new(access)),
                Err(_) => Record::Log(log),
            }
        }
        // CoreDNS also prints banners and plugin messages: those stay container logs.
        LineKind::Dns => match kestrel_parse::parse_coredns(log.message.as_bytes(), log.time) {
            Ok(Some(query)) => Record::Dns(Box::new(query)),
            _ => Record::Log(log),
        },
        LineKind::Plain => Record::Log(log),
    };
    state.ready.push(Ready { start, end, record });
}

/// Cuts the file's next batch at `limit` or before: at the first byte of any record still
/// being put together (a split line, a multiline record), and never inside a complete
/// record's bytes (stdout and stderr records interleave). Records wholly before the cut form
/// the batch `[batch_start, cut)`; the others, and the tickets of chunks with bytes after the
/// cut, wait for the next one. No records: no batch, and the tickets of the bytes before the
/// cut are released (blank, skipped or dropped lines need no acknowledgement).
fn self_cut(
    identity: &AgentIdentity,
    input_name: &str,
    state: &mut FileState,
    limit: u64,
) -> Option<PendingBatch> {
    let mut cut = limit;
    for start in state.partial_start.iter().flatten() {
        cut = cut.min(*start);
    }
    for (start, _) in state.joined.iter().flatten() {
        cut = cut.min(*start);
    }
    loop {
        let before = cut;
        for r in &state.ready {
            if r.start < cut && r.end > cut {
                cut = r.start;
            }
        }
        if cut == before {
            break;
        }
    }
    let cut = cut.max(state.batch_start);
    let later: Vec<Arc<Ticket>> = state
        .tickets
        .iter()
        .filter(|t| t.end() > cut)
        .map(Ticket::hold)
        .collect();
    let tickets = std::mem::replace(&mut state.tickets, later);
    let start = std::mem::replace(&mut state.batch_start, cut);
    let taken = state.ready.iter().filter(|r| r.end <= cut).count();
    if taken == 0 {
        tickets.iter().for_each(|t| t.release());
        return None;
    }
    let mut batch = IngestBatch {
        version: INGEST_FORMAT_VERSION,
        id: batch_id(&identity.agent, input_name, &state.stream, start, cut),
        origin: BatchOrigin {
            agent: identity.agent.clone(),
            cluster: identity.cluster.clone(),
            node: identity.node.clone(),
            input: input_name.to_string(),
            stream: state.stream.clone(),
            file: Some(state.path.display().to_string()),
            pod: state.enriched.clone(),
        },
        start,
        end: cut,
        ..IngestBatch::default()
    };
    if state.joiner.is_none() && state.kind == LineKind::Plain {
        batch.container_logs.reserve_exact(taken);
    }
    // Drained, not taken: `ready` keeps its capacity for the next chunk. What waits is
    // usually nothing or a record or two.
    let mut wait = Vec::new();
    for r in state.ready.drain(..) {
        if r.end > cut {
            wait.push(r);
            continue;
        }
        match r.record {
            Record::Log(l) => batch.container_logs.push(l),
            Record::Ingress(a) => batch.ingress.push(*a),
            Record::Dns(d) => batch.dns.push(*d),
            Record::Netflow(n) => batch.netflow.push(*n),
            Record::Audit(a) => batch.audit.push(a),
            Record::Dead(d) => batch.dead_letters.push(*d),
        }
    }
    state.ready.append(&mut wait);
    Some(PendingBatch { batch, tickets })
}

/// Counts a record dropped by filter `index`.
fn count_drop(cx: &LineContext<'_>, index: usize) {
    cx.metrics
        .dropped_by_filter
        .get_or_create(&vec![
            ("input".to_string(), cx.input_name.to_string()),
            (
                "filter".to_string(),
                cx.processing.filters.name(index).to_string(),
            ),
        ])
        .inc();
}

/// A line that is not a record of its input, kept aside (redacted: it may hold secrets).
fn reject(
    source: &str,
    kind: &str,
    reason: String,
    location: String,
    bytes: &[u8],
    cx: &mut LineContext<'_>,
) -> DeadLetter {
    cx.metrics.parse_errors.inc();
    let cut = &bytes[..bytes.len().min(64 * 1024)];
    // Audit lines may hold secrets even when they do not parse.
    let payload = kestrel_parse::redact_lexical(&String::from_utf8_lossy(cut));
    let payload = cx
        .processing
        .redactor
        .redact(&payload, cx.redaction_counts)
        .into_owned();
    DeadLetter {
        time: kestrel_event::time::now_nanos(),
        source: source.into(),
        kind: kind.into(),
        reason,
        location: Some(location),
        size_bytes: bytes.len() as i64,
        payload,
    }
}

/// An audit log line: redacted here, before it is buffered or sent; the server parses it.
fn audit_line(
    bytes: &[u8],
    path: &str,
    offset: u64,
    cx: &mut LineContext<'_>,
    state: &FileState,
) -> Option<Record> {
    if !state.filters.is_empty() {
        if let Some(index) = state.filters.dropping(&String::from_utf8_lossy(bytes)) {
            count_drop(cx, index);
            return None;
        }
    }
    Some(match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(mut event) if event.is_object() => {
            kestrel_parse::redact_value(&mut event);
            if cx.processing.redactor.is_active() {
                cx.processing
                    .redactor
                    .redact_json(&mut event, cx.redaction_counts);
            }
            Record::Audit(event.to_string())
        }
        Ok(_) => Record::Dead(Box::new(reject(
            "audit_file",
            "schema",
            "an audit log line must be a JSON object".into(),
            format!("{path}:{offset}"),
            bytes,
            cx,
        ))),
        Err(e) => Record::Dead(Box::new(reject(
            "audit_file",
            "invalid_json",
            format!("not JSON: {e}"),
            format!("{path}:{offset}"),
            bytes,
            cx,
        ))),
    })
}

/// A kern.log line: netfilter packet lines become `netflow` records; other kernel messages
/// are not security records here and are skipped.
fn kern_log_line(
    bytes: &[u8],
    utc_offset_secs: i32,
    path: &str,
    offset: u64,
    cx: &mut LineContext<'_>,
    state: &FileState,
) -> Option<Record> {
    if !state.filters.is_empty() {
        if let Some(index) = state.filters.dropping(&String::from_utf8_lossy(bytes)) {
            count_drop(cx, index);
            return None;
        }
    }
    let now = kestrel_event::time::now_nanos();
    let parsed = kestrel_parse::parse_kern_log(bytes, now, utc_offset_secs).and_then(|l| {
        l.map(|l| kestrel_parse::parse_packet(&l.text, l.time))
            .transpose()
            .map(Option::flatten)
    });
    match parsed {
        Ok(Some(packet)) => Some(Record::Netflow(Box::new(packet))),
        Ok(None) => None,
        Err(e) => Some(Record::Dead(Box::new(reject(
            "kern_log",
            "invalid_line",
            e.to_string(),
            format!("{path}:{offset}"),
            bytes,
            cx,
        )))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;
    use crate::tail::{ChunkReceiver, Tailer};

    const POD: &str = "pods/shop_web-1_1f2e3d4c-aaaa-bbbb-cccc-123456789abc/nginx";

    /// Writes `lines` to a pod log and starts a tailer with small chunks over it.
    fn tail(
        dir: &Path,
        lines: &[String],
        max_chunk: usize,
    ) -> (Tailer, ChunkReceiver, PodLogPipeline, Arc<ResumeRanges>) {
        tail_with(dir, lines, max_chunk, &[])
    }

    fn tail_with(
        dir: &Path,
        lines: &[String],
        max_chunk: usize,
        buffered: &[BatchMeta],
    ) -> (Tailer, ChunkReceiver, PodLogPipeline, Arc<ResumeRanges>) {
        let pod = dir.join(POD);
        std::fs::create_dir_all(&pod).unwrap();
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(pod.join("0.log"), text).unwrap();
        let yaml = format!(
            "server: {{url: http://127.0.0.1:9}}\ndata_dir: {}\ninputs:\n  - type: pod_logs\n    path: {}\n    max_line_bytes: 512\n",
            dir.join("agent").display(),
            dir.join("pods").display()
        );
        let config = AgentConfig::from_yaml(&yaml).unwrap();
        let (mut tail, input, _) = config.file_input(&config.inputs[0]).expect("a file input");
        tail.max_chunk_bytes = max_chunk;
        tail.inotify = false;
        let (tailer, rx) = Tailer::start(tail, dir.join("checkpoints.json")).unwrap();
        let resume = Arc::new(ResumeRanges::new("pod_logs", buffered));
        let pipeline = PodLogPipeline::new(
            AgentIdentity {
                agent: "node-1".into(),
                ..Default::default()
            },
            input,
            "pod_logs".into(),
            Arc::clone(&resume),
            tailer.ack_handle(),
            Arc::new(AgentMetrics::default()),
        );
        (tailer, rx, pipeline, resume)
    }

    /// Feeds chunks until the file's `total` bytes were read; returns the batches.
    fn drain(
        rx: &ChunkReceiver,
        pipeline: &mut PodLogPipeline,
        total: u64,
    ) -> (Vec<PendingBatch>, FileKey) {
        let mut out = Vec::new();
        let mut key = None;
        let mut read = 0;
        while read < total {
            let chunk = rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .expect("a chunk");
            key = Some(chunk.file);
            read = read.max(chunk.end);
            out.extend(pipeline.process(chunk));
        }
        (out, key.unwrap())
    }

    fn cri(i: usize, tag: &str, msg: &str) -> String {
        format!(
            "2026-11-20T09:00:{:02}.{:09}Z stdout {tag} {msg}",
            i % 60,
            i
        )
    }

    #[test]
    fn split_lines_across_chunks_stay_whole_and_ranges_tile_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut lines = Vec::new();
        let mut expected = Vec::new();
        for i in 0..300 {
            if i % 7 == 3 {
                // A line the runtime split into three parts.
                lines.push(cri(i, "P", &format!("long-{i}-a-")));
                lines.push(cri(i, "P", "b-"));
                lines.push(cri(i, "F", "c"));
                expected.push(format!("long-{i}-a-b-c"));
            } else {
                lines.push(cri(i, "F", &format!("line {i}")));
                expected.push(format!("line {i}"));
            }
        }
        let total = lines.iter().map(|l| l.len() as u64 + 1).sum();
        // Chunks of ~700 bytes: split lines often straddle two chunks.
        let (tailer, rx, mut pipeline, _) = tail(dir.path(), &lines, 700);
        let (batches, key) = drain(&rx, &mut pipeline, total);
        let got: Vec<String> = batches
            .iter()
            .flat_map(|b| b.batch.container_logs.iter().map(|l| l.message.clone()))
            .collect();
        assert_eq!(got, expected);
        // Batch ranges follow each other without gap or overlap, and ids are content-derived.
        for pair in batches.windows(2) {
            assert_eq!(pair[0].batch.end, pair[1].batch.start);
        }
        assert_eq!(batches.last().unwrap().batch.end, total);
        for b in &batches {
            let o = &b.batch.origin;
            assert_eq!(
                b.batch.id,
                batch_id(&o.agent, &o.input, &o.stream, b.batch.start, b.batch.end)
            );
            assert_eq!(o.pod.as_ref().unwrap().namespace.as_deref(), Some("shop"));
        }
        // The tailer's checkpoint moves only when batches are acknowledged, in any order.
        let ack = tailer.ack_handle();
        let mut tickets: Vec<Arc<Ticket>> =
            batches.into_iter().rev().flat_map(|b| b.tickets).collect();
        assert_eq!(ack.checkpoint(key), Some(0));
        let last = tickets.remove(0);
        tickets.iter().for_each(|t| t.release());
        assert!(ack.checkpoint(key).unwrap() < total);
        last.release();
        assert_eq!(ack.checkpoint(key), Some(total));
        tailer.shutdown().unwrap();
    }

    #[test]
    fn lines_of_buffered_batches_are_skipped_and_wait_for_their_ack() {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> = (0..100)
            .map(|i| cri(i, "F", &format!("line {i}")))
            .collect();
        let offsets: Vec<u64> = lines
            .iter()
            .scan(0u64, |at, l| {
                *at += l.len() as u64 + 1;
                Some(*at)
            })
            .collect();
        let total = *offsets.last().unwrap();
        // A first run sent lines 0..40 as one batch, which is still in the disk buffer. The
        // file's key is known once the tailer identified it, so the resume ranges are set
        // after the first chunk arrives (before it is processed).
        let (tailer, rx, mut pipeline, _) = tail(dir.path(), &lines, 1 << 20);
        let first = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
        let stream = first.file.to_string();
        // Rebuild the pipeline with the buffered range now that the key is known.
        let buffered = [BatchMeta {
            id: batch_id("node-1", "pod_logs", &stream, 0, offsets[39]),
            input: "pod_logs".into(),
            stream: stream.clone(),
            start: 0,
            end: offsets[39],
            records: 40,
        }];
        let resume = Arc::new(ResumeRanges::new("pod_logs", &buffered));
        pipeline.resume = Arc::clone(&resume);
        let key = first.file;
        let batches = pipeline.process(first);
        assert_eq!(batches.len(), 1, "only the lines after the buffered batch");
        let b = &batches[0].batch;
        assert_eq!((b.start, b.end), (offsets[39], total));
        assert_eq!(b.container_logs.len(), 60);
        assert_eq!(b.container_logs[0].message, "line 40");
        let ack = tailer.ack_handle();
        for t in &batches[0].tickets {
            t.release();
        }
        // The chunk also holds the buffered batch's lines: it waits for that batch.
        assert_eq!(ack.checkpoint(key), Some(0));
        resume.acked(&stream, &buffered[0].id);
        assert_eq!(ack.checkpoint(key), Some(total));
        tailer.shutdown().unwrap();
    }

    #[test]
    fn pod_identity_comes_from_the_path() {
        let id = pod_identity_from_path(Path::new(
            "/var/log/pods/shop_web-7d4b9c-x2v8p_1f2e3d4c-aaaa-bbbb-cccc-123456789abc/nginx/0.log",
        ))
        .unwrap();
        assert_eq!(id.namespace.as_deref(), Some("shop"));
        assert_eq!(id.pod.as_deref(), Some("web-7d4b9c-x2v8p"));
        assert_eq!(
            id.pod_uid.as_deref(),
            Some("1f2e3d4c-aaaa-bbbb-cccc-123456789abc")
        );
        assert_eq!(id.container.as_deref(), Some("nginx"));
        assert!(pod_identity_from_path(Path::new("/var/log/pods/bad/nginx/0.log")).is_none());
        let rotated = pod_identity_from_path(Path::new(
            "/var/log/pods/kube-system_coredns-1_1f2e3d4c-aaaa-bbbb-cccc-123456789abc/coredns/0.log.20261120-090001",
        ))
        .unwrap();
        assert_eq!(rotated.container.as_deref(), Some("coredns"));
    }

    #[test]
    fn container_logs_get_kubernetes_metadata_and_excluded_pods_are_skipped() {
        use ::kube::runtime::watcher::Event;
        let pod = |exclude: &str| -> k8s_openapi::api::core::v1::Pod {
            serde_json::from_value(serde_json::json!({
                "kind": "Pod", "apiVersion": "v1",
                "metadata": {"name": "web-1", "namespace": "shop",
                    "uid": "1f2e3d4c-aaaa-bbbb-cccc-123456789abc", "resourceVersion": "7",
                    "labels": {"app": "web"},
                    "annotations": {"kestrel.io/exclude": exclude},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                        "name": "web", "uid": "u", "controller": true}]},
                "spec": {"nodeName": "node-1", "serviceAccountName": "web",
                    "containers": [{"name": "nginx", "image": "nginx:1.27"}]}
            }))
            .unwrap()
        };
        for (exclude, want_lines) in [("false", 20), ("true", 0)] {
            let dir = tempfile::tempdir().unwrap();
            let lines: Vec<String> = (0..20).map(|i| cri(i, "F", &format!("line {i}"))).collect();
            let total = lines.iter().map(|l| l.len() as u64 + 1).sum();
            let store = PodMetadataStore::new(&crate::kube::KubernetesConfig::default());
            store.apply_pod_for_test(Event::Apply(pod(exclude)));
            let (tailer, rx, pipeline, _) = tail(dir.path(), &lines, 1 << 20);
            let mut pipeline = pipeline.with_pod_metadata(store);
            let (batches, _) = drain(&rx, &mut pipeline, total);
            let logs: usize = batches.iter().map(|b| b.batch.container_logs.len()).sum();
            assert_eq!(logs, want_lines, "exclude annotation {exclude}");
            for b in batches.iter().filter(|b| b.batch.record_count() > 0) {
                let pod = b.batch.origin.pod.as_ref().unwrap();
                assert_eq!(pod.namespace.as_deref(), Some("shop"));
                assert_eq!(pod.image.as_deref(), Some("nginx:1.27"));
                assert_eq!(pod.labels.as_deref(), Some(r#"{"app":"web"}"#));
                assert_eq!(pod.owner_kind.as_deref(), Some("StatefulSet"));
                assert_eq!(pod.service_account.as_deref(), Some("web"));
            }
            batches
                .into_iter()
                .flat_map(|b| b.tickets)
                .for_each(|t| t.release());
            tailer.shutdown().unwrap();
        }
    }

    /// A tailer and pipeline over the pod log in `dir` (written if `lines` is given) with
    /// `input_yaml` added to the pod logs input and `top_yaml` to the configuration.
    fn processed(
        dir: &Path,
        lines: Option<&[String]>,
        max_chunk: usize,
        input_yaml: &str,
        top_yaml: &str,
        checkpoints: &str,
    ) -> (Tailer, ChunkReceiver, PodLogPipeline) {
        let pod = dir.join(POD);
        std::fs::create_dir_all(&pod).unwrap();
        if let Some(lines) = lines {
            let mut text = lines.join("\n");
            text.push('\n');
            std::fs::write(pod.join("0.log"), text).unwrap();
        }
        let yaml = format!(
            "server: {{url: http://127.0.0.1:9}}\ndata_dir: {}\ninputs:\n  - type: pod_logs\n    path: {}\n    max_line_bytes: 512\n{input_yaml}{top_yaml}",
            dir.join("agent").display(),
            dir.join("pods").display()
        );
        let config = AgentConfig::from_yaml(&yaml).unwrap();
        let (mut tail, input, _) = config.file_input(&config.inputs[0]).unwrap();
        tail.max_chunk_bytes = max_chunk;
        tail.inotify = false;
        let (tailer, rx) = Tailer::start(tail, dir.join(checkpoints)).unwrap();
        let pipeline = PodLogPipeline::new(
            AgentIdentity {
                agent: "node-1".into(),
                ..Default::default()
            },
            input,
            "pod_logs".into(),
            Arc::new(ResumeRanges::default()),
            tailer.ack_handle(),
            Arc::new(AgentMetrics::default()),
        )
        .with_processing(config.processing(&config.inputs[0]).unwrap());
        (tailer, rx, pipeline)
    }

    fn cri_on(i: usize, stream: &str, msg: &str) -> String {
        format!("2026-11-20T09:00:{:02}.{:09}Z {stream} F {msg}", i % 60, i)
    }

    /// Java-like records on stdout and stderr, interleaved line by line, some split by the
    /// runtime; returns the lines and the records expected per stream.
    fn interleaved_traces() -> (Vec<String>, Vec<String>, Vec<String>) {
        let mut lines = Vec::new();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut i = 0;
        for r in 0..60 {
            let frames = r % 5;
            let mut rec_out = format!("2026-11-20 INFO out {r}");
            let mut rec_err = format!("2026-11-20 ERROR err {r}");
            let mut pairs = vec![(rec_out.clone(), rec_err.clone())];
            for f in 0..frames {
                let o = format!("\tat out.Frame{f}(F.java:{r})");
                let e = format!("\tat err.Frame{f}(E.java:{r})");
                rec_out.push('\n');
                rec_out.push_str(&o);
                rec_err.push('\n');
                rec_err.push_str(&e);
                pairs.push((o, e));
            }
            for (o, e) in pairs {
                i += 1;
                if i % 9 == 0 {
                    // The runtime split this one into two parts.
                    let (a, b) = o.split_at(o.len() / 2);
                    lines.push(format!("2026-11-20T09:00:00.{i:09}Z stdout P {a}"));
                    lines.push(format!("2026-11-20T09:00:00.{i:09}Z stdout F {b}"));
                } else {
                    lines.push(cri_on(i, "stdout", &o));
                }
                lines.push(cri_on(i, "stderr", &e));
            }
            out.push(rec_out);
            err.push(rec_err);
        }
        (lines, out, err)
    }

    const JAVA: &str = "    multiline:\n      - {preset: java, timeout: 2s}\n";

    fn messages(batches: &[PendingBatch], stream: LogStream) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| &b.batch.container_logs)
            .filter(|l| l.stream == stream)
            .map(|l| l.message.clone())
            .collect()
    }

    /// Reads the whole file, then lets the multiline timeout pass.
    fn read_all(
        rx: &ChunkReceiver,
        pipeline: &mut PodLogPipeline,
        total: u64,
    ) -> Vec<PendingBatch> {
        let (mut batches, _) = drain(rx, pipeline, total);
        assert!(pipeline.has_pending_records());
        batches.extend(pipeline.flush_expired_at(i64::MAX));
        assert!(!pipeline.has_pending_records());
        batches
    }

    #[test]
    fn multiline_records_stay_whole_across_chunks_and_never_straddle_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (lines, want_out, want_err) = interleaved_traces();
        let total: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
        for chunk in [600, 1000, 1 << 20] {
            let (tailer, rx, mut pipeline) = processed(
                dir.path(),
                Some(&lines),
                chunk,
                JAVA,
                "",
                &format!("checkpoints-{chunk}.json"),
            );
            let batches = read_all(&rx, &mut pipeline, total);
            assert_eq!(
                messages(&batches, LogStream::Stdout),
                want_out,
                "chunk {chunk}"
            );
            assert_eq!(
                messages(&batches, LogStream::Stderr),
                want_err,
                "chunk {chunk}"
            );
            for pair in batches.windows(2) {
                assert!(pair[0].batch.end <= pair[1].batch.start);
            }
            assert_eq!(batches.last().unwrap().batch.end, total);
            let m = &pipeline.metrics;
            assert_eq!(m.multiline_records.get(), 120);
            assert_eq!(m.multiline_timeout_flushes.get(), 2);
            // Acknowledging every batch moves the checkpoint to the end, not before.
            let key = rx_key(&batches);
            let ack = tailer.ack_handle();
            let mut tickets: Vec<Arc<Ticket>> =
                batches.into_iter().flat_map(|b| b.tickets).collect();
            let last = tickets.pop().unwrap();
            tickets.iter().for_each(|t| t.release());
            assert!(ack.checkpoint(key).unwrap() < total);
            last.release();
            assert_eq!(ack.checkpoint(key), Some(total));
            tailer.shutdown().unwrap();
        }
    }

    fn rx_key(batches: &[PendingBatch]) -> FileKey {
        match &batches[0].tickets[0].target {
            AckTarget::File { file, .. } => *file,
            AckTarget::Position(_) => panic!("a file pipeline's ticket acknowledges a file"),
        }
    }

    #[test]
    fn a_restart_over_buffered_multiline_batches_repeats_and_loses_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let (lines, want_out, want_err) = interleaved_traces();
        let total: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
        let (tailer, rx, mut pipeline) =
            processed(dir.path(), Some(&lines), 700, JAVA, "", "first.json");
        let first = read_all(&rx, &mut pipeline, total);
        tailer.shutdown().unwrap();
        assert!(first.len() > 5, "{} batches", first.len());
        // The first run "crashed" with its first k batches in the disk buffer and nothing
        // acknowledged: the second run reads the file from 0 with bigger chunks.
        for k in [1, first.len() / 2, first.len() - 1] {
            let buffered: Vec<BatchMeta> = first[..k]
                .iter()
                .map(|b| BatchMeta {
                    id: b.batch.id.clone(),
                    input: "pod_logs".into(),
                    stream: b.batch.origin.stream.clone(),
                    start: b.batch.start,
                    end: b.batch.end,
                    records: b.batch.record_count() as u32,
                })
                .collect();
            let (tailer, rx, mut pipeline) = processed(
                dir.path(),
                None,
                1500,
                JAVA,
                "",
                &format!("second-{k}.json"),
            );
            pipeline.resume = Arc::new(ResumeRanges::new("pod_logs", &buffered));
            let second = read_all(&rx, &mut pipeline, total);
            for b in &second {
                for m in &buffered {
                    assert!(
                        b.batch.end <= m.start || b.batch.start >= m.end,
                        "batch [{}, {}) overlaps a buffered one [{}, {})",
                        b.batch.start,
                        b.batch.end,
                        m.start,
                        m.end
                    );
                }
            }
            let mut all: Vec<PendingBatch> = Vec::new();
            for b in &first[..k] {
                all.push(PendingBatch {
                    batch: b.batch.clone(),
                    tickets: Vec::new(),
                });
            }
            all.extend(second);
            all.sort_by_key(|b| b.batch.start);
            assert_eq!(messages(&all, LogStream::Stdout), want_out, "k = {k}");
            assert_eq!(messages(&all, LogStream::Stderr), want_err, "k = {k}");
            tailer.shutdown().unwrap();
        }
    }

    #[test]
    fn a_quiet_files_last_record_is_shipped_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> = [
            "2026-11-20 ERROR failed",
            "java.lang.IllegalStateException: boom",
            "\tat a.B.c(B.java:1)",
        ]
        .iter()
        .enumerate()
        .map(|(i, l)| cri_on(i, "stdout", l))
        .collect();
        let total: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
        let (tailer, rx, mut pipeline) =
            processed(dir.path(), Some(&lines), 1 << 20, JAVA, "", "c.json");
        let chunk = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
        let key = chunk.file;
        assert!(
            pipeline.process_at(chunk, 1_000).is_empty(),
            "the record may go on"
        );
        let two_seconds = 2_000_000_000;
        assert!(pipeline
            .flush_expired_at(1_000 + two_seconds - 1)
            .is_empty());
        let batches = pipeline.flush_expired_at(1_000 + two_seconds);
        assert_eq!(batches.len(), 1);
        let b = &batches[0].batch;
        assert_eq!((b.start, b.end), (0, total));
        assert_eq!(
            b.container_logs[0].message,
            "2026-11-20 ERROR failed\njava.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)"
        );
        let ack = tailer.ack_handle();
        assert_eq!(ack.checkpoint(key), Some(0));
        batches
            .into_iter()
            .flat_map(|b| b.tickets)
            .for_each(|t| t.release());
        assert_eq!(ack.checkpoint(key), Some(total));
        tailer.shutdown().unwrap();
    }

    #[test]
    fn filtered_lines_are_dropped_counted_and_still_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> = (0..200)
            .map(|i| {
                if i % 4 == 0 {
                    cri(i, "F", &format!("GET /healthz 200 probe {i}"))
                } else {
                    cri(i, "F", &format!("order {i} placed"))
                }
            })
            .collect();
        let total: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
        let filters =
            "    filters:\n      - {name: health, action: drop, message: 'GET /healthz'}\n";
        let (tailer, rx, mut pipeline) =
            processed(dir.path(), Some(&lines), 600, filters, "", "c.json");
        let (batches, key) = drain(&rx, &mut pipeline, total);
        let got: Vec<String> = batches
            .iter()
            .flat_map(|b| b.batch.container_logs.iter().map(|l| l.message.clone()))
            .collect();
        assert_eq!(got.len(), 150);
        assert!(got.iter().all(|m| m.starts_with("order ")));
        let dropped = pipeline
            .metrics
            .dropped_by_filter
            .get_or_create(&vec![
                ("input".to_string(), "pod_logs".to_string()),
                ("filter".to_string(), "health".to_string()),
            ])
            .get();
        assert_eq!(dropped, 50);
        batches
            .into_iter()
            .flat_map(|b| b.tickets)
            .for_each(|t| t.release());
        assert_eq!(tailer.ack_handle().checkpoint(key), Some(total));
        tailer.shutdown().unwrap();

        // Every line dropped: no batch at all, and the checkpoint still reaches the end.
        let dir = tempfile::tempdir().unwrap();
        let all = "    filters:\n      - {name: everything, action: drop, namespaces: [shop]}\n";
        let (tailer, rx, mut pipeline) =
            processed(dir.path(), Some(&lines), 600, all, "", "c.json");
        let (batches, key) = drain(&rx, &mut pipeline, total);
        assert!(batches.is_empty());
        assert_eq!(tailer.ack_handle().checkpoint(key), Some(total));
        tailer.shutdown().unwrap();
    }

    #[test]
    fn secrets_are_redacted_before_batching_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let lines = vec![
            cri(0, "F", "login ok password=hunter2 user=bob"),
            cri(1, "F", "plain line"),
            cri(
                2,
                "F",
                "calling with Authorization: Bearer abcdefgh12345678",
            ),
            // Not a CRI line: kept aside as a dead letter, redacted as well.
            "garbage AKIAIOSFODNN7EXAMPLE".to_string(),
        ];
        let total: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
        let rules = "redaction:\n  rules:\n    - {name: user, pattern: 'user=\\w+', replacement: 'user=[REDACTED:user]'}\n";
        let (tailer, rx, mut pipeline) =
            processed(dir.path(), Some(&lines), 1 << 20, "", rules, "c.json");
        let (batches, _) = drain(&rx, &mut pipeline, total);
        let b = &batches[0].batch;
        let got: Vec<&str> = b
            .container_logs
            .iter()
            .map(|l| l.message.as_str())
            .collect();
        assert_eq!(
            got,
            [
                "login ok password=[REDACTED:password] user=[REDACTED:user]",
                "plain line",
                "calling with Authorization: Bearer [REDACTED:authorization]",
            ]
        );
        assert_eq!(
            b.dead_letters[0].payload,
            "garbage [REDACTED:aws_access_key_id]"
        );
        let count = |name: &str| {
            pipeline
                .metrics
                .redactions
                .get_or_create(&vec![("pattern".to_string(), name.to_string())])
                .get()
        };
        assert_eq!(
            (
                count("password"),
                count("user"),
                count("authorization"),
                count("aws_access_key_id")
            ),
            (1, 1, 1, 1)
        );
        batches
            .into_iter()
            .flat_map(|b| b.tickets)
            .for_each(|t| t.release());
        tailer.shutdown().unwrap();
    }
}
