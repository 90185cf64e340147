//! The kernel log input: records read from `/dev/kmsg` (`<priority>,<seq>,<usec>,<flags>;text`);
//! netfilter packet lines (iptables/nftables `LOG`, Calico policy logging) become `netflow`
//! records through `kestrel_parse::{parse_kmsg, parse_packet}`; other kernel messages are
//! skipped (their positions still advance).
//!
//! `/dev/kmsg` is not a file: each `read` returns one record, a reader may only seek to the
//! start or the end of the kernel's ring buffer, and a reader that falls behind gets `EPIPE`
//! when its next record was overwritten. So:
//! - the position is the kernel's sequence number, per boot: a batch covers `[first seq,
//!   last seq + 1)` of the stream `kmsg:<boot id>`, and the checkpoint keeps, per boot, the
//!   end of the last acknowledged batch;
//! - the first start seeks to the end (`start_at: beginning` reads the ring buffer); a restart
//!   in the same boot reads from the start of the ring buffer and skips records before the
//!   checkpoint (or before the end of the last batch still in the disk buffer);
//! - records overwritten before they were read (`EPIPE`, or a gap in the sequence numbers)
//!   are counted as lost, and reading goes on.
//!
//! A `path` that is not a character device (a FIFO or a file, for tests or for a node that
//! copies the log) is read as lines, one record each, the way `cat /dev/kmsg` prints them.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kestrel_event::{DeadLetter, IngestBatch, NetfilterLog};
use serde::Deserialize;
use tracing::{debug, error, info, warn};

use super::journal::{sleep_unless_stopped, StartAt};
use super::{BatchSink, StreamCheckpoint, StreamError};
use crate::buffer::{BatchMeta, BufferError};
use crate::metrics::InputMetrics;

/// Larger than any record the kernel formats (`CONSOLE_EXT_LOG_MAX`, 8 KiB): a smaller buffer
/// makes `read` fail with `EINVAL`.
const RECORD_BUFFER_BYTES: usize = 16 * 1024;
/// How long a reader with nothing to read waits before trying again.
const IDLE_WAIT: Duration = Duration::from_millis(100);
const DEAD_LETTER_PAYLOAD_BYTES: usize = 4096;
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// `type: kmsg` — the kernel log device; netfilter packet lines become `netflow` records.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsgInput {
    /// The input's name; defaults to `kmsg`.
    #[serde(default)]
    pub name: Option<String>,
    /// The kernel log device; a FIFO or a file is read as one record per line.
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// Where the first start begins: `end` (records logged from now on) or `beginning` (what
    /// the kernel's ring buffer still holds).
    #[serde(default)]
    pub start_at: StartAt,
    /// Longest time a record waits for its batch to fill, like `1s`.
    #[serde(
        default = "super::journal::default_max_batch_wait",
        deserialize_with = "crate::config::duration"
    )]
    pub max_batch_wait: Duration,
}

impl Default for KmsgInput {
    fn default() -> Self {
        KmsgInput {
            name: None,
            path: default_path(),
            start_at: StartAt::End,
            max_batch_wait: super::journal::default_max_batch_wait(),
        }
    }
}

fn default_path() -> PathBuf {
    PathBuf::from("/dev/kmsg")
}

impl KmsgInput {
    /// The input's name in batches and metrics.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("kmsg")
    }

    /// Problems in this input, for the agent's whole-config validation.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.path.as_os_str().is_empty() {
            problems.push(format!("inputs.{}.path must not be empty", self.name()));
        }
        if self.max_batch_wait.is_zero() {
            problems.push(format!(
                "inputs.{}.max_batch_wait must be more than 0s",
                self.name()
            ));
        }
        problems
    }
}

/// This boot's identity (records' sequence numbers restart at every boot).
pub fn boot_id() -> String {
    std::fs::read_to_string(BOOT_ID_PATH)
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-boot".into())
}

/// When the machine booted, UTC nanoseconds: now minus `/proc/uptime` (10 ms precision; kmsg
/// time stamps count from boot).
pub fn boot_time_ns() -> i64 {
    let uptime_ns = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0, |secs| (secs * 1e9) as i64);
    kestrel_event::time::now_nanos() - uptime_ns
}

/// Where reading starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Skip everything logged before now.
    End,
    /// Read the whole ring buffer, skipping sequence numbers below this.
    From(u64),
}

/// Reads records from the device, or lines from a FIFO or file.
enum Source {
    Device(File),
    Lines { file: File, partial: Vec<u8> },
}

/// One read's outcome.
enum Read1 {
    Record(Vec<u8>),
    /// Nothing to read now.
    Idle,
    /// The kernel overwrote records before this reader got them (`EPIPE`).
    Overrun,
}

