//! The demo scenario and the background traffic: schema, order, span, determinism, realism, and
//! every step of the attack story.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use kestrel_demo::{background_traffic, demo_scenario, scenario_steps};
use kestrel_event::audit::AuditEvent;
use serde_json::Value;

fn end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap()
}

fn demo() -> Vec<AuditEvent> {
    demo_scenario(end(), 42)
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("every demo event is an audit.k8s.io/v1 Event"))
        .collect()
}

fn code(e: &AuditEvent) -> i32 {
    e.response_code().unwrap_or(0)
}

fn res(e: &AuditEvent) -> &str {
    e.object_ref_field(|o| o.resource.as_ref()).unwrap_or("")
}

fn sub(e: &AuditEvent) -> &str {
    e.object_ref_field(|o| o.subresource.as_ref()).unwrap_or("")
}

fn attacker(e: &AuditEvent) -> bool {
    e.source_ips.first().map(String::as_str) == Some("203.0.113.45")
}

const SA: &str = "system:serviceaccount:ci:gitlab-runner";

#[test]
fn demo_events_are_v1_events_in_time_order_within_the_span() {
    let events = demo();
    assert!(
        (2_000..6_000).contains(&events.len()),
        "a few thousand events, got {}",
        events.len()
    );
    let start = end() - Duration::hours(2);
    let mut last = start;
    for e in &events {
        assert_eq!(e.kind.as_deref(), Some("Event"));
        assert_eq!(e.api_version.as_deref(), Some("audit.k8s.io/v1"));
        assert!(!e.audit_id.is_empty() && !e.verb.is_empty() && !e.request_uri.is_empty());
        assert!(!e.user.username.is_empty() && !e.source_ips.is_empty());
        assert!(e.user_agent.is_some());
        let t = e.stage_timestamp.expect("stageTimestamp");
        let r = e
            .request_received_timestamp
            .expect("requestReceivedTimestamp");
        assert!(r <= t, "received after stage: {}", e.audit_id);
        assert!(t >= last, "out of order at {}", e.audit_id);
        assert!(t <= end());
        last = t;
        if e.stage != "RequestReceived" {
            assert!(e.response_code().is_some(), "{} has no code", e.audit_id);
            assert!(e.annotations.contains_key("authorization.k8s.io/decision"));
        }
    }
}

#[test]
fn demo_is_deterministic_per_seed() {
    let a = demo_scenario(end(), 7);
    let b = demo_scenario(end(), 7);
    assert_eq!(a, b);
    let c = demo_scenario(end(), 8);
    assert_ne!(a, c);
}

#[test]
fn stages_of_one_request_share_an_audit_id_and_never_repeat() {
    let events = demo();
    let mut stages: HashMap<&str, Vec<&AuditEvent>> = HashMap::new();
    for e in &events {
        stages.entry(&e.audit_id).or_default().push(e);
    }
    let mut multi = 0;
    for (id, evs) in &stages {
        let names: BTreeSet<&str> = evs.iter().map(|e| e.stage.as_str()).collect();
        assert_eq!(names.len(), evs.len(), "stage repeated for {id}");
        assert!(names.contains("ResponseComplete"), "{id} never completes");
        let uris: HashSet<&str> = evs.iter().map(|e| e.request_uri.as_str()).collect();
        assert_eq!(uris.len(), 1, "{id} is shared by different requests");
        if evs.len() > 1 {
            multi += 1;
            assert_eq!(evs[0].stage, "RequestReceived");
            assert!(evs[0].response_status.is_none() && evs[0].annotations.is_empty());
        }
    }
    assert!(
        multi > 50,
        "some requests report RequestReceived too ({multi})"
    );
}

