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

use kestrel_event::{
    batch_id, BatchOrigin, DeadLetter, IngestBatch, LogStream, PodIdentity, INGEST_FORMAT_VERSION,
};
use kestrel_parse::{parse_cri, parse_docker, PartialMerger};

use crate::buffer::BatchMeta;
use crate::config::PodLogsInput;
use crate::kube::PodMetadataStore;
use crate::metrics::AgentMetrics;
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

/// What a pod log file's lines are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    Plain,
    Ingress,
    Dns,
}

/// Per-file state: the partial-line merger and what is carried into the next chunk.
struct FileState {
    merger: PartialMerger,
    pod: Option<PodIdentity>,
    kind: LineKind,
    skip: bool,
    /// Start of the oldest incomplete split line, per stream.
    pending_start: [Option<u64>; 2],
    /// Tickets of chunks whose incomplete split lines continue in later chunks.
    carried: Vec<Arc<Ticket>>,
    /// Where the next batch of this file starts (the carried line's start), if carrying.
    carry_start: Option<u64>,
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

    fn file_state(&mut self, key: FileKey, path: &Path) -> &mut FileState {
        let input = &self.input;
        let is_container = self.format == LineFormat::Container;
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
            FileState {
                merger: PartialMerger::new(input.max_line_bytes),
                pod,
                kind,
                skip,
                pending_start: [None, None],
                carried: Vec::new(),
                carry_start: None,
            }
        })
    }

    /// Decodes a chunk into zero or more batches.
    pub fn process(&mut self, chunk: Chunk) -> Vec<PendingBatch> {
        let ticket = Ticket::new(chunk.file, chunk.end, self.tailer.clone());
        let stream_key = chunk.file.to_string();
        let resume = Arc::clone(&self.resume);
        let use_resume = !resume.is_empty();
        let origin = BatchOrigin {
            agent: self.identity.agent.clone(),
            cluster: self.identity.cluster.clone(),
            node: self.identity.node.clone(),
            input: self.input_name.clone(),
            stream: stream_key.clone(),
            file: Some(chunk.path.display().to_string()),
            pod: None,
        };
        let metrics = Arc::clone(&self.metrics);
        let format = self.format;
        let path_text = chunk.path.display().to_string();
        let pod_metadata = self.pod_metadata.clone();
        let state = self.file_state(chunk.file, &chunk.path);
        let mut out = Vec::new();
        // Per chunk, not per file: the pod's labels may change, and its metadata may arrive
        // after its first lines (until then the path's metadata is used).
        let mut pod = state.pod.clone();
        let mut excluded = false;
        if let (Some(store), Some(pod)) = (&pod_metadata, pod.as_mut()) {
            store.enrich(pod);
            excluded = pod
                .pod_uid
                .as_deref()
                .is_some_and(|uid| store.is_excluded(uid));
        }
        let mut builder = BatchBuilder::new(origin, pod, state.carry_start.unwrap_or(chunk.start));
        builder.tickets.append(&mut state.carried);
        builder.tickets.push(ticket.hold());
        state.carry_start = None;

        metrics.lines_read.inc_by(u64::from(chunk.lines));
        for line in chunk.lines() {
            if use_resume && resume.cover(&stream_key, line.start, line.end, &ticket) {
                // Already in a buffered batch that is being re-sent: close the current batch
                // before it, and start the next one after it.
                if builder.has_records() {
                    out.push(builder.take(line.start, &ticket));
                }
                builder.start = line.end;
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
                    builder.audit_line(bytes, &path_text, line.start, &metrics);
                    continue;
                }
                LineFormat::KernLog { utc_offset_secs } => {
                    builder.kern_log_line(bytes, utc_offset_secs, &path_text, line.start, &metrics);
                    continue;
                }
            }
            // Docker's message may need unescaping (an owned string); CRI's is borrowed from
            // the chunk, so a plain CRI line is never copied before it becomes a record.
            let docker;
            let (time, stream, partial, message): (i64, LogStream, bool, &[u8]) =
                if bytes[0] == b'{' {
                    match parse_docker(bytes) {
                        Ok(d) => {
                            docker = d;
                            (
                                docker.time,
                                docker.stream,
                                docker.partial,
                                docker.message.as_bytes(),
                            )
                        }
                        Err(e) => {
                            builder.bad_container_line(
                                e.kind(),
                                e.to_string(),
                                &path_text,
                                line.start,
                                bytes,
                                &metrics,
                            );
                            continue;
                        }
                    }
                } else {
                    match parse_cri(bytes) {
                        Ok(c) => (c.time, c.stream, c.partial, c.message),
                        Err(e) => {
                            builder.bad_container_line(
                                e.kind(),
                                e.to_string(),
                                &path_text,
                                line.start,
                                bytes,
                                &metrics,
                            );
                            continue;
                        }
                    }
                };
            let slot = stream_slot(stream);
            if state.pending_start[slot].is_none() && partial {
                state.pending_start[slot] = Some(line.start);
            }
            if let Some(merged) = state.merger.push(time, stream, partial, message) {
                state.pending_start[stream_slot(merged.stream)] = None;
                if merged.invalid_utf8 {
                    metrics.invalid_utf8_lines.inc();
                }
                if merged.truncated {
                    metrics.truncated_lines.inc();
                }
                builder.line(state.kind, merged.into_container_log());
            }
        }
        if chunk.finished {
            // The file is gone and read to its end: a split line that never got its last part
            // is emitted as it is.
            while let Some(merged) = state.merger.flush() {
                builder.line(state.kind, merged.into_container_log());
            }
            state.pending_start = [None, None];
        }
        let carry = state.pending_start.iter().flatten().min().copied();
        let end = carry.unwrap_or(chunk.end).max(builder.start);
        if builder.has_records() {
            out.push(builder.take(end, &ticket));
        }
        // Bytes without records (skipped namespaces, blank lines) need no batch: their
        // tickets are simply not held for them.
        builder.start = end;
        if carry.is_some() {
            state.carry_start = Some(builder.start);
            state.carried = std::mem::take(&mut builder.tickets);
        } else {
            for t in builder.tickets.drain(..) {
                t.release();
            }
        }
        if chunk.finished {
            self.files.remove(&chunk.file);
        }
        // The pipeline's own reference: released now that every batch holds its own.
        ticket.release();
        out
    }
}