impl Source {
    fn open(path: &PathBuf, start: Start) -> std::io::Result<Source> {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        let meta = file.metadata()?;
        let seekable = meta.file_type().is_char_device() || meta.is_file();
        if start == Start::End && seekable {
            file.seek(SeekFrom::End(0))?;
        }
        Ok(if meta.file_type().is_char_device() {
            Source::Device(file)
        } else {
            Source::Lines {
                file,
                partial: Vec::new(),
            }
        })
    }

    fn next(&mut self, buf: &mut [u8]) -> std::io::Result<Read1> {
        match self {
            Source::Device(file) => match file.read(buf) {
                Ok(0) => Ok(Read1::Idle),
                Ok(n) => Ok(Read1::Record(buf[..n].to_vec())),
                Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(Read1::Idle),
                Err(e) if e.kind() == ErrorKind::Interrupted => Ok(Read1::Idle),
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => Ok(Read1::Overrun),
                Err(e) => Err(e),
            },
            Source::Lines { file, partial } => loop {
                if let Some(nl) = memchr::memchr(b'\n', partial) {
                    let rest = partial.split_off(nl + 1);
                    let mut line = std::mem::replace(partial, rest);
                    line.pop();
                    return Ok(Read1::Record(line));
                }
                match file.read(buf) {
                    Ok(0) => return Ok(Read1::Idle),
                    Ok(n) => partial.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Read1::Idle),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            },
        }
    }
}

/// Records waiting for their batch.
#[derive(Debug, Default)]
struct Pending {
    start: Option<u64>,
    end: u64,
    netflow: Vec<NetfilterLog>,
    dead_letters: Vec<DeadLetter>,
    bytes: usize,
    since: Option<Instant>,
}

struct KmsgReader {
    input: KmsgInput,
    sink: BatchSink,
    checkpoint: Arc<StreamCheckpoint>,
    metrics: InputMetrics,
    max_batch_bytes: usize,
    stop: Arc<AtomicBool>,
    stream: String,
    boot_time_ns: i64,
    start: Start,
    /// The sequence number expected next, once known.
    expected: Option<u64>,
    pending: Pending,
}

