//! Stateful rules: Kestrel's optional keys on a Falco rule (`threshold`, `sequence`,
//! `first_seen`, `baseline`, `suppress`) and the [`Detector`] that keeps their state.
//!
//! The clock is the events' own time, passed in by the caller, so replays and tests behave
//! exactly like live traffic. State is bounded per rule (`max_keys`; the least recently
//! updated keys are evicted first, and evictions are counted) and can be snapshotted as plain
//! serde data that the caller persists and restores: this crate does no I/O.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use kestrel_event::AuditEvent;
use serde::{Deserialize, Serialize};

use crate::eval::Node;
use crate::fields::Extractor;
use crate::{RuleMatch, RuleMatching, RuleSet};

/// Keys kept per rule when the rule does not say (`max_keys`).
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// What a stateful rule counts or remembers, compiled.
#[derive(Debug)]
pub(crate) enum StateKind {
    /// Fires when `count` matches of one group fall within `window`.
    Threshold { count: u64, window: i64 },
    /// Fires when the steps match in order for one group within `within` of the first step.
    Sequence { steps: Vec<Node>, within: i64 },
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
    },
    Sequence {
        /// The next step to match.
        step: usize,
        started: i64,
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
                        KeyState::Threshold { times } => times.capacity() * 8,
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

fn group_key(x: &mut Extractor<'_, '_>, slots: &[usize]) -> String {
    let mut k = String::new();
    for (i, s) in slots.iter().enumerate() {
        if i > 0 {
            k.push('\u{1f}');
        }
        k.push_str(&x.get(*s).render());
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

    /// Evaluates one event at `now` (the event's time, in ns since the epoch).
    pub fn evaluate_audit(&mut self, event: &AuditEvent, now: i64) -> Vec<RuleMatch> {
        let mut out = Vec::new();
        let rules: &RuleSet = &self.rules;
        let state = &mut self.state;
        let evictions = &mut self.evictions;
        rules.each_candidate(event, |r, x| {
            let Some(mut m) = rules.fire(r, x) else {
                return true;
            };
            if r.state.is_none() && r.suppress.is_none() {
                out.push(m);
                return rules.rule_matching() == RuleMatching::All;
            }
            let rs = state.entry(r.rule.clone()).or_default();
            if let Some(spec) = &r.state {
                match step(spec, rs, x, now, evictions) {
                    Some(count) => m.count = count,
                    None => return true,
                }
            }
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

/// Advances a stateful rule whose condition matched; `Some(count)` when it fires.
fn step(
    spec: &StateSpec,
    rs: &mut RuleState,
    x: &mut Extractor<'_, '_>,
    now: i64,
    evictions: &mut u64,
) -> Option<u64> {
    let key = group_key(x, &spec.group_by);
    if !rs.keys.contains_key(&key) {
        *evictions += make_room(&mut rs.keys, spec.max_keys, now, spec.idle());
    }
    let started = *rs.started.get_or_insert(now);
    match &spec.kind {
        StateKind::Threshold { count, window } => {
            let e = rs.keys.entry(key).or_insert(KeyEntry {
                last: now,
                state: KeyState::Threshold {
                    times: VecDeque::new(),
                },
            });
            e.last = now;
            if !matches!(e.state, KeyState::Threshold { .. }) {
                e.state = KeyState::Threshold {
                    times: VecDeque::new(),
                };
            }
            let KeyState::Threshold { times } = &mut e.state else {
                unreachable!("set above")
            };
            times.push_back(now);
            while times
                .front()
                .is_some_and(|t| now.saturating_sub(*t) > *window)
            {
                times.pop_front();
            }
            while times.len() as u64 > *count {
                times.pop_front();
            }
            if times.len() as u64 >= *count {
                let n = times.len() as u64;
                times.clear();
                return Some(n);
            }
            None
        }
        StateKind::Sequence { steps, within } => {
            let (mut next, mut begun) = match rs.keys.get(&key).map(|e| &e.state) {
                Some(KeyState::Sequence { step, started })
                    if now.saturating_sub(*started) <= *within =>
                {
                    (*step, *started)
                }
                _ => (0, now),
            };
            if next < steps.len() && steps[next].eval(x) {
                if next == 0 {
                    begun = now;
                }
                next += 1;
            } else if next > 0 && steps[0].eval(x) {
                // A new first step starts the sequence again.
                begun = now;
                next = 1;
            } else {
                return None;
            }
            if next == steps.len() {
                rs.keys.remove(&key);
                return Some(steps.len() as u64);
            }
            rs.keys.insert(
                key,
                KeyEntry {
                    last: now,
                    state: KeyState::Sequence {
                        step: next,
                        started: begun,
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
            (!seen && now.saturating_sub(started) >= *learn).then_some(1)
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
                return Some(*count);
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
