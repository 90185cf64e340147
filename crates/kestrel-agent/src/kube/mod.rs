//! Kubernetes for the agent: pod metadata for enrichment ([`PodMetadataStore`]) and the
//! Kubernetes events input ([`K8sEventSource`]), both through kube-rs.
//!
//! - [`config`]: the `kubernetes:` section and the `k8s_events` input.
//! - [`metadata`]: node-scoped pod watch, owner resolution, namespace labels, exclusion.
//! - [`events`]: `events.k8s.io/v1` watch that resumes from a checkpointed resourceVersion.
//!
//! Nothing here blocks reading: without API access the agent runs with the metadata found in
//! log paths and says so once.

pub mod config;
pub mod events;
pub mod metadata;

#[cfg(test)]
mod tests;

use ::kube::config::{KubeConfigOptions, Kubeconfig};
use ::kube::{Client, Config};
use tracing::warn;

pub use config::{K8sEventsInput, KubeEnabled, KubernetesConfig};
pub use events::{EventAck, EventCheckpoint, K8sEventBatch, K8sEventSource, K8sEventsError};
pub use metadata::{ApiStatus, MetadataWatches, PodMetadataStore, EXCLUDE_ANNOTATION};

/// Why no Kubernetes client could be made.
#[derive(Debug, thiserror::Error)]
pub enum KubeClientError {
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    #[error("no Kubernetes client configuration (in-cluster or kubeconfig): {0}")]
    Infer(String),
    #[error("kubernetes client: {0}")]
    Client(String),
}

/// A client for the API server: from `config.kubeconfig` when set, else in-cluster, else the
/// usual kubeconfig locations. With `enabled: auto`, a missing configuration gives `Ok(None)`
/// and one warning (the agent runs with path metadata only); with `enabled: true` it is an
/// error; with `enabled: false` the answer is `Ok(None)` without a word.
pub async fn connect(config: &KubernetesConfig) -> Result<Option<Client>, KubeClientError> {
    if config.enabled == KubeEnabled::False {
        return Ok(None);
    }
    match client_config(config)
        .await
        .and_then(|c| Client::try_from(c).map_err(|e| KubeClientError::Client(e.to_string())))
    {
        Ok(client) => Ok(Some(client)),
        Err(e) if config.enabled == KubeEnabled::Auto => {
            warn!(
                error = %e,
                "kubernetes API not configured: running with metadata from log paths only \
                 (namespace, pod, uid, container)"
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

async fn client_config(config: &KubernetesConfig) -> Result<Config, KubeClientError> {
    match &config.kubeconfig {
        Some(path) => {
            let fail = |reason: String| KubeClientError::Kubeconfig {
                path: path.display().to_string(),
                reason,
            };
            let file = Kubeconfig::read_from(path).map_err(|e| fail(e.to_string()))?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| fail(e.to_string()))
        }
        None => Config::infer()
            .await
            .map_err(|e| KubeClientError::Infer(e.to_string())),
    }
}
