//! Stateful rule keys (`threshold`, `sequence`, `first_seen`, `baseline`, `suppress`) through
//! the [`Detector`], with the events' own time as the clock, bounded state and snapshots.

use kestrel_event::AuditEvent;
use kestrel_rules::{Detector, RuleSet, Snapshot};

const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;
/// 2026-11-20T09:00:00Z.
const T0: i64 = 1_795_165_200 * SEC;

fn ev(
    user: &str,
    verb: &str,
    resource: &str,
    sub: Option<&str>,
    ns: &str,
    code: i32,
) -> AuditEvent {
    serde_json::from_value(serde_json::json!({
        "auditID": "x", "stage": "ResponseComplete", "verb": verb, "requestURI": "/x",
        "user": {"username": user},
        "objectRef": {"resource": resource, "subresource": sub, "namespace": ns, "name": "n"},
        "responseStatus": {"code": code}
    }))
    .unwrap()
}

fn detector(text: &str) -> Detector {
    let (rs, report) = RuleSet::from_sources(&[("s.yaml".to_string(), text.to_string())]);
    assert!(report.is_ok(), "{report}");
    Detector::new(rs)
}

const THRESHOLD: &str = "
- rule: Forbidden burst
  desc: many forbidden requests by one user
  condition: ka.response.code = 403
  output: forbidden burst by %ka.user.name
  priority: WARNING
  source: k8s_audit
  threshold:
    count: 3
    window: 5m
    group_by: [ka.user.name]
";

#[test]
fn threshold_counts_per_group_within_the_window() {
    let mut d = detector(THRESHOLD);
    let forbidden = |u: &str| ev(u, "get", "secrets", None, "a", 403);
    let mut fired = Vec::new();
    // alice: 3 within 5 minutes → one alert with count 3; bob: 2 → none.
    for (t, u) in [
        (0, "alice"),
        (1, "bob"),
        (2, "alice"),
        (3, "bob"),
        (4, "alice"),
    ] {
        for m in d.evaluate_audit(&forbidden(u), T0 + t * MIN) {
            fired.push((t, m.output, m.count));
        }
    }
    assert_eq!(fired, [(4, "forbidden burst by alice".to_string(), 3)]);
    // The window slides: 2 old + 1 new after 6 minutes is not a burst.
    let mut d = detector(THRESHOLD);
    assert!(d.evaluate_audit(&forbidden("carol"), T0).is_empty());
    assert!(d.evaluate_audit(&forbidden("carol"), T0 + MIN).is_empty());
    assert!(d
        .evaluate_audit(&forbidden("carol"), T0 + 7 * MIN)
        .is_empty());
    assert!(d
        .evaluate_audit(&forbidden("carol"), T0 + 8 * MIN)
        .is_empty());
    assert_eq!(d.evaluate_audit(&forbidden("carol"), T0 + 9 * MIN).len(), 1);
    // Stateful rules never fire through the stateless path.
    assert!(d.rules().evaluate_audit(&forbidden("carol")).is_empty());
}

#[test]
fn sequence_fires_on_ordered_steps_by_the_same_key() {
    let text = "
- rule: Admin then exec
  desc: a binding to cluster-admin, then an exec, by the same user within 10 minutes
  condition: ka.verb = create
  output: escalation then exec by %ka.user.name
  priority: CRITICAL
  source: k8s_audit
  sequence:
    within: 10m
    group_by: [ka.user.name]
    steps:
      - ka.target.resource = clusterrolebindings
      - ka.target.resource = pods and ka.target.subresource = exec
";
    let mut d = detector(text);
    let bind = |u: &str| ev(u, "create", "clusterrolebindings", None, "", 201);
    let exec = |u: &str| ev(u, "create", "pods", Some("exec"), "shop", 101);
    // Exec before the binding: nothing. Another user's exec: nothing.
    assert!(d.evaluate_audit(&exec("mallory"), T0).is_empty());
    assert!(d.evaluate_audit(&bind("mallory"), T0 + MIN).is_empty());
    assert!(d.evaluate_audit(&exec("bob"), T0 + 2 * MIN).is_empty());
    let m = d.evaluate_audit(&exec("mallory"), T0 + 3 * MIN);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].output, "escalation then exec by mallory");
    assert_eq!(m[0].count, 2);
    // Too late: the sequence expired.
    assert!(d.evaluate_audit(&bind("eve"), T0).is_empty());
    assert!(d.evaluate_audit(&exec("eve"), T0 + 11 * MIN).is_empty());
    // The index still narrows the rule to creates.
    let x = d.rules().explain("Admin then exec").unwrap();
    assert_eq!(x.verbs.as_deref(), Some(&["create".to_string()][..]));
}

