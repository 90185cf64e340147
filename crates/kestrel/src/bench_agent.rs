//! `kestrel bench agent`: the node agent's throughput on generated CRI logs of 283-byte lines
//! (to a null sink, without and with zstd, and to a local server), and its CPU share and memory
//! while following a log written at a steady rate.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kestrel_agent::bench::{prepare, run_null_sink, BENCH_POD_DIR};
use kestrel_server::{Role, Server, ServerConfig, TokenStore};

use crate::bench::cpu_seconds_of;
use crate::cli::AgentBenchArgs;

pub async fn run(args: AgentBenchArgs) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let bytes = args.megabytes * 1_000_000;
    println!(
        "generating {} MB of CRI pod log (283-byte lines) ...",
        args.megabytes
    );
    let written = prepare(&dir, bytes)?;
    for (name, level) in [
        ("null sink, JSON", None),
        ("null sink, JSON + zstd 1", Some(1)),
    ] {
        let d = dir.clone();
        let r = tokio::task::spawn_blocking(move || run_null_sink(&d, written, level)).await??;
        println!(
            "{name:<28} {:>8.0} MB/s wall  {:>8.0} MB/s per core  {:>9} records  {:>6} batches  {:>6.1}x smaller",
            r.mb_per_sec(),
            r.mb_per_cpu_sec().unwrap_or(f64::NAN),
            r.records,
            r.batches,
            r.bytes as f64 / r.encoded_bytes.max(1) as f64
        );
    }
    to_local_server(&dir, written).await?;
    follow(&dir, args.follow_rate, args.follow_seconds).await?;
    Ok(())
}

/// A server in this process on a temporary data directory, and an ingest token for it.
async fn local_server(dir: &Path) -> Result<(String, String, tokio::sync::oneshot::Sender<()>)> {
    let config = ServerConfig {
        data_dir: dir.join("server"),
        listen: "127.0.0.1:0".parse()?,
        ..ServerConfig::default()
    };
    std::fs::create_dir_all(&config.data_dir)?;
    let tokens = TokenStore::open(&kestrel_server::state_db_path(&config.data_dir))?;
    let token = tokens.create("bench-agent", Role::Ingest)?;
    let server = Server::bind(config).await?;
    let url = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async {
        let _ = rx.await;
    }));
    Ok((url, token, tx))
}

fn agent_yaml(dir: &Path, url: &str, token_file: &Path, pods: &Path) -> String {
    format!(
        "server:\n  url: {url}\n  token_file: {}\ndata_dir: {}\nlisten: null\ninputs:\n  - type: pod_logs\n    path: {}\n",
        token_file.display(),
        dir.display(),
        pods.display()
    )
}

/// The whole path: agent → HTTP → server WAL (fsync) → acknowledged, both in this process.
async fn to_local_server(dir: &Path, bytes: u64) -> Result<()> {
    let (url, token, stop) = local_server(&dir.join("to-server")).await?;
    let token_file = dir.join("to-server").join("token");
    std::fs::write(&token_file, &token)?;
    let yaml = agent_yaml(
        &dir.join("to-server").join("agent"),
        &url,
        &token_file,
        &dir.join("pods"),
    );
    let config = kestrel_agent::config::AgentConfig::from_yaml(&yaml)?;
    let lines = bytes / 283;
    let cpu0 = cpu_seconds_of(std::process::id());
    let t0 = Instant::now();
    let agent = kestrel_agent::Agent::start(config).await?;
    while agent.metrics().records_acked.get() < lines {
        tokio::time::sleep(Duration::from_millis(20)).await;
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(600),
            "the local server run did not finish"
        );
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds_of(std::process::id())
        .zip(cpu0)
        .map(|(a, b)| a - b);
    agent.shutdown(Duration::from_secs(5)).await;
    let _ = stop.send(());
    let mb = bytes as f64 / 1e6;
    println!(
        "{:<28} {:>8.0} MB/s wall  {:>8.0} MB/s per core (agent and server together)",
        "to a local server",
        mb / wall,
        cpu.map_or(f64::NAN, |c| mb / c)
    );
    Ok(())
}

/// Resident memory of a process in bytes, from /proc.
fn process_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A `kestrel agent` child process follows a pod log written at `rate` MB/s; its CPU share and
/// peak resident memory are measured from /proc.
async fn follow(dir: &Path, rate: u64, seconds: u64) -> Result<()> {
    let work = dir.join("follow");
    let (url, token, stop) = local_server(&work).await?;
    let token_file = work.join("token");
    std::fs::write(&token_file, &token)?;
    let pods = work.join("pods");
    let pod_dir = pods.join(BENCH_POD_DIR.trim_start_matches("pods/"));
    std::fs::create_dir_all(&pod_dir)?;
    let log_path = pod_dir.join("0.log");
    let mut log = std::fs::File::create(&log_path)?;
    let config = work.join("agent.yaml");
    std::fs::write(
        &config,
        agent_yaml(&work.join("agent"), &url, &token_file, &pods),
    )?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["agent", "-q", "-c"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .spawn()
        .context("starting the agent")?;
    let pid = child.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let line = {
        let mut l = "2026-11-20T09:00:00.000000000Z stdout F GET /api/v1/namespaces/default/pods/web 200 user=system:serviceaccount:default:web".to_string();
        while l.len() < 282 {
            l.push(' ');
        }
        l.push('\n');
        l
    };
    let per_tick = (rate * 1_000_000 / 10) as usize / line.len();
    let block = line.repeat(per_tick);
    let cpu0 = cpu_seconds_of(pid);
    let t0 = Instant::now();
    let mut peak_rss = 0;
    let mut written = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while t0.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        log.write_all(block.as_bytes())?;
        written += block.len() as u64;
        peak_rss = peak_rss.max(process_rss(pid).unwrap_or(0));
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds_of(pid).zip(cpu0).map(|(a, b)| a - b);
    let _ = child.kill();
    let _ = child.wait();
    let _ = stop.send(());
    println!(
        "{:<28} {:>8.1} MB/s written   {:>5.1}% of a core   peak RSS {:.1} MB",
        format!("follow {rate} MB/s for {seconds}s"),
        written as f64 / 1e6 / wall,
        cpu.map_or(f64::NAN, |c| 100.0 * c / wall),
        peak_rss as f64 / 1e6
    );
    Ok(())
}
