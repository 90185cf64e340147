//! Building one audit event: who ([`Actor`]), what ([`Req`]), rendered per stage into an
//! ordered JSON object ([`Obj`]) so that generated lines keep the API server's field order.

use std::collections::BTreeMap;

use kestrel_event::audit::AUDIT_API_VERSION_V1;
use serde_json::{Map, Value};

/// A JSON object that keeps its keys in insertion order (`serde_json::Map` sorts them).
#[derive(Clone, Debug, Default)]
pub(crate) struct Obj(Vec<(&'static str, Val)>);

/// A value inside an [`Obj`].
#[derive(Clone, Debug)]
pub(crate) enum Val {
    J(Value),
    O(Obj),
}

impl From<Value> for Val {
    fn from(v: Value) -> Self {
        Val::J(v)
    }
}
impl From<Obj> for Val {
    fn from(o: Obj) -> Self {
        Val::O(o)
    }
}
impl From<&str> for Val {
    fn from(s: &str) -> Self {
        Val::J(Value::String(s.to_owned()))
    }
}
impl From<String> for Val {
    fn from(s: String) -> Self {
        Val::J(Value::String(s))
    }
}

impl Obj {
    pub(crate) fn with(mut self, key: &'static str, v: impl Into<Val>) -> Self {
        self.0.push((key, v.into()));
        self
    }

    fn with_opt(self, key: &'static str, v: Option<&String>) -> Self {
        match v {
            Some(v) => self.with(key, v.clone()),
            None => self,
        }
    }

    pub(crate) fn to_value(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.0 {
            let v = match v {
                Val::J(j) => j.clone(),
                Val::O(o) => o.to_value(),
            };
            m.insert((*k).to_owned(), v);
        }
        Value::Object(m)
    }

    /// Compact JSON text, keys in insertion order.
    pub(crate) fn to_json(&self) -> String {
        let mut out = String::with_capacity(1024);
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        out.push('{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(k);
            out.push_str("\":");
            match v {
                Val::J(j) => out.push_str(&serde_json::to_string(j).unwrap_or_default()),
                Val::O(o) => o.write_json(out),
            }
        }
        out.push('}');
    }
}

/// Who sends a request: the authenticated user, where from, with which client.
#[derive(Clone, Debug)]
pub(crate) struct Actor {
    pub username: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: Option<Value>,
    pub ips: Vec<String>,
    pub ua: String,
    /// `authorization.k8s.io/reason` for the requests this actor is allowed to make.
    pub reason: String,
}

impl Actor {
    pub(crate) fn new(username: &str, groups: &[&str], ip: &str, ua: &str, reason: &str) -> Self {
        Actor {
            username: username.to_owned(),
            uid: None,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            extra: None,
            ips: vec![ip.to_owned()],
            ua: ua.to_owned(),
            reason: reason.to_owned(),
        }
    }

    pub(crate) fn uid(mut self, uid: String) -> Self {
        self.uid = Some(uid);
        self
    }

    pub(crate) fn extra(mut self, extra: Value) -> Self {
        self.extra = Some(extra);
        self
    }

    pub(crate) fn with_ip(mut self, ip: &str) -> Self {
        self.ips = vec![ip.to_owned()];
        self
    }

    pub(crate) fn with_ua(mut self, ua: &str) -> Self {
        self.ua = ua.to_owned();
        self
    }

    fn user(&self) -> Obj {
        let mut o = Obj::default().with("username", self.username.as_str());
        if let Some(uid) = &self.uid {
            o = o.with("uid", uid.as_str());
        }
        if !self.groups.is_empty() {
            o = o.with("groups", Value::from(self.groups.clone()));
        }
        if let Some(extra) = &self.extra {
            o = o.with("extra", extra.clone());
        }
        o
    }
}

/// `audit.k8s.io/v1` `ObjectReference`.
#[derive(Clone, Debug, Default)]
pub(crate) struct ObjRef {
    pub resource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
    pub api_group: Option<String>,
    pub api_version: Option<String>,
    pub resource_version: Option<String>,
    pub subresource: Option<String>,
}

impl ObjRef {
    fn to_obj(&self, with_name: bool) -> Obj {
        let o = Obj::default()
            .with_opt("resource", self.resource.as_ref())
            .with_opt("namespace", self.namespace.as_ref());
        let o = if with_name {
            o.with_opt("name", self.name.as_ref())
                .with_opt("uid", self.uid.as_ref())
        } else {
            o
        };
        o.with_opt("apiGroup", self.api_group.as_ref())
            .with_opt("apiVersion", self.api_version.as_ref())
            .with_opt("resourceVersion", self.resource_version.as_ref())
            .with_opt("subresource", self.subresource.as_ref())
    }

    /// `pods`, `deployments.apps`: how error messages name a resource.
    fn qualified(&self) -> String {
        let r = self.resource.clone().unwrap_or_default();
        match self.api_group.as_deref() {
            Some(g) if !g.is_empty() => format!("{r}.{g}"),
            _ => r,
        }
    }
}

/// The stages an audit event can report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
        }
    }
}