/// Starts the input on a thread. Batches of this input left in the disk buffer (`buffered`, in
/// buffer order) advance the checkpoint when `resume` reports them acknowledged.
pub fn start(
    input: KmsgInput,
    sink: BatchSink,
    checkpoint: Arc<StreamCheckpoint>,
    buffered: &[&BatchMeta],
    resume: &crate::pipeline::ResumeRanges,
    max_batch_bytes: usize,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, StreamError> {
    let stream = format!("kmsg:{}", boot_id());
    let saved = checkpoint.saved();
    let mut next = saved.end(&stream);
    for meta in super::not_acknowledged(buffered, &saved) {
        let ticket = checkpoint.ticket(&meta.stream, meta.end, None);
        super::wait_for_buffered(resume, meta, ticket);
        if meta.stream == stream {
            next = Some(next.unwrap_or(0).max(meta.end));
        }
    }
    let first_start = saved.ends.is_empty() && buffered.is_empty();
    let start = match next {
        Some(seq) => Start::From(seq),
        None if first_start && input.start_at == StartAt::End => Start::End,
        // A new boot since the last run: its records are all new.
        None => Start::From(0),
    };
    let metrics = sink.metrics.input(input.name());
    let name = input.name().to_owned();
    let reader = KmsgReader {
        input,
        sink,
        checkpoint,
        metrics,
        max_batch_bytes,
        stop,
        stream,
        boot_time_ns: boot_time_ns(),
        start,
        expected: None,
        pending: Pending::default(),
    };
    std::thread::Builder::new()
        .name(format!("kestrel-kmsg-{name}"))
        .spawn(move || reader.run())
        .map_err(|source| StreamError::Io {
            what: "starting the kmsg input's thread".into(),
            source,
        })
}

impl KmsgReader {
    fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        let mut buf = vec![0u8; RECORD_BUFFER_BYTES];
        let mut first = true;
        while !self.stop.load(Ordering::Acquire) {
            if !first {
                self.metrics.restarts.inc();
                if !sleep_unless_stopped(&self.stop, backoff) {
                    break;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            first = false;
            let mut source = match Source::open(&self.input.path, self.start) {
                Ok(s) => s,
                Err(e) => {
                    warn!(input = self.input.name(), path = %self.input.path.display(), error = %e, "cannot open the kernel log; retrying");
                    continue;
                }
            };
            info!(input = self.input.name(), path = %self.input.path.display(), start = ?self.start, "reading the kernel log");
            match self.read(&mut source, &mut buf) {
                Ok(()) => break,
                Err(e) => {
                    self.metrics.errors.inc();
                    warn!(input = self.input.name(), error = %e, "reading the kernel log failed; opening it again");
                    // Reopened from the start of the ring buffer, skipping what was read.
                    self.start = Start::From(self.expected.unwrap_or(0));
                    backoff = Duration::from_millis(100);
                }
            }
        }
    }

    /// Reads until the agent stops (`Ok`) or a read fails.
    fn read(&mut self, source: &mut Source, buf: &mut [u8]) -> std::io::Result<()> {
        loop {
            if self.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            match source.next(buf)? {
                Read1::Record(r) => self.record(&r),
                Read1::Overrun => {
                    // The next record read shows how many were lost (its sequence number).
                    debug!(
                        input = self.input.name(),
                        "kernel log records overwritten before they were read"
                    );
                }
                Read1::Idle => {
                    if self.pending.since.is_none() {
                        std::thread::sleep(IDLE_WAIT);
                    } else {
                        std::thread::sleep(IDLE_WAIT.min(self.input.max_batch_wait));
                    }
                }
            }
            let due = self
                .pending
                .since
                .is_some_and(|s| s.elapsed() >= self.input.max_batch_wait);
            if (due || self.pending.bytes >= self.max_batch_bytes) && self.flush().is_err() {
                return Ok(());
            }
        }
    }

    fn record(&mut self, record: &[u8]) {
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        let parsed = match kestrel_parse::parse_kmsg(record, self.boot_time_ns) {
            Ok(Some(r)) => r,
            // A continuation (dictionary) line of a record printed as text.
            Ok(None) => return,
            Err(e) => {
                self.metrics.records.inc();
                self.reject("kmsg", e.kind(), e.to_string(), record);
                return;
            }
        };
        let seq = parsed.seq;
        if let Start::From(from) = self.start {
            if seq < from {
                return;
            }
        }
        if let Some(expected) = self.expected {
            if seq > expected {
                let lost = seq - expected;
                self.metrics.lost.inc_by(lost);
                warn!(
                    input = self.input.name(),
                    lost, "kernel log records were overwritten before they were read"
                );
            } else if seq < expected {
                // Older than what was read (a file rewritten, a device reset): a batch's range
                // must only grow, so these are not read again.
                return;
            }
        } else if let Start::From(from) = self.start {
            if seq > from && from > 0 {
                let lost = seq - from;
                self.metrics.lost.inc_by(lost);
                warn!(
                    input = self.input.name(),
                    lost, "kernel log records were overwritten while the agent was not reading"
                );
            }
        }
        self.expected = Some(seq + 1);
        self.metrics.records.inc();
        let p = &mut self.pending;
        if p.start.is_none() {
            p.start = Some(seq);
            p.since = Some(Instant::now());
        }
        p.end = seq + 1;
        p.bytes += record.len();
        match kestrel_parse::parse_packet(&parsed.text, parsed.time) {
            Ok(Some(packet)) => p.netflow.push(packet),
            Ok(None) => {}
            Err(e) => self.reject("kmsg_packet", e.kind(), e.to_string(), record),
        }
    }

    fn reject(&mut self, what: &str, kind: &str, reason: String, record: &[u8]) {
        self.metrics.errors.inc();
        self.pending.dead_letters.push(DeadLetter {
            time: kestrel_event::time::now_nanos(),
            source: self.input.name().to_owned(),
            kind: kind.to_owned(),
            reason: format!("{what}: {reason}"),
            location: Some(self.input.path.display().to_string()),
            size_bytes: record.len() as i64,
            payload: String::from_utf8_lossy(
                &record[..record.len().min(DEAD_LETTER_PAYLOAD_BYTES)],
            )
            .into_owned(),
        });
    }

    /// Writes the pending records as one batch. A range without packets or dead letters is
    /// not sent; it only advances the checkpoint once the batches before it are acknowledged.
    fn flush(&mut self) -> Result<(), BufferError> {
        let Some(start) = self.pending.start else {
            return Ok(());
        };
        let p = std::mem::take(&mut self.pending);
        let ticket = self.checkpoint.ticket(&self.stream, p.end, None);
        if p.netflow.is_empty() && p.dead_letters.is_empty() {
            ticket.release();
            return Ok(());
        }
        let records = IngestBatch {
            netflow: p.netflow,
            dead_letters: p.dead_letters,
            ..IngestBatch::default()
        };
        match self.sink.write(&self.stream, start, p.end, records, ticket) {
            Ok(()) => Ok(()),
            Err(e) => {
                if !matches!(e, BufferError::Closed) {
                    error!(input = self.input.name(), error = %e, "cannot buffer a batch; stopping this input");
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests;
