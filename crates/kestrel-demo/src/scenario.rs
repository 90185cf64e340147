//! The demo scenario: two hours of ordinary traffic, a developer's deploy, an ArgoCD sync, and an
//! attack with a stolen CI service-account token.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::background::timed_traffic;
use crate::cluster::{
    self, admitted_pod, privileged_pod, replicaset_pod, ATTACKER_IP, ATTACKER_KUBECTL_UA, CURL_UA,
    WEB_PODS,
};
use crate::event::{stable_uid, Actor, Req, Stage};
use crate::template::Timing;

/// One step of the attack story, for `kestrel up` to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScenarioStep {
    /// Short name, e.g. `secret-theft`.
    pub name: &'static str,
    /// One paragraph: when it happens (as an offset into the two-hour window) and what it shows.
    pub description: &'static str,
    /// An SQL query over the `audit` table that shows the step.
    pub example_query: &'static str,
}

/// How long the demo scenario spans, ending at `end`.
pub const SCENARIO_SPAN_MINUTES: i64 = 120;

/// Minutes from the start of the window at which each attack step begins (jittered by < 30 s).
pub(crate) const STEP_OFFSETS_MIN: [i64; 7] = [58, 62, 66, 70, 74, 76, 81];

const STEPS: [ScenarioStep; 7] = [
    ScenarioStep {
        name: "anonymous-access",
        description: "T+58m (about 62 minutes before the end): from 203.0.113.45, with curl/8.5.0 and no credentials, someone probes the API server as system:anonymous. /version and kube-public/cluster-info are allowed, as in every kubeadm cluster; listing namespaces and kube-system secrets is forbidden (403); but listing kube-system configmaps is ALLOWED, through a forgotten RoleBinding \"legacy-monitoring-read\" that grants the view role to system:anonymous.",
        example_query: "SELECT time, source_ip, verb, request_uri, response_code, authorization_decision, authorization_reason FROM audit WHERE user_name = 'system:anonymous' AND user_agent NOT LIKE 'kube-probe/%' ORDER BY time",
    },
    ScenarioStep {
        name: "reconnaissance",
        description: "T+62m: the same address now presents a stolen token of the CI runner's service account system:serviceaccount:ci:gitlab-runner (its user.extra still names the runner pod on node-b, but the request comes from outside the cluster, with curl). It asks what it may do (SelfSubjectRulesReview), lists namespaces and ClusterRoleBindings (allowed by the over-broad ci-deployer ClusterRoleBinding), and is refused (403) on pods across namespaces, nodes, kube-system pods and CRDs.",
        example_query: "SELECT time, verb, resource, namespace, request_uri, response_code FROM audit WHERE user_agent LIKE 'curl/%' AND user_name = 'system:serviceaccount:ci:gitlab-runner' ORDER BY time",
    },
    ScenarioStep {
        name: "secret-theft",
        description: "T+66m: the stolen token lists the secrets of kube-system, then reads backup-s3-credentials (AWS keys), bootstrap-token-7x9k2p (a node-join token) and argocd/argocd-initial-admin-secret. This cluster logs secret reads at RequestResponse level, so the responses carry the secret data, base64-encoded and again in plain text inside the kubectl.kubernetes.io/last-applied-configuration annotation: Kestrel redacts both before storage, which this query shows.",
        example_query: "SELECT time, verb, namespace, name, response_code, response_object FROM audit WHERE resource = 'secrets' AND source_ip = '203.0.113.45' ORDER BY time",
    },
    ScenarioStep {
        name: "privileged-pod",
        description: "T+70m: the attacker creates pod default/debug-x7k2 from alpine:3.20 with privileged: true, hostPID, hostNetwork, a toleration for every taint and the node's root filesystem (hostPath /) mounted at /host; the scheduler binds it to node-a, the control-plane node. At T+72m a kubectl exec into it is still forbidden (403): the ci-deployer role allows pods but not pods/exec.",
        example_query: "SELECT time, user_name, source_ip, namespace, name, response_code, request_object FROM audit WHERE resource = 'pods' AND verb = 'create' AND subresource IS NULL AND request_object LIKE '%\"privileged\":true%' ORDER BY time",
    },
    ScenarioStep {
        name: "rbac-escalation",
        description: "T+74m: using the ci-deployer role's rights on RBAC objects, the service account binds itself to cluster-admin with a new ClusterRoleBinding ci-runner-admin (kubectl from 203.0.113.45). From now on every request of system:serviceaccount:ci:gitlab-runner is allowed by cluster-admin.",
        example_query: "SELECT time, user_name, source_ip, verb, resource, name, response_code, request_object FROM audit WHERE api_group = 'rbac.authorization.k8s.io' AND verb IN ('create', 'update', 'patch', 'delete') ORDER BY time",
    },
    ScenarioStep {
        name: "exec-into-pod",
        description: "T+76m: now cluster-admin, the attacker runs kubectl exec -it debug-x7k2 -- sh: a pods/exec request answered 101 Switching Protocols, with RequestReceived, ResponseStarted and ResponseComplete stages sharing one auditID and a session of about nine minutes, a root shell with the control-plane node's filesystem under /host. The CI runner's own execs into its build pods in namespace ci are the normal baseline.",
        example_query: "SELECT time, stage, user_name, source_ip, namespace, name, response_code, request_uri FROM audit WHERE subresource = 'exec' AND namespace <> 'ci' ORDER BY time",
    },
    ScenarioStep {
        name: "persistence",
        description: "T+81m: for lasting access the attacker creates service account kube-system/node-maintenance, a ClusterRole node-maintenance with wildcard verbs on every resource and non-resource URL, a ClusterRoleBinding to it, and requests a one-year token for the new service account (serviceaccounts/token). At T+84m it lists the secrets of every namespace.",
        example_query: "SELECT time, verb, resource, subresource, namespace, name, response_code, request_object FROM audit WHERE source_ip = '203.0.113.45' AND verb = 'create' AND resource IN ('serviceaccounts', 'clusterroles', 'clusterrolebindings') ORDER BY time",
    },
];

