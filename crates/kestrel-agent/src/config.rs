//! The agent's configuration: one YAML file, checked as a whole so every problem is reported at
//! once. Every field is documented here; `docs/agent.md` shows a complete example.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::pipeline::LineFormat;
use crate::process::{
    FilterConfig, Filters, MultilineConfig, MultilineRules, Processing, RedactionConfig, Redactor,
};
use crate::tail::TailConfig;

/// The whole agent configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Where to send batches.
    pub server: ServerTarget,
    /// Directory for checkpoints and the disk buffer.
    pub data_dir: PathBuf,
    /// The agent's name in every batch; defaults to `$NODE_NAME` (set it from the downward API
    /// in a DaemonSet), else the host name.
    #[serde(default)]
    pub name: Option<String>,
    /// The node name recorded with every record; defaults to the agent's name.
    #[serde(default)]
    pub node: Option<String>,
    /// The cluster name recorded with every record.
    #[serde(default)]
    pub cluster: Option<String>,
    /// What to read.
    pub inputs: Vec<InputConfig>,
    /// How records are grouped into batches.
    #[serde(default)]
    pub batch: BatchConfig,
    /// The disk buffer that absorbs server outages.
    #[serde(default)]
    pub buffer: BufferConfig,
    /// Pod metadata from the Kubernetes API (labels, owner, image, service account) and
    /// exclusion by annotation, label and namespace; see `docs/agent.md`.
    #[serde(default)]
    pub kubernetes: crate::kube::KubernetesConfig,
    /// Secret redaction of messages on the node, before the disk buffer: built-in patterns
    /// (on by default) and rules of your own; see `docs/agent.md`.
    #[serde(default)]
    pub redaction: RedactionConfig,
    /// Address of the agent's own `/healthz` and `/metrics`; `null` turns them off.
    #[serde(default = "default_listen")]
    pub listen: Option<SocketAddr>,
    /// `node` (a DaemonSet: this node's logs) or `cluster` (one agent per cluster: Kubernetes
    /// events); `kestrel agent --mode` overrides it.
    #[serde(default)]
    pub mode: AgentMode,
}

/// What an agent collects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentMode {
    /// One agent per node (DaemonSet): the node's files, journal and kernel log.
    #[default]
    Node,
    /// One agent per cluster (a single-replica Deployment): cluster-wide sources.
    Cluster,
}

impl AgentMode {
    fn as_str(self) -> &'static str {
        match self {
            AgentMode::Node => "node",
            AgentMode::Cluster => "cluster",
        }
    }
}

/// The Kestrel server the agent ships to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTarget {
    /// Base URL, like `https://kestrel.kestrel-system:7070`.
    pub url: String,
    /// File holding the bearer token (role `ingest`); read at start.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for the server, in addition to the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Time allowed for one request, like `30s`.
    #[serde(default = "default_request_timeout", deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Batches sent at the same time.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Longest wait between retries, like `30s` (the wait doubles from 100 ms, with jitter).
    #[serde(default = "default_max_backoff", deserialize_with = "duration")]
    pub max_backoff: Duration,
}

/// One input.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum InputConfig {
    /// Container logs under kubelet's `/var/log/pods`.
    PodLogs(PodLogsInput),
    /// Kubernetes audit log files of a self-managed control plane (the API server's log file
    /// backend), redacted on the node.
    AuditFiles(AuditFilesInput),
    /// kern.log: netfilter packet lines (iptables/nftables `LOG`, Calico policy logging) become
    /// `netflow` records.
    KernLog(KernLogInput),
    /// The systemd journal (`journalctl -o json --follow`) → `journal` records.
    Journal(crate::stream::journal::JournalInput),
    /// The kernel log device `/dev/kmsg`: netfilter packet lines → `netflow` records.
    Kmsg(crate::stream::kmsg::KmsgInput),
    /// Kubernetes events of the whole cluster (`events.k8s.io/v1` watch) → `k8s_event`
    /// records; cluster mode only.
    K8sEvents(crate::kube::K8sEventsInput),
}

