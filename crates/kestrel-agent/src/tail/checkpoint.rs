//! Acknowledgements and checkpoints: a file's offset advances only over acknowledged bytes.
//!
//! The tailer registers every chunk it sends ([`Ledger::register`]); the consumer acknowledges
//! chunks through an [`AckHandle`] once their bytes are durable downstream, in any order. Per
//! file, the checkpoint moves to the end of the longest run of acknowledged chunks that starts
//! at it (an ordered finalizer, as Vector's `OrderedFinalizer`): a chunk acknowledged ahead of
//! an earlier one waits until the earlier one is acknowledged too.
//!
//! Checkpoints are written as JSON by [`write_checkpoints`]: to a temporary file, fsynced,
//! renamed over the old one, and the directory fsynced, so a crash leaves the old file or the
//! new one, never a mix.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::identity::{FileKey, Fingerprint};
use super::metrics::TailMetrics;
use super::TailError;

/// A sent chunk not yet folded into the checkpoint.
#[derive(Debug, Clone, Copy)]
struct Pending {
    end: u64,
    tail_hash: u64,
    acked: bool,
}

/// What is known about one file's delivery.
#[derive(Debug, Clone)]
pub(crate) struct FileAcks {
    /// Every byte before this offset is acknowledged.
    pub checkpoint: u64,
    /// Hash of the bytes just before `checkpoint` (see `identity::tail_hash`).
    pub tail_hash: u64,
    /// Length of the fingerprint window.
    pub fingerprint_len: u64,
    /// Last path the file was seen at.
    pub path: String,
    /// When the file was last seen on disk (seconds since the Unix epoch).
    pub last_seen: u64,
    /// Sent chunks in file order; their ends strictly increase.
    pending: VecDeque<Pending>,
}

/// Result of an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// The chunk was pending; the checkpoint may have advanced.
    Applied,
    /// The offset is at or below the checkpoint: acknowledged before.
    Duplicate,
    /// No pending chunk of that file ends there (a forgotten file, a chunk dropped at shutdown,
    /// or a file truncated since the chunk was read).
    Unknown,
}

/// All files' delivery state, shared by the tailer, the consumer's ack handles and the
/// checkpoint writer.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    files: HashMap<FileKey, FileAcks>,
    /// Keys by fingerprint hash, to find the file a copy continues.
    by_fingerprint: HashMap<u64, Vec<FileKey>>,
    /// Something changed since the last snapshot.
    dirty: bool,
}

impl Ledger {
    /// Starts or resumes tracking of `key` at `offset`; forgets chunks pending from an earlier
    /// reading of it (a truncated file that kept its fingerprint).
    pub fn start(
        &mut self,
        key: FileKey,
        fp: Fingerprint,
        offset: u64,
        tail_hash: u64,
        path: &Path,
    ) {
        if !self.files.contains_key(&key) {
            self.by_fingerprint
                .entry(key.fingerprint)
                .or_default()
                .push(key);
        }
        let entry = self.files.entry(key).or_insert_with(|| FileAcks {
            checkpoint: offset,
            tail_hash,
            fingerprint_len: fp.len,
            path: String::new(),
            last_seen: 0,
            pending: VecDeque::new(),
        });
        entry.checkpoint = offset;
        entry.tail_hash = tail_hash;
        entry.fingerprint_len = fp.len;
        entry.pending.clear();
        entry.path = path.to_string_lossy().into_owned();
        entry.last_seen = unix_now();
        self.dirty = true;
    }

    /// Continues tracking of `key` at `offset`: keeps the chunks in flight if reading goes on
    /// right where they end (a copy taking over a truncated file's key), else as [`Ledger::start`].
    pub fn resume(
        &mut self,
        key: FileKey,
        fp: Fingerprint,
        offset: u64,
        tail_hash: u64,
        path: &Path,
    ) {
        if let Some(entry) = self.files.get_mut(&key) {
            let next = entry.pending.back().map_or(entry.checkpoint, |p| p.end);
            if next == offset && entry.fingerprint_len == fp.len {
                entry.path = path.to_string_lossy().into_owned();
                entry.last_seen = unix_now();
                self.dirty = true;
                return;
            }
        }
        self.start(key, fp, offset, tail_hash, path);
    }

    /// Records a chunk `[start, end)` about to be sent (`start == end` for an empty `finished`
    /// chunk); `tail_hash` is the hash of the bytes before `end`.
    pub fn register(&mut self, key: FileKey, start: u64, end: u64, tail_hash: u64) {
        let Some(entry) = self.files.get_mut(&key) else {
            debug_assert!(false, "chunk of an unstarted file {key}");
            return;
        };
        let expected = entry.pending.back().map_or(entry.checkpoint, |p| p.end);
        debug_assert_eq!(start, expected, "chunks of {key} must be contiguous");
        if start != expected || end < start {
            // Never expected; restart the run so the checkpoint cannot skip bytes.
            entry.pending.clear();
            entry.checkpoint = entry.checkpoint.min(start);
        }
        entry.pending.push_back(Pending {
            end,
            tail_hash,
            acked: false,
        });
    }

