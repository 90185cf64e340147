//! The simulated cluster: three nodes, the control plane on `node-a`, system components, a few
//! workloads (`shop`, `argocd`, `ci`), a developer, and the objects they touch.

use serde_json::{json, Value};

use crate::event::{stable_uid, Actor};

pub(crate) const K8S: &str = "v1.31.2";
pub(crate) const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
pub(crate) const NODE_IPS: [&str; 3] = ["10.0.1.11", "10.0.1.12", "10.0.1.13"];
/// The control plane (API server, controller manager, scheduler) runs on `node-a`.
pub(crate) const CONTROL_PLANE_IP: &str = "10.0.1.11";
/// Alice reaches the API server through the office VPN.
pub(crate) const ALICE_IP: &str = "10.8.0.6";
/// Where the stolen CI token is used from (TEST-NET-3, documentation range).
pub(crate) const ATTACKER_IP: &str = "203.0.113.45";

pub(crate) const KUBECTL_UA: &str = "kubectl/v1.31.2 (darwin/arm64) kubernetes/5864a46";
pub(crate) const KUBELET_UA: &str = "kubelet/v1.31.2 (linux/amd64) kubernetes/5864a46";
pub(crate) const CURL_UA: &str = "curl/8.5.0";
pub(crate) const ATTACKER_KUBECTL_UA: &str = "kubectl/v1.30.4 (linux/amd64) kubernetes/a51b3b7";

pub(crate) const SA_GROUPS_KUBE_SYSTEM: [&str; 3] = [
    "system:serviceaccounts",
    "system:serviceaccounts:kube-system",
    "system:authenticated",
];

fn kcm_ua(suffix: &str) -> String {
    format!("kube-controller-manager/{K8S} (linux/amd64) kubernetes/5864a46/{suffix}")
}

fn rbac_reason(kind: &str, binding: &str, role_kind: &str, role: &str, subject: &str) -> String {
    format!("RBAC: allowed by {kind} \"{binding}\" of {role_kind} \"{role}\" to {subject}")
}

/// A pod-bound service account token's `user.extra`, as Kubernetes 1.31 sets it.
fn bound_token_extra(pod: &str, node: &str) -> Value {
    json!({
        "authentication.kubernetes.io/credential-id": [format!("JTI={}", stable_uid(&format!("jti/{pod}")))],
        "authentication.kubernetes.io/node-name": [node],
        "authentication.kubernetes.io/node-uid": [stable_uid(&format!("node/{node}"))],
        "authentication.kubernetes.io/pod-name": [pod],
        "authentication.kubernetes.io/pod-uid": [stable_uid(&format!("pod/{pod}"))],
    })
}

pub(crate) fn kubelet(i: usize) -> Actor {
    Actor::new(
        &format!("system:node:{}", NODES[i]),
        &["system:nodes", "system:authenticated"],
        NODE_IPS[i],
        KUBELET_UA,
        "",
    )
}

/// The controller manager itself (leader election).
pub(crate) fn kcm() -> Actor {
    Actor::new(
        "system:kube-controller-manager",
        &["system:authenticated"],
        CONTROL_PLANE_IP,
        &kcm_ua("leader-election"),
        &rbac_reason(
            "RoleBinding",
            "system::leader-locking-kube-controller-manager/kube-system",
            "Role",
            "system::leader-locking-kube-controller-manager",
            "User \"system:kube-controller-manager\"",
        ),
    )
}

/// One of the controller manager's controllers, with its own service account
/// (`--use-service-account-credentials`).
pub(crate) fn controller(name: &str) -> Actor {
    Actor::new(
        &format!("system:serviceaccount:kube-system:{name}"),
        &SA_GROUPS_KUBE_SYSTEM,
        CONTROL_PLANE_IP,
        &kcm_ua(&format!("system:serviceaccount:kube-system:{name}")),
        &rbac_reason(
            "ClusterRoleBinding",
            &format!("system:controller:{name}"),
            "ClusterRole",
            &format!("system:controller:{name}"),
            &format!("ServiceAccount \"{name}/kube-system\""),
        ),
    )
    .uid(stable_uid(&format!("sa/kube-system/{name}")))
    .extra(json!({"authentication.kubernetes.io/credential-id": [format!("JTI={}", stable_uid(&format!("jti/{name}")))]}))
}

