//! Rule unit tests: audit events and the alerts they must raise, written in YAML beside the
//! rules (`kestrel rules test FILE`). Each case runs through a fresh [`Detector`], so stateful
//! rules are tested too, with the events' `stageTimestamp` as the clock.
//!
//! ```yaml
//! rules: [../kestrel_audit_rules.yaml]   # rule files, relative to this file (for the CLI)
//! defaults:                              # merged into every event (objects deeply)
//!   stage: ResponseComplete
//!   user: {username: alice}
//! cases:
//!   - name: user creates a privileged pod
//!     event: {verb: create, objectRef: {resource: pods, namespace: shop}, ...}
//!     expect: [Kestrel Privileged Container]
//!   - name: three forbidden reads in a minute
//!     events: [{...}, {...}, {...}]      # several events, in order
//!     expect: [Kestrel Forbidden Burst]  # every alert of the case, in firing order
//! ```

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::stateful::Detector;
use crate::RuleSet;

/// A parsed test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// Rule files to load, in order, relative to the test file (read by the caller).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Fields merged into every event.
    #[serde(default)]
    pub defaults: Option<serde_yaml_ng::Value>,
    pub cases: Vec<TestCase>,
}

/// One case: an event or a sequence of events, and the alerts expected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
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

/// Runs every case against `rules`.
pub fn run(rules: &Arc<RuleSet>, file: &TestFile) -> TestReport {
    let mut report = TestReport::default();
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
        let mut fired = Vec::new();
        let mut bad = None;
        for (i, r) in raw.into_iter().enumerate() {
            let mut v = defaults.clone();
            match serde_json::to_value(r) {
                Ok(ev) if v.is_null() => v = ev,
                Ok(ev) => merge(&mut v, ev),
                Err(e) => {
                    bad = Some(format!("{}: event {}: {e}", case.name, i + 1));
                    break;
                }
            }
            let event: kestrel_event::AuditEvent = match serde_json::from_value(v) {
                Ok(e) => e,
                Err(e) => {
                    bad = Some(format!(
                        "{}: event {} is not an audit event: {e}",
                        case.name,
                        i + 1
                    ));
                    break;
                }
            };
            let now = event
                .event_time()
                .map(kestrel_event::time::to_nanos)
                .unwrap_or(i as i64);
            fired.extend(
                detector
                    .evaluate_audit(&event, now)
                    .into_iter()
                    .map(|m| m.rule),
            );
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
