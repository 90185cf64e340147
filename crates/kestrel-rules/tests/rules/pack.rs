//! Kestrel's own audit rule pack: its YAML unit tests (`rules/tests/`), coverage of every rule
//! by a test, MITRE ATT&CK tags, and the baseline rule over generated traffic.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use kestrel_event::AuditEvent;
use kestrel_rules::{ruletest, Detector, RuleSet};

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(p)
}

#[test]
fn pack_unit_tests_pass_and_cover_every_rule() {
    let text = std::fs::read_to_string(repo("rules/tests/kestrel_audit_rules_test.yaml")).unwrap();
    let file = ruletest::parse(&text).unwrap();
    assert_eq!(file.rules, ["../kestrel_audit_rules.yaml"]);
    let rules = Arc::new(RuleSet::bundled());
    let report = ruletest::run(&rules, &file);
    assert!(report.failures.is_empty(), "{}", report.failures.join("\n"));
    assert_eq!(report.passed, file.cases.len());

    // Rules tested elsewhere: the older JSON cases, and the baseline rule below.
    let json =
        std::fs::read_to_string(repo("crates/kestrel-rules/testdata/bundled_cases.json")).unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let mut elsewhere: HashSet<String> = cases
        .iter()
        .flat_map(|c| c["expect"].as_array().unwrap().iter())
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    elsewhere.insert("Kestrel Unusual API Volume By User".to_string());
    let untested: Vec<&String> = report
        .untested_rules
        .iter()
        .filter(|r| !elsewhere.contains(*r))
        .collect();
    assert!(untested.is_empty(), "rules without a test: {untested:?}");
    assert!(rules.rules().len() >= 40, "{}", rules.rules().len());
}

#[test]
fn every_rule_carries_a_mitre_technique() {
    for r in RuleSet::bundled().rules() {
        assert!(
            r.tags.iter().any(|t| t.starts_with("T1"))
                && r.tags.iter().any(|t| t.starts_with("mitre_")),
            "{} lacks MITRE tags: {:?}",
            r.name,
            r.tags
        );
    }
}

#[test]
fn unusual_api_volume_fires_after_warm_up_on_a_burst() {
    let mut d = Detector::new(RuleSet::bundled());
    let ev = |t: i64| -> AuditEvent {
        serde_json::from_value(serde_json::json!({
            "auditID": "x", "stage": "ResponseComplete", "verb": "get", "requestURI": "/api/v1/namespaces/shop/pods/p",
            "user": {"username": "ci-bot"}, "userAgent": "kubectl/v1.31.0",
            "objectRef": {"resource": "pods", "namespace": "shop", "name": "p"},
            "responseStatus": {"code": 200},
            "stageTimestamp": chrono::DateTime::from_timestamp_nanos(t).to_rfc3339(),
        }))
        .unwrap()
    };
    let t0: i64 = 1_795_165_200_000_000_000;
    let bucket: i64 = 5 * 60 * 1_000_000_000;
    let mut alerts = Vec::new();
    // Two hours of 20-40 requests per 5 minutes, then a burst of 600.
    for b in 0..25i64 {
        let n = if b == 24 { 600 } else { 20 + (b * 7) % 21 };
        for i in 0..n {
            let t = t0 + b * bucket + i * 100_000_000;
            for m in d.evaluate_audit(&ev(t), t) {
                alerts.push((b, m.rule, m.count));
            }
        }
    }
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].0, 24);
    assert_eq!(alerts[0].1, "Kestrel Unusual API Volume By User");
    assert_eq!(alerts[0].2, 200);
}
