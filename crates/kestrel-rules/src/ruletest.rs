//! Rule unit tests: events and the alerts they must raise, written in YAML beside the rules
//! (`kestrel rules test FILE`). Each case runs through a fresh [`Detector`], so stateful rules
//! are tested too, with the events' own time (`stageTimestamp`, a row's `time`) as the clock.
//!
//! Events are audit events unless the file, the case or the event says otherwise with
//! `source:`; an event of another source is a row of its table (see
//! [`OwnedEvent::from_json`]): `{source: dns, time: ..., client_ip: ..., query_name: ...}`.
//!
//! ```yaml
//! rules: [../kestrel_audit_rules.yaml]   # rule files, relative to this file (for the CLI)
//! source: k8s_audit                      # the events' source unless a case or event says
//! defaults:                              # merged into every event of that source (objects deeply)
//!   stage: ResponseComplete
//!   user: {username: alice}
//! cases:
//!   - name: user creates a privileged pod
//!     event: {verb: create, objectRef: {resource: pods, namespace: shop}, ...}
//!     expect: [Kestrel Privileged Container]
//!   - name: three forbidden reads in a minute
//!     events: [{...}, {...}, {...}]      # several events, in order
//!     expect: [Kestrel Forbidden Burst]  # every alert of the case, in firing order
//!   - name: a pod's token lists secrets, then the pod resolves a mining pool
//!     events:
//!       - {verb: list, ...}
//!       - {source: dns, time: "2026-11-20T09:01:00Z", client_ip: 10.244.1.21, query_name: pool.supportxmr.com.}
//!     expect: [...]
//!   - name: a scan
//!     events:                            # `repeat` makes N events, `every` apart in time;
//!       - {source: netflow, repeat: 30, every: 1s, dst_port: "{i}", ...}   # `{i}` is 0..N-1
//!     expect: [Kestrel Port Scan]
//! ```

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::event::{OwnedEvent, Source};
use crate::stateful::Detector;
use crate::RuleSet;

/// A parsed test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Rule files to load, in order, relative to the test file (read by the caller).
    #[serde(default)]
    pub rules: Vec<String>,
    /// The source of the events unless a case or an event says otherwise (default
    /// `k8s_audit`).
    #[serde(default)]
    pub source: Option<String>,
    /// Fields merged into every event of the file's source.
    #[serde(default)]
    pub defaults: Option<serde_yaml_ng::Value>,
    pub cases: Vec<TestCase>,
}

/// One case: an event or a sequence of events, and the alerts expected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    /// The source of the case's events unless an event says otherwise.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub event: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    pub events: Vec<serde_yaml_ng::Value>,
    /// The rules expected to fire, in order (a rule may appear several times).
    pub expect: Vec<String>,
}

/// The outcome of a test file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TestReport {
    pub passed: usize,
    /// One message per failed case.
    pub failures: Vec<String>,
    /// Loaded rules that no case expects to fire.
    pub untested_rules: Vec<String>,
}

/// Parses a test file.
pub fn parse(text: &str) -> Result<TestFile, String> {
    serde_yaml_ng::from_str(text).map_err(|e| format!("invalid rule test file: {e}"))
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn source_named(name: Option<&str>, default: Source) -> Result<Source, String> {
    match name {
        None => Ok(default),
        Some(n) => Source::from_name(n).ok_or_else(|| format!("unknown source `{n}`")),
    }
}

/// Runs every case against `rules`.
pub fn run(rules: &Arc<RuleSet>, file: &TestFile) -> TestReport {
    let mut report = TestReport::default();
    let file_source = match source_named(file.source.as_deref(), Source::K8sAudit) {
        Ok(s) => s,
        Err(e) => {
            report.failures.push(format!("test file: {e}"));
            return report;
        }
    };
    let defaults: Value = file
        .defaults
        .as_ref()
        .and_then(|d| serde_json::to_value(d).ok())
        .unwrap_or(Value::Null);
    let mut expected_somewhere = std::collections::HashSet::new();
    for case in &file.cases {
        expected_somewhere.extend(case.expect.iter().cloned());
        let mut detector = Detector::new(rules.clone());
        let raw: Vec<&serde_yaml_ng::Value> = case.event.iter().chain(&case.events).collect();
        if raw.is_empty() {
            report
                .failures
                .push(format!("{}: no `event` or `events`", case.name));
            continue;
        }
        let case_source = match source_named(case.source.as_deref(), file_source) {
            Ok(s) => s,
            Err(e) => {
                report.failures.push(format!("{}: {e}", case.name));
                continue;
            }
        };
        let mut fired = Vec::new();
        let mut bad = None;
        let mut clock = 0i64;
        let mut expanded = Vec::new();
        for (i, r) in raw.into_iter().enumerate() {
            match serde_json::to_value(r)
                .map_err(|e| e.to_string())
                .and_then(repeat)
            {
                Ok(vs) => expanded.extend(vs.into_iter().map(|v| (i, v))),
                Err(e) => {
                    bad = Some(format!("{}: event {}: {e}", case.name, i + 1));
                    break;
                }
            }
        }
        for (i, v) in expanded {
            if bad.is_some() {
                break;
            }
            let event = event_of(v, case_source, file_source, &defaults);
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    bad = Some(format!("{}: event {}: {e}", case.name, i + 1));
                    break;
                }
            };
            let event = event.as_event();
            // Events without a time keep the clock of the previous one, one nanosecond on.
            clock = event.time().unwrap_or(clock + 1);
            fired.extend(detector.evaluate(&event, clock).into_iter().map(|m| m.rule));
        }
        if let Some(b) = bad {
            report.failures.push(b);
        } else if fired != case.expect {
            report.failures.push(format!(
                "{}: expected {:?}, fired {:?}",
                case.name, case.expect, fired
            ));
        } else {
            report.passed += 1;
        }
    }
    report.untested_rules = rules
        .rules()
        .into_iter()
        .filter(|r| r.active && !expected_somewhere.contains(&r.name))
        .map(|r| r.name)
        .collect();
    report
}