    /// Acknowledges the chunk of `key` that ends at `end`.
    pub fn ack(&mut self, key: FileKey, end: u64) -> AckOutcome {
        let Some(entry) = self.files.get_mut(&key) else {
            return AckOutcome::Unknown;
        };
        if end < entry.checkpoint {
            return AckOutcome::Duplicate;
        }
        // Several chunks may end at the same offset (an empty `finished` chunk after the last
        // data chunk). Each needs its own ack; marking the last unacknowledged one first means
        // the checkpoint passes that offset only once all of them are acknowledged, whatever
        // the order of their acks.
        let lo = entry.pending.partition_point(|p| p.end < end);
        let hi = entry.pending.partition_point(|p| p.end <= end);
        if lo == hi {
            return if end == entry.checkpoint {
                AckOutcome::Duplicate
            } else {
                AckOutcome::Unknown
            };
        }
        match (lo..hi).rev().find(|&i| !entry.pending[i].acked) {
            Some(i) => entry.pending[i].acked = true,
            None => return AckOutcome::Duplicate,
        }
        while entry.pending.front().is_some_and(|p| p.acked) {
            let p = entry.pending.pop_front().unwrap();
            entry.checkpoint = p.end;
            entry.tail_hash = p.tail_hash;
            self.dirty = true;
        }
        AckOutcome::Applied
    }

    /// Notes that the file was seen at `path` now.
    pub fn seen(&mut self, key: FileKey, path: &Path) {
        if let Some(entry) = self.files.get_mut(&key) {
            entry.last_seen = unix_now();
            if entry.path.as_bytes() != path.as_os_str().as_encoded_bytes() {
                entry.path = path.to_string_lossy().into_owned();
                self.dirty = true;
            }
        }
    }

    /// The acknowledged state of a file.
    pub fn get(&self, key: &FileKey) -> Option<&FileAcks> {
        self.files.get(key)
    }

    /// The files whose fingerprint hash is `hash`, with their state.
    pub fn with_fingerprint(&self, hash: u64) -> impl Iterator<Item = (&FileKey, &FileAcks)> {
        self.by_fingerprint
            .get(&hash)
            .into_iter()
            .flatten()
            .filter_map(|k| self.files.get_key_value(k))
    }

    /// Forgets files not seen for `grace` that have nothing in flight; returns how many.
    pub fn forget_unseen(&mut self, grace: Duration) -> usize {
        let cutoff = unix_now().saturating_sub(grace.as_secs());
        let before = self.files.len();
        let by_fingerprint = &mut self.by_fingerprint;
        self.files.retain(|key, f| {
            let keep = f.last_seen >= cutoff || !f.pending.is_empty();
            if !keep {
                if let Some(keys) = by_fingerprint.get_mut(&key.fingerprint) {
                    keys.retain(|k| k != key);
                    if keys.is_empty() {
                        by_fingerprint.remove(&key.fingerprint);
                    }
                }
            }
            keep
        });
        let forgotten = before - self.files.len();
        if forgotten > 0 {
            self.dirty = true;
        }
        forgotten
    }

    /// The saved form of every file, if anything changed since the last call.
    pub fn snapshot_if_dirty(&mut self) -> Option<CheckpointFile> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        Some(self.snapshot())
    }

    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    pub fn snapshot(&self) -> CheckpointFile {
        let mut files: Vec<SavedFile> = self
            .files
            .iter()
            .map(|(key, f)| SavedFile {
                key: key.to_string(),
                fingerprint_len: f.fingerprint_len,
                offset: f.checkpoint,
                tail_hash: format!("{:016x}", f.tail_hash),
                path: f.path.clone(),
                last_seen: f.last_seen,
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path).then(a.key.cmp(&b.key)));
        CheckpointFile {
            version: CHECKPOINT_VERSION,
            files,
        }
    }

    /// A ledger holding the saved checkpoints. They count as seen now: the grace period before
    /// a gone file is forgotten runs from the start, not from before a long downtime.
    pub fn from_saved(saved: &CheckpointFile) -> Ledger {
        let mut ledger = Ledger::default();
        let now = unix_now();
        for s in &saved.files {
            let (Ok(key), Ok(tail_hash)) = (
                s.key.parse::<FileKey>(),
                u64::from_str_radix(&s.tail_hash, 16),
            ) else {
                tracing::warn!(key = %s.key, "skipping an unreadable checkpoint entry");
                continue;
            };
            ledger
                .by_fingerprint
                .entry(key.fingerprint)
                .or_default()
                .push(key);
            ledger.files.insert(
                key,
                FileAcks {
                    checkpoint: s.offset,
                    tail_hash,
                    fingerprint_len: s.fingerprint_len,
                    path: s.path.clone(),
                    last_seen: now.max(s.last_seen),
                    pending: VecDeque::new(),
                },
            );
        }
        ledger
    }
}