pub(crate) fn scheduler(leader_election: bool) -> Actor {
    let suffix = if leader_election {
        "leader-election"
    } else {
        "scheduler"
    };
    let a = Actor::new(
        "system:kube-scheduler",
        &["system:authenticated"],
        CONTROL_PLANE_IP,
        &format!("kube-scheduler/{K8S} (linux/amd64) kubernetes/5864a46/{suffix}"),
        &rbac_reason(
            "ClusterRoleBinding",
            "system:kube-scheduler",
            "ClusterRole",
            "system:kube-scheduler",
            "User \"system:kube-scheduler\"",
        ),
    );
    if leader_election {
        Actor {
            reason: rbac_reason(
                "RoleBinding",
                "system::leader-locking-kube-scheduler/kube-system",
                "Role",
                "system::leader-locking-kube-scheduler",
                "User \"system:kube-scheduler\"",
            ),
            ..a
        }
    } else {
        a
    }
}

pub(crate) fn apiserver() -> Actor {
    Actor::new(
        "system:apiserver",
        &["system:authenticated", "system:masters"],
        "::1",
        &format!("kube-apiserver/{K8S} (linux/amd64) kubernetes/5864a46"),
        "",
    )
    .uid(stable_uid("user/system:apiserver"))
}

/// Kubelet probes of the API server's static pod (`/livez`, `/readyz`): anonymous and allowed.
pub(crate) fn probe() -> Actor {
    Actor::new(
        "system:anonymous",
        &["system:unauthenticated"],
        CONTROL_PLANE_IP,
        "kube-probe/1.31",
        &rbac_reason(
            "ClusterRoleBinding",
            "system:public-info-viewer",
            "ClusterRole",
            "system:public-info-viewer",
            "Group \"system:unauthenticated\"",
        ),
    )
}

/// A service account running in a pod.
fn pod_sa(ns: &str, sa: &str, pod: &str, node: usize, ip: &str, ua: &str, reason: &str) -> Actor {
    Actor::new(
        &format!("system:serviceaccount:{ns}:{sa}"),
        &[
            "system:serviceaccounts",
            &format!("system:serviceaccounts:{ns}"),
            "system:authenticated",
        ],
        ip,
        ua,
        reason,
    )
    .uid(stable_uid(&format!("sa/{ns}/{sa}")))
    .extra(bound_token_extra(pod, NODES[node]))
}

pub(crate) fn coredns() -> Actor {
    pod_sa(
        "kube-system",
        "coredns",
        "coredns-7db6d8ff4d-4xk9t",
        1,
        "10.244.1.3",
        "coredns/v0.0.0 (linux/amd64) kubernetes/$Format",
        &rbac_reason(
            "ClusterRoleBinding",
            "system:coredns",
            "ClusterRole",
            "system:coredns",
            "ServiceAccount \"coredns/kube-system\"",
        ),
    )
}

pub(crate) fn metrics_server() -> Actor {
    pod_sa(
        "kube-system",
        "metrics-server",
        "metrics-server-6d94bc8694-x8p2v",
        2,
        "10.244.2.4",
        "metrics-server/v0.7.2 (linux/amd64) kubernetes/$Format",
        &rbac_reason(
            "ClusterRoleBinding",
            "system:metrics-server",
            "ClusterRole",
            "system:metrics-server",
            "ServiceAccount \"metrics-server/kube-system\"",
        ),
    )
}

