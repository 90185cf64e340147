//! Throughput of the agent's pipeline: generated CRI logs of 283-byte lines tailed, joined,
//! enriched with the pod's identity, cut into batches and encoded (JSON, optionally zstd), then
//! handed to a null sink that acknowledges at once. Used by `kestrel bench agent`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::AgentConfig;
use crate::metrics::AgentMetrics;
use crate::pipeline::{AgentIdentity, PodLogPipeline, ResumeRanges};
use crate::tail::bench::{process_cpu, write_cri_file};
use crate::tail::Tailer;
use crate::AgentError;

/// What one run measured.
#[derive(Debug, Clone)]
pub struct PipelineReport {
    /// Bytes of log file read.
    pub bytes: u64,
    /// Records produced.
    pub records: u64,
    /// Batches produced.
    pub batches: u64,
    /// Bytes of encoded batches (after zstd when compressing).
    pub encoded_bytes: u64,
    pub elapsed: Duration,
    /// CPU time of the whole process meanwhile, if `/proc` tells it.
    pub cpu: Option<Duration>,
}

impl PipelineReport {
    /// Megabytes (10^6 bytes) of log per second of wall time.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }

    /// Megabytes of log per CPU-second, over all threads.
    pub fn mb_per_cpu_sec(&self) -> Option<f64> {
        self.cpu.map(|c| self.bytes as f64 / 1e6 / c.as_secs_f64())
    }
}

/// The pod log directory layout the benchmark writes its file into.
pub const BENCH_POD_DIR: &str = "pods/bench_web-0_0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/web";

/// Writes a pod log of `total_bytes` under `dir` (page cache warm) and returns its size.
pub fn prepare(dir: &Path, total_bytes: u64) -> std::io::Result<u64> {
    let pod_dir = dir.join(BENCH_POD_DIR);
    std::fs::create_dir_all(&pod_dir)?;
    let log = pod_dir.join("0.log");
    let bytes = write_cri_file(&log, total_bytes)?;
    std::io::copy(&mut std::fs::File::open(&log)?, &mut std::io::sink())?;
    Ok(bytes)
}

/// Runs the pipeline over the pod logs `prepare` wrote in `dir`, into a null sink, with the
/// agent's default processing (built-in redaction on).
pub fn run_null_sink(
    dir: &Path,
    bytes: u64,
    zstd_level: Option<i32>,
) -> Result<PipelineReport, AgentError> {
    run_null_sink_with(dir, bytes, zstd_level, true)
}

/// [`run_null_sink`], with or without the built-in redaction patterns.
pub fn run_null_sink_with(
    dir: &Path,
    bytes: u64,
    zstd_level: Option<i32>,
    redaction: bool,
) -> Result<PipelineReport, AgentError> {
    let yaml = format!(
        "server: {{url: http://127.0.0.1:9}}\ndata_dir: {}\nlisten: null\ninputs:\n  - type: pod_logs\n    path: {}\nredaction: {{builtin: {redaction}}}\n",
        dir.join("agent").display(),
        dir.join("pods").display()
    );
    let config = AgentConfig::from_yaml(&yaml).map_err(|e| AgentError::Config(e.to_string()))?;
    let (mut tail, input, _) = config.file_input(&config.inputs[0]).expect("a file input");
    tail.inotify = false;
    let checkpoints = dir.join("bench-checkpoints.json");
    let _ = std::fs::remove_file(&checkpoints);

    let cpu_before = process_cpu();
    let started = Instant::now();
    let (tailer, chunks) = Tailer::start(tail, &checkpoints)?;
    let mut pipeline = PodLogPipeline::new(
        AgentIdentity {
            agent: "bench".into(),
            node: Some("bench-node".into()),
            cluster: None,
        },
        input,
        "pod_logs".into(),
        Arc::new(ResumeRanges::default()),
        tailer.ack_handle(),
        Arc::new(AgentMetrics::default()),
    )
    .with_processing(
        config
            .processing(&config.inputs[0])
            .map_err(|e| AgentError::Config(e.to_string()))?,
    );
    let (mut read, mut records, mut batches, mut encoded) = (0u64, 0u64, 0u64, 0u64);
    while read < bytes {
        let Some(chunk) = chunks.recv() else { break };
        read += chunk.end - chunk.start;
        for mut pending in pipeline.process(chunk) {
            records += pending.batch.record_count() as u64;
            batches += 1;
            let json = crate::encode::batch_json(&mut pending.batch);
            encoded += match zstd_level {
                Some(level) => zstd::bulk::compress(&json, level)
                    .expect("zstd compresses in memory")
                    .len() as u64,
                None => json.len() as u64,
            };
            for t in pending.tickets {
                t.release();
            }
        }
    }
    let elapsed = started.elapsed();
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    tailer.shutdown()?;
    Ok(PipelineReport {
        bytes: read,
        records,
        batches,
        encoded_bytes: encoded,
        elapsed,
        cpu,
    })
}
