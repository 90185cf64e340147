//! Fields: resolution of a rule's field names against the [`catalog`] (Falco's k8saudit
//! `ka.*`/`jevt.*` for audit events, Kestrel's names for the other sources), and extraction of
//! their values from an [`Event`], cached per event and shared by every rule that reads the
//! same field. Audit fields are extracted here; the agent sources' in [`agent`].

mod agent;
pub mod catalog;

use std::borrow::Cow;

use foldhash::HashMap;

use base64::Engine as _;
use kestrel_event::AuditEvent;
use serde_json::Value;

use crate::event::{Event, SourceSet};
use crate::parse::Transform;
pub use catalog::{catalog, FieldArg, FieldInfo, FieldType};

/// The value of a field on one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'e> {
    /// Not available on this event (Falco's `<NA>`).
    NA,
    One(Cow<'e, str>),
    Many(Vec<Cow<'e, str>>),
}

impl Val<'_> {
    /// Renders the value as Falco prints it in outputs: lists as `(a,b)`, missing as `<NA>`.
    pub fn render(&self) -> String {
        match self {
            Val::NA => "<NA>".to_string(),
            Val::One(s) => s.to_string(),
            Val::Many(v) => format!("({})", v.join(",")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PodList {
    Containers,
    InitContainers,
    EphemeralContainers,
}

impl PodList {
    fn key(self) -> &'static str {
        match self {
            PodList::Containers => "containers",
            PodList::InitContainers => "initContainers",
            PodList::EphemeralContainers => "ephemeralContainers",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CAttr {
    Image,
    Repository,
    Privileged,
    HostPort,
    AllowPrivilegeEscalation,
    ReadOnlyFs,
    RunAsUser,
    RunAsGroup,
    EffRunAsUser,
    EffRunAsGroup,
    ProcMount,
    AddCapabilities,
}

/// Which part of the event a field reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    // Every source.
    EvtTime,
    EvtTimeIso,
    EvtSource,
    // Kubernetes audit.
    AuditId,
    Stage,
    Verb,
    Uri,
    UriParam,
    UserName,
    UserGroups,
    ImpUserName,
    TargetName,
    TargetNamespace,
    TargetResource,
    TargetSubresource,
    AuthDecision,
    AuthReason,
    UserAgent,
    SourceIps,
    ResponseCode,
    ResponseReason,
    RespName,
    BindingSubjects,
    BindingRole,
    BindingSubjectHasName,
    ConfigmapName,
    ConfigmapObj,
    Pod(PodList, CAttr),
    FirstContainerImage,
    FirstContainerRepository,
    AnyContainerPrivileged,
    /// A scalar or array under `requestObject.spec` (path segments).
    Spec(&'static [&'static str]),
    RoleRules,
    RoleRulesAttr(&'static str),
    ServicePorts,
    VolumesHostpath,
    VolumeHostpathArg,
    VolumesFlexDriver,
    VolumesType,
    JevtValue,
    JevtObj,
    JevtRawtime,
    JevtTime,
    /// A field of the agent's sources (see [`agent`]).
    Agent(AgentKind),
}

/// Fields of the agent's sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AgentKind {
    Ident(IdentField),
    Log(LogField),
    Http(HttpField),
    Dns(DnsField),
    Net(NetField),
    Journal(JournalField),
    KEvent(KEventField),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum IdentField {
    Node,
    Cluster,
    Namespace,
    Pod,
    PodUid,
    Labels,
    Label,
    OwnerKind,
    OwnerName,
    ServiceAccount,
    Container,
    Image,
    ImageRepository,
    ImageTag,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LogField {
    Message,
    Stream,
    Truncated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum HttpField {
    ClientIp,
    Method,
    Path,
    PathDecoded,
    UrlPath,
    UrlQuery,
    QueryParam,
    Protocol,
    Status,
    Host,
    UserAgent,
    Referer,
    RemoteUser,
    BodyBytes,
    RequestBytes,
    RequestTime,
    UpstreamName,
    UpstreamAddr,
    UpstreamStatus,
    RequestId,
    Var,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DnsField {
    ClientIp,
    ClientPort,
    QueryId,
    Name,
    NameRaw,
    Type,
    Class,
    Domain,
    Labels,
    MaxLabelLen,
    Entropy,
    Protocol,
    Rcode,
    Flags,
    RequestBytes,
    ResponseBytes,
    Duration,
    DnssecOk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum NetField {
    SrcIp,
    DstIp,
    SrcPort,
    DstPort,
    SrcScope,
    DstScope,
    Proto,
    TcpFlags,
    Prefix,
    InIface,
    OutIface,
    Mac,
    Len,
    Ttl,
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum JournalField {
    Unit,
    Identifier,
    Message,
    Priority,
    Pid,
    Hostname,
    BootId,
    Cursor,
    Field,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum KEventField {
    Name,
    Namespace,
    Uid,
    Type,
    Reason,
    Message,
    Action,
    Controller,
    Instance,
    Count,
    ObjectKind,
    ObjectNamespace,
    ObjectName,
    ObjectUid,
    ObjectFieldPath,
}

/// Facts the rule index understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKey {
    Verb,
    Resource,
    Stage,
}

/// A resolved field: what it reads, its `[argument]` and the transformers applied to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldSpec {
    kind: Kind,
    arg: Option<String>,
    transforms: Vec<Transform>,
}

/// Why a field name could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    Unknown,
    /// The field exists, but not in the sources the rule reads (it names where it does).
    WrongSource(SourceSet),
    ArgRequired,
    ArgNotAllowed,
}

impl FieldSpec {
    /// Resolves `name[arg]` for a rule reading events of `sources` (the field must exist in at
    /// least one of them).
    pub fn resolve(
        name: &str,
        arg: Option<&str>,
        sources: SourceSet,
    ) -> Result<FieldSpec, FieldError> {
        let info = catalog::field(name).ok_or(FieldError::Unknown)?;
        if !info.sources.intersects(sources) {
            return Err(FieldError::WrongSource(info.sources));
        }
        match (info.arg, arg) {
            (FieldArg::Required(_), None | Some("")) => Err(FieldError::ArgRequired),
            (FieldArg::None, Some(_)) => Err(FieldError::ArgNotAllowed),
            _ => Ok(FieldSpec {
                kind: info.kind,
                arg: arg.map(str::to_string),
                transforms: Vec::new(),
            }),
        }
    }

    /// The same field with transformers applied (innermost first).
    pub fn with_transforms(mut self, transforms: &[Transform]) -> FieldSpec {
        self.transforms = transforms.to_vec();
        self
    }

    /// The index fact this field provides, if any.
    pub fn index_key(&self) -> Option<IndexKey> {
        if !self.transforms.is_empty() {
            return None;
        }
        match (&self.kind, self.arg.as_deref()) {
            (Kind::Verb, _) => Some(IndexKey::Verb),
            (Kind::TargetResource, _) => Some(IndexKey::Resource),
            (Kind::Stage, _) | (Kind::JevtValue, Some("/stage")) => Some(IndexKey::Stage),
            _ => None,
        }
    }

    /// Whether the field holds IP addresses (so CIDR operands match networks).
    pub fn is_ip(&self) -> bool {
        self.transforms.is_empty()
            && matches!(
                self.kind,
                Kind::SourceIps
                    | Kind::Agent(
                        AgentKind::Http(HttpField::ClientIp)
                            | AgentKind::Dns(DnsField::ClientIp)
                            | AgentKind::Net(NetField::SrcIp | NetField::DstIp)
                    )
            )
    }

    /// Whether the field can hold several values on one event.
    pub fn is_list(&self) -> bool {
        if self.transforms.contains(&Transform::Len) {
            return false;
        }
        matches!(
            self.kind,
            Kind::UserGroups
                | Kind::SourceIps
                | Kind::BindingSubjects
                | Kind::Pod(..)
                | Kind::RoleRules
                | Kind::RoleRulesAttr(_)
                | Kind::ServicePorts
                | Kind::VolumesHostpath
                | Kind::VolumesFlexDriver
                | Kind::VolumesType
                | Kind::Spec(&["securityContext", "supplementalGroups"])
                | Kind::Agent(
                    AgentKind::Ident(IdentField::Labels)
                        | AgentKind::Dns(DnsField::Flags)
                        | AgentKind::Net(NetField::TcpFlags)
                )
        )
    }
}

/// Interns field specs into slots so each field is extracted at most once per event.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    specs: Vec<FieldSpec>,
    names: Vec<String>,
    by_spec: HashMap<FieldSpec, usize>,
    /// Interned checks: (slot, test in condition syntax) → id.
    checks: HashMap<(usize, String), u32>,
}

impl Registry {
    /// The slot of a field, named by its spec's debug form.
    pub fn slot(&mut self, spec: FieldSpec) -> usize {
        let name = format!("{spec:?}");
        self.slot_named(spec, name)
    }

    /// The slot of a field; `name` is how the rules spell it (kept from its first use).
    pub fn slot_named(&mut self, spec: FieldSpec, name: String) -> usize {
        if let Some(&s) = self.by_spec.get(&spec) {
            return s;
        }
        let s = self.specs.len();
        self.specs.push(spec.clone());
        self.names.push(name);
        self.by_spec.insert(spec, s);
        s
    }

    /// The id shared by every check of `slot` with the same test.
    pub fn check_id(&mut self, slot: usize, test: &str) -> u32 {
        let n = self.checks.len() as u32;
        *self.checks.entry((slot, test.to_string())).or_insert(n)
    }

    /// The field's name as written in the rules (`tolower(ka.user.name)`).
    pub fn name(&self, slot: usize) -> &str {
        &self.names[slot]
    }

    pub fn spec(&self, slot: usize) -> &FieldSpec {
        &self.specs[slot]
    }

    pub fn len(&self) -> usize {
        self.specs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }
}

/// Per-event extraction cache.
pub struct Extractor<'r, 'e> {
    registry: &'r Registry,
    event: Event<'e>,
    cache: Vec<Option<Val<'e>>>,
    /// Results of interned checks: 0 not yet evaluated, 1 false, 2 true.
    checks: Vec<u8>,
    /// An audit event as JSON (`jevt.obj`, rare pointers), or an agent record's `fields`
    /// column parsed; built on first use.
    json: Option<Value>,
    /// The pod's labels, parsed on first use.
    labels: Option<Value>,
}

fn non_empty(s: &str) -> Val<'_> {
    if s.is_empty() {
        Val::NA
    } else {
        Val::One(Cow::Borrowed(s))
    }
}

fn opt(s: Option<&String>) -> Val<'_> {
    s.map_or(Val::NA, |s| Val::One(Cow::Borrowed(s.as_str())))
}

/// A JSON value as Falco's k8saudit plugin stringifies it: strings raw, the rest as compact JSON.
fn json_str(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        other => Cow::Owned(other.to_string()),
    }
}

fn json_one(v: Option<&Value>) -> Val<'_> {
    v.map_or(Val::NA, |v| Val::One(json_str(v)))
}

fn json_many(v: Option<&Value>) -> Val<'_> {
    match v {
        Some(Value::Array(a)) => Val::Many(a.iter().map(json_str).collect()),
        _ => Val::NA,
    }
}

fn get<'v>(v: Option<&'v Value>, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v?, |v, k| v.get(*k))
}

