//! Tests of the Kubernetes watches against a small local HTTP server that stands in for the
//! API server, because no Kubernetes API server can run here. It answers list and watch
//! requests in the API server's exact JSON: `*List` objects with `metadata.resourceVersion`
//! (and `continue` when paginated with `limit`), metadata-only `PartialObjectMetadataList`s when
//! asked for them, watch streams of `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":…}`
//! lines, a `410 Gone` `Status` for an expired resourceVersion, `403 Forbidden` when told to,
//! and the `spec.nodeName` field selector.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use kestrel_event::{BatchOrigin, PodIdentity};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::config::{K8sEventsInput, KubeEnabled, KubernetesConfig};
use super::events::{EventCheckpoint, K8sEventBatch, K8sEventSource, STREAM};
use super::metadata::{ApiStatus, PodMetadataStore};
use crate::buffer::BatchMeta;

/// One watch request's answer: lines, then either the end of the response or an open stream.
#[derive(Debug, Clone, Default)]
struct WatchScript {
    lines: Vec<Value>,
    close: bool,
}

/// One collection (`/api/v1/pods`...).
#[derive(Debug, Default)]
struct Collection {
    kind: String,
    api_version: String,
    items: Vec<Value>,
    resource_version: String,
    /// Watches from a numeric resourceVersion below this get `410 Gone`.
    oldest_rv: u64,
    watches: VecDeque<WatchScript>,
}

#[derive(Debug, Default)]
struct FakeState {
    collections: HashMap<String, Collection>,
    forbidden: bool,
    /// `path?query` of every request.
    requests: Vec<String>,
}

type Shared = Arc<Mutex<FakeState>>;

struct FakeApiServer {
    addr: SocketAddr,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    async fn start() -> FakeApiServer {
        let state = Shared::default();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeApiServer { addr, state, task }
    }

    fn client(&self) -> ::kube::Client {
        let config = ::kube::Config::new(format!("http://{}", self.addr).parse().unwrap());
        ::kube::Client::try_from(config).unwrap()
    }

    fn collection(&self, path: &str, kind: &str, api_version: &str, rv: &str, items: Vec<Value>) {
        self.state.lock().unwrap().collections.insert(
            path.to_owned(),
            Collection {
                kind: kind.to_owned(),
                api_version: api_version.to_owned(),
                items,
                resource_version: rv.to_owned(),
                ..Collection::default()
            },
        );
    }

    fn with<R>(&self, path: &str, f: impl FnOnce(&mut Collection) -> R) -> R {
        f(self
            .state
            .lock()
            .unwrap()
            .collections
            .get_mut(path)
            .unwrap())
    }

    fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Keeps only what `fieldSelector` selects (`spec.nodeName=<node>`, the one the agent uses).
fn selected(obj: &Value, field_selector: Option<&String>) -> bool {
    match field_selector.and_then(|s| s.strip_prefix("spec.nodeName=")) {
        Some(node) => obj["spec"]["nodeName"] == node,
        None => true,
    }
}

/// The object as the API server sends it for a metadata-only request.
fn as_metadata(obj: &Value, metadata_only: bool) -> Value {
    if metadata_only {
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
               "metadata": obj["metadata"]})
    } else {
        obj.clone()
    }
}

