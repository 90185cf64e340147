//! Configuration of the agent's Kubernetes metadata (`kubernetes:`) and of the Kubernetes
//! events input (`type: k8s_events`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Whether the agent talks to the Kubernetes API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KubeEnabled {
    /// Use the API when a configuration is found (in-cluster service account, else
    /// `kubeconfig`/`$KUBECONFIG`/`~/.kube/config`); otherwise run with path metadata only and
    /// say so once.
    #[default]
    Auto,
    /// Always use the API: starting fails when no client configuration is found. Lost or
    /// forbidden access at run time still only degrades to path metadata.
    True,
    /// Never use the API: path metadata only.
    False,
}

/// `kubernetes:` — pod metadata from a node-scoped watch of the API server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// `auto` (default), `true` or `false`.
    #[serde(default, deserialize_with = "enabled")]
    pub enabled: KubeEnabled,
    /// The node whose pods are watched; defaults to `$NODE_NAME` (set it from the downward API:
    /// `fieldRef: spec.nodeName`), else the agent's `node`.
    #[serde(default)]
    pub node_name: Option<String>,
    /// A kubeconfig file to use instead of the in-cluster service account.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// How long a deleted pod's metadata is kept, so that the last lines of short-lived pods
    /// still get labels, like `5m`.
    #[serde(default = "default_delete_grace", deserialize_with = "duration")]
    pub delete_grace: Duration,
    /// Namespaces whose pods are read; empty means all.
    #[serde(default)]
    pub include_namespaces: Vec<String>,
    /// Namespaces whose pods are never read.
    #[serde(default)]
    pub exclude_namespaces: Vec<String>,
    /// Pods with any of these labels are not read: `key=value`, or `key` for any value. Pods
    /// annotated `kestrel.io/exclude: "true"` are never read either.
    #[serde(default)]
    pub exclude_pod_labels: Vec<String>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            enabled: KubeEnabled::Auto,
            node_name: None,
            kubeconfig: None,
            delete_grace: default_delete_grace(),
            include_namespaces: Vec::new(),
            exclude_namespaces: Vec::new(),
            exclude_pod_labels: Vec::new(),
        }
    }
}

impl KubernetesConfig {
    /// The node name: `node_name`, else `$NODE_NAME`.
    pub fn node_name(&self) -> Option<String> {
        self.node_name
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok())
            .filter(|n| !n.is_empty())
    }

    /// Problems in this section, for the agent's whole-config validation.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for sel in &self.exclude_pod_labels {
            if LabelSelector::parse(sel).is_none() {
                problems.push(format!(
                    "kubernetes.exclude_pod_labels: {sel:?} is not `key=value` or `key`"
                ));
            }
        }
        problems
    }
}

/// One `exclude_pod_labels` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    pub key: String,
    /// `None` matches any value.
    pub value: Option<String>,
}

impl LabelSelector {
    /// `key=value` or `key`; `None` when the key is empty.
    pub fn parse(s: &str) -> Option<LabelSelector> {
        let (key, value) = match s.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().to_owned())),
            None => (s.trim(), None),
        };
        (!key.is_empty()).then(|| LabelSelector {
            key: key.to_owned(),
            value,
        })
    }
}

/// `type: k8s_events` — Kubernetes events (`events.k8s.io/v1`) of the whole cluster, from a
/// watch that resumes where it stopped. Run it in one agent per cluster (cluster mode).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K8sEventsInput {
    /// The input's name; defaults to `k8s_events`.
    #[serde(default)]
    pub name: Option<String>,
    /// Most events in one batch.
    #[serde(default = "default_max_batch_events")]
    pub max_batch_events: usize,
    /// Longest time an event waits for its batch to fill, like `1s`.
    #[serde(default = "default_max_batch_wait", deserialize_with = "duration")]
    pub max_batch_wait: Duration,
    /// Largest page of a (re-)list of events.
    #[serde(default = "default_list_page_size")]
    pub list_page_size: u32,
}

impl Default for K8sEventsInput {
    fn default() -> Self {
        K8sEventsInput {
            name: None,
            max_batch_events: default_max_batch_events(),
            max_batch_wait: default_max_batch_wait(),
            list_page_size: default_list_page_size(),
        }
    }
}

