//! The systemd journal input: `journalctl -o json --follow` as a child process, each line
//! parsed by `kestrel_parse::parse_journal` into a `journal` record.
//!
//! Positions: a journal cursor (`s=<seqnum id>;i=<seqnum>;b=...;m=...;t=...;x=...`) names its
//! entry by a sequence-number source `s` and a sequence number `i` that grows within it. A
//! batch holds entries of one source, so its range is `[first i, last i + 1)` of the stream
//! `journal:<s>`: its identity comes from the cursors it covers. The checkpoint keeps the full
//! cursor of the last acknowledged entry; a restart follows with `--after-cursor` from there,
//! or from the last entry of the last batch still in the disk buffer (`s=<s>;i=<last i>`, a
//! cursor journalctl accepts), whose batches are re-sent as they were.
//!
//! `journalctl` is restarted with backoff when it exits; what it prints on stderr is logged.
//! Follow mode needs the system journal or `directory` (journalctl cannot follow `--file`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kestrel_event::{DeadLetter, IngestBatch, JournalEntry};
use serde::Deserialize;
use tracing::{debug, error, info, warn};

use super::{BatchSink, StreamCheckpoint, StreamError};
use crate::buffer::{BatchMeta, BufferError};
use crate::metrics::InputMetrics;
use crate::pipeline::Ticket;

/// Lines of journalctl's output queued for the batcher.
const QUEUED_LINES: usize = 1024;
/// Dead letters kept while waiting for an entry to batch them with.
const MAX_WAITING_DEAD_LETTERS: usize = 1000;
/// Largest payload of a dead letter.
const DEAD_LETTER_PAYLOAD_BYTES: usize = 4096;
/// How often a quiet reader checks whether the agent is stopping.
const STOP_POLL: Duration = Duration::from_millis(200);
/// A journalctl run longer than this resets the restart backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(10);

/// Where the very first start of an input begins (later starts resume from the checkpoint).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// Only what is written from now on.
    #[default]
    End,
    /// Everything the journal (or the kernel's ring buffer) still holds.
    Beginning,
}

/// `type: journal` — the systemd journal, through `journalctl -o json --follow`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalInput {
    /// The input's name; defaults to `journal`.
    #[serde(default)]
    pub name: Option<String>,
    /// Units whose entries are read (`journalctl --unit`, which also takes systemd's own
    /// messages about the unit); empty reads every entry.
    #[serde(default = "default_units")]
    pub units: Vec<String>,
    /// The `journalctl` program (a name looked up in `$PATH`, or a path).
    #[serde(default = "default_journalctl")]
    pub journalctl: PathBuf,
    /// Read the journal files under this directory (`journalctl --directory`), like the host's
    /// `/var/log/journal` mounted into the agent's pod; default: the system journal.
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// Where the first start begins: `end` (entries written from now on) or `beginning`
    /// (everything the journal holds).
    #[serde(default)]
    pub start_at: StartAt,
    /// Longest time an entry waits for its batch to fill, like `1s`.
    #[serde(
        default = "default_max_batch_wait",
        deserialize_with = "crate::config::duration"
    )]
    pub max_batch_wait: Duration,
    /// Longest wait before `journalctl` is started again after it exited, like `30s` (the wait
    /// doubles from 100 ms).
    #[serde(
        default = "default_max_restart_backoff",
        deserialize_with = "crate::config::duration"
    )]
    pub max_restart_backoff: Duration,
}

impl Default for JournalInput {
    fn default() -> Self {
        JournalInput {
            name: None,
            units: default_units(),
            journalctl: default_journalctl(),
            directory: None,
            start_at: StartAt::End,
            max_batch_wait: default_max_batch_wait(),
            max_restart_backoff: default_max_restart_backoff(),
        }
    }
}

fn default_units() -> Vec<String> {
    ["kubelet.service", "containerd.service", "docker.service"]
        .map(String::from)
        .to_vec()
}
fn default_journalctl() -> PathBuf {
    PathBuf::from("journalctl")
}
pub(crate) fn default_max_batch_wait() -> Duration {
    Duration::from_secs(1)
}
pub(crate) fn default_max_restart_backoff() -> Duration {
    Duration::from_secs(30)
}