/// The attack story, step by step.
pub fn scenario_steps() -> Vec<ScenarioStep> {
    STEPS.to_vec()
}

fn ts(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn ts_secs(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::Secs, true)
}

const SEC: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;

fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Hand-written requests of the scenario, collected with their event times.
struct Story {
    rng: SmallRng,
    start_ns: i64,
    rv: u64,
    out: Vec<(i64, Value)>,
}

impl Story {
    fn at(&self, minutes: i64, seconds: i64) -> i64 {
        self.start_ns + minutes * 60 * SEC + seconds * SEC
    }

    /// `minutes` into the window plus up to `max_secs` of seed-dependent jitter.
    fn jittered(&mut self, minutes: i64, max_secs: i64) -> i64 {
        let secs = self.rng.random_range(0..max_secs);
        let t = self.at(minutes, 0);
        self.after(t, secs)
    }

    /// `secs` after `t`, give or take a human's sub-second timing.
    fn after(&mut self, t: i64, secs: i64) -> i64 {
        t + secs * SEC + self.rng.random_range(0..800) * MS + self.rng.random_range(0..1000) * 1000
    }

    /// 16 hex digits, as in event names.
    fn hex16(&mut self) -> String {
        format!("{:016x}", self.rng.random::<u64>())
    }

    fn uuid(&mut self) -> String {
        let bytes: [u8; 16] = self.rng.random();
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    fn rv(&mut self) -> String {
        self.rv += self.rng.random_range(3..40);
        self.rv.to_string()
    }

    fn suffix(&mut self) -> String {
        const A: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..5)
            .map(|_| A[self.rng.random_range(0..A.len())] as char)
            .collect()
    }

    /// Emits the stages of `req` starting at `t` (ns); returns the time of its last stage.
    fn emit(&mut self, t: i64, timing: Timing, latency_ms: i64, req: &Req) -> i64 {
        let id = self.uuid();
        let latency = latency_ms * MS + self.rng.random_range(0..1000) * 1000;
        let (received, complete) = match timing {
            Timing::Complete => (t - latency, t),
            Timing::Both | Timing::Streaming => (t, t + latency),
        };
        let rts = ts(received);
        let mut stages = vec![(Stage::ResponseComplete, complete)];
        if timing != Timing::Complete {
            stages.insert(0, (Stage::RequestReceived, received));
        }
        if timing == Timing::Streaming {
            stages.insert(
                1,
                (
                    Stage::ResponseStarted,
                    received + (latency / 8).min(30 * MS),
                ),
            );
        }
        for (stage, at) in stages {
            let e = req.render(&id, stage, &rts, &ts(at)).to_value();
            self.out.push((at, e));
        }
        complete
    }

    fn one(&mut self, t: i64, latency_ms: i64, req: &Req) -> i64 {
        self.emit(t, Timing::Complete, latency_ms, req)
    }

    fn both(&mut self, t: i64, latency_ms: i64, req: &Req) -> i64 {
        self.emit(t, Timing::Both, latency_ms, req)
    }
}

/// A Deployment as the API server returns it after a patch.
fn deployment(ns: &str, app: &str, image: &str, generation: u64, rv: &str, created: &str) -> Value {
    json!({
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": app, "namespace": ns, "uid": stable_uid(&format!("deploy/{ns}/{app}")),
            "resourceVersion": rv, "generation": generation, "creationTimestamp": created,
            "labels": {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "shop", "argocd.argoproj.io/instance": "shop"},
            "annotations": {"deployment.kubernetes.io/revision": (generation - 1).to_string()}
        },
        "spec": {
            "replicas": if app == "checkout" { 3 } else { 2 },
            "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "shop"}},
                "spec": {"containers": [{"name": app, "image": image, "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}], "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}, "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
                         "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst", "serviceAccountName": app, "serviceAccount": app, "securityContext": {"runAsUser": 10001, "fsGroup": 10001}, "schedulerName": "default-scheduler"}
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600
        },
        "status": {"observedGeneration": generation - 1, "replicas": if app == "checkout" { 3 } else { 2 }, "updatedReplicas": if app == "checkout" { 3 } else { 2 }, "readyReplicas": if app == "checkout" { 3 } else { 2 }, "availableReplicas": if app == "checkout" { 3 } else { 2 },
                   "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."}, {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet \"{app}\" has successfully progressed.")}]}
    })
}