impl InputConfig {
    /// The input's name in batches and metrics.
    pub fn name(&self) -> &str {
        match self {
            InputConfig::PodLogs(p) => p.name.as_deref().unwrap_or("pod_logs"),
            InputConfig::AuditFiles(a) => a.name.as_deref().unwrap_or("audit_files"),
            InputConfig::KernLog(k) => k.name.as_deref().unwrap_or("kern_log"),
            InputConfig::Journal(j) => j.name(),
            InputConfig::Kmsg(k) => k.name(),
            InputConfig::K8sEvents(e) => e.name(),
        }
    }

    /// The mode the input runs in.
    pub fn mode(&self) -> AgentMode {
        match self {
            InputConfig::K8sEvents(_) => AgentMode::Cluster,
            _ => AgentMode::Node,
        }
    }
}

/// Audit log files: `<path>` names a file or a glob (rotated files, like
/// `audit-2026-11-20T09-00-01.000.log`, are read to their end too).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilesInput {
    /// The input's name; defaults to `audit_files`.
    #[serde(default)]
    pub name: Option<String>,
    /// Glob of the audit log files.
    #[serde(default = "default_audit_path")]
    pub path: String,
    /// Longest audit event line kept; a longer one is cut and kept aside as a dead letter.
    #[serde(default = "default_audit_max_line_bytes")]
    pub max_line_bytes: usize,
    /// How often the directory is rescanned besides inotify, like `10s`.
    #[serde(default = "default_scan_interval", deserialize_with = "duration")]
    pub scan_interval: Duration,
    /// Drop/keep filters on the event's line (`message` patterns only); none by default:
    /// audit events are only filtered when told here.
    #[serde(default)]
    pub filters: Vec<FilterConfig>,
}

/// kern.log (and its rotations).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernLogInput {
    /// The input's name; defaults to `kern_log`.
    #[serde(default)]
    pub name: Option<String>,
    /// Glob of the files.
    #[serde(default = "default_kern_log_path")]
    pub path: String,
    /// Zone of traditional syslog time stamps (which carry none), in seconds east of UTC.
    #[serde(default)]
    pub utc_offset_secs: i32,
    /// How often the directory is rescanned besides inotify, like `10s`.
    #[serde(default = "default_scan_interval", deserialize_with = "duration")]
    pub scan_interval: Duration,
    /// Drop/keep filters on the line (`message` patterns only).
    #[serde(default)]
    pub filters: Vec<FilterConfig>,
}

/// Container logs: `<path>/<namespace>_<pod>_<uid>/<container>/<n>.log`, CRI or docker
/// json-file lines (told apart per line).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodLogsInput {
    /// The input's name; defaults to `pod_logs`.
    #[serde(default)]
    pub name: Option<String>,
    /// kubelet's pod log directory.
    #[serde(default = "default_pod_log_path")]
    pub path: PathBuf,
    /// Longest line kept; longer lines are cut with a marker and counted.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Namespaces to read; empty means all.
    #[serde(default)]
    pub include_namespaces: Vec<String>,
    /// Namespaces never read.
    #[serde(default)]
    pub exclude_namespaces: Vec<String>,
    /// Containers whose lines are ingress-nginx access logs (stored in `ingress`).
    #[serde(default = "default_ingress_pods")]
    pub ingress: Vec<PodMatch>,
    /// Containers whose lines are CoreDNS query logs (stored in `dns`).
    #[serde(default = "default_dns_pods")]
    pub dns: Vec<PodMatch>,
    /// How often the directory is rescanned besides inotify, like `10s`.
    #[serde(default = "default_scan_interval", deserialize_with = "duration")]
    pub scan_interval: Duration,
    /// Multiline joining (stack traces...): the first rule whose `match` selects a container
    /// applies to it; none by default.
    #[serde(default)]
    pub multiline: Vec<MultilineConfig>,
    /// Drop/keep filters by namespace, pod, container, labels and message; checked in order,
    /// the first that matches decides.
    #[serde(default)]
    pub filters: Vec<FilterConfig>,
}

/// Picks containers by namespace, pod name prefix and container name; an empty field matches
/// anything.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PodMatch {
    /// The namespace, exactly.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The start of the pod's name.
    #[serde(default)]
    pub pod_prefix: Option<String>,
    /// The container's name, exactly.
    #[serde(default)]
    pub container: Option<String>,
}

