//! Inputs that are not files: the systemd journal ([`journal`]), the kernel log device
//! ([`kmsg`]) and, in cluster mode, Kubernetes events ([`events`]).
//!
//! They keep the file inputs' delivery contract with positions of their own instead of byte
//! offsets:
//! - a batch covers `[start, end)` of a *stream* (a journal's sequence-number source, a boot's
//!   kernel sequence numbers, the events input's sequence), and its identity is
//!   `batch_id(agent, input, stream, start, end)`: a function of the input position;
//! - every batch is written to the disk buffer (fsynced) before it is sent;
//! - the input's [`StreamCheckpoint`] advances only over batches the server acknowledged
//!   without a gap, and is written atomically;
//! - after a restart, reading resumes after the last batch of the input still in the disk
//!   buffer (those are re-sent as they were), else from the checkpoint, so a record never gets
//!   two batch identities.

pub mod events;
pub mod journal;
pub mod kmsg;
#[cfg(test)]
mod testing;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kestrel_event::{batch_id, BatchOrigin, IngestBatch, INGEST_FORMAT_VERSION};
use serde::{Deserialize, Serialize};
use tracing::{error, warn};

use crate::buffer::{BatchMeta, BufferError, DiskBuffer};
use crate::config::InputConfig;
use crate::metrics::AgentMetrics;
use crate::pipeline::{AgentIdentity, OnAck, PendingBatch, ResumeRanges, Ticket};
use crate::ship::InFlight;
use crate::tail::PersistedCheckpoints;