/// Deployments that the demo rolls out. The background traffic keeps touching the long-running
/// `web` and `cart` pods, so the rollouts replace other ones.
const CHECKOUT_PODS: [(&str, usize, &str); 3] = [
    ("checkout-6d4f9b7c8d-8fjq2", 0, "10.244.0.19"),
    ("checkout-6d4f9b7c8d-vl5xz", 1, "10.244.1.27"),
    ("checkout-6d4f9b7c8d-zr4wd", 2, "10.244.2.23"),
];
const PAYMENTS_PODS: [(&str, usize, &str); 2] = [
    ("payments-7b5c9d8f6-c6hbn", 2, "10.244.2.25"),
    ("payments-7b5c9d8f6-kp8tw", 0, "10.244.0.21"),
];

struct Rollout<'a> {
    ns: &'a str,
    app: &'a str,
    old_rs: &'a str,
    new_hash: &'a str,
    image: &'a str,
    old_pods: &'a [(&'a str, usize, &'a str)],
}

/// What the controllers, scheduler and kubelets do after a Deployment's pod template changes:
/// a new ReplicaSet, one new pod at a time (create, bind, start), one old pod removed per step.
/// Returns when the rollout is done.
fn rollout(s: &mut Story, t: i64, r: &Rollout<'_>) -> i64 {
    let dc = cluster::controller("deployment-controller");
    let rsc = cluster::controller("replicaset-controller");
    let eps = cluster::controller("endpointslice-controller");
    let sched = cluster::scheduler(false);
    let (ns, app) = (r.ns, r.app);
    let new_rs = format!("{app}-{}", r.new_hash);
    let new_rs_uid = s.uuid();
    let deploy_path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{app}/status");
    let deploy_status = |rv: &str| {
        Req::new(&dc, "update", deploy_path.clone())
            .res("deployments")
            .apps()
            .ns(ns)
            .name(app)
            .sub("status")
            .uid(&stable_uid(&format!("deploy/{ns}/{app}")))
            .rv(rv)
    };
    let mut now = t + 40 * MS;
    s.one(
        now,
        9,
        &Req::new(
            &dc,
            "create",
            format!("/apis/apps/v1/namespaces/{ns}/replicasets"),
        )
        .res("replicasets")
        .apps()
        .ns(ns)
        .name(&new_rs)
        .code(201),
    );
    now += 20 * MS;
    let rv = s.rv();
    s.one(now, 6, &deploy_status(&rv));
    now += 15 * MS;
    s.one(now, 5, &deploy_status(&rv).conflict());

    for (i, (old_pod, old_node, _)) in r.old_pods.iter().enumerate() {
        now += 100 * MS;
        if i > 0 {
            let rv = s.rv();
            s.one(
                now,
                7,
                &Req::new(
                    &dc,
                    "update",
                    format!("/apis/apps/v1/namespaces/{ns}/replicasets/{new_rs}"),
                )
                .res("replicasets")
                .apps()
                .ns(ns)
                .name(&new_rs)
                .uid(&new_rs_uid)
                .rv(&rv),
            );
            now += 30 * MS;
        }
        // The ReplicaSet controller creates the pod, logged with its full spec.
        let name = format!("{new_rs}-{}", s.suffix());
        let pod = replicaset_pod(ns, app, &new_rs, &new_rs_uid, r.new_hash, &name, r.image);
        let uid = s.uuid();
        let rv = s.rv();
        let vol = format!("kube-api-access-{}", s.suffix());
        let created = admitted_pod(pod.clone(), &uid, &rv, &ts_secs(now), &vol);
        now = s.both(
            now,
            14,
            &Req::new(&rsc, "create", format!("/api/v1/namespaces/{ns}/pods"))
                .level("RequestResponse")
                .res("pods")
                .ns(ns)
                .name(&name)
                .code(201)
                .annotate(
                    "pod-security.kubernetes.io/enforce-policy",
                    "restricted:latest",
                )
                .req_obj(pod)
                .resp_obj(created),
        );
        // The scheduler binds it to a node; the kubelet there starts it.
        let node = (old_node + 1) % 3;
        now += 25 * MS;
        s.one(
            now,
            6,
            &Req::new(
                &sched,
                "create",
                format!("/api/v1/namespaces/{ns}/pods/{name}/binding"),
            )
            .res("pods")
            .ns(ns)
            .name(&name)
            .sub("binding")
            .code(201),
        );
        let ev = format!("{name}.{}", s.hex16());
        s.one(
            now + 8 * MS,
            5,
            &Req::new(
                &sched,
                "create",
                format!("/apis/events.k8s.io/v1/namespaces/{ns}/events"),
            )
            .res("events")
            .group("events.k8s.io", "v1")
            .ns(ns)
            .name(&ev)
            .code(201),
        );
        let kubelet = cluster::kubelet(node);
        let status = Req::new(
            &kubelet,
            "patch",
            format!("/api/v1/namespaces/{ns}/pods/{name}/status"),
        )
        .res("pods")
        .ns(ns)
        .name(&name)
        .sub("status");
        s.one(now + 1200 * MS, 9, &status);
        for k in 0..2 {
            let ev = format!("{name}.{}", s.hex16());
            s.one(
                now + (2600 + k * 400) * MS,
                5,
                &Req::new(
                    &kubelet,
                    "create",
                    format!("/api/v1/namespaces/{ns}/events"),
                )
                .res("events")
                .ns(ns)
                .name(&ev)
                .code(201),
            );
        }
        s.one(now + 9 * SEC, 8, &status);
        let rv = s.rv();
        s.one(
            now + 9 * SEC + 40 * MS,
            6,
            &Req::new(
                &eps,
                "update",
                format!("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{app}-8xk2p"),
            )
            .res("endpointslices")
            .group("discovery.k8s.io", "v1")
            .ns(ns)
            .name(&format!("{app}-8xk2p"))
            .uid(&stable_uid(&format!("eps/{ns}/{app}-8xk2p")))
            .rv(&rv),
        );
        // Ready: scale the old ReplicaSet down by one and delete one old pod.
        now += 10 * SEC;
        let rv = s.rv();
        s.one(
            now,
            7,
            &Req::new(
                &dc,
                "update",
                format!("/apis/apps/v1/namespaces/{ns}/replicasets/{}", r.old_rs),
            )
            .res("replicasets")
            .apps()
            .ns(ns)
            .name(r.old_rs)
            .uid(&stable_uid(&format!("rs/{ns}/{}", r.old_rs)))
            .rv(&rv),
        );
        now += 60 * MS;
        s.one(
            now,
            11,
            &Req::new(
                &rsc,
                "delete",
                format!("/api/v1/namespaces/{ns}/pods/{old_pod}"),
            )
            .res("pods")
            .ns(ns)
            .name(old_pod),
        );
        let old_kubelet = cluster::kubelet(*old_node);
        s.one(
            now + 2 * SEC,
            9,
            &Req::new(
                &old_kubelet,
                "patch",
                format!("/api/v1/namespaces/{ns}/pods/{old_pod}/status"),
            )
            .res("pods")
            .ns(ns)
            .name(old_pod)
            .sub("status"),
        );
        s.one(
            now + 3 * SEC,
            8,
            &Req::new(
                &old_kubelet,
                "delete",
                format!("/api/v1/namespaces/{ns}/pods/{old_pod}"),
            )
            .res("pods")
            .ns(ns)
            .name(old_pod),
        );
        now += 12 * SEC;
    }
    let rv = s.rv();
    s.one(now, 6, &deploy_status(&rv));
    now
}