/// One API request, from which the event of each stage is rendered.
#[derive(Clone, Debug)]
pub(crate) struct Req {
    level: &'static str,
    verb: &'static str,
    uri: String,
    actor: Actor,
    object_ref: Option<ObjRef>,
    status: Obj,
    decision: &'static str,
    reason: String,
    annotations: BTreeMap<String, String>,
    request_object: Option<Value>,
    response_object: Option<Value>,
}

fn ok_status(code: i64) -> Obj {
    Obj::default()
        .with("metadata", Value::Object(Map::new()))
        .with("code", Value::from(code))
}

impl Req {
    pub(crate) fn new(actor: &Actor, verb: &'static str, uri: impl Into<String>) -> Self {
        Req {
            level: "Metadata",
            verb,
            uri: uri.into(),
            actor: actor.clone(),
            object_ref: None,
            status: ok_status(200),
            decision: "allow",
            reason: actor.reason.clone(),
            annotations: BTreeMap::new(),
            request_object: None,
            response_object: None,
        }
    }

    fn oref(&mut self) -> &mut ObjRef {
        self.object_ref.get_or_insert_with(|| ObjRef {
            api_version: Some("v1".into()),
            ..ObjRef::default()
        })
    }

    pub(crate) fn level(mut self, level: &'static str) -> Self {
        self.level = level;
        self
    }

    /// A core (`v1`) resource.
    pub(crate) fn res(mut self, resource: &str) -> Self {
        self.oref().resource = Some(resource.into());
        self
    }

    /// Sets the API group and version of the resource.
    pub(crate) fn group(mut self, group: &str, version: &str) -> Self {
        let o = self.oref();
        o.api_group = Some(group.into());
        o.api_version = Some(version.into());
        self
    }

    pub(crate) fn apps(self) -> Self {
        self.group("apps", "v1")
    }

    pub(crate) fn rbac(self) -> Self {
        self.group("rbac.authorization.k8s.io", "v1")
    }

    pub(crate) fn ns(mut self, ns: &str) -> Self {
        self.oref().namespace = Some(ns.into());
        self
    }

    pub(crate) fn name(mut self, name: &str) -> Self {
        self.oref().name = Some(name.into());
        self
    }

    pub(crate) fn uid(mut self, uid: &str) -> Self {
        self.oref().uid = Some(uid.into());
        self
    }

    pub(crate) fn rv(mut self, rv: &str) -> Self {
        self.oref().resource_version = Some(rv.into());
        self
    }

    pub(crate) fn sub(mut self, sub: &str) -> Self {
        self.oref().subresource = Some(sub.into());
        self
    }

    pub(crate) fn code(mut self, code: i64) -> Self {
        self.status = ok_status(code);
        self
    }

    pub(crate) fn reason(mut self, reason: &str) -> Self {
        self.reason = reason.into();
        self
    }

