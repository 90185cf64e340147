//! Test support for the stream inputs: a real disk buffer and acknowledgements by hand, in
//! place of the shipper.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kestrel_event::IngestBatch;

use super::{BatchSink, StreamCheckpoint};
use crate::buffer::{BatchMeta, DiskBuffer, RecordId};
use crate::metrics::{AgentMetrics, InputMetrics};
use crate::pipeline::{AgentIdentity, ResumeRanges};
use crate::ship::InFlight;

/// One run of an input over a data directory: its buffer, checkpoint and metrics.
pub(crate) struct Harness {
    pub buffer: Arc<DiskBuffer>,
    /// Batches left in the buffer by the previous run.
    pub buffered: Vec<BatchMeta>,
    pub in_flight: Arc<InFlight>,
    pub metrics: Arc<AgentMetrics>,
    pub resume: Arc<ResumeRanges>,
    pub checkpoint: Arc<StreamCheckpoint>,
    pub input: String,
}

impl Harness {
    /// Opens (again) the buffer and checkpoint under `dir`.
    pub fn open(dir: &Path, input: &str) -> Harness {
        let (buffer, buffered) =
            DiskBuffer::open(dir.join("buffer"), 1 << 30, 1 << 20, true).unwrap();
        Harness {
            buffer: Arc::new(buffer),
            resume: Arc::new(ResumeRanges::new(input, &buffered)),
            buffered,
            in_flight: Arc::new(InFlight::default()),
            metrics: Arc::new(AgentMetrics::default()),
            checkpoint: StreamCheckpoint::open(dir.join(format!("{input}.json"))).unwrap(),
            input: input.to_owned(),
        }
    }

    pub fn sink(&self) -> BatchSink {
        BatchSink {
            identity: AgentIdentity {
                agent: "node-1".into(),
                node: Some("node-1".into()),
                cluster: None,
            },
            input: self.input.clone(),
            buffer: Arc::clone(&self.buffer),
            in_flight: Arc::clone(&self.in_flight),
            metrics: Arc::clone(&self.metrics),
            zstd_level: 1,
        }
    }

    pub fn buffered(&self) -> Vec<&BatchMeta> {
        super::buffered_of(&self.buffered, &self.input)
    }

    pub fn input_metrics(&self) -> InputMetrics {
        self.metrics.input(&self.input)
    }

    /// The next batch the shipper would send, decoded.
    pub fn next_batch(&self) -> Option<(RecordId, BatchMeta, IngestBatch)> {
        let b = self.buffer.next(Duration::from_secs(30)).unwrap()?;
        let json = zstd::bulk::decompress(&b.body, 64 << 20).unwrap();
        Some((b.id, b.meta, serde_json::from_slice(&json).unwrap()))
    }

    /// Batches until `done` says enough (generous deadline; not a timing assertion).
    pub fn batches_until(
        &self,
        mut done: impl FnMut(&[(RecordId, BatchMeta, IngestBatch)]) -> bool,
    ) -> Vec<(RecordId, BatchMeta, IngestBatch)> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut out = Vec::new();
        while !done(&out) {
            assert!(Instant::now() < deadline, "timed out waiting for batches");
            if let Some(b) = self.next_batch() {
                out.push(b);
            }
        }
        out
    }

    /// What the shipper does when the server acknowledged a batch: release its tickets, then
    /// (its clean-up) delete it from the buffer once the checkpoint on disk has passed it.
    pub fn ack(&self, id: RecordId, meta: &BatchMeta) {
        self.in_flight.acked(id);
        self.resume.acked(&meta.stream, &meta.id);
        if self
            .checkpoint
            .persisted()
            .offset(&meta.stream)
            .is_some_and(|end| end >= meta.end)
        {
            self.buffer.ack(id);
        }
    }
}
