//! The server configuration (YAML): every section, its defaults, and validation that reports
//! every problem at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kestrel_alert::AlertingConfig;
use serde::{Deserialize, Deserializer};

/// `kestrel server -c FILE` / `kestrel up --config FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Binds loopback only unless told otherwise.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where data, the WAL and the state database live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Name of the cluster this server watches, stored with every event.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Serve HTTPS with this certificate and key (PEM). Without it the server speaks plain HTTP,
    /// which is only right on loopback or behind a TLS proxy.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub query: QueryConfig,
    #[serde(default)]
    pub rules: RulesConfig,
    #[serde(default)]
    pub alerting: AlertingConfig,
}

/// The server's certificate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM file with the CA certificates that sign client certificates. When set, a client
    /// (Falco's `http_output` with `mtls: true`, an agent, the API server's webhook) that
    /// presents a certificate signed by one of them is authenticated with the `ingest` role,
    /// without a token; a certificate from another CA is refused during the handshake. Clients
    /// without a certificate still authenticate with a bearer token.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// Limits and processing of incoming data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest request body accepted (the API server's audit batches are far smaller).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest single audit event; a bigger one is dead-lettered with its metadata only.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    /// Replace Secret values and tokens in audit bodies before anything is stored.
    #[serde(default = "yes")]
    pub redact_secrets: bool,
}

/// Storage behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Rows are sealed into Parquet at least this often, like `5m`.
    #[serde(default = "default_flush_interval", deserialize_with = "duration")]
    pub flush_interval: Duration,
    /// ... or once the WAL segment holds this many bytes.
    #[serde(default = "default_segment_max_bytes")]
    pub segment_max_bytes: u64,
    /// How long re-sent audit events are recognised as duplicates, like `1h`.
    #[serde(default = "default_dedup_window", deserialize_with = "duration")]
    pub dedup_window: Duration,
    /// Days kept per table, like `audit: 180d`.
    #[serde(default)]
    pub retention: std::collections::BTreeMap<String, RetentionDays>,
    /// Ed25519 private key (PKCS#8 PEM, as `openssl genpkey -algorithm ed25519` writes it) that
    /// signs each table's manifest head; without it heads are written unsigned.
    #[serde(default)]
    pub manifest_signing_key_file: Option<PathBuf>,
    /// Ingest of every source but audit answers 503 while the data directory's file system has
    /// less free space than this.
    #[serde(default = "default_reserve_bytes")]
    pub reserve_bytes: u64,
    /// Audit ingest (the API server's webhook drops events after brief retries) answers 503
    /// only below this smaller reserve.
    #[serde(default = "default_audit_reserve_bytes")]
    pub audit_reserve_bytes: u64,
}

/// A retention period written with a `d` unit (`180d`) or as a number of days.
#[derive(Debug, Clone, Copy)]
pub struct RetentionDays(pub u32);

impl<'de> Deserialize<'de> for RetentionDays {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Days(u32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Days(n) => Ok(RetentionDays(n)),
            Raw::Text(s) => s
                .strip_suffix('d')
                .and_then(|n| n.trim().parse().ok())
                .map(RetentionDays)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "invalid retention {s:?}: write days, like 180d"
                    ))
                }),
        }
    }
}

/// Limits of SQL queries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// Rows a query returns at most.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Time a query may run, like `30s`.
    #[serde(default = "default_query_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Memory a query may use.
    #[serde(default = "default_query_memory")]
    pub memory_limit_bytes: usize,
}

/// Which detection rules run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Load the rules Kestrel ships.
    #[serde(default = "yes")]
    pub bundled: bool,
    /// Extra rule files or directories (Falco YAML), loaded after the bundled ones.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// `all` (every matching rule fires) or `first`.
    #[serde(default = "default_rule_matching")]
    pub rule_matching: String,
    /// How often the state of stateful rules (thresholds, sequences, first-seen history,
    /// baselines, suppressions) is saved to `<data_dir>/detector-state.json`, like `30s`. It is
    /// also saved at shutdown; after a crash at most this much state is missing.
    #[serde(default = "default_state_save_interval", deserialize_with = "duration")]
    pub state_save_interval: Duration,
}

fn yes() -> bool {
    true
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7070))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("kestrel-data")
}
fn default_max_body_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_max_event_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_flush_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_segment_max_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_reserve_bytes() -> u64 {
    1024 * 1024 * 1024
}
fn default_audit_reserve_bytes() -> u64 {
    256 * 1024 * 1024
}
fn default_dedup_window() -> Duration {
    Duration::from_secs(3600)
}
fn default_max_rows() -> usize {
    10_000
}
fn default_query_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_query_memory() -> usize {
    512 * 1024 * 1024
}
fn default_state_save_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_rule_matching() -> String {
    "all".into()
}

/// Durations are written with a unit (`30s`, `5m`), the same parser as the alerting section's.
use kestrel_alert::duration;

