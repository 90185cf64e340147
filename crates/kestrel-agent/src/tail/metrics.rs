//! Counters and gauges of the tailer, as plain atomics read at scrape time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::identity::FileKey;

/// The tailer's metrics. Counters only grow; gauges are refreshed by the tailer thread.
#[derive(Debug, Default)]
pub struct TailMetrics {
    /// Bytes of files read and sent in chunks (file bytes, before truncation of long lines).
    pub bytes_read: AtomicU64,
    /// Lines sent.
    pub lines_read: AtomicU64,
    /// Lines longer than `max_line_bytes`, sent cut with a marker.
    pub lines_truncated: AtomicU64,
    /// Chunks sent.
    pub chunks_sent: AtomicU64,
    /// Files newly identified (not resumed from a checkpoint).
    pub files_discovered: AtomicU64,
    /// Files resumed at a saved checkpoint.
    pub files_resumed: AtomicU64,
    /// Saved checkpoints that did not match their file's bytes any more (read from 0 instead).
    pub checkpoints_mismatched: AtomicU64,
    /// Files renamed while tailed (rename rotation).
    pub rotations: AtomicU64,
    /// Files found shorter than the offset read (truncation, copytruncate).
    pub truncations: AtomicU64,
    /// Copies of tailed files recognised by content (copytruncate) and not read twice.
    pub copies_recognised: AtomicU64,
    /// Bytes that were in a file but could not be read before it was truncated or replaced.
    /// Should stay 0.
    pub bytes_lost: AtomicU64,
    /// Files finished: renamed away or deleted, and read to the end.
    pub files_finished: AtomicU64,
    /// Acknowledgements applied.
    pub acks: AtomicU64,
    /// Acknowledgements of chunks already acknowledged.
    pub acks_duplicate: AtomicU64,
    /// Acknowledgements that matched no chunk in flight.
    pub acks_unknown: AtomicU64,
    /// Checkpoint files written.
    pub checkpoint_writes: AtomicU64,
    /// Checkpoint writes that failed (retried at the next interval).
    pub checkpoint_errors: AtomicU64,
    /// I/O errors reading files (the file is retried later).
    pub read_errors: AtomicU64,
    /// Gauge: files tracked (identified or waiting for identity).
    pub files_tracked: AtomicU64,
    /// Gauge: file handles open.
    pub files_open: AtomicU64,
    /// Gauge: bytes in the tailed files not read yet, summed over files.
    pub lag_bytes: AtomicU64,
    /// Per-file lag (file size − read offset), refreshed at each poll; only files with lag.
    pub(crate) lag_by_file: Mutex<HashMap<FileKey, (Arc<Path>, u64)>>,
}

impl TailMetrics {
    /// The files that have unread bytes: key, path, bytes unread.
    pub fn lag_by_file(&self) -> Vec<(FileKey, Arc<Path>, u64)> {
        let mut v: Vec<_> = self
            .lag_by_file
            .lock()
            .unwrap()
            .iter()
            .map(|(k, (p, lag))| (*k, p.clone(), *lag))
            .collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.2));
        v
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter or gauge.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
