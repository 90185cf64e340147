//! Alerting with Alertmanager's model: an alert's identity is the fingerprint of its labels;
//! a routing tree with matchers, grouping and timings; silences and inhibition; plus what
//! Alertmanager lacks: acknowledgement, escalation, and DingTalk/SMS receivers. Usable alone:
//! nothing here knows the server.
//!
//! ```text
//! NewAlert ─► AlertStore::record (SQLite: count, status) ─► Engine::upsert (routes, groups)
//!                                     Clock ─► Engine::tick ─► Notification ─► Notifier
//!       Notifier: a bounded queue + task per receiver channel ─► provider format ─► retry ─► delivery log
//! ```

pub mod bench;
mod channels;
mod config;
mod engine;
mod inbound;
mod matcher;
mod model;
mod notify;
mod quiet;
mod route;
mod service;
mod silence;
mod store;
mod template;
mod time_interval;

pub use channels::{
    alertmanager_alert, dingtalk_sign, dingtalk_url, pagerduty_body, pagerduty_dedup_key,
    slack_body, webhook_body, AlertmanagerForwarder, HttpPost, Outgoing,
};
pub use config::{
    duration, AlertingConfig, AlertmanagerConfig, ChannelKind, CompiledAlerting, DingTalkConfig,
    EmailConfig, EscalationTierConfig, InhibitRuleConfig, PagerDutyConfig, ReceiverConfig,
    RouteConfig, SlackConfig, SmsConfig, SmtpTls, WebhookConfig,
};
pub use engine::{
    label_string, Clock, Engine, ManualClock, Muted, Notification, NotifyReason, SystemClock,
    TickOutput,
};
pub use inbound::{parse_alertmanager_alerts, InboundAlert};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use model::{fingerprint, Alert, AlertStatus, EventRef, NewAlert};
pub use notify::{Notifier, NotifierStats};
pub use quiet::{QuietChange, QuietCheck, QuietSeries, QuietWatch, QUIET_RULE};
pub use route::{GroupBy, RouteTree};
pub use service::Alerting;
pub use silence::{Silence, SilenceState};
pub use store::{AlertFilter, AlertStore, Delivery, NewDelivery, RuleStats};
pub use template::Templates;
pub use time_interval::{TimeInterval, TimeIntervalConfig, TimeIntervalSpec, TimeRangeConfig};

/// Errors of the alert crate.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alert database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("invalid alert data: {0}")]
    Data(#[from] serde_json::Error),
    #[error("invalid alerting configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    #[error("{0}")]
    Invalid(String),
}
