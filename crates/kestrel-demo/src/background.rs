//! Ordinary cluster traffic: the weighted mix of requests a quiet 3-node cluster sends all day.

use chrono::{DateTime, Utc};

use crate::cluster::{self, ci_build_pod, CART_PODS, NODES, WEB_PODS};
use crate::event::{stable_uid, Req};
use crate::template::{Generator, Spec, Timing};

/// A client-go reflector's watch URI: query parameters sorted as Go encodes them.
fn watch_uri(path: &str, params: &[&str], secs: u64) -> String {
    let mut q: Vec<String> = params.iter().map(|p| (*p).to_owned()).collect();
    q.push("allowWatchBookmarks=true".into());
    q.push("resourceVersion=@@RV@@".into());
    q.push(format!("timeout={}m{}s", secs / 60, secs % 60));
    q.push(format!("timeoutSeconds={secs}"));
    q.push("watch=true".into());
    q.sort();
    format!("{path}?{}", q.join("&"))
}

/// Watch durations: client-go picks a random timeout between 5 and 10 minutes.
fn watch_secs(n: usize) -> u64 {
    300 + (n as u64 * 137) % 300
}

struct Mix {
    specs: Vec<Spec>,
}

impl Mix {
    fn add(&mut self, weight: u32, timing: Timing, latency_ms: (u64, u64), req: Req) {
        self.specs.push(Spec::new(weight, timing, latency_ms, req));
    }

    fn ok(&mut self, weight: u32, latency_ms: (u64, u64), req: Req) {
        self.add(weight, Timing::Complete, latency_ms, req);
    }

    fn watch(&mut self, weight: u32, req: impl FnOnce(u64) -> Req) {
        let secs = watch_secs(self.specs.len());
        let ms = secs * 1000;
        self.add(weight, Timing::Complete, (ms, ms + 40), req(secs));
    }
}

