//! The tailer thread: tracks files, decides what to read next, and sends chunks.
//!
//! Files are tracked by device and inode (a rename keeps the entry, a new inode at a known path
//! is a new entry). Files with unread bytes wait in a round-robin queue and read one chunk per
//! turn. Between turns the thread takes in inotify changes, runs the periodic scan, and polls
//! open files for growth, deletion, idleness and the end of rotated files.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::channel::{ChunkSender, Closer, SendError};
use super::checkpoint::Ledger;
use super::config::TailConfig;
use super::discover::{Changes, FsWatch, Patterns, Waker};
use super::identity::{
    fingerprint, fingerprint_matches, read_at_most, tail_hash, tail_hash_in, FileKey, Fingerprint,
};
use super::metrics::TailMetrics;
use super::reader::{read_chunk, Limits, LongLine, ReadOutcome};
use super::{Chunk, TailError};

/// Longest prefix compared to tell a copy of a file from a different file with the same first
/// line.
const COPY_COMPARE_BYTES: u64 = 64 * 1024;

type FileId = u64;

/// Where reading of a truncated file's old content stopped, kept for a while in case a copy of
/// it turns up (copytruncate): its unread bytes count as lost only if none does.
struct Retired {
    offset: u64,
    tail_hash: u64,
    fingerprint_len: u64,
    /// Bytes of the old content known to exist beyond `offset`.
    unread: u64,
    path: Arc<Path>,
    since: Instant,
}

/// One tracked file (one inode).
struct Tracked {
    dev: u64,
    ino: u64,
    /// Last path the inode was seen at.
    path: Arc<Path>,
    /// Key and fingerprint window, once the window is complete.
    identity: Option<(FileKey, Fingerprint)>,
    handle: Option<File>,
    /// Offset of the next chunk (every byte before it was sent).
    read_pos: u64,
    /// Hash of the bytes before `read_pos`.
    read_tail_hash: u64,
    /// Size at the last look.
    size: u64,
    /// Largest size known to belong to the current content (seen when a read of it was
    /// verified, or just before it shrank): bytes beyond `read_pos` that vanish in a
    /// truncation are lost.
    max_size_seen: u64,
    long_line: Option<LongLine>,
    /// Deleted, or no longer at any path matching the patterns.
    detached: bool,
    /// Last time the size changed or bytes were read.
    last_change: Instant,
    first_seen: Instant,
    /// In the ready queue.
    queued: bool,
    /// A copy of this tracked file (copytruncate), not read.
    shadow_of: Option<FileKey>,
    /// Reading restarted at 0 after a truncation: do not resume from a saved checkpoint.
    fresh: bool,
    /// The scan generation that last saw the file at a matching path.
    scan_gen: u64,
}

enum Turn {
    /// More to read: queue again.
    Again,
    /// Nothing to read until something changes.
    Done,
    /// The channel is closed: stop.
    Stop,
}

enum CopyCheck {
    Copy(FileKey),
    /// A file with the same first line was truncated or replaced since it was read: this file
    /// may be its copy.
    TwinRestarted(FileId),
    /// Equal to a larger file's beginning but too short to tell yet.
    Undecided,
    NotCopy,
}

pub(crate) struct Engine {
    config: TailConfig,
    limits: Limits,
    patterns: Patterns,
    ledger: Arc<Mutex<Ledger>>,
    metrics: Arc<TailMetrics>,
    tx: ChunkSender,
    shutdown: Arc<AtomicBool>,
    wake_rx: Receiver<()>,
    changes: Arc<Mutex<Changes>>,
    watch: Option<FsWatch>,
    files: HashMap<FileId, Tracked>,
    by_inode: HashMap<(u64, u64), FileId>,
    by_path: HashMap<PathBuf, FileId>,
    next_id: FileId,
    ready: VecDeque<FileId>,
    /// Files waiting for a free handle.
    starved: Vec<FileId>,
    /// Files with an open handle.
    open: HashSet<FileId>,
    /// Identified files by key.
    by_key: HashMap<FileKey, FileId>,
    /// Identified files by fingerprint hash, to find what a new file may be a copy of.
    by_fingerprint: HashMap<u64, Vec<FileId>>,
    scan_gen: u64,
    empty_tail_hash: u64,
    /// Keys of files whose content restarted with no copy found yet: where reading stopped
    /// (offset, hash of the bytes before it, fingerprint length), for a copy found later.
    retired: HashMap<FileKey, Retired>,
}

