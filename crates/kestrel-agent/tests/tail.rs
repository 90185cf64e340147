//! The tailer against real files: rotation, truncation, copies, restarts and many files, each
//! checked line by line (every line exactly once, in order within its file).
//!
//! The tests wait for expected lines with a generous deadline (a hang fails the test instead of
//! blocking CI); no test asserts on how long anything took.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kestrel_agent::tail::{
    AckHandle, Chunk, ChunkReceiver, FileKey, RecvError, TailConfig, TailMetrics, Tailer,
};

const DEADLINE: Duration = Duration::from_secs(120);

/// A configuration for tests: quick polls, scans and rotation waits. Also sends the tailer's
/// logs to the test output (`RUST_LOG=kestrel_agent=debug` to see them).
fn config(patterns: &[String]) -> TailConfig {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut c = TailConfig::new(patterns.iter().cloned());
    c.scan_interval = Duration::from_millis(200);
    c.poll_interval = Duration::from_millis(20);
    c.rotate_wait = Duration::from_millis(300);
    c.checkpoint_interval = Duration::from_millis(50);
    c
}

fn pattern(dir: &Path, glob: &str) -> String {
    format!("{}/{glob}", dir.display())
}

/// What a consumer received.
#[derive(Default)]
struct Received {
    chunks: Vec<Chunk>,
    /// Lines per file key, in arrival order.
    lines: BTreeMap<FileKey, Vec<String>>,
    finished: HashSet<FileKey>,
}

impl Received {
    fn add(&mut self, chunk: Chunk) {
        let lines = self.lines.entry(chunk.file).or_default();
        for line in chunk.lines() {
            let text = std::str::from_utf8(line.bytes).expect("test lines are UTF-8");
            lines.push(text.trim_end_matches('\n').to_string());
        }
        if chunk.finished {
            self.finished.insert(chunk.file);
        }
        self.chunks.push(chunk);
    }

    fn total_lines(&self) -> usize {
        self.lines.values().map(Vec::len).sum()
    }

    fn all_lines(&self) -> Vec<String> {
        self.lines.values().flatten().cloned().collect()
    }
}

/// Receives (and acks) chunks until `done` says so.
fn receive_until(
    rx: &ChunkReceiver,
    ack: Option<&AckHandle>,
    received: &mut Received,
    mut done: impl FnMut(&Received) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    while !done(received) {
        assert!(
            Instant::now() < deadline,
            "gave up waiting: {} lines received",
            received.total_lines()
        );
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(chunk) => {
                if let Some(ack) = ack {
                    ack.ack_chunk(&chunk);
                }
                received.add(chunk);
            }
            Err(RecvError::Timeout) => {}
            Err(RecvError::Closed) => panic!("tailer stopped"),
        }
    }
}

/// Numbered lines `<prefix>-<n>` must each appear exactly once, in order within each file.
fn assert_numbered_exactly_once(received: &Received, prefix: &str, count: u64) {
    let mut seen = HashSet::new();
    for (key, lines) in &received.lines {
        let mut last = None;
        for line in lines {
            let n: u64 = line
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('-'))
                .and_then(|r| r.split(' ').next())
                .and_then(|r| r.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {line:?} in {key}"));
            assert!(last < Some(n), "{key}: line {n} after {last:?}");
            last = Some(n);
            assert!(seen.insert(n), "line {n} received twice");
        }
    }
    let missing: Vec<u64> = (0..count).filter(|n| !seen.contains(n)).take(10).collect();
    assert!(
        missing.is_empty(),
        "lines never received, first ones: {missing:?}"
    );
    assert_eq!(seen.len() as u64, count);
}

