//! Integration tests: the bundled pack over hand-written events, Falco's own rules and captures
//! (`falco_compat`), the rule language (`language`), load diagnostics, and a throughput
//! measurement (ignored by default).

use std::path::PathBuf;

#[path = "rules/falco_compat.rs"]
mod falco_compat;
#[path = "rules/language.rs"]
mod language;
#[path = "rules/pack.rs"]
mod pack;
#[path = "rules/stateful.rs"]
mod stateful;

use kestrel_event::AuditEvent;
use kestrel_rules::{ErrorKind, RuleMatching, RuleSet};

fn manifest(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    expect: Vec<String>,
    event: AuditEvent,
}

#[test]
fn bundled_pack_loads_cleanly() {
    let (rs, report) = RuleSet::from_sources(&RuleSet::bundled_sources());
    assert!(
        report.errors.is_empty() && report.warnings.is_empty(),
        "{report}"
    );
    assert_eq!(rs.active_len(), rs.rules().len());
    for r in rs.rules() {
        assert!(!r.desc.is_empty(), "{}", r.name);
        assert!(
            r.tags.iter().any(|t| t.starts_with('T')),
            "{} lacks a MITRE tag",
            r.name
        );
    }
}

#[test]
fn bundled_pack_fires_exactly_the_expected_rules() {
    let text = std::fs::read_to_string(manifest("testdata/bundled_cases.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    let rs = RuleSet::bundled();
    let mut failures = Vec::new();
    for c in &cases {
        let got: Vec<String> = rs
            .evaluate_audit(&c.event)
            .into_iter()
            .map(|m| m.rule)
            .collect();
        if got != c.expect {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                c.name, c.expect, got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn outputs_are_rendered_with_fields() {
    let text = std::fs::read_to_string(manifest("testdata/bundled_cases.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    let exec = cases
        .iter()
        .find(|c| c.name == "user execs into a pod")
        .unwrap();
    let m = RuleSet::bundled().evaluate_audit(&exec.event);
    assert_eq!(
        m[0].output,
        "Exec/attach into pod (user=alice@example.com pod=web-0 ns=shop action=exec command=sh container=web)"
    );
    assert_eq!(m[0].output_fields["ka.uri.param[command]"], "sh");
    assert_eq!(m[0].source, "k8s_audit");
    let pod = cases
        .iter()
        .find(|c| c.name == "user creates a plain pod")
        .unwrap();
    let m = RuleSet::bundled().evaluate_audit(&pod.event);
    assert!(m[0].output.contains("images=(alpine)"), "{}", m[0].output);
}

#[test]
fn rule_matching_first_fires_one_rule() {
    let text = std::fs::read_to_string(manifest("testdata/bundled_cases.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    let rs = RuleSet::bundled().with_rule_matching(RuleMatching::First);
    let c = cases.iter().find(|c| c.expect.len() > 1).unwrap();
    let got = rs.evaluate_audit(&c.event);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rule, c.expect[0]);
}

fn src(name: &str, text: &str) -> (String, String) {
    (name.to_string(), text.to_string())
}

#[test]
fn bad_rules_are_reported_with_positions_and_do_not_disable_others() {
    let text = "\
- macro: m
  condition: ka.verb = get

- rule: good
  desc: d
  condition: m and ka.target.resource = pods
  output: ok %ka.user.name
  priority: info
  source: k8s_audit

- rule: bad field
  desc: d
  condition: >
    m and
      ka.nope = 1
  output: x
  priority: WARNING
  source: k8s_audit

- rule: bad syntax
  desc: d
  condition: ka.verb = get and (ka.uri = x
  output: x
  priority: WARNING
  source: k8s_audit

- rule: bad macro
  desc: d
  condition: not_a_macro or m
  output: x
  priority: WARNING
  source: k8s_audit

- rule: bad priority
  desc: d
  condition: m
  output: x
  priority: loud
  source: k8s_audit

- rule: bad output
  desc: d
  condition: m
  output: x %ka.nothing
  priority: debug
  source: k8s_audit
";
    let (rs, report) = RuleSet::from_sources(&[src("user.yaml", text)]);
    let names: Vec<String> = rs.rules().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["good"]);
    let msgs: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(report.errors.len(), 5, "{msgs:#?}");
    assert_eq!(
        msgs[0],
        "user.yaml:15:7: rule \"bad field\": unknown field `ka.nope`"
    );
    assert!(matches!(report.errors[0].kind, ErrorKind::UnknownField(_)));
    assert_eq!(
        msgs[1],
        "user.yaml:22:43: rule \"bad syntax\": syntax error: missing `)`"
    );
    assert_eq!(
        msgs[2],
        "user.yaml:29:14: rule \"bad macro\": undefined macro `not_a_macro`"
    );
    assert!(
        msgs[3].starts_with("user.yaml:34:1: rule \"bad priority\": unknown priority"),
        "{}",
        msgs[3]
    );
    assert!(
        msgs[4].contains("unknown field `ka.nothing` in output"),
        "{}",
        msgs[4]
    );
    assert_eq!(
        report.failed_rules(),
        [
            "bad field",
            "bad syntax",
            "bad macro",
            "bad priority",
            "bad output"
        ]
    );
}

#[test]
fn errors_inside_macros_name_macro_and_rule() {
    let text = "\
- macro: broken
  condition: ka.verb = get and ka.bogus exists
- rule: r
  desc: d
  condition: broken
  output: x
  priority: info
  source: k8s_audit
";
    let (_, report) = RuleSet::from_sources(&[src("a.yaml", text)]);
    assert_eq!(
        report.errors[0].to_string(),
        "a.yaml:2:32: rule \"r\": macro \"broken\": unknown field `ka.bogus`"
    );
}

#[test]
fn append_override_exceptions_and_lists() {
    let base = "\
- list: users
  items: [alice]
- macro: is_get
  condition: ka.verb = get
- rule: watched users
  desc: d
  condition: is_get and ka.user.name in (users)
  output: hit %ka.user.name
  priority: WARNING
  source: k8s_audit
  exceptions:
    - name: ns_and_name
      fields: [ka.target.namespace, ka.target.name]
      comps: [=, in]
      values:
        - [kube-system, [a, b]]
";
    let extra = "\
- list: users
  items: [bob]
  append: true
- macro: is_get
  condition: or ka.verb = list
  append: true
- rule: watched users
  exceptions:
    - name: ns_and_name
      values:
        - [shop, [db]]
  append: true
- rule: watched users
  priority: CRITICAL
  override:
    priority: replace
";
    let (rs, report) = RuleSet::from_sources(&[src("base.yaml", base), src("extra.yaml", extra)]);
    assert!(report.is_ok(), "{report}");
    let ev = |verb: &str, user: &str, ns: &str, name: &str| -> AuditEvent {
        serde_json::from_value(serde_json::json!({
            "verb": verb, "stage": "ResponseComplete", "user": {"username": user},
            "objectRef": {"resource": "secrets", "namespace": ns, "name": name}
        }))
        .unwrap()
    };
    let fired = |e: &AuditEvent| rs.evaluate_audit(e).len();
    assert_eq!(fired(&ev("get", "alice", "shop", "x")), 1);
    assert_eq!(fired(&ev("list", "bob", "shop", "x")), 1);
    assert_eq!(fired(&ev("get", "carol", "shop", "x")), 0);
    assert_eq!(fired(&ev("get", "alice", "kube-system", "a")), 0);
    assert_eq!(fired(&ev("get", "alice", "kube-system", "c")), 1);
    assert_eq!(fired(&ev("get", "alice", "shop", "db")), 0);
    assert_eq!(
        rs.evaluate_audit(&ev("get", "bob", "x", "y"))[0]
            .priority
            .to_string(),
        "Critical"
    );
}

#[test]
fn other_sources_load_inactive_and_disabled_rules_do_not_fire() {
    let text = "\
- rule: syscall rule
  desc: d
  condition: evt.type = execve and proc.name = sh
  output: \"%proc.name\"
  priority: WARNING
- rule: off
  desc: d
  condition: ka.verb exists
  output: x
  priority: WARNING
  source: k8s_audit
  enabled: false
- rule: on
  desc: d
  condition: ka.verb exists
  output: x
  priority: WARNING
  source: k8s_audit
- rule: on
  enabled: false
";
    let (rs, report) = RuleSet::from_sources(&[src("s.yaml", text)]);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.warnings.len(), 1, "{report}");
    assert_eq!(rs.rules().len(), 3);
    assert_eq!(rs.active_len(), 0);
    let e: AuditEvent = serde_json::from_str(r#"{"verb":"get"}"#).unwrap();
    assert!(rs.evaluate_audit(&e).is_empty());
}

// ---- Throughput -----------------------------------------------------------------------------

/// `cargo test --release -p kestrel-rules --test rules -- --ignored --nocapture throughput`
#[test]
#[ignore]
fn throughput() {
    let text = std::fs::read_to_string(manifest("testdata/bundled_cases.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    // Ordinary traffic: mostly get/list/watch by controllers and nodes, a few user requests.
    let mut events: Vec<AuditEvent> = Vec::new();
    let users = [
        "system:kube-controller-manager",
        "system:kube-scheduler",
        "system:node:worker-1",
        "system:serviceaccount:kube-system:coredns",
        "system:serviceaccount:monitoring:prometheus",
        "system:apiserver",
    ];
    let resources = [
        "pods",
        "configmaps",
        "endpoints",
        "leases",
        "nodes",
        "secrets",
        "services",
    ];
    for i in 0..1000 {
        let verb = ["get", "list", "watch", "update", "patch"][i % 5];
        let user = users[i % users.len()];
        let res = resources[i % resources.len()];
        events.push(
            serde_json::from_value(serde_json::json!({
                "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                "auditID": format!("id-{i}"), "stage": "ResponseComplete",
                "requestURI": format!("/api/v1/namespaces/kube-system/{res}/x{i}"),
                "verb": verb, "user": {"username": user, "groups": ["system:authenticated"]},
                "sourceIPs": ["10.0.0.1"], "userAgent": "kube-controller-manager/v1.31.0 (linux/amd64)",
                "objectRef": {"resource": res, "namespace": "kube-system", "name": format!("x{i}")},
                "responseStatus": {"code": 200},
                "annotations": {"authorization.k8s.io/decision": "allow"}
            }))
            .unwrap(),
        );
    }
    for (i, c) in cases.iter().enumerate() {
        events[i * 37 % 1000] = c.event.clone();
    }
    let rs = RuleSet::bundled();
    let rounds = 500;
    let start = std::time::Instant::now();
    let mut fired = 0usize;
    for _ in 0..rounds {
        for e in &events {
            fired += rs.evaluate_audit(e).len();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let n = (rounds * events.len()) as f64;
    eprintln!("bundled pack: {:.0} events/s ({} matches)", n / secs, fired);
    let text = std::fs::read_to_string(manifest(
        "../../../shared/compat/falco/k8s_audit_rules.yaml",
    ));
    if let Ok(text) = text {
        let (rs, _) = RuleSet::from_sources(&[src("falco.yaml", &text)]);
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            for e in &events {
                fired += rs.evaluate_audit(e).len();
            }
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "falco upstream rules: {:.0} events/s ({fired} matches in total)",
            n / secs
        );
    }
}