async fn answer(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let path = request.uri().path().to_owned();
    let metadata_only = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let mut s = state.lock().unwrap();
    s.requests.push(request.uri().to_string());
    if s.forbidden {
        return json_response(
            StatusCode::FORBIDDEN,
            &status(403, "Forbidden", "pods is forbidden: User \"system:serviceaccount:kestrel:agent\" cannot list resource"),
        );
    }
    let Some(c) = s.collections.get_mut(&path) else {
        return json_response(
            StatusCode::NOT_FOUND,
            &status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        );
    };
    let fields = query.get("fieldSelector");
    if query.get("watch").map(String::as_str) == Some("true") {
        let from: u64 = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (lines, close) = if from < c.oldest_rv {
            let gone = status(
                410,
                "Expired",
                &format!("too old resource version: {from} ({})", c.oldest_rv),
            );
            (vec![json!({"type": "ERROR", "object": gone})], true)
        } else {
            let script = c.watches.pop_front().unwrap_or_default();
            let lines = script
                .lines
                .into_iter()
                .filter(|l| {
                    l["type"] != "ADDED" && l["type"] != "MODIFIED" && l["type"] != "DELETED"
                        || selected(&l["object"], fields)
                })
                .map(|mut l| {
                    if l["type"] != "ERROR" {
                        l["object"] = as_metadata(&l["object"], metadata_only);
                    }
                    l
                })
                .collect();
            (lines, script.close)
        };
        let body = lines
            .into_iter()
            .map(|l| Ok::<_, std::io::Error>(format!("{l}\n")))
            .collect::<Vec<_>>();
        let stream = futures::stream::iter(body);
        let body = if close {
            Body::from_stream(stream)
        } else {
            use futures::StreamExt;
            Body::from_stream(stream.chain(futures::stream::pending()))
        };
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .unwrap();
    }
    let all: Vec<Value> = c
        .items
        .iter()
        .filter(|o| selected(o, fields))
        .map(|o| as_metadata(o, metadata_only))
        .collect();
    let offset: usize = query
        .get("continue")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(usize::MAX);
    let page: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
    let mut metadata = json!({"resourceVersion": c.resource_version});
    if offset + page.len() < all.len() {
        metadata["continue"] = json!((offset + page.len()).to_string());
    }
    let (kind, api_version) = if metadata_only {
        (
            "PartialObjectMetadataList".to_owned(),
            "meta.k8s.io/v1".to_owned(),
        )
    } else {
        (c.kind.clone() + "List", c.api_version.clone())
    };
    json_response(
        StatusCode::OK,
        &json!({"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": page}),
    )
}

fn watch_line(kind: &str, object: Value) -> Value {
    json!({"type": kind, "object": object})
}

fn bookmark(kind: &str, api_version: &str, rv: &str) -> Value {
    json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version,
        "metadata": {"resourceVersion": rv, "annotations": {"k8s.io/initial-events-end": "true"}}}})
}

fn owner(kind: &str, api_version: &str, name: &str) -> Value {
    json!([{"apiVersion": api_version, "kind": kind, "name": name,
            "uid": format!("uid-{name}"), "controller": true, "blockOwnerDeletion": true}])
}

#[allow(clippy::too_many_arguments)]
fn pod(
    ns: &str,
    name: &str,
    uid: &str,
    node: &str,
    rv: &str,
    labels: Value,
    annotations: Value,
    owners: Value,
) -> Value {
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "uid": uid, "resourceVersion": rv,
            "creationTimestamp": "2026-11-23T10:00:00Z", "labels": labels,
            "annotations": annotations, "ownerReferences": owners},
        "spec": {"nodeName": node, "serviceAccountName": format!("{name}-sa"),
            "initContainers": [{"name": "init", "image": "busybox:1.36"}],
            "containers": [{"name": "app", "image": format!("registry.example/{name}:1.0")},
                           {"name": "sidecar", "image": "envoyproxy/envoy:v1.31"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.7"}
    })
}

fn identity(uid: &str, container: &str) -> PodIdentity {
    PodIdentity {
        namespace: Some("from-path".into()),
        pod: Some("from-path".into()),
        pod_uid: Some(uid.into()),
        container: Some(container.into()),
        ..PodIdentity::default()
    }
}

/// Waits (generously; not a timing assertion) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn kube_config(node: &str) -> KubernetesConfig {
    KubernetesConfig {
        node_name: Some(node.into()),
        exclude_namespaces: vec!["kube-system".into()],
        exclude_pod_labels: vec!["kestrel.io/debug".into(), "tier=scratch".into()],
        ..KubernetesConfig::default()
    }
}

