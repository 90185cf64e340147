//! Stateful rules: Kestrel's optional keys on a Falco rule (`threshold`, `sequence`,
//! `first_seen`, `baseline`, `suppress`) and the [`Detector`] that keeps their state.
//!
//! The clock is the events' own time, passed in by the caller, so replays and tests behave
//! exactly like live traffic. A sequence's steps may read different sources (an audit request,
//! then a DNS query from the same pod); each source keys the sequence with its own fields. State is bounded per rule (`max_keys`; the least recently
//! updated keys are evicted first, and evictions are counted) and can be snapshotted as plain
//! serde data that the caller persists and restores: this crate does no I/O.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use kestrel_event::AuditEvent;
use serde::{Deserialize, Serialize};

use crate::eval::Node;
use crate::event::{Event, Source};
use crate::fields::{Extractor, Val};
use crate::{RuleMatch, RuleMatching, RuleSet};

/// Keys kept per rule when the rule does not say (`max_keys`).
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// What a stateful rule counts or remembers, compiled.
#[derive(Debug)]
pub(crate) enum StateKind {
    /// Fires when `count` matches of one group fall within `window` (or, with `distinct`,
    /// `count` distinct values of that field).
    Threshold {
        count: u64,
        window: i64,
        distinct: Option<usize>,
    },
    /// Fires when the steps match in order for one group within `within` of the first step.
    Sequence {
        steps: Vec<SeqStep>,
        within: i64,
        /// The group-by slots of each source the steps read.
        keys: Vec<(Source, Vec<usize>)>,
    },
    /// Fires when a group is seen for the first time in `history` (not during `learn`).
    FirstSeen { history: i64, learn: i64 },
    /// Fires when a group's count in the current bucket is an outlier against its history.
    Baseline {
        bucket: i64,
        history: usize,
        warmup: usize,
        threshold: f64,
        min_count: u64,
    },
}

/// One step of a sequence: a condition on events of one source.
#[derive(Debug, Clone)]
pub(crate) struct SeqStep {
    pub source: Source,
    pub node: Node,
}

/// A compiled stateful key (or suppression): what to keep, per which group.
#[derive(Debug)]
pub(crate) struct StateSpec {
    pub kind: StateKind,
    pub group_by: Vec<usize>,
    pub max_keys: usize,
}

#[derive(Debug)]
pub(crate) struct SuppressSpec {
    pub window: i64,
    pub group_by: Vec<usize>,
    pub max_keys: usize,
}

/// The state of one group of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyState {
    Threshold {
        times: VecDeque<i64>,
        /// With `distinct`: the value counted at each of `times`.
        #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
        values: VecDeque<String>,
    },
    Sequence {
        /// The next step to match.
        step: usize,
        started: i64,
        /// Output fields seen at the earlier steps (fields of other sources than the last
        /// step's are rendered from these).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        fields: BTreeMap<String, String>,
    },
    FirstSeen,
    Baseline {
        /// Start of the current bucket.
        bucket: i64,
        count: u64,
        /// Counts of the previous buckets, oldest first.
        history: VecDeque<u64>,
        alerted: bool,
    },
    Suppress {
        until: i64,
        suppressed: u64,
    },
}

/// One group's state and when it was last updated (event time, ns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyEntry {
    pub last: i64,
    pub state: KeyState,
}

/// The state of one rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// Per group key (group-by values joined by U+001F).
    #[serde(default)]
    pub keys: HashMap<String, KeyEntry>,
    /// Suppression windows per group key.
    #[serde(default)]
    pub suppress: HashMap<String, KeyEntry>,
    /// When the rule first matched (start of `first_seen` learning).
    #[serde(default)]
    pub started: Option<i64>,
}

/// Everything a [`Detector`] remembers, as serde data for the caller to persist.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version of this snapshot.
    pub version: u32,
    /// Per rule name.
    pub rules: BTreeMap<String, RuleState>,
    /// Keys evicted because a rule's state was full, since the detector started.
    pub evictions: u64,
}

const SNAPSHOT_VERSION: u32 = 1;

/// Counters of a detector's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateStats {
    /// Keys held, all rules together.
    pub keys: usize,
    /// Keys evicted because a rule's state was full.
    pub evictions: u64,
    /// Estimated heap bytes of the state (maps, keys, per-key histories).
    pub approx_bytes: usize,
}

fn map_bytes(m: &HashMap<String, KeyEntry>) -> usize {
    let slot = std::mem::size_of::<(String, KeyEntry)>() + 1;
    m.capacity() * slot
        + m.iter()
            .map(|(k, e)| {
                k.capacity()
                    + match &e.state {
                        KeyState::Threshold { times, values } => {
                            times.capacity() * 8
                                + values.iter().map(|v| v.capacity() + 24).sum::<usize>()
                        }
                        KeyState::Sequence { fields, .. } => fields
                            .iter()
                            .map(|(k, v)| k.capacity() + v.capacity() + 64)
                            .sum(),
                        KeyState::Baseline { history, .. } => history.capacity() * 8,
                        _ => 0,
                    }
            })
            .sum::<usize>()
}