pub(crate) fn kube_proxy(i: usize) -> Actor {
    let pods = ["kube-proxy-7rj2k", "kube-proxy-m9xq4", "kube-proxy-tz5lw"];
    pod_sa(
        "kube-system",
        "kube-proxy",
        pods[i],
        i,
        NODE_IPS[i],
        &format!("kube-proxy/{K8S} (linux/amd64) kubernetes/5864a46"),
        &rbac_reason(
            "ClusterRoleBinding",
            "kubeadm:node-proxier",
            "ClusterRole",
            "system:node-proxier",
            "ServiceAccount \"kube-proxy/kube-system\"",
        ),
    )
}

pub(crate) fn argocd() -> Actor {
    pod_sa(
        "argocd",
        "argocd-application-controller",
        "argocd-application-controller-0",
        2,
        "10.244.2.7",
        "argocd-application-controller/v0.0.0 (linux/amd64) kubernetes/$Format",
        &rbac_reason(
            "ClusterRoleBinding",
            "argocd-application-controller",
            "ClusterRole",
            "argocd-application-controller",
            "ServiceAccount \"argocd-application-controller/argocd\"",
        ),
    )
}

pub(crate) const GITLAB_RUNNER_POD: &str = "gitlab-runner-6f7b9c8d5-k2m4x";

/// The CI runner's service account. In its own namespace a RoleBinding lets it run build pods;
/// cluster-wide, an over-broad `ci-deployer` ClusterRoleBinding (for Helm deploys) is what the
/// attacker abuses.
pub(crate) fn gitlab_runner() -> Actor {
    pod_sa(
        "ci",
        "gitlab-runner",
        GITLAB_RUNNER_POD,
        1,
        "10.244.1.9",
        "gitlab-runner 17.5.2 (17-5-stable; go1.22.7; linux/amd64)",
        &rbac_reason(
            "RoleBinding",
            "gitlab-runner/ci",
            "Role",
            "gitlab-runner",
            "ServiceAccount \"gitlab-runner/ci\"",
        ),
    )
}

pub(crate) fn ci_deployer_reason() -> String {
    rbac_reason(
        "ClusterRoleBinding",
        "ci-deployer",
        "ClusterRole",
        "ci-deployer",
        "ServiceAccount \"gitlab-runner/ci\"",
    )
}

/// An application's own service account (reads its configuration through the API).
pub(crate) fn app_sa(app: &str, pod: &str, node: usize, ip: &str) -> Actor {
    pod_sa(
        "shop",
        app,
        pod,
        node,
        ip,
        &format!("{app}/1.8.2 (linux/amd64) kubernetes/$Format"),
        &rbac_reason(
            "RoleBinding",
            &format!("{app}-config-reader/shop"),
            "Role",
            "config-reader",
            &format!("ServiceAccount \"{app}/shop\""),
        ),
    )
}

pub(crate) fn alice() -> Actor {
    Actor::new(
        "alice@example.com",
        &["devs", "system:authenticated"],
        ALICE_IP,
        KUBECTL_UA,
        &rbac_reason(
            "RoleBinding",
            "devs-edit/shop",
            "ClusterRole",
            "edit",
            "Group \"devs\"",
        ),
    )
}

/// Running pods of the `shop` deployments: (name, node index, pod IP).
pub(crate) const WEB_PODS: [(&str, usize, &str); 3] = [
    ("web-7c9d8f6b5d-2x4qp", 0, "10.244.0.14"),
    ("web-7c9d8f6b5d-9kz7m", 1, "10.244.1.21"),
    ("web-7c9d8f6b5d-tq8wn", 2, "10.244.2.17"),
];
pub(crate) const CART_PODS: [(&str, usize, &str); 2] = [
    ("cart-5b8f7d9c4-hx6rl", 1, "10.244.1.22"),
    ("cart-5b8f7d9c4-p2w9d", 2, "10.244.2.18"),
];

/// A container of an application pod, as its pod template declares it (with API defaults).
fn app_container(name: &str, image: &str, port: u16) -> Value {
    json!({
        "name": name,
        "image": image,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [{"name": "LOG_LEVEL", "value": "info"}],
        "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}
    })
}

