//! Alerts: rule matches become alerts with an identity (the fingerprint of their labels), are
//! counted when they repeat, kept in SQLite with their status, and sent to receivers with
//! retries and a delivery log.
//!
//! ```text
//! RuleMatch ─► AlertStore::record (new? duplicate?) ─► Notifier queue ─► receivers (retry) ─► deliveries
//! ```

mod config;
mod model;
mod notify;
mod store;

pub use config::{duration, AlertingConfig, ReceiverConfig, RouteConfig, WebhookConfig};
pub use model::{fingerprint, Alert, AlertStatus, EventRef, NewAlert};
pub use notify::{Notifier, NotifierStats};
pub use store::{AlertFilter, AlertStore, Delivery, RuleStats};

/// Errors of the alert crate.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alert database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("invalid alert data: {0}")]
    Data(#[from] serde_json::Error),
    #[error("invalid alerting configuration: {0}")]
    Config(String),
}
