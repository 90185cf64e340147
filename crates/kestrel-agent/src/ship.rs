//! The shipper: sends buffered batches to the server, retrying forever with jittered backoff,
//! and acknowledges them (buffer, tailer checkpoints) only on the server's 200.
//!
//! Retry decisions live in [`classify`]: network errors, timeouts, 429 and 5xx are retried;
//! 401/403 are retried too (a token can be fixed without losing data) but logged as errors;
//! other 4xx mean the batch itself is malformed — the server keeps it as a dead letter — so it
//! is dropped and counted.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use tracing::{debug, error, warn};

use crate::buffer::{BufferedBatch, DiskBuffer, RecordId};
use crate::config::ServerTarget;
use crate::metrics::AgentMetrics;
use crate::pipeline::{ResumeRanges, Ticket};
use crate::tail::PersistedCheckpoints;
use crate::AgentError;

/// Tickets of batches in the buffer, by record; filled by the pipeline, emptied by acks.
#[derive(Debug, Default)]
pub struct InFlight {
    inner: Mutex<InFlightInner>,
}

#[derive(Debug, Default)]
struct InFlightInner {
    tickets: HashMap<RecordId, Vec<Arc<Ticket>>>,
    /// Records acknowledged before the pipeline registered their tickets.
    early: HashSet<RecordId>,
}

impl InFlight {
    /// Registers the tickets of a record just buffered.
    pub fn register(&self, id: RecordId, tickets: Vec<Arc<Ticket>>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.early.remove(&id) {
            drop(inner);
            tickets.iter().for_each(|t| t.release());
        } else {
            inner.tickets.insert(id, tickets);
        }
    }

    pub(crate) fn acked(&self, id: RecordId) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match inner.tickets.remove(&id) {
            Some(tickets) => {
                drop(inner);
                tickets.iter().for_each(|t| t.release());
            }
            None => {
                inner.early.insert(id);
            }
        }
    }
}

/// What to do after a send.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// The server refused the batch for good (kept as a dead letter there).
    Rejected(String),
    /// Try again later.
    Retry(String),
}

fn classify(result: Result<(StatusCode, String), reqwest::Error>) -> Outcome {
    match result {
        Ok((s, _)) if s.is_success() => Outcome::Delivered,
        Ok((s, body)) if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => {
            Outcome::Retry(format!("server answered {s}: {body}"))
        }
        Ok((s, body)) if s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN => {
            error!(status = %s, body = %body, "the server refuses the agent's token; batches wait in the buffer until it is fixed");
            Outcome::Retry(format!("server answered {s}: {body}"))
        }
        Ok((s, body)) => Outcome::Rejected(format!("server answered {s}: {body}")),
        Err(e) => Outcome::Retry(format!("cannot reach the server: {e}")),
    }
}

/// A delivered batch still in the buffer: it stays there until the file's checkpoint on disk
/// has passed it, so a crash before that finds it again (and the lines it holds are not read
/// into a batch of another identity).
#[derive(Debug)]
struct Retiring {
    id: RecordId,
    input: String,
    stream: String,
    end: u64,
    /// Checkpoint writes of the input's tailer when the batch was delivered.
    writes_then: u64,
}

/// Sends batches from the buffer.
pub struct Shipper {
    client: reqwest::Client,
    endpoint: String,
    token: Option<String>,
    max_backoff: Duration,
    buffer: Arc<DiskBuffer>,
    in_flight: Arc<InFlight>,
    resume: HashMap<String, Arc<ResumeRanges>>,
    metrics: Arc<AgentMetrics>,
    stop: Arc<AtomicBool>,
    persisted: HashMap<String, Arc<PersistedCheckpoints>>,
    retiring: Mutex<Vec<Retiring>>,
    /// Records handed out by the buffer and not yet delivered or refused.
    sending: std::sync::atomic::AtomicUsize,
}