/// The ordinary traffic mix. Weights are relative request rates.
pub(crate) fn ordinary_mix() -> Vec<Spec> {
    let mut m = Mix { specs: Vec::new() };
    let lease = |r: Req, ns: &str, name: &str| {
        r.res("leases")
            .group("coordination.k8s.io", "v1")
            .ns(ns)
            .name(name)
            .uid(&stable_uid(&format!("lease/{ns}/{name}")))
    };

    // Leader election of the controller manager and the scheduler: a renewal every 2 s.
    let kcm = cluster::kcm();
    m.ok(
        60,
        (2, 6),
        lease(
            Req::new(&kcm, "update", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager?timeout=5s"),
            "kube-system",
            "kube-controller-manager",
        )
        .rv("@@RV@@"),
    );
    m.ok(
        5,
        (1, 3),
        Req::new(&kcm, "get", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager?timeout=5s")
            .res("leases")
            .group("coordination.k8s.io", "v1")
            .ns("kube-system")
            .name("kube-controller-manager"),
    );
    let sched_le = cluster::scheduler(true);
    m.ok(
        60,
        (2, 6),
        lease(
            Req::new(&sched_le, "update", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler?timeout=5s"),
            "kube-system",
            "kube-scheduler",
        )
        .rv("@@RV@@"),
    );
    // A stale renewal loses the race: 409.
    m.ok(
        1,
        (2, 6),
        lease(
            Req::new(&sched_le, "update", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler?timeout=5s"),
            "kube-system",
            "kube-scheduler",
        )
        .rv("@@RV@@")
        .conflict(),
    );
    // The API server's identity lease and the `kubernetes` service endpoint reconciler.
    let apiserver = cluster::apiserver();
    m.ok(
        10,
        (2, 5),
        lease(
            Req::new(&apiserver, "update", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/apiserver-3kx7qzfwqpzn2ztbr5r5mmnhxu"),
            "kube-system",
            "apiserver-3kx7qzfwqpzn2ztbr5r5mmnhxu",
        )
        .rv("@@RV@@"),
    );
    m.ok(
        10,
        (1, 3),
        Req::new(
            &apiserver,
            "get",
            "/api/v1/namespaces/default/endpoints/kubernetes",
        )
        .res("endpoints")
        .ns("default")
        .name("kubernetes"),
    );
    m.ok(
        5,
        (1, 3),
        Req::new(
            &apiserver,
            "get",
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes",
        )
        .res("endpointslices")
        .group("discovery.k8s.io", "v1")
        .ns("default")
        .name("kubernetes"),
    );

    // Kubelets: node lease every 10 s, node object reads, status patches, their pods' watches.
    for (i, node) in NODES.iter().enumerate() {
        let k = cluster::kubelet(i);
        m.ok(
            20,
            (3, 9),
            lease(
                Req::new(&k, "update", format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}?timeout=10s")),
                "kube-node-lease",
                node,
            )
            .rv("@@RV@@"),
        );
        m.ok(
            10,
            (1, 4),
            Req::new(
                &k,
                "get",
                format!("/api/v1/nodes/{node}?resourceVersion=0&timeout=10s"),
            )
            .res("nodes")
            .name(node),
        );
        m.ok(
            2,
            (5, 15),
            Req::new(
                &k,
                "patch",
                format!("/api/v1/nodes/{node}/status?timeout=10s"),
            )
            .res("nodes")
            .name(node)
            .sub("status"),
        );
        let sel = format!("fieldSelector=spec.nodeName%3D{node}");
        m.watch(1, |s| {
            Req::new(&k, "watch", watch_uri("/api/v1/pods", &[&sel], s)).res("pods")
        });
        m.watch(1, |s| {
            Req::new(
                &k,
                "watch",
                watch_uri(
                    "/api/v1/namespaces/shop/configmaps",
                    &["fieldSelector=metadata.name%3Dkube-root-ca.crt"],
                    s,
                ),
            )
            .res("configmaps")
            .ns("shop")
        });
        m.watch(1, |s| {
            Req::new(
                &k,
                "watch",
                watch_uri(
                    "/api/v1/namespaces/shop/secrets",
                    &["fieldSelector=metadata.name%3Dweb-tls"],
                    s,
                ),
            )
            .res("secrets")
            .ns("shop")
        });
        let (pod, _, _) = WEB_PODS[i];
        m.ok(
            2,
            (4, 12),
            Req::new(
                &k,
                "patch",
                format!("/api/v1/namespaces/shop/pods/{pod}/status"),
            )
            .res("pods")
            .ns("shop")
            .name(pod)
            .sub("status"),
        );
        m.ok(
            1,
            (3, 8),
            Req::new(&k, "create", "/api/v1/namespaces/shop/events")
                .res("events")
                .ns("shop")
                .name(&format!("{pod}.@@HEX@@"))
                .code(201),
        );
    }

    // Kubelet probes of the API server's static pod: anonymous, allowed, very frequent.
    let probe = cluster::probe();
    m.ok(24, (1, 3), Req::new(&probe, "get", "/readyz"));
    m.ok(4, (1, 3), Req::new(&probe, "get", "/livez"));
    m.ok(2, (1, 3), Req::new(&probe, "get", "/healthz"));

    // The controller manager's shared informers.
    let informers = cluster::kcm().with_ua(
        "kube-controller-manager/v1.31.2 (linux/amd64) kubernetes/5864a46/shared-informers",
    );
    let informers = crate::event::Actor {
        reason: "RBAC: allowed by ClusterRoleBinding \"system:kube-controller-manager\" of ClusterRole \"system:kube-controller-manager\" to User \"system:kube-controller-manager\"".into(),
        ..informers
    };
    for (path, res, group) in [
        ("/api/v1/pods", "pods", ""),
        ("/api/v1/nodes", "nodes", ""),
        ("/api/v1/services", "services", ""),
        ("/api/v1/secrets", "secrets", ""),
        ("/api/v1/configmaps", "configmaps", ""),
        ("/api/v1/serviceaccounts", "serviceaccounts", ""),
        ("/api/v1/namespaces", "namespaces", ""),
        ("/apis/apps/v1/replicasets", "replicasets", "apps"),
        ("/apis/apps/v1/deployments", "deployments", "apps"),
        ("/apis/apps/v1/daemonsets", "daemonsets", "apps"),
        ("/apis/apps/v1/statefulsets", "statefulsets", "apps"),
        ("/apis/batch/v1/jobs", "jobs", "batch"),
        (
            "/apis/discovery.k8s.io/v1/endpointslices",
            "endpointslices",
            "discovery.k8s.io",
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            "clusterrolebindings",
            "rbac.authorization.k8s.io",
        ),
    ] {
        m.watch(1, |s| {
            let r = Req::new(&informers, "watch", watch_uri(path, &[], s)).res(res);
            if group.is_empty() {
                r
            } else {
                r.group(group, "v1")
            }
        });
    }

    // Controllers reconciling the shop workloads.
    let eps = cluster::controller("endpointslice-controller");
    m.ok(
        3,
        (3, 8),
        Req::new(
            &eps,
            "update",
            "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices/web-8xk2p",
        )
        .res("endpointslices")
        .group("discovery.k8s.io", "v1")
        .ns("shop")
        .name("web-8xk2p")
        .uid(&stable_uid("eps/shop/web-8xk2p"))
        .rv("@@RV@@"),
    );
    let dc = cluster::controller("deployment-controller");
    m.ok(
        2,
        (3, 8),
        Req::new(
            &dc,
            "update",
            "/apis/apps/v1/namespaces/shop/deployments/web/status",
        )
        .res("deployments")
        .apps()
        .ns("shop")
        .name("web")
        .sub("status")
        .uid(&stable_uid("deploy/shop/web"))
        .rv("@@RV@@"),
    );
    let rsc = cluster::controller("replicaset-controller");
    m.ok(
        2,
        (3, 8),
        Req::new(
            &rsc,
            "update",
            "/apis/apps/v1/namespaces/shop/replicasets/cart-5b8f7d9c4/status",
        )
        .res("replicasets")
        .apps()
        .ns("shop")
        .name("cart-5b8f7d9c4")
        .sub("status")
        .uid(&stable_uid("rs/shop/cart-5b8f7d9c4"))
        .rv("@@RV@@"),
    );
    m.ok(
        1,
        (3, 8),
        Req::new(
            &rsc,
            "update",
            "/apis/apps/v1/namespaces/shop/replicasets/web-7c9d8f6b5d/status",
        )
        .res("replicasets")
        .apps()
        .ns("shop")
        .name("web-7c9d8f6b5d")
        .sub("status")
        .uid(&stable_uid("rs/shop/web-7c9d8f6b5d"))
        .rv("@@RV@@")
        .conflict(),
    );
    let hpa = cluster::controller("horizontal-pod-autoscaler");
    m.ok(
        4,
        (5, 20),
        Req::new(&hpa, "list", "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods?labelSelector=app.kubernetes.io%2Fname%3Dweb")
            .res("pods")
            .group("metrics.k8s.io", "v1beta1")
            .ns("shop"),
    );
    m.ok(
        1,
        (3, 8),
        Req::new(
            &hpa,
            "update",
            "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/web/status",
        )
        .res("horizontalpodautoscalers")
        .group("autoscaling", "v2")
        .ns("shop")
        .name("web")
        .sub("status")
        .uid(&stable_uid("hpa/shop/web"))
        .rv("@@RV@@"),
    );

    // Scheduler, CoreDNS, metrics-server, kube-proxy: informers.
    let sched = cluster::scheduler(false);
    m.watch(1, |s| {
        Req::new(
            &sched,
            "watch",
            watch_uri(
                "/api/v1/pods",
                &["fieldSelector=status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed"],
                s,
            ),
        )
        .res("pods")
    });
    m.watch(1, |s| {
        Req::new(&sched, "watch", watch_uri("/api/v1/nodes", &[], s)).res("nodes")
    });
    m.watch(1, |s| {
        Req::new(
            &sched,
            "watch",
            watch_uri("/apis/storage.k8s.io/v1/csinodes", &[], s),
        )
        .res("csinodes")
        .group("storage.k8s.io", "v1")
    });
    let dns = cluster::coredns();
    for (path, res, group) in [
        ("/api/v1/namespaces", "namespaces", ""),
        ("/api/v1/services", "services", ""),
        (
            "/apis/discovery.k8s.io/v1/endpointslices",
            "endpointslices",
            "discovery.k8s.io",
        ),
    ] {
        m.watch(1, |s| {
            let r = Req::new(&dns, "watch", watch_uri(path, &[], s)).res(res);
            if group.is_empty() {
                r
            } else {
                r.group(group, "v1")
            }
        });
    }
    let ms = cluster::metrics_server();
    m.watch(1, |s| {
        Req::new(&ms, "watch", watch_uri("/api/v1/nodes", &[], s)).res("nodes")
    });
    m.watch(1, |s| {
        Req::new(
            &ms,
            "watch",
            watch_uri("/api/v1/pods", &["fieldSelector=status.phase%3DRunning"], s),
        )
        .res("pods")
    });
    m.watch(1, |s| {
        Req::new(
            &ms,
            "watch",
            watch_uri(
                "/api/v1/namespaces/kube-system/configmaps",
                &["fieldSelector=metadata.name%3Dextension-apiserver-authentication"],
                s,
            ),
        )
        .res("configmaps")
        .ns("kube-system")
    });
    for (i, node) in NODES.iter().enumerate() {
        let kp = cluster::kube_proxy(i);
        let node_sel = format!("fieldSelector=metadata.name%3D{node}");
        m.watch(1, |s| {
            Req::new(
                &kp,
                "watch",
                watch_uri(
                    "/api/v1/services",
                    &["labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes.io%2Fservice-proxy-name"],
                    s,
                ),
            )
            .res("services")
        });
        m.watch(1, |s| {
            Req::new(
                &kp,
                "watch",
                watch_uri(
                    "/apis/discovery.k8s.io/v1/endpointslices",
                    &["labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes.io%2Fservice-proxy-name"],
                    s,
                ),
            )
            .res("endpointslices")
            .group("discovery.k8s.io", "v1")
        });
        m.watch(1, |s| {
            Req::new(&kp, "watch", watch_uri("/api/v1/nodes", &[&node_sel], s)).res("nodes")
        });
    }

    // ArgoCD: cluster-wide informers, its own configuration, live-state reads for diffs.
    let argo = cluster::argocd();
    for (path, res, group) in [
        ("/apis/apps/v1/deployments", "deployments", "apps"),
        ("/api/v1/services", "services", ""),
        ("/api/v1/configmaps", "configmaps", ""),
        (
            "/apis/networking.k8s.io/v1/ingresses",
            "ingresses",
            "networking.k8s.io",
        ),
    ] {
        m.watch(1, |s| {
            let r = Req::new(&argo, "watch", watch_uri(path, &[], s)).res(res);
            if group.is_empty() {
                r
            } else {
                r.group(group, "v1")
            }
        });
    }
    m.watch(1, |s| {
        Req::new(
            &argo,
            "watch",
            watch_uri(
                "/api/v1/namespaces/argocd/configmaps",
                &["fieldSelector=metadata.name%3Dargocd-cm"],
                s,
            ),
        )
        .res("configmaps")
        .ns("argocd")
    });
    for (name, _, _) in [("web", 0, ""), ("cart", 0, "")] {
        m.ok(
            2,
            (2, 6),
            Req::new(
                &argo,
                "get",
                format!("/apis/apps/v1/namespaces/shop/deployments/{name}"),
            )
            .res("deployments")
            .apps()
            .ns("shop")
            .name(name),
        );
        m.ok(
            1,
            (2, 6),
            Req::new(
                &argo,
                "get",
                format!("/api/v1/namespaces/shop/services/{name}"),
            )
            .res("services")
            .ns("shop")
            .name(name),
        );
    }
    m.ok(
        1,
        (2, 6),
        Req::new(
            &argo,
            "get",
            "/api/v1/namespaces/argocd/secrets/argocd-secret",
        )
        .res("secrets")
        .ns("argocd")
        .name("argocd-secret"),
    );

    // Applications reading their configuration; the cart looks for an optional one (404).
    for (app, pods) in [("web", &WEB_PODS[..]), ("cart", &CART_PODS[..])] {
        for (pod, node, ip) in pods {
            let sa = cluster::app_sa(app, pod, *node, ip);
            let cm = if app == "web" {
                "web-config"
            } else {
                "cart-feature-flags"
            };
            let r = Req::new(
                &sa,
                "get",
                format!("/api/v1/namespaces/shop/configmaps/{cm}"),
            )
            .res("configmaps")
            .ns("shop")
            .name(cm);
            let r = if app == "cart" { r.not_found() } else { r };
            m.ok(1, (1, 4), r);
        }
    }

    // Alice, a developer, with kubectl.
    let alice = cluster::alice();
    let discovery = "RBAC: allowed by ClusterRoleBinding \"system:discovery\" of ClusterRole \"system:discovery\" to Group \"system:authenticated\"";
    m.ok(
        1,
        (2, 8),
        Req::new(&alice, "get", "/api?timeout=32s").reason(discovery),
    );
    m.ok(
        1,
        (2, 8),
        Req::new(&alice, "get", "/apis?timeout=32s").reason(discovery),
    );
    m.add(
        4,
        Timing::Both,
        (4, 20),
        Req::new(&alice, "list", "/api/v1/namespaces/shop/pods?limit=500")
            .res("pods")
            .ns("shop"),
    );
    m.add(
        2,
        Timing::Both,
        (4, 20),
        Req::new(
            &alice,
            "list",
            "/apis/apps/v1/namespaces/shop/deployments?limit=500",
        )
        .res("deployments")
        .apps()
        .ns("shop"),
    );
    m.add(
        2,
        Timing::Both,
        (80, 600),
        Req::new(
            &alice,
            "get",
            format!(
                "/api/v1/namespaces/shop/pods/{}/log?container=web&tailLines=200",
                WEB_PODS[1].0
            ),
        )
        .res("pods")
        .ns("shop")
        .name(WEB_PODS[1].0)
        .sub("log"),
    );
    m.add(
        1,
        Timing::Both,
        (3, 12),
        Req::new(
            &alice,
            "get",
            "/api/v1/namespaces/shop/pods/web-7c9d8f6b5d-8vwrx",
        )
        .res("pods")
        .ns("shop")
        .name("web-7c9d8f6b5d-8vwrx")
        .not_found(),
    );
    m.add(
        1,
        Timing::Both,
        (3, 12),
        Req::new(
            &alice,
            "list",
            "/api/v1/namespaces/kube-system/secrets?limit=500",
        )
        .res("secrets")
        .ns("kube-system")
        .forbidden(),
    );
    m.add(
        1,
        Timing::Both,
        (3, 12),
        Req::new(&alice, "list", format!("/api/v1/namespaces/shop/events?fieldSelector=involvedObject.name%3D{}%2CinvolvedObject.namespace%3Dshop%2CinvolvedObject.uid%3D{}", CART_PODS[0].0, stable_uid(&format!("pod/{}", CART_PODS[0].0))))
            .res("events")
            .ns("shop"),
    );

    // The GitLab runner's build pods in `ci`: secret, pod, polling, exec of the job script, cleanup.
    let runner = cluster::gitlab_runner();
    let job = "runner-t3kq9zbx-project-42-concurrent-0-@@SFX@@";
    m.add(
        2,
        Timing::Both,
        (4, 12),
        Req::new(&runner, "create", "/api/v1/namespaces/ci/secrets")
            .res("secrets")
            .ns("ci")
            .name(job)
            .code(201),
    );
    let pod = ci_build_pod(job);
    let created = cluster::admitted_pod(
        pod.clone(),
        "@@UID@@",
        "@@RV@@",
        "@@SEC@@",
        "kube-api-access-@@SFX@@",
    );
    m.add(
        2,
        Timing::Both,
        (8, 25),
        Req::new(&runner, "create", "/api/v1/namespaces/ci/pods")
            .level("RequestResponse")
            .res("pods")
            .ns("ci")
            .name(job)
            .code(201)
            .annotate(
                "pod-security.kubernetes.io/enforce-policy",
                "baseline:latest",
            )
            .req_obj(pod)
            .resp_obj(created),
    );
    m.ok(
        6,
        (1, 4),
        Req::new(&runner, "get", format!("/api/v1/namespaces/ci/pods/{job}"))
            .res("pods")
            .ns("ci")
            .name(job),
    );
    m.add(
        2,
        Timing::Streaming,
        (20_000, 240_000),
        Req::new(&runner, "create", format!("/api/v1/namespaces/ci/pods/{job}/exec?command=sh&command=-c&command=%2Fscripts-42-88412%2Fstep_script&container=build&stderr=true&stdin=true&stdout=true"))
            .res("pods")
            .ns("ci")
            .name(job)
            .sub("exec")
            .code(101),
    );
    m.ok(
        2,
        (5, 15),
        Req::new(
            &runner,
            "delete",
            format!("/api/v1/namespaces/ci/pods/{job}"),
        )
        .res("pods")
        .ns("ci")
        .name(job),
    );
    m.ok(
        2,
        (3, 10),
        Req::new(
            &runner,
            "delete",
            format!("/api/v1/namespaces/ci/secrets/{job}"),
        )
        .res("secrets")
        .ns("ci")
        .name(job),
    );
    m.specs
}

/// Endless ordinary traffic (see the crate documentation).
pub fn background_traffic(
    start: DateTime<Utc>,
    rate_per_sec: u32,
    seed: u64,
) -> impl Iterator<Item = String> {
    let start_ns = start.timestamp_nanos_opt().unwrap_or_default();
    let mean = 1_000_000_000 / u64::from(rate_per_sec.max(1));
    let mut g = Generator::new(&ordinary_mix(), start_ns, mean, seed);
    std::iter::from_fn(move || Some(g.next_event().1))
}

/// Ordinary traffic with event times, for the demo scenario.
pub(crate) fn timed_traffic(start_ns: i64, mean_interval_ns: u64, seed: u64) -> Generator {
    Generator::new(&ordinary_mix(), start_ns, mean_interval_ns, seed)
}
