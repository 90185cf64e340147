//! Realistic `audit.k8s.io/v1` Events as kube-apiserver's webhook backend sends them.

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

/// The two users of the tests: a person and a controller.
pub const ALICE: &str = "alice@example.com";
pub const CONTROLLER: &str = "system:serviceaccount:kube-system:replicaset-controller";

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// One request at one stage: `verb` on `resource` (core group, `v1`) `namespace/name`, at level
/// `Metadata`. The request URI, response code, timestamps, source IP, user agent and
/// authorization annotations are filled in as the API server would; adjust the returned value
/// for anything else (`level`, `requestObject`, `objectRef.subresource`, ...).
pub fn audit_event(
    audit_id: &str,
    stage: &str,
    verb: &str,
    user: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> Value {
    let collection = format!("/api/v1/namespaces/{namespace}/{resource}");
    let request_uri = match verb {
        "create" => collection,
        "list" => format!("{collection}?limit=500"),
        "watch" => format!("{collection}?watch=true&resourceVersion=4012"),
        _ => format!("{collection}/{name}"),
    };
    let human = !user.starts_with("system:");
    let mut object_ref = json!({"resource": resource, "namespace": namespace, "apiVersion": "v1"});
    if !name.is_empty() {
        object_ref["name"] = json!(name);
    }
    let mut event = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id,
        "stage": stage,
        "requestURI": request_uri,
        "verb": verb,
        "user": {
            "username": user,
            "uid": if human { "6f1a0c1e-0d57-4a59-9e55-2c0a8c5d1f10" } else { "b3c8a7a2-5f7e-4d1c-8d7e-0e6f3b1c2d4e" },
            "groups": if human { json!(["developers", "system:authenticated"]) } else { json!(["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]) },
        },
        "sourceIPs": [if human { "203.0.113.7" } else { "10.0.0.12" }],
        "userAgent": if human { "kubectl/v1.31.2 (linux/amd64) kubernetes/5864a46" } else { "kube-controller-manager/v1.31.2 (linux/amd64) kubernetes/5864a46/system:serviceaccount:kube-system:replicaset-controller" },
        "objectRef": object_ref,
        "requestReceivedTimestamp": now(),
        "stageTimestamp": now(),
    });
    if stage != "RequestReceived" {
        let code = if verb == "create" { 201 } else { 200 };
        event["responseStatus"] = json!({"metadata": {}, "code": code});
        event["annotations"] = json!({
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": if human { "RBAC: allowed by RoleBinding \"developers/shop\" of ClusterRole \"edit\" to Group \"developers\"" } else { "RBAC: allowed by ClusterRoleBinding \"system:controller:replicaset-controller\"" },
        });
    }
    event
}

/// An `exec` into `namespace/pod` by `user` at stage `ResponseStarted` (code 101), as the API
/// server records an interactive `kubectl exec -it ... -- sh`.
pub fn exec_event(audit_id: &str, user: &str, namespace: &str, pod: &str) -> Value {
    let mut e = audit_event(
        audit_id,
        "ResponseStarted",
        "create",
        user,
        "pods",
        namespace,
        pod,
    );
    e["requestURI"] = json!(format!(
        "/api/v1/namespaces/{namespace}/pods/{pod}/exec?command=sh&container=app&stdin=true&stdout=true&tty=true"
    ));
    e["objectRef"]["subresource"] = json!("exec");
    e["responseStatus"] = json!({"metadata": {}, "code": 101});
    e
}

/// A pod `namespace/name` created by `user` at level `RequestResponse`, with a privileged
/// container if `privileged`.
pub fn pod_create_event(
    audit_id: &str,
    user: &str,
    namespace: &str,
    name: &str,
    privileged: bool,
) -> Value {
    let mut e = audit_event(
        audit_id,
        "ResponseComplete",
        "create",
        user,
        "pods",
        namespace,
        name,
    );
    e["level"] = json!("RequestResponse");
    let pod = json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "containers": [{
                "name": "app",
                "image": "docker.io/library/alpine:3.20",
                "command": ["sleep", "infinity"],
                "securityContext": {"privileged": privileged},
            }],
        },
    });
    let mut created = pod.clone();
    created["metadata"]["uid"] = json!("0d9d3c3e-7a1b-4c55-9a0e-5b1f2f0c9a11");
    created["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
    e["requestObject"] = pod;
    e["responseObject"] = created;
    e
}

/// An `EventList` body holding `items`, as the webhook backend posts it.
pub fn event_list(items: &[Value]) -> Vec<u8> {
    json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items})
        .to_string()
        .into_bytes()
}

/// Standard base64 with padding, as Kubernetes encodes Secret `data`.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_the_rfc_4648_vectors() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(plain.as_bytes()), encoded);
    }
}
