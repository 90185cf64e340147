//! `kestrel bench`: throughput of the hot paths on generated audit traffic, per stage and
//! end to end, with CPU time so figures can be quoted per core.

use std::time::Instant;

use anyhow::Result;
use kestrel_event::AuditRecord;
use kestrel_parse::AuditParseConfig;
use kestrel_rules::RuleSet;
use kestrel_store::{QueryOptions, Store, StoreConfig, TableRows};

use crate::cli::BenchArgs;

/// CPU seconds (user + system) this process has used, from /proc (Linux); `None` elsewhere.
fn cpu_seconds() -> Option<f64> {
    cpu_seconds_of(std::process::id())
}

/// CPU seconds (user + system) process `pid` has used, from /proc (Linux); `None` elsewhere.
pub(crate) fn cpu_seconds_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // The kernel reports clock ticks; USER_HZ is 100 on every Linux platform Kestrel targets.
    Some((utime + stime) / 100.0)
}

struct Stage {
    name: &'static str,
    wall: f64,
    cpu: Option<f64>,
}

fn measure<T>(name: &'static str, f: impl FnOnce() -> T) -> (T, Stage) {
    let c0 = cpu_seconds();
    let t0 = Instant::now();
    let out = f();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = c0.zip(cpu_seconds()).map(|(a, b)| b - a);
    (out, Stage { name, wall, cpu })
}

fn report(stage: &Stage, events: usize, bytes: usize) {
    let mb = bytes as f64 / 1e6;
    let per_core = stage
        .cpu
        .filter(|c| *c > 0.0)
        .map(|c| {
            format!(
                "{:>10.0} ev/s/core  {:>7.1} MB/s/core",
                events as f64 / c,
                mb / c
            )
        })
        .unwrap_or_default();
    println!(
        "{:<34} {:>8.2}s wall  {:>10.0} ev/s  {:>7.1} MB/s   {}",
        stage.name,
        stage.wall,
        events as f64 / stage.wall,
        mb / stage.wall,
        per_core
    );
}

pub async fn run(args: BenchArgs) -> Result<()> {
    match args.target {
        Some(crate::cli::BenchTarget::Agent(a)) => return crate::bench_agent::run(a).await,
        Some(crate::cli::BenchTarget::Alerts) => return Ok(kestrel_alert::bench::run().await?),
        None => {}
    }
    let n = args.events;
    println!("generating {n} audit events of ordinary cluster traffic ...");
    let start = chrono::Utc::now() - chrono::Duration::hours(2);
    let lines: Vec<String> = kestrel_demo::background_traffic(start, 2000, 7)
        .take(n)
        .collect();
    let batches: Vec<Vec<u8>> = lines
        .chunks(args.batch)
        .map(|c| {
            let mut b = c.join("\n").into_bytes();
            b.push(b'\n');
            b
        })
        .collect();
    drop(lines);
    let bytes: usize = batches.iter().map(Vec::len).sum();
    println!(
        "{n} events, {:.1} MB of JSON, batches of {}\n",
        bytes as f64 / 1e6,
        args.batch
    );

    let cfg = AuditParseConfig::default();
    let now = kestrel_event::time::now_nanos();
    let (parsed, s) = measure("parse + redact", || {
        batches
            .iter()
            .map(|b| kestrel_parse::parse_json_lines(b, 1, &cfg, "bench", now).events)
            .collect::<Vec<_>>()
    });
    report(&s, n, bytes);

    let rules = RuleSet::bundled();
    let (matches, s) = measure("rule evaluation (bundled pack)", || {
        parsed
            .iter()
            .flatten()
            .map(|e| rules.evaluate_audit(e).len())
            .sum::<usize>()
    });
    report(&s, n, bytes);
    println!("{:<34} {matches} matches", "");
    drop(parsed);

    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    // Seal only when asked, so the WAL and Parquet stages are measured apart; in a server the
    // flusher seals in the background while ingest goes on.
    let mut config = StoreConfig::new(&dir);
    config.segment_max_bytes = u64::MAX;
    config.flush_interval = std::time::Duration::from_secs(24 * 3600);
    let store = Store::open(config)?;
    let c0 = cpu_seconds();
    let t0 = Instant::now();
    // Webhook-like concurrency: a few requests in flight share each group commit.
    let mut in_flight = tokio::task::JoinSet::new();
    let store = std::sync::Arc::new(store);
    for batch in batches {
        if in_flight.len() >= 4 {
            in_flight.join_next().await.expect("non-empty")??;
        }
        let store = std::sync::Arc::clone(&store);
        let cfg = cfg.clone();
        in_flight.spawn(async move {
            let records: Vec<AuditRecord> =
                kestrel_parse::parse_json_lines(&batch, 1, &cfg, "bench", now)
                    .events
                    .iter()
                    .map(|e| AuditRecord::from_event(e, None))
                    .collect();
            store.append(TableRows::Audit(records)).await.map(|_| ())
        });
    }
    while let Some(r) = in_flight.join_next().await {
        r??;
    }
    let s_ingest = Stage {
        name: "ingest: parse → WAL (fsync)",
        wall: t0.elapsed().as_secs_f64(),
        cpu: c0.zip(cpu_seconds()).map(|(a, b)| b - a),
    };
    report(&s_ingest, n, bytes);
    let store2 = std::sync::Arc::clone(&store);
    let (r, s_flush) = measure("seal WAL → Parquet", move || store2.flush());
    r?;
    report(&s_flush, n, bytes);
    let total = Stage {
        name: "end to end: parse → WAL → Parquet",
        wall: s_ingest.wall + s_flush.wall,
        cpu: s_ingest.cpu.zip(s_flush.cpu).map(|(a, b)| a + b),
    };
    report(&total, n, bytes);
    let parquet_bytes: u64 = walk_size(&dir.join("audit"));
    println!(
        "{:<34} {:.1} MB of Parquet ({:.1}x smaller than the JSON)",
        "",
        parquet_bytes as f64 / 1e6,
        bytes as f64 / parquet_bytes.max(1) as f64
    );

    println!();
    for sql in [
        "SELECT count(*) FROM audit",
        "SELECT verb, count(*) AS n FROM audit GROUP BY verb ORDER BY n DESC",
        "SELECT user_name, count(*) AS n FROM audit WHERE resource = 'secrets' GROUP BY user_name ORDER BY n DESC LIMIT 10",
    ] {
        let t0 = Instant::now();
        let r = store.query(sql, &QueryOptions::default()).await?;
        println!(
            "query {:>7.1} ms  {} rows  {sql}",
            t0.elapsed().as_secs_f64() * 1e3,
            r.rows.len()
        );
    }
    store.shutdown();
    Ok(())
}

fn walk_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
