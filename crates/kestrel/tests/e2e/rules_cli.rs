//! `kestrel rules run|test|lint|explain|fields`: offline evaluation prints one JSON alert per
//! line with Falco's keys, reads EventLists, JSON lines and other sources' table rows, a bad
//! rule file fails with its position, every pack's tests pass, and `docs/fields.md` is current.

use serde_json::{json, Value};

use crate::events::{event_list, pod_create_event};
use crate::harness::kestrel_cli;

fn repo(p: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(p)
}

#[test]
fn rules_run_prints_falco_style_json_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let events = tmp.path().join("events.json");
    let pod = pod_create_event("cli-pod-1", "alice@example.com", "shop", "debug-root", true);
    std::fs::write(&events, event_list(std::slice::from_ref(&pod))).unwrap();
    let out = kestrel_cli(&["rules", "run", "--events", events.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", out.stderr);
    let alerts: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rules: Vec<&str> = alerts.iter().map(|a| a["rule"].as_str().unwrap()).collect();
    assert_eq!(
        rules,
        [
            "Kestrel Pod Created By Non-System User",
            "Kestrel Privileged Container"
        ],
        "{}",
        out.stdout
    );
    let a = &alerts[1];
    assert_eq!(a["priority"], "Warning");
    assert_eq!(a["source"], "k8s_audit");
    assert_eq!(a["output_fields"]["ka.resp.name"], "debug-root");
    assert!(a["tags"].as_array().unwrap().contains(&json!("T1611")));
    assert!(a["time"].as_str().unwrap().ends_with('Z'));
    assert!(a["output"].as_str().unwrap().contains("pod=debug-root"));

    // The same event as a JSON line, with `first` matching: one alert.
    let lines = tmp.path().join("audit.log");
    std::fs::write(&lines, format!("{pod}\nnot json\n")).unwrap();
    let out = kestrel_cli(
        &[
            "rules",
            "run",
            "--events",
            lines.to_str().unwrap(),
            "--rule-matching",
            "first",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert!(out.stderr.contains("line 2"), "{}", out.stderr);
}

#[test]
fn rules_run_with_a_broken_rule_file_fails_with_its_position() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "- rule: r\n  desc: d\n  condition: ka.verb = get and (ka.uri = x\n  output: o\n  priority: INFO\n  source: k8s_audit\n",
    )
    .unwrap();
    let events = tmp.path().join("e.json");
    std::fs::write(&events, "").unwrap();
    let out = kestrel_cli(
        &[
            "rules",
            "run",
            "--rules",
            bad.to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("bad.yaml:3:43: rule \"r\": syntax error: missing `)`"),
        "{}",
        out.stderr
    );
    let out = kestrel_cli(&["rules", "lint", bad.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(out.stdout.contains("bad.yaml:3:43"), "{}", out.stdout);
}

#[test]
fn rules_test_and_explain_on_the_bundled_pack() {
    let file = repo("rules/tests/kestrel_audit_rules_test.yaml");
    let out = kestrel_cli(&["rules", "test", file.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(" passed, 0 failed"), "{}", out.stdout);

    let out = kestrel_cli(&["rules", "explain", "Kestrel Privileged Container"], &[]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("condition: ka.stage in (ResponseComplete) and ka.verb = create"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("ka.req.pod.containers.privileged"));
    let out = kestrel_cli(&["rules", "explain", "No Such Rule"], &[]);
    assert!(!out.status.success());
}

#[test]
fn rules_run_reads_rows_of_other_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = tmp.path().join("dns.jsonl");
    let row = |name: &str, t: &str| {
        json!({"time": t, "node": "node-b", "client_ip": "10.244.1.21", "query_type": "A",
               "query_name": name, "rcode": "NOERROR", "namespace": "kube-system", "pod": "coredns-1"})
        .to_string()
    };
    std::fs::write(
        &rows,
        format!(
            "{}\n{}\n{{\"time\": \"soon\"}}\n",
            row("cart.shop.svc.cluster.local.", "2026-11-20T09:00:00Z"),
            row("pool.supportxmr.com.", "2026-11-20T09:00:01Z")
        ),
    )
    .unwrap();
    let out = kestrel_cli(
        &[
            "rules",
            "run",
            "--source",
            "dns",
            "--events",
            rows.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", out.stderr);
    let alerts: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{}", out.stdout);
    assert_eq!(alerts[0]["rule"], "Kestrel Mining Pool Resolved");
    assert_eq!(alerts[0]["source"], "dns");
    assert_eq!(alerts[0]["time"], "2026-11-20T09:00:01Z");
    assert_eq!(
        alerts[0]["output_fields"]["dns.query.name"],
        "pool.supportxmr.com"
    );
    assert!(out.stderr.contains("line 3"), "{}", out.stderr);
    assert!(out.stderr.contains("1 unreadable"), "{}", out.stderr);

    let out = kestrel_cli(
        &["rules", "run", "--source", "syslog", "--events", "x"],
        &[],
    );
    assert!(!out.status.success());
    assert!(out.stderr.contains("unknown source"), "{}", out.stderr);
}

#[test]
fn rules_test_runs_every_pack_and_fields_match_the_docs() {
    for entry in std::fs::read_dir(repo("rules/tests")).unwrap() {
        let file = entry.unwrap().path();
        let out = kestrel_cli(&["rules", "test", file.to_str().unwrap()], &[]);
        assert!(
            out.status.success(),
            "{}: {}{}",
            file.display(),
            out.stdout,
            out.stderr
        );
        assert!(out.stdout.contains(" passed, 0 failed"), "{}", out.stdout);
    }
    let out = kestrel_cli(&["rules", "fields", "--format", "markdown"], &[]);
    assert!(out.status.success(), "{}", out.stderr);
    let docs = std::fs::read_to_string(repo("docs/fields.md")).unwrap();
    assert_eq!(out.stdout, docs, "docs/fields.md is stale");
    let out = kestrel_cli(&["rules", "fields", "--source", "netflow"], &[]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("net.dst.ip"), "{}", out.stdout);
    assert!(!out.stdout.contains("ka.verb"), "{}", out.stdout);
}
