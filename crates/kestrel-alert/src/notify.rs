//! Sending notifications: a bounded queue and a task per receiver channel, so a dead receiver
//! never slows detection or the other receivers; a rate limit per channel; retries with
//! exponential backoff; every notification in the delivery log. An Alertmanager channel also
//! re-posts its firing alerts every `resend_interval`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::AsyncTransport;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::channels::{self, AlertmanagerForwarder, HttpPost, Outgoing, ResponseCheck};
use crate::config::{ChannelKind, CompiledAlerting, ReceiverConfig, SmtpTls};
use crate::engine::Notification;
use crate::model::AlertStatus;
use crate::store::{AlertStore, NewDelivery};
use crate::template::Templates;

/// Notifications waiting per channel before new ones are logged as failed (`queue full`).
const QUEUE_CAPACITY: usize = 10_000;
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct NotifierStats {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub retries: AtomicU64,
    pub resends: AtomicU64,
}

struct Job {
    notification: Arc<Notification>,
    delivery: i64,
}

struct ChannelQueue {
    kind: ChannelKind,
    tx: mpsc::Sender<Job>,
}

struct Receiver {
    config: ReceiverConfig,
    channels: Vec<ChannelQueue>,
}

/// Hands notifications to receivers.
pub struct Notifier {
    receivers: HashMap<String, Receiver>,
    store: Arc<AlertStore>,
    stats: Arc<NotifierStats>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("receivers", &self.receivers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Everything a channel task needs.
struct ChannelTask {
    receiver: ReceiverConfig,
    kind: ChannelKind,
    templates: Templates,
    external_url: Option<String>,
    client: reqwest::Client,
    store: Arc<AlertStore>,
    stats: Arc<NotifierStats>,
}

impl Notifier {
    /// Starts one delivery task per receiver channel (on the current tokio runtime). The tasks
    /// end when the notifier is dropped, after their queue is drained.
    pub fn start(
        config: &CompiledAlerting,
        store: Arc<AlertStore>,
        stats: Arc<NotifierStats>,
    ) -> Self {
        let client = reqwest::Client::builder()
            .user_agent(concat!("kestrel/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("http client builds");
        let mut receivers = HashMap::new();
        for r in &config.config.receivers {
            let mut channels = Vec::new();
            for kind in r.channels() {
                let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
                let task = ChannelTask {
                    receiver: r.clone(),
                    kind,
                    templates: config.templates.clone(),
                    external_url: config.config.external_url.clone(),
                    client: client.clone(),
                    store: Arc::clone(&store),
                    stats: Arc::clone(&stats),
                };
                tokio::spawn(run_channel(task, rx));
                channels.push(ChannelQueue { kind, tx });
            }
            receivers.insert(
                r.name.clone(),
                Receiver {
                    config: r.clone(),
                    channels,
                },
            );
        }
        Notifier {
            receivers,
            store,
            stats,
        }
    }

    /// Queues `n` for every channel of its receiver. Never waits.
    pub fn send(&self, mut n: Notification) {
        let Some(receiver) = self.receivers.get(&n.receiver) else {
            warn!(receiver = %n.receiver, "notification for an unknown receiver dropped");
            return;
        };
        if !receiver.config.send_resolved {
            n.alerts.retain(|a| a.status != AlertStatus::Resolved);
            if n.alerts.is_empty() {
                return;
            }
        }
        let n = Arc::new(n);
        let ids: Vec<&str> = n.alerts.iter().map(|a| a.id.as_str()).collect();
        let reason = n.reason.as_str();
        for channel in &receiver.channels {
            let delivery = match self.store.delivery_started(&NewDelivery {
                receiver: &n.receiver,
                channel: channel.kind.as_str(),
                group_key: &n.group_key,
                reason: &reason,
                alert_ids: ids.clone(),
            }) {
                Ok(id) => id,
                Err(e) => {
                    warn!(error = %e, "cannot log a delivery; sending anyway");
                    -1
                }
            };
            let job = Job {
                notification: Arc::clone(&n),
                delivery,
            };
            if channel.tx.try_send(job).is_err() {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let _ = self.store.delivery_attempted(
                    delivery,
                    "failed",
                    0,
                    Some("receiver queue full"),
                );
                warn!(receiver = %n.receiver, channel = channel.kind.as_str(), "receiver queue full; notification dropped and logged");
            }
        }
    }

    pub fn stats(&self) -> &NotifierStats {
        &self.stats
    }
}

/// A token bucket: `per_minute` notifications a minute, bursts up to that many. (By hand: it
/// is a few lines, and this way it reads `Instant`s the caller gives, for tests.)
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub(crate) fn new(per_minute: u32, now: Instant) -> Self {
        let capacity = f64::from(per_minute.max(1));
        RateLimiter {
            per_second: capacity / 60.0,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    /// Takes a token; returns how long to wait before using it.
    pub(crate) fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity) - 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_second)
        }
    }
}

async fn run_channel(task: ChannelTask, mut rx: mpsc::Receiver<Job>) {
    let mut limiter = task
        .receiver
        .max_per_minute
        .map(|n| RateLimiter::new(n, Instant::now()));
    let resend_interval = task
        .receiver
        .alertmanager
        .as_ref()
        .map(|c| c.resend_interval)
        .filter(|_| task.kind == ChannelKind::Alertmanager);
    let mut forwarder = AlertmanagerForwarder::default();
    let mut resend = tokio::time::interval(resend_interval.unwrap_or(Duration::from_secs(3600)));
    resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resend.tick().await;
    loop {
        tokio::select! {
            job = rx.recv() => {
                let Some(job) = job else { break };
                if let Some(l) = &mut limiter {
                    let wait = l.reserve(Instant::now());
                    if !wait.is_zero() {
                        debug!(receiver = %task.receiver.name, ?wait, "rate limited");
                        tokio::time::sleep(wait).await;
                    }
                }
                deliver(&task, &job).await;
                forwarder.observe(&job.notification);
            }
            _ = resend.tick(), if resend_interval.is_some() => {
                repost(&task, &forwarder, resend_interval.unwrap_or_default()).await;
            }
        }
    }
}

/// Posts an Alertmanager channel's firing alerts again (no retries: the next round retries).
async fn repost(task: &ChannelTask, forwarder: &AlertmanagerForwarder, interval: Duration) {
    let Some(cfg) = &task.receiver.alertmanager else {
        return;
    };
    let Some(body) =
        forwarder.resend_body(task.external_url.as_deref(), chrono::Utc::now(), interval)
    else {
        return;
    };
    let post = HttpPost {
        url: channels::alertmanager_endpoint(&cfg.url),
        headers: cfg.headers.clone(),
        content_type: "application/json".into(),
        body: serde_json::to_vec(&body).expect("json serializes"),
        check: ResponseCheck::Status,
    };
    task.stats.resends.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = http_post(task, &post).await {
        warn!(receiver = %task.receiver.name, error = %e, "re-posting firing alerts to Alertmanager failed");
    }
}

async fn deliver(task: &ChannelTask, job: &Job) {
    let name = &task.receiver.name;
    let channel = task.kind.as_str();
    let log = |status: &str, attempts: u32, error: Option<&str>| {
        if job.delivery >= 0 {
            if let Err(e) = task
                .store
                .delivery_attempted(job.delivery, status, attempts, error)
            {
                warn!(error = %e, "cannot update the delivery log");
            }
        }
    };
    let outgoing = match channels::build(
        task.kind,
        &task.receiver,
        &task.templates,
        &job.notification,
        task.external_url.as_deref(),
        chrono::Utc::now(),
    ) {
        Ok(o) => o,
        Err(e) => {
            task.stats.failed.fetch_add(1, Ordering::Relaxed);
            log("failed", 0, Some(&e.to_string()));
            warn!(receiver = %name, channel, error = %e, "cannot build the notification");
            return;
        }
    };
    let mut pending = match outgoing {
        Outgoing::Http(posts) => Pending::Http(posts),
        Outgoing::Email(m) => Pending::Email(Some(m)),
    };
    let mut backoff = task.receiver.initial_backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match &mut pending {
            Pending::Http(posts) => {
                let mut failed = Vec::new();
                let mut first_error = None;
                for post in posts.drain(..) {
                    if let Err(e) = http_post(task, &post).await {
                        first_error.get_or_insert(e);
                        failed.push(post);
                    }
                }
                *posts = failed;
                first_error
            }
            Pending::Email(m) => match send_email(task, m.as_deref().expect("message")).await {
                Ok(()) => {
                    *m = None;
                    None
                }
                Err(e) => Some(e),
            },
        };
        match error {
            None => {
                task.stats.delivered.fetch_add(1, Ordering::Relaxed);
                log("delivered", attempt, None);
                debug!(receiver = %name, channel, attempt, "notification delivered");
                return;
            }
            Some(e) if attempt >= task.receiver.max_attempts => {
                task.stats.failed.fetch_add(1, Ordering::Relaxed);
                log("failed", attempt, Some(&e));
                warn!(receiver = %name, channel, attempts = attempt, error = %e, "notification failed for good");
                return;
            }
            Some(e) => {
                task.stats.retries.fetch_add(1, Ordering::Relaxed);
                log("pending", attempt, Some(&e));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

enum Pending {
    Http(Vec<HttpPost>),
    Email(Option<Box<lettre::Message>>),
}

async fn http_post(task: &ChannelTask, post: &HttpPost) -> Result<(), String> {
    let mut req = task
        .client
        .post(&post.url)
        .timeout(task.receiver.timeout)
        .header(reqwest::header::CONTENT_TYPE, &post.content_type)
        .body(post.body.clone());
    for (k, v) in &post.headers {
        req = req.header(k, v);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(format!(
            "receiver answered {status}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    if post.check == ResponseCheck::DingTalkErrcode {
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| format!("unreadable DingTalk answer: {e}"))?;
        if v["errcode"].as_i64() != Some(0) {
            return Err(format!("DingTalk refused the message: {v}"));
        }
    }
    Ok(())
}

async fn send_email(task: &ChannelTask, message: &lettre::Message) -> Result<(), String> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, Tokio1Executor};
    let cfg = task.receiver.email.as_ref().expect("email configured");
    let (host, port) = cfg
        .smarthost
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("bad smarthost {:?}", cfg.smarthost))?;
    let builder = match cfg.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(|e| format!("smtp: {e}"))?,
        SmtpTls::Tls => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(|e| format!("smtp: {e}"))?
        }
    };
    let mut builder = builder.port(port).timeout(Some(task.receiver.timeout));
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
    }
    builder
        .build()
        .send(message.clone())
        .await
        .map(|_| ())
        .map_err(|e| format!("smtp: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_a_burst_then_spaces_notifications() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(60, t0);
        for _ in 0..60 {
            assert_eq!(l.reserve(t0), Duration::ZERO);
        }
        // The 61st waits a second (60 a minute), the 62nd two.
        assert_eq!(l.reserve(t0).as_millis(), 1000);
        assert_eq!(l.reserve(t0).as_millis(), 2000);
        // Ten seconds later the debt is paid and 8 tokens are back.
        let t1 = t0 + Duration::from_secs(10);
        for _ in 0..8 {
            assert_eq!(l.reserve(t1), Duration::ZERO);
        }
        assert!(l.reserve(t1) > Duration::ZERO);
    }
}
