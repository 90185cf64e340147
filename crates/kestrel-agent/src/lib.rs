//! The Kestrel node agent: collects a node's security data and ships it to the server with
//! nothing lost and nothing stored twice.
//!
//! ```text
//! files ─► tail (chunks of whole lines) ─► pipeline (decode, merge, enrich, cut batches)
//!   ▲                                          │ zstd
//!   │ checkpoint = acknowledged bytes          ▼
//!   └──── tickets ◄──── shipper ◄──── disk buffer (written, fsynced, before sending)
//!                        │ POST /v1/ingest, retry forever; 200 ⇒ ack
//! ```
//! - [`tail`]: the file-tailing engine (rotation-safe, acknowledged checkpoints).
//! - [`pipeline`]: chunks → batches with content-derived identities.
//! - [`buffer`]: the disk buffer.
//! - [`ship`]: sending and retrying.
//! - [`config`]: the YAML configuration.
//! - [`metrics`]: `/metrics` and `/healthz`.
//! - [`kube`]: Kubernetes pod metadata and the Kubernetes events input.
//! - [`stream`]: the inputs that are not files (systemd journal, `/dev/kmsg`, Kubernetes
//!   events in cluster mode).

pub mod bench;
pub mod buffer;
pub mod config;
pub mod encode;
pub mod kube;
pub mod metrics;
pub mod pipeline;
pub mod process;
pub mod ship;
pub mod stream;
pub mod tail;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::{error, info};

use crate::buffer::{BatchMeta, DiskBuffer};
use crate::config::AgentConfig;
use crate::metrics::AgentMetrics;
use crate::pipeline::{AgentIdentity, PendingBatch, PodLogPipeline, ResumeRanges};
use crate::ship::{InFlight, Shipper};
use crate::tail::Tailer;