/// `image` without `:tag` or `@digest`, as Falco's plugin computes it.
fn repository(image: &str) -> &str {
    let s = image.split(':').next().unwrap_or(image);
    s.split('@').next().unwrap_or(s)
}

fn unescape_pointer(seg: &str) -> Cow<'_, str> {
    if seg.contains('~') {
        Cow::Owned(seg.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(seg)
    }
}

fn index_arg(arg: Option<&str>) -> Option<usize> {
    arg.and_then(|a| a.parse().ok())
}

impl<'r, 'e> Extractor<'r, 'e> {
    pub fn new(registry: &'r Registry, event: Event<'e>) -> Self {
        Extractor {
            registry,
            event,
            // Grown on demand: most events touch only the first few fields and checks.
            cache: Vec::new(),
            checks: Vec::new(),
            json: None,
            labels: None,
        }
    }

    pub fn event(&self) -> Event<'e> {
        self.event
    }

    /// The cached result of check `id`, if it ran on this event.
    pub fn check(&self, id: u32) -> Option<bool> {
        match self.checks.get(id as usize) {
            Some(1) => Some(false),
            Some(2) => Some(true),
            _ => None,
        }
    }

    pub fn set_check(&mut self, id: u32, v: bool) {
        if id == crate::eval::NO_CHECK_ID {
            return;
        }
        let i = id as usize;
        if i >= self.checks.len() {
            let n = (i + 1).max(self.checks.len() * 2).max(32);
            self.checks.resize(n, 0);
        }
        self.checks[i] = if v { 2 } else { 1 };
    }

    /// The value of the field in `slot`, extracted on first use.
    pub fn get(&mut self, slot: usize) -> &Val<'e> {
        if slot >= self.cache.len() {
            let n = (slot + 1).max(self.cache.len() * 2).max(16);
            self.cache.resize_with(n, || None);
        }
        if self.cache[slot].is_none() {
            let mut v = self.extract(slot);
            for t in &self.registry.spec(slot).transforms {
                v = transform(*t, v);
            }
            self.cache[slot] = Some(v);
        }
        self.cache[slot].as_ref().unwrap()
    }

    fn full_json(&mut self, e: &AuditEvent) -> &Value {
        self.json
            .get_or_insert_with(|| serde_json::to_value(e).unwrap_or(Value::Null))
    }

    fn extract(&mut self, slot: usize) -> Val<'e> {
        let spec = self.registry.spec(slot);
        match (spec.kind, self.event) {
            (Kind::EvtTime, ev) => ev
                .time()
                .map_or(Val::NA, |t| Val::One(Cow::Owned(t.to_string()))),
            (Kind::EvtTimeIso, ev) => ev.time().map_or(Val::NA, |t| {
                Val::One(Cow::Owned(kestrel_event::time::to_rfc3339(t)))
            }),
            (Kind::EvtSource, ev) => Val::One(Cow::Borrowed(ev.source().name())),
            (Kind::Agent(_), Event::Audit(_)) => Val::NA,
            (Kind::Agent(k), ev) => {
                let arg = spec.arg.as_deref();
                agent::extract(k, arg, ev, &mut self.json, &mut self.labels)
            }
            (_, Event::Audit(e)) => self.extract_audit(slot, e),
            _ => Val::NA,
        }
    }

    fn extract_audit(&mut self, slot: usize, e: &'e AuditEvent) -> Val<'e> {
        let spec = self.registry.spec(slot);
        let arg = spec.arg.as_deref();
        let req = e.request_object.as_ref();
        let oref = e.object_ref.as_ref();
        match spec.kind {
            Kind::AuditId => non_empty(&e.audit_id),
            Kind::Stage => non_empty(&e.stage),
            Kind::Verb => non_empty(&e.verb),
            Kind::Uri => non_empty(&e.request_uri),
            Kind::UriParam => uri_param(&e.request_uri, arg.unwrap_or_default()),
            Kind::UserName => non_empty(&e.user.username),
            Kind::UserGroups => {
                if e.user.groups.is_empty() {
                    Val::NA
                } else {
                    Val::Many(
                        e.user
                            .groups
                            .iter()
                            .map(|g| Cow::Borrowed(g.as_str()))
                            .collect(),
                    )
                }
            }
            Kind::ImpUserName => e
                .impersonated_user
                .as_ref()
                .map_or(Val::NA, |u| non_empty(&u.username)),
            Kind::TargetName | Kind::ConfigmapName => opt(oref.and_then(|o| o.name.as_ref())),
            Kind::TargetNamespace => opt(oref.and_then(|o| o.namespace.as_ref())),
            Kind::TargetResource => opt(oref.and_then(|o| o.resource.as_ref())),
            Kind::TargetSubresource => opt(oref.and_then(|o| o.subresource.as_ref())),
            Kind::AuthDecision => opt(e.annotations.get("authorization.k8s.io/decision")),
            Kind::AuthReason => opt(e.annotations.get("authorization.k8s.io/reason")),
            Kind::UserAgent => opt(e.user_agent.as_ref()),
            Kind::SourceIps => match index_arg(arg) {
                _ if e.source_ips.is_empty() => Val::NA,
                Some(i) => e
                    .source_ips
                    .get(i)
                    .map_or(Val::NA, |ip| Val::Many(vec![Cow::Borrowed(ip.as_str())])),
                None => Val::Many(
                    e.source_ips
                        .iter()
                        .map(|g| Cow::Borrowed(g.as_str()))
                        .collect(),
                ),
            },
            Kind::ResponseCode => match e.response_code() {
                Some(c) => Val::One(Cow::Owned(c.to_string())),
                None => Val::NA,
            },
            Kind::ResponseReason => opt(e.response_status.as_ref().and_then(|s| s.reason.as_ref())),
            Kind::RespName => json_one(get(e.response_object.as_ref(), &["metadata", "name"])),
            Kind::BindingSubjects => json_many(get(req, &["subjects"])),
            Kind::BindingRole => json_one(get(req, &["roleRef", "name"])),
            Kind::BindingSubjectHasName => Val::One(Cow::Borrowed("true")),
            Kind::ConfigmapObj => json_one(get(req, &["data"])),
            Kind::Spec(path) => {
                let v = get(req, &["spec"]).and_then(|s| get(Some(s), path));
                match v {
                    Some(Value::Array(_)) => json_many(v),
                    _ => json_one(v),
                }
            }
            Kind::Pod(list, attr) => pod_attr(req, list, attr, index_arg(arg)),
            Kind::FirstContainerImage => {
                match pod_attr(req, PodList::Containers, CAttr::Image, Some(0)) {
                    Val::Many(mut v) if !v.is_empty() => Val::One(v.swap_remove(0)),
                    _ => Val::NA,
                }
            }
            Kind::FirstContainerRepository => {
                match pod_attr(req, PodList::Containers, CAttr::Repository, Some(0)) {
                    Val::Many(mut v) if !v.is_empty() => Val::One(v.swap_remove(0)),
                    _ => Val::NA,
                }
            }
            Kind::AnyContainerPrivileged => match containers(req, PodList::Containers, None) {
                Some(cs) => {
                    let any = cs.iter().any(|c| {
                        get(Some(c), &["securityContext", "privileged"]) == Some(&Value::Bool(true))
                    });
                    Val::One(Cow::Borrowed(if any { "true" } else { "false" }))
                }
                None => Val::NA,
            },
            Kind::RoleRules => json_many(get(req, &["rules"])),
            Kind::RoleRulesAttr(key) => match get(req, &["rules"]) {
                Some(Value::Array(rules)) => {
                    let rules = select(rules, index_arg(arg));
                    let mut out = Vec::new();
                    for r in rules {
                        if let Some(Value::Array(vals)) = r.get(key) {
                            out.extend(vals.iter().filter(|v| !v.is_null()).map(json_str));
                        }
                    }
                    Val::Many(out)
                }
                _ => Val::NA,
            },
            Kind::ServicePorts => match get(req, &["spec", "ports"]) {
                Some(Value::Array(p)) => {
                    Val::Many(select(p, index_arg(arg)).iter().map(json_str).collect())
                }
                _ => Val::NA,
            },
            Kind::VolumesHostpath | Kind::VolumesFlexDriver => {
                let key: &[&str] = if spec.kind == Kind::VolumesHostpath {
                    &["hostPath", "path"]
                } else {
                    &["flexVolume", "driver"]
                };
                match get(req, &["spec", "volumes"]) {
                    Some(Value::Array(vols)) => Val::Many(
                        select(vols, index_arg(arg))
                            .iter()
                            .filter_map(|v| get(Some(v), key))
                            .map(json_str)
                            .collect(),
                    ),
                    _ => Val::NA,
                }
            }
            Kind::VolumesType => match get(req, &["spec", "volumes"]) {
                Some(Value::Array(vols)) => Val::Many(
                    select(vols, index_arg(arg))
                        .iter()
                        .filter_map(Value::as_object)
                        .flat_map(|o| o.keys().filter(|k| *k != "name"))
                        .map(|k| Cow::Borrowed(k.as_str()))
                        .collect(),
                ),
                _ => Val::NA,
            },
            Kind::VolumeHostpathArg => {
                let arg = arg.unwrap_or_default();
                match get(req, &["spec", "volumes"]) {
                    Some(Value::Array(vols)) => {
                        let hit = vols
                            .iter()
                            .filter_map(|v| {
                                get(Some(v), &["hostPath", "path"]).and_then(Value::as_str)
                            })
                            .any(|p| match arg.strip_suffix('*') {
                                Some(prefix) => p.starts_with(prefix),
                                None => p == arg,
                            });
                        Val::One(Cow::Borrowed(if hit { "true" } else { "false" }))
                    }
                    _ => Val::NA,
                }
            }
            Kind::JevtValue => {
                let ptr = arg.unwrap_or_default().to_string();
                self.pointer(e, &ptr)
            }
            Kind::JevtObj => Val::One(Cow::Owned(self.full_json(e).to_string())),
            Kind::JevtRawtime => Val::One(Cow::Owned(event_nanos(e).to_string())),
            Kind::JevtTime => Val::One(Cow::Owned(match e.event_time() {
                Some(t) => t.format("%H:%M:%S%.9f").to_string(),
                None => "<NA>".to_string(),
            })),
            Kind::EvtTime | Kind::EvtTimeIso | Kind::EvtSource | Kind::Agent(_) => {
                unreachable!("extracted by `extract`")
            }
        }
    }

    /// `jevt.value[/json/pointer]`: common paths read the typed event, the rest its JSON form.
    fn pointer(&mut self, e: &'e AuditEvent, ptr: &str) -> Val<'e> {
        let Some(rest) = ptr.strip_prefix('/') else {
            return Val::NA;
        };
        let (head, tail) = match rest.split_once('/') {
            Some((h, t)) => (h, Some(t)),
            None => (rest, None),
        };
        match (head, tail) {
            ("stage", None) => non_empty(&e.stage),
            ("verb", None) => non_empty(&e.verb),
            ("auditID", None) => non_empty(&e.audit_id),
            ("requestURI", None) => non_empty(&e.request_uri),
            ("level", None) => non_empty(&e.level),
            ("requestObject", _) | ("responseObject", _) => {
                let root = if head == "requestObject" {
                    e.request_object.as_ref()
                } else {
                    e.response_object.as_ref()
                };
                let sub = tail.map(|t| format!("/{t}")).unwrap_or_default();
                json_one(root.and_then(|r| r.pointer(&sub)))
            }
            ("annotations", Some(key)) if !key.contains('/') => {
                opt(e.annotations.get(unescape_pointer(key).as_ref()))
            }
            _ => match self.full_json(e).pointer(ptr) {
                Some(Value::String(s)) => Val::One(Cow::Owned(s.clone())),
                Some(v) => Val::One(Cow::Owned(v.to_string())),
                None => Val::NA,
            },
        }
    }
}

/// Applies one transformer, as Falco does: to each value of a list, except `len`, which counts
/// the values of a list and the bytes of a string.
fn transform(t: Transform, v: Val<'_>) -> Val<'_> {
    let one = |s: Cow<'_, str>| -> Option<String> {
        Some(match t {
            Transform::ToLower => s.to_lowercase(),
            Transform::ToUpper => s.to_uppercase(),
            Transform::Basename => s.rsplit('/').next().unwrap_or_default().to_string(),
            Transform::B64 => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s.trim().as_bytes())
                    .ok()?;
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Transform::Len => s.len().to_string(),
        })
    };
    match (t, v) {
        (_, Val::NA) => Val::NA,
        (Transform::Len, Val::Many(vs)) => Val::One(Cow::Owned(vs.len().to_string())),
        (_, Val::One(s)) => one(s).map_or(Val::NA, |s| Val::One(Cow::Owned(s))),
        (_, Val::Many(vs)) => {
            let out: Option<Vec<_>> = vs.into_iter().map(|s| one(s).map(Cow::Owned)).collect();
            out.map_or(Val::NA, Val::Many)
        }
    }
}