/// What [`Detector::restore`] kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Rules whose state was restored.
    pub restored: usize,
    /// Rules in the snapshot that are no longer loaded or no longer stateful (dropped).
    pub dropped: Vec<String>,
}

/// Evaluates a [`RuleSet`] with state: stateless rules fire as in
/// [`RuleSet::evaluate_audit`], stateful ones when their state says so, and suppression merges
/// repeated alerts.
#[derive(Debug)]
pub struct Detector {
    rules: Arc<RuleSet>,
    state: HashMap<String, RuleState>,
    evictions: u64,
}

/// The group key: the values joined by U+001F; a list's values joined by commas (so that
/// `ka.sourceips[0]` and `dns.client.ip` make the same key).
fn group_key(x: &mut Extractor<'_, '_>, slots: &[usize]) -> String {
    let mut k = String::new();
    for (i, s) in slots.iter().enumerate() {
        if i > 0 {
            k.push('\u{1f}');
        }
        match x.get(*s) {
            Val::Many(v) => k.push_str(&v.join(",")),
            v => k.push_str(&v.render()),
        }
    }
    k
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The robust z-score of `x` against `history`: 0.6745 · (x − median) / MAD, with the MAD
/// floored at 1 (counts are integers; a flat history would otherwise divide by zero).
pub fn robust_score(x: f64, history: &[u64]) -> f64 {
    let mut h: Vec<f64> = history.iter().map(|&c| c as f64).collect();
    let med = median(&mut h);
    let mut dev: Vec<f64> = h.iter().map(|v| (v - med).abs()).collect();
    let mad = median(&mut dev).max(1.0);
    0.6745 * (x - med) / mad
}

/// Makes room for one more key: drops entries idle longer than `idle` first, then the least
/// recently updated eighth. Returns how many live keys were evicted.
fn make_room(map: &mut HashMap<String, KeyEntry>, max: usize, now: i64, idle: i64) -> u64 {
    if map.len() < max {
        return 0;
    }
    map.retain(|_, e| now.saturating_sub(e.last) <= idle);
    if map.len() < max {
        return 0;
    }
    let mut lasts: Vec<i64> = map.values().map(|e| e.last).collect();
    let n = (map.len() / 8).max(1);
    lasts.select_nth_unstable(n - 1);
    let cut = lasts[n - 1];
    let before = map.len();
    let mut removed = 0;
    map.retain(|_, e| {
        if removed < n && e.last <= cut {
            removed += 1;
            false
        } else {
            true
        }
    });
    (before - map.len()) as u64
}

impl StateSpec {
    /// How long a key may sit idle before it means nothing any more.
    fn idle(&self) -> i64 {
        match &self.kind {
            StateKind::Threshold { window, .. } => *window,
            StateKind::Sequence { within, .. } => *within,
            StateKind::FirstSeen { history, .. } => *history,
            StateKind::Baseline {
                bucket, history, ..
            } => bucket.saturating_mul(*history as i64 + 1),
        }
    }
}

impl Detector {
    pub fn new(rules: impl Into<Arc<RuleSet>>) -> Detector {
        Detector {
            rules: rules.into(),
            state: HashMap::new(),
            evictions: 0,
        }
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Swaps in reloaded rules, keeping the state of rules that are still stateful (by name).
    pub fn set_rules(&mut self, rules: impl Into<Arc<RuleSet>>) {
        self.rules = rules.into();
        let rules = &self.rules;
        self.state.retain(|name, _| rules.is_stateful(name));
    }

    /// Evaluates one audit event at `now` (the event's time, in ns since the epoch).
    pub fn evaluate_audit(&mut self, event: &AuditEvent, now: i64) -> Vec<RuleMatch> {
        self.evaluate(&Event::Audit(event), now)
    }

    /// Evaluates one event of any source at `now` (the event's time, in ns since the epoch):
    /// the rules of its source, and the sequences with a step on its source.
    pub fn evaluate(&mut self, event: &Event<'_>, now: i64) -> Vec<RuleMatch> {
        let mut out = Vec::new();
        let rules: &RuleSet = &self.rules;
        let state = &mut self.state;
        let evictions = &mut self.evictions;
        let source = event.source();
        rules.each_candidate(*event, |r, x| {
            // A rule's condition filters the events of its own source; events of the other
            // sources reach a rule only through its sequence's steps.
            if r.source == source && !r.node.eval(x) {
                return true;
            }
            if r.state.is_none() && r.suppress.is_none() {
                out.push(crate::render(r, x, source, None));
                return rules.rule_matching() == RuleMatching::All;
            }
            let rs = state.entry(r.rule.clone()).or_default();
            let mut m = match &r.state {
                Some(spec) => match step(spec, rs, x, now, evictions, r) {
                    Some((count, captured)) => {
                        let mut m = crate::render(r, x, source, captured.as_ref());
                        m.count = count;
                        m
                    }
                    None => return true,
                },
                None => crate::render(r, x, source, None),
            };
            if let Some(sup) = &r.suppress {
                let key = group_key(x, &sup.group_by);
                let fresh = !rs.suppress.contains_key(&key);
                if fresh {
                    *evictions += make_room(&mut rs.suppress, sup.max_keys, now, sup.window);
                }
                let e = rs.suppress.entry(key).or_insert(KeyEntry {
                    last: now,
                    state: KeyState::Suppress {
                        until: i64::MIN,
                        suppressed: 0,
                    },
                });
                e.last = now;
                if let KeyState::Suppress { until, suppressed } = &mut e.state {
                    if now < *until {
                        *suppressed += m.count;
                        return true;
                    }
                    m.count += *suppressed;
                    *suppressed = 0;
                    *until = now.saturating_add(sup.window);
                } else {
                    e.state = KeyState::Suppress {
                        until: now.saturating_add(sup.window),
                        suppressed: 0,
                    };
                }
            }
            out.push(m);
            rules.rule_matching() == RuleMatching::All
        });
        out
    }

    /// The detector's state, for the caller to persist.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            rules: self
                .state
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            evictions: self.evictions,
        }
    }

    /// Replaces the state by a snapshot; state of rules that are gone is dropped.
    pub fn restore(&mut self, snap: Snapshot) -> RestoreReport {
        let mut report = RestoreReport::default();
        self.state.clear();
        self.evictions = snap.evictions;
        for (name, st) in snap.rules {
            if self.rules.is_stateful(&name) {
                self.state.insert(name, st);
                report.restored += 1;
            } else {
                report.dropped.push(name);
            }
        }
        report
    }

    pub fn stats(&self) -> StateStats {
        StateStats {
            keys: self
                .state
                .values()
                .map(|r| r.keys.len() + r.suppress.len())
                .sum(),
            evictions: self.evictions,
            approx_bytes: self
                .state
                .iter()
                .map(|(name, r)| name.capacity() + map_bytes(&r.keys) + map_bytes(&r.suppress))
                .sum(),
        }
    }
}