#[test]
fn demo_looks_like_a_real_cluster() {
    let events = demo();
    let users: HashSet<&str> = events.iter().map(|e| e.user.username.as_str()).collect();
    for u in [
        "system:node:node-a",
        "system:node:node-b",
        "system:node:node-c",
        "system:kube-controller-manager",
        "system:kube-scheduler",
        "system:serviceaccount:kube-system:replicaset-controller",
        "system:serviceaccount:kube-system:deployment-controller",
        "system:serviceaccount:kube-system:coredns",
        "system:serviceaccount:kube-system:metrics-server",
        "system:serviceaccount:argocd:argocd-application-controller",
        "alice@example.com",
        SA,
        "system:anonymous",
    ] {
        assert!(users.contains(u), "no requests from {u}");
    }
    let codes: HashSet<i32> = events.iter().map(code).collect();
    for c in [200, 201, 403, 404, 409, 101] {
        assert!(codes.contains(&c), "no response code {c}");
    }
    let verbs: HashSet<&str> = events.iter().map(|e| e.verb.as_str()).collect();
    for v in [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ] {
        assert!(verbs.contains(v), "no verb {v}");
    }
    let leases = events
        .iter()
        .filter(|e| res(e) == "leases" && e.verb == "update")
        .count();
    assert!(
        leases * 5 > events.len(),
        "lease renewals dominate, as in real clusters"
    );
    assert!(events
        .iter()
        .any(|e| e.verb == "patch" && res(e) == "nodes" && sub(e) == "status"));
    let level = |l: &str| events.iter().filter(|e| e.level == l).count();
    assert!(level("Metadata") > 10 * level("RequestResponse"));
    assert!(level("RequestResponse") >= 10);
    // The deploy: kubectl patch, a new ReplicaSet, pods with their full spec, bound by the scheduler.
    assert!(events.iter().any(|e| e.user.username == "alice@example.com"
        && e.verb == "patch"
        && res(e) == "deployments"
        && e.user_agent.as_deref() == Some("kubectl/v1.31.2 (darwin/arm64) kubernetes/5864a46")));
    assert!(events
        .iter()
        .any(|e| e.verb == "create" && res(e) == "replicasets"));
    let pod_creates: Vec<_> = events
        .iter()
        .filter(|e| {
            e.user.username == "system:serviceaccount:kube-system:replicaset-controller"
                && e.verb == "create"
                && res(e) == "pods"
                && e.stage == "ResponseComplete"
        })
        .collect();
    assert_eq!(pod_creates.len(), 5, "3 checkout + 2 payments pods");
    for p in pod_creates {
        assert_eq!(p.level, "RequestResponse");
        assert!(p.request_object.as_ref().unwrap()["spec"]["containers"].is_array());
        assert!(p.response_object.as_ref().unwrap()["metadata"]["uid"].is_string());
        assert_eq!(code(p), 201);
        assert!(p.user_agent.as_deref().unwrap().starts_with(
            "kube-controller-manager/v1.31.2 (linux/amd64) kubernetes/5864a46/system:serviceaccount:kube-system:replicaset-controller"
        ));
    }
    assert!(events
        .iter()
        .any(|e| e.user.username == "system:kube-scheduler"
            && sub(e) == "binding"
            && code(e) == 201));
}