/// Alice lists pods, reads logs, ships a new web image and watches the rollout.
fn alice_deploys(s: &mut Story, created: &str) {
    let alice = cluster::alice();
    let t = s.jittered(20, 30);
    s.both(
        t,
        11,
        &Req::new(&alice, "list", "/api/v1/namespaces/shop/pods?limit=500")
            .res("pods")
            .ns("shop"),
    );
    s.both(
        t + 40 * SEC,
        240,
        &Req::new(
            &alice,
            "get",
            format!(
                "/api/v1/namespaces/shop/pods/{}/log?container=web&tailLines=100",
                WEB_PODS[0].0
            ),
        )
        .res("pods")
        .ns("shop")
        .name(WEB_PODS[0].0)
        .sub("log"),
    );
    let t = s.at(22, 0);
    let image = "registry.example.com/shop/checkout:3.2.0";
    let rv = s.rv();
    let done = s.both(
        t,
        18,
        &Req::new(&alice, "patch", "/apis/apps/v1/namespaces/shop/deployments/checkout?fieldManager=kubectl-set")
            .level("RequestResponse")
            .res("deployments")
            .apps()
            .ns("shop")
            .name("checkout")
            .req_obj(json!({"spec": {"template": {"spec": {"containers": [{"image": image, "name": "checkout"}]}}}}))
            .resp_obj(deployment("shop", "checkout", image, 15, &rv, created)),
    );
    let end = rollout(
        s,
        done,
        &Rollout {
            ns: "shop",
            app: "checkout",
            old_rs: "checkout-6d4f9b7c8d",
            new_hash: "5f6d7c8b94",
            image,
            old_pods: &CHECKOUT_PODS,
        },
    );
    // `kubectl rollout status` watched the Deployment until the rollout finished.
    s.one(
        end + 300 * MS,
        (end + 300 * MS - done - 2 * SEC) / MS,
        &Req::new(&alice, "watch", "/apis/apps/v1/namespaces/shop/deployments?fieldSelector=metadata.name%3Dcheckout&resourceVersion=0&watch=true")
            .res("deployments")
            .apps()
            .ns("shop"),
    );
    s.both(
        end + 20 * SEC,
        9,
        &Req::new(&alice, "list", "/api/v1/namespaces/shop/pods?limit=500")
            .res("pods")
            .ns("shop"),
    );
}