impl K8sEventsInput {
    /// The input's name in batches and metrics.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("k8s_events")
    }

    /// Problems in this input, for the agent's whole-config validation.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_batch_events == 0 {
            problems.push(format!("{}: max_batch_events must be > 0", self.name()));
        }
        if self.list_page_size == 0 {
            problems.push(format!("{}: list_page_size must be > 0", self.name()));
        }
        problems
    }
}

fn default_delete_grace() -> Duration {
    Duration::from_secs(300)
}
fn default_max_batch_events() -> usize {
    500
}
fn default_max_batch_wait() -> Duration {
    Duration::from_secs(1)
}
fn default_list_page_size() -> u32 {
    500
}

/// `enabled` accepts the YAML booleans as well as `auto`.
fn enabled<'de, D: Deserializer<'de>>(d: D) -> Result<KubeEnabled, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Word(String),
    }
    match Raw::deserialize(d)? {
        Raw::Bool(true) => Ok(KubeEnabled::True),
        Raw::Bool(false) => Ok(KubeEnabled::False),
        Raw::Word(w) => match w.as_str() {
            "auto" => Ok(KubeEnabled::Auto),
            "true" => Ok(KubeEnabled::True),
            "false" => Ok(KubeEnabled::False),
            _ => Err(serde::de::Error::custom(format!(
                "enabled: {w:?} is not auto, true or false"
            ))),
        },
    }
}

/// A duration written with a unit, like `30s` or `5m`.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_section_parses_with_defaults_and_rejects_unknown_keys() {
        let c: KubernetesConfig = serde_yaml_ng::from_str(
            "enabled: true\nnode_name: n1\ndelete_grace: 90s\nexclude_pod_labels: [app=x, debug]\n",
        )
        .unwrap();
        assert_eq!(c.enabled, KubeEnabled::True);
        assert_eq!(c.delete_grace, Duration::from_secs(90));
        assert!(c.problems().is_empty());
        let d: KubernetesConfig = serde_yaml_ng::from_str("node_name: n1").unwrap();
        assert_eq!(d.enabled, KubeEnabled::Auto);
        assert_eq!(d.delete_grace, Duration::from_secs(300));
        let off: KubernetesConfig = serde_yaml_ng::from_str("enabled: false").unwrap();
        assert_eq!(off.enabled, KubeEnabled::False);
        assert!(serde_yaml_ng::from_str::<KubernetesConfig>("enable: true").is_err());
        assert!(serde_yaml_ng::from_str::<KubernetesConfig>("enabled: maybe").is_err());
        let bad: KubernetesConfig =
            serde_yaml_ng::from_str("node_name: n1\nexclude_pod_labels: ['=x']").unwrap();
        assert_eq!(bad.problems().len(), 1);
    }

    #[test]
    fn the_agent_config_takes_a_kubernetes_section() {
        let yaml =
            "server: {url: http://127.0.0.1:7070}\ndata_dir: /tmp/k\ninputs: [{type: pod_logs}]\n\
                    kubernetes:\n  enabled: auto\n  node_name: node-1\n  delete_grace: 2m\n\
                    \x20 exclude_namespaces: [kube-system]\n";
        let config = crate::config::AgentConfig::from_yaml(yaml).unwrap();
        assert_eq!(config.kubernetes.delete_grace, Duration::from_secs(120));
        assert_eq!(config.kubernetes.node_name().as_deref(), Some("node-1"));
        let bad =
            "server: {url: http://127.0.0.1:7070}\ndata_dir: /tmp/k\ninputs: [{type: pod_logs}]\n\
                   kubernetes: {exclude_pod_labels: ['=v']}\n";
        let problems = crate::config::AgentConfig::from_yaml(bad).unwrap_err();
        assert!(
            problems.to_string().contains("exclude_pod_labels"),
            "{problems}"
        );
    }

    #[test]
    fn events_input_parses_with_defaults() {
        let i: K8sEventsInput = serde_yaml_ng::from_str("max_batch_wait: 2s").unwrap();
        assert_eq!(i.name(), "k8s_events");
        assert_eq!(i.max_batch_wait, Duration::from_secs(2));
        assert_eq!(i.max_batch_events, 500);
        assert!(serde_yaml_ng::from_str::<K8sEventsInput>("batch: 1").is_err());
    }
}