fn get(counter: &AtomicU64) -> u64 {
    TailMetrics::get(counter)
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// (inode, first line number) of each chunk received.
type SeenLines = Arc<Mutex<HashSet<(u64, u64)>>>;

/// A writer appending numbered lines to `dir/app.log` as fast as it can and renaming the file
/// every 100 ms, like kubelet's rotation. With `delete_when_seen`, a rotated file is deleted as
/// soon as the consumer has received bytes of it (so the tailer holds it open), whether or not
/// it is read to its end: the consumer notes (inode, first line number) of each chunk, since an
/// inode alone may be reused by a later file. Returns the number of lines written.
fn rotating_writer(dir: PathBuf, rotations: u32, delete_when_seen: Option<SeenLines>) -> u64 {
    let live = dir.join("app.log");
    let mut n = 0u64;
    let mut rotated: Vec<(PathBuf, u64, u64, u64)> = Vec::new();
    let was_seen = |seen: &HashSet<(u64, u64)>, ino: u64, first: u64, last: u64| {
        seen.iter()
            .any(|&(i, n)| i == ino && (first..last).contains(&n))
    };
    for r in 0..=rotations {
        let file = File::create(&live).unwrap();
        let ino = file.metadata().unwrap().ino();
        let first = n;
        let mut out = std::io::BufWriter::with_capacity(8192, file);
        // Up to 20,000 lines per file (200,000 lines/s), and at least 50.
        let until = Instant::now() + Duration::from_millis(100);
        let cap = n + 20_000;
        loop {
            for _ in 0..50 {
                writeln!(out, "line-{n} payload payload payload payload").unwrap();
                n += 1;
            }
            if Instant::now() >= until || n >= cap {
                break;
            }
        }
        out.flush().unwrap();
        drop(out);
        if r < rotations {
            let to = dir.join(format!("app.log.{r:04}"));
            fs::rename(&live, &to).unwrap();
            rotated.push((to, ino, first, n));
        }
        if let Some(seen) = &delete_when_seen {
            let seen = seen.lock().unwrap();
            rotated.retain(|(path, ino, first, last)| {
                if was_seen(&seen, *ino, *first, *last) {
                    fs::remove_file(path).unwrap();
                    false
                } else {
                    true
                }
            });
        }
    }
    // Delete the rest once the tailer has them open.
    if let Some(seen) = &delete_when_seen {
        let deadline = Instant::now() + DEADLINE;
        while !rotated.is_empty() && Instant::now() < deadline {
            let seen_now = seen.lock().unwrap().clone();
            rotated.retain(|(path, ino, first, last)| {
                if was_seen(&seen_now, *ino, *first, *last) {
                    fs::remove_file(path).unwrap();
                    false
                } else {
                    true
                }
            });
            std::thread::yield_now();
        }
    }
    n
}

fn rotation_storm(delete: bool) {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut c = config(&[pattern(dir.path(), "app.log*")]);
    c.max_chunk_bytes = 64 * 1024;
    c.max_line_bytes = 1024;
    let (tailer, rx) = Tailer::start(c, data.path().join("checkpoints.json")).unwrap();
    let ack = tailer.ack_handle();
    let seen_inodes = Arc::new(Mutex::new(HashSet::new()));
    let written = Arc::new(AtomicU64::new(u64::MAX));
    let writer = {
        let dir = dir.path().to_path_buf();
        let seen = delete.then(|| seen_inodes.clone());
        let written = written.clone();
        std::thread::spawn(move || written.store(rotating_writer(dir, 20, seen), Ordering::SeqCst))
    };
    let mut received = Received::default();
    receive_until(&rx, Some(&ack), &mut received, |r| {
        if let Some(chunk) = r.chunks.last() {
            if let Some(line) = chunk.lines().next() {
                let text = std::str::from_utf8(line.bytes).unwrap();
                let n: u64 = text[5..].split(' ').next().unwrap().parse().unwrap();
                seen_inodes.lock().unwrap().insert((chunk.file.ino, n));
            }
        }
        r.total_lines() as u64 >= written.load(Ordering::SeqCst)
    });
    writer.join().unwrap();
    assert_numbered_exactly_once(&received, "line", written.load(Ordering::SeqCst));
    let m = tailer.metrics();
    assert_eq!(get(&m.bytes_lost), 0);
    assert!(received.lines.len() >= 2, "several files were read");
    if delete {
        // Every rotated file was deleted, and is finished once read to its end.
        receive_until(&rx, Some(&ack), &mut received, |r| r.finished.len() >= 20);
    } else {
        assert!(get(&m.rotations) >= 1, "renames were seen");
    }
    tailer.shutdown().unwrap();
}

#[test]
fn rotation_storm_reads_every_line_once() {
    rotation_storm(false);
}

#[test]
fn rotation_storm_with_rotated_files_deleted_while_open() {
    rotation_storm(true);
}

fn numbered_lines(from: u64, to: u64) -> String {
    (from..to)
        .map(|n| format!("line-{n} some payload to make the line longer\n"))
        .collect()
}

#[test]
fn copytruncate_reads_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let mut writer = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    writer
        .write_all(numbered_lines(0, 1000).as_bytes())
        .unwrap();
    let mut c = config(&[pattern(dir.path(), "app.log*")]);
    c.max_chunk_bytes = 8 * 1024;
    c.max_line_bytes = 1024;
    let (tailer, rx) = Tailer::start(c, data.path().join("checkpoints.json")).unwrap();
    let ack = tailer.ack_handle();
    let mut received = Received::default();
    receive_until(&rx, Some(&ack), &mut received, |r| !r.chunks.is_empty());
    // logrotate's copytruncate, while the writer keeps its handle.
    fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    writer.set_len(0).unwrap();
    writer
        .write_all(numbered_lines(1000, 2000).as_bytes())
        .unwrap();
    let m = tailer.metrics();
    receive_until(&rx, Some(&ack), &mut received, |r| {
        r.total_lines() >= 2000 && get(&m.copies_recognised) >= 1
    });
    // A last line proves the tailer has gone on past the copy's handling.
    writer
        .write_all(numbered_lines(2000, 2001).as_bytes())
        .unwrap();
    receive_until(&rx, Some(&ack), &mut received, |r| r.total_lines() >= 2001);
    assert_numbered_exactly_once(&received, "line", 2001);
    assert_eq!(get(&m.bytes_lost), 0);
    assert!(get(&m.truncations) >= 1);
    tailer.shutdown().unwrap();
}

