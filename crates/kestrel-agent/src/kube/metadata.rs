//! Pod metadata for enrichment: a node-scoped pod watch, metadata-only watches of ReplicaSets
//! and Jobs (to find a pod's top owner without a GET per pod) and a namespace watch, kept in
//! compact maps that the pipeline reads synchronously.
//!
//! The watches never hold up reading: until they have listed (or when the API cannot be
//! reached) lookups simply find nothing and records keep their path metadata.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ::kube::api::{Api, PartialObjectMeta};
use ::kube::runtime::watcher::{self, Event};
use ::kube::runtime::WatchStreamExt;
use ::kube::{Client, Resource, ResourceExt};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kestrel_event::PodIdentity;
use tracing::{debug, info, warn};

use super::config::{KubernetesConfig, LabelSelector};

/// The annotation that keeps a pod's logs from being read.
pub const EXCLUDE_ANNOTATION: &str = "kestrel.io/exclude";

/// How often deleted pods past their grace are dropped.
const PRUNE_INTERVAL: Duration = Duration::from_secs(30);

/// Where the store's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiStatus {
    /// No API access configured: path metadata only.
    Disabled,
    /// Watches started, the pod list has not arrived yet.
    Connecting,
    /// The pod list arrived; lookups are served from the watch.
    Ready,
    /// A watch failed (unreachable, forbidden...): path metadata only until it recovers.
    Unavailable(String),
}

/// What the store keeps of one pod.
#[derive(Debug, Clone)]
struct PodMeta {
    namespace: String,
    /// Labels as a JSON object.
    labels: Arc<str>,
    excluded_by_annotation: bool,
    excluded_by_label: bool,
    /// The `kestrel.io/multiline-start` annotation.
    multiline_start: Option<String>,
    /// The pod's controller: `(kind, name)`.
    controller: Option<(String, String)>,
    /// Image per container name (init and ephemeral containers included).
    images: Vec<(String, String)>,
    service_account: Option<String>,
    node: Option<String>,
    /// When the pod's deletion was seen; dropped after the grace.
    deleted_at: Option<Instant>,
}

/// Which workload kinds are followed up to their own controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum OwnedKind {
    ReplicaSet,
    Job,
}

#[derive(Debug, Default)]
struct State {
    pods: HashMap<String, PodMeta>,
    /// `(kind, namespace, name)` of a ReplicaSet or Job → its controller `(kind, name)`; only
    /// those that have a controller are kept.
    owners: HashMap<(OwnedKind, String, String), (String, String)>,
    /// Namespace → labels as a JSON object.
    namespaces: HashMap<String, Arc<str>>,
    /// During a (re-)list: what it listed so far, so that what it no longer lists is removed
    /// (pods: marked deleted) at its end, without a moment where lookups find nothing.
    listing_pods: Option<HashSet<String>>,
    listing_owners: HashMap<OwnedKind, HashSet<(String, String)>>,
    listing_namespaces: Option<HashSet<String>>,
}

struct Filter {
    include_namespaces: HashSet<String>,
    exclude_namespaces: HashSet<String>,
    exclude_labels: Vec<LabelSelector>,
}

/// What [`ApiStatus`] is computed from.
#[derive(Debug, Default)]
struct StatusState {
    enabled: bool,
    pods_listed: bool,
    /// Failing watches and why.
    failing: BTreeMap<&'static str, String>,
}

struct Inner {
    state: RwLock<State>,
    filter: Filter,
    delete_grace: Duration,
    status: Mutex<StatusState>,
    /// The "running with path metadata only" warning is given once.
    warned: AtomicBool,
}

/// Pod metadata by pod uid, filled by watches of the API server. Cheap to clone; lookups are
/// synchronous and never wait for the API.
#[derive(Clone)]
pub struct PodMetadataStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PodMetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state.read().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("PodMetadataStore")
            .field("pods", &state.pods.len())
            .field("owners", &state.owners.len())
            .field("namespaces", &state.namespaces.len())
            .finish()
    }
}

/// The running watches of a [`PodMetadataStore`]; dropping this stops them.
#[derive(Debug, Default)]
pub struct MetadataWatches {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl MetadataWatches {
    /// Stops the watches.
    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for MetadataWatches {
    fn drop(&mut self) {
        self.stop();
    }
}

impl PodMetadataStore {
    /// An empty store that knows the config's filters.
    pub fn new(config: &KubernetesConfig) -> PodMetadataStore {
        PodMetadataStore {
            inner: Arc::new(Inner {
                state: RwLock::new(State::default()),
                filter: Filter {
                    include_namespaces: config.include_namespaces.iter().cloned().collect(),
                    exclude_namespaces: config.exclude_namespaces.iter().cloned().collect(),
                    exclude_labels: config
                        .exclude_pod_labels
                        .iter()
                        .filter_map(|s| LabelSelector::parse(s))
                        .collect(),
                },
                delete_grace: config.delete_grace,
                status: Mutex::new(StatusState::default()),
                warned: AtomicBool::new(false),
            }),
        }
    }

