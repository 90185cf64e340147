//! The `alerting:` section of the server configuration.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::AlertError;

/// Where alerts go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// The route every alert takes; without one, every receiver gets every alert.
    #[serde(default)]
    pub route: Option<RouteConfig>,
    /// Named receivers.
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
}

/// The routing tree's root (routing by matchers comes with the alerting issue).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Receiver that gets the alerts.
    pub receiver: String,
}

/// A named receiver with one channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    /// A generic JSON webhook.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

/// A generic webhook: a JSON POST per new alert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Extra headers, e.g. `Authorization`.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Attempts before a delivery is given up (and logged as failed).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Time one attempt may take, like `10s`.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Wait before the first retry, doubled after each failure, like `1s`.
    #[serde(default = "default_backoff", deserialize_with = "duration")]
    pub initial_backoff: Duration,
}

fn default_max_attempts() -> u32 {
    6
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_backoff() -> Duration {
    Duration::from_secs(1)
}

/// Reads a duration written with a unit: `500ms`, `30s`, `5m`, `180d`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!("invalid duration {s:?} (write e.g. 30s, 5m): {e}"))
    })
}

impl AlertingConfig {
    /// Checks the whole section and returns every problem at once.
    pub fn validate(&self) -> Result<(), AlertError> {
        let mut problems = Vec::new();
        let mut names = std::collections::HashSet::new();
        for r in &self.receivers {
            if !names.insert(r.name.as_str()) {
                problems.push(format!("receiver {:?} is defined twice", r.name));
            }
            match &r.webhook {
                None => problems.push(format!("receiver {:?} has no channel (webhook)", r.name)),
                Some(w) => {
                    if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                        problems.push(format!(
                            "receiver {:?}: webhook url {:?} must start with http:// or https://",
                            r.name, w.url
                        ));
                    }
                    if w.max_attempts == 0 {
                        problems.push(format!(
                            "receiver {:?}: max_attempts must be at least 1",
                            r.name
                        ));
                    }
                }
            }
        }
        if let Some(route) = &self.route {
            if !names.contains(route.receiver.as_str()) {
                problems.push(format!(
                    "route names receiver {:?}, which is not defined",
                    route.receiver
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(AlertError::Config(problems.join("; ")))
        }
    }

    /// The receivers an alert goes to.
    pub fn receivers_for_alert(&self) -> Vec<&ReceiverConfig> {
        match &self.route {
            Some(route) => self
                .receivers
                .iter()
                .filter(|r| r.name == route.receiver)
                .collect(),
            None => self.receivers.iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_reports_every_problem() {
        let cfg: AlertingConfig = serde_yaml_ng::from_str(
            "route: {receiver: missing}\nreceivers:\n  - name: a\n    webhook: {url: ftp://x, max_attempts: 0}\n  - name: a\n",
        )
        .unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        for needle in [
            "ftp://x",
            "max_attempts",
            "defined twice",
            "no channel",
            "missing",
        ] {
            assert!(err.contains(needle), "{needle} not in {err}");
        }
    }

    #[test]
    fn durations_take_units() {
        let cfg: AlertingConfig = serde_yaml_ng::from_str(
            "receivers:\n  - name: a\n    webhook: {url: 'http://127.0.0.1:1/x', timeout: 250ms}\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            cfg.receivers[0].webhook.as_ref().unwrap().timeout,
            Duration::from_millis(250)
        );
        assert!(serde_yaml_ng::from_str::<AlertingConfig>(
            "receivers:\n  - name: a\n    webhook: {url: 'http://x', timeout: soon}\n"
        )
        .is_err());
    }
}
