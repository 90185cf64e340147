//! The file-tailing engine: reads log files matched by glob patterns into chunks of whole
//! lines, losing nothing on rotation and repeating nothing that was acknowledged.
//!
//! ```text
//!  inotify ─┐                     ┌──────── tailer thread ────────┐
//!  scan ────┼─► discover ─► files ─► round-robin turns: one chunk  ─► ChunkReceiver ─► consumer
//!  poll ────┘   (identity)          per file per turn (≤ max_chunk)    (bounded in bytes)  │
//!                                        │ register(file, start, end)                   │
//!                                        ▼                                              │
//!                                     Ledger ◄──────────── AckHandle::ack(file, end) ◄──┘
//!                                        │ contiguous acked prefix
//!                                        ▼
//!                      checkpoint thread: <checkpoint file> (tmp, fsync, rename, fsync dir)
//! ```
//!
//! # Interface
//! - [`Tailer::start`]`(config, checkpoint_path)` → `(Tailer, ChunkReceiver)`. The tailer runs
//!   on its own threads with blocking I/O; the consumer calls [`ChunkReceiver::recv`] (from a
//!   blocking task when async) and, once a chunk's bytes are durable downstream,
//!   [`AckHandle::ack`]`(chunk.file, chunk.end)` through a handle from [`Tailer::ack_handle`]:
//!   every chunk once, including an empty `finished` one.
//! - A [`Chunk`] is `[start, end)` of one file, whole lines only, each ending with `\n`.
//!   Given a start offset and the file's bytes, the chunk is always the same (it ends at the
//!   last `\n` within `max_chunk_bytes`), so a chunk re-read after a restart has the same
//!   `(file, start, end)` as before whenever the same bytes are there to read.
//! - [`Tailer::shutdown`] stops reading, writes the checkpoints and returns.
//! - [`TailMetrics`] holds counters and gauges as atomics.
//!
//! # Delivery
//! At least once from the tailer: after a restart each known file resumes at its checkpoint,
//! the end of the longest run of acknowledged chunks, so exactly the unacknowledged bytes are
//! read again (exactly once comes from the batch identity downstream). New files are read from
//! offset 0. The channel is bounded in bytes: when the consumer stops, the tailer stops reading,
//! and the files are the buffer.
//!
//! # Identity and rotation
//! See [`identity`] for file keys (device, inode, hash of the first line capped at
//! `fingerprint_bytes`) and how files shorter than that are handled. Then:
//! - **Rename rotation** (kubelet): the renamed file keeps its inode and key; it is read to its
//!   end from the open handle, and the new file at the old name is a new key read from 0.
//! - **Deleted or renamed-away files** (no longer matching any pattern) keep being read from the
//!   open handle; once read to the end and unchanged for `rotate_wait`, an incomplete last line is
//!   emitted with `\n` appended and a chunk with `finished` set is sent (with no data if nothing
//!   was left). Files are never closed while they have unread bytes.
//! - **Truncation** (the file is shorter than the offset read): reading restarts at 0. If the new
//!   first line differs, that is a new key; if not, the same key restarts at 0. Bytes the file
//!   held beyond the offset read, which could not be read before the truncation, are counted in
//!   `bytes_lost`.
//! - **copytruncate**: the copy (`x.log.1`) has a new inode but the old file's first bytes. A
//!   new file whose first bytes equal (over at least `fingerprint_bytes`, up to 64 KiB) those of a
//!   tailed file is taken for a copy and not read. When the tailed file is then truncated, the
//!   copy continues the old key from the offset read if its bytes before that offset hash the
//!   same, so the bytes written just before the truncation are read once, from the copy. A file
//!   found later that continues a forgotten-but-checkpointed key (same first line, same 256 bytes
//!   before the checkpoint, which is at least `fingerprint_bytes` in) is resumed there too.
//!   Otherwise a file is read as new: duplicates are preferred to loss.
//! - **Inode reuse**: a file reopened (after an idle close or a restart) whose first line or
//!   bytes before the offset no longer match is a new file, read from 0.
//! - **Fairness**: files with unread bytes take turns, one chunk per turn each.
//! - **Idle handles** of files read to the end and unchanged for `idle_close` are closed (and
//!   files read to the end are closed first when `max_open_files` is reached); the identity and
//!   offset are kept and the file is reopened when it changes.