/// Lets the consumer acknowledge delivered chunks; cheap to clone and send across threads.
#[derive(Clone)]
pub struct AckHandle {
    pub(crate) ledger: Arc<Mutex<Ledger>>,
    pub(crate) metrics: Arc<TailMetrics>,
}

impl AckHandle {
    /// Acknowledges that the chunk of `file` ending at `end` is durable. Every chunk must be
    /// acknowledged once, including an empty `finished` chunk. Acks may come in any order; an
    /// ack the tailer cannot place is counted in `acks_unknown` and otherwise ignored.
    pub fn ack(&self, file: FileKey, end: u64) -> AckOutcome {
        let outcome = self.ledger.lock().unwrap().ack(file, end);
        match outcome {
            AckOutcome::Applied => self.metrics.acks.fetch_add(1, Ordering::Relaxed),
            AckOutcome::Duplicate => self.metrics.acks_duplicate.fetch_add(1, Ordering::Relaxed),
            AckOutcome::Unknown => self.metrics.acks_unknown.fetch_add(1, Ordering::Relaxed),
        };
        outcome
    }

    /// Acknowledges a received chunk once its bytes are durable: `ack(chunk.file, chunk.end)`.
    pub fn ack_chunk(&self, chunk: &super::Chunk) -> AckOutcome {
        self.ack(chunk.file, chunk.end)
    }

    /// The acknowledged offset of `file`, if the tailer knows it.
    pub fn checkpoint(&self, file: FileKey) -> Option<u64> {
        self.ledger.lock().unwrap().get(&file).map(|f| f.checkpoint)
    }
}

const CHECKPOINT_VERSION: u32 = 1;

/// The checkpoint file's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckpointFile {
    pub version: u32,
    pub files: Vec<SavedFile>,
}

/// One file's saved checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SavedFile {
    /// `FileKey` in its string form.
    pub key: String,
    pub fingerprint_len: u64,
    /// Acknowledged offset.
    pub offset: u64,
    /// Hash of the bytes before `offset`, 16 hex digits.
    pub tail_hash: String,
    /// Last path seen (informational: files are found again by device and inode).
    pub path: String,
    /// Seconds since the Unix epoch when the file was last seen.
    pub last_seen: u64,
}