impl PodMatch {
    /// Whether a container matches.
    pub fn matches(&self, namespace: &str, pod: &str, container: &str) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == namespace)
            && self
                .pod_prefix
                .as_deref()
                .is_none_or(|p| pod.starts_with(p))
            && self.container.as_deref().is_none_or(|c| c == container)
    }
}

/// Batching.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Largest chunk of a file read into one batch, in bytes of log lines.
    #[serde(default = "default_batch_max_bytes")]
    pub max_bytes: usize,
    /// zstd level of batches (1 fastest … 19 smallest).
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_bytes: default_batch_max_bytes(),
            zstd_level: default_zstd_level(),
        }
    }
}

/// The disk buffer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Bytes of compressed batches the buffer holds at most; when full, reading pauses until
    /// the server acknowledges some.
    #[serde(default = "default_buffer_max_bytes")]
    pub max_bytes: u64,
    /// Size of one buffer segment file.
    #[serde(default = "default_buffer_segment_bytes")]
    pub segment_bytes: u64,
    /// fsync the buffer before a batch is sent, so a batch the server may have stored survives
    /// a power loss with its identity (off: only a process crash is covered).
    #[serde(default = "yes")]
    pub fsync: bool,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            max_bytes: default_buffer_max_bytes(),
            segment_bytes: default_buffer_segment_bytes(),
            fsync: true,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 7071)))
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_concurrency() -> usize {
    4
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_pod_log_path() -> PathBuf {
    PathBuf::from("/var/log/pods")
}
fn default_max_line_bytes() -> usize {
    256 * 1024
}
fn default_scan_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_audit_path() -> String {
    "/var/log/kubernetes/audit/*.log".into()
}
fn default_audit_max_line_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_kern_log_path() -> String {
    "/var/log/kern.log*".into()
}
fn default_ingress_pods() -> Vec<PodMatch> {
    vec![PodMatch {
        namespace: Some("ingress-nginx".into()),
        pod_prefix: Some("ingress-nginx-controller".into()),
        container: Some("controller".into()),
    }]
}
fn default_dns_pods() -> Vec<PodMatch> {
    vec![PodMatch {
        namespace: Some("kube-system".into()),
        pod_prefix: Some("coredns".into()),
        container: Some("coredns".into()),
    }]
}
fn default_batch_max_bytes() -> usize {
    1024 * 1024
}
fn default_zstd_level() -> i32 {
    1
}
fn default_buffer_max_bytes() -> u64 {
    1024 * 1024 * 1024
}
fn default_buffer_segment_bytes() -> u64 {
    16 * 1024 * 1024
}

/// A duration written with a unit, like `30s` or `5m`.
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
}

impl AgentConfig {
    /// Parses YAML and checks it; every problem is listed in the error.
    pub fn from_yaml(text: &str) -> Result<AgentConfig, ConfigError> {
        Self::from_yaml_in_mode(text, None)
    }