impl JournalInput {
    /// The input's name in batches and metrics.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("journal")
    }

    /// Problems in this input, for the agent's whole-config validation.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let name = self.name();
        if self.journalctl.as_os_str().is_empty() {
            problems.push(format!("inputs.{name}.journalctl must not be empty"));
        }
        if let Some(u) = self.units.iter().find(|u| u.trim().is_empty()) {
            problems.push(format!("inputs.{name}.units: {u:?} is not a unit name"));
        }
        if self.max_batch_wait.is_zero() {
            problems.push(format!("inputs.{name}.max_batch_wait must be more than 0s"));
        }
        if self.max_restart_backoff < Duration::from_millis(100) {
            problems.push(format!(
                "inputs.{name}.max_restart_backoff must be at least 100ms"
            ));
        }
        problems
    }
}

/// The sequence-number source and number of a cursor (`s=` and `i=`, hexadecimal).
pub fn cursor_position(cursor: &str) -> Option<(&str, u64)> {
    let mut source = None;
    let mut seq = None;
    for part in cursor.split(';') {
        if let Some(s) = part.strip_prefix("s=") {
            source = Some(s).filter(|s| !s.is_empty());
        } else if let Some(i) = part.strip_prefix("i=") {
            seq = u64::from_str_radix(i, 16).ok();
        }
    }
    Some((source?, seq?))
}

/// The stream of a sequence-number source in batches.
fn stream_of(source: &str) -> String {
    format!("journal:{source}")
}

/// The cursor just after a batch left in the disk buffer: its last sequence number.
fn cursor_after(meta: &BatchMeta) -> Option<String> {
    let source = meta.stream.strip_prefix("journal:")?;
    let last = meta.end.checked_sub(1)?;
    Some(format!("s={source};i={last:x}"))
}

/// The entries waiting for their batch.
#[derive(Debug, Default)]
struct Pending {
    /// Sequence-number source, first and one-past-last sequence number of the entries.
    source: Option<String>,
    start: u64,
    end: u64,
    cursor: String,
    entries: Vec<JournalEntry>,
    dead_letters: Vec<DeadLetter>,
    bytes: usize,
    since: Option<Instant>,
}

/// The running input: reads journalctl's output into batches.
struct JournalReader {
    input: JournalInput,
    sink: BatchSink,
    checkpoint: Arc<StreamCheckpoint>,
    metrics: InputMetrics,
    max_batch_bytes: usize,
    stop: Arc<AtomicBool>,
    /// The cursor of the last entry read: where journalctl resumes when restarted.
    after: Option<String>,
    pending: Pending,
    /// The disk buffer refused a batch (closed at shutdown, or failed): the input stops.
    failed: bool,
}