fn metadata_server_fixture(server: &FakeApiServer) {
    server.collection(
        "/api/v1/namespaces",
        "Namespace",
        "v1",
        "500",
        vec![
            json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "shop", "uid": "ns-1",
                "resourceVersion": "5", "labels": {"team": "payments", "kubernetes.io/metadata.name": "shop"}}}),
            json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "reports", "uid": "ns-2",
                "resourceVersion": "6", "labels": {"kubernetes.io/metadata.name": "reports"}}}),
        ],
    );
    server.collection(
        "/apis/apps/v1/replicasets",
        "ReplicaSet",
        "apps/v1",
        "500",
        vec![
            json!({"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": {
            "name": "web-6d4cf56db6", "namespace": "shop", "uid": "rs-1", "resourceVersion": "20",
            "ownerReferences": owner("Deployment", "apps/v1", "web")},
            "spec": {"replicas": 2}}),
        ],
    );
    server.collection(
        "/apis/batch/v1/jobs",
        "Job",
        "batch/v1",
        "500",
        vec![json!({"kind": "Job", "apiVersion": "batch/v1", "metadata": {
            "name": "nightly-29400000", "namespace": "reports", "uid": "job-1", "resourceVersion": "30",
            "ownerReferences": owner("CronJob", "batch/v1", "nightly")}})],
    );
    let rs = owner("ReplicaSet", "apps/v1", "web-6d4cf56db6");
    server.collection(
        "/api/v1/pods",
        "Pod",
        "v1",
        "500",
        vec![
            pod(
                "shop",
                "web-6d4cf56db6-x7k2p",
                "uid-web",
                "node-1",
                "100",
                json!({"app": "web", "pod-template-hash": "6d4cf56db6"}),
                json!({}),
                rs.clone(),
            ),
            pod(
                "reports",
                "nightly-29400000-q8z",
                "uid-job",
                "node-1",
                "101",
                json!({"job-name": "nightly-29400000"}),
                json!({"kestrel.io/exclude": "true"}),
                owner("Job", "batch/v1", "nightly-29400000"),
            ),
            pod(
                "shop",
                "web-6d4cf56db6-other",
                "uid-elsewhere",
                "node-2",
                "102",
                json!({"app": "web"}),
                json!({}),
                rs.clone(),
            ),
            pod(
                "shop",
                "debug-shell",
                "uid-debug",
                "node-1",
                "103",
                json!({"kestrel.io/debug": "yes"}),
                json!({}),
                json!([]),
            ),
            pod(
                "kube-system",
                "kube-proxy-abc",
                "uid-proxy",
                "node-1",
                "104",
                json!({"k8s-app": "kube-proxy"}),
                json!({}),
                owner("DaemonSet", "apps/v1", "kube-proxy"),
            ),
        ],
    );
    for path in [
        "/api/v1/namespaces",
        "/apis/apps/v1/replicasets",
        "/apis/batch/v1/jobs",
    ] {
        server.with(path, |c| c.watches.push_back(WatchScript::default()));
    }
}