#[test]
fn every_attack_step_is_present_in_order() {
    let events = demo();
    let first = |f: &dyn Fn(&AuditEvent) -> bool, what: &str| -> DateTime<Utc> {
        events
            .iter()
            .find(|e| f(e))
            .unwrap_or_else(|| panic!("missing: {what}"))
            .stage_timestamp
            .unwrap()
    };

    // Anonymous access: an allowed request beyond the health endpoints.
    let anon = first(
        &|e| {
            e.user.username == "system:anonymous"
                && attacker(e)
                && res(e) == "configmaps"
                && e.annotations["authorization.k8s.io/decision"] == "allow"
        },
        "anonymous allowed",
    );

    // Reconnaissance with curl.
    let recon = first(
        &|e| {
            e.user.username == SA
                && res(e) == "selfsubjectrulesreviews"
                && e.user_agent.as_deref() == Some("curl/8.5.0")
        },
        "SelfSubjectRulesReview",
    );
    first(
        &|e| e.user.username == SA && e.verb == "list" && res(e) == "namespaces",
        "list namespaces",
    );
    let forbidden = events
        .iter()
        .filter(|e| e.user.username == SA && attacker(e) && code(e) == 403)
        .collect::<Vec<_>>();
    assert!(forbidden.len() >= 4, "several 403s");
    assert!(forbidden
        .iter()
        .all(|e| e.annotations["authorization.k8s.io/decision"] == "forbid"));
    assert!(forbidden.iter().any(|e| e.request_uri == "/api/v1/pods"));

    // Secret theft: list, then a get whose response holds base64 data.
    let list = first(
        &|e| {
            e.user.username == SA
                && e.verb == "list"
                && res(e) == "secrets"
                && e.object_ref_field(|o| o.namespace.as_ref()) == Some("kube-system")
        },
        "list kube-system secrets",
    );
    let theft = events
        .iter()
        .find(|e| {
            e.user.username == SA
                && e.verb == "get"
                && res(e) == "secrets"
                && e.object_ref_field(|o| o.name.as_ref()) == Some("backup-s3-credentials")
        })
        .expect("get secret");
    assert_eq!(theft.level, "RequestResponse");
    let body = theft.response_object.as_ref().unwrap();
    assert_eq!(body["kind"], "Secret");
    assert_eq!(
        body["data"]["AWS_ACCESS_KEY_ID"],
        "QUtJQUlPU0ZPRE5ON0VYQU1QTEU="
    );
    assert!(
        body["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .unwrap()
            .contains("QUtJQUlPU0ZPRE5ON0VYQU1QTEU=")
    );

    // The privileged pod.
    let pod = events
        .iter()
        .find(|e| {
            attacker(e)
                && e.verb == "create"
                && res(e) == "pods"
                && sub(e).is_empty()
                && e.stage == "ResponseComplete"
        })
        .expect("privileged pod create");
    let spec = &pod.request_object.as_ref().unwrap()["spec"];
    assert_eq!(spec["hostPID"], true);
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(spec["containers"][0]["securityContext"]["privileged"], true);
    assert_eq!(spec["containers"][0]["image"], "alpine:3.20");
    assert_eq!(spec["volumes"][0]["hostPath"]["path"], "/");
    assert_eq!(
        pod.object_ref_field(|o| o.namespace.as_ref()),
        Some("default")
    );
    assert!(pod
        .object_ref_field(|o| o.name.as_ref())
        .unwrap()
        .starts_with("debug-"));
    let priv_pod = pod.stage_timestamp.unwrap();

    // RBAC escalation to cluster-admin.
    let crb = events
        .iter()
        .find(|e| {
            e.user.username == SA
                && e.verb == "create"
                && res(e) == "clusterrolebindings"
                && e.stage == "ResponseComplete"
                && e.request_object
                    .as_ref()
                    .is_some_and(|o| o["roleRef"]["name"] == "cluster-admin")
        })
        .expect("ClusterRoleBinding to cluster-admin");
    assert_eq!(
        crb.request_object.as_ref().unwrap()["subjects"][0]["name"],
        "gitlab-runner"
    );
    let escalation = crb.stage_timestamp.unwrap();

    // Exec into the privileged pod: 101, three stages under one auditID, command=sh.
    let exec: Vec<_> = events
        .iter()
        .filter(|e| {
            e.user.username == SA
                && sub(e) == "exec"
                && e.object_ref_field(|o| o.namespace.as_ref()) == Some("default")
        })
        .collect();
    let ok: Vec<_> = exec
        .iter()
        .filter(|e| e.stage != "RequestReceived" && code(e) == 101)
        .collect();
    assert_eq!(ok.len(), 2, "ResponseStarted and ResponseComplete with 101");
    let id = &ok[0].audit_id;
    let stages: Vec<_> = exec
        .iter()
        .filter(|e| &e.audit_id == id)
        .map(|e| e.stage.as_str())
        .collect();
    assert_eq!(
        stages,
        ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    );
    assert!(ok[0].request_uri.contains("command=sh"));
    assert!(
        exec.iter().any(|e| code(e) == 403),
        "the first exec attempt is forbidden"
    );
    let exec_t = ok[0].stage_timestamp.unwrap();

    // A ClusterRole with wildcard verbs.
    let role = first(
        &|e| {
            e.verb == "create"
                && res(e) == "clusterroles"
                && e.request_object
                    .as_ref()
                    .is_some_and(|o| o["rules"][0]["verbs"][0] == "*")
        },
        "wildcard ClusterRole",
    );

    assert!(anon < recon && recon < list && list < priv_pod);
    assert!(priv_pod < escalation && escalation < exec_t && exec_t < role);

    // The ordinary CI runner works from inside the cluster, not from 203.0.113.45.
    assert!(events.iter().any(|e| e.user.username == SA && !attacker(e)));
}

#[test]
fn scenario_steps_describe_the_story() {
    let steps = scenario_steps();
    assert_eq!(steps.len(), 7);
    let names: HashSet<_> = steps.iter().map(|s| s.name).collect();
    assert_eq!(names.len(), steps.len());
    for s in &steps {
        assert!(s.description.len() > 100, "{}", s.name);
        assert!(s.example_query.starts_with("SELECT ") && s.example_query.contains("FROM audit"));
    }
}

fn parse_line(line: &str) -> AuditEvent {
    assert!(
        !line.ends_with('\n') && !line.contains('\n'),
        "one compact line"
    );
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[test]
fn background_lines_parse_and_flow_in_time_order() {
    let start = end();
    let lines: Vec<String> = background_traffic(start, 200, 1).take(20_000).collect();
    let mut last = start;
    let mut stages: HashSet<(String, String)> = HashSet::new();
    let mut users = HashSet::new();
    for line in &lines {
        let e = parse_line(line);
        let t = e.stage_timestamp.unwrap();
        assert!(t >= last && t >= start);
        last = t;
        assert!(
            stages.insert((e.audit_id.clone(), e.stage.clone())),
            "duplicate {}",
            e.audit_id
        );
        assert!(!attacker(&e), "no attack in background traffic");
        users.insert(e.user.username);
        // The generated JSON keeps the API server's field order.
        assert!(line.starts_with(r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":""#));
    }
    assert!(users.len() > 15, "{users:?}");
    // ~200 events per simulated second.
    let secs = (last - start).num_milliseconds() as f64 / 1000.0;
    let rate = lines.len() as f64 / secs;
    assert!((170.0..230.0).contains(&rate), "rate {rate}");
}

#[test]
fn background_is_deterministic_per_seed() {
    let a: Vec<String> = background_traffic(end(), 1000, 5).take(2000).collect();
    let b: Vec<String> = background_traffic(end(), 1000, 5).take(2000).collect();
    let c: Vec<String> = background_traffic(end(), 1000, 6).take(2000).collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn background_pod_creates_carry_the_pod_spec() {
    let e = background_traffic(end(), 1000, 3)
        .map(|l| parse_line(&l))
        .find(|e| e.verb == "create" && res(e) == "pods" && e.stage == "ResponseComplete")
        .expect("a CI pod create");
    let pod: &Value = e.response_object.as_ref().unwrap();
    let name = pod["metadata"]["name"].as_str().unwrap();
    assert_eq!(Some(name), e.object_ref_field(|o| o.name.as_ref()));
    assert!(pod["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert!(pod["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert_eq!(pod["status"]["phase"], "Pending");
}
