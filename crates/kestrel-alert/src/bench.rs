//! Alerting benchmarks (`kestrel bench alerts`, or alone:
//! `cargo run --release -p kestrel-alert --example bench`): routing throughput through a tree
//! of 100 routes, and event-to-notification latency to a local webhook (no group wait).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{
    fingerprint, Alert, AlertError, AlertStatus, AlertStore, Alerting, AlertingConfig, Engine,
    NewAlert, SystemClock,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ROUTES: usize = 100;

fn routing_config() -> String {
    let mut yaml = String::from(
        "route:\n  receiver: default\n  group_by: [rule, namespace]\n  group_wait: 0s\n  group_interval: 10s\n  routes:\n",
    );
    for i in 0..ROUTES - 1 {
        yaml.push_str(&format!(
            "    - matchers: ['namespace=\"ns-{i}\"', 'priority=~\"Critical|Warning\"']\n      receiver: team-{}\n",
            i % 10
        ));
    }
    yaml.push_str("inhibit_rules:\n  - source_matchers: ['priority=\"Critical\"']\n    target_matchers: ['priority=\"Notice\"']\n    equal: [namespace]\n");
    yaml.push_str("receivers:\n  - {name: default, webhook: {url: 'http://127.0.0.1:9/x'}}\n");
    for i in 0..10 {
        yaml.push_str(&format!(
            "  - {{name: team-{i}, webhook: {{url: 'http://127.0.0.1:9/x'}}}}\n"
        ));
    }
    yaml
}

fn bench_alert(i: usize) -> Alert {
    let priority = ["Critical", "Warning", "Notice"][i % 3];
    let labels: BTreeMap<String, String> = [
        ("rule".to_string(), format!("Rule {}", i % 50)),
        ("namespace".to_string(), format!("ns-{}", i % 120)),
        ("priority".to_string(), priority.to_string()),
        ("user_name".to_string(), format!("user-{}", i % 10_007)),
    ]
    .into();
    Alert {
        id: fingerprint(&labels),
        rule: labels["rule"].clone(),
        priority: priority.into(),
        source: "k8s_audit".into(),
        status: AlertStatus::Firing,
        output: format!("event {i}"),
        tags: vec![],
        labels,
        annotations: BTreeMap::new(),
        event: None,
        first_seen: String::new(),
        last_seen: String::new(),
        count: 1,
        status_by: None,
        status_at: None,
        generator_url: None,
    }
}

type Result<T> = std::result::Result<T, AlertError>;

fn yaml(text: &str) -> Result<AlertingConfig> {
    serde_yaml_ng::from_str(text).map_err(|e| AlertError::Invalid(e.to_string()))
}

fn io(e: impl std::fmt::Display) -> AlertError {
    AlertError::Invalid(e.to_string())
}

/// What [`routing_throughput`] measured.
#[derive(Debug, Clone, Copy)]
pub struct RoutingFigures {
    pub alerts: usize,
    /// Alerts per second through routing and grouping alone (`Engine::upsert`).
    pub routed_per_second: f64,
    /// Alerts per second including the ticks that turn groups into notifications.
    pub end_to_end_per_second: f64,
    pub notifications: usize,
}

/// Alerts per second routed, grouped and turned into notifications (no I/O): batches of
/// 1000 alerts a simulated second, groups flushed every 10 simulated seconds, ~10k distinct
/// alerts among repeats, a third of them inhibited.
pub fn routing_throughput(alerts: usize) -> Result<RoutingFigures> {
    let compiled = yaml(&routing_config())?.compile()?;
    let mut engine = Engine::new(&compiled);
    let batch: Vec<Alert> = (0..alerts).map(bench_alert).collect();
    let mut now = chrono::Utc::now();
    let mut routing = Duration::ZERO;
    let mut ticking = Duration::ZERO;
    let mut notifications = 0;
    for chunk in batch.chunks(1000) {
        let t0 = Instant::now();
        for a in chunk {
            engine.upsert(a.clone(), None, now);
        }
        let t1 = Instant::now();
        notifications += engine.tick(now).notifications.len();
        routing += t1 - t0;
        ticking += t1.elapsed();
        now += chrono::Duration::seconds(1);
    }
    Ok(RoutingFigures {
        alerts,
        routed_per_second: alerts as f64 / routing.as_secs_f64(),
        end_to_end_per_second: alerts as f64 / (routing + ticking).as_secs_f64(),
        notifications,
    })
}