    pub(crate) fn annotate(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.into(), v.into());
        self
    }

    pub(crate) fn req_obj(mut self, v: Value) -> Self {
        self.request_object = Some(v);
        self
    }

    pub(crate) fn resp_obj(mut self, v: Value) -> Self {
        self.response_object = Some(v);
        self
    }

    fn failure(mut self, code: i64, reason: &str, message: String) -> Self {
        let o = self.object_ref.clone().unwrap_or_default();
        let mut details = Map::new();
        if let Some(n) = &o.name {
            details.insert("name".into(), n.clone().into());
        }
        if let Some(g) = o.api_group.as_ref().filter(|g| !g.is_empty()) {
            details.insert("group".into(), g.clone().into());
        }
        if let Some(r) = &o.resource {
            details.insert("kind".into(), r.clone().into());
        }
        self.status = Obj::default()
            .with("metadata", Value::Object(Map::new()))
            .with("status", "Failure")
            .with("message", message)
            .with("reason", reason)
            .with("details", Value::Object(details))
            .with("code", Value::from(code));
        self
    }

    /// 404 NotFound for the object in `objectRef`.
    pub(crate) fn not_found(self) -> Self {
        let o = self.object_ref.clone().unwrap_or_default();
        let msg = format!(
            "{} \"{}\" not found",
            o.qualified(),
            o.name.unwrap_or_default()
        );
        self.failure(404, "NotFound", msg)
    }

    /// 409 Conflict: an update with a stale resourceVersion.
    pub(crate) fn conflict(self) -> Self {
        let o = self.object_ref.clone().unwrap_or_default();
        let msg = format!(
            "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
            o.qualified(),
            o.name.unwrap_or_default()
        );
        self.failure(409, "Conflict", msg)
    }

    /// 403 Forbidden by RBAC, with the API server's message.
    pub(crate) fn forbidden(mut self) -> Self {
        let o = self.object_ref.clone().unwrap_or_default();
        let what = match &o.name {
            Some(n) => format!("{} \"{}\"", o.qualified(), n),
            None => o.qualified(),
        };
        let resource = match &o.subresource {
            Some(s) => format!("{}/{}", o.resource.clone().unwrap_or_default(), s),
            None => o.resource.clone().unwrap_or_default(),
        };
        let scope = match &o.namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        let msg = format!(
            "{what} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
            self.actor.username,
            self.verb,
            o.api_group.unwrap_or_default()
        );
        self.decision = "forbid";
        self.reason = String::new();
        self.failure(403, "Forbidden", msg)
    }

    /// The event of `stage`, with timestamps already formatted (or template placeholders).
    pub(crate) fn render(&self, audit_id: &str, stage: Stage, received: &str, at: &str) -> Obj {
        let mut e = Obj::default()
            .with("kind", "Event")
            .with("apiVersion", AUDIT_API_VERSION_V1)
            .with("level", self.level)
            .with("auditID", audit_id)
            .with("stage", stage.as_str())
            .with("requestURI", self.uri.as_str())
            .with("verb", self.verb)
            .with("user", self.actor.user())
            .with("sourceIPs", Value::from(self.actor.ips.clone()))
            .with("userAgent", self.actor.ua.as_str());
        if let Some(o) = &self.object_ref {
            // Before the body is read, a create does not know the new object's name yet.
            let named =
                stage != Stage::RequestReceived || self.verb != "create" || o.subresource.is_some();
            e = e.with("objectRef", o.to_obj(named));
        }
        if stage != Stage::RequestReceived {
            e = e.with("responseStatus", self.status.clone());
        }
        if stage == Stage::ResponseComplete {
            if let Some(r) = &self.request_object {
                e = e.with("requestObject", r.clone());
            }
            if let Some(r) = &self.response_object {
                e = e.with("responseObject", r.clone());
            }
        }
        e = e
            .with("requestReceivedTimestamp", received)
            .with("stageTimestamp", at);
        if stage != Stage::RequestReceived {
            let mut a = self.annotations.clone();
            a.insert("authorization.k8s.io/decision".into(), self.decision.into());
            a.insert("authorization.k8s.io/reason".into(), self.reason.clone());
            let a: Map<String, Value> = a.into_iter().map(|(k, v)| (k, v.into())).collect();
            e = e.with("annotations", Value::Object(a));
        }
        e
    }
}

/// A deterministic UUID derived from a name, for long-lived objects that keep their uid across
/// events (nodes, service accounts, running pods).
pub(crate) fn stable_uid(name: &str) -> String {
    fn fnv(data: &[u8], basis: u64) -> u64 {
        data.iter().fold(basis, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
    }
    let a = fnv(name.as_bytes(), 0xcbf2_9ce4_8422_2325);
    let b = fnv(name.as_bytes(), a ^ 0x9e37_79b9_7f4a_7c15);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}
