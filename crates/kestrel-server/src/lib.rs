//! The Kestrel server: ingest endpoints, SQL, alerts and health over HTTP, wired to the store,
//! the rules engine and alerting.

pub mod agent_ingest;
pub mod api;
pub mod auth;
pub mod config;
pub mod console;
pub mod detection;
pub mod falco_ingest;
pub mod ingest;
pub mod metrics;
pub mod rule_test;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use kestrel_alert::{AlertStore, Alerting, SystemClock};
use kestrel_rules::{LoadReport, RuleMatching, RuleSet};
use kestrel_store::Store;
use tokio::net::TcpListener;
use tracing::{info, warn};

pub use auth::{Role, TokenStore};
pub use config::ServerConfig;

/// The rules in force; replaced as a whole when rules are reloaded.
#[derive(Debug)]
pub struct RulesHandle(RwLock<Arc<RuleSet>>);

impl RulesHandle {
    pub fn new(rules: RuleSet) -> Self {
        RulesHandle(RwLock::new(Arc::new(rules)))
    }

    /// The current rule set.
    pub fn load(&self) -> Arc<RuleSet> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the rule set.
    pub fn replace(&self, rules: RuleSet) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
    }
}

/// Everything a request handler needs.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub store: Arc<Store>,
    /// Alert state, routing and notification.
    pub alerting: Arc<Alerting>,
    /// The configuration file, for reloading the `alerting:` section (SIGHUP or API).
    pub config_path: Option<Arc<PathBuf>>,
    pub tokens: Arc<TokenStore>,
    pub rules: Arc<RulesHandle>,
    /// The detector of stateful rules, shared by every ingest path.
    pub detection: Arc<detection::Detection>,
    pub metrics: Arc<metrics::Metrics>,
    pub registry: Arc<metrics::MetricsRegistry>,
}

/// The SQLite file with tokens, alerts and deliveries.
pub fn state_db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("state.db")
}