fn event_nanos(e: &AuditEvent) -> i64 {
    match e.event_time() {
        Some(t) => t.timestamp_nanos_opt().unwrap_or_default(),
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or_default(),
    }
}

fn select(arr: &[Value], idx: Option<usize>) -> &[Value] {
    match idx {
        Some(i) if i < arr.len() => &arr[i..=i],
        Some(_) => &[],
        None => arr,
    }
}

fn containers(req: Option<&Value>, list: PodList, idx: Option<usize>) -> Option<&[Value]> {
    match get(req, &["spec", list.key()]) {
        Some(Value::Array(a)) => Some(select(a, idx)),
        _ => None,
    }
}

fn pod_attr(req: Option<&Value>, list: PodList, attr: CAttr, idx: Option<usize>) -> Val<'_> {
    let Some(cs) = containers(req, list, idx) else {
        return Val::NA;
    };
    let sc = |c: &'_ Value, k: &str| get(Some(c), &["securityContext", k]).cloned();
    let mut out: Vec<Cow<'_, str>> = Vec::with_capacity(cs.len());
    for c in cs {
        match attr {
            CAttr::Image | CAttr::Repository => {
                if let Some(img) = c.get("image").and_then(Value::as_str) {
                    out.push(Cow::Borrowed(if attr == CAttr::Image {
                        img
                    } else {
                        repository(img)
                    }));
                }
            }
            CAttr::Privileged
            | CAttr::AllowPrivilegeEscalation
            | CAttr::ReadOnlyFs
            | CAttr::RunAsUser
            | CAttr::RunAsGroup
            | CAttr::ProcMount => {
                let key = match attr {
                    CAttr::Privileged => "privileged",
                    CAttr::AllowPrivilegeEscalation => "allowPrivilegeEscalation",
                    CAttr::ReadOnlyFs => "readOnlyRootFilesystem",
                    CAttr::RunAsUser => "runAsUser",
                    CAttr::RunAsGroup => "runAsGroup",
                    _ => "procMount",
                };
                match get(Some(c), &["securityContext", key]) {
                    Some(v) => out.push(json_str(v)),
                    // As Falco's plugin: a container without the setting makes the whole list
                    // unavailable, except for `privileged`, where it is skipped.
                    None if attr != CAttr::Privileged => return Val::NA,
                    None => {}
                }
            }
            CAttr::EffRunAsUser | CAttr::EffRunAsGroup => {
                let key = if attr == CAttr::EffRunAsUser {
                    "runAsUser"
                } else {
                    "runAsGroup"
                };
                let v = sc(c, key)
                    .or_else(|| get(req, &["spec", "securityContext", key]).cloned())
                    .map(|v| json_str(&v).into_owned())
                    .unwrap_or_else(|| "0".to_string());
                out.push(Cow::Owned(v));
            }
            CAttr::HostPort => {
                if let Some(Value::Array(ports)) = c.get("ports") {
                    for p in ports {
                        if let Some(v) = p.get("hostPort").or_else(|| p.get("containerPort")) {
                            out.push(json_str(v));
                        }
                    }
                }
            }
            // Falco's plugin gives each container's list as one JSON text (and nothing when a
            // container has none); Kestrel gives the capabilities themselves, so that
            // `intersects (SYS_ADMIN)` works, and skips containers without any.
            CAttr::AddCapabilities => {
                if let Some(Value::Array(caps)) =
                    get(Some(c), &["securityContext", "capabilities", "add"])
                {
                    out.extend(caps.iter().map(json_str));
                }
            }
        }
    }
    Val::Many(out)
}