struct BatchBuilder {
    origin: BatchOrigin,
    pod: Option<PodIdentity>,
    start: u64,
    batch: IngestBatch,
    tickets: Vec<Arc<Ticket>>,
}

impl BatchBuilder {
    fn new(origin: BatchOrigin, pod: Option<PodIdentity>, start: u64) -> Self {
        BatchBuilder {
            origin,
            pod,
            start,
            batch: IngestBatch::default(),
            tickets: Vec::new(),
        }
    }

    fn has_records(&self) -> bool {
        self.batch.record_count() > 0
    }

    fn bad_container_line(
        &mut self,
        kind: &str,
        reason: String,
        path: &str,
        offset: u64,
        bytes: &[u8],
        metrics: &AgentMetrics,
    ) {
        self.reject(
            "pod_logs",
            kind,
            reason,
            format!("{path}:{offset}"),
            bytes,
            metrics,
        );
    }

    fn reject(
        &mut self,
        source: &str,
        kind: &str,
        reason: String,
        location: String,
        bytes: &[u8],
        metrics: &AgentMetrics,
    ) {
        metrics.parse_errors.inc();
        let cut = &bytes[..bytes.len().min(64 * 1024)];
        self.batch.dead_letters.push(DeadLetter {
            time: kestrel_event::time::now_nanos(),
            source: source.into(),
            kind: kind.into(),
            reason,
            location: Some(location),
            size_bytes: bytes.len() as i64,
            // Audit lines may hold secrets even when they do not parse.
            payload: kestrel_parse::redact_lexical(&String::from_utf8_lossy(cut)),
        });
    }

    /// An audit log line: redacted here, before it is buffered or sent; the server parses it.
    fn audit_line(&mut self, bytes: &[u8], path: &str, offset: u64, metrics: &AgentMetrics) {
        match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(mut event) if event.is_object() => {
                kestrel_parse::redact_value(&mut event);
                self.batch.audit.push(event.to_string());
            }
            Ok(_) => self.reject(
                "audit_file",
                "schema",
                "an audit log line must be a JSON object".into(),
                format!("{path}:{offset}"),
                bytes,
                metrics,
            ),
            Err(e) => self.reject(
                "audit_file",
                "invalid_json",
                format!("not JSON: {e}"),
                format!("{path}:{offset}"),
                bytes,
                metrics,
            ),
        }
    }

    /// A kern.log line: netfilter packet lines become `netflow` records; other kernel messages
    /// are not security records here and are skipped.
    fn kern_log_line(
        &mut self,
        bytes: &[u8],
        utc_offset_secs: i32,
        path: &str,
        offset: u64,
        metrics: &AgentMetrics,
    ) {
        let now = kestrel_event::time::now_nanos();
        let parsed = kestrel_parse::parse_kern_log(bytes, now, utc_offset_secs).and_then(|l| {
            l.map(|l| kestrel_parse::parse_packet(&l.text, l.time))
                .transpose()
                .map(Option::flatten)
        });
        match parsed {
            Ok(Some(packet)) => self.batch.netflow.push(packet),
            Ok(None) => {}
            Err(e) => self.reject(
                "kern_log",
                "invalid_line",
                e.to_string(),
                format!("{path}:{offset}"),
                bytes,
                metrics,
            ),
        }
    }

    fn line(&mut self, kind: LineKind, log: kestrel_event::ContainerLog) {
        match kind {
            LineKind::Ingress => {
                if let Ok(access) =
                    kestrel_parse::parse_ingress_default(log.message.as_bytes(), Some(log.time))
                {
                    self.batch.ingress.push(access);
                    return;
                }
            }
            LineKind::Dns => {
                // CoreDNS also prints banners and plugin messages: those stay container logs.
                if let Ok(Some(query)) =
                    kestrel_parse::parse_coredns(log.message.as_bytes(), log.time)
                {
                    self.batch.dns.push(query);
                    return;
                }
            }
            LineKind::Plain => {}
        }
        self.batch.container_logs.push(log);
    }

    /// Finishes the batch `[self.start, end)`: it takes the builder's ticket holds, and the
    /// builder goes on at `end` holding the current chunk's ticket again.
    fn take(&mut self, end: u64, current: &Arc<Ticket>) -> PendingBatch {
        let mut origin = self.origin.clone();
        origin.pod = self.pod.clone();
        let id = batch_id(
            &origin.agent,
            &origin.input,
            &origin.stream,
            self.start,
            end,
        );
        let mut batch = std::mem::take(&mut self.batch);
        batch.version = INGEST_FORMAT_VERSION;
        batch.id = id;
        batch.origin = origin;
        batch.start = self.start;
        batch.end = end;
        let tickets = std::mem::replace(&mut self.tickets, vec![current.hold()]);
        self.start = end;
        PendingBatch { batch, tickets }
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
}