    /// Starts the watches (pods of `node`, ReplicaSets, Jobs, namespaces) on the current Tokio
    /// runtime. With `client == None` the store stays empty (path metadata only).
    pub fn start(
        config: &KubernetesConfig,
        client: Option<Client>,
        node: &str,
    ) -> (PodMetadataStore, MetadataWatches) {
        let store = PodMetadataStore::new(config);
        let mut watches = MetadataWatches::default();
        let Some(client) = client else {
            return (store, watches);
        };
        store.status().enabled = true;
        let pods = watcher::watcher(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().fields(&format!("spec.nodeName={node}")),
        );
        watches.tasks.push(tokio::spawn(store.clone().follow(
            "pods",
            pods,
            PodMetadataStore::on_pods,
        )));
        // `Api<PartialObjectMeta<_>>` asks for metadata only.
        let replica_sets = watcher::watcher(
            Api::<PartialObjectMeta<ReplicaSet>>::all(client.clone()),
            watcher::Config::default(),
        );
        watches.tasks.push(tokio::spawn(store.clone().follow(
            "replicasets",
            replica_sets,
            |s: &PodMetadataStore, e| s.on_owned(OwnedKind::ReplicaSet, e),
        )));
        let jobs = watcher::watcher(
            Api::<PartialObjectMeta<Job>>::all(client.clone()),
            watcher::Config::default(),
        );
        watches.tasks.push(tokio::spawn(store.clone().follow(
            "jobs",
            jobs,
            |s: &PodMetadataStore, e| s.on_owned(OwnedKind::Job, e),
        )));
        let namespaces = watcher::watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client),
            watcher::Config::default(),
        );
        watches.tasks.push(tokio::spawn(store.clone().follow(
            "namespaces",
            namespaces,
            PodMetadataStore::on_namespaces,
        )));
        let pruner = store.clone();
        watches.tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_INTERVAL);
            loop {
                tick.tick().await;
                pruner.prune_at(Instant::now());
            }
        }));
        (store, watches)
    }

    /// Where the store's data comes from now.
    pub fn api_status(&self) -> ApiStatus {
        let s = self.status();
        if !s.enabled {
            ApiStatus::Disabled
        } else if let Some(reason) = s.failing.values().next() {
            ApiStatus::Unavailable(reason.clone())
        } else if s.pods_listed {
            ApiStatus::Ready
        } else {
            ApiStatus::Connecting
        }
    }

    fn status(&self) -> std::sync::MutexGuard<'_, StatusState> {
        self.inner.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fills `identity`'s image (of `identity.container`), labels, top owner and service
    /// account from the pod with `identity.pod_uid`; fields already set are kept when the pod
    /// is unknown.
    pub fn enrich(&self, identity: &mut PodIdentity) {
        let Some(uid) = identity.pod_uid.as_deref() else {
            return;
        };
        let state = self.read();
        let Some(pod) = state.pods.get(uid) else {
            return;
        };
        if let Some(container) = identity.container.as_deref() {
            if let Some((_, image)) = pod.images.iter().find(|(c, _)| c == container) {
                identity.image = Some(image.clone());
            }
        }
        identity.labels = Some(pod.labels.to_string());
        if let Some((kind, name)) = state.top_owner(&pod.namespace, pod.controller.as_ref()) {
            identity.owner_kind = Some(kind.to_owned());
            identity.owner_name = Some(name.to_owned());
        }
        if pod.service_account.is_some() {
            identity.service_account = pod.service_account.clone();
        }
    }

    /// The node a pod runs on, as the API server says.
    pub fn node_of(&self, pod_uid: &str) -> Option<String> {
        self.read().pods.get(pod_uid).and_then(|p| p.node.clone())
    }

    /// A namespace's labels as a JSON object.
    pub fn namespace_labels(&self, namespace: &str) -> Option<String> {
        self.read().namespaces.get(namespace).map(|l| l.to_string())
    }

    /// The pod's `kestrel.io/multiline-start` annotation: its own multiline start pattern.
    pub fn multiline_start(&self, pod_uid: &str) -> Option<String> {
        self.read()
            .pods
            .get(pod_uid)
            .and_then(|p| p.multiline_start.clone())
    }

    /// Whether a pod's logs must not be read: annotated `kestrel.io/exclude: "true"`, carrying
    /// an excluded label, or in an excluded (or not included) namespace. An unknown pod is not
    /// excluded by labels or annotation (its namespace, from the path, is checked by
    /// [`PodMetadataStore::is_namespace_excluded`]).
    pub fn is_excluded(&self, pod_uid: &str) -> bool {
        let state = self.read();
        let Some(pod) = state.pods.get(pod_uid) else {
            return false;
        };
        pod.excluded_by_annotation
            || pod.excluded_by_label
            || self.is_namespace_excluded(&pod.namespace)
    }

    /// Whether a namespace is excluded by `include_namespaces`/`exclude_namespaces`.
    pub fn is_namespace_excluded(&self, namespace: &str) -> bool {
        let f = &self.inner.filter;
        f.exclude_namespaces.contains(namespace)
            || (!f.include_namespaces.is_empty() && !f.include_namespaces.contains(namespace))
    }

    /// Pods known (deleted ones within their grace included).
    pub fn pod_count(&self) -> usize {
        self.read().pods.len()
    }

    /// Whether a pod's deletion was seen (its metadata is kept for the grace).
    #[cfg(test)]
    pub(crate) fn is_deleted(&self, pod_uid: &str) -> bool {
        self.read()
            .pods
            .get(pod_uid)
            .is_some_and(|p| p.deleted_at.is_some())
    }

    /// Applies one pod watch event, as the watch does.
    #[cfg(test)]
    pub(crate) fn apply_pod_for_test(&self, event: Event<Pod>) {
        self.on_pods(event);
    }

    /// ReplicaSets and Jobs known with a controller.
    #[cfg(test)]
    pub(crate) fn owner_count(&self) -> usize {
        self.read().owners.len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops pods deleted more than the grace before `now`.
    pub(crate) fn prune_at(&self, now: Instant) {
        let grace = self.inner.delete_grace;
        self.write().pods.retain(|_, p| {
            p.deleted_at
                .is_none_or(|at| now.saturating_duration_since(at) <= grace)
        });
    }

    /// Runs one watch until the task is stopped, applying its events with `apply`.
    async fn follow<K, S, F>(self, what: &'static str, stream: S, mut apply: F)
    where
        S: Stream<Item = Result<Event<K>, watcher::Error>> + Send,
        F: FnMut(&PodMetadataStore, Event<K>) + Send,
    {
        let stream = stream.default_backoff();
        futures::pin_mut!(stream);
        let mut init: Option<()> = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    let done = matches!(event, Event::InitDone);
                    if matches!(event, Event::Init) {
                        init = Some(());
                    }
                    apply(&self, event);
                    if done && init.take().is_some() {
                        self.recovered(what);
                    }
                }
                Err(e) => self.unavailable(what, &e),
            }
        }
    }

    fn recovered(&self, what: &'static str) {
        let mut s = self.status();
        if s.failing.remove(what).is_some() {
            info!(watch = what, "kubernetes watch available again");
        }
        if what == "pods" {
            s.pods_listed = true;
        }
    }

    fn unavailable(&self, what: &'static str, error: &watcher::Error) {
        let reason = format!("{what} watch: {error}");
        if !self.inner.warned.swap(true, Ordering::AcqRel) {
            warn!(
                %reason,
                "kubernetes API unavailable: running with metadata from log paths only \
                 (namespace, pod, uid, container); retrying in the background"
            );
        } else {
            debug!(%reason, "kubernetes watch failed; retrying");
        }
        self.status().failing.insert(what, reason);
    }

    fn on_pods(&self, event: Event<Pod>) {
        let mut state = self.write();
        match event {
            Event::Init => state.listing_pods = Some(HashSet::new()),
            Event::InitApply(pod) | Event::Apply(pod) => {
                if let Some(uid) = pod.uid() {
                    let meta = self.pod_meta(&pod);
                    if let Some(listed) = state.listing_pods.as_mut() {
                        listed.insert(uid.clone());
                    }
                    state.pods.insert(uid, meta);
                }
            }
            Event::Delete(pod) => {
                if let Some(p) = pod.uid().and_then(|uid| state.pods.get_mut(&uid)) {
                    p.deleted_at = Some(Instant::now());
                }
            }
            Event::InitDone => {
                let listed = state.listing_pods.take().unwrap_or_default();
                let now = Instant::now();
                for (uid, p) in state.pods.iter_mut() {
                    if !listed.contains(uid) {
                        p.deleted_at.get_or_insert(now);
                    }
                }
            }
        }
    }

    fn on_owned<K: Resource>(&self, kind: OwnedKind, event: Event<PartialObjectMeta<K>>) {
        let mut state = self.write();
        match event {
            Event::Init => {
                state.listing_owners.insert(kind, HashSet::new());
            }
            Event::InitApply(obj) | Event::Apply(obj) => {
                let key = (kind, obj.namespace().unwrap_or_default(), obj.name_any());
                if let Some(listed) = state.listing_owners.get_mut(&kind) {
                    listed.insert((key.1.clone(), key.2.clone()));
                }
                match controller_of(obj.owner_references()) {
                    Some(owner) => {
                        state.owners.insert(key, owner);
                    }
                    None => {
                        state.owners.remove(&key);
                    }
                }
            }
            Event::Delete(obj) => {
                let key = (kind, obj.namespace().unwrap_or_default(), obj.name_any());
                state.owners.remove(&key);
            }
            Event::InitDone => {
                // What the re-list no longer has is gone.
                let listed = state.listing_owners.remove(&kind).unwrap_or_default();
                state.owners.retain(|(k, ns, name), _| {
                    *k != kind || listed.contains(&(ns.clone(), name.clone()))
                });
            }
        }
    }

    fn on_namespaces(&self, event: Event<PartialObjectMeta<Namespace>>) {
        let mut state = self.write();
        match event {
            Event::Init => state.listing_namespaces = Some(HashSet::new()),
            Event::InitApply(ns) | Event::Apply(ns) => {
                let labels = labels_json(ns.labels());
                if let Some(listed) = state.listing_namespaces.as_mut() {
                    listed.insert(ns.name_any());
                }
                state.namespaces.insert(ns.name_any(), labels);
            }
            Event::Delete(ns) => {
                state.namespaces.remove(&ns.name_any());
            }
            Event::InitDone => {
                let listed = state.listing_namespaces.take().unwrap_or_default();
                state.namespaces.retain(|name, _| listed.contains(name));
            }
        }
    }

    fn pod_meta(&self, pod: &Pod) -> PodMeta {
        let labels = pod.labels();
        let spec = pod.spec.as_ref();
        let mut images = Vec::new();
        if let Some(spec) = spec {
            let named = spec
                .containers
                .iter()
                .map(|c| (&c.name, &c.image))
                .chain(
                    spec.init_containers
                        .iter()
                        .flatten()
                        .map(|c| (&c.name, &c.image)),
                )
                .chain(
                    spec.ephemeral_containers
                        .iter()
                        .flatten()
                        .map(|c| (&c.name, &c.image)),
                );
            for (name, image) in named {
                if let Some(image) = image.as_ref().filter(|i| !i.is_empty()) {
                    images.push((name.clone(), image.clone()));
                }
            }
        }
        PodMeta {
            namespace: pod.namespace().unwrap_or_default(),
            labels: labels_json(labels),
            excluded_by_annotation: pod
                .annotations()
                .get(EXCLUDE_ANNOTATION)
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            multiline_start: pod
                .annotations()
                .get(crate::process::MULTILINE_START_ANNOTATION)
                .filter(|v| !v.is_empty())
                .cloned(),
            excluded_by_label: self.inner.filter.exclude_labels.iter().any(|sel| {
                labels
                    .get(&sel.key)
                    .is_some_and(|v| sel.value.as_ref().is_none_or(|want| want == v))
            }),
            controller: controller_of(pod.owner_references()),
            images,
            service_account: spec
                .and_then(|s| s.service_account_name.clone())
                .filter(|s| !s.is_empty()),
            node: spec.and_then(|s| s.node_name.clone()),
            deleted_at: None,
        }
    }
}

impl State {
    /// The top owner: a ReplicaSet's Deployment, a Job's CronJob, else the controller itself.
    fn top_owner<'a>(
        &'a self,
        namespace: &str,
        controller: Option<&'a (String, String)>,
    ) -> Option<(&'a str, &'a str)> {
        let (kind, name) = controller?;
        let owned = match kind.as_str() {
            "ReplicaSet" => Some(OwnedKind::ReplicaSet),
            "Job" => Some(OwnedKind::Job),
            _ => None,
        };
        if let Some(owned) = owned {
            if let Some((k, n)) = self
                .owners
                .get(&(owned, namespace.to_owned(), name.clone()))
            {
                return Some((k, n));
            }
        }
        Some((kind, name))
    }
}

fn controller_of(
    refs: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
) -> Option<(String, String)> {
    refs.iter()
        .find(|r| r.controller == Some(true))
        .map(|r| (r.kind.clone(), r.name.clone()))
}

fn labels_json(labels: &BTreeMap<String, String>) -> Arc<str> {
    Arc::from(serde_json::to_string(labels).expect("string maps serialize"))
}