mod channel;
mod checkpoint;
mod config;
mod discover;
mod engine;
pub mod identity;
mod metrics;
mod reader;

pub mod bench;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

pub use channel::{ChunkReceiver, RecvError};
pub(crate) use checkpoint::write_atomically;
pub use checkpoint::{AckHandle, AckOutcome};
pub use config::TailConfig;
pub use identity::FileKey;
pub use metrics::TailMetrics;

/// Errors of the tailer.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// The configuration is invalid; every problem is listed.
    #[error("invalid tail configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The checkpoint file could not be read or written.
    #[error("checkpoint file {}: {source}", path.display())]
    Checkpoint {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The checkpoint file exists but cannot be understood. Not reset silently: that would
    /// re-read every file from 0; move it away to start over.
    #[error("checkpoint file {} is unreadable: {message}", path.display())]
    CorruptCheckpoint { path: PathBuf, message: String },
    /// A thread could not be started.
    #[error("cannot start the tailer thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The tailer thread panicked (a bug).
    #[error("the tailer thread panicked; this is likely a bug")]
    Panicked,
}

/// A line of a chunk that was cut because it exceeded `max_line_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TruncatedLine {
    /// Offset in `Chunk::data` just after the cut line's `\n`.
    pub data_end: usize,
    /// Length of the whole line in the file, with its `\n`.
    pub raw_len: u64,
}

/// Bytes of whole lines read from one file.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The file's stable identity.
    pub file: FileKey,
    /// The path the bytes were read from (the file may have been renamed since).
    pub path: Arc<Path>,
    /// Offset in the file of the first byte.
    pub start: u64,
    /// Offset in the file just after the last byte; acknowledge with this.
    pub end: u64,
    /// Whole lines, each ending with `\n`. Long lines are cut (see `truncated`); bytes are
    /// passed through as they are (no UTF-8 check).
    pub data: Vec<u8>,
    /// Number of lines in `data`.
    pub lines: u32,
    /// Lines cut to `max_line_bytes` with the marker `…[truncated N bytes]`.
    pub truncated: Vec<TruncatedLine>,
    /// The last line had no `\n` in the file (a finished file's incomplete last line); one was
    /// appended.
    pub appended_newline: bool,
    /// The file is renamed away or deleted and read to its end: no more chunks will come for
    /// it. A finished chunk may have no data (`start == end`, the `end` of the chunk before
    /// it); it is acknowledged like any other chunk.
    pub finished: bool,
}

/// One line of a chunk with its place in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line as emitted, with its `\n`.
    pub bytes: &'a [u8],
    /// Offset of the line in the file.
    pub start: u64,
    /// Offset just after the line (after its `\n`) in the file.
    pub end: u64,
}

impl Chunk {
    /// The chunk's lines with their file offsets (exact even for cut lines).
    pub fn lines(&self) -> impl Iterator<Item = Line<'_>> + '_ {
        let mut data_pos = 0usize;
        let mut file_pos = self.start;
        let mut truncated = self.truncated.iter().peekable();
        memchr::memchr_iter(b'\n', &self.data).map(move |nl| {
            let bytes = &self.data[data_pos..=nl];
            data_pos = nl + 1;
            let raw_len = match truncated.peek() {
                Some(t) if t.data_end == data_pos => truncated.next().unwrap().raw_len,
                _ if data_pos == self.data.len() && self.appended_newline => bytes.len() as u64 - 1,
                _ => bytes.len() as u64,
            };
            let line = Line {
                bytes,
                start: file_pos,
                end: file_pos + raw_len,
            };
            file_pos += raw_len;
            line
        })
    }
}