const FIRST_SEEN: &str = "
- rule: First secret read in namespace
  desc: a user reads secrets in a namespace for the first time in 30 days
  condition: ka.verb = get and ka.target.resource = secrets
  output: first secret read by %ka.user.name in %ka.target.namespace
  priority: NOTICE
  source: k8s_audit
  first_seen:
    fields: [ka.user.name, ka.target.namespace]
    history: 30d
    learn: 1h
";

#[test]
fn first_seen_learns_then_alerts_on_new_terms_and_survives_restarts() {
    let mut d = detector(FIRST_SEEN);
    let read = |u: &str, ns: &str| ev(u, "get", "secrets", None, ns, 200);
    // Learning hour: known pairs are recorded silently.
    assert!(d.evaluate_audit(&read("ci", "shop"), T0).is_empty());
    assert!(d
        .evaluate_audit(&read("ci", "shop"), T0 + 30 * MIN)
        .is_empty());
    // After learning: a known pair is quiet, a new one fires once.
    assert!(d
        .evaluate_audit(&read("ci", "shop"), T0 + 2 * 60 * MIN)
        .is_empty());
    let m = d.evaluate_audit(&read("ci", "billing"), T0 + 3 * 60 * MIN);
    assert_eq!(m[0].output, "first secret read by ci in billing");
    assert!(d
        .evaluate_audit(&read("ci", "billing"), T0 + 4 * 60 * MIN)
        .is_empty());

    // A restart restores what was learned from the snapshot (as JSON, as a caller stores it).
    let json = serde_json::to_string(&d.snapshot()).unwrap();
    let snap: Snapshot = serde_json::from_str(&json).unwrap();
    let mut again = detector(FIRST_SEEN);
    let report = again.restore(snap);
    assert_eq!(report.restored, 1);
    assert!(again
        .evaluate_audit(&read("ci", "billing"), T0 + 5 * 60 * MIN)
        .is_empty());
    assert_eq!(
        again
            .evaluate_audit(&read("ci", "payroll"), T0 + 5 * 60 * MIN)
            .len(),
        1
    );
    // Forgotten after the history window: seen "for the first time" again.
    let later = T0 + 40 * 24 * 60 * MIN;
    assert_eq!(again.evaluate_audit(&read("ci", "shop"), later).len(), 1);
    // A snapshot naming a rule that no longer exists is dropped, not applied.
    let mut other = detector(THRESHOLD);
    let report = other.restore(again.snapshot());
    assert_eq!(report.restored, 0);
    assert_eq!(report.dropped, ["First secret read in namespace"]);
}

#[test]
fn baseline_scores_a_burst_against_a_warm_history() {
    let text = "
- rule: Unusual list volume
  desc: a user lists far more than usual
  condition: ka.verb = list
  output: unusual list volume by %ka.user.name
  priority: NOTICE
  source: k8s_audit
  baseline:
    group_by: [ka.user.name]
    bucket: 1m
    history: 30
    warmup: 5
    threshold: 3.5
    min_count: 5
";
    let mut d = detector(text);
    let list = |u: &str| ev(u, "list", "pods", None, "shop", 200);
    let mut alerts = Vec::new();
    // Ten quiet minutes of 2-4 lists per minute, then a burst of 40 in minute 10.
    for minute in 0..11i64 {
        let n = if minute == 10 { 40 } else { 2 + minute % 3 };
        for i in 0..n {
            let t = T0 + minute * MIN + i * SEC;
            for m in d.evaluate_audit(&list("svc"), t) {
                alerts.push((minute, m.count));
            }
        }
    }
    // One alert, in the burst minute, once the count is clearly out of line.
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].0, 10);
    assert!(alerts[0].1 >= 5 && alerts[0].1 < 40, "{alerts:?}");
    // During warm-up nothing fires, however large.
    let mut d = detector(text);
    for i in 0..100 {
        assert!(d.evaluate_audit(&list("new"), T0 + i).is_empty());
    }
}