    /// Parses YAML, sets `mode` when given (the `--mode` flag), and checks the result.
    pub fn from_yaml_in_mode(
        text: &str,
        mode: Option<AgentMode>,
    ) -> Result<AgentConfig, ConfigError> {
        let mut config: AgentConfig =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError(vec![e.to_string()]))?;
        if let Some(mode) = mode {
            config.mode = mode;
        }
        config.validate()?;
        Ok(config)
    }

    /// Every problem of a parsed configuration at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if !(self.server.url.starts_with("http://") || self.server.url.starts_with("https://")) {
            problems.push(format!(
                "server.url {:?} must start with http:// or https://",
                self.server.url
            ));
        }
        if self.server.client_cert_file.is_some() != self.server.client_key_file.is_some() {
            problems.push(
                "server.client_cert_file and server.client_key_file must be given together".into(),
            );
        }
        if self.server.concurrency == 0 {
            problems.push("server.concurrency must be at least 1".into());
        }
        if self.inputs.is_empty() {
            problems.push("inputs: at least one input is needed".into());
        }
        let mut names = std::collections::HashSet::new();
        for input in &self.inputs {
            if !names.insert(input.name().to_string()) {
                problems.push(format!(
                    "inputs: two inputs are named {:?}; give each a distinct `name`",
                    input.name()
                ));
            }
            if input.mode() != self.mode {
                problems.push(format!(
                    "inputs.{}: a {} input runs in {} mode, and this agent runs in {} mode{}",
                    input.name(),
                    input_type(input),
                    input.mode().as_str(),
                    self.mode.as_str(),
                    match input.mode() {
                        AgentMode::Cluster => " (run one `kestrel agent --mode cluster` per cluster: every node would ship the same events)",
                        AgentMode::Node => " (node inputs belong to the DaemonSet's agents)",
                    }
                ));
            }
            let (max_line_bytes, pattern) = match input {
                InputConfig::PodLogs(p) => (p.max_line_bytes, None),
                InputConfig::AuditFiles(a) => (a.max_line_bytes, Some(&a.path)),
                InputConfig::KernLog(k) => (default_max_line_bytes(), Some(&k.path)),
                InputConfig::Journal(j) => {
                    problems.extend(j.problems());
                    continue;
                }
                InputConfig::Kmsg(k) => {
                    problems.extend(k.problems());
                    continue;
                }
                InputConfig::K8sEvents(e) => {
                    problems.extend(e.problems().into_iter().map(|p| format!("inputs.{p}")));
                    continue;
                }
            };
            if let Some(p) = pattern {
                if let Err(e) = glob::Pattern::new(p) {
                    problems.push(format!("inputs.{}.path {p:?}: {e}", input.name()));
                }
            }
            if self.batch.max_bytes <= max_line_bytes + 64 {
                problems.push(format!(
                    "batch.max_bytes ({}) must exceed inputs.{}.max_line_bytes ({max_line_bytes}) by more than 64, so a batch can hold the longest line",
                    self.batch.max_bytes,
                    input.name(),
                ));
            }
            if matches!(input, InputConfig::PodLogs(p) if p.max_line_bytes < 64) {
                problems.push(format!(
                    "inputs.{}.max_line_bytes must be at least 64",
                    input.name()
                ));
            }
        }
        if self.batch.max_bytes < 4096 {
            problems.push("batch.max_bytes must be at least 4096".into());
        }
        if !(1..=19).contains(&self.batch.zstd_level) {
            problems.push("batch.zstd_level must be between 1 and 19".into());
        }
        if self.buffer.max_bytes < self.buffer.segment_bytes {
            problems.push("buffer.max_bytes must be at least buffer.segment_bytes".into());
        }
        problems.extend(self.kubernetes.problems());
        if let Err(p) = Redactor::new(&self.redaction) {
            problems.extend(p);
        }
        for input in &self.inputs {
            if let Err(p) = self.input_processing(input, None) {
                problems.extend(p);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(problems))
        }
    }

    /// The agent's name: configured, else `$NODE_NAME`, else the host name.
    pub fn agent_name(&self) -> String {
        self.name
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()))
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
            })
            .unwrap_or_else(|| "kestrel-agent".into())
    }

    /// The compiled multiline rules, filters and redaction of an input.
    pub fn processing(&self, input: &InputConfig) -> Result<Processing, ConfigError> {
        let redactor = Redactor::new(&self.redaction).map_err(ConfigError)?;
        self.input_processing(input, Some(Arc::new(redactor)))
            .map_err(ConfigError)
    }

    /// Compiles an input's processing with `redactor` (the shared one; none: a disabled one,
    /// for validation).
    fn input_processing(
        &self,
        input: &InputConfig,
        redactor: Option<Arc<Redactor>>,
    ) -> Result<Processing, Vec<String>> {
        let name = input.name();
        let (multiline, filters, pods): (&[MultilineConfig], &[FilterConfig], bool) = match input {
            InputConfig::PodLogs(p) => (&p.multiline, &p.filters, true),
            InputConfig::AuditFiles(a) => (&[], &a.filters, false),
            InputConfig::KernLog(k) => (&[], &k.filters, false),
            // Stream inputs take neither multiline rules nor filters (yet).
            InputConfig::Journal(_) | InputConfig::Kmsg(_) | InputConfig::K8sEvents(_) => {
                (&[], &[], false)
            }
        };
        let multiline = MultilineRules::new(name, multiline);
        let filters = Filters::new(name, filters, pods);
        match (multiline, filters) {
            (Ok(m), Ok(f)) => Ok(Processing {
                multiline: Arc::new(m),
                filters: Arc::new(f),
                redactor: redactor.unwrap_or_else(|| Arc::new(Redactor::disabled())),
            }),
            (m, f) => Err(m
                .err()
                .into_iter()
                .flatten()
                .chain(f.err().into_iter().flatten())
                .collect()),
        }
    }

    /// What to tail for a file input, how its lines read, and the pod log settings the
    /// pipeline uses (neutral ones for inputs that are not pod logs); `None` for the inputs that
    /// are not files (journal, kmsg, Kubernetes events).
    pub fn file_input(
        &self,
        input: &InputConfig,
    ) -> Option<(TailConfig, PodLogsInput, LineFormat)> {
        let absolute = |p: &str| {
            std::path::absolute(p)
                .map(|a| a.display().to_string())
                .unwrap_or_else(|_| p.to_string())
        };
        let plain =
            |name: &Option<String>, max_line_bytes: usize, scan_interval: Duration| PodLogsInput {
                name: name.clone(),
                path: PathBuf::new(),
                max_line_bytes,
                include_namespaces: Vec::new(),
                exclude_namespaces: Vec::new(),
                ingress: Vec::new(),
                dns: Vec::new(),
                scan_interval,
                multiline: Vec::new(),
                filters: Vec::new(),
            };
        let (pattern, pods, format) = match input {
            InputConfig::PodLogs(p) => (
                format!("{}/*/*/*.log*", absolute(&p.path.display().to_string())),
                p.clone(),
                LineFormat::Container,
            ),
            InputConfig::AuditFiles(a) => (
                absolute(&a.path),
                plain(&a.name, a.max_line_bytes, a.scan_interval),
                LineFormat::Audit,
            ),
            InputConfig::KernLog(k) => (
                absolute(&k.path),
                plain(&k.name, default_max_line_bytes(), k.scan_interval),
                LineFormat::KernLog {
                    utc_offset_secs: k.utc_offset_secs,
                },
            ),
            InputConfig::Journal(_) | InputConfig::Kmsg(_) | InputConfig::K8sEvents(_) => {
                return None
            }
        };
        let mut tail = TailConfig::new([pattern]);
        tail.max_line_bytes = pods.max_line_bytes;
        tail.max_chunk_bytes = self.batch.max_bytes;
        tail.scan_interval = pods.scan_interval;
        Some((tail, pods, format))
    }
}