/// The running tailer. Dropping it shuts it down too (without reporting errors).
pub struct Tailer {
    shutdown: Arc<AtomicBool>,
    waker: discover::Waker,
    closer: channel::Closer,
    tailer_thread: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<Result<(), TailError>>>,
    checkpointer_stop: Arc<(Mutex<bool>, Condvar)>,
    ack: AckHandle,
    metrics: Arc<TailMetrics>,
    persisted: Arc<PersistedCheckpoints>,
}

/// The checkpoints as last written to disk, by file key (string form): what a restart would
/// resume from. The agent keeps a delivered batch in its disk buffer until the file's persisted
/// checkpoint has passed it, so a crash in between can always find the batch again.
#[derive(Debug, Default)]
pub struct PersistedCheckpoints {
    offsets: Mutex<std::collections::HashMap<String, u64>>,
    /// Completed checkpoint writes.
    writes: std::sync::atomic::AtomicU64,
}

impl PersistedCheckpoints {
    /// The persisted checkpoint of a file, if it has one.
    pub fn offset(&self, key: &str) -> Option<u64> {
        self.offsets.lock().unwrap().get(key).copied()
    }

    /// Completed checkpoint writes so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    fn record(&self, snapshot: &checkpoint::CheckpointFile) {
        self.record_offsets(snapshot.files.iter().map(|f| (f.key.clone(), f.offset)));
    }

    /// A checkpoint write completed with these offsets by stream (inputs that are not files
    /// keep their own checkpoint files and report them here).
    pub fn record_offsets(&self, offsets: impl IntoIterator<Item = (String, u64)>) {
        let mut map = self.offsets.lock().unwrap();
        map.clear();
        map.extend(offsets);
        drop(map);
        self.writes.fetch_add(1, Ordering::AcqRel);
    }
}

impl Tailer {
    /// Starts tailing: loads the checkpoints at `checkpoint_path` (a missing file is an empty
    /// one), then starts the tailer and checkpoint threads.
    pub fn start(
        config: TailConfig,
        checkpoint_path: impl Into<PathBuf>,
    ) -> Result<(Tailer, ChunkReceiver), TailError> {
        config.validate().map_err(TailError::Config)?;
        let checkpoint_path = checkpoint_path.into();
        let saved = checkpoint::read_checkpoints(&checkpoint_path)?;
        let ledger = Arc::new(Mutex::new(checkpoint::Ledger::from_saved(&saved)));
        let metrics = Arc::new(TailMetrics::default());
        let (tx, rx) = channel::chunk_channel(config.max_queued_bytes);
        let shutdown = Arc::new(AtomicBool::new(false));
        let (waker, wake_rx) = discover::Waker::new();

        let (engine, closer) = engine::Engine::new(
            config.clone(),
            ledger.clone(),
            metrics.clone(),
            tx,
            shutdown.clone(),
            waker.clone(),
            wake_rx,
        )?;
        let tailer_thread = std::thread::Builder::new()
            .name("kestrel-tail".into())
            .spawn(move || engine.run())
            .map_err(TailError::Thread)?;

        let checkpointer_stop = Arc::new((Mutex::new(false), Condvar::new()));
        let persisted = Arc::new(PersistedCheckpoints::default());
        persisted.record(&ledger.lock().unwrap().snapshot());
        let checkpointer = {
            let ledger = ledger.clone();
            let metrics = metrics.clone();
            let persisted = persisted.clone();
            let stop = checkpointer_stop.clone();
            let interval = config.checkpoint_interval;
            std::thread::Builder::new()
                .name("kestrel-tail-checkpoint".into())
                .spawn(move || {
                    run_checkpointer(
                        &checkpoint_path,
                        &ledger,
                        &metrics,
                        &persisted,
                        &stop,
                        interval,
                    )
                })
                .map_err(TailError::Thread)?
        };
        let tailer = Tailer {
            shutdown,
            waker,
            closer,
            tailer_thread: Some(tailer_thread),
            checkpointer: Some(checkpointer),
            checkpointer_stop,
            ack: AckHandle {
                ledger,
                metrics: metrics.clone(),
            },
            metrics,
            persisted,
        };
        Ok((tailer, rx))
    }