macro_rules! default_from_serde {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                serde_yaml_ng::from_str("{}").expect("defaults deserialize")
            }
        }
    )*};
}
default_from_serde!(
    ServerConfig,
    IngestConfig,
    StorageConfig,
    QueryConfig,
    RulesConfig
);

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ServerConfig {
    /// Reads and validates a YAML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![format!("cannot read {}: {e}", path.display())],
        })?;
        Self::from_yaml(&text).map_err(|mut e| {
            for p in &mut e.problems {
                *p = format!("{}: {p}", path.display());
            }
            e
        })
    }

    /// Parses and validates YAML text.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let cfg: ServerConfig = if text.trim().is_empty() {
            ServerConfig::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError {
                problems: vec![e.to_string()],
            })?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Returns every problem at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        match self.alerting.validate() {
            Err(kestrel_alert::AlertError::Config(ps)) => {
                problems.extend(ps.into_iter().map(|p| format!("alerting: {p}")));
            }
            Err(e) => problems.push(format!("alerting: {e}")),
            Ok(()) => {}
        }
        for table in self.storage.retention.keys() {
            if kestrel_store::Table::from_name(table).is_none() {
                problems.push(format!("storage.retention: unknown table {table:?}"));
            }
        }
        if !matches!(self.rules.rule_matching.as_str(), "all" | "first") {
            problems.push(format!(
                "rules.rule_matching must be `all` or `first`, not {:?}",
                self.rules.rule_matching
            ));
        }
        if self.rules.state_save_interval.is_zero() {
            problems.push("rules.state_save_interval must be longer than zero".into());
        }
        if self.storage.audit_reserve_bytes > self.storage.reserve_bytes {
            problems.push(
                "storage.audit_reserve_bytes is larger than storage.reserve_bytes: audit must be refused last".into(),
            );
        }
        if let Some(key) = &self.storage.manifest_signing_key_file {
            if let Err(e) = kestrel_store::manifest::load_signing_key(key) {
                problems.push(format!("storage.manifest_signing_key_file: {e}"));
            }
        }
        if self.ingest.max_event_bytes > self.ingest.max_body_bytes {
            problems.push("ingest.max_event_bytes is larger than ingest.max_body_bytes".into());
        }
        if let Some(tls) = &self.tls {
            let files = [("cert_file", &tls.cert_file), ("key_file", &tls.key_file)]
                .into_iter()
                .chain(tls.client_ca_file.iter().map(|f| ("client_ca_file", f)));
            for (what, path) in files {
                if !path.is_file() {
                    problems.push(format!(
                        "tls.{what}: {} is not a readable file",
                        path.display()
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }

    /// The store's configuration derived from this one (reads the signing key).
    pub fn store_config(&self) -> Result<kestrel_store::StoreConfig, ConfigError> {
        let mut c = kestrel_store::StoreConfig::new(&self.data_dir);
        c.reserve_bytes = self.storage.reserve_bytes;
        c.audit_reserve_bytes = self.storage.audit_reserve_bytes;
        if let Some(path) = &self.storage.manifest_signing_key_file {
            c.signing_key = Some(
                kestrel_store::manifest::load_signing_key(path).map_err(|e| ConfigError {
                    problems: vec![format!("storage.manifest_signing_key_file: {e}")],
                })?,
            );
        }
        c.flush_interval = self.storage.flush_interval;
        c.segment_max_bytes = self.storage.segment_max_bytes;
        c.dedup_window = self.storage.dedup_window;
        for (name, days) in &self.storage.retention {
            if let Some(t) = kestrel_store::Table::from_name(name) {
                c.retention_days.insert(t, days.0);
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bind_loopback_and_keep_audit_180_days() {
        let c = ServerConfig::from_yaml("").unwrap();
        assert!(c.listen.ip().is_loopback());
        assert_eq!(c.ingest.max_body_bytes, 16 * 1024 * 1024);
        assert_eq!(c.ingest.max_event_bytes, 4 * 1024 * 1024);
        assert!(c.ingest.redact_secrets);
        assert_eq!(
            c.store_config()
                .unwrap()
                .retention_for(kestrel_store::Table::Audit),
            180
        );
    }

    #[test]
    fn every_problem_is_reported_and_unknown_keys_refused() {
        let err = ServerConfig::from_yaml(
            "storage: {retention: {nope: 3d}}\nrules: {rule_matching: some}\n",
        )
        .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(ServerConfig::from_yaml("listen_addr: 1").is_err());
        let c = ServerConfig::from_yaml("storage: {retention: {audit: 400d}, flush_interval: 10s}")
            .unwrap();
        assert_eq!(
            c.store_config()
                .unwrap()
                .retention_for(kestrel_store::Table::Audit),
            400
        );
    }

    #[test]
    fn the_issue_alertmanager_config_is_accepted_verbatim_and_alerting_problems_are_listed() {
        let c = ServerConfig::from_yaml(
            "alerting:\n  route:\n    receiver: am\n    group_by: [rule]\n    group_wait: 1s\n  receivers:\n    - name: am\n      alertmanager:\n        url: http://127.0.0.1:9093\n",
        )
        .unwrap();
        assert!(c.alerting.receivers[0].alertmanager.is_some());
        let err = ServerConfig::from_yaml(
            "alerting:\n  route: {receiver: nope}\n  receivers: [{name: a}]\nrules: {rule_matching: some}\n",
        )
        .unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
        assert!(
            err.problems
                .iter()
                .filter(|p| p.starts_with("alerting: "))
                .count()
                == 2
        );
    }

    #[test]
    fn the_alertmanager_example_of_the_docs_parses_its_route() {
        let c = ServerConfig::from_yaml(
            "alerting:\n  route:\n    receiver: hook\n  receivers:\n    - name: hook\n      webhook:\n        url: http://127.0.0.1:9/x\n",
        )
        .unwrap();
        assert_eq!(c.alerting.receivers.len(), 1);
    }
}