/// Errors that stop a stream input.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("checkpoint {path}: {source}")]
    Checkpoint {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Buffer(#[from] BufferError),
    #[error(transparent)]
    Events(#[from] crate::kube::K8sEventsError),
    #[error("inputs.{0} needs the Kubernetes API, and no client configuration was found (in-cluster service account, `kubernetes.kubeconfig` or $KUBECONFIG)")]
    NoKubernetes(String),
}

/// A stream input's saved position: what the server acknowledged without a gap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPosition {
    /// Where reading resumes (a journal cursor); `None` before the first start.
    #[serde(default)]
    pub position: Option<String>,
    /// Per stream, the end of its last acknowledged batch; the stream advanced last is last.
    #[serde(default)]
    pub ends: Vec<(String, u64)>,
}

/// Streams whose ends are remembered (one per journal sequence source or kernel boot).
const MAX_STREAMS: usize = 32;

impl SavedPosition {
    /// The acknowledged end of `stream`.
    pub fn end(&self, stream: &str) -> Option<u64> {
        self.ends.iter().find(|(s, _)| s == stream).map(|&(_, e)| e)
    }

    /// Whether the acknowledged point has passed the end of `meta` (a batch still in the
    /// buffer's open segment after it was acknowledged).
    pub fn covers(&self, meta: &BatchMeta) -> bool {
        self.end(&meta.stream).is_some_and(|e| e >= meta.end)
    }

    fn set_end(&mut self, stream: &str, end: u64) {
        let end = self.end(stream).map_or(end, |e| e.max(end));
        self.ends.retain(|(s, _)| s != stream);
        self.ends.push((stream.to_owned(), end));
        if self.ends.len() > MAX_STREAMS {
            self.ends.remove(0);
        }
    }
}

/// One batch handed out and not yet acknowledged with everything before it.
#[derive(Debug)]
struct Slot {
    id: u64,
    stream: String,
    end: u64,
    position: Option<String>,
    acked: bool,
}

#[derive(Debug, Default)]
struct Ledger {
    saved: SavedPosition,
    slots: VecDeque<Slot>,
    next_slot: u64,
}

/// The acknowledged position of a journal or kmsg input, in `<data_dir>/checkpoints/<input>.json`
/// (written atomically), and the order in which its batches were handed out.
#[derive(Debug)]
pub struct StreamCheckpoint {
    path: PathBuf,
    ledger: Mutex<Ledger>,
    /// What the disk buffer's clean-up reads: a delivered batch leaves the buffer once the
    /// checkpoint on disk has passed its end.
    persisted: Arc<PersistedCheckpoints>,
}

impl StreamCheckpoint {
    /// Opens the checkpoint at `path`; a missing file is a first start, an unreadable one is
    /// reported and treated as a first start.
    pub fn open(path: PathBuf) -> Result<Arc<StreamCheckpoint>, StreamError> {
        let saved = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!(path = %path.display(), error = %e, "checkpoint unreadable; starting as on a first start");
                SavedPosition::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SavedPosition::default(),
            Err(source) => return Err(StreamError::Checkpoint { path, source }),
        };
        let persisted = Arc::new(PersistedCheckpoints::default());
        persisted.record_offsets(saved.ends.iter().cloned());
        Ok(Arc::new(StreamCheckpoint {
            path,
            ledger: Mutex::new(Ledger {
                saved,
                ..Ledger::default()
            }),
            persisted,
        }))
    }

    /// The acknowledged position.
    pub fn saved(&self) -> SavedPosition {
        self.lock().saved.clone()
    }

    /// The checkpoint as on disk, for the shipper.
    pub fn persisted(&self) -> Arc<PersistedCheckpoints> {
        Arc::clone(&self.persisted)
    }

    /// Records where a first start begins (the journal's last entry), before anything is read.
    pub fn start_at(&self, position: String) -> Result<(), StreamError> {
        let mut ledger = self.lock();
        ledger.saved.position = Some(position);
        self.write(&ledger.saved)
    }

    /// Registers a batch ending at `end` of `stream` (and at `position`, if the input resumes
    /// from positions), in the input's order; its ticket advances the checkpoint once the
    /// server has acknowledged it and every batch registered before.
    pub fn ticket(
        self: &Arc<Self>,
        stream: &str,
        end: u64,
        position: Option<String>,
    ) -> Arc<Ticket> {
        let mut ledger = self.lock();
        let id = ledger.next_slot;
        ledger.next_slot += 1;
        ledger.slots.push_back(Slot {
            id,
            stream: stream.to_owned(),
            end,
            position,
            acked: false,
        });
        Ticket::for_position(Box::new(SlotAck {
            checkpoint: Arc::clone(self),
            slot: id,
        }))
    }

    fn ack(&self, slot: u64) {
        let mut ledger = self.lock();
        let Some(s) = ledger.slots.iter_mut().find(|s| s.id == slot) else {
            return;
        };
        s.acked = true;
        let mut advanced = false;
        while ledger.slots.front().is_some_and(|s| s.acked) {
            let s = ledger.slots.pop_front().expect("front exists");
            if let Some(p) = s.position {
                ledger.saved.position = Some(p);
            }
            ledger.saved.set_end(&s.stream, s.end);
            advanced = true;
        }
        if advanced {
            // A failed write is retried by the next acknowledgement; until then the buffer
            // keeps the batches (the persisted view did not move).
            if let Err(e) = self.write(&ledger.saved) {
                error!(error = %e, "cannot write an input checkpoint");
            }
        }
    }

    fn write(&self, saved: &SavedPosition) -> Result<(), StreamError> {
        let bytes = serde_json::to_vec(saved).expect("positions serialize");
        crate::tail::write_atomically(&self.path, &bytes).map_err(|source| {
            StreamError::Checkpoint {
                path: self.path.clone(),
                source,
            }
        })?;
        self.persisted.record_offsets(saved.ends.iter().cloned());
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Acknowledges one slot of a [`StreamCheckpoint`].
#[derive(Debug)]
struct SlotAck {
    checkpoint: Arc<StreamCheckpoint>,
    slot: u64,
}

impl OnAck for SlotAck {
    fn acknowledged(&self) {
        self.checkpoint.ack(self.slot);
    }
}

/// The batches of `input` left in the disk buffer by the previous run, in buffer order.
pub fn buffered_of<'a>(buffered: &'a [BatchMeta], input: &'a str) -> Vec<&'a BatchMeta> {
    buffered.iter().filter(|m| m.input == input).collect()
}

/// Of the batches left in the buffer, those the checkpoint has not passed: reading resumes
/// after the last of them. (The others were acknowledged and are only re-sent; the server
/// keeps one copy.)
pub fn not_acknowledged<'a>(
    buffered: &[&'a BatchMeta],
    saved: &SavedPosition,
) -> Vec<&'a BatchMeta> {
    buffered
        .iter()
        .copied()
        .filter(|m| !saved.covers(m))
        .collect()
}

/// Makes the acknowledgement of a batch left in the disk buffer (re-sent by the shipper, which
/// reports it to `resume`) release `ticket`.
pub fn wait_for_buffered(resume: &ResumeRanges, meta: &BatchMeta, ticket: Arc<Ticket>) {
    resume.cover(&meta.stream, meta.start, meta.end, &ticket);
    ticket.release();
}

/// Where the batches of a stream input go: compressed into the disk buffer, their tickets
/// registered with the shipper.
#[derive(Debug, Clone)]
pub struct BatchSink {
    pub(crate) identity: AgentIdentity,
    pub(crate) input: String,
    pub(crate) buffer: Arc<DiskBuffer>,
    pub(crate) in_flight: Arc<InFlight>,
    pub(crate) metrics: Arc<AgentMetrics>,
    pub(crate) zstd_level: i32,
}

impl BatchSink {
    /// The origin of this input's batches for `stream`.
    pub fn origin(&self, stream: &str) -> BatchOrigin {
        BatchOrigin {
            agent: self.identity.agent.clone(),
            cluster: self.identity.cluster.clone(),
            node: self.identity.node.clone(),
            input: self.input.clone(),
            stream: stream.to_owned(),
            file: None,
            pod: None,
        }
    }

    /// Gives `records` the identity of `[start, end)` of `stream` and writes it to the disk
    /// buffer (waiting while the buffer is full). Blocks: call from a thread that may.
    pub fn write(
        &self,
        stream: &str,
        start: u64,
        end: u64,
        mut records: IngestBatch,
        ticket: Arc<Ticket>,
    ) -> Result<(), BufferError> {
        let origin = self.origin(stream);
        records.version = INGEST_FORMAT_VERSION;
        records.id = batch_id(&origin.agent, &origin.input, stream, start, end);
        records.origin = origin;
        records.start = start;
        records.end = end;
        crate::buffer_batch(
            &self.buffer,
            &self.in_flight,
            &self.metrics,
            PendingBatch {
                batch: records,
                tickets: vec![ticket],
            },
            self.zstd_level,
        )
    }
}

/// A running stream input: stopped and joined at shutdown.
#[derive(Debug)]
pub enum StreamTask {
    Thread(std::thread::JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

/// What starting a stream input needs from the agent.
pub struct StreamContext<'a> {
    pub sink: BatchSink,
    /// The directory of the agent's checkpoints.
    pub checkpoints: &'a Path,
    /// Batches of every input found in the disk buffer at start, in buffer order.
    pub buffered: &'a [BatchMeta],
    /// Told by the shipper when a buffered batch of this input is acknowledged.
    pub resume: &'a ResumeRanges,
    /// Bytes of records (as read) that close a batch.
    pub max_batch_bytes: usize,
    /// Set when the agent stops.
    pub stop: Arc<std::sync::atomic::AtomicBool>,
    /// The Kubernetes client, for the events input.
    pub kube_client: Option<::kube::Client>,
}

/// Starts a journal, kmsg or Kubernetes events input; returns what runs it and the view of its
/// checkpoint on disk that the shipper's buffer clean-up reads.
pub fn start_input(
    input: &InputConfig,
    ctx: StreamContext<'_>,
) -> Result<(Vec<StreamTask>, Arc<PersistedCheckpoints>), StreamError> {
    let name = input.name();
    let buffered = buffered_of(ctx.buffered, name);
    let open = || StreamCheckpoint::open(ctx.checkpoints.join(format!("{name}.json")));
    match input {
        InputConfig::Journal(j) => {
            let checkpoint = open()?;
            let persisted = checkpoint.persisted();
            let thread = journal::start(
                j.clone(),
                ctx.sink,
                checkpoint,
                &buffered,
                ctx.resume,
                ctx.max_batch_bytes,
                ctx.stop,
            )?;
            Ok((vec![StreamTask::Thread(thread)], persisted))
        }
        InputConfig::Kmsg(k) => {
            let checkpoint = open()?;
            let persisted = checkpoint.persisted();
            let thread = kmsg::start(
                k.clone(),
                ctx.sink,
                checkpoint,
                &buffered,
                ctx.resume,
                ctx.max_batch_bytes,
                ctx.stop,
            )?;
            Ok((vec![StreamTask::Thread(thread)], persisted))
        }
        InputConfig::K8sEvents(e) => {
            let Some(client) = ctx.kube_client else {
                return Err(StreamError::NoKubernetes(name.to_owned()));
            };
            let persisted = Arc::new(PersistedCheckpoints::default());
            let tasks = events::start(
                client,
                e.clone(),
                ctx.sink,
                ctx.checkpoints,
                ctx.buffered,
                ctx.resume,
                Arc::clone(&persisted),
            )?;
            Ok((tasks, persisted))
        }
        InputConfig::PodLogs(_) | InputConfig::AuditFiles(_) | InputConfig::KernLog(_) => {
            unreachable!("file inputs are tailed, not started here")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpoint_advances_only_over_batches_acknowledged_without_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        let cp = StreamCheckpoint::open(path.clone()).unwrap();
        assert_eq!(cp.saved(), SavedPosition::default());
        cp.start_at("c0".into()).unwrap();
        let t1 = cp.ticket("s", 10, Some("c1".into()));
        let t2 = cp.ticket("s", 20, Some("c2".into()));
        let t3 = cp.ticket("s", 30, Some("c3".into()));
        t2.release();
        t3.release();
        // The first batch is not acknowledged: nothing moves, on disk or for the shipper.
        let on_disk: SavedPosition =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(on_disk.position.as_deref(), Some("c0"));
        assert_eq!(cp.persisted().offset("s"), None);
        t1.release();
        let on_disk: SavedPosition =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(on_disk.position.as_deref(), Some("c3"));
        assert_eq!(on_disk.end("s"), Some(30));
        assert_eq!(cp.persisted().offset("s"), Some(30));
        // A restart reads it back.
        let again = StreamCheckpoint::open(path).unwrap();
        assert_eq!(again.saved(), on_disk);
        assert_eq!(again.persisted().offset("s"), Some(30));
    }

    #[test]
    fn stream_inputs_are_checked_with_the_rest_of_the_config() {
        use crate::config::{AgentConfig, AgentMode};
        let head = "server: {url: http://127.0.0.1:7070}\ndata_dir: /tmp/k\n";
        let c = AgentConfig::from_yaml(&format!(
            "{head}inputs:\n  - type: journal\n    directory: /var/log/journal\n  - type: kmsg\n"
        ))
        .unwrap();
        assert_eq!(c.mode, AgentMode::Node);
        assert_eq!(
            c.inputs.iter().map(|i| i.name()).collect::<Vec<_>>(),
            ["journal", "kmsg"]
        );
        assert!(c.inputs.iter().all(|i| c.file_input(i).is_none()));
        // Every problem at once, the events input's mode among them.
        let err = AgentConfig::from_yaml(&format!(
            "{head}inputs:\n  - type: journal\n    units: ['']\n  - type: kmsg\n    max_batch_wait: 0s\n\
             \x20 - type: k8s_events\n    max_batch_events: 0\n"
        ))
        .unwrap_err()
        .to_string();
        for needle in [
            "inputs.journal.units",
            "inputs.kmsg.max_batch_wait",
            "inputs.k8s_events: max_batch_events",
            "kestrel agent --mode cluster",
        ] {
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
        // Cluster mode, from the file or from --mode: the events input, and only cluster inputs.
        let events = format!("{head}inputs: [{{type: k8s_events}}]\n");
        assert!(AgentConfig::from_yaml(&events).is_err());
        let c = AgentConfig::from_yaml_in_mode(&events, Some(AgentMode::Cluster)).unwrap();
        assert_eq!(c.mode, AgentMode::Cluster);
        let c = AgentConfig::from_yaml(&format!("{events}mode: cluster\n")).unwrap();
        assert_eq!(c.mode, AgentMode::Cluster);
        let err = AgentConfig::from_yaml_in_mode(
            &format!("{head}inputs: [{{type: kmsg}}]\n"),
            Some(AgentMode::Cluster),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("node inputs belong to the DaemonSet"), "{err}");
    }

    #[test]
    fn a_damaged_checkpoint_is_a_first_start_and_old_streams_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsg.json");
        std::fs::write(&path, b"{not json").unwrap();
        let cp = StreamCheckpoint::open(path).unwrap();
        assert_eq!(cp.saved(), SavedPosition::default());
        for i in 0..(MAX_STREAMS as u64 + 5) {
            cp.ticket(&format!("boot-{i}"), i, None).release();
        }
        let saved = cp.saved();
        assert_eq!(saved.ends.len(), MAX_STREAMS);
        assert_eq!(saved.end("boot-0"), None);
        assert_eq!(
            saved.end(&format!("boot-{}", MAX_STREAMS + 4)),
            Some(MAX_STREAMS as u64 + 4)
        );
    }
}