#[test]
fn truncation_restarts_at_zero_whether_the_file_regrows_shorter_or_longer() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    fs::write(&log, numbered_lines(0, 100)).unwrap();
    let ino = fs::metadata(&log).unwrap().ino();
    let (tailer, rx) = Tailer::start(
        config(&[pattern(dir.path(), "*.log")]),
        data.path().join("cp.json"),
    )
    .unwrap();
    let ack = tailer.ack_handle();
    let mut received = Received::default();
    receive_until(&rx, Some(&ack), &mut received, |r| r.total_lines() >= 100);
    // Shorter than before: seen by its size.
    fs::write(&log, numbered_lines(100, 130)).unwrap();
    receive_until(&rx, Some(&ack), &mut received, |r| r.total_lines() >= 130);
    // Longer than before: seen by its first line.
    fs::write(&log, numbered_lines(130, 430)).unwrap();
    receive_until(&rx, Some(&ack), &mut received, |r| r.total_lines() >= 430);
    assert_eq!(
        fs::metadata(&log).unwrap().ino(),
        ino,
        "same inode throughout"
    );
    assert_numbered_exactly_once(&received, "line", 430);
    assert_eq!(
        received.lines.len(),
        3,
        "each new content is a new file key"
    );
    let m = tailer.metrics();
    assert!(get(&m.truncations) >= 2);
    assert_eq!(get(&m.bytes_lost), 0);
    tailer.shutdown().unwrap();
}

#[test]
fn reused_inode_with_new_content_is_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    fs::write(&log, numbered_lines(0, 10)).unwrap();
    let mut c = config(&[pattern(dir.path(), "*.log")]);
    c.idle_close = Duration::from_millis(50);
    let (tailer, rx) = Tailer::start(c, data.path().join("cp.json")).unwrap();
    let ack = tailer.ack_handle();
    let m = tailer.metrics();
    let mut received = Received::default();
    receive_until(&rx, Some(&ack), &mut received, |r| {
        r.total_lines() >= 10 && get(&m.files_open) == 0
    });
    // The handle is closed: the inode now holds other bytes, more of them than were read.
    fs::write(&log, numbered_lines(10, 50)).unwrap();
    receive_until(&rx, Some(&ack), &mut received, |r| r.total_lines() >= 50);
    assert_numbered_exactly_once(&received, "line", 50);
    let keys: Vec<&FileKey> = received.lines.keys().collect();
    assert_eq!(keys.len(), 2);
    assert_eq!((keys[0].dev, keys[0].ino), (keys[1].dev, keys[1].ino));
    assert_ne!(keys[0].fingerprint, keys[1].fingerprint);
    tailer.shutdown().unwrap();
}