#[tokio::test]
async fn pods_are_enriched_with_owners_images_labels_and_late_deletes() {
    let server = FakeApiServer::start().await;
    metadata_server_fixture(&server);
    let rs = owner("ReplicaSet", "apps/v1", "web-6d4cf56db6");
    server.with("/api/v1/pods", |c| {
        c.watches.push_back(WatchScript {
            lines: vec![
                // A short-lived pod that comes and goes.
                watch_line(
                    "ADDED",
                    pod(
                        "shop",
                        "web-6d4cf56db6-short",
                        "uid-short",
                        "node-1",
                        "501",
                        json!({"app": "web", "run": "once"}),
                        json!({}),
                        rs.clone(),
                    ),
                ),
                watch_line(
                    "MODIFIED",
                    pod(
                        "shop",
                        "web-6d4cf56db6-x7k2p",
                        "uid-web",
                        "node-1",
                        "502",
                        json!({"app": "web", "pod-template-hash": "6d4cf56db6", "version": "2"}),
                        json!({}),
                        rs.clone(),
                    ),
                ),
                // Another node's pod never reaches this agent (the field selector filters it).
                watch_line(
                    "ADDED",
                    pod(
                        "shop",
                        "web-6d4cf56db6-far",
                        "uid-far",
                        "node-2",
                        "503",
                        json!({"app": "web"}),
                        json!({}),
                        rs.clone(),
                    ),
                ),
                watch_line(
                    "DELETED",
                    pod(
                        "shop",
                        "web-6d4cf56db6-short",
                        "uid-short",
                        "node-1",
                        "504",
                        json!({"app": "web", "run": "once"}),
                        json!({}),
                        rs.clone(),
                    ),
                ),
                bookmark("Pod", "v1", "505"),
            ],
            close: false,
        });
    });
    let config = kube_config("node-1");
    let (store, _watches) = PodMetadataStore::start(&config, Some(server.client()), "node-1");
    eventually("the pod watch to apply its events", || {
        store.is_deleted("uid-short")
            && store.namespace_labels("shop").is_some()
            && store.owner_count() == 2
    })
    .await;
    assert_eq!(store.api_status(), ApiStatus::Ready);

    // Deployment through its ReplicaSet; image of the asked container; labels after MODIFIED.
    let mut web = identity("uid-web", "sidecar");
    store.enrich(&mut web);
    assert_eq!(web.image.as_deref(), Some("envoyproxy/envoy:v1.31"));
    assert_eq!(web.owner_kind.as_deref(), Some("Deployment"));
    assert_eq!(web.owner_name.as_deref(), Some("web"));
    assert_eq!(
        web.service_account.as_deref(),
        Some("web-6d4cf56db6-x7k2p-sa")
    );
    let labels: Value = serde_json::from_str(web.labels.as_deref().unwrap()).unwrap();
    assert_eq!(
        labels,
        json!({"app": "web", "pod-template-hash": "6d4cf56db6", "version": "2"})
    );
    assert_eq!(
        web.namespace.as_deref(),
        Some("from-path"),
        "path fields are kept"
    );
    let mut init = identity("uid-web", "init");
    store.enrich(&mut init);
    assert_eq!(init.image.as_deref(), Some("busybox:1.36"));
    assert_eq!(store.node_of("uid-web").as_deref(), Some("node-1"));

    // CronJob through its Job; excluded by annotation.
    let mut job = identity("uid-job", "app");
    store.enrich(&mut job);
    assert_eq!(job.owner_kind.as_deref(), Some("CronJob"));
    assert_eq!(job.owner_name.as_deref(), Some("nightly"));
    assert!(store.is_excluded("uid-job"));
    assert!(!store.is_excluded("uid-web"));
    // Excluded by label selector and by namespace.
    assert!(store.is_excluded("uid-debug"));
    assert!(store.is_excluded("uid-proxy"));
    let mut proxy = identity("uid-proxy", "app");
    store.enrich(&mut proxy);
    assert_eq!(
        proxy.owner_kind.as_deref(),
        Some("DaemonSet"),
        "other controllers are the top owner"
    );

    // Namespace labels.
    let ns: Value = serde_json::from_str(&store.namespace_labels("shop").unwrap()).unwrap();
    assert_eq!(ns["team"], "payments");

    // Pods of other nodes are unknown: the field selector was sent and honoured.
    let mut far = identity("uid-far", "app");
    store.enrich(&mut far);
    assert_eq!(far, identity("uid-far", "app"));
    assert_eq!(store.node_of("uid-elsewhere"), None);
    let requests = server.requests();
    assert!(requests.iter().any(|r| r.starts_with("/api/v1/pods?")
        && r.contains("fieldSelector=spec.nodeName%3Dnode-1")
        && !r.contains("watch=true")));
    assert!(requests.iter().any(|r| r.starts_with("/api/v1/pods?")
        && r.contains("watch=true")
        && r.contains("allowWatchBookmarks=true")
        && r.contains("fieldSelector=spec.nodeName%3Dnode-1")));

    // The deleted pod keeps its metadata for the grace, then goes.
    let mut short = identity("uid-short", "app");
    store.enrich(&mut short);
    assert_eq!(short.owner_name.as_deref(), Some("web"));
    assert!(short
        .labels
        .as_deref()
        .unwrap()
        .contains("\"run\":\"once\""));
    store.prune_at(Instant::now() + Duration::from_secs(60));
    assert!(
        store.is_deleted("uid-short"),
        "still within the 5 minute grace"
    );
    store.prune_at(Instant::now() + config.delete_grace + Duration::from_secs(1));
    let mut gone = identity("uid-short", "app");
    store.enrich(&mut gone);
    assert_eq!(gone.labels, None);
    let mut still = identity("uid-web", "app");
    store.enrich(&mut still);
    assert!(still.labels.is_some(), "live pods are never pruned");
}