/// Starts the input on a thread. Batches of the input left in the disk buffer (`buffered`, in
/// buffer order) advance the checkpoint when `resume` reports them acknowledged.
pub fn start(
    input: JournalInput,
    sink: BatchSink,
    checkpoint: Arc<StreamCheckpoint>,
    buffered: &[&BatchMeta],
    resume: &crate::pipeline::ResumeRanges,
    max_batch_bytes: usize,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, StreamError> {
    let saved = checkpoint.saved();
    let mut after = saved.position.clone();
    for meta in super::not_acknowledged(buffered, &saved) {
        let cursor = cursor_after(meta);
        let ticket = checkpoint.ticket(&meta.stream, meta.end, cursor.clone());
        super::wait_for_buffered(resume, meta, ticket);
        if cursor.is_some() {
            after = cursor;
        }
    }
    let metrics = sink.metrics.input(input.name());
    let name = input.name().to_owned();
    let reader = JournalReader {
        input,
        sink,
        checkpoint,
        metrics,
        max_batch_bytes,
        stop,
        after,
        pending: Pending::default(),
        failed: false,
    };
    std::thread::Builder::new()
        .name(format!("kestrel-journal-{name}"))
        .spawn(move || reader.run())
        .map_err(|source| StreamError::Io {
            what: "starting the journal input's thread".into(),
            source,
        })
}

/// What ended one journalctl run.
enum RunEnd {
    /// journalctl exited or its output ended.
    Exited,
    /// The agent is stopping, or the buffer was closed.
    Stop,
}

impl JournalReader {
    fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        let mut first_run = true;
        while !self.failed && !self.stop.load(Ordering::Acquire) {
            if !first_run {
                self.metrics.restarts.inc();
                if !sleep_unless_stopped(&self.stop, backoff) {
                    break;
                }
                backoff = (backoff * 2).min(self.input.max_restart_backoff);
            }
            first_run = false;
            if self.after.is_none() && self.input.start_at == StartAt::End {
                match self.journal_end() {
                    Ok(Some(cursor)) => {
                        if let Err(e) = self.checkpoint.start_at(cursor.clone()) {
                            error!(input = self.input.name(), error = %e, "cannot write the journal checkpoint; stopping this input");
                            return;
                        }
                        self.after = Some(cursor);
                    }
                    // An empty journal: everything written from now on is new.
                    Ok(None) => {}
                    Err(e) => {
                        warn!(input = self.input.name(), error = %e, "cannot find the end of the journal; retrying");
                        continue;
                    }
                }
            }
            let started = Instant::now();
            match self.follow() {
                Ok(RunEnd::Stop) => break,
                Ok(RunEnd::Exited) => {}
                Err(e) => {
                    warn!(input = self.input.name(), error = %e, retry_in = ?backoff, "cannot run journalctl; retrying");
                }
            }
            if started.elapsed() >= HEALTHY_RUN {
                backoff = Duration::from_millis(100);
            }
        }
    }

    /// journalctl with the input's source and unit filters.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.input.journalctl);
        cmd.args(["--output=json", "--no-pager", "--quiet"]);
        if let Some(dir) = &self.input.directory {
            cmd.arg("--directory").arg(dir);
        }
        for unit in &self.input.units {
            cmd.arg(format!("--unit={unit}"));
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// The cursor of the last entry the filters select, if any.
    fn journal_end(&self) -> Result<Option<String>, StreamError> {
        let out = self
            .command()
            .arg("--lines=1")
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| StreamError::Io {
                what: format!("running {}", self.input.journalctl.display()),
                source,
            })?;
        if !out.status.success() {
            return Err(StreamError::Io {
                what: format!(
                    "{} exited with {}: {}",
                    self.input.journalctl.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                source: std::io::Error::other("journalctl failed"),
            });
        }
        Ok(out
            .stdout
            .split(|&b| b == b'\n')
            .rev()
            .find_map(|l| kestrel_parse::parse_journal(l).ok()?.cursor))
    }

    /// One journalctl run, until it exits or the agent stops.
    fn follow(&mut self) -> Result<RunEnd, StreamError> {
        let mut cmd = self.command();
        // --follow alone shows only the last 10 entries, even after a cursor.
        cmd.args(["--follow", "--lines=all"]);
        if let Some(cursor) = &self.after {
            cmd.arg(format!("--after-cursor={cursor}"));
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| StreamError::Io {
            what: format!("starting {}", self.input.journalctl.display()),
            source,
        })?;
        info!(input = self.input.name(), after = ?self.after, "following the journal");
        let lines = spawn_output_readers(&mut child, self.input.name())?;
        let end = self.read(&lines);
        // Whatever ended the run, the child goes with it.
        let _ = child.kill();
        match child.wait() {
            Ok(status) if matches!(end, RunEnd::Exited) => {
                warn!(input = self.input.name(), %status, "journalctl exited; starting it again")
            }
            Ok(_) => {}
            Err(e) => warn!(input = self.input.name(), error = %e, "cannot reap journalctl"),
        }
        Ok(end)
    }

    /// Reads lines until the output ends or the agent stops, cutting batches by size and age.
    fn read(&mut self, lines: &Receiver<Vec<u8>>) -> RunEnd {
        loop {
            if self.failed || self.stop.load(Ordering::Acquire) {
                return RunEnd::Stop;
            }
            let wait = match self.pending.since {
                Some(since) => (since + self.input.max_batch_wait)
                    .saturating_duration_since(Instant::now())
                    .min(STOP_POLL),
                None => STOP_POLL,
            };
            match lines.recv_timeout(wait) {
                Ok(line) => {
                    self.line(&line);
                    if self.pending.bytes >= self.max_batch_bytes && self.flush().is_err() {
                        return RunEnd::Stop;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return RunEnd::Exited,
            }
            let due = self
                .pending
                .since
                .is_some_and(|s| s.elapsed() >= self.input.max_batch_wait);
            if due && self.flush().is_err() {
                return RunEnd::Stop;
            }
        }
    }

    /// One line of journalctl's output.
    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if line.is_empty() {
            return;
        }
        self.metrics.records.inc();
        let entry = match kestrel_parse::parse_journal(line) {
            Ok(entry) => entry,
            Err(e) => {
                self.reject(e.kind(), e.to_string(), line);
                return;
            }
        };
        let Some((source, seq)) = entry.cursor.as_deref().and_then(cursor_position) else {
            self.reject(
                "invalid_cursor",
                format!(
                    "journal entry without a usable __CURSOR: {:?}",
                    entry.cursor
                ),
                line,
            );
            return;
        };
        let same_source = self.pending.source.as_deref() == Some(source);
        if !self.pending.entries.is_empty() && (!same_source || seq < self.pending.end) {
            // A batch holds one source's increasing numbers, so its range names it alone.
            if seq < self.pending.end && same_source {
                warn!(
                    input = self.input.name(),
                    seq, "journal sequence number went back"
                );
            }
            if self.flush().is_err() {
                return;
            }
        }
        let source = source.to_owned();
        let cursor = entry.cursor.clone().unwrap_or_default();
        let p = &mut self.pending;
        if p.entries.is_empty() {
            p.source = Some(source);
            p.start = seq;
            p.since = Some(Instant::now());
        }
        p.end = seq + 1;
        p.cursor.clone_from(&cursor);
        p.bytes += line.len();
        p.entries.push(entry);
        self.after = Some(cursor);
    }

    fn reject(&mut self, kind: &str, reason: String, line: &[u8]) {
        self.metrics.errors.inc();
        if self.pending.dead_letters.len() >= MAX_WAITING_DEAD_LETTERS {
            warn!(input = self.input.name(), "too many unreadable journal lines without an entry to send them with; dropping one");
            return;
        }
        self.pending.bytes += line.len().min(DEAD_LETTER_PAYLOAD_BYTES);
        self.pending.dead_letters.push(DeadLetter {
            time: kestrel_event::time::now_nanos(),
            source: self.input.name().to_owned(),
            kind: kind.to_owned(),
            reason,
            location: self.after.as_ref().map(|c| format!("after cursor {c}")),
            size_bytes: line.len() as i64,
            payload: String::from_utf8_lossy(&line[..line.len().min(DEAD_LETTER_PAYLOAD_BYTES)])
                .into_owned(),
        });
    }

    /// Writes the pending entries as one batch (dead letters wait for an entry: a batch's
    /// identity needs a range of entries).
    fn flush(&mut self) -> Result<(), BufferError> {
        if self.pending.entries.is_empty() {
            self.pending.since = None;
            return Ok(());
        }
        let p = std::mem::take(&mut self.pending);
        let source = p.source.unwrap_or_default();
        let stream = stream_of(&source);
        let ticket: Arc<Ticket> = self.checkpoint.ticket(&stream, p.end, Some(p.cursor));
        let records = IngestBatch {
            journal: p.entries,
            dead_letters: p.dead_letters,
            ..IngestBatch::default()
        };
        debug!(input = self.input.name(), %stream, start = p.start, end = p.end, "journal batch");
        match self.sink.write(&stream, p.start, p.end, records, ticket) {
            Ok(()) => Ok(()),
            Err(e) => {
                if !matches!(e, BufferError::Closed) {
                    error!(input = self.input.name(), error = %e, "cannot buffer a batch; stopping this input");
                }
                self.failed = true;
                Err(e)
            }
        }
    }
}

/// Reads the child's stdout into a channel of lines and logs its stderr.
fn spawn_output_readers(child: &mut Child, input: &str) -> Result<Receiver<Vec<u8>>, StreamError> {
    let spawn_err = |source| StreamError::Io {
        what: "starting a journalctl reader thread".into(),
        source,
    };
    let (tx, rx) = sync_channel(QUEUED_LINES);
    if let Some(stdout) = child.stdout.take() {
        std::thread::Builder::new()
            .name("kestrel-journalctl-out".into())
            .spawn(move || {
                let mut reader = BufReader::with_capacity(256 * 1024, stdout);
                loop {
                    let mut line = Vec::new();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            if tx.send(line).is_err() {
                                return;
                            }
                        }
                    }
                }
            })
            .map_err(spawn_err)?;
    }
    if let Some(stderr) = child.stderr.take() {
        let input = input.to_owned();
        std::thread::Builder::new()
            .name("kestrel-journalctl-err".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    warn!(input = %input, "journalctl: {line}");
                }
            })
            .map_err(spawn_err)?;
    }
    Ok(rx)
}

/// Sleeps `d` unless the agent stops first; false when it stops.
pub(crate) fn sleep_unless_stopped(stop: &AtomicBool, d: Duration) -> bool {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Acquire) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(STOP_POLL));
    }
    false
}

#[cfg(test)]
mod tests;
