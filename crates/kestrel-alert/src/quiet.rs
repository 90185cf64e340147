//! Silence is a signal: a sender (a node, an agent, a source of data) that has sent before and
//! then stops for a configured time raises a `SourceQuiet` alert, resolved when data comes again.
//! A node's audit log or container logs going quiet is what an attacker who took the node wants.
//!
//! ```text
//! ingest ─► observe(labels of the data, now) ─► series (check, values of `per`) last seen
//!                                                └► was quiet? ─► Resumed (the alert resolves)
//! tick(now) ─► series not seen for `after` ─► Quiet (a SourceQuiet alert)
//! ```
//! Pure: the caller passes `now` from the alerting clock, so the timings are tested without
//! sleeping. The last-seen times are persisted by the caller (see [`QuietWatch::take_dirty`]),
//! so a restart of the server neither forgets who sent before nor raises alerts for senders
//! it never heard of.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::matcher::{all_match, MatchOp, Matcher};
use crate::model::{fingerprint, Alert, AlertStatus, NewAlert};

/// The `rule` label of the alerts raised here.
pub const QUIET_RULE: &str = "SourceQuiet";

/// One compiled `quiet_sources` entry.
#[derive(Debug, Clone)]
pub struct QuietCheck {
    pub name: Option<String>,
    pub matchers: Vec<Matcher>,
    pub per: Vec<String>,
    pub after: Duration,
    pub priority: String,
}

impl QuietCheck {
    /// What identifies the check across reloads: what it watches and how it splits it (not
    /// `after` or `priority`, which a reload may tune without forgetting the senders).
    fn identity(&self) -> String {
        let matchers: Vec<String> = self.matchers.iter().map(|m| m.to_string()).collect();
        format!(
            "{}|{}|{}",
            self.name.as_deref().unwrap_or(""),
            matchers.join(","),
            self.per.join(",")
        )
    }

    /// The labels of this check's alert for the sender with these `per` values: the rule, the
    /// priority, the check's name, the labels its equality matchers fix, and the `per` labels.
    fn alert_labels(&self, values: &[String]) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        for m in &self.matchers {
            if m.op == MatchOp::Equal && !m.value.is_empty() {
                labels.insert(m.name.clone(), m.value.clone());
            }
        }
        for (name, value) in self.per.iter().zip(values) {
            labels.insert(name.clone(), value.clone());
        }
        if let Some(name) = &self.name {
            labels.insert("check".into(), name.clone());
        }
        labels.insert("rule".into(), QUIET_RULE.into());
        labels.insert("priority".into(), self.priority.clone());
        labels
    }
}

/// A sender's state, as persisted: which check and `per` values, when it last sent, whether
/// it is quiet now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuietSeries {
    /// The check's identity and the sender's `per` values.
    pub key: String,
    pub check: String,
    pub values: Vec<String>,
    pub last_seen: DateTime<Utc>,
    pub quiet: bool,
}

/// What a change of a sender's state asks of alerting.
#[derive(Debug, Clone, PartialEq)]
pub enum QuietChange {
    /// A sender went quiet: record this alert.
    Quiet(Box<NewAlert>),
    /// A quiet sender sent again: resolve the alert with this id.
    Resumed { alert_id: String },
}

/// Senders watched by the `quiet_sources` checks.
#[derive(Debug, Default)]
pub struct QuietWatch {
    checks: Vec<QuietCheck>,
    identities: Vec<String>,
    series: HashMap<String, QuietSeries>,
    dirty: HashSet<String>,
}

fn series_key(identity: &str, values: &[String]) -> String {
    format!("{identity}\u{0}{}", values.join("\u{1}"))
}

impl QuietWatch {
    pub fn new(checks: Vec<QuietCheck>) -> QuietWatch {
        let mut w = QuietWatch::default();
        w.reconfigure(checks);
        w
    }

    /// Takes new checks; senders of checks that stay keep their state, the others are dropped.
    pub fn reconfigure(&mut self, checks: Vec<QuietCheck>) {
        self.identities = checks.iter().map(QuietCheck::identity).collect();
        let known: HashSet<&String> = self.identities.iter().collect();
        self.series.retain(|_, s| known.contains(&s.check));
        self.checks = checks;
    }

    /// Takes persisted senders back (after a restart), for checks still configured.
    pub fn load(&mut self, series: Vec<QuietSeries>) {
        for s in series {
            if self.identities.contains(&s.check) {
                self.series.insert(s.key.clone(), s);
            }
        }
    }

    /// Whether any check is configured (else nothing needs observing).
    pub fn is_active(&self) -> bool {
        !self.checks.is_empty()
    }