#[test]
fn file_shorter_than_the_fingerprint_window_is_read_and_keeps_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    fs::write(&log, "ab").unwrap();
    let checkpoints = data.path().join("cp.json");
    let (tailer, rx) =
        Tailer::start(config(&[pattern(dir.path(), "*.log")]), &checkpoints).unwrap();
    let ack = tailer.ack_handle();
    let mut received = Received::default();
    append(&log, "c\n");
    receive_until(&rx, Some(&ack), &mut received, |r| r.total_lines() >= 1);
    // The incomplete first line was held back until its newline came.
    assert_eq!(received.chunks[0].data, b"abc\n");
    assert_eq!(received.chunks[0].start, 0);
    append(&log, "d\ne\n");
    receive_until(&rx, Some(&ack), &mut received, |r| r.total_lines() >= 3);
    assert_eq!(received.lines.len(), 1, "growing did not change the key");
    let key = *received.lines.keys().next().unwrap();
    assert_eq!(received.all_lines(), vec!["abc", "d", "e"]);
    tailer.shutdown().unwrap();

    // Without checkpoints the file is new again, and gets the same key from its bytes alone.
    fs::remove_file(&checkpoints).unwrap();
    let (tailer, rx) =
        Tailer::start(config(&[pattern(dir.path(), "*.log")]), &checkpoints).unwrap();
    let mut again = Received::default();
    receive_until(&rx, None, &mut again, |r| r.total_lines() >= 3);
    assert_eq!(again.lines.keys().copied().collect::<Vec<_>>(), vec![key]);
    tailer.shutdown().unwrap();
}

#[test]
fn deleted_file_with_an_incomplete_line_is_read_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    fs::write(&log, "first\nlast without newline").unwrap();
    let (tailer, rx) = Tailer::start(
        config(&[pattern(dir.path(), "*.log")]),
        data.path().join("cp.json"),
    )
    .unwrap();
    let ack = tailer.ack_handle();
    let mut received = Received::default();
    receive_until(&rx, Some(&ack), &mut received, |r| r.total_lines() >= 1);
    fs::remove_file(&log).unwrap();
    receive_until(&rx, Some(&ack), &mut received, |r| !r.finished.is_empty());
    assert_eq!(received.all_lines(), vec!["first", "last without newline"]);
    let last = received
        .chunks
        .iter()
        .rev()
        .find(|c| !c.data.is_empty())
        .unwrap();
    assert!(last.appended_newline);
    assert_eq!(
        last.end, 26,
        "the range covers the file's bytes, not the added newline"
    );
    assert_eq!(get(&tailer.metrics().files_finished), 1);
    // Every chunk, the empty finished one included, was acknowledged: nothing is in flight.
    assert_eq!(ack.checkpoint(last.file), Some(26));
    tailer.shutdown().unwrap();
}

#[test]
fn deleted_file_with_only_an_incomplete_line_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    fs::write(&log, "lonely").unwrap();
    let (tailer, rx) = Tailer::start(
        config(&[pattern(dir.path(), "*.log")]),
        data.path().join("cp.json"),
    )
    .unwrap();
    let m = tailer.metrics();
    let deadline = Instant::now() + DEADLINE;
    while get(&m.files_open) == 0 {
        assert!(Instant::now() < deadline, "file never opened");
        std::thread::yield_now();
    }
    fs::remove_file(&log).unwrap();
    let mut received = Received::default();
    receive_until(&rx, Some(&tailer.ack_handle()), &mut received, |r| {
        !r.finished.is_empty()
    });
    assert_eq!(received.all_lines(), vec!["lonely"]);
    tailer.shutdown().unwrap();
}

#[test]
fn partial_last_line_is_held_back_until_completed() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    fs::write(&log, "one\ntw").unwrap();
    let (tailer, rx) = Tailer::start(
        config(&[pattern(dir.path(), "*.log")]),
        data.path().join("cp.json"),
    )
    .unwrap();
    let ack = tailer.ack_handle();
    let mut received = Received::default();
    receive_until(&rx, Some(&ack), &mut received, |r| r.total_lines() >= 1);
    append(&log, "o\nthree\n");
    receive_until(&rx, Some(&ack), &mut received, |r| r.total_lines() >= 3);
    let ranges: Vec<(u64, u64)> = received.chunks.iter().map(|c| (c.start, c.end)).collect();
    assert_eq!(received.chunks[0].data, b"one\n");
    assert_eq!(received.chunks[1].data, b"two\nthree\n");
    assert_eq!(ranges, vec![(0, 4), (4, 14)]);
    tailer.shutdown().unwrap();
}

