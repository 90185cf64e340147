//! The disk buffer: every batch is written here (and fsynced) before it is sent, and deleted
//! when the server has acknowledged it.
//!
//! Writing before sending is what keeps a batch's identity across a crash: a batch the server
//! may have stored is always found here after a restart and re-sent as it was, so the server
//! recognises it; the agent reads on from where its buffered batches end. It is also what
//! absorbs a server outage: batches pile up here, up to `max_bytes`, and then reading pauses
//! (the log files are the buffer beyond that).
//!
//! Layout: `<dir>/<segment:020>.buf`, each a sequence of records
//! `len: u32 LE | crc32(payload): u32 LE | payload`. A segment is deleted once every record in
//! it is acknowledged and it is no longer written to. A record whose checksum does not match is
//! skipped and counted (its bytes are then read again from the log file, whose checkpoint never
//! passed them); a torn record at the end of the last segment is cut.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{error, warn};

/// Largest record accepted (a compressed batch of a few MiB at most in practice).
const MAX_RECORD_BYTES: u32 = 256 * 1024 * 1024;

/// Where a record lives: segment and byte offset. Ordered as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId {
    pub segment: u64,
    pub offset: u64,
}

/// What the buffer knows of a batch without decompressing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    /// The batch identity.
    pub id: String,
    pub input: String,
    /// The stream (a file's key) the batch's range belongs to.
    pub stream: String,
    pub start: u64,
    pub end: u64,
    /// Records in the batch.
    pub records: u32,
}

/// A buffered batch: its metadata and its compressed body.
#[derive(Debug, Clone)]
pub struct BufferedBatch {
    pub id: RecordId,
    pub meta: BatchMeta,
    pub body: Vec<u8>,
}

/// Buffer counters.
#[derive(Debug, Default)]
pub struct BufferMetrics {
    pub bytes: AtomicU64,
    pub records: AtomicU64,
    pub corrupt_records: AtomicU64,
    pub segments_deleted: AtomicU64,
    pub full_waits: AtomicU64,
}

/// Errors of the buffer.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("disk buffer {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("batch of {0} bytes is larger than a buffer record may be")]
    TooLarge(usize),
    #[error("the disk buffer is closed")]
    Closed,
}

#[derive(Debug, Default)]
struct SegmentState {
    /// Records not yet acknowledged, with their sizes on disk.
    unacked: BTreeMap<u64, u64>,
    /// Bytes written to the segment (the readable end).
    len: u64,
}

#[derive(Debug)]
struct State {
    segments: BTreeMap<u64, SegmentState>,
    /// The segment being written.
    active: u64,
    writer: Option<File>,
    /// Bytes of unacknowledged records.
    bytes: u64,
    /// Next record the reader hands out.
    read_cursor: RecordId,
    /// No more appends (shutdown): a writer waiting for room gives up.
    writes_closed: bool,
    closed: bool,
}