/// An HTTP client for the server: custom CA, client certificate, timeout.
pub fn http_client(target: &ServerTarget) -> Result<reqwest::Client, AgentError> {
    let read = |p: &Path| {
        std::fs::read(p)
            .map_err(|e| AgentError::Config(format!("cannot read {}: {e}", p.display())))
    };
    let mut b = reqwest::Client::builder()
        .timeout(target.request_timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("kestrel-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &target.ca_file {
        let cert = reqwest::Certificate::from_pem(&read(ca)?)
            .map_err(|e| AgentError::Config(format!("server.ca_file {}: {e}", ca.display())))?;
        b = b.add_root_certificate(cert);
    }
    if let (Some(cert), Some(key)) = (&target.client_cert_file, &target.client_key_file) {
        let mut pem = read(cert)?;
        pem.push(b'\n');
        pem.extend(read(key)?);
        let identity = reqwest::Identity::from_pem(&pem)
            .map_err(|e| AgentError::Config(format!("client certificate: {e}")))?;
        b = b.identity(identity);
    }
    b.build()
        .map_err(|e| AgentError::Config(format!("http client: {e}")))
}

impl Shipper {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: reqwest::Client,
        target: &ServerTarget,
        token: Option<String>,
        buffer: Arc<DiskBuffer>,
        in_flight: Arc<InFlight>,
        resume: HashMap<String, Arc<ResumeRanges>>,
        metrics: Arc<AgentMetrics>,
        stop: Arc<AtomicBool>,
        persisted: HashMap<String, Arc<PersistedCheckpoints>>,
    ) -> Self {
        Shipper {
            client,
            endpoint: format!("{}/v1/ingest", target.url.trim_end_matches('/')),
            token,
            max_backoff: target.max_backoff,
            buffer,
            in_flight,
            resume,
            metrics,
            stop,
            persisted,
            retiring: Mutex::new(Vec::new()),
            sending: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Removes from the buffer the delivered batches whose file checkpoint on disk has passed
    /// them (or whose file the tailer no longer tracks, two checkpoint writes later).
    pub fn reap(&self) {
        let mut retiring = self.retiring.lock().unwrap_or_else(|p| p.into_inner());
        retiring.retain(|r| {
            let done = match self.persisted.get(&r.input) {
                Some(p) => match p.offset(&r.stream) {
                    Some(offset) => offset >= r.end,
                    None => p.writes() >= r.writes_then + 2,
                },
                None => true,
            };
            if done {
                self.buffer.ack(r.id);
            }
            !done
        });
    }

    /// Delivered batches waiting for their checkpoint to reach the disk.
    pub fn retiring(&self) -> usize {
        self.retiring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Batches handed out for sending and not yet delivered or refused.
    pub fn sending(&self) -> usize {
        self.sending.load(Ordering::Acquire)
    }

    /// One sending loop; run `concurrency` of them.
    pub async fn run(self: Arc<Self>) {
        while !self.stop.load(Ordering::Acquire) {
            let buffer = Arc::clone(&self.buffer);
            let next = tokio::task::spawn_blocking(move || buffer.next(Duration::from_millis(200)))
                .await
                .expect("buffer read does not panic");
            match next {
                Ok(Some(batch)) => {
                    self.sending.fetch_add(1, Ordering::AcqRel);
                    self.deliver(batch).await;
                    self.sending.fetch_sub(1, Ordering::AcqRel);
                }
                Ok(None) => {}
                Err(_) => return,
            }
        }
    }

    async fn send(&self, body: &[u8]) -> Result<(StatusCode, String), reqwest::Error> {
        let mut req = self
            .client
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::CONTENT_ENCODING, "zstd")
            .body(body.to_vec());
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Ok((status, text))
    }

    async fn deliver(&self, batch: BufferedBatch) {
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match classify(self.send(&batch.body).await) {
                Outcome::Delivered => {
                    self.metrics.batches_acked.inc();
                    self.metrics
                        .records_acked
                        .inc_by(u64::from(batch.meta.records));
                    self.metrics.sent_bytes.inc_by(batch.body.len() as u64);
                    debug!(batch = %batch.meta.id, "batch delivered");
                    break;
                }
                Outcome::Rejected(why) => {
                    self.metrics.batches_rejected.inc();
                    error!(batch = %batch.meta.id, input = %batch.meta.input, reason = %why, "server refused a batch as malformed; it keeps it as a dead letter");
                    break;
                }
                Outcome::Retry(why) => {
                    self.metrics.retries.inc();
                    if self.stop.load(Ordering::Acquire) {
                        // Not acknowledged: the batch stays in the buffer for the next start.
                        return;
                    }
                    // Once per batch, then at doubling intervals: an outage must not flood the log.
                    if attempt.is_power_of_two() {
                        warn!(batch = %batch.meta.id, attempt, reason = %why, retry_in = ?backoff, "send failed; retrying");
                    } else {
                        debug!(batch = %batch.meta.id, attempt, reason = %why, "send failed; retrying");
                    }
                    let jitter = rand::rng().random_range(0.5..1.5);
                    tokio::time::sleep(backoff.mul_f64(jitter)).await;
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
        let writes_then = self
            .persisted
            .get(&batch.meta.input)
            .map_or(0, |p| p.writes());
        self.retiring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Retiring {
                id: batch.id,
                input: batch.meta.input.clone(),
                stream: batch.meta.stream.clone(),
                end: batch.meta.end,
                writes_then,
            });
        self.in_flight.acked(batch.id);
        if let Some(r) = self.resume.get(&batch.meta.input) {
            r.acked(&batch.meta.stream, &batch.meta.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_decisions() {
        let ok = |s: u16| classify(Ok((StatusCode::from_u16(s).unwrap(), String::new())));
        assert_eq!(ok(200), Outcome::Delivered);
        assert!(matches!(ok(503), Outcome::Retry(_)));
        assert!(matches!(ok(500), Outcome::Retry(_)));
        assert!(matches!(ok(429), Outcome::Retry(_)));
        assert!(matches!(ok(401), Outcome::Retry(_)));
        assert!(matches!(ok(403), Outcome::Retry(_)));
        assert!(matches!(ok(400), Outcome::Rejected(_)));
        assert!(matches!(ok(413), Outcome::Rejected(_)));
    }
}