/// Reads the checkpoint file; a missing file is an empty checkpoint.
pub(crate) fn read_checkpoints(path: &Path) -> Result<CheckpointFile, TailError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(CheckpointFile {
                version: CHECKPOINT_VERSION,
                files: Vec::new(),
            })
        }
        Err(source) => {
            return Err(TailError::Checkpoint {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let file: CheckpointFile =
        serde_json::from_slice(&bytes).map_err(|e| TailError::CorruptCheckpoint {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if file.version != CHECKPOINT_VERSION {
        return Err(TailError::CorruptCheckpoint {
            path: path.to_path_buf(),
            message: format!("unsupported version {}", file.version),
        });
    }
    Ok(file)
}

/// Writes the checkpoint file atomically (tmp, fsync, rename, fsync of the directory).
pub(crate) fn write_checkpoints(path: &Path, file: &CheckpointFile) -> Result<(), TailError> {
    let bytes = serde_json::to_vec(file).expect("checkpoints always serialize");
    write_atomically(path, &bytes).map_err(|source| TailError::Checkpoint {
        path: path.to_path_buf(),
        source,
    })
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new content, never a
/// mix: a temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: FileKey = FileKey {
        dev: 1,
        ino: 2,
        fingerprint: 3,
    };
    const FP: Fingerprint = Fingerprint { hash: 3, len: 10 };

    fn ledger_with_chunks(ends: &[u64]) -> Ledger {
        let mut ledger = Ledger::default();
        ledger.start(KEY, FP, 0, 0, Path::new("/x"));
        let mut start = 0;
        for &end in ends {
            ledger.register(KEY, start, end, end * 7);
            start = end;
        }
        ledger
    }

    #[test]
    fn checkpoint_waits_for_earlier_chunks() {
        let mut l = ledger_with_chunks(&[10, 20, 30]);
        assert_eq!(l.ack(KEY, 20), AckOutcome::Applied);
        assert_eq!(l.get(&KEY).unwrap().checkpoint, 0);
        assert_eq!(l.ack(KEY, 10), AckOutcome::Applied);
        assert_eq!(l.get(&KEY).unwrap().checkpoint, 20);
        assert_eq!(l.get(&KEY).unwrap().tail_hash, 140);
        assert_eq!(l.ack(KEY, 20), AckOutcome::Duplicate);
        assert_eq!(l.ack(KEY, 25), AckOutcome::Unknown);
        let other = FileKey { ino: 9, ..KEY };
        assert_eq!(l.ack(other, 10), AckOutcome::Unknown);
    }

    #[test]
    fn checkpoints_survive_a_write_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.json");
        assert!(read_checkpoints(&path).unwrap().files.is_empty());
        let mut l = ledger_with_chunks(&[10, 20]);
        l.ack(KEY, 10);
        write_checkpoints(&path, &l.snapshot_if_dirty().unwrap()).unwrap();
        assert!(l.snapshot_if_dirty().is_none());
        let back = Ledger::from_saved(&read_checkpoints(&path).unwrap());
        let f = back.get(&KEY).unwrap();
        assert_eq!((f.checkpoint, f.tail_hash, f.fingerprint_len), (10, 70, 10));
        assert!(!dir.path().join("checkpoints.json.tmp").exists());
    }

    #[test]
    fn a_corrupt_checkpoint_file_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.json");
        fs::write(&path, b"{\"version\":1,\"files\":[").unwrap();
        let e = read_checkpoints(&path).unwrap_err();
        assert!(matches!(e, TailError::CorruptCheckpoint { .. }), "{e}");
    }

    #[test]
    fn saved_checkpoints_are_not_forgotten_for_the_downtime() {
        let mut l = ledger_with_chunks(&[10]);
        l.ack(KEY, 10);
        let mut saved = l.snapshot();
        saved.files[0].last_seen = 0; // saved long ago
        let mut back = Ledger::from_saved(&saved);
        assert_eq!(back.forget_unseen(Duration::from_secs(60)), 0);
        assert_eq!(back.with_fingerprint(KEY.fingerprint).count(), 1);
    }

    #[test]
    fn forgetting_keeps_files_with_chunks_in_flight() {
        let mut l = ledger_with_chunks(&[10]);
        l.files.get_mut(&KEY).unwrap().last_seen = 0;
        assert_eq!(l.forget_unseen(Duration::from_secs(60)), 0);
        l.ack(KEY, 10);
        assert_eq!(l.forget_unseen(Duration::from_secs(60)), 1);
        assert!(l.get(&KEY).is_none());
        assert_eq!(l.with_fingerprint(KEY.fingerprint).count(), 0);
    }

    proptest! {
        /// Model check: whatever the order of acks (with repeats, bogus offsets, and empty
        /// chunks sharing the end of the chunk before them), the checkpoint is the end of the
        /// longest run of fully acknowledged chunks from the start.
        #[test]
        fn checkpoint_is_the_contiguous_acked_prefix(
            lengths in prop::collection::vec(prop_oneof![4 => 1u64..1000, 1 => Just(0u64)], 1..40),
            order in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..120),
        ) {
            let mut ends = Vec::new();
            let mut end = 0;
            for len in &lengths {
                end += len;
                ends.push(end);
            }
            let mut ledger = ledger_with_chunks(&ends);
            // Model: chunks per end offset, and acks applied per end offset.
            let mut chunks_at = std::collections::BTreeMap::<u64, usize>::new();
            for e in &ends {
                *chunks_at.entry(*e).or_default() += 1;
            }
            let mut acks_at = std::collections::BTreeMap::<u64, usize>::new();
            for (index, bogus) in order {
                let i = index.index(ends.len());
                let offset = if bogus { ends[i] + 1 } else { ends[i] };
                let outcome = ledger.ack(KEY, offset);
                match chunks_at.get(&offset) {
                    Some(&n) => {
                        let acked = acks_at.entry(offset).or_default();
                        prop_assert_eq!(outcome == AckOutcome::Applied, *acked < n);
                        *acked = (*acked + 1).min(n);
                    }
                    None => prop_assert_ne!(outcome, AckOutcome::Applied),
                }
                let mut model = 0;
                for (e, n) in &chunks_at {
                    if acks_at.get(e) != Some(n) {
                        break;
                    }
                    model = *e;
                }
                let f = ledger.get(&KEY).unwrap();
                prop_assert_eq!(f.checkpoint, model);
                prop_assert_eq!(f.tail_hash, model * 7);
            }
        }
    }
}