/// The disk buffer, shared by the pipeline (writer), the shipper (reader) and acknowledgements.
#[derive(Debug)]
pub struct DiskBuffer {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    fsync: bool,
    state: Mutex<State>,
    /// Signalled when records are written, acknowledged, or the buffer closes.
    changed: Condvar,
    metrics: Arc<BufferMetrics>,
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.buf"))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BufferError + '_ {
    move |source| BufferError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Encodes a record payload: `meta_len: u32 LE | meta JSON | body`.
fn encode_payload(meta: &BatchMeta, body: &[u8]) -> Vec<u8> {
    let meta_json = serde_json::to_vec(meta).expect("batch meta serializes");
    let mut out = Vec::with_capacity(4 + meta_json.len() + body.len());
    out.extend_from_slice(&(meta_json.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta_json);
    out.extend_from_slice(body);
    out
}

fn decode_payload(payload: &[u8]) -> Option<(BatchMeta, Vec<u8>)> {
    let len = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let meta = serde_json::from_slice(payload.get(4..4 + len)?).ok()?;
    Some((meta, payload[4 + len..].to_vec()))
}

/// What reading one record found.
enum ReadOutcome {
    Record(u64, Vec<u8>),
    Corrupt(u64),
    /// The end of the data (or a torn record at the end): the offset where good data ends.
    End(u64),
}

fn read_record(reader: &mut impl Read, offset: u64) -> io::Result<ReadOutcome> {
    let mut header = [0u8; 8];
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(ReadOutcome::End(offset)),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len > MAX_RECORD_BYTES {
        return Ok(ReadOutcome::End(offset));
    }
    let mut payload = vec![0u8; len as usize];
    match reader.read_exact(&mut payload) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(ReadOutcome::End(offset)),
        Err(e) => return Err(e),
    }
    let next = offset + 8 + u64::from(len);
    if crc32fast::hash(&payload) != crc {
        return Ok(ReadOutcome::Corrupt(next));
    }
    Ok(ReadOutcome::Record(next, payload))
}

impl DiskBuffer {
    /// Opens the buffer in `dir`, finding the records a previous run left unacknowledged; they
    /// are handed out first, in order. Returns the buffer and the metadata of those records.
    pub fn open(
        dir: impl Into<PathBuf>,
        max_bytes: u64,
        segment_bytes: u64,
        fsync: bool,
    ) -> Result<(DiskBuffer, Vec<BatchMeta>), BufferError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let metrics = Arc::new(BufferMetrics::default());
        let mut segments = BTreeMap::new();
        let mut left = Vec::new();
        let mut ids: Vec<u64> = fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                name.strip_suffix(".buf")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let mut bytes = 0;
        for &seg in &ids {
            let path = segment_path(&dir, seg);
            let file = File::open(&path).map_err(io_err(&path))?;
            let mut reader = BufReader::new(file);
            let mut state = SegmentState::default();
            let mut offset = 0;
            loop {
                match read_record(&mut reader, offset).map_err(io_err(&path))? {
                    ReadOutcome::Record(next, payload) => {
                        match decode_payload(&payload) {
                            Some((meta, _)) => {
                                state.unacked.insert(offset, next - offset);
                                bytes += next - offset;
                                left.push(meta);
                            }
                            None => {
                                metrics.corrupt_records.fetch_add(1, Ordering::Relaxed);
                                warn!(segment = seg, offset, "buffer record with a valid checksum does not decode; skipped (its lines are read again from the file)");
                            }
                        }
                        offset = next;
                    }
                    ReadOutcome::Corrupt(next) => {
                        metrics.corrupt_records.fetch_add(1, Ordering::Relaxed);
                        warn!(segment = seg, offset, "corrupt buffer record skipped (its lines are read again from the file)");
                        offset = next;
                    }
                    ReadOutcome::End(end) => {
                        offset = end;
                        break;
                    }
                }
            }
            // Cut a torn tail so later appends (only to new segments) never follow garbage.
            let file_len = fs::metadata(&path).map_err(io_err(&path))?.len();
            if file_len > offset {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                f.set_len(offset).map_err(io_err(&path))?;
            }
            state.len = offset;
            segments.insert(seg, state);
        }
        // Old segments with nothing left to send go now.
        let empty: Vec<u64> = segments
            .iter()
            .filter(|(_, s)| s.unacked.is_empty())
            .map(|(&id, _)| id)
            .collect();
        for seg in empty {
            segments.remove(&seg);
            let _ = fs::remove_file(segment_path(&dir, seg));
        }
        let active = ids.last().map_or(1, |l| l + 1);
        segments.insert(active, SegmentState::default());
        let first = segments
            .iter()
            .find_map(|(&seg, s)| {
                s.unacked.keys().next().map(|&o| RecordId {
                    segment: seg,
                    offset: o,
                })
            })
            .unwrap_or(RecordId {
                segment: active,
                offset: 0,
            });
        metrics.bytes.store(bytes, Ordering::Relaxed);
        metrics.records.store(left.len() as u64, Ordering::Relaxed);
        let buffer = DiskBuffer {
            dir,
            max_bytes,
            segment_bytes,
            fsync,
            state: Mutex::new(State {
                segments,
                active,
                writer: None,
                bytes,
                read_cursor: first,
                writes_closed: false,
                closed: false,
            }),
            changed: Condvar::new(),
            metrics,
        };
        Ok((buffer, left))
    }