/// ArgoCD syncs a new payments image from Git.
fn argocd_syncs(s: &mut Story, created: &str) {
    let argo = cluster::argocd();
    let t = s.jittered(35, 40);
    let image = "registry.example.com/shop/payments:2.4.1";
    s.one(
        t,
        5,
        &Req::new(
            &argo,
            "get",
            "/apis/apps/v1/namespaces/shop/deployments/payments",
        )
        .res("deployments")
        .apps()
        .ns("shop")
        .name("payments"),
    );
    let rv = s.rv();
    let done = s.one(
        t + 150 * MS,
        21,
        &Req::new(&argo, "patch", "/apis/apps/v1/namespaces/shop/deployments/payments")
            .level("RequestResponse")
            .res("deployments")
            .apps()
            .ns("shop")
            .name("payments")
            .req_obj(json!({"metadata": {"annotations": {"argocd.argoproj.io/tracking-id": "shop:apps/Deployment:shop/payments"}}, "spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "payments"}], "containers": [{"image": image, "name": "payments"}]}}}}))
            .resp_obj(deployment("shop", "payments", image, 9, &rv, created)),
    );
    rollout(
        s,
        done,
        &Rollout {
            ns: "shop",
            app: "payments",
            old_rs: "payments-7b5c9d8f6",
            new_hash: "6c9b8d7f5",
            image,
            old_pods: &PAYMENTS_PODS,
        },
    );
}

fn secret(
    ns: &str,
    name: &str,
    ty: &str,
    data: &[(&str, &str)],
    rv: &str,
    created: &str,
    applied: bool,
) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), b64(v.as_bytes()).into()))
        .collect();
    let mut meta = json!({
        "name": name, "namespace": ns, "uid": stable_uid(&format!("secret/{ns}/{name}")),
        "resourceVersion": rv, "creationTimestamp": created
    });
    if applied {
        // `kubectl apply` keeps the whole manifest, data included, in an annotation.
        let manifest = json!({"apiVersion": "v1", "data": data, "kind": "Secret", "metadata": {"annotations": {}, "name": name, "namespace": ns}, "type": ty});
        meta["annotations"] =
            json!({"kubectl.kubernetes.io/last-applied-configuration": format!("{manifest}\n")});
    }
    json!({"kind": "Secret", "apiVersion": "v1", "metadata": meta, "data": data, "type": ty})
}

/// When the attack's steps happened in the audit story, so that the node-side logs
/// ([`crate::pod_logs`]) tell the same story at the same moments. UTC nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttackTimeline {
    /// The start of the scenario's window (`end` minus [`SCENARIO_SPAN_MINUTES`]).
    pub start_ns: i64,
    pub end_ns: i64,
    /// Step 1: the first anonymous request.
    pub anonymous: i64,
    /// Step 2: the first request with the stolen token.
    pub recon: i64,
    /// Step 3: the list of kube-system secrets.
    pub secret_theft: i64,
    /// Step 4: the privileged pod `default/debug-x7k2` is stored (the scheduler binds it 30 ms
    /// later, to `node-a`).
    pub debug_pod_created: i64,
    pub debug_pod_uid: String,
    /// Step 4: the forbidden exec attempt.
    pub exec_forbidden: i64,
    /// Step 5: the cluster-admin binding.
    pub escalation: i64,
    /// Step 6: the exec session into `debug-x7k2`, start and end.
    pub exec_start: i64,
    pub exec_end: i64,
    /// Step 7: the new service account, its token request, the list of every secret.
    pub persistence: i64,
    pub token_request: i64,
    pub all_secrets: i64,
}