#[tokio::test]
async fn a_pod_watch_that_expires_lists_again_and_marks_vanished_pods_deleted() {
    let server = FakeApiServer::start().await;
    metadata_server_fixture(&server);
    // The first watch is told its resourceVersion is too old; the watcher lists again and
    // the second list no longer has the Job's pod.
    server.with("/api/v1/pods", |c| c.oldest_rv = 10_000);
    let config = kube_config("node-1");
    let (store, _watches) = PodMetadataStore::start(&config, Some(server.client()), "node-1");
    eventually("the first pod list", || store.pod_count() == 4).await;
    server.with("/api/v1/pods", |c| {
        c.items.retain(|p| p["metadata"]["uid"] != "uid-job");
        // Newer than the oldest version kept: the watch after this list succeeds.
        c.resource_version = "10001".into();
    });
    eventually("the re-list after 410 Gone", || store.is_deleted("uid-job")).await;
    assert!(!store.is_deleted("uid-web"));
    let lists = server
        .requests()
        .iter()
        .filter(|r| r.starts_with("/api/v1/pods?") && !r.contains("watch=true"))
        .count();
    assert!(lists >= 2, "listed again after 410 Gone");
}

#[tokio::test]
async fn without_api_access_the_agent_keeps_path_metadata() {
    // No configuration at all.
    let missing = KubernetesConfig {
        kubeconfig: Some("/nonexistent/kubeconfig".into()),
        ..kube_config("node-1")
    };
    assert!(super::connect(&missing).await.unwrap().is_none());
    let required = KubernetesConfig {
        enabled: KubeEnabled::True,
        ..missing.clone()
    };
    assert!(super::connect(&required).await.is_err());
    let off = KubernetesConfig {
        enabled: KubeEnabled::False,
        ..missing
    };
    assert!(super::connect(&off).await.unwrap().is_none());
    let (store, _w) = PodMetadataStore::start(&off, None, "node-1");
    assert_eq!(store.api_status(), ApiStatus::Disabled);
    let mut id = identity("uid-web", "app");
    store.enrich(&mut id);
    assert_eq!(id, identity("uid-web", "app"));

    // An API server that forbids everything.
    let server = FakeApiServer::start().await;
    metadata_server_fixture(&server);
    server.state.lock().unwrap().forbidden = true;
    let (store, _watches) =
        PodMetadataStore::start(&kube_config("node-1"), Some(server.client()), "node-1");
    eventually("the watch to report the API unavailable", || {
        matches!(store.api_status(), ApiStatus::Unavailable(_))
    })
    .await;
    let ApiStatus::Unavailable(reason) = store.api_status() else {
        unreachable!()
    };
    assert!(reason.contains("forbidden"), "{reason}");
    let mut id = identity("uid-web", "app");
    store.enrich(&mut id);
    assert_eq!(
        id,
        identity("uid-web", "app"),
        "path metadata is kept as it is"
    );
    assert!(!store.is_excluded("uid-job"));
    // Access granted later: the watch recovers by itself.
    server.state.lock().unwrap().forbidden = false;
    eventually("the watches to recover", || {
        store.api_status() == ApiStatus::Ready && store.owner_count() == 2
    })
    .await;
    let mut id = identity("uid-web", "app");
    store.enrich(&mut id);
    assert_eq!(id.owner_kind.as_deref(), Some("Deployment"));
}

fn event(name: &str, uid: &str, rv: &str, reason: &str) -> Value {
    json!({
        "kind": "Event", "apiVersion": "events.k8s.io/v1",
        "metadata": {"name": name, "namespace": "shop", "uid": uid, "resourceVersion": rv,
            "creationTimestamp": "2026-11-23T10:00:00Z"},
        "eventTime": "2026-11-23T10:00:01.000000Z",
        "reportingController": "kubelet", "reportingInstance": "node-1",
        "action": "Pulling", "reason": reason, "type": "Normal",
        "note": format!("{reason} image"),
        "regarding": {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "uid-web",
            "apiVersion": "v1", "fieldPath": "spec.containers{app}"},
        "deprecatedCount": 1
    })
}

const EVENTS: &str = "/apis/events.k8s.io/v1/events";

fn events_input() -> K8sEventsInput {
    K8sEventsInput {
        max_batch_events: 2,
        // Long: batches are cut by size, bookmarks and the end of a watch, never by timing.
        max_batch_wait: Duration::from_secs(3600),
        list_page_size: 2,
        ..K8sEventsInput::default()
    }
}