    /// The buffer's counters.
    pub fn metrics(&self) -> Arc<BufferMetrics> {
        Arc::clone(&self.metrics)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a batch, waiting while the buffer is full; the batch is durable (when `fsync`)
    /// and readable by the shipper when this returns.
    pub fn append(&self, meta: &BatchMeta, body: &[u8]) -> Result<RecordId, BufferError> {
        let payload = encode_payload(meta, body);
        if payload.len() > MAX_RECORD_BYTES as usize {
            return Err(BufferError::TooLarge(payload.len()));
        }
        let size = payload.len() as u64 + 8;
        let mut state = self.lock();
        let mut waited = false;
        // A batch always fits into an empty buffer, so one larger than `max_bytes` cannot
        // wait forever.
        while !state.closed
            && !state.writes_closed
            && state.bytes > 0
            && state.bytes + size > self.max_bytes
        {
            if !waited {
                self.metrics.full_waits.fetch_add(1, Ordering::Relaxed);
                waited = true;
            }
            state = self
                .changed
                .wait_timeout(state, Duration::from_secs(1))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if state.closed || state.writes_closed {
            return Err(BufferError::Closed);
        }
        let active_len = state.segments.get(&state.active).map_or(0, |s| s.len);
        if active_len > 0 && active_len + size > self.segment_bytes {
            // Seal the active segment; a fully acknowledged one can go right away.
            state.writer = None;
            let sealed = state.active;
            state.active += 1;
            let next = state.active;
            state.segments.insert(next, SegmentState::default());
            self.delete_if_done(&mut state, sealed);
        }
        let active = state.active;
        let path = segment_path(&self.dir, active);
        if state.writer.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            state.writer = Some(f);
        }
        let offset = state.segments.get(&active).map_or(0, |s| s.len);
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        let writer = state.writer.as_mut().expect("opened above");
        let written = writer.write_all(&frame).and_then(|()| {
            if self.fsync {
                writer.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Drop the handle; the next append reopens and appends after whatever landed. A
            // torn frame there is cut at the next start.
            state.writer = None;
            error!(path = %path.display(), error = %e, "cannot write the disk buffer");
            return Err(BufferError::Io { path, source: e });
        }
        let seg = state.segments.entry(active).or_default();
        seg.unacked.insert(offset, size);
        seg.len = offset + size;
        state.bytes += size;
        self.metrics.bytes.store(state.bytes, Ordering::Relaxed);
        self.metrics.records.fetch_add(1, Ordering::Relaxed);
        drop(state);
        self.changed.notify_all();
        Ok(RecordId {
            segment: active,
            offset,
        })
    }

    /// The next unsent record, waiting up to `timeout` for one. Each record is handed out
    /// once per run; a record that failed to send is re-sent by the caller, not re-read.
    pub fn next(&self, timeout: Duration) -> Result<Option<BufferedBatch>, BufferError> {
        let mut state = self.lock();
        loop {
            if let Some((id, size)) = Self::find_next(&state) {
                state.read_cursor = RecordId {
                    segment: id.segment,
                    offset: id.offset + size,
                };
                drop(state);
                return match self.read_at(id)? {
                    Some((meta, body)) => Ok(Some(BufferedBatch { id, meta, body })),
                    None => {
                        // Corrupt on disk since it was written: count it, acknowledge it (its
                        // lines come again from the file), move on.
                        self.metrics.corrupt_records.fetch_add(1, Ordering::Relaxed);
                        warn!(
                            segment = id.segment,
                            offset = id.offset,
                            "corrupt buffer record skipped"
                        );
                        self.ack(id);
                        state = self.lock();
                        continue;
                    }
                };
            }
            if state.closed {
                return Err(BufferError::Closed);
            }
            let (s, t) = self
                .changed
                .wait_timeout(state, timeout)
                .unwrap_or_else(|p| p.into_inner());
            state = s;
            if t.timed_out() && Self::find_next(&state).is_none() {
                return Ok(None);
            }
        }
    }

    fn find_next(state: &State) -> Option<(RecordId, u64)> {
        let cur = state.read_cursor;
        state.segments.range(cur.segment..).find_map(|(&seg, s)| {
            let from = if seg == cur.segment { cur.offset } else { 0 };
            s.unacked.range(from..).next().map(|(&offset, &size)| {
                (
                    RecordId {
                        segment: seg,
                        offset,
                    },
                    size,
                )
            })
        })
    }

    fn read_at(&self, id: RecordId) -> Result<Option<(BatchMeta, Vec<u8>)>, BufferError> {
        let path = segment_path(&self.dir, id.segment);
        let mut f = File::open(&path).map_err(io_err(&path))?;
        f.seek(SeekFrom::Start(id.offset)).map_err(io_err(&path))?;
        match read_record(&mut f, id.offset).map_err(io_err(&path))? {
            ReadOutcome::Record(_, payload) => Ok(decode_payload(&payload)),
            ReadOutcome::Corrupt(_) | ReadOutcome::End(_) => Ok(None),
        }
    }

    /// Marks a record acknowledged; a sealed segment with nothing left unacknowledged is deleted.
    pub fn ack(&self, id: RecordId) {
        let mut state = self.lock();
        let Some(seg) = state.segments.get_mut(&id.segment) else {
            return;
        };
        let Some(size) = seg.unacked.remove(&id.offset) else {
            return;
        };
        state.bytes -= size;
        self.metrics.bytes.store(state.bytes, Ordering::Relaxed);
        self.metrics.records.fetch_sub(1, Ordering::Relaxed);
        self.delete_if_done(&mut state, id.segment);
        drop(state);
        self.changed.notify_all();
    }

    fn delete_if_done(&self, state: &mut State, segment: u64) {
        if segment == state.active {
            return;
        }
        if state
            .segments
            .get(&segment)
            .is_some_and(|s| s.unacked.is_empty())
        {
            state.segments.remove(&segment);
            let path = segment_path(&self.dir, segment);
            match fs::remove_file(&path) {
                Ok(()) => {
                    self.metrics
                        .segments_deleted
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => warn!(path = %path.display(), error = %e, "cannot delete buffer segment"),
            }
        }
    }

    /// Unacknowledged batches.
    pub fn records(&self) -> usize {
        self.lock().segments.values().map(|s| s.unacked.len()).sum()
    }

    /// Bytes of unacknowledged batches.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Refuses appends from now on (a writer waiting for room returns); reading and
    /// acknowledging go on.
    pub fn close_writes(&self) {
        self.lock().writes_closed = true;
        self.changed.notify_all();
    }

    /// Wakes every waiter; appends and reads fail from now on.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(i: u64) -> BatchMeta {
        BatchMeta {
            id: format!("b{i}"),
            input: "pods".into(),
            stream: "f".into(),
            start: i * 10,
            end: i * 10 + 10,
            records: 1,
        }
    }

    #[test]
    fn records_come_back_in_order_and_acked_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        let (buf, left) = DiskBuffer::open(dir.path(), 1 << 20, 200, false).unwrap();
        assert!(left.is_empty());
        let ids: Vec<_> = (0..10)
            .map(|i| buf.append(&meta(i), &[i as u8; 50]).unwrap())
            .collect();
        for i in 0..10u64 {
            let b = buf.next(Duration::from_millis(10)).unwrap().unwrap();
            assert_eq!(b.meta, meta(i));
            assert_eq!(b.body, vec![i as u8; 50]);
        }
        assert!(buf.next(Duration::from_millis(10)).unwrap().is_none());
        let files = || fs::read_dir(dir.path()).unwrap().count();
        assert!(files() > 3, "small segments: several files");
        for id in ids {
            buf.ack(id);
        }
        assert_eq!(buf.bytes(), 0);
        assert_eq!(files(), 1, "only the active segment stays");
    }

    #[test]
    fn unacknowledged_records_survive_a_restart_and_corrupt_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (buf, _) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 20, true).unwrap();
            let a = buf.append(&meta(0), b"zero").unwrap();
            buf.append(&meta(1), b"one").unwrap();
            buf.append(&meta(2), b"two").unwrap();
            buf.ack(a);
        }
        // Flip a byte in the body of record 1 and add a torn frame at the end.
        let seg = segment_path(dir.path(), 1);
        let mut data = fs::read(&seg).unwrap();
        let one = data.windows(3).rposition(|w| w == b"one").unwrap();
        data[one] ^= 0xff;
        data.extend_from_slice(&[9, 0, 0, 0, 1, 2]);
        fs::write(&seg, &data).unwrap();