/// A webhook receiver that records when each alert's notification arrived.
async fn receiver(arrivals: Arc<Mutex<BTreeMap<String, Instant>>>) -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(io)?;
    let url = format!("http://{}/hook", listener.local_addr().map_err(io)?);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let arrivals = Arc::clone(&arrivals);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 16384];
                loop {
                    let Ok(n) = conn.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let at = Instant::now();
                    if let Ok(v) =
                        serde_json::from_slice::<serde_json::Value>(&buf[end + 4..end + 4 + len])
                    {
                        let mut map = arrivals.lock().unwrap_or_else(|p| p.into_inner());
                        for a in v["alerts"].as_array().into_iter().flatten() {
                            if let Some(id) = a["id"].as_str() {
                                map.entry(id.to_string()).or_insert(at);
                            }
                        }
                    }
                    buf.drain(..end + 4 + len);
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    Ok(url)
}

/// Event-to-notification latency: from recording a rule match (SQLite included) to the
/// webhook having read the notification; sorted.
pub async fn notification_latency(alerts: usize) -> Result<Vec<Duration>> {
    let arrivals = Arc::new(Mutex::new(BTreeMap::new()));
    let url = receiver(Arc::clone(&arrivals)).await?;
    let dir = std::env::temp_dir().join(format!("kestrel-alert-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(io)?;
    let store = Arc::new(AlertStore::open(&dir.join("state.db"))?);
    let config = yaml(&format!(
        "route: {{receiver: hook, group_by: ['...'], group_wait: 0s}}\nreceivers:\n  - name: hook\n    webhook: {{url: '{url}'}}\n"
    ))?;
    let alerting = Alerting::new(&config.compile()?, store, Arc::new(SystemClock))?;
    alerting.spawn_driver();
    let mut sent = Vec::new();
    for i in 0..alerts {
        let labels: BTreeMap<String, String> = [
            ("rule".to_string(), "Bench".to_string()),
            ("user_name".to_string(), format!("user-{i}")),
        ]
        .into();
        let new = NewAlert {
            rule: "Bench".into(),
            priority: "Warning".into(),
            source: "k8s_audit".into(),
            output: format!("event {i}"),
            tags: vec![],
            labels,
            annotations: BTreeMap::new(),
            event: None,
            time: kestrel_event::time::now_nanos(),
            generator_url: None,
        };
        let t0 = Instant::now();
        let (alert, _) = {
            let a = Arc::clone(&alerting);
            tokio::task::spawn_blocking(move || a.record(&new))
                .await
                .map_err(io)??
        };
        sent.push((alert.id, t0));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if arrivals.lock().unwrap_or_else(|p| p.into_inner()).len() >= alerts {
            break;
        }
        if Instant::now() > deadline {
            return Err(AlertError::Invalid("not every notification arrived".into()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let arrivals = arrivals.lock().unwrap_or_else(|p| p.into_inner());
    let mut latencies: Vec<Duration> = sent
        .iter()
        .map(|(id, t0)| arrivals[id].duration_since(*t0))
        .collect();
    latencies.sort();
    drop(arrivals);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(latencies)
}

/// Runs both benchmarks and prints their figures.
pub async fn run() -> Result<()> {
    let n = 200_000;
    let f = tokio::task::spawn_blocking(move || routing_throughput(n))
        .await
        .map_err(io)??;
    println!(
        "alert routing ({ROUTES} routes, inhibition, {} alerts): {:>10.0} alerts/s routed and grouped, {:>10.0} alerts/s with notifications ({} notifications)",
        f.alerts, f.routed_per_second, f.end_to_end_per_second, f.notifications
    );
    let latencies = notification_latency(1000).await?;
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "event-to-notification latency (local webhook, no group wait, {} alerts): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    Ok(())
}