/// Receives batches until `want` events and dead letters were seen, acknowledging each.
async fn receive(rx: &mut mpsc::Receiver<K8sEventBatch>, want: usize) -> Vec<K8sEventBatch> {
    let mut got = Vec::new();
    let mut n = 0;
    while n < want {
        let batch = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("a batch in time")
            .expect("the source is running");
        n += batch.events.len() + batch.dead_letters.len();
        batch.ack.ack().unwrap();
        got.push(batch);
    }
    got
}

fn reasons(batches: &[K8sEventBatch]) -> Vec<(String, String)> {
    batches
        .iter()
        .flat_map(|b| &b.events)
        .map(|e| {
            (
                e.reason.clone().unwrap_or_default(),
                e.resource_version.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn events_resume_after_restart_relist_on_410_and_never_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeApiServer::start().await;
    let mut broken = event("bad", "uid-bad", "12", "Broken");
    broken["eventTime"] = Value::Null;
    broken["metadata"]["creationTimestamp"] = Value::Null;
    server.collection(
        EVENTS,
        "Event",
        "events.k8s.io/v1",
        "13",
        vec![
            event("a", "uid-a", "10", "Pulling"),
            event("b", "uid-b", "11", "Pulled"),
            broken,
        ],
    );
    server.with(EVENTS, |c| {
        c.watches.push_back(WatchScript {
            lines: vec![
                watch_line("ADDED", event("c", "uid-c", "14", "Created")),
                // The same version again (a server replay) is not a new record.
                watch_line("MODIFIED", event("c", "uid-c", "14", "Created")),
                bookmark("Event", "events.k8s.io/v1", "15"),
            ],
            close: false,
        })
    });

    // First run: list (paginated), then watch.
    let source = K8sEventSource::open(server.client(), events_input(), dir.path(), &[]).unwrap();
    let checkpoint = source.checkpoint();
    let (tx, mut rx) = mpsc::channel(16);
    let task = tokio::spawn(source.run(tx));
    let first = receive(&mut rx, 4).await;
    assert_eq!(
        reasons(&first),
        [("Pulling", "10"), ("Pulled", "11"), ("Created", "14")].map(|(a, b)| (a.into(), b.into()))
    );
    let dead: Vec<_> = first.iter().flat_map(|b| &b.dead_letters).collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].kind, "schema");
    assert!(dead[0].location.as_deref().unwrap().contains("shop/bad"));
    // Positions are contiguous from 0.
    let mut next = 0;
    for b in &first {
        assert_eq!(b.start, next);
        assert_eq!(b.stream, STREAM);
        next = b.end;
    }
    assert_eq!(next, 4);
    eventually("the bookmark to reach the checkpoint", || {
        checkpoint.acknowledged() == (Some("15".into()), 4)
    })
    .await;
    task.abort();
    let _ = task.await;

    // Second run: the stored resourceVersion (15) has expired: 410 Gone, list again. The list
    // still holds what was sent, plus a new event and a new version of an old one.
    server.with(EVENTS, |c| {
        c.oldest_rv = 20;
        c.resource_version = "23".into();
        c.items = vec![
            event("b", "uid-b", "11", "Pulled"),
            event("c", "uid-c", "14", "Created"),
            event("d", "uid-d", "21", "Killing"),
            event("a", "uid-a", "22", "Pulling"),
        ];
        c.watches.push_back(WatchScript {
            lines: vec![
                watch_line("ADDED", event("d", "uid-d", "21", "Killing")),
                watch_line("ADDED", event("e", "uid-e", "24", "Started")),
                watch_line("DELETED", event("b", "uid-b", "25", "Pulled")),
            ],
            close: true,
        });
    });
    let source = K8sEventSource::open(server.client(), events_input(), dir.path(), &[]).unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let task = tokio::spawn(source.run(tx));
    let second = receive(&mut rx, 3).await;
    assert_eq!(
        reasons(&second),
        [("Killing", "21"), ("Pulling", "22"), ("Started", "24")]
            .map(|(a, b)| (a.into(), b.into()))
    );
    assert_eq!(second[0].start, 4, "positions continue from the checkpoint");
    let origin = BatchOrigin {
        agent: "cluster-agent".into(),
        input: "k8s_events".into(),
        ..BatchOrigin::default()
    };
    let ingest = second[0].to_ingest(origin.clone());
    assert_eq!(
        ingest.id,
        kestrel_event::batch_id(
            "cluster-agent",
            "k8s_events",
            STREAM,
            second[0].start,
            second[0].end
        )
    );
    assert_eq!(ingest.k8s_events.len(), second[0].events.len());
    assert!(server.requests().iter().any(|r| r.starts_with(EVENTS)
        && r.contains("watch=true")
        && r.contains("resourceVersion=15")));
    task.abort();
}

#[test]
fn a_restart_resumes_after_the_batches_left_in_the_disk_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k8s_events.k8s_events.json");
    let checkpoint = EventCheckpoint::open(path.clone()).unwrap();
    checkpoint.emit(0, 3, Some("30".into())).unwrap();
    checkpoint.emit(3, 5, Some("40".into())).unwrap();
    checkpoint.emit(5, 9, Some("50".into())).unwrap();
    checkpoint.ack(0, 3).unwrap();
    // Acknowledged out of order: the checkpoint waits for [3, 5).
    checkpoint.ack(5, 9).unwrap();
    assert_eq!(checkpoint.acknowledged(), (Some("30".into()), 3));

    let reopened = EventCheckpoint::open(path.clone()).unwrap();
    assert_eq!(reopened.acknowledged(), (Some("30".into()), 3));
    let meta = |start, end| BatchMeta {
        id: kestrel_event::batch_id("a", "k8s_events", STREAM, start, end),
        input: "k8s_events".into(),
        stream: STREAM.into(),
        start,
        end,
        records: 1,
    };
    // [3, 5) is still in the disk buffer: resume after it.
    assert_eq!(
        reopened.resume_point(&[meta(3, 5)], "k8s_events"),
        (Some("40".into()), 5)
    );
    // Nothing buffered: from the acknowledged point.
    assert_eq!(
        reopened.resume_point(&[], "k8s_events"),
        (Some("30".into()), 3)
    );
    // Another input's batches do not count.
    let mut other = meta(3, 5);
    other.input = "other".into();
    assert_eq!(
        reopened.resume_point(&[other], "k8s_events"),
        (Some("30".into()), 3)
    );
    reopened.ack(3, 5).unwrap();
    assert_eq!(reopened.acknowledged(), (Some("50".into()), 9));
    std::fs::write(&path, b"{not json").unwrap();
    assert_eq!(
        EventCheckpoint::open(path).unwrap().acknowledged(),
        (None, 0)
    );
}