/// Reads rule files: a file, or every `*.yaml`/`*.yml` of a directory in name order.
pub fn read_rule_sources(path: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    if path.is_dir() {
        for e in std::fs::read_dir(path)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    files
        .into_iter()
        .map(|f| Ok((f.display().to_string(), std::fs::read_to_string(&f)?)))
        .collect()
}

/// The configured rule files as (name, text): the bundled pack, then the configured paths.
pub fn rule_sources(config: &ServerConfig) -> anyhow::Result<Vec<(String, String)>> {
    let mut sources = if config.rules.bundled {
        RuleSet::bundled_sources()
    } else {
        Vec::new()
    };
    for p in &config.rules.paths {
        sources.extend(
            read_rule_sources(p).with_context(|| format!("reading rules from {}", p.display()))?,
        );
    }
    Ok(sources)
}

/// Loads the configured rules: the bundled pack, then the configured paths.
pub fn load_rules(config: &ServerConfig) -> anyhow::Result<(RuleSet, LoadReport)> {
    let sources = rule_sources(config)?;
    let (mut rules, report) = RuleSet::from_sources(&sources);
    if config.rules.rule_matching == "first" {
        rules.set_rule_matching(RuleMatching::First);
    }
    Ok((rules, report))
}

/// A server bound to its address, ready to serve.
#[derive(Debug)]
pub struct Server {
    state: AppState,
    listener: TcpListener,
    tls: Option<RustlsConfig>,
}

impl Server {
    /// Opens the data directory (recovering the store), loads rules and binds the listener.
    pub async fn bind(config: ServerConfig) -> anyhow::Result<Server> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let store_config = config.store_config()?;
        let store = tokio::task::spawn_blocking(move || Store::open(store_config))
            .await?
            .context("opening the store")?;
        let store = Arc::new(store);
        let db = state_db_path(&config.data_dir);
        let alerts = Arc::new(AlertStore::open(&db).context("opening the alert database")?);
        let tokens = Arc::new(TokenStore::open(&db).context("opening the token database")?);
        let (rules, report) = load_rules(&config)?;
        for e in &report.errors {
            warn!("rule error: {e}");
        }
        for w in &report.warnings {
            info!("rule warning: {w}");
        }
        info!(rules = rules.active_len(), "rules loaded");
        let compiled = config
            .alerting
            .compile()
            .context("checking the alerting configuration")?;
        let alerting =
            Alerting::new(&compiled, alerts, Arc::new(SystemClock)).context("starting alerting")?;
        alerting.spawn_driver();
        let rules = Arc::new(RulesHandle::new(rules));
        let detection = Arc::new(detection::Detection::open(&config.data_dir, rules.load()));
        let metrics = Arc::new(metrics::Metrics::default());
        let registry = Arc::new(metrics::MetricsRegistry::new(
            &metrics,
            Arc::clone(&store),
            Arc::clone(&alerting),
            Arc::clone(&detection),
        ));
        let tls = match &config.tls {
            Some(t) => Some(tls_config(t).with_context(|| {
                format!(
                    "loading the TLS certificate {} and key {}{}",
                    t.cert_file.display(),
                    t.key_file.display(),
                    t.client_ca_file
                        .as_ref()
                        .map(|f| format!(" and client CA {}", f.display()))
                        .unwrap_or_default()
                )
            })?),
            None => None,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        if !config.listen.ip().is_loopback() && tls.is_none() {
            warn!(listen = %config.listen, "plain HTTP beyond loopback as configured; set tls or put a TLS proxy in front");
        }
        let state = AppState {
            config: Arc::new(config),
            store,
            alerting,
            config_path: None,
            tokens,
            rules,
            detection,
            metrics,
            registry,
        };
        Ok(Server {
            state,
            listener,
            tls,
        })
    }

    /// `https` when the server terminates TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Remembers the configuration file, so `SIGHUP` and `POST /v1/config/reload` can reload
    /// its `alerting:` section.
    pub fn set_config_path(&mut self, path: PathBuf) {
        self.state.config_path = Some(Arc::new(path));
    }

    /// Serves until `shutdown` completes, then drains requests and seals everything
    /// acknowledged into Parquet.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr();
        info!(%addr, scheme = self.scheme(), "kestrel server listening");
        let app = api::router(self.state.clone());
        self.state
            .detection
            .spawn_saver(self.state.config.rules.state_save_interval);
        #[cfg(unix)]
        tokio::spawn(reload_on_sighup(self.state.clone()));
        match self.tls {
            None => axum::serve(self.listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .context("serving http")?,
            Some(tls) => {
                let handle = axum_server::Handle::new();
                let on_signal = handle.clone();
                tokio::spawn(async move {
                    shutdown.await;
                    on_signal.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
                });
                axum_server::from_tcp_rustls(self.listener.into_std()?, tls)?
                    .handle(handle)
                    .serve(app.into_make_service())
                    .await
                    .context("serving https")?;
            }
        }
        info!("shutting down: saving the state of stateful rules, sealing acknowledged data");
        let detection = Arc::clone(&self.state.detection);
        if let Err(e) = tokio::task::spawn_blocking(move || detection.save()).await? {
            warn!(error = %e, "cannot save the state of stateful rules");
        }
        let store = Arc::clone(&self.state.store);
        tokio::task::spawn_blocking(move || store.shutdown()).await?;
        info!("shutdown complete");
        Ok(())
    }
}

/// The server's TLS settings: its certificate, and when `client_ca_file` is set, client
/// certificates verified against those CAs (optional: clients without one use a token).
fn tls_config(t: &config::TlsConfig) -> anyhow::Result<RustlsConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    // One process-wide TLS provider: ring, which the HTTP client uses too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = CertificateDer::pem_file_iter(&t.cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .context("reading the certificate chain")?;
    let key = PrivateKeyDer::from_pem_file(&t.key_file).context("reading the private key")?;
    let builder = rustls::ServerConfig::builder();
    let builder = match &t.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca_file).context("reading the client CA")? {
                roots
                    .add(cert.context("reading the client CA")?)
                    .context("adding a client CA certificate")?;
            }
            if roots.is_empty() {
                anyhow::bail!("{} holds no certificate", ca_file.display());
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .allow_unauthenticated()
                .build()
                .context("building the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("the certificate does not match the key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

/// Reads the configuration file again and applies its `alerting:` section (other sections
/// need a restart). Returns what changed, or every problem found (and keeps the old one).
pub fn reload_alerting(state: &AppState) -> Result<String, config::ConfigError> {
    let Some(path) = &state.config_path else {
        return Err(config::ConfigError {
            problems: vec!["the server was started without a configuration file".into()],
        });
    };
    let config = ServerConfig::load(path)?;
    let compiled = config.alerting.compile().map_err(|e| config::ConfigError {
        problems: vec![e.to_string()],
    })?;
    state.alerting.reload(&compiled);
    let msg = format!(
        "alerting reloaded from {}: {} receivers, {} routes, {} inhibition rules",
        path.display(),
        compiled.config.receivers.len(),
        compiled.routes.len(),
        compiled.inhibit_rules.len()
    );
    info!("{msg}");
    Ok(msg)
}

#[cfg(unix)]
async fn reload_on_sighup(state: AppState) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        warn!("cannot listen for SIGHUP; reload with POST /v1/config/reload");
        return;
    };
    while hup.recv().await.is_some() {
        if let Err(e) = reload_alerting(&state) {
            warn!(error = %e, "configuration not reloaded; the previous one stays in force");
        }
    }
}