/// A pod as a ReplicaSet controller sends it (`requestObject` of the create).
#[allow(clippy::too_many_arguments)]
pub(crate) fn replicaset_pod(
    ns: &str,
    app: &str,
    rs: &str,
    rs_uid: &str,
    hash: &str,
    name: &str,
    image: &str,
) -> Value {
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "generateName": format!("{rs}-"),
            "namespace": ns,
            "labels": {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "shop", "pod-template-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": rs_uid, "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "containers": [app_container(app, image, 8080)],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": app,
            "serviceAccount": app,
            "securityContext": {"runAsUser": 10001, "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "schedulerName": "default-scheduler",
            "enableServiceLinks": true,
            "priority": 0,
            "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {}
    })
}

/// A CI build pod as the GitLab runner sends it; `name` may hold template placeholders.
pub(crate) fn ci_build_pod(name: &str) -> Value {
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": "ci",
            "labels": {"pod": name, "project.runner.gitlab.com/id": "42", "manager": "gitlab-runner"},
            "annotations": {"job.runner.gitlab.com/url": "https://gitlab.example.com/shop/web/-/jobs/88412", "project.runner.gitlab.com/id": "42"}
        },
        "spec": {
            "volumes": [{"name": "repo", "emptyDir": {}}],
            "containers": [
                {"name": "build", "image": "registry.example.com/ci/rust-builder:1.82", "command": ["sh", "-c", "if [ -x /usr/local/bin/bash ]; then\n\texec /usr/local/bin/bash \nelif [ -x /usr/bin/bash ]; then\n\texec /usr/bin/bash \nelse\n\texec sh\nfi"], "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}, "volumeMounts": [{"name": "repo", "mountPath": "/builds"}], "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent", "stdin": true},
                {"name": "helper", "image": "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v17.5.2", "resources": {}, "volumeMounts": [{"name": "repo", "mountPath": "/builds"}], "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent", "stdin": true}
            ],
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "enableServiceLinks": true,
            "priority": 0,
            "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {}
    })
}

/// The attacker's pod: privileged, host namespaces, the node's root filesystem at `/host`.
pub(crate) fn privileged_pod(name: &str) -> Value {
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "debug"}},
        "spec": {
            "volumes": [{"name": "host", "hostPath": {"path": "/", "type": ""}}],
            "containers": [{
                "name": "debug",
                "image": "alpine:3.20",
                "command": ["sleep", "infinity"],
                "resources": {},
                "volumeMounts": [{"name": "host", "mountPath": "/host"}],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {"privileged": true},
                "stdin": true,
                "tty": true
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "hostNetwork": true,
            "hostPID": true,
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [{"operator": "Exists"}],
            "enableServiceLinks": true,
            "priority": 0,
            "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {}
    })
}

/// The pod as stored after admission: uid, resourceVersion, creation time, the service account
/// token volume, default tolerations, `Pending` status. That is the `responseObject` of a create.
pub(crate) fn admitted_pod(mut pod: Value, uid: &str, rv: &str, created: &str, vol: &str) -> Value {
    let meta = &mut pod["metadata"];
    meta["uid"] = uid.into();
    meta["resourceVersion"] = rv.into();
    meta["creationTimestamp"] = created.into();
    let spec = &mut pod["spec"];
    let volume = json!({"name": vol, "projected": {"sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
    ], "defaultMode": 420}});
    match spec["volumes"].as_array_mut() {
        Some(v) => v.push(volume),
        None => spec["volumes"] = json!([volume]),
    }
    if let Some(cs) = spec["containers"].as_array_mut() {
        for c in cs {
            let mount = json!({"name": vol, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"});
            match c["volumeMounts"].as_array_mut() {
                Some(m) => m.push(mount),
                None => c["volumeMounts"] = json!([mount]),
            }
        }
    }
    if spec.get("tolerations").is_none() {
        spec["tolerations"] = json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ]);
    }
    let text = pod.to_string();
    let qos = if text.contains("\"requests\"") || text.contains("\"limits\"") {
        "Burstable"
    } else {
        "BestEffort"
    };
    pod["status"] = json!({"phase": "Pending", "qosClass": qos});
    pod
}
