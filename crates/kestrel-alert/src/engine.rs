//! The dispatcher: routes alerts into notification groups and decides, at each tick, which
//! notifications are due — group wait and interval, repeats, resolutions, silences,
//! inhibition, escalation and resolve timeouts. No I/O and no timers: the caller passes `now`
//! from a [`Clock`], so every timing is testable without sleeping.
//!
//! ```text
//! upsert(alert, now) ─► routes ─► group (route, group labels) ─┐
//! tick(now) ─► timeouts ─► due groups: muted? changed? repeat? ─► Notification ─► receivers
//!                        └► unacknowledged past a tier ─────────► Notification (escalation)
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{CompiledAlerting, InhibitRule};
use crate::matcher::all_match;
use crate::model::{Alert, AlertStatus};
use crate::route::RouteTree;
use crate::silence::Silence;
use crate::time_interval::TimeInterval;

/// Where the time comes from.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told (tests, simulations).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(start))
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += chrono::Duration::from_std(by).expect("duration in range");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum NotifyReason {
    /// New alerts, or alerts resolved, since the group's last notification.
    Update,
    /// Nothing changed, but `repeat_interval` passed.
    Repeat,
    /// Alerts still unacknowledged after a tier's `after` (tier counted from 1).
    Escalation { tier: usize },
}

impl NotifyReason {
    pub fn as_str(self) -> String {
        match self {
            NotifyReason::Update => "update".into(),
            NotifyReason::Repeat => "repeat".into(),
            NotifyReason::Escalation { tier } => format!("escalation {tier}"),
        }
    }
}

/// One message to one receiver about one group of alerts.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub receiver: String,
    /// Identity of the group: route path and group labels.
    pub group_key: String,
    pub group_labels: BTreeMap<String, String>,
    /// `firing` when any alert fires, else `resolved`.
    pub status: &'static str,
    pub reason: NotifyReason,
    /// The alerts, shared with the dispatcher's state: a notification costs a pointer per
    /// alert, not a copy of its labels and annotations.
    #[serde(serialize_with = "shared_alerts")]
    pub alerts: Vec<Arc<Alert>>,
    pub created_at: DateTime<Utc>,
}

impl Notification {
    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .iter()
            .map(|a| &**a)
            .filter(|a| a.status != AlertStatus::Resolved)
    }

    pub fn resolved(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .iter()
            .map(|a| &**a)
            .filter(|a| a.status == AlertStatus::Resolved)
    }

    /// Labels every alert has with the same value.
    pub fn common_labels(&self) -> BTreeMap<String, String> {
        common(self.alerts.iter().map(|a| &a.labels))
    }

    /// Annotations every alert has with the same value.
    pub fn common_annotations(&self) -> BTreeMap<String, String> {
        common(self.alerts.iter().map(|a| &a.annotations))
    }
}