/// An event with `repeat: N` (and `every: <duration>`) as N events, the i-th `i × every`
/// later, with `{i}` in its strings replaced by i.
fn repeat(mut v: Value) -> Result<Vec<Value>, String> {
    let Some(o) = v.as_object_mut() else {
        return Ok(vec![v]);
    };
    let n = match o.remove("repeat") {
        None => return Ok(vec![v]),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| (1..=100_000).contains(&n)) => {
            n.as_u64().unwrap_or(1)
        }
        Some(other) => {
            return Err(format!(
                "`repeat` must be a count from 1 to 100000, not {other}"
            ))
        }
    };
    let every = match o.remove("every") {
        None => 0,
        Some(Value::String(s)) => humantime::parse_duration(&s)
            .map_err(|e| format!("`every`: {e}"))?
            .as_nanos() as i64,
        Some(other) => {
            return Err(format!(
                "`every` must be a duration like \"1s\", not {other}"
            ))
        }
    };
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let mut e = v.clone();
        substitute(&mut e, &i.to_string());
        if let Some(o) = e.as_object_mut() {
            for key in ["time", "stageTimestamp", "requestReceivedTimestamp"] {
                if let Some(t) = o.get_mut(key) {
                    shift(t, every.saturating_mul(i as i64));
                }
            }
        }
        out.push(e);
    }
    Ok(out)
}

fn substitute(v: &mut Value, i: &str) {
    match v {
        Value::String(s) if s.contains("{i}") => {
            let text = s.replace("{i}", i);
            // A value that becomes a whole number (`"{i}"`, `"4{i}"`) is that number.
            *v = match text.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => Value::String(text),
            };
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, i)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, i)),
        _ => {}
    }
}

/// Moves a time (RFC 3339 text or nanoseconds) `by` nanoseconds later.
fn shift(t: &mut Value, by: i64) {
    match t {
        Value::Number(n) => {
            if let Some(x) = n.as_i64() {
                *t = Value::from(x.saturating_add(by));
            }
        }
        Value::String(s) => {
            if let Ok(x) = chrono::DateTime::parse_from_rfc3339(s) {
                let nanos = kestrel_event::time::to_nanos(x.to_utc()).saturating_add(by);
                *s = kestrel_event::time::to_rfc3339(nanos);
            }
        }
        _ => {}
    }
}

/// One test event: its `source` key (else the case's source) says what it is; the defaults
/// apply to events of the file's source.
fn event_of(
    mut v: Value,
    case_source: Source,
    file_source: Source,
    defaults: &Value,
) -> Result<OwnedEvent, String> {
    let named = match v.as_object_mut().and_then(|o| o.remove("source")) {
        Some(Value::String(s)) => Some(s),
        Some(other) => return Err(format!("`source` must be a string, not {other}")),
        None => None,
    };
    let source = source_named(named.as_deref(), case_source)?;
    if source == file_source && !defaults.is_null() {
        let mut base = defaults.clone();
        merge(&mut base, v);
        v = base;
    }
    OwnedEvent::from_json(source, v)
}