#[test]
fn suppression_merges_repeats_into_one_alert_with_a_count() {
    let text = "
- rule: Exec
  desc: exec into a pod
  condition: ka.target.subresource = exec
  output: exec by %ka.user.name
  priority: NOTICE
  source: k8s_audit
  suppress:
    window: 10m
    group_by: [ka.user.name]
";
    let mut d = detector(text);
    let exec = |u: &str| ev(u, "create", "pods", Some("exec"), "shop", 101);
    let mut out = Vec::new();
    for (t, u) in [(0, "a"), (1, "a"), (2, "b"), (3, "a"), (12, "a"), (13, "a")] {
        for m in d.evaluate_audit(&exec(u), T0 + t * MIN) {
            out.push((t, m.output, m.count));
        }
    }
    assert_eq!(
        out,
        [
            (0, "exec by a".to_string(), 1),
            (2, "exec by b".to_string(), 1),
            // The two suppressed in the first window are carried by the next alert.
            (12, "exec by a".to_string(), 3),
        ]
    );
    assert_eq!(d.stats().keys, 2);
    // Only stateful rules have state: a plain rule's alerts leave none behind.
    assert_eq!(d.snapshot().rules.len(), 1);
}

#[test]
fn state_is_bounded_and_evictions_are_counted() {
    let text = "
- rule: New user
  desc: d
  condition: ka.verb = get
  output: new %ka.user.name
  priority: INFO
  source: k8s_audit
  first_seen:
    fields: [ka.user.name]
    history: 30d
    max_keys: 100
";
    let mut d = detector(text);
    for i in 0..1000 {
        d.evaluate_audit(&ev(&format!("u{i}"), "get", "pods", None, "a", 200), T0 + i);
    }
    let s = d.stats();
    assert!(s.keys <= 100, "{s:?}");
    assert!(s.evictions >= 900, "{s:?}");
}

#[test]
fn bad_stateful_keys_are_reported_at_the_rule() {
    let text = "
- rule: a
  desc: d
  condition: ka.verb = get
  output: o
  priority: INFO
  source: k8s_audit
  threshold: {count: 3, window: soon}
- rule: b
  desc: d
  condition: ka.verb = get
  output: o
  priority: INFO
  source: k8s_audit
  threshold: {count: 3, window: 1m, group_by: [ka.nope]}
- rule: c
  desc: d
  condition: ka.verb = get
  output: o
  priority: INFO
  source: k8s_audit
  sequence: {within: 1m, steps: [ka.verb = get, ka.verb = (]}
- rule: d
  desc: d
  condition: ka.verb = get
  output: o
  priority: INFO
  source: k8s_audit
  threshold: {count: 3, window: 1m}
  first_seen: {fields: [ka.user.name], history: 1d}
- rule: e
  desc: d
  condition: ka.verb = get
  output: o
  priority: INFO
  source: k8s_audit
  suppress: {window: 1m, per: [ka.user.name]}
";
    let (rs, report) = RuleSet::from_sources(&[("s.yaml".to_string(), text.to_string())]);
    let msgs: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(msgs.len(), 5, "{report}");
    assert!(
        msgs[0].starts_with("s.yaml:2:1: rule \"a\": `threshold.window`"),
        "{}",
        msgs[0]
    );
    assert!(msgs[1].contains("unknown field `ka.nope`"), "{}", msgs[1]);
    assert!(
        msgs[2].contains("sequence step 2: syntax error"),
        "{}",
        msgs[2]
    );
    assert!(msgs[3].contains("not several"), "{}", msgs[3]);
    assert!(
        msgs[4].contains("unknown key `suppress.per`"),
        "{}",
        msgs[4]
    );
    assert_eq!(rs.active_len(), 0);
}