fn uri_param<'e>(uri: &'e str, key: &str) -> Val<'e> {
    let Some((_, query)) = uri.split_once('?') else {
        return Val::NA;
    };
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k) == key {
            return Val::One(percent_decode(v));
        }
    }
    Val::NA
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(json: &str) -> AuditEvent {
        serde_json::from_str(json).unwrap()
    }

    const AUDIT: SourceSet = SourceSet::of(crate::Source::K8sAudit);

    fn val(e: &AuditEvent, name: &str, arg: Option<&str>) -> String {
        let mut r = Registry::default();
        let s = r.slot(FieldSpec::resolve(name, arg, AUDIT).unwrap());
        let mut x = Extractor::new(&r, Event::Audit(e));
        x.get(s).render()
    }

    #[test]
    fn extracts_pod_fields() {
        let e = ev(
            r#"{"verb":"create","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/a/pods/p/exec?command=sh&command=-c&container=x%20y",
            "user":{"username":"alice","groups":["g1","g2"]},"objectRef":{"resource":"pods","namespace":"a","name":"p"},
            "responseStatus":{"code":201},
            "requestObject":{"spec":{"hostNetwork":true,"volumes":[{"name":"v","hostPath":{"path":"/etc"}},{"name":"s","secret":{}}],
              "containers":[{"image":"nginx:1.2","securityContext":{"privileged":true}},{"image":"reg.io/app@sha256:ab"}],
              "initContainers":[{"image":"busybox"}]}},
            "responseObject":{"metadata":{"name":"p-1"}}}"#,
        );
        assert_eq!(
            val(&e, "ka.req.pod.containers.image", None),
            "(nginx:1.2,reg.io/app@sha256:ab)"
        );
        assert_eq!(
            val(&e, "ka.req.pod.containers.image.repository", None),
            "(nginx,reg.io/app)"
        );
        assert_eq!(
            val(&e, "ka.req.pod.containers.image", Some("1")),
            "(reg.io/app@sha256:ab)"
        );
        assert_eq!(val(&e, "ka.req.pod.containers.privileged", None), "(true)");
        assert_eq!(
            val(&e, "ka.req.pod.initContainers.image", None),
            "(busybox)"
        );
        assert_eq!(
            val(&e, "ka.req.pod.ephemeralContainers.image", None),
            "<NA>"
        );
        assert_eq!(val(&e, "ka.req.container.image", None), "nginx:1.2");
        assert_eq!(val(&e, "ka.req.container.privileged", None), "true");
        assert_eq!(val(&e, "ka.req.pod.host_network", None), "true");
        assert_eq!(val(&e, "ka.req.pod.host_pid", None), "<NA>");
        assert_eq!(val(&e, "ka.req.pod.volumes.hostpath", None), "(/etc)");
        assert_eq!(
            val(&e, "ka.req.pod.volumes.volume_type", None),
            "(hostPath,secret)"
        );
        assert_eq!(val(&e, "ka.req.volume.hostpath", Some("/et*")), "true");
        assert_eq!(val(&e, "ka.uri.param", Some("command")), "sh");
        assert_eq!(val(&e, "ka.uri.param", Some("container")), "x y");
        assert_eq!(val(&e, "ka.response.code", None), "201");
        assert_eq!(val(&e, "ka.resp.name", None), "p-1");
        assert_eq!(val(&e, "ka.user.groups", None), "(g1,g2)");
        assert_eq!(val(&e, "ka.target.subresource", None), "<NA>");
        assert_eq!(val(&e, "jevt.value", Some("/stage")), "ResponseComplete");
        assert_eq!(
            val(&e, "jevt.value", Some("/requestObject/spec/hostNetwork")),
            "true"
        );
        assert_eq!(val(&e, "jevt.value", Some("/user/username")), "alice");
        assert_eq!(val(&e, "jevt.value", Some("/nope")), "<NA>");
    }

    #[test]
    fn resolves_names() {
        assert_eq!(
            FieldSpec::resolve("ka.nope", None, AUDIT),
            Err(FieldError::Unknown)
        );
        assert_eq!(
            FieldSpec::resolve("ka.uri.param", None, AUDIT),
            Err(FieldError::ArgRequired)
        );
        assert_eq!(
            FieldSpec::resolve("ka.verb", Some("x"), AUDIT),
            Err(FieldError::ArgNotAllowed)
        );
        assert!(FieldSpec::resolve("ka.req.role.rules.verbs", Some("0"), AUDIT).is_ok());
        let dns = SourceSet::of(crate::Source::Dns);
        assert_eq!(
            FieldSpec::resolve("ka.verb", None, dns),
            Err(FieldError::WrongSource(AUDIT))
        );
        assert!(FieldSpec::resolve("evt.time", None, dns).is_ok());
    }
}
