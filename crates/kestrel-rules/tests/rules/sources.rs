//! Rules over every source: per-source field resolution, evaluation of agent records with their
//! origin, CIDR matching, and sequences that cross sources (keys, captured output fields,
//! snapshots).

use kestrel_rules::{Detector, ErrorKind, Event, OwnedEvent, RuleSet, Source};
use serde_json::json;

const SEC: i64 = 1_000_000_000;
/// 2026-11-20T09:00:00Z.
const T0: i64 = 1_795_165_200 * SEC;

fn load(text: &str) -> RuleSet {
    let (rs, report) = RuleSet::from_sources(&[("s.yaml".to_string(), text.to_string())]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    rs
}

fn row(source: Source, v: serde_json::Value) -> OwnedEvent {
    OwnedEvent::from_json(source, v).unwrap()
}

#[test]
fn fields_resolve_against_the_rules_source() {
    let (rs, report) = RuleSet::from_sources(&[(
        "s.yaml".to_string(),
        "- rule: wrong\n  desc: d\n  condition: ka.verb = get\n  output: o\n  priority: INFO\n  source: dns\n\
         - rule: right\n  desc: d\n  condition: dns.rcode = NXDOMAIN\n  output: '%dns.query.name %evt.source'\n  priority: INFO\n  source: dns\n\
         - rule: bad output\n  desc: d\n  condition: dns.rcode = NXDOMAIN\n  output: '%http.path'\n  priority: INFO\n  source: dns\n"
            .to_string(),
    )]);
    assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
    let msg = report.errors[0].to_string();
    assert!(
        msg.contains("s.yaml:3:") && msg.contains("`ka.verb` is not available in `dns` events"),
        "{msg}"
    );
    assert!(matches!(report.errors[1].kind, ErrorKind::Compile(_)));
    assert!(report.errors[1].to_string().contains("field of ingress"));
    assert_eq!(rs.active_len(), 1);
    let info = rs.rules().into_iter().find(|r| r.name == "right").unwrap();
    assert!(info.active);
    assert_eq!(
        rs.explain("right").unwrap().fields,
        ["dns.rcode", "dns.query.name", "evt.source"]
    );
}

#[test]
fn agent_records_match_with_their_origin() {
    let rs = load(
        r#"
- rule: web stderr
  desc: d
  condition: log.stream = stderr and k8s.pod.label[app] = web and container.image.repository = shop/web
  output: "%k8s.ns.name/%k8s.pod.name %container.image.tag %k8s.node.name: %log.message (%k8s.pod.labels)"
  priority: WARNING
  source: container_log
- rule: audit only
  desc: d
  condition: ka.verb exists
  output: o
  priority: INFO
  source: k8s_audit
"#,
    );
    let e = row(
        Source::ContainerLog,
        json!({"time": T0, "node": "node-b", "namespace": "shop", "pod": "web-1", "container": "web",
               "image": "shop/web:1.4", "labels": "{\"app\":\"web\",\"tier\":\"front\"}",
               "stream": "stderr", "message": "boom"}),
    );
    let m = rs.evaluate(&e.as_event());
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].source, "container_log");
    assert_eq!(
        m[0].output,
        "shop/web-1 1.4 node-b: boom ((app:web,tier:front))"
    );
    // Without an origin the identity is missing, and the condition fails.
    let OwnedEvent::ContainerLog(r, _) = &e else {
        panic!()
    };
    assert!(rs.evaluate(&Event::ContainerLog(r, None)).is_empty());
}

#[test]
fn ip_fields_match_cidr_networks() {
    let rs = load(
        r#"
- list: internal
  items: [10.0.0.0/8, 192.168.0.0/16, "fd00::/8"]
- rule: egress
  desc: d
  condition: not net.dst.ip in (internal) and net.dst.ip != 169.254.0.0/16
  output: "%net.dst.ip"
  priority: INFO
  source: netflow
- rule: from a pod network
  desc: d
  condition: ka.sourceips intersects (10.244.0.0/16)
  output: "%ka.sourceips"
  priority: INFO
  source: k8s_audit
"#,
    );
    let net = |dst: &str| {
        let e = row(
            Source::Netflow,
            json!({"src_ip": "10.244.1.2", "dst_ip": dst}),
        );
        rs.evaluate(&e.as_event()).len()
    };
    assert_eq!(net("10.1.2.3"), 0);
    assert_eq!(net("192.168.7.7"), 0);
    assert_eq!(net("fd00::1"), 0);
    assert_eq!(net("169.254.169.254"), 0);
    assert_eq!(net("8.8.8.8"), 1);
    assert_eq!(net("2001:db8::1"), 1);
    let audit: kestrel_event::AuditEvent = serde_json::from_value(json!({
        "verb": "get", "stage": "ResponseComplete", "sourceIPs": ["203.0.113.9", "10.244.3.4"]
    }))
    .unwrap();
    assert_eq!(rs.evaluate_audit(&audit).len(), 1);
    assert!(rs
        .explain("egress")
        .unwrap()
        .condition
        .unwrap()
        .contains("in (10.0.0.0/8, 192.168.0.0/16, fd00::/8)"));
}