impl Engine {
    pub fn new(
        config: TailConfig,
        ledger: Arc<Mutex<Ledger>>,
        metrics: Arc<TailMetrics>,
        tx: ChunkSender,
        shutdown: Arc<AtomicBool>,
        waker: Waker,
        wake_rx: Receiver<()>,
    ) -> Result<(Engine, Closer), TailError> {
        let patterns = Patterns::new(&config.include, &config.exclude)?;
        let changes = Arc::new(Mutex::new(Changes::default()));
        let watch = if config.inotify {
            match FsWatch::start(patterns.watch_roots(), changes.clone(), waker) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "inotify unavailable; relying on the periodic scan");
                    None
                }
            }
        } else {
            None
        };
        let closer = tx.closer();
        let engine = Engine {
            limits: Limits {
                max_line_bytes: config.max_line_bytes,
                max_chunk_bytes: config.max_chunk_bytes,
            },
            config,
            patterns,
            ledger,
            metrics,
            tx,
            shutdown,
            wake_rx,
            changes,
            watch,
            files: HashMap::new(),
            by_inode: HashMap::new(),
            by_path: HashMap::new(),
            next_id: 0,
            ready: VecDeque::new(),
            starved: Vec::new(),
            open: HashSet::new(),
            by_key: HashMap::new(),
            by_fingerprint: HashMap::new(),
            scan_gen: 0,
            empty_tail_hash: tail_hash_in(&[], 0, 0).expect("empty tail"),
            retired: HashMap::new(),
        };
        Ok((engine, closer))
    }

    pub fn run(mut self) {
        let mut next_scan = Instant::now();
        let mut next_poll = Instant::now();
        'outer: loop {
            if self.shutdown.load(Ordering::SeqCst) {
                break;
            }
            if self.take_changes() {
                next_scan = Instant::now();
            }
            let now = Instant::now();
            if now >= next_scan {
                self.scan();
                if let Some(w) = &mut self.watch {
                    w.retry();
                }
                next_scan = Instant::now() + self.config.scan_interval;
            }
            if now >= next_poll {
                self.poll();
                next_poll = Instant::now() + self.config.poll_interval;
            }
            for _ in 0..self.ready.len() {
                if self.shutdown.load(Ordering::SeqCst) {
                    break 'outer;
                }
                let Some(id) = self.ready.pop_front() else {
                    break;
                };
                let Some(f) = self.files.get_mut(&id) else {
                    continue;
                };
                f.queued = false;
                match self.turn(id) {
                    Turn::Again => self.enqueue(id),
                    Turn::Done => {}
                    Turn::Stop => break 'outer,
                }
            }
            if self.ready.is_empty() {
                let wait = next_scan
                    .min(next_poll)
                    .saturating_duration_since(Instant::now());
                let _ = self.wake_rx.recv_timeout(wait);
            }
        }
        self.tx.close();
        tracing::debug!(files = self.files.len(), "tailer stopped");
    }

    fn enqueue(&mut self, id: FileId) {
        if let Some(f) = self.files.get_mut(&id) {
            if !f.queued {
                f.queued = true;
                self.ready.push_back(id);
            }
        }
    }

    /// Takes the paths inotify reported; returns whether a full scan is due.
    fn take_changes(&mut self) -> bool {
        let (paths, rescan) = {
            let mut c = self.changes.lock().unwrap();
            (std::mem::take(&mut c.paths), std::mem::take(&mut c.rescan))
        };
        for path in paths {
            if let Some(&id) = self.by_path.get(&path) {
                self.enqueue(id);
            }
            if self.patterns.matches(&path) {
                if let Ok(m) = fs::metadata(&path) {
                    if m.is_file() {
                        self.observe(&path, &m);
                    }
                }
            }
        }
        rescan
    }

    /// Takes note of a matching path and its metadata (from a scan or an inotify event).
    fn observe(&mut self, path: &Path, m: &Metadata) {
        let inode = (m.dev(), m.ino());
        if let Some(&id) = self.by_inode.get(&inode) {
            let f = self.files.get_mut(&id).expect("indexed file");
            f.scan_gen = self.scan_gen;
            if *f.path != *path {
                let old_is_same = fs::metadata(&f.path)
                    .map(|o| (o.dev(), o.ino()) == inode)
                    .unwrap_or(false);
                if !old_is_same {
                    tracing::debug!(from = %f.path.display(), to = %path.display(), "file renamed");
                    if self.by_path.get(&*f.path) == Some(&id) {
                        self.by_path.remove(&*f.path);
                    }
                    f.path = Arc::from(path);
                    f.detached = false;
                    TailMetrics::add(&self.metrics.rotations, 1);
                    if let Some(old) = self.by_path.insert(path.to_path_buf(), id) {
                        if old != id {
                            self.enqueue(old);
                        }
                    }
                    self.enqueue(id);
                    return;
                }
            }
            if m.len() != f.size || f.detached {
                self.enqueue(id);
            }
            return;
        }
        if let Some(old) = self.by_path.remove(path) {
            // Another inode was at this path: it was renamed away or deleted.
            self.enqueue(old);
        }
        let id = self.next_id;
        self.next_id += 1;
        let now = Instant::now();
        self.files.insert(
            id,
            Tracked {
                dev: inode.0,
                ino: inode.1,
                path: Arc::from(path),
                identity: None,
                handle: None,
                read_pos: 0,
                read_tail_hash: self.empty_tail_hash,
                size: m.len(),
                max_size_seen: m.len(),
                long_line: None,
                detached: false,
                last_change: now,
                first_seen: now,
                queued: false,
                shadow_of: None,
                fresh: false,
                scan_gen: self.scan_gen,
            },
        );
        self.by_inode.insert(inode, id);
        self.by_path.insert(path.to_path_buf(), id);
        self.enqueue(id);
    }

    /// The periodic reconcile scan.
    fn scan(&mut self) {
        self.scan_gen += 1;
        for path in self.patterns.scan() {
            if let Ok(m) = fs::metadata(&path) {
                if m.is_file() {
                    self.observe(&path, &m);
                }
            }
        }
        let gen = self.scan_gen;
        let mut gone = Vec::new();
        let mut seen = Vec::new();
        for (&id, f) in &mut self.files {
            if f.scan_gen == gen {
                if let Some((key, _)) = f.identity {
                    seen.push((key, f.path.clone()));
                }
                continue;
            }
            if f.handle.is_some() {
                if !f.detached {
                    tracing::debug!(path = %f.path.display(), "file renamed away or deleted");
                    f.detached = true;
                }
                if !f.queued {
                    f.queued = true;
                    self.ready.push_back(id);
                }
            } else {
                gone.push(id);
            }
        }
        for id in gone {
            let f = self.files.get(&id).expect("tracked");
            if f.identity.is_some() && f.size > f.read_pos && f.shadow_of.is_none() {
                self.lose(
                    &f.path,
                    f.size - f.read_pos,
                    "the file disappeared before it was read",
                );
            }
            self.remove(id);
        }
        self.expire_retired(false);
        let mut ledger = self.ledger.lock().unwrap();
        for (key, path) in seen {
            ledger.seen(key, &path);
        }
        let forgotten = ledger.forget_unseen(self.config.forget_after);
        if forgotten > 0 {
            tracing::debug!(forgotten, "forgot checkpoints of files gone");
        }
    }

    /// Checks open files for growth, deletion, idleness and the end of rotated files.
    fn poll(&mut self) {
        let now = Instant::now();
        let mut to_queue = Vec::new();
        let mut to_close = Vec::new();
        let mut lag_total = 0u64;
        let mut lag = HashMap::new();
        for (&id, f) in &mut self.files {
            if let Some(handle) = &f.handle {
                match handle.metadata() {
                    Ok(m) => {
                        if m.nlink() == 0 && !f.detached {
                            tracing::debug!(path = %f.path.display(), "file deleted");
                            f.detached = true;
                        }
                        if m.len() != f.size {
                            f.size = m.len();
                            f.last_change = now;
                            to_queue.push(id);
                        }
                    }
                    Err(_) => to_queue.push(id),
                }
                let idle = now.duration_since(f.last_change);
                // Nothing read and nothing to lose by closing: no identity yet (an empty
                // file, or a first line still being written), or read to the end.
                let closable =
                    f.long_line.is_none() && (f.identity.is_none() || f.read_pos == f.size);
                if f.detached {
                    if idle >= self.config.rotate_wait {
                        to_queue.push(id);
                    }
                } else if closable && idle >= self.config.idle_close {
                    to_close.push(id);
                } else if f.identity.is_none() && f.size > 0 {
                    // Waiting for the first line, or to tell whether it is a copy.
                    to_queue.push(id);
                }
            }
            if let Some((key, _)) = f.identity {
                let behind = f.size.saturating_sub(f.read_pos);
                if behind > 0 && f.shadow_of.is_none() {
                    lag_total += behind;
                    lag.insert(key, (f.path.clone(), behind));
                }
            }
        }
        for id in to_close {
            self.close(id);
        }
        for id in to_queue {
            self.enqueue(id);
        }
        for id in std::mem::take(&mut self.starved) {
            self.enqueue(id);
        }
        let m = &self.metrics;
        m.lag_bytes.store(lag_total, Ordering::Relaxed);
        *m.lag_by_file.lock().unwrap() = lag;
        m.files_tracked
            .store(self.files.len() as u64, Ordering::Relaxed);
        m.files_open
            .store(self.open.len() as u64, Ordering::Relaxed);
    }

    /// One turn of a file: at most one chunk.
    fn turn(&mut self, id: FileId) -> Turn {
        let now = Instant::now();
        let Some(f) = self.files.get(&id) else {
            return Turn::Done;
        };
        if f.shadow_of.is_some() {
            return Turn::Done;
        }
        if f.handle.is_none() && !self.open(id) {
            return Turn::Done;
        }
        let f = self.files.get_mut(&id).expect("tracked");
        let handle = f.handle.as_ref().expect("opened");
        let m = match handle.metadata() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(path = %f.path.display(), error = %e, "cannot stat file");
                TailMetrics::add(&self.metrics.read_errors, 1);
                return Turn::Done;
            }
        };
        if m.nlink() == 0 {
            f.detached = true;
        }
        let polled_size = f.size;
        if m.len() != f.size {
            f.size = m.len();
            f.last_change = now;
        }
        let consumed = f
            .long_line
            .as_ref()
            .map_or(f.read_pos, LongLine::scanned_to);
        if f.size < consumed {
            // The size last seen was the old content's.
            f.max_size_seen = f.max_size_seen.max(polled_size);
            TailMetrics::add(&self.metrics.truncations, 1);
            self.restart_content(id, true);
        }
        let f = self.files.get_mut(&id).expect("tracked");
        let final_turn = f.detached && now.duration_since(f.last_change) >= self.config.rotate_wait;
        if f.identity.is_none() {
            let handle = f.handle.as_ref().expect("opened");
            match fingerprint(handle, f.size, self.config.fingerprint_bytes, final_turn) {
                Ok(Some(fp)) => {
                    if !self.identify(id, fp) {
                        return Turn::Done;
                    }
                }
                Ok(None) => {
                    if final_turn {
                        // Renamed away or deleted without a single byte: nothing to read.
                        self.remove(id);
                    }
                    return Turn::Done;
                }
                Err(e) => {
                    tracing::warn!(path = %f.path.display(), error = %e, "cannot read file");
                    TailMetrics::add(&self.metrics.read_errors, 1);
                    return Turn::Done;
                }
            }
        }
        let f = self.files.get_mut(&id).expect("tracked");
        let (key, fp) = f.identity.expect("identified");
        let handle = f.handle.as_ref().expect("opened");
        let outcome = read_chunk(
            handle,
            f.read_pos,
            f.size,
            self.limits,
            &mut f.long_line,
            final_turn,
        );
        match outcome {
            Ok(ReadOutcome::Chunk(body)) => {
                // Still the same content? A truncation that regrew past the offset read, or
                // another file at a reused inode, shows in the first line or in the bytes
                // before the offset. Checked after the read, so a chunk read across a
                // truncation is never sent.
                let handle = f.handle.as_ref().expect("opened");
                let same = fingerprint_matches(handle, fp).unwrap_or(false)
                    && tail_hash(handle, body.start).ok().flatten() == Some(f.read_tail_hash);
                if !same {
                    tracing::info!(path = %f.path.display(),
                        "file rewritten or replaced; reading it from the start");
                    f.long_line = None;
                    TailMetrics::add(&self.metrics.truncations, 1);
                    self.restart_content(id, true);
                    return Turn::Again;
                }
                f.max_size_seen = f.max_size_seen.max(f.size);
                f.read_pos = body.end;
                f.read_tail_hash = body.tail_hash;
                if !final_turn {
                    f.last_change = now;
                }
                let more = f.read_pos < f.size || f.long_line.is_some();
                self.ledger
                    .lock()
                    .unwrap()
                    .register(key, body.start, body.end, body.tail_hash);
                let m = &self.metrics;
                TailMetrics::add(&m.bytes_read, body.end - body.start);
                TailMetrics::add(&m.lines_read, u64::from(body.lines));
                TailMetrics::add(&m.lines_truncated, body.truncated.len() as u64);
                TailMetrics::add(&m.chunks_sent, 1);
                let chunk = Chunk {
                    file: key,
                    path: f.path.clone(),
                    start: body.start,
                    end: body.end,
                    data: body.data,
                    lines: body.lines,
                    truncated: body.truncated,
                    appended_newline: body.appended_newline,
                    finished: false,
                };
                if !self.send(chunk) {
                    return Turn::Stop;
                }
                if more || final_turn {
                    Turn::Again
                } else {
                    Turn::Done
                }
            }
            Ok(ReadOutcome::Progress) => Turn::Again,
            Ok(ReadOutcome::Idle) => {
                if final_turn {
                    return self.finish(id);
                }
                Turn::Done
            }
            Err(e) => {
                tracing::warn!(path = %f.path.display(), error = %e, "cannot read file");
                TailMetrics::add(&self.metrics.read_errors, 1);
                Turn::Done
            }
        }
    }

    fn send(&mut self, chunk: Chunk) -> bool {
        match self.tx.send(chunk) {
            Ok(()) => true,
            Err((_, SendError::Closed)) => false,
            Err((_, SendError::Disconnected)) => {
                tracing::info!("chunk receiver dropped; tailer stopping");
                false
            }
        }
    }

    /// The file is renamed away or deleted, and read to its end: say so and let it go.
    fn finish(&mut self, id: FileId) -> Turn {
        let f = self.files.get(&id).expect("tracked");
        if let Some((key, _)) = f.identity {
            let chunk = Chunk {
                file: key,
                path: f.path.clone(),
                start: f.read_pos,
                end: f.read_pos,
                data: Vec::new(),
                lines: 0,
                truncated: Vec::new(),
                appended_newline: false,
                finished: true,
            };
            tracing::debug!(path = %f.path.display(), "finished rotated or deleted file");
            TailMetrics::add(&self.metrics.files_finished, 1);
            self.ledger
                .lock()
                .unwrap()
                .register(key, f.read_pos, f.read_pos, f.read_tail_hash);
            if !self.send(chunk) {
                return Turn::Stop;
            }
        }
        self.remove(id);
        Turn::Done
    }

    /// Opens a tracked file by its path; false if it cannot be opened now.
    fn open(&mut self, id: FileId) -> bool {
        if self.open.len() >= self.config.max_open_files && !self.evict() {
            self.starved.push(id);
            return false;
        }
        let f = self.files.get_mut(&id).expect("tracked");
        let file = match File::open(&f.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.vanished(id);
                return false;
            }
            Err(e) => {
                tracing::warn!(path = %f.path.display(), error = %e, "cannot open file");
                TailMetrics::add(&self.metrics.read_errors, 1);
                return false;
            }
        };
        match file.metadata() {
            Ok(m) if (m.dev(), m.ino()) == (f.dev, f.ino) => {}
            _ => {
                // Another file is at the path now; the tracked one is gone.
                let path = f.path.clone();
                self.vanished(id);
                if let Ok(m) = fs::metadata(&path) {
                    if m.is_file() && self.patterns.matches(&path) {
                        self.observe(&path, &m);
                    }
                }
                return false;
            }
        }
        f.handle = Some(file);
        self.open.insert(id);
        true
    }

    /// A closed file can no longer be found at its path.
    fn vanished(&mut self, id: FileId) {
        let f = self.files.get(&id).expect("tracked");
        if f.identity.is_some() && f.size > f.read_pos && f.shadow_of.is_none() {
            self.lose(
                &f.path,
                f.size - f.read_pos,
                "the file disappeared before it was read",
            );
        }
        self.remove(id);
    }

    /// Closes the handle of the least recently active file that is read to its end.
    fn evict(&mut self) -> bool {
        let victim = self
            .open
            .iter()
            .map(|id| (id, &self.files[id]))
            .filter(|(_, f)| {
                f.handle.is_some()
                    && !f.detached
                    && f.long_line.is_none()
                    && (f.identity.is_none() || f.read_pos == f.size)
            })
            .min_by_key(|(_, f)| f.last_change)
            .map(|(&id, _)| id);
        match victim {
            Some(id) => {
                self.close(id);
                true
            }
            None => false,
        }
    }

    fn close(&mut self, id: FileId) {
        if let Some(f) = self.files.get_mut(&id) {
            f.handle = None;
        }
        self.open.remove(&id);
    }

    fn remove(&mut self, id: FileId) {
        self.close(id);
        self.set_identity(id, None);
        if let Some(f) = self.files.remove(&id) {
            if self.by_inode.get(&(f.dev, f.ino)) == Some(&id) {
                self.by_inode.remove(&(f.dev, f.ino));
            }
            if self.by_path.get(&*f.path) == Some(&id) {
                self.by_path.remove(&*f.path);
            }
        }
    }

    /// Sets or clears a file's identity, keeping the indexes right.
    fn set_identity(&mut self, id: FileId, identity: Option<(FileKey, Fingerprint)>) {
        let Some(f) = self.files.get_mut(&id) else {
            return;
        };
        if let Some((old, _)) = std::mem::replace(&mut f.identity, identity) {
            if self.by_key.get(&old) == Some(&id) {
                self.by_key.remove(&old);
            }
            if let Some(ids) = self.by_fingerprint.get_mut(&old.fingerprint) {
                ids.retain(|&o| o != id);
                if ids.is_empty() {
                    self.by_fingerprint.remove(&old.fingerprint);
                }
            }
        }
        if let Some((key, _)) = identity {
            self.by_key.insert(key, id);
            self.by_fingerprint
                .entry(key.fingerprint)
                .or_default()
                .push(id);
        }
    }

    fn lose(&self, path: &Path, bytes: u64, why: &str) {
        tracing::error!(path = %path.display(), bytes, "{why}; bytes lost");
        TailMetrics::add(&self.metrics.bytes_lost, bytes);
    }

    /// Gives up waiting for copies of truncated files (all of them with `all`, else those
    /// retired for more than two scan intervals) and counts their unread bytes as lost.
    fn expire_retired(&mut self, all: bool) {
        let wait = self.config.scan_interval * 2 + self.config.rotate_wait;
        let expired: Vec<FileKey> = self
            .retired
            .iter()
            .filter(|(_, r)| all || r.since.elapsed() >= wait)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            let r = self.retired.remove(&key).expect("listed");
            if r.unread > 0 {
                self.lose(
                    &r.path,
                    r.unread,
                    "file truncated before its last bytes were read, and no copy was found",
                );
            }
        }
    }

    /// Decides the key of a file whose fingerprint window just became complete; false if the
    /// file is not to be read (a copy of a tailed file, or not decided yet).
    fn identify(&mut self, id: FileId, fp: Fingerprint) -> bool {
        let f = self.files.get(&id).expect("tracked");
        let mut key = FileKey {
            dev: f.dev,
            ino: f.ino,
            fingerprint: fp.hash,
        };
        while self.by_key.get(&key).is_some_and(|&o| o != id) {
            // Only after a copytruncate whose copy took over this inode's old key while the
            // new content starts with the same line.
            tracing::warn!(path = %f.path.display(), "file key in use by a copy; deriving another");
            key.fingerprint = key.fingerprint.wrapping_add(1);
        }
        let mut start = (0, self.empty_tail_hash);
        let mut resumed = false;
        if !f.fresh {
            let handle = f.handle.as_ref().expect("opened");
            let saved = self
                .ledger
                .lock()
                .unwrap()
                .get(&key)
                .map(|e| (e.fingerprint_len, e.checkpoint, e.tail_hash));
            if let Some((fp_len, offset, hash)) = saved {
                if fp_len == fp.len
                    && offset <= f.size
                    && tail_hash(handle, offset).ok().flatten() == Some(hash)
                {
                    start = (offset, hash);
                    resumed = true;
                } else {
                    tracing::warn!(path = %f.path.display(), offset,
                        "saved checkpoint does not match the file's bytes; reading it from the start");
                    TailMetrics::add(&self.metrics.checkpoints_mismatched, 1);
                }
            } else {
                match self.copy_check(id, fp) {
                    CopyCheck::Copy(twin) => {
                        let f = self.files.get_mut(&id).expect("tracked");
                        tracing::info!(path = %f.path.display(), twin = %twin,
                            "file is a copy of a tailed file; not reading it twice");
                        f.shadow_of = Some(twin);
                        TailMetrics::add(&self.metrics.copies_recognised, 1);
                        self.close(id);
                        return false;
                    }
                    CopyCheck::TwinRestarted(twin) => {
                        let twin_key = self.files[&twin].identity.map(|(k, _)| k);
                        self.files.get_mut(&id).expect("tracked").shadow_of = twin_key;
                        self.close(id);
                        TailMetrics::add(&self.metrics.truncations, 1);
                        // Hands the twin's key to this file if it holds the bytes read so far.
                        self.restart_content(twin, true);
                        if self.files[&id].identity.is_some() {
                            TailMetrics::add(&self.metrics.copies_recognised, 1);
                        }
                        return false;
                    }
                    CopyCheck::Undecided if f.first_seen.elapsed() < self.config.rotate_wait => {
                        return false;
                    }
                    CopyCheck::Undecided | CopyCheck::NotCopy => {}
                }
                if let Some((k, offset, hash)) = self.continued_key(id, fp) {
                    if let Some(r) = self.retired.remove(&k) {
                        // The copy holds the old content up to its size.
                        let size = self.files[&id].size;
                        let lost = (r.offset + r.unread).saturating_sub(size);
                        if lost > 0 {
                            self.lose(
                                &r.path,
                                lost,
                                "bytes written after the copy of a truncated file",
                            );
                        }
                    }
                    key = k;
                    start = (offset, hash);
                    resumed = true;
                    TailMetrics::add(&self.metrics.copies_recognised, 1);
                }
            }
        }
        let f = self.files.get_mut(&id).expect("tracked");
        self.ledger
            .lock()
            .unwrap()
            .resume(key, fp, start.0, start.1, &f.path);
        TailMetrics::add(
            if resumed {
                &self.metrics.files_resumed
            } else {
                &self.metrics.files_discovered
            },
            1,
        );
        tracing::debug!(path = %f.path.display(), key = %key, offset = start.0, "tailing file");
        self.set_identity(id, Some((key, fp)));
        let f = self.files.get_mut(&id).expect("tracked");
        f.read_pos = start.0;
        f.read_tail_hash = start.1;
        f.fresh = false;
        true
    }

    /// Whether a new file is a copy of a tailed file: same device, same first line, and the
    /// same bytes over at least `fingerprint_bytes`.
    fn copy_check(&self, id: FileId, fp: Fingerprint) -> CopyCheck {
        let f = self.files.get(&id).expect("tracked");
        let handle = f.handle.as_ref().expect("opened");
        let mut result = CopyCheck::NotCopy;
        let twins = self.by_fingerprint.get(&fp.hash).into_iter().flatten();
        for (&other, t) in twins.map(|o| (o, &self.files[o])) {
            let Some((twin_key, twin_fp)) = t.identity else {
                continue;
            };
            if other == id || t.dev != f.dev || twin_fp != fp || t.shadow_of.is_some() {
                continue;
            }
            let opened;
            let twin = match &t.handle {
                Some(h) => h,
                None => match File::open(&t.path) {
                    Ok(h) => {
                        opened = h;
                        &opened
                    }
                    Err(_) => continue,
                },
            };
            let twin_size = twin.metadata().map(|m| m.len()).unwrap_or(0);
            let restarted =
                twin_size < t.read_pos || !fingerprint_matches(twin, twin_fp).unwrap_or(false);
            if restarted && t.read_pos >= self.config.fingerprint_bytes {
                return CopyCheck::TwinRestarted(other);
            }
            if restarted {
                continue;
            }
            let n = f.size.min(twin_size).min(COPY_COMPARE_BYTES);
            let (Ok(a), Ok(b)) = (read_at_most(handle, 0, n), read_at_most(twin, 0, n)) else {
                continue;
            };
            if a.len() as u64 != n || a != b {
                continue;
            }
            if n >= self.config.fingerprint_bytes {
                return CopyCheck::Copy(twin_key);
            }
            if f.size < twin_size {
                result = CopyCheck::Undecided;
            }
        }
        result
    }

    /// A saved key of another inode that this file continues (a copy made of a file that is
    /// gone or truncated since): same first line, and the same bytes before the checkpoint,
    /// which is at least `fingerprint_bytes` in.
    fn continued_key(&self, id: FileId, fp: Fingerprint) -> Option<(FileKey, u64, u64)> {
        let f = self.files.get(&id).expect("tracked");
        let handle = f.handle.as_ref().expect("opened");
        let retired = self
            .retired
            .iter()
            .filter(|(k, r)| {
                k.dev == f.dev
                    && k.ino != f.ino
                    && k.fingerprint == fp.hash
                    && r.fingerprint_len == fp.len
                    && r.offset <= f.size
            })
            .map(|(k, r)| (*k, r.offset, r.tail_hash));
        let saved: Vec<(FileKey, u64, u64)> = self
            .ledger
            .lock()
            .unwrap()
            .with_fingerprint(fp.hash)
            .filter(|(k, e)| {
                k.dev == f.dev
                    && k.ino != f.ino
                    && k.fingerprint == fp.hash
                    && e.fingerprint_len == fp.len
                    && e.checkpoint >= self.config.fingerprint_bytes
                    && e.checkpoint <= f.size
            })
            .map(|(k, e)| (*k, e.checkpoint, e.tail_hash))
            .collect();
        let mut candidates: Vec<_> = retired.collect();
        candidates.extend(saved);
        candidates.into_iter().find(|(k, offset, hash)| {
            !self.by_key.contains_key(k) && tail_hash(handle, *offset).ok().flatten() == Some(*hash)
        })
    }

    /// The file's content started over (truncation, or another file at a reused inode):
    /// hand the old key over to a copy if there is one, then read the file from 0.
    fn restart_content(&mut self, id: FileId, truncated: bool) {
        let f = self.files.get(&id).expect("tracked");
        let path = f.path.clone();
        let mut lost = if truncated {
            f.max_size_seen.saturating_sub(f.read_pos)
        } else {
            0
        };
        if let Some((key, fp)) = f.identity {
            let (read_pos, read_tail_hash) = (f.read_pos, f.read_tail_hash);
            let copy = self
                .files
                .iter()
                .find(|(_, s)| s.shadow_of == Some(key))
                .map(|(&sid, _)| sid);
            let adopted = match copy {
                Some(sid) => self.adopt_copy(id, sid),
                None => None,
            };
            match adopted {
                Some(l) => lost = l,
                None if read_pos >= self.config.fingerprint_bytes => {
                    // A copy may still turn up; the loss is counted if none does.
                    if self.retired.len() >= 1024 {
                        self.expire_retired(true);
                    }
                    self.retired.insert(
                        key,
                        Retired {
                            offset: read_pos,
                            tail_hash: read_tail_hash,
                            fingerprint_len: fp.len,
                            unread: lost,
                            path: path.clone(),
                            since: Instant::now(),
                        },
                    );
                    lost = 0;
                }
                None => {}
            }
        }
        if truncated {
            tracing::info!(path = %path.display(), "file truncated; reading it from the start");
        }
        if lost > 0 {
            self.lose(
                &path,
                lost,
                "file truncated before its last bytes were read (copytruncate race)",
            );
        }
        let f = self.files.get_mut(&id).expect("tracked");
        if let Some(Ok(m)) = f.handle.as_ref().map(File::metadata) {
            f.size = m.len();
        }
        self.set_identity(id, None);
        let f = self.files.get_mut(&id).expect("tracked");
        f.read_pos = 0;
        f.read_tail_hash = self.empty_tail_hash;
        f.long_line = None;
        f.max_size_seen = 0;
        f.fresh = true;
    }

    /// Lets copy `sid` continue the key of truncated file `id` from its offset read. Returns the
    /// bytes lost (written after the copy and before the truncation), or `None` if the copy does
    /// not hold the bytes read so far (it is then read as a file of its own).
    fn adopt_copy(&mut self, id: FileId, sid: FileId) -> Option<u64> {
        let f = self.files.get(&id).expect("tracked");
        let (read_pos, read_tail_hash, identity, max_seen) =
            (f.read_pos, f.read_tail_hash, f.identity, f.max_size_seen);
        let s = self.files.get_mut(&sid).expect("tracked");
        s.shadow_of = None;
        let file = File::open(&s.path).ok()?;
        let size = file.metadata().ok()?.len();
        if size < read_pos || tail_hash(&file, read_pos).ok().flatten() != Some(read_tail_hash) {
            tracing::warn!(path = %s.path.display(), "copy does not hold the bytes read; reading it as a new file");
            self.enqueue(sid);
            return None;
        }
        tracing::info!(path = %s.path.display(), offset = read_pos, "truncated file continues in its copy");
        self.set_identity(sid, identity);
        let s = self.files.get_mut(&sid).expect("tracked");
        s.read_pos = read_pos;
        s.read_tail_hash = read_tail_hash;
        s.size = size;
        s.max_size_seen = size.max(read_pos);
        s.last_change = Instant::now();
        s.handle = Some(file);
        self.open.insert(sid);
        self.enqueue(sid);
        Some(max_seen.saturating_sub(size.max(read_pos)))
    }
}