fn shared_alerts<S: serde::Serializer>(alerts: &[Arc<Alert>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(alerts.iter().map(|a| &**a))
}

fn common<'a>(
    mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else {
        return BTreeMap::new();
    };
    let mut out = first.clone();
    for m in maps {
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}

/// What a tick decided.
#[derive(Debug, Default)]
pub struct TickOutput {
    pub notifications: Vec<Notification>,
    /// Alerts resolved by this tick: (id, by whom: `timeout` or `sender`).
    pub resolved: Vec<(String, &'static str)>,
}

/// Why an alert is not notified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "by")]
pub enum Muted {
    Silence { id: String },
    Inhibition { source: String },
}

struct Tracked {
    alert: Arc<Alert>,
    /// When it was last recorded (engine clock), for `resolve_timeout`.
    last_seen: DateTime<Utc>,
    /// The sender's end time (Alertmanager's `endsAt`).
    ends_at: Option<DateTime<Utc>>,
    /// Groups holding it; a resolved alert in none is forgotten.
    groups: usize,
}

#[derive(Debug, Clone)]
struct Escalation {
    /// First notified in this group.
    since: DateTime<Utc>,
    /// Highest tier told so far (index).
    tier: Option<usize>,
    last: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Group {
    route: usize,
    /// The route's receiver when the group was made (a reload may change it).
    receiver: String,
    labels: BTreeMap<String, String>,
    members: BTreeSet<String>,
    next_flush: DateTime<Utc>,
    last_sent: Option<DateTime<Utc>>,
    /// Firing alerts in the last notification sent.
    sent: BTreeSet<String>,
    escalation: BTreeMap<String, Escalation>,
}

type InhibitIndex = Vec<HashMap<Vec<Option<String>>, BTreeSet<String>>>;

fn equal_values(names: &[String], labels: &BTreeMap<String, String>) -> Vec<Option<String>> {
    names.iter().map(|n| labels.get(n).cloned()).collect()
}

/// Alert state for routing and notification, all in memory.
pub struct Engine {
    routes: RouteTree,
    time_intervals: BTreeMap<String, Vec<TimeInterval>>,
    inhibit_rules: Vec<InhibitRule>,
    resolve_timeout: Option<Duration>,
    alerts: HashMap<String, Tracked>,
    groups: BTreeMap<String, Group>,
    silences: Vec<Silence>,
    /// Per inhibition rule: `equal` label values of firing source alerts → those alerts.
    /// Kept up to date on every status change, so muting is a lookup.
    inhibit_sources: InhibitIndex,
    /// Whether any alert came with a sender's end time (else expiry needs no scan).
    any_end_time: bool,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("routes", &self.routes.len())
            .field("alerts", &self.alerts.len())
            .field("groups", &self.groups.len())
            .finish()
    }
}

/// `{a="b", c="d"}`, Alertmanager's way of writing a label set.
pub fn label_string(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

impl Engine {
    pub fn new(config: &CompiledAlerting) -> Engine {
        Engine {
            routes: config.routes.clone(),
            time_intervals: config.time_intervals.clone(),
            inhibit_rules: config.inhibit_rules.clone(),
            resolve_timeout: config.config.resolve_timeout,
            alerts: HashMap::new(),
            groups: BTreeMap::new(),
            silences: Vec::new(),
            inhibit_sources: vec![HashMap::new(); config.inhibit_rules.len()],
            any_end_time: false,
        }
    }

    /// Records whether alert `id` is (still) an inhibition source of each rule.
    fn index_sources(&mut self, id: &str) {
        let Some(t) = self.alerts.get(id) else {
            for sources in &mut self.inhibit_sources {
                for ids in sources.values_mut() {
                    ids.remove(id);
                }
            }
            return;
        };
        let firing = t.alert.status != AlertStatus::Resolved;
        for (rule, sources) in self.inhibit_rules.iter().zip(&mut self.inhibit_sources) {
            if !all_match(&rule.source, &t.alert.labels) {
                continue;
            }
            let key = equal_values(&rule.equal, &t.alert.labels);
            if firing {
                sources.entry(key).or_default().insert(id.to_string());
            } else if let Some(ids) = sources.get_mut(&key) {
                ids.remove(id);
                if ids.is_empty() {
                    sources.remove(&key);
                }
            }
        }
    }

    /// Takes a new configuration: alerts are routed again; groups that keep their key keep
    /// what they sent, so a reload does not notify everything again.
    pub fn reconfigure(&mut self, config: &CompiledAlerting, now: DateTime<Utc>) {
        self.routes = config.routes.clone();
        self.time_intervals = config.time_intervals.clone();
        self.inhibit_rules = config.inhibit_rules.clone();
        self.resolve_timeout = config.config.resolve_timeout;
        self.inhibit_sources = vec![HashMap::new(); self.inhibit_rules.len()];
        let old = std::mem::take(&mut self.groups);
        let ids: Vec<String> = self.alerts.keys().cloned().collect();
        for t in self.alerts.values_mut() {
            t.groups = 0;
        }
        for id in ids {
            self.index_sources(&id);
            if self.alerts[&id].alert.status != AlertStatus::Resolved {
                self.route(&id, now);
            }
        }
        for (key, group) in &mut self.groups {
            if let Some(o) = old.get(key).filter(|o| o.receiver == group.receiver) {
                group.next_flush = o.next_flush;
                group.last_sent = o.last_sent;
                group.sent = o.sent.clone();
                group.escalation = o.escalation.clone();
            }
        }
    }

    /// Replaces the silences in force.
    pub fn set_silences(&mut self, silences: Vec<Silence>) {
        self.silences = silences;
    }

    /// Alerts held (firing, acknowledged, or resolved and not yet notified as such).
    pub fn alert_count(&self) -> usize {
        self.alerts.len()
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Takes an alert as recorded (new, repeated, re-opened or changed in status).
    /// `ends_at` is the sender's end time, if it gave one.
    pub fn upsert(&mut self, alert: Alert, ends_at: Option<DateTime<Utc>>, now: DateTime<Utc>) {
        let id = alert.id.clone();
        let resolved = alert.status == AlertStatus::Resolved;
        self.any_end_time |= ends_at.is_some();
        let mut reopened = false;
        match self.alerts.get_mut(&id) {
            Some(t) => {
                reopened = t.alert.status == AlertStatus::Resolved && !resolved;
                t.alert = Arc::new(alert);
                t.ends_at = ends_at;
                if !resolved {
                    t.last_seen = now;
                }
            }
            None if resolved => return,
            None => {
                self.alerts.insert(
                    id.clone(),
                    Tracked {
                        alert: Arc::new(alert),
                        last_seen: now,
                        ends_at,
                        groups: 0,
                    },
                );
            }
        }
        self.index_sources(&id);
        // An alert already in its groups is a repeat: its labels, and so its groups, are the
        // same. Routing again is for alerts no group holds, or that some groups let go of
        // when they told of its resolution.
        if !resolved && (reopened || self.alerts[&id].groups == 0) {
            self.route(&id, now);
        }
    }

    /// Takes an alert that was already notified before a restart: it joins its groups as sent,
    /// so it is repeated after `repeat_interval` but not notified again at once.
    pub fn restore(&mut self, alert: Alert, now: DateTime<Utc>) {
        let id = alert.id.clone();
        if alert.status == AlertStatus::Resolved {
            return;
        }
        self.upsert(alert, None, now);
        for group in self.groups.values_mut() {
            if group.members.contains(&id) {
                let node = self.routes.node(group.route);
                group.sent.insert(id.clone());
                group.last_sent = Some(now);
                group.next_flush = add(now, node.group_interval);
                group.escalation.entry(id.clone()).or_insert(Escalation {
                    since: now,
                    tier: None,
                    last: now,
                });
            }
        }
    }

    /// Changes an alert's status (acknowledged or resolved by hand).
    pub fn set_status(&mut self, alert: Alert, now: DateTime<Utc>) {
        let ends_at = self.alerts.get(&alert.id).and_then(|t| t.ends_at);
        self.upsert(alert, ends_at, now);
    }

    fn route(&mut self, id: &str, now: DateTime<Utc>) {
        let Some(t) = self.alerts.get(id) else { return };
        let matched = self.routes.matching(&t.alert.labels);
        for r in matched {
            let node = self.routes.node(r);
            let group_labels = node.group_by.group_labels(&self.alerts[id].alert.labels);
            let key = format!("{}:{}", node.path, label_string(&group_labels));
            let group = self.groups.entry(key).or_insert_with(|| Group {
                route: r,
                receiver: node.receiver.clone(),
                labels: group_labels,
                members: BTreeSet::new(),
                next_flush: add(now, node.group_wait),
                last_sent: None,
                sent: BTreeSet::new(),
                escalation: BTreeMap::new(),
            });
            if group.members.insert(id.to_string()) {
                if let Some(t) = self.alerts.get_mut(id) {
                    t.groups += 1;
                }
            }
        }
    }

    /// When the next group is due (escalations and timeouts are checked on every tick).
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.groups.values().map(|g| g.next_flush).min()
    }

    /// Why an alert is muted now, if it is.
    pub fn muted(&self, id: &str, now: DateTime<Utc>) -> Option<Muted> {
        let t = self.alerts.get(id)?;
        self.mute_reason(&t.alert, now)
    }

    fn mute_reason(&self, alert: &Alert, now: DateTime<Utc>) -> Option<Muted> {
        if let Some(s) = self.silences.iter().find(|s| s.mutes(&alert.labels, now)) {
            return Some(Muted::Silence { id: s.id.clone() });
        }
        for (rule, sources) in self.inhibit_rules.iter().zip(&self.inhibit_sources) {
            if !all_match(&rule.target, &alert.labels) {
                continue;
            }
            let source = sources
                .get(&equal_values(&rule.equal, &alert.labels))
                .and_then(|ids| ids.iter().find(|id| **id != alert.id));
            if let Some(s) = source {
                return Some(Muted::Inhibition { source: s.clone() });
            }
        }
        None
    }

    /// Whether route `r`'s notifications are muted at `now` by its time intervals, as in
    /// Alertmanager: inside any of its `mute_time_intervals`, or outside all of its
    /// `active_time_intervals`.
    pub fn time_muted(&self, r: usize, now: DateTime<Utc>) -> bool {
        let node = self.routes.node(r);
        let holds = |names: &[String]| {
            names.iter().any(|n| {
                self.time_intervals
                    .get(n)
                    .is_some_and(|ts| ts.iter().any(|t| t.contains(now)))
            })
        };
        holds(&node.mute_time_intervals)
            || (!node.active_time_intervals.is_empty() && !holds(&node.active_time_intervals))
    }

    /// Runs everything due at `now`.
    pub fn tick(&mut self, now: DateTime<Utc>) -> TickOutput {
        let mut out = TickOutput::default();
        self.expire(now, &mut out);
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_flush <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.flush(&key, now, &mut out);
        }
        self.escalate(now, &mut out);
        out
    }

    fn expire(&mut self, now: DateTime<Utc>, out: &mut TickOutput) {
        if self.resolve_timeout.is_none() && !self.any_end_time {
            return;
        }
        for t in self.alerts.values_mut() {
            if t.alert.status == AlertStatus::Resolved {
                continue;
            }
            let by = if t.ends_at.is_some_and(|e| e <= now) {
                "sender"
            } else if self
                .resolve_timeout
                .is_some_and(|d| add(t.last_seen, d) <= now)
            {
                "timeout"
            } else {
                continue;
            };
            let alert = Arc::make_mut(&mut t.alert);
            alert.status = AlertStatus::Resolved;
            alert.status_by = Some(by.to_string());
            alert.status_at = Some(kestrel_event::time::to_rfc3339(
                now.timestamp_nanos_opt().unwrap_or(i64::MAX),
            ));
            out.resolved.push((t.alert.id.clone(), by));
        }
        let resolved: Vec<String> = out.resolved.iter().map(|(id, _)| id.clone()).collect();
        for id in resolved {
            self.index_sources(&id);
        }
    }

    fn flush(&mut self, key: &str, now: DateTime<Utc>, out: &mut TickOutput) {
        let Some(group) = self.groups.get(key) else {
            return;
        };
        let node = self.routes.node(group.route);
        let mut firing: Vec<&Arc<Alert>> = Vec::new();
        let mut resolved: Vec<&Arc<Alert>> = Vec::new();
        let mut drop = Vec::new();
        for id in &group.members {
            let Some(t) = self.alerts.get(id) else {
                drop.push(id.clone());
                continue;
            };
            if t.alert.status == AlertStatus::Resolved {
                // Resolutions are told only to those told of the firing.
                if group.sent.contains(id) {
                    resolved.push(&t.alert);
                }
                drop.push(id.clone());
            } else if self.mute_reason(&t.alert, now).is_none() {
                firing.push(&t.alert);
            }
        }
        let changed = !resolved.is_empty() || firing.iter().any(|a| !group.sent.contains(&a.id));
        let all_acknowledged = firing.iter().all(|a| a.status == AlertStatus::Acknowledged);
        let repeat = !firing.is_empty()
            && !all_acknowledged
            && group
                .last_sent
                .is_some_and(|t| add(t, node.repeat_interval) <= now);
        // A route muted by its time intervals still evaluates its group (resolved alerts
        // leave it) but sends nothing and records nothing as sent, so what changed is told
        // once the interval ends.
        let send = (changed || repeat) && !self.time_muted(group.route, now);
        let notification = (send && !node.receiver.is_empty()).then(|| {
            let status = if firing.is_empty() {
                "resolved"
            } else {
                "firing"
            };
            Notification {
                receiver: node.receiver.clone(),
                group_key: key.to_string(),
                group_labels: group.labels.clone(),
                status,
                reason: if changed {
                    NotifyReason::Update
                } else {
                    NotifyReason::Repeat
                },
                alerts: firing
                    .iter()
                    .chain(&resolved)
                    .map(|a| Arc::clone(a))
                    .collect(),
                created_at: now,
            }
        });
        // A route without a receiver (the implicit root) tells nobody, so nothing counts as
        // sent: a receiver added by a reload still hears of the alerts.
        let sent: Option<BTreeSet<String>> = (send && !node.receiver.is_empty())
            .then(|| firing.iter().map(|a| a.id.clone()).collect());
        let group_interval = node.group_interval;
        out.notifications.extend(notification);
        let group = self.groups.get_mut(key).expect("group exists");
        if let Some(sent) = sent {
            for id in &sent {
                group.escalation.entry(id.clone()).or_insert(Escalation {
                    since: now,
                    tier: None,
                    last: now,
                });
            }
            group.sent = sent;
            group.last_sent = Some(now);
        }
        for id in &drop {
            group.members.remove(id);
            group.escalation.remove(id);
            group.sent.remove(id);
        }
        group.next_flush = add(now, group_interval);
        if group.members.is_empty() {
            self.groups.remove(key);
        }
        // Resolved alerts no group holds any more are done.
        for id in drop {
            let forget = self.alerts.get_mut(&id).is_some_and(|t| {
                t.groups = t.groups.saturating_sub(1);
                t.groups == 0 && t.alert.status == AlertStatus::Resolved
            });
            if forget {
                self.alerts.remove(&id);
                self.index_sources(&id);
            }
        }
    }

    fn escalate(&mut self, now: DateTime<Utc>, out: &mut TickOutput) {
        let keys: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| {
                !self.routes.node(g.route).escalation.is_empty() && !self.time_muted(g.route, now)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let group = &self.groups[&key];
            let tiers = &self.routes.node(group.route).escalation;
            // tier index → alerts due for it
            let mut due: BTreeMap<usize, Vec<String>> = BTreeMap::new();
            for (id, esc) in &group.escalation {
                let Some(t) = self.alerts.get(id) else {
                    continue;
                };
                if t.alert.status != AlertStatus::Firing
                    || self.mute_reason(&t.alert, now).is_some()
                {
                    continue;
                }
                let Some(tier) = tiers.iter().rposition(|t| add(esc.since, t.after) <= now) else {
                    continue;
                };
                let send = match esc.tier {
                    None => true,
                    Some(told) if tier > told => true,
                    Some(told) => {
                        tier == told
                            && tiers[tier]
                                .repeat_interval
                                .is_some_and(|r| add(esc.last, r) <= now)
                    }
                };
                if send {
                    due.entry(tier).or_default().push(id.clone());
                }
            }
            if due.is_empty() {
                continue;
            }
            let group_labels = group.labels.clone();
            for (tier, ids) in due {
                let alerts: Vec<Arc<Alert>> = ids
                    .iter()
                    .filter_map(|id| self.alerts.get(id).map(|t| Arc::clone(&t.alert)))
                    .collect();
                for receiver in &tiers[tier].receivers {
                    out.notifications.push(Notification {
                        receiver: receiver.clone(),
                        group_key: key.clone(),
                        group_labels: group_labels.clone(),
                        status: "firing",
                        reason: NotifyReason::Escalation { tier: tier + 1 },
                        alerts: alerts.clone(),
                        created_at: now,
                    });
                }
                let group = self.groups.get_mut(&key).expect("group exists");
                for id in &ids {
                    if let Some(e) = group.escalation.get_mut(id) {
                        e.tier = Some(tier);
                        e.last = now;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AlertingConfig;
    use crate::matcher::Matcher;
    use crate::model::fingerprint;

    const T0: &str = "2026-11-20T09:00:00Z";

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(T0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn engine(yaml: &str) -> Engine {
        let cfg: AlertingConfig = serde_yaml_ng::from_str(yaml).unwrap();
        Engine::new(&cfg.compile().unwrap())
    }

    fn alert(pairs: &[(&str, &str)]) -> Alert {
        let labels: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Alert {
            id: fingerprint(&labels),
            rule: labels.get("rule").cloned().unwrap_or_default(),
            priority: labels.get("priority").cloned().unwrap_or_default(),
            source: "k8s_audit".into(),
            status: AlertStatus::Firing,
            output: "out".into(),
            tags: vec![],
            labels,
            annotations: BTreeMap::new(),
            event: None,
            first_seen: T0.into(),
            last_seen: T0.into(),
            count: 1,
            status_by: None,
            status_at: None,
            generator_url: None,
        }
    }

    fn with_status(a: &Alert, status: AlertStatus) -> Alert {
        let mut a = a.clone();
        a.status = status;
        a
    }

    /// (receiver, reason, ids of firing, ids of resolved) of each notification.
    fn summary(out: &TickOutput) -> Vec<(String, String, usize, usize)> {
        out.notifications
            .iter()
            .map(|n| {
                (
                    n.receiver.clone(),
                    n.reason.as_str(),
                    n.firing().count(),
                    n.resolved().count(),
                )
            })
            .collect()
    }

    const RECEIVERS: &str = r#"
receivers:
  - {name: team, webhook: {url: "http://127.0.0.1:1/a"}}
  - {name: lead, webhook: {url: "http://127.0.0.1:1/b"}}
  - {name: cto, webhook: {url: "http://127.0.0.1:1/c"}}
"#;

    #[test]
    fn group_wait_gathers_then_group_interval_then_repeat_and_duplicates_are_not_resent() {
        let mut e = engine(&format!(
            "route: {{receiver: team, group_by: [rule], group_wait: 30s, group_interval: 5m, repeat_interval: 1h}}\n{RECEIVERS}"
        ));
        let mut now = start();
        let a = alert(&[("rule", "Exec"), ("namespace", "shop")]);
        let b = alert(&[("rule", "Exec"), ("namespace", "bank")]);
        let other = alert(&[("rule", "Privileged"), ("namespace", "shop")]);
        e.upsert(a.clone(), None, now);
        assert!(e.tick(now).notifications.is_empty(), "group_wait holds it");
        now += secs(10);
        e.upsert(b.clone(), None, now);
        e.upsert(other.clone(), None, now);
        now += secs(20); // 30s after the first alert of the Exec group
        let out = e.tick(now);
        assert_eq!(summary(&out), [("team".into(), "update".into(), 2, 0)]);
        assert_eq!(out.notifications[0].group_labels["rule"], "Exec");
        now += secs(10); // the Privileged group's own 30s
        assert_eq!(
            summary(&e.tick(now)),
            [("team".into(), "update".into(), 1, 0)]
        );

        // Duplicates change nothing: no notification at the next interval.
        for _ in 0..5 {
            e.upsert(a.clone(), None, now);
        }
        now += secs(300);
        assert!(e.tick(now).notifications.is_empty());
        // A new alert in a notified group waits for group_interval, not group_wait.
        let c = alert(&[("rule", "Exec"), ("namespace", "dev")]);
        e.upsert(c.clone(), None, now);
        now += secs(30);
        assert!(e.tick(now).notifications.is_empty());
        now += secs(270);
        assert_eq!(
            summary(&e.tick(now)),
            [("team".into(), "update".into(), 3, 0)]
        );
        // Nothing changes for an hour: a repeat for each group.
        now += secs(3600);
        let out = e.tick(now);
        assert_eq!(out.notifications.len(), 2);
        assert!(out
            .notifications
            .iter()
            .all(|n| n.reason == NotifyReason::Repeat));
        // Resolving one sends the resolution once, at the group's next flush.
        e.set_status(with_status(&a, AlertStatus::Resolved), now);
        now += secs(300);
        assert_eq!(
            summary(&e.tick(now)),
            [("team".into(), "update".into(), 2, 1)]
        );
        now += secs(300);
        assert!(e.tick(now).notifications.is_empty());
    }

    #[test]
    fn acknowledged_alerts_are_not_repeated() {
        let mut e = engine(&format!(
            "route: {{receiver: team, group_by: ['...'], group_wait: 0s, repeat_interval: 1h}}\n{RECEIVERS}"
        ));
        let mut now = start();
        let a = alert(&[("rule", "Exec")]);
        e.upsert(a.clone(), None, now);
        assert_eq!(e.tick(now).notifications.len(), 1);
        e.set_status(with_status(&a, AlertStatus::Acknowledged), now);
        now += secs(7200);
        assert!(e.tick(now).notifications.is_empty());
    }

    #[test]
    fn silences_mute_while_active_and_inhibition_mutes_targets_with_equal_labels() {
        let mut e = engine(&format!(
            r#"
route: {{receiver: team, group_by: ['...'], group_wait: 0s, group_interval: 1m}}
inhibit_rules:
  - source_matchers: ['priority="Critical"']
    target_matchers: ['priority="Warning"']
    equal: [namespace]
{RECEIVERS}"#
        ));
        let mut now = start();
        e.set_silences(vec![Silence {
            id: "s1".into(),
            matchers: vec![Matcher::parse(r#"namespace="dev""#).unwrap()],
            starts_at: now,
            ends_at: now + chrono::Duration::minutes(10),
            created_by: "alice".into(),
            comment: "maintenance".into(),
            created_at: now,
        }]);
        let dev = alert(&[("rule", "Exec"), ("namespace", "dev")]);
        e.upsert(dev.clone(), None, now);
        assert!(e.tick(now).notifications.is_empty());
        assert_eq!(
            e.muted(&dev.id, now),
            Some(Muted::Silence { id: "s1".into() })
        );
        // When the silence ends, the alert is notified at its group's next flush.
        now += secs(600);
        assert_eq!(e.tick(now).notifications.len(), 1);

        let crit = alert(&[
            ("rule", "Root"),
            ("namespace", "shop"),
            ("priority", "Critical"),
        ]);
        let warn_same = alert(&[
            ("rule", "Exec"),
            ("namespace", "shop"),
            ("priority", "Warning"),
        ]);
        let warn_other = alert(&[
            ("rule", "Exec"),
            ("namespace", "bank"),
            ("priority", "Warning"),
        ]);
        e.upsert(crit.clone(), None, now);
        e.upsert(warn_same.clone(), None, now);
        e.upsert(warn_other.clone(), None, now);
        let out = e.tick(now);
        let ids: BTreeSet<&str> = out
            .notifications
            .iter()
            .flat_map(|n| n.alerts.iter().map(|a| a.id.as_str()))
            .collect();
        assert!(ids.contains(crit.id.as_str()) && ids.contains(warn_other.id.as_str()));
        assert!(!ids.contains(warn_same.id.as_str()), "inhibited");
        assert_eq!(
            e.muted(&warn_same.id, now),
            Some(Muted::Inhibition {
                source: crit.id.clone()
            })
        );
        // Once the source resolves, the target is told.
        e.set_status(with_status(&crit, AlertStatus::Resolved), now);
        now += secs(60);
        let out = e.tick(now);
        let told: Vec<&str> = out
            .notifications
            .iter()
            .flat_map(|n| n.firing().map(|a| a.id.as_str()))
            .collect();
        assert_eq!(told, [warn_same.id.as_str()]);
    }

    #[test]
    fn escalation_tiers_until_acknowledged() {
        let mut e = engine(&format!(
            r#"
route:
  receiver: team
  group_by: ['...']
  group_wait: 0s
  escalation:
    - {{after: 15m, receivers: [lead]}}
    - {{after: 1h, receivers: [cto], repeat_interval: 30m}}
{RECEIVERS}"#
        ));
        let mut now = start();
        let a = alert(&[("rule", "Exec")]);
        let b = alert(&[("rule", "Privileged")]);
        e.upsert(a.clone(), None, now);
        e.upsert(b.clone(), None, now);
        assert_eq!(e.tick(now).notifications.len(), 2);
        now += secs(14 * 60);
        assert!(e.tick(now).notifications.is_empty());
        e.set_status(with_status(&b, AlertStatus::Acknowledged), now);
        now += secs(60);
        let out = e.tick(now);
        assert_eq!(
            summary(&out),
            [("lead".into(), "escalation 1".into(), 1, 0)]
        );
        assert_eq!(out.notifications[0].alerts[0].id, a.id);
        now += secs(45 * 60);
        assert_eq!(
            summary(&e.tick(now)),
            [("cto".into(), "escalation 2".into(), 1, 0)]
        );
        now += secs(29 * 60);
        assert!(e.tick(now).notifications.is_empty());
        now += secs(60);
        assert_eq!(
            summary(&e.tick(now)),
            [("cto".into(), "escalation 2".into(), 1, 0)]
        );
        e.set_status(with_status(&a, AlertStatus::Acknowledged), now);
        now += secs(3600);
        assert!(e.tick(now).notifications.is_empty());
    }

    #[test]
    fn resolve_timeout_and_sender_end_time() {
        let mut e = engine(&format!(
            "resolve_timeout: 1h\nroute: {{receiver: team, group_by: ['...'], group_wait: 0s, group_interval: 1m}}\n{RECEIVERS}"
        ));
        let mut now = start();
        let quiet = alert(&[("rule", "Exec")]);
        let posted = alert(&[("alertname", "KubeDown")]);
        e.upsert(quiet.clone(), None, now);
        e.upsert(
            posted.clone(),
            Some(now + chrono::Duration::minutes(5)),
            now,
        );
        assert_eq!(e.tick(now).notifications.len(), 2);
        now += secs(30 * 60);
        e.upsert(quiet.clone(), None, now); // seen again: the timeout restarts
        let out = e.tick(now);
        assert_eq!(out.resolved, [(posted.id.clone(), "sender")]);
        assert_eq!(summary(&out), [("team".into(), "update".into(), 0, 1)]);
        now += secs(59 * 60);
        assert!(e.tick(now).resolved.is_empty());
        now += secs(60);
        let out = e.tick(now);
        assert_eq!(out.resolved, [(quiet.id.clone(), "timeout")]);
        assert_eq!(out.notifications[0].status, "resolved");
        assert_eq!(e.alert_count(), 0, "resolved and told: forgotten");
    }

    #[test]
    fn time_intervals_hold_a_routes_notifications_until_they_end() {
        let yaml = format!(
            r#"
time_intervals:
  - name: nights
    time_intervals:
      - times: [{{start_time: '00:00', end_time: '08:00'}}]
        location: Asia/Tokyo
  - name: office
    time_intervals:
      - weekdays: ['monday:friday']
        times: [{{start_time: '09:00', end_time: '18:00'}}]
        location: Asia/Tokyo
route:
  receiver: team
  group_by: ['...']
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 1000h
  routes:
    - matchers: ['priority="Warning"']
      active_time_intervals: [office]
      escalation: [{{after: 5m, receivers: [cto]}}]
    - matchers: ['priority="Critical"']
      mute_time_intervals: [nights]
      receiver: lead
{RECEIVERS}"#
        );
        let mut e = engine(&yaml);
        // Friday 2026-11-20 09:00 UTC is 18:00 in Tokyo: the office has just closed.
        let friday = start();
        let warn = alert(&[("rule", "Exec"), ("priority", "Warning")]);
        let crit = alert(&[("rule", "Root"), ("priority", "Critical")]);
        e.upsert(warn.clone(), None, friday);
        e.upsert(crit.clone(), None, friday);
        assert_eq!(
            summary(&e.tick(friday)),
            [("lead".into(), "update".into(), 1, 0)]
        );
        // All weekend the warning's group is evaluated but nothing is sent (nor escalated).
        for hours in [1, 24, 60] {
            assert!(e.tick(friday + secs(hours * 3600)).notifications.is_empty());
        }
        // Monday 00:00 UTC is 09:00 in Tokyo: the warning is told at the group's next flush.
        let monday = DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            summary(&e.tick(monday)),
            [("team".into(), "update".into(), 1, 0)]
        );
        assert_eq!(
            summary(&e.tick(monday + secs(300))),
            [("cto".into(), "escalation 1".into(), 1, 0)]
        );
        // A critical alert at 05:00 in Tokyo waits for the night to end (08:00, 23:00 UTC).
        let early = DateTime::parse_from_rfc3339("2026-11-23T20:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let crit2 = alert(&[("rule", "Root"), ("priority", "Critical"), ("pod", "db-0")]);
        e.upsert(crit2.clone(), None, early);
        assert!(e.tick(early).notifications.is_empty());
        assert!(e
            .tick(early + secs(2 * 3600 + 3540))
            .notifications
            .is_empty());
        let out = e.tick(early + secs(3 * 3600));
        assert_eq!(summary(&out), [("lead".into(), "update".into(), 1, 0)]);
        assert_eq!(out.notifications[0].alerts[0].id, crit2.id);

        // Unknown names and mute times on the root are refused, with the others.
        let bad: AlertingConfig = serde_yaml_ng::from_str(&format!(
            "route: {{receiver: team, mute_time_intervals: [nights], routes: [{{active_time_intervals: [lunch]}}]}}
{RECEIVERS}"
        ))
        .unwrap();
        let err = bad.compile().unwrap_err().to_string();
        assert!(
            err.contains("root route cannot have mute_time_intervals"),
            "{err}"
        );
        assert!(err.contains("\"lunch\", which is not defined"), "{err}");
        assert!(err.contains("\"nights\", which is not defined"), "{err}");
    }

    #[test]
    fn a_reload_tells_new_receivers_of_open_alerts() {
        let mut e = engine("receivers: []\n");
        let now = start();
        let a = alert(&[("rule", "Exec")]);
        e.upsert(a.clone(), None, now);
        assert!(e.tick(now).notifications.is_empty(), "no receiver");
        let cfg: AlertingConfig = serde_yaml_ng::from_str(RECEIVERS).unwrap();
        e.reconfigure(&cfg.compile().unwrap(), now);
        assert_eq!(e.tick(now).notifications.len(), 3, "one per receiver");
    }

    #[test]
    fn a_restart_does_not_notify_again_and_a_reload_keeps_what_was_sent() {
        let yaml = format!(
            "route: {{receiver: team, group_by: [rule], group_wait: 0s, repeat_interval: 1h}}\n{RECEIVERS}"
        );
        let mut e = engine(&yaml);
        let now = start();
        let a = alert(&[("rule", "Exec")]);
        e.restore(a.clone(), now);
        e.upsert(a.clone(), None, now);
        assert!(e.tick(now + secs(60)).notifications.is_empty());
        let cfg: AlertingConfig = serde_yaml_ng::from_str(&yaml).unwrap();
        e.reconfigure(&cfg.compile().unwrap(), now);
        assert!(e.tick(now + secs(600)).notifications.is_empty());
        assert_eq!(e.tick(now + secs(3600)).notifications.len(), 1, "repeat");
    }
}
