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
#[path = "rules/sources.rs"]
mod sources;
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

/// Ordinary cluster traffic: mostly get/list/watch/update by controllers, nodes and service
/// accounts, some user requests, and the hand-written cases (pods with specs, RBAC, exec, ...)
/// mixed in.
fn traffic(n: usize) -> Vec<AuditEvent> {
    let text = std::fs::read_to_string(manifest("testdata/bundled_cases.json")).unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    let users = [
        "system:kube-controller-manager",
        "system:kube-scheduler",
        "system:node:worker-1",
        "system:serviceaccount:kube-system:coredns",
        "system:serviceaccount:monitoring:prometheus",
        "system:apiserver",
        "alice@example.com",
        "system:serviceaccount:ci:deployer",
    ];
    let resources = [
        "pods",
        "configmaps",
        "endpoints",
        "leases",
        "nodes",
        "secrets",
        "services",
        "deployments",
    ];
    let mut events: Vec<AuditEvent> = (0..n)
        .map(|i| {
            let verb = ["get", "list", "watch", "update", "patch", "get", "create"][i % 7];
            let user = users[i % users.len()];
            let res = resources[(i / 3) % resources.len()];
            serde_json::from_value(serde_json::json!({
                "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                "auditID": format!("id-{i}"), "stage": "ResponseComplete",
                "requestURI": format!("/api/v1/namespaces/kube-system/{res}/x{i}"),
                "verb": verb, "user": {"username": user, "groups": ["system:authenticated"]},
                "sourceIPs": ["10.0.0.1"], "userAgent": "kube-controller-manager/v1.31.0 (linux/amd64)",
                "objectRef": {"resource": res, "namespace": "kube-system", "name": format!("x{i}")},
                "responseStatus": {"code": 200},
                "stageTimestamp": "2026-11-20T09:00:00Z",
                "annotations": {"authorization.k8s.io/decision": "allow"}
            }))
            .unwrap()
        })
        .collect();
    for (i, c) in cases.iter().enumerate() {
        let at = i * 37 % n;
        events[at] = c.event.clone();
    }
    events
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (USER_HZ = 100 on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Falco's 48 k8saudit rules plus Kestrel's pack, all evaluated (`rule_matching: all`).
///
/// `cargo test --release -p kestrel-rules --test rules -- --ignored --nocapture throughput`
#[test]
#[ignore]
fn throughput() {
    let mut sources = RuleSet::bundled_sources();
    let falco = manifest("../../../shared/compat/falco/k8s_audit_rules.yaml");
    match std::fs::read_to_string(&falco) {
        Ok(t) => sources.push(("k8s_audit_rules.yaml".to_string(), t)),
        Err(_) => eprintln!(
            "Falco's rules not found at {}: Kestrel's pack only",
            falco.display()
        ),
    }
    let (rs, report) = RuleSet::from_sources(&sources);
    assert!(report.is_ok(), "{report}");
    let rs = std::sync::Arc::new(rs);
    eprintln!("{} rules evaluated", rs.active_len());
    let events = traffic(10_000);
    let lines: Vec<Vec<u8>> = events
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap())
        .collect();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    eprintln!(
        "{} events, {:.0} bytes per event on average",
        events.len(),
        bytes as f64 / events.len() as f64
    );
    let rounds = 100;
    let n = (rounds * events.len()) as f64;

    // Parsed events, stateless path.
    let (c0, t0) = (cpu_seconds(), std::time::Instant::now());
    let mut fired = 0usize;
    for _ in 0..rounds {
        for e in &events {
            fired += rs.evaluate_audit(e).len();
        }
    }
    let (cpu, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
    eprintln!(
        "parsed events, RuleSet::evaluate_audit: {:.0} events/s per core ({:.0}/s wall; {} alerts)",
        n / cpu,
        n / wall,
        fired
    );

    // The same without the human user (whose every request Falco's `Disallowed K8s User`
    // reports): evaluation alone, almost no alert to render.
    let quiet: Vec<AuditEvent> = events
        .iter()
        .filter(|e| e.user.username.starts_with("system:"))
        .cloned()
        .collect();
    let (c0, t0) = (cpu_seconds(), std::time::Instant::now());
    let mut fired = 0usize;
    for _ in 0..rounds {
        for e in &quiet {
            fired += rs.evaluate_audit(e).len();
        }
    }
    let nq = (rounds * quiet.len()) as f64;
    let (cpu, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
    eprintln!(
        "parsed events, system identities only: {:.0} events/s per core ({:.0}/s wall; {} alerts)",
        nq / cpu,
        nq / wall,
        fired
    );

    // Parsed events through the Detector (stateful rules too).
    let mut d = kestrel_rules::Detector::new(rs.clone());
    let (c0, t0) = (cpu_seconds(), std::time::Instant::now());
    let mut fired = 0usize;
    for r in 0..rounds {
        for (i, e) in events.iter().enumerate() {
            let now = 1_795_165_200_000_000_000 + ((r * events.len() + i) as i64) * 1_000_000;
            fired += d.evaluate_audit(e, now).len();
        }
    }
    let (cpu, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
    eprintln!(
        "parsed events, Detector (stateful too): {:.0} events/s per core ({:.0}/s wall; {} alerts)",
        n / cpu,
        n / wall,
        fired
    );

    // JSON bytes → AuditEvent → rules.
    let (c0, t0) = (cpu_seconds(), std::time::Instant::now());
    let mut fired = 0usize;
    for _ in 0..rounds / 10 {
        for l in &lines {
            let e: AuditEvent = serde_json::from_slice(l).unwrap();
            fired += rs.evaluate_audit(&e).len();
        }
    }
    let n10 = n / 10.0;
    let (cpu, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
    eprintln!(
        "JSON + rules (serde_json::from_slice): {:.0} events/s per core ({:.0}/s wall; {} alerts)",
        n10 / cpu,
        n10 / wall,
        fired
    );

    // The ingest parser (dead letters, redaction) + rules, one JSON-lines chunk per round.
    let mut chunk = Vec::with_capacity(bytes + lines.len());
    for l in &lines {
        chunk.extend_from_slice(l);
        chunk.push(b'\n');
    }
    let cfg = kestrel_parse::AuditParseConfig::default();
    let (c0, t0) = (cpu_seconds(), std::time::Instant::now());
    let mut fired = 0usize;
    for _ in 0..rounds / 10 {
        let batch = kestrel_parse::parse_json_lines(&chunk, 1, &cfg, "bench", 0);
        for e in &batch.events {
            fired += rs.evaluate_audit(e).len();
        }
    }
    let (cpu, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
    eprintln!(
        "JSON + rules (kestrel_parse::parse_json_lines, redaction on): {:.0} events/s per core ({:.0}/s wall; {} alerts)",
        n10 / cpu,
        n10 / wall,
        fired
    );

    // Two threads sharing one RuleSet (stateless path).
    let t0 = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let rs = rs.clone();
            let events = &events;
            s.spawn(move || {
                let mut f = 0usize;
                for _ in 0..rounds {
                    for e in events {
                        f += rs.evaluate_audit(e).len();
                    }
                }
                f
            });
        }
    });
    eprintln!(
        "2 threads, parsed events: {:.0} events/s wall in total",
        2.0 * n / t0.elapsed().as_secs_f64()
    );

    // Memory of stateful rules at 100k distinct keys (first_seen by user and namespace).
    let text = "
- rule: seen
  desc: d
  condition: ka.verb = get
  output: o
  priority: INFO
  source: k8s_audit
  first_seen:
    fields: [ka.user.name, ka.target.namespace]
    history: 30d
";
    let (rs, _) = RuleSet::from_sources(&[src("m.yaml", text)]);
    let mut d = kestrel_rules::Detector::new(rs);
    let mut e = events[0].clone();
    e.verb = "get".into();
    let before = rss_bytes();
    for i in 0..100_000 {
        e.user.username = format!("system:serviceaccount:team-{}:app-{i}", i % 50);
        d.evaluate_audit(&e, 1_795_165_200_000_000_000 + i as i64);
    }
    let after = rss_bytes();
    let json = serde_json::to_vec(&d.snapshot()).unwrap();
    eprintln!(
        "100k first_seen keys: {} keys, {:.1} MiB estimated, ~{:.1} MiB resident more, snapshot {:.1} MiB of JSON",
        d.stats().keys,
        d.stats().approx_bytes as f64 / (1 << 20) as f64,
        after.saturating_sub(before) as f64 / (1 << 20) as f64,
        json.len() as f64 / (1 << 20) as f64
    );
}