fn attack(s: &mut Story, created: &str) -> AttackTimeline {
    let anon = Actor::new(
        "system:anonymous",
        &["system:unauthenticated"],
        ATTACKER_IP,
        CURL_UA,
        "RBAC: allowed by ClusterRoleBinding \"system:public-info-viewer\" of ClusterRole \"system:public-info-viewer\" to Group \"system:unauthenticated\"",
    );
    let jitter = |s: &mut Story, i: usize| s.jittered(STEP_OFFSETS_MIN[i], 30);

    // 1. Anonymous probing.
    let t = jitter(s, 0);
    let anonymous = t;
    s.one(t, 2, &Req::new(&anon, "get", "/version"));
    let at = s.after(t, 4);
    s.one(
        at,
        3,
        &Req::new(&anon, "list", "/api/v1/namespaces")
            .res("namespaces")
            .forbidden(),
    );
    let at = s.after(t, 9);
    s.one(
        at,
        3,
        &Req::new(&anon, "get", "/api/v1/namespaces/kube-public/configmaps/cluster-info")
            .res("configmaps")
            .ns("kube-public")
            .name("cluster-info")
            .reason("RBAC: allowed by RoleBinding \"kubeadm:bootstrap-signer-clusterinfo/kube-public\" of Role \"kubeadm:bootstrap-signer-clusterinfo\" to User \"system:anonymous\""),
    );
    let at = s.after(t, 15);
    s.one(
        at,
        7,
        &Req::new(&anon, "list", "/api/v1/namespaces/kube-system/configmaps")
            .res("configmaps")
            .ns("kube-system")
            .reason("RBAC: allowed by RoleBinding \"legacy-monitoring-read/kube-system\" of ClusterRole \"view\" to User \"system:anonymous\""),
    );
    let at = s.after(t, 21);
    s.one(
        at,
        3,
        &Req::new(&anon, "list", "/api/v1/namespaces/kube-system/secrets")
            .res("secrets")
            .ns("kube-system")
            .forbidden(),
    );

    // 2. Reconnaissance with the stolen CI token.
    let sa = cluster::gitlab_runner()
        .with_ip(ATTACKER_IP)
        .with_ua(CURL_UA);
    let sa = Actor {
        reason: cluster::ci_deployer_reason(),
        ..sa
    };
    let t = jitter(s, 1);
    let recon = t;
    s.one(
        t,
        3,
        &Req::new(&sa, "get", "/api").reason("RBAC: allowed by ClusterRoleBinding \"system:discovery\" of ClusterRole \"system:discovery\" to Group \"system:authenticated\""),
    );
    let rules = json!({
        "resourceRules": [
            {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
            {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["namespaces"]},
            {"verbs": ["get", "list", "create", "update", "patch", "delete"], "apiGroups": [""], "resources": ["secrets", "configmaps", "services"]},
            {"verbs": ["create", "get", "delete"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["*"], "apiGroups": ["apps"], "resources": ["*"]},
            {"verbs": ["*"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings", "clusterroles", "clusterrolebindings"]}
        ],
        "nonResourceRules": [
            {"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"]}
        ],
        "incomplete": false
    });
    let at = s.after(t, 3);
    s.one(
        at,
        4,
        &Req::new(&sa, "create", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews")
            .level("RequestResponse")
            .res("selfsubjectrulesreviews")
            .group("authorization.k8s.io", "v1")
            .code(201)
            .reason("RBAC: allowed by ClusterRoleBinding \"system:basic-user\" of ClusterRole \"system:basic-user\" to Group \"system:authenticated\"")
            .req_obj(json!({"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {"creationTimestamp": null}, "spec": {"namespace": "kube-system"}, "status": {"resourceRules": null, "nonResourceRules": null, "incomplete": false}}))
            .resp_obj(json!({"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {"creationTimestamp": null}, "spec": {"namespace": "kube-system"}, "status": rules})),
    );
    let at = s.after(t, 8);
    s.one(
        at,
        6,
        &Req::new(&sa, "list", "/api/v1/namespaces").res("namespaces"),
    );
    let at = s.after(t, 12);
    s.one(
        at,
        4,
        &Req::new(&sa, "list", "/api/v1/pods")
            .res("pods")
            .forbidden(),
    );
    let at = s.after(t, 15);
    s.one(
        at,
        3,
        &Req::new(&sa, "list", "/api/v1/nodes")
            .res("nodes")
            .forbidden(),
    );
    let at = s.after(t, 25);
    s.one(
        at,
        9,
        &Req::new(
            &sa,
            "list",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        )
        .res("clusterrolebindings")
        .rbac(),
    );
    let at = s.after(t, 30);
    s.one(
        at,
        3,
        &Req::new(&sa, "list", "/api/v1/namespaces/kube-system/pods")
            .res("pods")
            .ns("kube-system")
            .forbidden(),
    );
    let at = s.after(t, 34);
    s.one(
        at,
        3,
        &Req::new(
            &sa,
            "list",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        )
        .res("customresourcedefinitions")
        .group("apiextensions.k8s.io", "v1")
        .forbidden(),
    );

    // 3. Secret theft.
    let t = jitter(s, 2);
    let secret_theft = t;
    s.one(
        t,
        12,
        &Req::new(&sa, "list", "/api/v1/namespaces/kube-system/secrets")
            .res("secrets")
            .ns("kube-system"),
    );
    let stolen = [
        (
            20,
            secret(
                "kube-system",
                "backup-s3-credentials",
                "Opaque",
                &[
                    ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
                    (
                        "AWS_SECRET_ACCESS_KEY",
                        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                    ),
                    ("AWS_DEFAULT_REGION", "eu-west-1"),
                    ("BUCKET", "s3://acme-etcd-backups/prod"),
                ],
                "3121877",
                created,
                true,
            ),
        ),
        (
            31,
            secret(
                "kube-system",
                "bootstrap-token-7x9k2p",
                "bootstrap.kubernetes.io/token",
                &[
                    (
                        "auth-extra-groups",
                        "system:bootstrappers:kubeadm:default-node-token",
                    ),
                    ("token-id", "7x9k2p"),
                    ("token-secret", "q4tz8m1wv6ykbd3n"),
                    ("usage-bootstrap-authentication", "true"),
                    ("usage-bootstrap-signing", "true"),
                ],
                "3989012",
                created,
                false,
            ),
        ),
        (
            47,
            secret(
                "argocd",
                "argocd-initial-admin-secret",
                "Opaque",
                &[("password", "Xk9vR2mTq4LpZ8wN")],
                "1204417",
                created,
                false,
            ),
        ),
    ];
    for (secs, obj) in stolen {
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let at = s.after(t, secs);
        s.one(
            at,
            5,
            &Req::new(
                &sa,
                "get",
                format!("/api/v1/namespaces/{ns}/secrets/{name}"),
            )
            .level("RequestResponse")
            .res("secrets")
            .ns(&ns)
            .name(&name)
            .resp_obj(obj),
        );
    }

    // 4. A privileged pod with the host's filesystem, scheduled on the control-plane node.
    let t = jitter(s, 3);
    let pod_name = "debug-x7k2";
    let pod = privileged_pod(pod_name);
    let uid = s.uuid();
    let rv = s.rv();
    let admitted = admitted_pod(pod.clone(), &uid, &rv, &ts_secs(t), "kube-api-access-9zq2m");
    let done = s.both(
        t,
        16,
        &Req::new(&sa, "create", "/api/v1/namespaces/default/pods")
            .level("RequestResponse")
            .res("pods")
            .ns("default")
            .name(pod_name)
            .code(201)
            .annotate(
                "pod-security.kubernetes.io/enforce-policy",
                "privileged:latest",
            )
            .req_obj(pod)
            .resp_obj(admitted),
    );
    let debug_pod_created = done;
    let debug_pod_uid = uid;
    let sched = cluster::scheduler(false);
    s.one(
        done + 30 * MS,
        6,
        &Req::new(
            &sched,
            "create",
            format!("/api/v1/namespaces/default/pods/{pod_name}/binding"),
        )
        .res("pods")
        .ns("default")
        .name(pod_name)
        .sub("binding")
        .code(201),
    );
    let kubelet = cluster::kubelet(0);
    let status = Req::new(
        &kubelet,
        "patch",
        format!("/api/v1/namespaces/default/pods/{pod_name}/status"),
    )
    .res("pods")
    .ns("default")
    .name(pod_name)
    .sub("status");
    s.one(done + 1100 * MS, 8, &status);
    s.one(
        done + 3 * SEC,
        5,
        &Req::new(&kubelet, "create", "/api/v1/namespaces/default/events")
            .res("events")
            .ns("default")
            .name(&format!("{pod_name}.17f9c2a4b8e61d3f"))
            .code(201),
    );
    s.one(done + 6 * SEC, 8, &status);
    // kubectl exec is not allowed yet: ci-deployer has no pods/exec.
    let kubectl = Actor {
        ua: ATTACKER_KUBECTL_UA.into(),
        ..sa.clone()
    };
    let t = s.after(t, 150);
    let exec_forbidden = t;
    s.one(
        t,
        4,
        &Req::new(
            &kubectl,
            "get",
            format!("/api/v1/namespaces/default/pods/{pod_name}"),
        )
        .res("pods")
        .ns("default")
        .name(pod_name),
    );
    s.both(
        t + 60 * MS,
        3,
        &Req::new(&kubectl, "create", format!("/api/v1/namespaces/default/pods/{pod_name}/exec?command=sh&container=debug&stdin=true&stdout=true&tty=true"))
            .res("pods")
            .ns("default")
            .name(pod_name)
            .sub("exec")
            .forbidden(),
    );

    // 5. RBAC escalation: bind itself to cluster-admin.
    let t = jitter(s, 4);
    let escalation = t;
    let crb = |name: &str, role: &str, sa_ns: &str, sa_name: &str| {
        json!({"kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": name, "creationTimestamp": null},
               "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_ns}],
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}})
    };
    let stored = |s: &mut Story, mut v: Value, at: i64| {
        v["metadata"]["uid"] = s.uuid().into();
        v["metadata"]["resourceVersion"] = s.rv().into();
        v["metadata"]["creationTimestamp"] = ts_secs(at).into();
        v
    };
    let body = crb("ci-runner-admin", "cluster-admin", "ci", "gitlab-runner");
    let resp = stored(s, body.clone(), t);
    s.both(
        t,
        9,
        &Req::new(&kubectl, "create", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?fieldManager=kubectl-create&fieldValidation=Strict")
            .level("RequestResponse")
            .res("clusterrolebindings")
            .rbac()
            .name("ci-runner-admin")
            .code(201)
            .req_obj(body)
            .resp_obj(resp),
    );

    // 6. Exec into the privileged pod, now as cluster-admin.
    let admin = Actor {
        reason: "RBAC: allowed by ClusterRoleBinding \"ci-runner-admin\" of ClusterRole \"cluster-admin\" to ServiceAccount \"gitlab-runner/ci\"".into(),
        ..kubectl
    };
    let t = jitter(s, 5);
    s.one(
        t,
        4,
        &Req::new(
            &admin,
            "get",
            format!("/api/v1/namespaces/default/pods/{pod_name}"),
        )
        .res("pods")
        .ns("default")
        .name(pod_name),
    );
    let session_ms = s.rng.random_range(500_000..600_000);
    let exec_start = t + 70 * MS;
    let exec_end = s.emit(
        t + 70 * MS,
        Timing::Streaming,
        session_ms,
        &Req::new(&admin, "create", format!("/api/v1/namespaces/default/pods/{pod_name}/exec?command=sh&container=debug&stdin=true&stdout=true&tty=true"))
            .res("pods")
            .ns("default")
            .name(pod_name)
            .sub("exec")
            .code(101),
    );

    // 7. Persistence: a new service account with a wildcard ClusterRole and a long-lived token.
    let t = jitter(s, 6);
    let persistence = t;
    let sa_body = json!({"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": "node-maintenance", "namespace": "kube-system", "creationTimestamp": null}});
    let resp = stored(s, sa_body.clone(), t);
    s.both(
        t,
        7,
        &Req::new(&admin, "create", "/api/v1/namespaces/kube-system/serviceaccounts?fieldManager=kubectl-create&fieldValidation=Strict")
            .level("RequestResponse")
            .res("serviceaccounts")
            .ns("kube-system")
            .name("node-maintenance")
            .code(201)
            .req_obj(sa_body)
            .resp_obj(resp),
    );
    let role = json!({"kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": "node-maintenance", "creationTimestamp": null},
                      "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, {"verbs": ["*"], "nonResourceURLs": ["*"]}]});
    let t2 = s.after(t, 22);
    let resp = stored(s, role.clone(), t2);
    s.both(
        t2,
        8,
        &Req::new(&admin, "create", "/apis/rbac.authorization.k8s.io/v1/clusterroles?fieldManager=kubectl-create&fieldValidation=Strict")
            .level("RequestResponse")
            .res("clusterroles")
            .rbac()
            .name("node-maintenance")
            .code(201)
            .req_obj(role)
            .resp_obj(resp),
    );
    let t3 = s.after(t, 41);
    let body = crb(
        "node-maintenance",
        "node-maintenance",
        "kube-system",
        "node-maintenance",
    );
    let resp = stored(s, body.clone(), t3);
    s.both(
        t3,
        8,
        &Req::new(&admin, "create", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?fieldManager=kubectl-create&fieldValidation=Strict")
            .level("RequestResponse")
            .res("clusterrolebindings")
            .rbac()
            .name("node-maintenance")
            .code(201)
            .req_obj(body)
            .resp_obj(resp),
    );
    // The token itself is in the response; this request is logged at Request level.
    let at = s.after(t, 58);
    let token_request = at;
    s.both(
        at,
        11,
        &Req::new(&admin, "create", "/api/v1/namespaces/kube-system/serviceaccounts/node-maintenance/token")
            .level("Request")
            .res("serviceaccounts")
            .ns("kube-system")
            .name("node-maintenance")
            .sub("token")
            .code(201)
            .req_obj(json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": {"creationTimestamp": null}, "spec": {"audiences": null, "expirationSeconds": 31_536_000, "boundObjectRef": null}, "status": {"token": "", "expirationTimestamp": null}})),
    );
    let all_secrets = s.after(t, 180);
    s.both(
        all_secrets,
        48,
        &Req::new(&admin, "list", "/api/v1/secrets?limit=500").res("secrets"),
    );
    AttackTimeline {
        start_ns: s.start_ns,
        end_ns: s.start_ns + SCENARIO_SPAN_MINUTES * 60 * SEC,
        anonymous,
        recon,
        secret_theft,
        debug_pod_created,
        debug_pod_uid,
        exec_forbidden,
        escalation,
        exec_start,
        exec_end,
        persistence,
        token_request,
        all_secrets,
    }
}

/// The scenario's window: `[end - SCENARIO_SPAN_MINUTES, end]` in UTC nanoseconds.
fn window(end: DateTime<Utc>) -> (i64, i64) {
    let end_ns = end.timestamp_nanos_opt().unwrap_or_default();
    (end_ns - SCENARIO_SPAN_MINUTES * 60 * SEC, end_ns)
}

/// The hand-written part of the scenario (deploy, sync, attack) and the attack's timeline.
fn hand_written(end: DateTime<Utc>, seed: u64) -> (Story, AttackTimeline) {
    let (start_ns, end_ns) = window(end);
    let mut story = Story {
        rng: SmallRng::seed_from_u64(seed ^ 0x6b65_7374_7265_6c21),
        start_ns,
        rv: 5_300_000,
        out: Vec::new(),
    };
    // Long-lived objects were created months ago.
    let created = ts_secs(end_ns - (143 * 24 * 3600 + 5 * 3600 + 17 * 60) * SEC);
    alice_deploys(&mut story, &created);
    argocd_syncs(&mut story, &created);
    let timeline = attack(&mut story, &created);
    (story, timeline)
}

/// When each attack step of [`demo_scenario`]`(end, seed)` happened: the same random draws,
/// without the background traffic.
pub(crate) fn attack_timeline(end: DateTime<Utc>, seed: u64) -> AttackTimeline {
    hand_written(end, seed).1
}

/// The demo scenario: ordinary cluster traffic over the two hours before `end`, with a deploy,
/// an ArgoCD sync and an attack story mixed in. Deterministic for a given seed. Returns audit
/// events in time order (by `stageTimestamp`) as `audit.k8s.io/v1` `Event` JSON objects.
pub fn demo_scenario(end: DateTime<Utc>, seed: u64) -> Vec<Value> {
    let (story, _) = hand_written(end, seed);
    let (start_ns, end_ns) = window(end);
    let mut events = story.out;
    // About one ordinary event every 2.5 s.
    let mut traffic = timed_traffic(start_ns, 2_500 * MS as u64, seed);
    loop {
        let (t, line) = traffic.next_event();
        if t > end_ns {
            break;
        }
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            events.push((t, v));
        }
    }
    events.retain(|(t, _)| (start_ns..=end_ns).contains(t));
    events.sort_by_key(|(t, _)| *t);
    events.into_iter().map(|(_, v)| v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(b64(b"AKIAIOSFODNN7EXAMPLE"), "QUtJQUlPU0ZPRE5ON0VYQU1QTEU=");
        assert_eq!(b64(b"eu-west-1"), "ZXUtd2VzdC0x");
        assert_eq!(b64(b"true"), "dHJ1ZQ==");
        assert_eq!(b64(b""), "");
    }

    #[test]
    fn descriptions_state_the_offsets() {
        for (step, min) in STEPS.iter().zip(STEP_OFFSETS_MIN) {
            assert!(
                step.description.starts_with(&format!("T+{min}m")),
                "{}",
                step.name
            );
        }
    }
}