/// Output fields of the rule that have a value on this event, added to `fields`.
fn capture(r: &crate::Active, x: &mut Extractor<'_, '_>, fields: &mut BTreeMap<String, String>) {
    for seg in &r.output {
        if let crate::compile::Seg::Field { slot, name } = seg {
            let v = x.get(*slot);
            if *v != Val::NA {
                fields.insert(name.clone(), v.render());
            }
        }
    }
}

/// Advances a stateful rule whose condition matched; when it fires, the count of matches it
/// stands for and, for a sequence, the output fields captured at its earlier steps.
#[allow(clippy::type_complexity)]
fn step(
    spec: &StateSpec,
    rs: &mut RuleState,
    x: &mut Extractor<'_, '_>,
    now: i64,
    evictions: &mut u64,
    r: &crate::Active,
) -> Option<(u64, Option<BTreeMap<String, String>>)> {
    let source = x.event().source();
    let slots = match &spec.kind {
        StateKind::Sequence { keys, .. } => keys
            .iter()
            .find(|(s, _)| *s == source)
            .map_or(&spec.group_by, |(_, k)| k),
        _ => &spec.group_by,
    };
    let key = group_key(x, slots);
    if !rs.keys.contains_key(&key) {
        *evictions += make_room(&mut rs.keys, spec.max_keys, now, spec.idle());
    }
    let started = *rs.started.get_or_insert(now);
    match &spec.kind {
        StateKind::Threshold {
            count,
            window,
            distinct,
        } => {
            let value = match distinct {
                Some(slot) => match x.get(*slot) {
                    Val::NA => return None,
                    v => Some(v.render()),
                },
                None => None,
            };
            let fresh = || KeyState::Threshold {
                times: VecDeque::new(),
                values: VecDeque::new(),
            };
            let e = rs.keys.entry(key).or_insert(KeyEntry {
                last: now,
                state: fresh(),
            });
            e.last = now;
            if !matches!(e.state, KeyState::Threshold { .. }) {
                e.state = fresh();
            }
            let KeyState::Threshold { times, values } = &mut e.state else {
                unreachable!("set above")
            };
            if let Some(v) = value {
                // One entry per value, at its latest time: the window counts distinct values.
                if let Some(i) = values.iter().position(|x| *x == v) {
                    values.remove(i);
                    times.remove(i);
                }
                values.push_back(v);
            }
            times.push_back(now);
            while times
                .front()
                .is_some_and(|t| now.saturating_sub(*t) > *window)
            {
                times.pop_front();
                values.pop_front();
            }
            while times.len() as u64 > *count {
                times.pop_front();
                values.pop_front();
            }
            if times.len() as u64 >= *count {
                let n = times.len() as u64;
                times.clear();
                values.clear();
                return Some((n, None));
            }
            None
        }
        StateKind::Sequence { steps, within, .. } => {
            let (mut next, mut begun) = match rs.keys.get(&key).map(|e| &e.state) {
                Some(KeyState::Sequence { step, started, .. })
                    if now.saturating_sub(*started) <= *within =>
                {
                    (*step, *started)
                }
                _ => (0, now),
            };
            let matches = |i: usize, x: &mut Extractor<'_, '_>| {
                steps[i].source == source && steps[i].node.eval(x)
            };
            let restart = if next < steps.len() && matches(next, x) {
                next == 0
            } else if next > 0 && matches(0, x) {
                // A new first step starts the sequence again.
                true
            } else {
                return None;
            };
            let mut fields = match rs.keys.remove(&key).map(|e| e.state) {
                Some(KeyState::Sequence { fields, .. }) if !restart => fields,
                _ => BTreeMap::new(),
            };
            if restart {
                begun = now;
                next = 1;
            } else {
                next += 1;
            }
            if next == steps.len() {
                return Some((steps.len() as u64, Some(fields)));
            }
            capture(r, x, &mut fields);
            rs.keys.insert(
                key,
                KeyEntry {
                    last: now,
                    state: KeyState::Sequence {
                        step: next,
                        started: begun,
                        fields,
                    },
                },
            );
            None
        }
        StateKind::FirstSeen { history, learn } => {
            let seen = rs
                .keys
                .get(&key)
                .is_some_and(|e| now.saturating_sub(e.last) <= *history);
            rs.keys.insert(
                key,
                KeyEntry {
                    last: now,
                    state: KeyState::FirstSeen,
                },
            );
            (!seen && now.saturating_sub(started) >= *learn).then_some((1, None))
        }
        StateKind::Baseline {
            bucket,
            history,
            warmup,
            threshold,
            min_count,
        } => {
            let b = now - now.rem_euclid(*bucket);
            let e = rs.keys.entry(key).or_insert(KeyEntry {
                last: now,
                state: KeyState::Baseline {
                    bucket: b,
                    count: 0,
                    history: VecDeque::new(),
                    alerted: false,
                },
            });
            e.last = now;
            if !matches!(e.state, KeyState::Baseline { .. }) {
                e.state = KeyState::Baseline {
                    bucket: b,
                    count: 0,
                    history: VecDeque::new(),
                    alerted: false,
                };
            }
            let KeyState::Baseline {
                bucket: cur,
                count,
                history: h,
                alerted,
            } = &mut e.state
            else {
                unreachable!("set above")
            };
            if b > *cur {
                // Close the current bucket, and count the empty ones in between as zeros.
                let gap = ((b - *cur) / *bucket).max(1) as usize;
                h.push_back(*count);
                for _ in 1..gap.min(*history + 1) {
                    h.push_back(0);
                }
                while h.len() > *history {
                    h.pop_front();
                }
                *cur = b;
                *count = 0;
                *alerted = false;
            }
            if b < *cur {
                // A late event for a closed bucket: too late to score.
                return None;
            }
            *count += 1;
            if *alerted || h.len() < *warmup || *count < *min_count {
                return None;
            }
            let hist: Vec<u64> = h.iter().copied().collect();
            if robust_score(*count as f64, &hist) >= *threshold {
                *alerted = true;
                return Some((*count, None));
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_score_of_outliers() {
        let flat = [2, 3, 2, 3, 2, 3, 2];
        assert!(robust_score(3.0, &flat) < 1.0);
        assert!(robust_score(40.0, &flat) > 10.0);
        // A history of zeros: the MAD floor keeps the score finite.
        assert!((robust_score(10.0, &[0, 0, 0]) - 6.745).abs() < 1e-9);
    }

    #[test]
    fn eviction_drops_idle_then_oldest() {
        let mut m: HashMap<String, KeyEntry> = (0..16)
            .map(|i| {
                (
                    i.to_string(),
                    KeyEntry {
                        last: i,
                        state: KeyState::FirstSeen,
                    },
                )
            })
            .collect();
        // Nothing idle: the two oldest go and count as evictions.
        assert_eq!(make_room(&mut m, 16, 16, 100), 2);
        assert_eq!(m.len(), 14);
        assert!(!m.contains_key("0") && !m.contains_key("1"));
        // Idle keys are dropped without counting.
        assert_eq!(make_room(&mut m, 14, 100, 90), 0);
        assert_eq!(m.len(), 6);
    }
}