/// The `type` of an input, as written in the configuration.
fn input_type(input: &InputConfig) -> &'static str {
    match input {
        InputConfig::PodLogs(_) => "pod_logs",
        InputConfig::AuditFiles(_) => "audit_files",
        InputConfig::KernLog(_) => "kern_log",
        InputConfig::Journal(_) => "journal",
        InputConfig::Kmsg(_) => "kmsg",
        InputConfig::K8sEvents(_) => "k8s_events",
    }
}

/// Problems found in a configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid agent configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimal_config_of_the_issue_works_verbatim() {
        let c = AgentConfig::from_yaml(
            "server:\n  url: http://127.0.0.1:7070\n  token_file: /var/run/kestrel/token\n\
             data_dir: /var/lib/kestrel-agent\ninputs:\n  - type: pod_logs\n    path: /var/log/pods\n",
        )
        .unwrap();
        assert_eq!(c.inputs.len(), 1);
        assert_eq!(c.inputs[0].name(), "pod_logs");
        assert_eq!(c.listen, default_listen());
        assert!(c.buffer.fsync);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = AgentConfig::from_yaml(
            "server:\n  url: ftp://x\n  client_cert_file: /c.pem\n  concurrency: 0\n\
             data_dir: /d\ninputs: []\nbatch:\n  max_bytes: 10\n  zstd_level: 40\n",
        )
        .unwrap_err();
        let text = err.to_string();
        for needle in [
            "server.url",
            "client_key_file",
            "concurrency",
            "at least one input",
            "batch.max_bytes",
            "zstd_level",
        ] {
            assert!(text.contains(needle), "{needle} missing from: {text}");
        }
        assert!(AgentConfig::from_yaml(
            "server: {url: http://x}\ndata_dir: /d\ninputs: []\nbogus: 1\n"
        )
        .unwrap_err()
        .to_string()
        .contains("bogus"));
    }
}
