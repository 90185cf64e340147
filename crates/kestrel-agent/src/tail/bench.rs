//! Throughput benchmark of the tailer alone: a generated file of 283-byte CRI lines, read from
//! page cache into chunks by a consumer that acknowledges at once. Called by
//! `benches/tail.rs` and usable from `kestrel bench agent`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{TailConfig, TailError, Tailer};

/// Length of one generated line, with its `\n`.
pub const LINE_BYTES: usize = 283;

/// What one run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Bytes of file tailed.
    pub bytes: u64,
    /// Lines received.
    pub lines: u64,
    /// Chunks received.
    pub chunks: u64,
    /// From starting the tailer to receiving the last byte.
    pub elapsed: Duration,
    /// CPU time of the whole process meanwhile (all threads), if `/proc` tells it.
    pub cpu: Option<Duration>,
}

impl BenchReport {
    /// Megabytes (10^6 bytes) per second of wall time.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }

    /// Megabytes per CPU-second, over all threads of the process.
    pub fn mb_per_cpu_sec(&self) -> Option<f64> {
        self.cpu.map(|c| self.bytes as f64 / 1e6 / c.as_secs_f64())
    }
}

/// Writes `total_bytes` (rounded down to whole lines) of CRI lines to `path`.
pub fn write_cri_file(path: &Path, total_bytes: u64) -> std::io::Result<u64> {
    let lines = total_bytes / LINE_BYTES as u64;
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut line = Vec::with_capacity(LINE_BYTES);
    for i in 0..lines {
        line.clear();
        let secs = i / 1_000_000;
        let nanos = (i % 1_000_000) * 1000;
        write!(
            line,
            "2026-11-20T09:{:02}:{:02}.{nanos:09}Z stdout F GET /api/v1/namespaces/default/pods/web-{i} 200 request_id={i:016x} user=system:serviceaccount:default:web",
            (secs / 60) % 60,
            secs % 60
        )?;
        line.resize(LINE_BYTES - 1, b' ');
        line.push(b'\n');
        out.write_all(&line)?;
    }
    out.flush()?;
    Ok(lines * LINE_BYTES as u64)
}

/// Tails a generated file of `total_bytes` in `dir` and reports the throughput.
pub fn run(dir: &Path, total_bytes: u64) -> Result<BenchReport, TailError> {
    let io = |source| TailError::Checkpoint {
        path: dir.to_path_buf(),
        source,
    };
    let log = dir.join("bench.log");
    let bytes = write_cri_file(&log, total_bytes).map_err(io)?;
    // Warm the page cache, as a file being followed would be.
    std::io::copy(&mut File::open(&log).map_err(io)?, &mut std::io::sink()).map_err(io)?;
    let mut config = TailConfig::new([log.to_string_lossy().into_owned()]);
    config.inotify = false;
    let checkpoints = dir.join("bench-checkpoints.json");
    let _ = std::fs::remove_file(&checkpoints);

    let cpu_before = process_cpu();
    let started = Instant::now();
    let (tailer, rx) = Tailer::start(config, &checkpoints)?;
    let ack = tailer.ack_handle();
    let (mut received, mut lines, mut chunks) = (0u64, 0u64, 0u64);
    while received < bytes {
        let Some(chunk) = rx.recv() else { break };
        received += chunk.end - chunk.start;
        lines += u64::from(chunk.lines);
        chunks += 1;
        ack.ack(chunk.file, chunk.end);
    }
    let elapsed = started.elapsed();
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    tailer.shutdown()?;
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&checkpoints);
    Ok(BenchReport {
        bytes: received,
        lines,
        chunks,
        elapsed,
        cpu,
    })
}

/// User + system CPU time of this process, from `/proc/self/stat` (in clock ticks of 1/100 s,
/// the value of `USER_HZ` on Linux).
pub(crate) fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_lines_are_283_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let n = write_cri_file(&path, 10 * LINE_BYTES as u64 + 5).unwrap();
        let content = std::fs::read(&path).unwrap();
        assert_eq!(content.len() as u64, n);
        assert!(content
            .split_inclusive(|b| *b == b'\n')
            .all(|l| l.len() == LINE_BYTES));
        assert!(content.starts_with(b"2026-11-20T09:00:00.000000000Z stdout F GET"));
    }

    #[test]
    fn small_run_reads_everything() {
        let dir = tempfile::tempdir().unwrap();
        let report = run(dir.path(), 2_000_000).unwrap();
        assert_eq!(report.bytes, 2_000_000 / 283 * 283);
        assert_eq!(report.lines, 2_000_000 / 283);
    }
}