#[test]
fn long_lines_are_truncated_with_a_marker_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let content = format!("short\n{}\n{}\ntail\n", "x".repeat(150), "y".repeat(5000));
    fs::write(&log, &content).unwrap();
    let mut c = config(&[pattern(dir.path(), "*.log")]);
    c.max_line_bytes = 100;
    c.max_chunk_bytes = 1024;
    let (tailer, rx) = Tailer::start(c, data.path().join("cp.json")).unwrap();
    let ack = tailer.ack_handle();
    let mut received = Received::default();
    receive_until(&rx, Some(&ack), &mut received, |r| r.total_lines() >= 4);
    let lines = received.all_lines();
    assert_eq!(lines[0], "short");
    assert_eq!(
        lines[1],
        format!("{}…[truncated 50 bytes]", "x".repeat(100))
    );
    assert_eq!(
        lines[2],
        format!("{}…[truncated 4900 bytes]", "y".repeat(100))
    );
    assert_eq!(lines[3], "tail");
    assert_eq!(get(&tailer.metrics().lines_truncated), 2);
    // The chunks' line offsets cover the file exactly.
    let spans: Vec<(u64, u64)> = received
        .chunks
        .iter()
        .flat_map(|c| c.lines().map(|l| (l.start, l.end)).collect::<Vec<_>>())
        .collect();
    assert_eq!(spans, vec![(0, 6), (6, 157), (157, 5158), (5158, 5163)]);
    assert_eq!(content.len(), 5163);
    tailer.shutdown().unwrap();
}

#[test]
fn five_thousand_files_are_read_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    for i in 0..5000u64 {
        let sub = dir.path().join(format!("pod-{}", i % 50));
        fs::create_dir_all(&sub).unwrap();
        fs::write(
            sub.join(format!("{i}.log")),
            numbered_lines(i * 3, i * 3 + 3),
        )
        .unwrap();
    }
    let mut c = config(&[pattern(dir.path(), "*/*.log")]);
    c.max_open_files = 256;
    let (tailer, rx) = Tailer::start(c, data.path().join("cp.json")).unwrap();
    let ack = tailer.ack_handle();
    let mut received = Received::default();
    receive_until(&rx, Some(&ack), &mut received, |r| {
        r.total_lines() >= 15_000
    });
    assert_numbered_exactly_once(&received, "line", 15_000);
    assert_eq!(received.lines.len(), 5000);
    let m = tailer.metrics();
    assert!(get(&m.files_open) <= 256);
    assert_eq!(get(&m.files_discovered), 5000);
    tailer.shutdown().unwrap();
}

#[test]
fn restart_rereads_exactly_the_unacknowledged_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    fs::write(&log, numbered_lines(0, 2000)).unwrap();
    let file_len = fs::metadata(&log).unwrap().len();
    let checkpoints = data.path().join("cp.json");
    let mut c = config(&[pattern(dir.path(), "*.log")]);
    c.max_chunk_bytes = 4096;
    c.max_line_bytes = 1024;

    let (tailer, rx) = Tailer::start(c.clone(), &checkpoints).unwrap();
    let ack = tailer.ack_handle();
    let mut first = Received::default();
    receive_until(&rx, None, &mut first, |r| r.total_lines() >= 2000);
    let chunks = first.chunks.clone();
    assert!(chunks.len() > 15);
    // Acknowledged: chunks 0..=9, and 12 and 14 out of order (not 10, 11, 13).
    for i in [14, 3, 12, 0, 1, 2, 9, 8, 7, 6, 5, 4] {
        ack.ack(chunks[i].file, chunks[i].end);
    }
    let key = chunks[0].file;
    assert_eq!(ack.checkpoint(key), Some(chunks[9].end));
    tailer.shutdown().unwrap();

    let (tailer, rx) = Tailer::start(c.clone(), &checkpoints).unwrap();
    let ack = tailer.ack_handle();
    let mut second = Received::default();
    receive_until(&rx, None, &mut second, |r| {
        r.chunks.last().is_some_and(|c| c.end == file_len)
    });
    let again: Vec<_> = second
        .chunks
        .iter()
        .map(|c| (c.file, c.start, c.end, c.data.clone()))
        .collect();
    let expected: Vec<_> = chunks[10..]
        .iter()
        .map(|c| (c.file, c.start, c.end, c.data.clone()))
        .collect();
    assert_eq!(again, expected, "the same chunks, from the checkpoint on");
    assert_eq!(get(&tailer.metrics().files_resumed), 1);
    for c in &second.chunks {
        ack.ack(c.file, c.end);
    }
    tailer.shutdown().unwrap();

    // Everything acknowledged: a third run reads only what is new.
    append(&log, &numbered_lines(2000, 2001));
    let (tailer, rx) = Tailer::start(c, &checkpoints).unwrap();
    let mut third = Received::default();
    receive_until(&rx, None, &mut third, |r| r.total_lines() >= 1);
    assert_eq!(third.chunks[0].start, file_len);
    assert_eq!(
        third.all_lines(),
        vec![numbered_lines(2000, 2001).trim_end()]
    );
    tailer.shutdown().unwrap();
}

