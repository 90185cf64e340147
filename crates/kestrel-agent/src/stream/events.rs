//! The Kubernetes events input of cluster mode: runs [`K8sEventSource`] (the
//! `events.k8s.io/v1` watch) and writes its batches to the disk buffer as `k8s_event` records.
//!
//! The source keeps its own checkpoint (`<input>.k8s_events.json`, see `kube::events`): a
//! batch's range and resourceVersion are recorded before it is handed out, and the
//! acknowledged point advances when the server has stored the batch, here through the batch's
//! [`Ticket`]. Batches left in the disk buffer by the previous run are acknowledged to that
//! checkpoint too when the shipper re-sends them.

use std::path::Path;
use std::sync::Arc;

use kestrel_event::IngestBatch;
use tokio::sync::mpsc;
use tracing::error;

use super::{BatchSink, StreamError, StreamTask};
use crate::buffer::{BatchMeta, BufferError};
use crate::kube::events::STREAM;
use crate::kube::{EventCheckpoint, K8sEventSource, K8sEventsInput};
use crate::pipeline::{OnAck, ResumeRanges, Ticket};
use crate::tail::PersistedCheckpoints;

/// Batches handed from the watch to the buffer writer.
const QUEUED_BATCHES: usize = 4;

/// Advances the events checkpoint over `[start, end)` and tells the shipper how far the
/// checkpoint on disk now goes.
#[derive(Debug)]
struct EventAckTarget {
    checkpoint: EventCheckpoint,
    persisted: Arc<PersistedCheckpoints>,
    start: u64,
    end: u64,
}

impl OnAck for EventAckTarget {
    fn acknowledged(&self) {
        match self.checkpoint.ack(self.start, self.end) {
            Ok(()) => {
                let (_, next) = self.checkpoint.acknowledged();
                self.persisted.record_offsets([(STREAM.to_owned(), next)]);
            }
            Err(e) => error!(error = %e, "cannot write the Kubernetes events checkpoint"),
        }
    }
}

/// Starts the watch and the task writing its batches. `checkpoints` is the directory of the
/// input's checkpoint; `buffered` the batches of every input found in the disk buffer.
pub fn start(
    client: ::kube::Client,
    input: K8sEventsInput,
    sink: BatchSink,
    checkpoints: &Path,
    buffered: &[BatchMeta],
    resume: &ResumeRanges,
    persisted: Arc<PersistedCheckpoints>,
) -> Result<Vec<StreamTask>, StreamError> {
    let name = input.name().to_owned();
    let source = K8sEventSource::open(client, input, checkpoints, buffered)?;
    let checkpoint = source.checkpoint();
    persisted.record_offsets([(STREAM.to_owned(), checkpoint.acknowledged().1)]);
    let target = move |start, end| -> Arc<Ticket> {
        Ticket::for_position(Box::new(EventAckTarget {
            checkpoint: checkpoint.clone(),
            persisted: Arc::clone(&persisted),
            start,
            end,
        }))
    };
    for meta in super::buffered_of(buffered, &name) {
        super::wait_for_buffered(resume, meta, target(meta.start, meta.end));
    }
    let (tx, mut rx) = mpsc::channel(QUEUED_BATCHES);
    let watch_name = name.clone();
    let watch = tokio::spawn(async move {
        if let Err(e) = source.run(tx).await {
            error!(input = %watch_name, error = %e, "the Kubernetes events input stopped");
        }
    });
    let metrics = sink.metrics.input(&name);
    let writer = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            metrics.records.inc_by(batch.events.len() as u64);
            metrics.errors.inc_by(batch.dead_letters.len() as u64);
            let ticket = target(batch.start, batch.end);
            let records = IngestBatch {
                k8s_events: batch.events,
                dead_letters: batch.dead_letters,
                ..IngestBatch::default()
            };
            let sink = sink.clone();
            let (start, end) = (batch.start, batch.end);
            let written = tokio::task::spawn_blocking(move || {
                sink.write(STREAM, start, end, records, ticket)
            })
            .await
            .unwrap_or(Err(BufferError::Closed));
            if let Err(e) = written {
                if !matches!(e, BufferError::Closed) {
                    error!(input = %name, error = %e, "cannot buffer a batch; stopping this input");
                }
                return;
            }
        }
    });
    Ok(vec![StreamTask::Task(watch), StreamTask::Task(writer)])
}