        let (buf, left) = DiskBuffer::open(dir.path(), 1 << 20, 1 << 20, true).unwrap();
        // Record 0 was acknowledged but its segment was active, so it is re-sent (the server
        // de-duplicates); record 1 is corrupt and skipped; record 2 comes back.
        let ids: Vec<_> = left.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["b0", "b2"]);
        assert_eq!(buf.metrics().corrupt_records.load(Ordering::Relaxed), 1);
        let got = buf.next(Duration::from_millis(10)).unwrap().unwrap();
        assert_eq!(got.body, b"zero");
        let got = buf.next(Duration::from_millis(10)).unwrap().unwrap();
        assert_eq!(got.body, b"two");
        // New records go to a new segment, after the old ones.
        buf.append(&meta(3), b"three").unwrap();
        let got = buf.next(Duration::from_millis(10)).unwrap().unwrap();
        assert_eq!(got.meta, meta(3));
    }

    #[test]
    fn a_full_buffer_blocks_the_writer_until_an_ack() {
        let dir = tempfile::tempdir().unwrap();
        let (buf, _) = DiskBuffer::open(dir.path(), 300, 300, false).unwrap();
        let buf = Arc::new(buf);
        let first = buf.append(&meta(0), &[0; 150]).unwrap();
        let writer = {
            let buf = Arc::clone(&buf);
            std::thread::spawn(move || buf.append(&meta(1), &[1; 150]).unwrap())
        };
        // The writer waits: the buffer holds one record and a second does not fit.
        while buf.metrics().full_waits.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        assert!(!writer.is_finished());
        buf.ack(first);
        writer.join().unwrap();
        assert_eq!(buf.metrics().records.load(Ordering::Relaxed), 1);
    }
}