/// How often a pipeline checks for multiline records whose timeout passed.
const MULTILINE_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Buffer(#[from] buffer::BufferError),
    #[error(transparent)]
    Tail(#[from] tail::TailError),
    #[error(transparent)]
    Stream(#[from] stream::StreamError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A running agent.
pub struct Agent {
    stop: Arc<AtomicBool>,
    tailers: Vec<Tailer>,
    pipelines: Vec<JoinHandle<()>>,
    /// The journal, kmsg and Kubernetes events inputs, and their stop signal.
    streams: Vec<stream::StreamTask>,
    stream_stop: Arc<AtomicBool>,
    shippers: Vec<tokio::task::JoinHandle<()>>,
    shipper: Arc<Shipper>,
    buffer: Arc<DiskBuffer>,
    metrics_addr: Option<SocketAddr>,
    metrics_stop: Option<tokio::sync::oneshot::Sender<()>>,
    metrics: Arc<AgentMetrics>,
    /// The Kubernetes metadata watches; stopped when the agent is dropped.
    _kube_watches: kube::MetadataWatches,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("metrics_addr", &self.metrics_addr)
            .finish()
    }
}

fn encode_batch(batch: &mut kestrel_event::IngestBatch, level: i32) -> Vec<u8> {
    let json = encode::batch_json(batch);
    zstd::bulk::compress(&json, level).expect("zstd compresses in memory")
}

impl Agent {
    /// Starts the agent: tailers, pipelines, shippers and the metrics endpoint. Must be called
    /// inside a Tokio runtime.
    pub async fn start(config: AgentConfig) -> Result<Agent, AgentError> {
        config
            .validate()
            .map_err(|e| AgentError::Config(e.to_string()))?;
        let agent_name = config.agent_name();
        let node = config.node.clone().or_else(|| Some(agent_name.clone()));
        let token = match &config.server.token_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| {
                        AgentError::Config(format!("server.token_file {}: {e}", p.display()))
                    })?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let client = ship::http_client(&config.server)?;
        std::fs::create_dir_all(&config.data_dir)?;
        let (buffer, buffered) = DiskBuffer::open(
            config.data_dir.join("buffer"),
            config.buffer.max_bytes,
            config.buffer.segment_bytes,
            config.buffer.fsync,
        )?;
        if !buffered.is_empty() {
            info!(
                batches = buffered.len(),
                "re-sending batches left in the disk buffer"
            );
        }
        let buffer = Arc::new(buffer);
        let kube_client = kube::connect(&config.kubernetes)
            .await
            .map_err(|e| AgentError::Config(e.to_string()))?;
        let watched_node = config
            .kubernetes
            .node_name()
            .or_else(|| node.clone())
            .unwrap_or_else(|| agent_name.clone());
        // The node-scoped pod watch enriches container logs, which only node agents read.
        let pod_client = match config.mode {
            config::AgentMode::Node => kube_client.clone(),
            config::AgentMode::Cluster => None,
        };
        let (pod_metadata, kube_watches) =
            kube::PodMetadataStore::start(&config.kubernetes, pod_client, &watched_node);
        let metrics = Arc::new(AgentMetrics::default());
        let in_flight = Arc::new(InFlight::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tailers = Vec::new();
        let mut pipelines = Vec::new();
        let mut resume_by_input = HashMap::new();
        let mut tail_metrics = Vec::new();
        let mut persisted = HashMap::new();
        let stream_stop = Arc::new(AtomicBool::new(false));
        let mut streams = Vec::new();
        for input in &config.inputs {
            let name = input.name().to_string();
            let resume = Arc::new(ResumeRanges::new(&name, &buffered));
            resume_by_input.insert(name.clone(), Arc::clone(&resume));
            let checkpoints = config.data_dir.join("checkpoints");
            std::fs::create_dir_all(&checkpoints)?;
            let Some((tail_config, pods, format)) = config.file_input(input) else {
                let sink = stream::BatchSink {
                    identity: AgentIdentity {
                        agent: agent_name.clone(),
                        node: node.clone(),
                        cluster: config.cluster.clone(),
                    },
                    input: name.clone(),
                    buffer: Arc::clone(&buffer),
                    in_flight: Arc::clone(&in_flight),
                    metrics: Arc::clone(&metrics),
                    zstd_level: config.batch.zstd_level,
                };
                let (tasks, input_persisted) = stream::start_input(
                    input,
                    stream::StreamContext {
                        sink,
                        checkpoints: &checkpoints,
                        buffered: &buffered,
                        resume: &resume,
                        max_batch_bytes: config.batch.max_bytes,
                        stop: Arc::clone(&stream_stop),
                        kube_client: kube_client.clone(),
                    },
                )?;
                streams.extend(tasks);
                persisted.insert(name.clone(), input_persisted);
                continue;
            };
            let processing = config
                .processing(input)
                .map_err(|e| AgentError::Config(e.to_string()))?;
            let (tailer, chunks) =
                Tailer::start(tail_config, checkpoints.join(format!("{name}.json")))?;
            tail_metrics.push((name.clone(), tailer.metrics()));
            persisted.insert(name.clone(), tailer.persisted());
            let mut pipeline = PodLogPipeline::new(
                AgentIdentity {
                    agent: agent_name.clone(),
                    node: node.clone(),
                    cluster: config.cluster.clone(),
                },
                pods,
                name.clone(),
                resume,
                tailer.ack_handle(),
                Arc::clone(&metrics),
            )
            .with_format(format)
            .with_processing(processing);
            if format == pipeline::LineFormat::Container {
                pipeline = pipeline.with_pod_metadata(pod_metadata.clone());
            }
            let buffer = Arc::clone(&buffer);
            let in_flight = Arc::clone(&in_flight);
            let metrics = Arc::clone(&metrics);
            let level = config.batch.zstd_level;
            let handle = std::thread::Builder::new()
                .name(format!("kestrel-pipeline-{name}"))
                .spawn(move || {
                    let mut last_flush = std::time::Instant::now();
                    loop {
                        let batches = match chunks.recv_timeout(MULTILINE_TICK) {
                            Ok(chunk) => pipeline.process(chunk),
                            Err(tail::RecvError::Timeout) => Vec::new(),
                            Err(tail::RecvError::Closed) => return,
                        };
                        // Multiline records of quiet files are shipped after their timeout,
                        // checked at most once per tick.
                        let expired = if last_flush.elapsed() >= MULTILINE_TICK
                            && pipeline.has_pending_records()
                        {
                            last_flush = std::time::Instant::now();
                            pipeline.flush_expired()
                        } else {
                            Vec::new()
                        };
                        for pending in batches.into_iter().chain(expired) {
                            if let Err(e) =
                                buffer_batch(&buffer, &in_flight, &metrics, pending, level)
                            {
                                // Closed at shutdown, or the disk failed: the batch's bytes
                                // are not acknowledged, so they are read again.
                                if !matches!(e, buffer::BufferError::Closed) {
                                    error!(error = %e, "cannot buffer a batch; stopping this input");
                                }
                                return;
                            }
                        }
                    }
                })?;
            tailers.push(tailer);
            pipelines.push(handle);
        }
        let shipper = Arc::new(Shipper::new(
            client,
            &config.server,
            token,
            Arc::clone(&buffer),
            in_flight,
            resume_by_input,
            Arc::clone(&metrics),
            Arc::clone(&stop),
            persisted,
        ));
        let mut shippers: Vec<_> = (0..config.server.concurrency)
            .map(|_| tokio::spawn(Arc::clone(&shipper).run()))
            .collect();
        {
            let shipper = Arc::clone(&shipper);
            let stop = Arc::clone(&stop);
            shippers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Acquire) {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    shipper.reap();
                }
            }));
        }
        let (metrics_addr, metrics_stop) = match config.listen {
            Some(addr) => {
                let registry =
                    Arc::new(metrics::registry(&metrics, tail_metrics, buffer.metrics()));
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                let local = metrics::serve(addr, registry, async {
                    let _ = rx.await;
                })
                .await?;
                info!(addr = %local, "agent metrics on /metrics, health on /healthz");
                (Some(local), Some(tx))
            }
            None => (None, None),
        };
        info!(agent = %agent_name, server = %config.server.url, inputs = config.inputs.len(), "agent started");
        Ok(Agent {
            stop,
            tailers,
            pipelines,
            streams,
            stream_stop,
            shippers,
            shipper,
            buffer,
            metrics_addr,
            metrics_stop,
            metrics,
            _kube_watches: kube_watches,
        })
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The agent's counters.
    pub fn metrics(&self) -> &Arc<AgentMetrics> {
        &self.metrics
    }

    /// Bytes of batches waiting in the disk buffer.
    pub fn buffered_bytes(&self) -> u64 {
        self.buffer.bytes()
    }

    /// Stops reading, gives batches already read `grace` to be delivered, saves checkpoints
    /// and returns. Whatever was not acknowledged stays in the buffer or the files for the next
    /// start.
    pub async fn shutdown(mut self, grace: std::time::Duration) {
        // No new batches (a pipeline waiting for room in a full buffer returns at once); the
        // tailers stop once their channels fill.
        self.buffer.close_writes();
        self.stream_stop.store(true, Ordering::Release);
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline
            && (self.shipper.sending() > 0 || self.buffer.records() > self.shipper.retiring())
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // The tailers write their checkpoints as they stop, covering what was delivered.
        for t in self.tailers.drain(..) {
            if let Err(e) = tokio::task::spawn_blocking(move || t.shutdown())
                .await
                .expect("tailer shutdown does not panic")
            {
                error!(error = %e, "tailer shutdown");
            }
        }
        let pipelines = std::mem::take(&mut self.pipelines);
        let mut stream_threads = Vec::new();
        for s in self.streams.drain(..) {
            match s {
                stream::StreamTask::Thread(t) => stream_threads.push(t),
                // Unacknowledged batches are in the buffer, and the checkpoints only cover
                // acknowledged ones: stopping a watch anywhere loses nothing.
                stream::StreamTask::Task(t) => t.abort(),
            }
        }
        let _ = tokio::task::spawn_blocking(move || {
            for p in pipelines.into_iter().chain(stream_threads) {
                let _ = p.join();
            }
        })
        .await;
        self.shipper.reap();
        self.stop.store(true, Ordering::Release);
        self.buffer.close();
        for s in self.shippers.drain(..) {
            let _ = s.await;
        }
        if let Some(tx) = self.metrics_stop.take() {
            let _ = tx.send(());
        }
    }
}

pub(crate) fn buffer_batch(
    buffer: &DiskBuffer,
    in_flight: &InFlight,
    metrics: &AgentMetrics,
    pending: PendingBatch,
    level: i32,
) -> Result<(), buffer::BufferError> {
    let PendingBatch { mut batch, tickets } = pending;
    let meta = BatchMeta {
        id: batch.id.clone(),
        input: batch.origin.input.clone(),
        stream: batch.origin.stream.clone(),
        start: batch.start,
        end: batch.end,
        records: batch.record_count() as u32,
    };
    let body = encode_batch(&mut batch, level);
    let id = buffer.append(&meta, &body)?;
    metrics.batches_buffered.inc();
    in_flight.register(id, tickets);
    Ok(())
}
