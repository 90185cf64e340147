//! The Kubernetes events input: a cluster-wide watch of `events.k8s.io/v1` Events, turned into
//! [`K8sEvent`] records by `kestrel_parse::parse_k8s_event`, in batches with a stable identity.
//!
//! Positions: every event (or dead letter) gets the next number of a per-input sequence, so a
//! batch covers `[start, end)` of the stream [`STREAM`] and `kestrel_event::batch_id` gives it an
//! identity. The sequence and the resourceVersion to resume from are kept in a small checkpoint
//! file ([`EventCheckpoint`]), replaced atomically:
//! - when a batch is handed out, its range and the resourceVersion reached are recorded
//!   (`emitted`), before it can reach the disk buffer;
//! - when the server acknowledges a batch, the acknowledged point (resourceVersion, sequence)
//!   advances over every batch acknowledged without a gap.
//!
//! After a restart the watch resumes after the last batch found in the disk buffer (those are
//! re-sent as they were), else from the acknowledged point, so no event gets two identities.
//! A `410 Gone` (the resourceVersion expired) triggers a paginated re-list; events already sent
//! are skipped by `(uid, resourceVersion)` and, for etcd-backed API servers whose
//! resourceVersions are etcd revisions, by being at or below the position already reached.
//!
//! The watch is written here with `Api::watch` rather than kube-runtime's `watcher`, because the
//! runtime watcher always starts with a full list and cannot resume from a persisted
//! resourceVersion.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, WatchEvent, WatchParams,
};
use ::kube::{Client, ResourceExt};
use futures::StreamExt;
use kestrel_event::{
    batch_id, BatchOrigin, DeadLetter, IngestBatch, K8sEvent, INGEST_FORMAT_VERSION,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::config::K8sEventsInput;
use crate::buffer::BatchMeta;

/// The stream key of the events watch in batches.
pub const STREAM: &str = "events.k8s.io/v1";

/// Server-side timeout of one watch request; the watch is then renewed from where it was.
const WATCH_TIMEOUT_SECS: u32 = 290;
/// `(uid, resourceVersion)` pairs remembered to skip repeats.
const DEDUPE_CAPACITY: usize = 200_000;
/// Largest payload kept in a dead letter.
const DEAD_LETTER_PAYLOAD_BYTES: usize = 4096;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Errors of the events input.
#[derive(Debug, thiserror::Error)]
pub enum K8sEventsError {
    #[error("events checkpoint {path}: {source}")]
    Checkpoint {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One batch handed out by [`K8sEventSource::run`].
#[derive(Debug)]
pub struct K8sEventBatch {
    /// Always [`STREAM`].
    pub stream: String,
    /// First position covered.
    pub start: u64,
    /// One past the last position covered.
    pub end: u64,
    pub events: Vec<K8sEvent>,
    /// Events that could not be parsed (they use positions too).
    pub dead_letters: Vec<DeadLetter>,
    /// Call [`EventAck::ack`] when the server has acknowledged the batch.
    pub ack: EventAck,
}

impl K8sEventBatch {
    /// The ingest batch, with its identity from `origin`'s agent and input, the stream and the
    /// range. `origin.stream` is set to [`STREAM`].
    pub fn to_ingest(&self, mut origin: BatchOrigin) -> IngestBatch {
        origin.stream = self.stream.clone();
        IngestBatch {
            version: INGEST_FORMAT_VERSION,
            id: batch_id(
                &origin.agent,
                &origin.input,
                &self.stream,
                self.start,
                self.end,
            ),
            origin,
            start: self.start,
            end: self.end,
            k8s_events: self.events.clone(),
            dead_letters: self.dead_letters.clone(),
            ..IngestBatch::default()
        }
    }
}

/// Acknowledges one batch to the checkpoint.
#[derive(Debug, Clone)]
pub struct EventAck {
    checkpoint: EventCheckpoint,
    start: u64,
    end: u64,
}

impl EventAck {
    /// The server stored the batch: the checkpoint may advance over it.
    pub fn ack(&self) -> Result<(), K8sEventsError> {
        self.checkpoint.ack(self.start, self.end)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct CheckpointState {
    /// Where to watch from once everything handed out so far is acknowledged; `None`: list.
    resource_version: Option<String>,
    /// The position of the first event after `resource_version`.
    next_seq: u64,
    /// Batches handed out and not yet acknowledged without a gap, in order.
    #[serde(default)]
    emitted: Vec<Emitted>,
    /// A resourceVersion reached without events (bookmark, empty re-list), applied once every
    /// batch before it is acknowledged.
    #[serde(default)]
    after_drain: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Emitted {
    start: u64,
    end: u64,
    /// The watch position after the batch; `None` for batches in the middle of a re-list,
    /// which can not be resumed from.
    resource_version: Option<String>,
    acked: bool,
}

/// The events input's checkpoint file; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventCheckpoint {
    path: Arc<PathBuf>,
    state: Arc<Mutex<CheckpointState>>,
}

impl EventCheckpoint {
    /// Opens (or starts) the checkpoint at `path`. A damaged file is reported and replaced:
    /// the input then starts with a list.
    pub fn open(path: PathBuf) -> Result<EventCheckpoint, K8sEventsError> {
        let state = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(state) => state,
                Err(e) => {
                    warn!(path = %path.display(), error = %e,
                        "events checkpoint unreadable; starting with a list");
                    CheckpointState::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CheckpointState::default(),
            Err(source) => return Err(K8sEventsError::Checkpoint { path, source }),
        };
        Ok(EventCheckpoint {
            path: Arc::new(path),
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// The acknowledged point: `(resourceVersion, next position)`.
    pub fn acknowledged(&self) -> (Option<String>, u64) {
        let s = self.lock();
        (s.resource_version.clone(), s.next_seq)
    }

    /// Where to resume given the batches of this input found in the disk buffer: after the
    /// last buffered batch whose position is recorded, else the acknowledged point.
    pub(crate) fn resume_point(
        &self,
        buffered: &[BatchMeta],
        input: &str,
    ) -> (Option<String>, u64) {
        let s = self.lock();
        let mut rv = s.resource_version.clone();
        let mut seq = s.next_seq;
        let last_buffered = buffered
            .iter()
            .filter(|m| m.input == input && m.stream == STREAM)
            .map(|m| m.end)
            .max();
        if let Some(last) = last_buffered {
            for e in &s.emitted {
                if e.end > last {
                    break;
                }
                if let Some(v) = &e.resource_version {
                    rv = Some(v.clone());
                }
                seq = e.end;
            }
        }
        (rv, seq)
    }

    /// Records a batch handed out (before it is handed out).
    pub(crate) fn emit(
        &self,
        start: u64,
        end: u64,
        rv: Option<String>,
    ) -> Result<(), K8sEventsError> {
        let mut s = self.lock();
        // Batches the disk buffer lost are forgotten: what follows them supersedes them.
        s.emitted.retain(|e| e.end <= start);
        s.emitted.push(Emitted {
            start,
            end,
            resource_version: rv,
            acked: false,
        });
        self.persist(&s)
    }

    /// A position reached without events.
    fn quiet(&self, rv: String) -> Result<(), K8sEventsError> {
        let mut s = self.lock();
        if s.emitted.is_empty() {
            if s.resource_version.as_ref() == Some(&rv) {
                return Ok(());
            }
            s.resource_version = Some(rv);
            s.after_drain = None;
        } else {
            s.after_drain = Some(rv);
        }
        self.persist(&s)
    }

    /// The server acknowledged `[start, end)`.
    pub fn ack(&self, start: u64, end: u64) -> Result<(), K8sEventsError> {
        let mut s = self.lock();
        let Some(e) = s
            .emitted
            .iter_mut()
            .find(|e| e.start == start && e.end == end)
        else {
            return Ok(());
        };
        e.acked = true;
        let done = s.emitted.iter().take_while(|e| e.acked).count();
        for e in s.emitted.drain(..done).collect::<Vec<_>>() {
            if e.resource_version.is_some() {
                s.resource_version = e.resource_version;
            }
            s.next_seq = e.end;
        }
        if s.emitted.is_empty() {
            if let Some(rv) = s.after_drain.take() {
                s.resource_version = Some(rv);
            }
        }
        self.persist(&s)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CheckpointState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the state to a temporary file, syncs it and renames it over the checkpoint.
    fn persist(&self, state: &CheckpointState) -> Result<(), K8sEventsError> {
        let fail = |source| K8sEventsError::Checkpoint {
            path: self.path.to_path_buf(),
            source,
        };
        let json = serde_json::to_vec(state).expect("checkpoint serializes");
        let tmp = self.path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(fail)?;
            f.write_all(&json).map_err(fail)?;
            f.sync_all().map_err(fail)?;
        }
        std::fs::rename(&tmp, self.path.as_ref()).map_err(fail)?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// Remembers recently seen `(uid, resourceVersion)` pairs, oldest forgotten first.
#[derive(Debug, Default)]
struct Seen {
    set: HashSet<(String, String)>,
    order: VecDeque<(String, String)>,
}

impl Seen {
    /// False when already seen.
    fn insert(&mut self, key: (String, String)) -> bool {
        if !self.set.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > DEDUPE_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// Events waiting for their batch.
#[derive(Debug, Default)]
struct Pending {
    events: Vec<K8sEvent>,
    dead_letters: Vec<DeadLetter>,
    /// When the first one arrived.
    since: Option<Instant>,
}

impl Pending {
    fn len(&self) -> usize {
        self.events.len() + self.dead_letters.len()
    }
}

/// Why the input stops.
enum Stop {
    /// The channel of batches was closed: the agent is stopping.
    Closed,
    Failed(K8sEventsError),
}

impl From<K8sEventsError> for Stop {
    fn from(e: K8sEventsError) -> Self {
        Stop::Failed(e)
    }
}

/// The events watch of one input.
pub struct K8sEventSource {
    api: Api<DynamicObject>,
    input: K8sEventsInput,
    checkpoint: EventCheckpoint,
    /// The watch position: the latest resourceVersion seen; `None`: list first.
    position: Option<String>,
    /// The position expired (or there is none): list before watching.
    must_list: bool,
    next_seq: u64,
    seen: Seen,
    pending: Pending,
}

impl std::fmt::Debug for K8sEventSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K8sEventSource")
            .field("input", &self.input.name())
            .field("position", &self.position)
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

impl K8sEventSource {
    /// Opens the input: its checkpoint is `<data_dir>/<input>.k8s_events.json`. `buffered` are
    /// the batches found in the disk buffer at start (of every input; this one's are picked).
    pub fn open(
        client: Client,
        input: K8sEventsInput,
        data_dir: &Path,
        buffered: &[BatchMeta],
    ) -> Result<K8sEventSource, K8sEventsError> {
        let checkpoint =
            EventCheckpoint::open(data_dir.join(format!("{}.k8s_events.json", input.name())))?;
        let (position, next_seq) = checkpoint.resume_point(buffered, input.name());
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("events.k8s.io", "v1", "Event"),
            "events",
        );
        Ok(K8sEventSource {
            api: Api::all_with(client, &resource),
            input,
            checkpoint,
            must_list: position.is_none(),
            position,
            next_seq,
            seen: Seen::default(),
            pending: Pending::default(),
        })
    }

    /// The checkpoint, to acknowledge batches re-sent from the disk buffer after a restart
    /// ([`EventCheckpoint::ack`] with their range).
    pub fn checkpoint(&self) -> EventCheckpoint {
        self.checkpoint.clone()
    }

    /// Watches until `batches` is closed, sending batches of at most `max_batch_events` that
    /// wait at most `max_batch_wait`. API errors are retried with backoff; only a checkpoint
    /// that can not be written stops it.
    pub async fn run(mut self, batches: mpsc::Sender<K8sEventBatch>) -> Result<(), K8sEventsError> {
        let mut backoff = Duration::from_millis(100);
        let mut warned = false;
        loop {
            let result = match self.position.clone() {
                Some(rv) if !self.must_list => self.watch(&batches, &rv).await,
                _ => self.relist(&batches).await,
            };
            match result {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    if warned {
                        info!(
                            input = self.input.name(),
                            "kubernetes events watch recovered"
                        );
                        warned = false;
                    }
                }
                Err(WatchError::Stop(Stop::Closed)) => return Ok(()),
                Err(WatchError::Stop(Stop::Failed(e))) => return Err(e),
                Err(WatchError::Api(e)) => {
                    if !warned {
                        warn!(input = self.input.name(), error = %e,
                            "kubernetes events watch failed; retrying");
                        warned = true;
                    } else {
                        debug!(input = self.input.name(), error = %e, "events watch failed");
                    }
                    match self.flush(&batches).await {
                        Ok(()) => {}
                        Err(Stop::Closed) => return Ok(()),
                        Err(Stop::Failed(e)) => return Err(e),
                    }
                    let jitter = Duration::from_millis(rand::random_range(
                        0..=backoff.as_millis() as u64 / 2,
                    ));
                    tokio::time::sleep(backoff + jitter).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Lists every event (paginated), sends those not sent before, and moves the position to
    /// the list's resourceVersion.
    async fn relist(&mut self, batches: &mpsc::Sender<K8sEventBatch>) -> Result<(), WatchError> {
        let floor = self.position.as_deref().and_then(revision);
        let mut params = ListParams::default().limit(self.input.list_page_size);
        let mut list_rv = None;
        loop {
            let page = self.api.list(&params).await.map_err(WatchError::Api)?;
            if list_rv.is_none() {
                list_rv = page.metadata.resource_version.clone();
            }
            for obj in page.items {
                let rv = obj.resource_version();
                if floor.is_some_and(|f| rv.as_deref().and_then(revision).is_some_and(|r| r <= f)) {
                    continue;
                }
                self.take(&obj);
                if self.pending.len() >= self.input.max_batch_events {
                    // Not resumable from the middle of a list.
                    self.send(batches, None).await?;
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        let Some(list_rv) = list_rv.filter(|v| !v.is_empty()) else {
            return Err(WatchError::Api(::kube::Error::Api(Box::new(
                ::kube::core::Status::failure("event list without a resourceVersion", "BadList"),
            ))));
        };
        info!(input = self.input.name(), resource_version = %list_rv, "listed kubernetes events");
        self.position = Some(list_rv.clone());
        self.must_list = false;
        if self.pending.len() > 0 {
            self.send(batches, Some(list_rv)).await?;
        } else {
            self.checkpoint.quiet(list_rv).map_err(Stop::from)?;
        }
        Ok(())
    }

    /// One watch request from `rv`, until the server ends it.
    async fn watch(
        &mut self,
        batches: &mpsc::Sender<K8sEventBatch>,
        rv: &str,
    ) -> Result<(), WatchError> {
        let params = WatchParams::default().timeout(WATCH_TIMEOUT_SECS);
        let stream = match self.api.watch(&params, rv).await {
            Ok(s) => s,
            Err(::kube::Error::Api(status)) if status.code == 410 => {
                self.gone(rv);
                return Ok(());
            }
            Err(e) => return Err(WatchError::Api(e)),
        };
        futures::pin_mut!(stream);
        loop {
            let next = match self.pending.since {
                Some(since) => {
                    let deadline = since + self.input.max_batch_wait;
                    tokio::select! {
                        item = stream.next() => Some(item),
                        () = tokio::time::sleep_until(deadline) => None,
                    }
                }
                None => Some(stream.next().await),
            };
            let item = match next {
                None => {
                    self.flush(batches).await?;
                    continue;
                }
                Some(None) => {
                    self.flush(batches).await?;
                    return Ok(());
                }
                Some(Some(item)) => item,
            };
            match item {
                Ok(WatchEvent::Added(obj)) | Ok(WatchEvent::Modified(obj)) => {
                    if let Some(v) = obj.resource_version() {
                        self.position = Some(v);
                    }
                    self.take(&obj);
                    if self.pending.len() >= self.input.max_batch_events {
                        self.flush(batches).await?;
                    }
                }
                Ok(WatchEvent::Deleted(obj)) => {
                    // An event expiring (its TTL): not a new event.
                    if let Some(v) = obj.resource_version() {
                        self.position = Some(v);
                    }
                }
                Ok(WatchEvent::Bookmark(b)) => {
                    self.position = Some(b.metadata.resource_version.clone());
                    self.flush(batches).await?;
                    self.checkpoint
                        .quiet(b.metadata.resource_version)
                        .map_err(Stop::from)?;
                }
                Ok(WatchEvent::Error(status)) if status.code == 410 => {
                    self.flush(batches).await?;
                    self.gone(rv);
                    return Ok(());
                }
                Ok(WatchEvent::Error(status)) => {
                    self.flush(batches).await?;
                    return Err(WatchError::Api(::kube::Error::Api(status)));
                }
                Err(e) => {
                    self.flush(batches).await?;
                    return Err(WatchError::Api(e));
                }
            }
        }
    }

    /// The resourceVersion expired: list again. The position is kept as the floor for skipping
    /// what was sent before.
    fn gone(&mut self, rv: &str) {
        info!(input = self.input.name(), resource_version = %rv,
            "events resourceVersion expired (410 Gone); listing again");
        self.must_list = true;
    }

    /// Parses one event into the pending batch, unless it was seen before.
    fn take(&mut self, obj: &DynamicObject) {
        let uid = obj.uid().unwrap_or_default();
        let rv = obj.resource_version().unwrap_or_default();
        if !uid.is_empty() && !self.seen.insert((uid, rv)) {
            return;
        }
        let json = serde_json::to_vec(obj).expect("a decoded object serializes");
        match kestrel_parse::parse_k8s_event(&json) {
            Ok(event) => self.pending.events.push(event),
            Err(e) => {
                let payload =
                    String::from_utf8_lossy(&json[..json.len().min(DEAD_LETTER_PAYLOAD_BYTES)])
                        .into_owned();
                self.pending.dead_letters.push(DeadLetter {
                    time: now_nanos(),
                    source: self.input.name().to_owned(),
                    kind: e.kind().to_owned(),
                    reason: e.to_string(),
                    location: Some(format!(
                        "{}/{} resourceVersion {}",
                        obj.namespace().unwrap_or_default(),
                        obj.name_any(),
                        obj.resource_version().unwrap_or_default()
                    )),
                    size_bytes: json.len() as i64,
                    payload,
                });
            }
        }
        self.pending.since.get_or_insert_with(Instant::now);
    }

    /// Sends the pending events, resumable from the current position.
    async fn flush(&mut self, batches: &mpsc::Sender<K8sEventBatch>) -> Result<(), Stop> {
        if self.pending.len() == 0 {
            return Ok(());
        }
        let rv = self.position.clone();
        self.send(batches, rv).await
    }

    async fn send(
        &mut self,
        batches: &mpsc::Sender<K8sEventBatch>,
        rv: Option<String>,
    ) -> Result<(), Stop> {
        let pending = std::mem::take(&mut self.pending);
        let start = self.next_seq;
        let end = start + pending.len() as u64;
        self.checkpoint.emit(start, end, rv)?;
        self.next_seq = end;
        let batch = K8sEventBatch {
            stream: STREAM.to_owned(),
            start,
            end,
            events: pending.events,
            dead_letters: pending.dead_letters,
            ack: EventAck {
                checkpoint: self.checkpoint.clone(),
                start,
                end,
            },
        };
        batches.send(batch).await.map_err(|_| Stop::Closed)
    }
}

/// Why one list or watch ended.
enum WatchError {
    Stop(Stop),
    Api(::kube::Error),
}

impl From<Stop> for WatchError {
    fn from(s: Stop) -> Self {
        WatchError::Stop(s)
    }
}

/// A resourceVersion as an etcd revision, when it is one.
fn revision(rv: &str) -> Option<u64> {
    rv.parse().ok()
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
