//! Sending alerts to receivers: a queue and a task per receiver, so a dead receiver never slows
//! detection or the other receivers; retries with exponential backoff; every notification in
//! the delivery log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::config::{AlertingConfig, WebhookConfig};
use crate::model::Alert;
use crate::store::AlertStore;

/// Notifications waiting per receiver before new ones are logged as failed (`queue full`).
const QUEUE_CAPACITY: usize = 10_000;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct NotifierStats {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub retries: AtomicU64,
}

struct ReceiverQueue {
    name: String,
    tx: mpsc::Sender<(Alert, i64)>,
}

/// Hands alerts to the receivers the configuration routes them to.
pub struct Notifier {
    config: AlertingConfig,
    queues: Vec<ReceiverQueue>,
    store: Arc<AlertStore>,
    stats: Arc<NotifierStats>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field(
                "receivers",
                &self.queues.iter().map(|q| &q.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Notifier {
    /// Starts one delivery task per receiver (on the current tokio runtime).
    pub fn start(config: AlertingConfig, store: Arc<AlertStore>) -> Self {
        let stats = Arc::new(NotifierStats::default());
        let client = reqwest::Client::builder()
            .user_agent(concat!("kestrel/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("http client builds");
        let mut queues = Vec::new();
        for r in &config.receivers {
            let Some(webhook) = r.webhook.clone() else {
                continue;
            };
            let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
            tokio::spawn(run_webhook(
                r.name.clone(),
                webhook,
                rx,
                client.clone(),
                Arc::clone(&store),
                Arc::clone(&stats),
            ));
            queues.push(ReceiverQueue {
                name: r.name.clone(),
                tx,
            });
        }
        Notifier {
            config,
            queues,
            store,
            stats,
        }
    }

    /// Queues a notification of `alert` for every receiver it routes to. Never waits.
    pub fn notify(&self, alert: &Alert) {
        for receiver in self.config.receivers_for_alert() {
            let Some(queue) = self.queues.iter().find(|q| q.name == receiver.name) else {
                continue;
            };
            let id = match self.store.delivery_started(&alert.id, &queue.name) {
                Ok(id) => id,
                Err(e) => {
                    warn!(error = %e, "cannot log delivery");
                    continue;
                }
            };
            if queue.tx.try_send((alert.clone(), id)).is_err() {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let _ = self
                    .store
                    .delivery_attempted(id, "failed", 0, Some("receiver queue full"));
                warn!(receiver = %queue.name, "receiver queue full; notification dropped and logged");
            }
        }
    }

    pub fn stats(&self) -> &NotifierStats {
        &self.stats
    }
}

/// The JSON a webhook receives.
pub fn webhook_body(receiver: &str, alert: &Alert) -> serde_json::Value {
    json!({
        "version": "1",
        "receiver": receiver,
        "status": alert.status,
        "alerts": [alert],
    })
}

async fn run_webhook(
    name: String,
    cfg: WebhookConfig,
    mut rx: mpsc::Receiver<(Alert, i64)>,
    client: reqwest::Client,
    store: Arc<AlertStore>,
    stats: Arc<NotifierStats>,
) {
    while let Some((alert, delivery)) = rx.recv().await {
        let body = webhook_body(&name, &alert);
        let mut backoff = cfg.initial_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = client.post(&cfg.url).timeout(cfg.timeout).json(&body);
            for (k, v) in &cfg.headers {
                req = req.header(k, v);
            }
            let error = match req.send().await {
                Ok(resp) if resp.status().is_success() => None,
                Ok(resp) => Some(format!("receiver answered {}", resp.status())),
                Err(e) => Some(format!("request failed: {e}")),
            };
            match error {
                None => {
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                    let _ = store.delivery_attempted(delivery, "delivered", attempt, None);
                    debug!(receiver = %name, alert = %alert.id, attempt, "alert delivered");
                    break;
                }
                Some(e) if attempt >= cfg.max_attempts => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    let _ = store.delivery_attempted(delivery, "failed", attempt, Some(&e));
                    warn!(receiver = %name, alert = %alert.id, attempts = attempt, error = %e, "alert delivery failed for good");
                    break;
                }
                Some(e) => {
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    let _ = store.delivery_attempted(delivery, "pending", attempt, Some(&e));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(300));
                }
            }
        }
    }
}