const CROSS: &str = r#"
- rule: token then pool
  desc: d
  condition: ka.stage = ResponseComplete
  output: "user=%ka.user.name ip=%dns.client.ip pool=%dns.query.name"
  priority: CRITICAL
  source: k8s_audit
  sequence:
    within: 10m
    group_by:
      - ka.sourceips[0]
    steps:
      - ka.target.resource = secrets
      - source: dns
        condition: dns.query.domain = supportxmr.com
        group_by: [dns.client.ip]
"#;

fn secrets_read(ip: &str) -> kestrel_event::AuditEvent {
    serde_json::from_value(json!({
        "verb": "list", "stage": "ResponseComplete", "user": {"username": "system:serviceaccount:shop:web"},
        "sourceIPs": [ip], "objectRef": {"resource": "secrets", "namespace": "shop"}
    }))
    .unwrap()
}

fn pool(ip: &str) -> OwnedEvent {
    row(
        Source::Dns,
        json!({"client_ip": ip, "query_name": "pool.supportxmr.com."}),
    )
}

#[test]
fn sequences_cross_sources_with_captured_fields_and_survive_a_restart() {
    let rs = std::sync::Arc::new(load(CROSS));
    let mut d = Detector::new(rs.clone());
    assert!(d
        .evaluate_audit(&secrets_read("10.244.1.21"), T0)
        .is_empty());
    // Another address resolving the pool does not complete it.
    assert!(d
        .evaluate(&pool("10.244.9.9").as_event(), T0 + SEC)
        .is_empty());

    // The state (with the captured user) survives a snapshot and restore.
    let snap: kestrel_rules::Snapshot =
        serde_json::from_str(&serde_json::to_string(&d.snapshot()).unwrap()).unwrap();
    let mut d = Detector::new(rs.clone());
    d.restore(snap);
    let m = d.evaluate(&pool("10.244.1.21").as_event(), T0 + 2 * SEC);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].source, "dns");
    assert_eq!(m[0].count, 2);
    assert_eq!(
        m[0].output,
        "user=system:serviceaccount:shop:web ip=10.244.1.21 pool=pool.supportxmr.com"
    );

    // Too late: outside `within`.
    let mut d = Detector::new(rs);
    d.evaluate_audit(&secrets_read("10.244.1.21"), T0);
    assert!(d
        .evaluate(&pool("10.244.1.21").as_event(), T0 + 11 * 60 * SEC)
        .is_empty());
    // The stateless path skips sequences.
    assert!(RuleSet::evaluate(&load(CROSS), &pool("10.244.1.21").as_event()).is_empty());
}

#[test]
fn cross_source_steps_need_their_own_key() {
    let (_, report) = RuleSet::from_sources(&[(
        "s.yaml".to_string(),
        CROSS.replace("        group_by: [dns.client.ip]\n", ""),
    )]);
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0]
            .to_string()
            .contains("sequence step 2 reads `dns` events: give it a `group_by`"),
        "{}",
        report.errors[0]
    );
    let (_, report) = RuleSet::from_sources(&[(
        "s.yaml".to_string(),
        CROSS.replace("source: dns", "source: syslog"),
    )]);
    assert!(report.errors[0]
        .to_string()
        .contains("unknown source `syslog`"));
}

#[test]
fn distinct_thresholds_count_values_not_matches() {
    let rs = load(
        r#"
- rule: scan
  desc: d
  condition: net.dst.port exists
  output: "%net.src.ip"
  priority: WARNING
  source: netflow
  threshold:
    count: 5
    window: 1m
    group_by: [net.src.ip]
    distinct: net.dst.port
"#,
    );
    let mut d = Detector::new(rs);
    let mut fired = Vec::new();
    // The same port again and again, then four new ones: the fifth distinct port fires.
    for (i, port) in [22, 22, 22, 80, 443, 8080, 22, 9090].iter().enumerate() {
        let e = row(
            Source::Netflow,
            json!({"src_ip": "10.0.0.1", "dst_ip": "10.0.0.2", "dst_port": port}),
        );
        if !d.evaluate(&e.as_event(), T0 + i as i64 * SEC).is_empty() {
            fired.push(i);
        }
    }
    assert_eq!(fired, [7]);
}
