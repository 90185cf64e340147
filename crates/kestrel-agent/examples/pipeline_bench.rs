//! The agent pipeline's throughput without the server (and without DataFusion in the build):
//! `cargo run --release -p kestrel-agent --example pipeline_bench -- [MEGABYTES]`.
//! `kestrel bench agent` measures the same and more (a local server, a follow run). The agent's
//! default processing (built-in redaction) is on unless the line says otherwise.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let megabytes: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(256);
    let dir = tempfile::tempdir()?;
    let bytes = kestrel_agent::bench::prepare(dir.path(), megabytes * 1_000_000)?;
    for (name, level, redaction) in [
        ("null sink, JSON, no redaction", None, false),
        ("null sink, JSON", None, true),
        ("null sink, JSON + zstd 1", Some(1), true),
    ] {
        let r = kestrel_agent::bench::run_null_sink_with(dir.path(), bytes, level, redaction)?;
        println!(
            "{name:<30} {:>7.0} MB/s wall  {:>7.0} MB/s per core  {} records in {} batches, {:.1}x smaller",
            r.mb_per_sec(),
            r.mb_per_cpu_sec().unwrap_or(f64::NAN),
            r.records,
            r.batches,
            r.bytes as f64 / r.encoded_bytes.max(1) as f64
        );
    }
    Ok(())
}
