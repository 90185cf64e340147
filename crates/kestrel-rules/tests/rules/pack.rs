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

/// Every rule test file under `rules/tests/`, with the rule files it names loaded in order.
fn pack_test_files() -> Vec<(String, ruletest::TestFile, Arc<RuleSet>)> {
    let dir = repo("rules/tests");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let file = ruletest::parse(&std::fs::read_to_string(&p).unwrap()).unwrap();
            let sources: Vec<(String, String)> = file
                .rules
                .iter()
                .map(|r| {
                    let path = dir.join(r);
                    (r.clone(), std::fs::read_to_string(&path).unwrap())
                })
                .collect();
            let (rules, report) = RuleSet::from_sources(&sources);
            assert!(
                report.errors.is_empty(),
                "{}: {:?}",
                p.display(),
                report.errors
            );
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, file, Arc::new(rules))
        })
        .collect()
}

#[test]
fn pack_unit_tests_pass_and_cover_every_rule() {
    let mut expected: HashSet<String> = HashSet::new();
    let mut per_file = Vec::new();
    for (name, file, rules) in pack_test_files() {
        let report = ruletest::run(&rules, &file);
        assert!(
            report.failures.is_empty(),
            "{name}:\n{}",
            report.failures.join("\n")
        );
        assert_eq!(report.passed, file.cases.len(), "{name}");
        expected.extend(file.cases.iter().flat_map(|c| c.expect.iter().cloned()));
        per_file.push((name, file.cases.len()));
    }
    assert!(per_file.len() >= 8, "{per_file:?}");

    // Rules tested elsewhere: the older JSON cases, and the baseline rule below.
    let json =
        std::fs::read_to_string(repo("crates/kestrel-rules/testdata/bundled_cases.json")).unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    expected.extend(
        cases
            .iter()
            .flat_map(|c| c["expect"].as_array().unwrap().iter())
            .map(|r| r.as_str().unwrap().to_string()),
    );
    expected.insert("Kestrel Unusual API Volume By User".to_string());
    let bundled = RuleSet::bundled();
    let untested: Vec<String> = bundled
        .rules()
        .into_iter()
        .filter(|r| r.active && !expected.contains(&r.name))
        .map(|r| r.name)
        .collect();
    assert!(untested.is_empty(), "rules without a test: {untested:?}");
    assert!(bundled.rules().iter().all(|r| r.active));
    let audit = bundled
        .rules()
        .iter()
        .filter(|r| r.source == "k8s_audit")
        .count();
    assert!(audit >= 40, "{audit}");
    for source in ["ingress", "dns", "netflow", "container_log", "k8s_event"] {
        let n = bundled
            .rules()
            .iter()
            .filter(|r| r.source == source)
            .count();
        assert!(n >= 4, "{source}: {n} rules");
    }
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

/// `docs/fields.md` is generated from the field catalog; run with `KESTREL_UPDATE_DOCS=1` to
/// rewrite it (or `kestrel rules fields --format markdown > docs/fields.md`).
#[test]
fn field_reference_page_is_current() {
    let generated = kestrel_rules::fields::catalog::markdown();
    let path = repo("docs/fields.md");
    if std::env::var_os("KESTREL_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/fields.md is stale: run `KESTREL_UPDATE_DOCS=1 cargo test -p kestrel-rules --test rules field_reference` and commit it"
    );
}