/// Resident memory of this process in bytes (Linux), for the figure printed below.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn many_pods_are_kept_compactly_and_found() {
    use ::kube::runtime::watcher::Event;
    let store = PodMetadataStore::new(&kube_config("node-1"));
    let rs = owner("ReplicaSet", "apps/v1", "web-6d4cf56db6");
    let pods: Vec<k8s_openapi::api::core::v1::Pod> = (0..10_000)
        .map(|i| {
            serde_json::from_value(pod(
                "shop",
                &format!("web-6d4cf56db6-{i:05}"),
                &format!("0d6f2c4e-8a1b-4c3d-9e7f-{i:012}"),
                "node-1",
                "100",
                json!({"app": "web", "pod-template-hash": "6d4cf56db6",
                       "app.kubernetes.io/part-of": "shop", "version": "1.4.2"}),
                json!({"kubectl.kubernetes.io/default-container": "app"}),
                rs.clone(),
            ))
            .unwrap()
        })
        .collect();
    let before = rss_bytes();
    for p in &pods {
        store.apply_pod_for_test(Event::Apply(p.clone()));
    }
    let after = rss_bytes();
    assert_eq!(store.pod_count(), 10_000);
    let mut id = identity("0d6f2c4e-8a1b-4c3d-9e7f-000000004321", "app");
    store.enrich(&mut id);
    assert_eq!(
        id.image.as_deref(),
        Some("registry.example/web-6d4cf56db6-04321:1.0")
    );
    assert_eq!(
        id.owner_kind.as_deref(),
        Some("ReplicaSet"),
        "no ReplicaSet watch here"
    );
    if let (Some(b), Some(a)) = (before, after) {
        // Informational (other tests share the process): run alone for a clean figure.
        eprintln!(
            "pod metadata: ~{} KiB RSS per 1,000 pods",
            a.saturating_sub(b) / 10 / 1024
        );
    }
}