    /// Notes data with these labels (`source`, `input`, `node`, `agent`, `cluster`) arriving
    /// at `now`; returns the alerts to resolve for senders that were quiet. Data without one of
    /// a check's `per` labels is not a sender of that check.
    pub fn observe(
        &mut self,
        labels: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Vec<QuietChange> {
        let mut out = Vec::new();
        for (check, identity) in self.checks.iter().zip(&self.identities) {
            if !all_match(&check.matchers, labels) {
                continue;
            }
            let Some(values) = check
                .per
                .iter()
                .map(|p| labels.get(p).filter(|v| !v.is_empty()).cloned())
                .collect::<Option<Vec<String>>>()
            else {
                continue;
            };
            let key = series_key(identity, &values);
            let series = self
                .series
                .entry(key.clone())
                .or_insert_with(|| QuietSeries {
                    key: key.clone(),
                    check: identity.clone(),
                    values: values.clone(),
                    last_seen: now,
                    quiet: false,
                });
            if series.quiet {
                series.quiet = false;
                out.push(QuietChange::Resumed {
                    alert_id: fingerprint(&check.alert_labels(&values)),
                });
            }
            series.last_seen = series.last_seen.max(now);
            self.dirty.insert(key);
        }
        out
    }

    /// The alerts of senders quiet for their check's `after` at `now` (each raised once).
    pub fn check(&mut self, now: DateTime<Utc>) -> Vec<QuietChange> {
        let mut out = Vec::new();
        for (check, identity) in self.checks.iter().zip(&self.identities) {
            let after = chrono::Duration::from_std(check.after).unwrap_or(chrono::Duration::MAX);
            for series in self.series.values_mut() {
                if series.quiet || series.check != *identity || now - series.last_seen < after {
                    continue;
                }
                series.quiet = true;
                self.dirty.insert(series.key.clone());
                out.push(QuietChange::Quiet(Box::new(quiet_alert(
                    check, series, now,
                ))));
            }
        }
        out
    }

    /// Marks the senders whose `SourceQuiet` alert is open as quiet, so data resolves it even
    /// when the persisted state was lost.
    pub fn restore_open_alerts(&mut self, alerts: &[Alert], now: DateTime<Utc>) {
        for a in alerts {
            if a.rule != QUIET_RULE || a.status == AlertStatus::Resolved {
                continue;
            }
            for (check, identity) in self.checks.iter().zip(&self.identities) {
                let Some(values) = check
                    .per
                    .iter()
                    .map(|p| a.labels.get(p).cloned())
                    .collect::<Option<Vec<String>>>()
                else {
                    continue;
                };
                if check.alert_labels(&values) != a.labels {
                    continue;
                }
                let key = series_key(identity, &values);
                let series = self
                    .series
                    .entry(key.clone())
                    .or_insert_with(|| QuietSeries {
                        key,
                        check: identity.clone(),
                        values,
                        last_seen: now,
                        quiet: true,
                    });
                series.quiet = true;
            }
        }
    }

    /// Senders changed since the last call, to persist.
    pub fn take_dirty(&mut self) -> Vec<QuietSeries> {
        let keys: Vec<String> = self.dirty.drain().collect();
        keys.iter()
            .filter_map(|k| self.series.get(k).cloned())
            .collect()
    }

    /// Senders watched.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

fn quiet_alert(check: &QuietCheck, series: &QuietSeries, now: DateTime<Utc>) -> NewAlert {
    let labels = check.alert_labels(&series.values);
    let who: Vec<String> = check
        .per
        .iter()
        .zip(&series.values)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let what: Vec<String> = check.matchers.iter().map(|m| m.to_string()).collect();
    let last = series
        .last_seen
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let output = format!(
        "no data{}{} for {} (last at {last})",
        if what.is_empty() {
            String::new()
        } else {
            format!(" matching {{{}}}", what.join(", "))
        },
        if who.is_empty() {
            String::new()
        } else {
            format!(" from {}", who.join(" "))
        },
        humantime::format_duration(check.after),
    );
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".into(), output.clone());
    annotations.insert("last_seen".into(), last);
    NewAlert {
        rule: QUIET_RULE.into(),
        priority: check.priority.clone(),
        source: "kestrel".into(),
        output,
        tags: vec!["quiet".into()],
        labels,
        annotations,
        event: None,
        time: now.timestamp_nanos_opt().unwrap_or(i64::MAX),
        generator_url: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AlertingConfig;

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-20T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn watch(yaml: &str) -> QuietWatch {
        let cfg: AlertingConfig = serde_yaml_ng::from_str(yaml).unwrap();
        QuietWatch::new(cfg.compile().unwrap().quiet_checks)
    }

    fn mins(n: i64) -> chrono::Duration {
        chrono::Duration::minutes(n)
    }

    #[test]
    fn a_node_that_stops_sending_audit_raises_one_alert_resolved_when_data_resumes() {
        let mut w = watch(
            "quiet_sources:\n  - {match: {source: audit}, per: [node], after: 10m, priority: Critical}\n",
        );
        let t = start();
        let a = labels(&[("source", "audit"), ("node", "node-a"), ("input", "audit")]);
        let b = labels(&[("source", "audit"), ("node", "node-b")]);
        let logs = labels(&[("source", "container_log"), ("node", "node-c")]);
        let no_node = labels(&[("source", "audit"), ("input", "webhook")]);
        for l in [&a, &b, &logs, &no_node] {
            assert!(w.observe(l, t).is_empty());
        }
        assert_eq!(w.len(), 2, "only audit data that names a node is watched");
        // node-a keeps sending, node-b stops.
        w.observe(&a, t + mins(6));
        assert!(w.check(t + mins(9)).is_empty());
        let out = w.check(t + mins(10));
        let [QuietChange::Quiet(alert)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(
            alert.labels,
            labels(&[
                ("node", "node-b"),
                ("priority", "Critical"),
                ("rule", "SourceQuiet"),
                ("source", "audit")
            ])
        );
        assert!(alert.output.contains("node=node-b"), "{}", alert.output);
        // Raised once, not at every tick.
        assert!(w.check(t + mins(11)).is_empty());
        // node-a goes quiet too, later.
        assert_eq!(w.check(t + mins(16)).len(), 1);
        // node-b sends again: its alert resolves; the next silence raises it again.
        let out = w.observe(&b, t + mins(20));
        assert_eq!(
            out,
            [QuietChange::Resumed {
                alert_id: fingerprint(&alert.labels)
            }]
        );
        assert!(w
            .check(t + mins(29))
            .iter()
            .all(|c| !matches!(c, QuietChange::Quiet(a) if a.labels["node"] == "node-b")));
        assert_eq!(w.check(t + mins(30)).len(), 1);
    }

    #[test]
    fn state_survives_a_restart_and_a_reload_keeps_senders_of_unchanged_checks() {
        let yaml = "quiet_sources:\n  - {name: agents, per: [agent], after: 5m}\n";
        let mut w = watch(yaml);
        let t = start();
        w.observe(&labels(&[("agent", "node-a"), ("source", "journal")]), t);
        let persisted = w.take_dirty();
        assert_eq!(persisted.len(), 1);
        assert!(w.take_dirty().is_empty());

        // Restarted: the sender is known again and its silence is noticed.
        let mut w = watch(yaml);
        w.load(persisted.clone());
        let out = w.check(t + mins(5));
        let [QuietChange::Quiet(alert)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(alert.labels["check"], "agents");
        assert_eq!(alert.labels["agent"], "node-a");

        // Restarted with the alert open but the state lost: data still resolves it.
        let mut w = watch(yaml);
        let open = Alert {
            id: fingerprint(&alert.labels),
            rule: QUIET_RULE.into(),
            priority: "Warning".into(),
            source: "kestrel".into(),
            status: AlertStatus::Firing,
            output: String::new(),
            tags: vec![],
            labels: alert.labels.clone(),
            annotations: BTreeMap::new(),
            event: None,
            first_seen: String::new(),
            last_seen: String::new(),
            count: 1,
            status_by: None,
            status_at: None,
            generator_url: None,
        };
        w.restore_open_alerts(std::slice::from_ref(&open), t);
        assert_eq!(
            w.observe(&labels(&[("agent", "node-a")]), t + mins(6)),
            [QuietChange::Resumed { alert_id: open.id }]
        );

        // A reload that tunes `after` keeps the sender; one that changes `per` drops it.
        let cfg: AlertingConfig = serde_yaml_ng::from_str(
            "quiet_sources:\n  - {name: agents, per: [agent], after: 1m}\n",
        )
        .unwrap();
        w.reconfigure(cfg.compile().unwrap().quiet_checks);
        assert_eq!(w.len(), 1);
        assert_eq!(w.check(t + mins(7)).len(), 1);
        let cfg: AlertingConfig =
            serde_yaml_ng::from_str("quiet_sources:\n  - {name: agents, per: [node], after: 1m}\n")
                .unwrap();
        w.reconfigure(cfg.compile().unwrap().quiet_checks);
        assert!(w.is_empty());
    }
}