    /// A handle to acknowledge delivered chunks.
    pub fn ack_handle(&self) -> AckHandle {
        self.ack.clone()
    }

    /// The checkpoints as last written to disk.
    pub fn persisted(&self) -> Arc<PersistedCheckpoints> {
        self.persisted.clone()
    }

    /// The tailer's metrics.
    pub fn metrics(&self) -> Arc<TailMetrics> {
        self.metrics.clone()
    }

    /// Stops reading (a chunk waiting for room in the channel is dropped, unacknowledged),
    /// writes the checkpoints of what was acknowledged so far, and returns. Chunks already in the
    /// channel can still be received; acknowledgements after this are not saved.
    pub fn shutdown(mut self) -> Result<(), TailError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), TailError> {
        self.shutdown.store(true, Ordering::SeqCst);
        self.waker.wake();
        self.closer.close();
        let mut result = Ok(());
        if let Some(t) = self.tailer_thread.take() {
            if t.join().is_err() {
                result = Err(TailError::Panicked);
            }
        }
        {
            let (lock, cvar) = &*self.checkpointer_stop;
            *lock.lock().unwrap() = true;
            cvar.notify_all();
        }
        if let Some(t) = self.checkpointer.take() {
            match t.join() {
                Ok(r) => result = result.and(r),
                Err(_) => result = Err(TailError::Panicked),
            }
        }
        result
    }
}

impl Drop for Tailer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!(error = %e, "tailer shutdown failed");
        }
    }
}

/// Writes changed checkpoints every `interval`, and once more when stopped.
fn run_checkpointer(
    path: &Path,
    ledger: &Mutex<checkpoint::Ledger>,
    metrics: &TailMetrics,
    persisted: &PersistedCheckpoints,
    stop: &(Mutex<bool>, Condvar),
    interval: std::time::Duration,
) -> Result<(), TailError> {
    let (lock, cvar) = stop;
    loop {
        let stopping = {
            let guard = lock.lock().unwrap();
            let (guard, _) = cvar
                .wait_timeout_while(guard, interval, |stopped| !*stopped)
                .unwrap();
            *guard
        };
        let snapshot = ledger.lock().unwrap().snapshot_if_dirty();
        if let Some(snapshot) = snapshot {
            match checkpoint::write_checkpoints(path, &snapshot) {
                Ok(()) => {
                    persisted.record(&snapshot);
                    TailMetrics::add(&metrics.checkpoint_writes, 1)
                }
                Err(e) => {
                    TailMetrics::add(&metrics.checkpoint_errors, 1);
                    ledger.lock().unwrap().mark_dirty();
                    if stopping {
                        return Err(e);
                    }
                    tracing::error!(error = %e, "cannot write tail checkpoints; retrying");
                }
            }
        }
        if stopping {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_give_file_offsets_even_for_cut_lines() {
        let chunk = Chunk {
            file: FileKey {
                dev: 1,
                ino: 1,
                fingerprint: 1,
            },
            path: Arc::from(Path::new("/x")),
            start: 100,
            end: 100 + 3 + 20 + 3 + 2,
            data: b"ab\nxy...[cut]\ncd\nef\n".to_vec(),
            lines: 4,
            truncated: vec![TruncatedLine {
                data_end: 14,
                raw_len: 20,
            }],
            appended_newline: true,
            finished: true,
        };
        let spans: Vec<(u64, u64)> = chunk.lines().map(|l| (l.start, l.end)).collect();
        assert_eq!(spans, vec![(100, 103), (103, 123), (123, 126), (126, 128)]);
        assert_eq!(spans.last().unwrap().1, chunk.end);
    }
}