#[test]
fn checkpoint_not_matching_the_file_means_reading_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    fs::write(&log, numbered_lines(0, 100)).unwrap();
    let checkpoints = data.path().join("cp.json");
    let c = config(&[pattern(dir.path(), "*.log")]);
    let (tailer, rx) = Tailer::start(c.clone(), &checkpoints).unwrap();
    let mut first = Received::default();
    receive_until(&rx, Some(&tailer.ack_handle()), &mut first, |r| {
        r.total_lines() >= 100
    });
    tailer.shutdown().unwrap();
    // Same first line, other bytes before the checkpoint (rewritten in place while stopped).
    let mut content = numbered_lines(0, 1);
    content.push_str(&numbered_lines(500, 700));
    fs::write(&log, content).unwrap();
    let (tailer, rx) = Tailer::start(c, &checkpoints).unwrap();
    let mut second = Received::default();
    receive_until(&rx, None, &mut second, |r| r.total_lines() >= 201);
    assert_eq!(second.chunks[0].start, 0);
    assert_eq!(get(&tailer.metrics().checkpoints_mismatched), 1);
    tailer.shutdown().unwrap();
}

#[test]
fn empty_files_do_not_hold_every_handle() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    for i in 0..20 {
        File::create(dir.path().join(format!("empty-{i:02}.log"))).unwrap();
    }
    let mut c = config(&[pattern(dir.path(), "*.log")]);
    c.max_open_files = 4;
    let (tailer, rx) = Tailer::start(c, data.path().join("cp.json")).unwrap();
    let m = tailer.metrics();
    let deadline = Instant::now() + DEADLINE;
    while get(&m.files_tracked) < 20 {
        assert!(Instant::now() < deadline, "files never tracked");
        std::thread::yield_now();
    }
    // Every handle may be taken by an empty file now; a file with lines still gets read.
    fs::write(dir.path().join("zz-data.log"), numbered_lines(0, 10)).unwrap();
    let mut received = Received::default();
    receive_until(&rx, Some(&tailer.ack_handle()), &mut received, |r| {
        r.total_lines() >= 10
    });
    assert_numbered_exactly_once(&received, "line", 10);
    assert!(get(&m.files_open) <= 4);
    tailer.shutdown().unwrap();
}

#[test]
fn a_slow_consumer_stops_the_reading() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("app.log"), numbered_lines(0, 5000)).unwrap();
    let mut c = config(&[pattern(dir.path(), "*.log")]);
    c.max_chunk_bytes = 4096;
    c.max_line_bytes = 1024;
    c.max_queued_bytes = 8192;
    let (tailer, rx) = Tailer::start(c, data.path().join("cp.json")).unwrap();
    let m = tailer.metrics();
    let mut received = Received::default();
    receive_until(&rx, Some(&tailer.ack_handle()), &mut received, |r| {
        let bytes_received: u64 = r.chunks.iter().map(|c| c.end - c.start).sum();
        // Read but not received: what the channel holds, plus the one chunk waiting to be
        // sent (counted when read).
        let ahead = get(&m.bytes_read) - bytes_received;
        assert!(ahead <= 8192 + 4096, "the tailer read {ahead} bytes ahead");
        r.total_lines() >= 5000
    });
    assert_numbered_exactly_once(&received, "line", 5000);
    tailer.shutdown().unwrap();
}
