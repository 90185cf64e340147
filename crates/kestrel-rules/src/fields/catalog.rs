//! Every field a rule may read: its name, the sources it exists in, its type, its argument and
//! a description. This table is the only place a field name is declared: resolution, the
//! field reference page (`kestrel rules fields`, `docs/fields.md`) and its staleness test all
//! read it.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Serialize;

use super::{
    AgentKind, CAttr, DnsField, HttpField, IdentField, JournalField, KEventField, Kind, LogField,
    NetField, PodList,
};
use crate::event::{Source, SourceSet};

/// The type of a field's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    /// An integer; compare it with `<`, `>=`, ... (numerically) or `=`/`in` (as text).
    Int,
    Float,
    /// `true` or `false`.
    Bool,
    /// An IP address; `=`, `!=`, `in` and `intersects` also accept CIDR networks
    /// (`net.dst.ip in (10.0.0.0/8, 169.254.169.254)`).
    Ip,
    /// UTC nanoseconds since the epoch.
    Time,
    /// Several values (`in`: all of them in the set; `intersects`: any; others: some value).
    List,
    /// JSON text.
    Json,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Float => "float",
            FieldType::Bool => "bool",
            FieldType::Ip => "ip",
            FieldType::Time => "time",
            FieldType::List => "list",
            FieldType::Json => "json",
        }
    }
}

/// Whether a field takes an `[argument]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum FieldArg {
    None,
    /// `field[i]` optionally picks the i-th value (from 0).
    Index,
    /// `field[...]` is required; the string says what goes in the brackets.
    Required(&'static str),
}

/// One field of the catalog.
#[derive(Debug, Clone, Serialize)]
pub struct FieldInfo {
    pub name: String,
    /// The sources whose events have the field.
    #[serde(serialize_with = "ser_sources")]
    pub sources: SourceSet,
    #[serde(rename = "type")]
    pub ty: FieldType,
    pub arg: FieldArg,
    pub desc: String,
    #[serde(skip)]
    pub(super) kind: Kind,
}

fn ser_sources<S: serde::Serializer>(s: &SourceSet, ser: S) -> Result<S::Ok, S::Error> {
    ser.collect_seq(s.iter().map(Source::name))
}

impl FieldInfo {
    /// The name as written with its argument: `ka.uri.param[name]`, `ka.sourceips[i]`.
    pub fn display_name(&self) -> String {
        match self.arg {
            FieldArg::None => self.name.clone(),
            FieldArg::Index => format!("{}[i]", self.name),
            FieldArg::Required(a) => format!("{}[{a}]", self.name),
        }
    }
}

struct Catalog {
    fields: Vec<FieldInfo>,
    by_name: HashMap<String, usize>,
}

/// Every field, grouped by source (audit first), in documentation order.
pub fn catalog() -> &'static [FieldInfo] {
    &get().fields
}

/// The field named `name`, if any.
pub fn field(name: &str) -> Option<&'static FieldInfo> {
    let c = get();
    c.by_name.get(name).map(|&i| &c.fields[i])
}

fn get() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let fields = build();
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        Catalog { fields, by_name }
    })
}

const AUDIT: SourceSet = SourceSet::of(Source::K8sAudit);
const POD_SOURCES: SourceSet = SourceSet::of(Source::ContainerLog)
    .with(Source::Ingress)
    .with(Source::Dns);
const AGENT_SOURCES: SourceSet = SourceSet::ALL.without(Source::K8sAudit);

#[rustfmt::skip]
fn build() -> Vec<FieldInfo> {
    use FieldArg::{Index, None as NoArg, Required};
    use FieldType::*;
    let mut out: Vec<FieldInfo> = Vec::new();
    let mut add = |name: &str, sources: SourceSet, ty, arg, desc: &str, kind: Kind| {
        out.push(FieldInfo {
            name: name.to_string(),
            sources,
            ty,
            arg,
            desc: desc.to_string(),
            kind,
        })
    };

    // --- Every source --------------------------------------------------------------------
    let all = SourceSet::ALL;
    add("evt.time", all, Time, NoArg, "The event's time in UTC nanoseconds (an audit event's `stageTimestamp`).", Kind::EvtTime);
    add("evt.time.iso8601", all, String, NoArg, "The event's time as RFC 3339 text in UTC.", Kind::EvtTimeIso);
    add("evt.source", all, String, NoArg, "The event's source: `k8s_audit`, `container_log`, `ingress`, `dns`, `netflow`, `journal` or `k8s_event`.", Kind::EvtSource);

    // --- Kubernetes audit (Falco's k8saudit plugin) ---------------------------------------
    use Kind as K;
    add("ka.auditid", AUDIT, String, NoArg, "The audit event's id (`auditID`).", K::AuditId);
    add("ka.stage", AUDIT, String, NoArg, "The stage of the request: `RequestReceived`, `ResponseStarted`, `ResponseComplete`, `Panic`.", K::Stage);
    add("ka.auth.decision", AUDIT, String, NoArg, "The authorization decision (`allow`, `forbid`), from the `authorization.k8s.io/decision` annotation.", K::AuthDecision);
    add("ka.auth.reason", AUDIT, String, NoArg, "The authorization reason, from the `authorization.k8s.io/reason` annotation.", K::AuthReason);
    add("ka.user.name", AUDIT, String, NoArg, "The user who made the request.", K::UserName);
    add("ka.user.groups", AUDIT, List, NoArg, "The groups of the user who made the request.", K::UserGroups);
    add("ka.impuser.name", AUDIT, String, NoArg, "The user impersonated by the request.", K::ImpUserName);
    add("ka.verb", AUDIT, String, NoArg, "The request's verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ...", K::Verb);
    add("ka.uri", AUDIT, String, NoArg, "The request URI, with its query.", K::Uri);
    add("ka.uri.param", AUDIT, String, Required("name"), "A parameter of the request URI's query (percent-decoded; the first one of that name).", K::UriParam);
    add("ka.target.name", AUDIT, String, NoArg, "The name of the object the request is about.", K::TargetName);
    add("ka.target.namespace", AUDIT, String, NoArg, "The namespace of the object the request is about.", K::TargetNamespace);
    add("ka.target.resource", AUDIT, String, NoArg, "The resource the request is about (`pods`, `secrets`, ...).", K::TargetResource);
    add("ka.target.subresource", AUDIT, String, NoArg, "The subresource the request is about (`exec`, `status`, ...).", K::TargetSubresource);
    add("ka.req.binding.subjects", AUDIT, List, NoArg, "A role binding's subjects, each as JSON text.", K::BindingSubjects);
    add("ka.req.binding.role", AUDIT, String, NoArg, "The role a role binding refers to (`roleRef.name`).", K::BindingRole);
    add("ka.req.binding.subject.has_name", AUDIT, String, Required("name"), "Deprecated in Falco: always `true` (kept so Falco's rules load).", K::BindingSubjectHasName);
    add("ka.req.configmap.name", AUDIT, String, NoArg, "The name of the ConfigMap the request is about.", K::ConfigmapName);
    add("ka.req.configmap.obj", AUDIT, Json, NoArg, "The `data` of the ConfigMap in the request, as JSON text.", K::ConfigmapObj);
    add("ka.req.container.image", AUDIT, String, NoArg, "The image of the first container of the pod in the request.", K::FirstContainerImage);
    add("ka.req.container.image.repository", AUDIT, String, NoArg, "The repository of the first container's image (without tag or digest).", K::FirstContainerRepository);
    add("ka.req.container.privileged", AUDIT, String, NoArg, "`true` when any container of the pod in the request is privileged.", K::AnyContainerPrivileged);
    add("ka.req.container.host_network", AUDIT, String, NoArg, "Deprecated alias of `ka.req.pod.host_network`.", K::Spec(&["hostNetwork"]));
    add("ka.req.pod.host_ipc", AUDIT, String, NoArg, "The pod's `hostIPC`.", K::Spec(&["hostIPC"]));
    add("ka.req.pod.host_network", AUDIT, String, NoArg, "The pod's `hostNetwork`.", K::Spec(&["hostNetwork"]));
    add("ka.req.pod.host_pid", AUDIT, String, NoArg, "The pod's `hostPID`.", K::Spec(&["hostPID"]));
    add("ka.req.pod.run_as_user", AUDIT, String, NoArg, "The pod's `securityContext.runAsUser`.", K::Spec(&["securityContext", "runAsUser"]));
    add("ka.req.pod.run_as_group", AUDIT, String, NoArg, "The pod's `securityContext.runAsGroup`.", K::Spec(&["securityContext", "runAsGroup"]));
    add("ka.req.pod.fs_group", AUDIT, String, NoArg, "The pod's `securityContext.fsGroup`.", K::Spec(&["securityContext", "fsGroup"]));
    add("ka.req.pod.supplemental_groups", AUDIT, List, NoArg, "The pod's `securityContext.supplementalGroups`.", K::Spec(&["securityContext", "supplementalGroups"]));
    let attrs: [(&str, CAttr, &str); 12] = [
        ("image", CAttr::Image, "The containers' images."),
        ("image.repository", CAttr::Repository, "The containers' image repositories (without tag or digest)."),
        ("privileged", CAttr::Privileged, "The containers' `securityContext.privileged` (containers without it are skipped)."),
        ("host_port", CAttr::HostPort, "The containers' host ports (else container ports)."),
        ("allow_privilege_escalation", CAttr::AllowPrivilegeEscalation, "The containers' `allowPrivilegeEscalation` (`<NA>` when a container lacks it)."),
        ("read_only_fs", CAttr::ReadOnlyFs, "The containers' `readOnlyRootFilesystem` (`<NA>` when a container lacks it)."),
        ("run_as_user", CAttr::RunAsUser, "The containers' `runAsUser` (`<NA>` when a container lacks it)."),
        ("run_as_group", CAttr::RunAsGroup, "The containers' `runAsGroup` (`<NA>` when a container lacks it)."),
        ("eff_run_as_user", CAttr::EffRunAsUser, "The containers' effective user: the container's `runAsUser`, else the pod's, else 0."),
        ("eff_run_as_group", CAttr::EffRunAsGroup, "The containers' effective group: the container's `runAsGroup`, else the pod's, else 0."),
        ("proc_mount", CAttr::ProcMount, "The containers' `procMount` (`<NA>` when a container lacks it)."),
        ("add_capabilities", CAttr::AddCapabilities, "The capabilities the containers add (Kestrel lists the capabilities themselves; Falco's plugin gives each container's list as JSON text)."),
    ];
    for (list, pl, which) in [
        ("containers", PodList::Containers, "containers"),
        ("initContainers", PodList::InitContainers, "init containers"),
        ("ephemeralContainers", PodList::EphemeralContainers, "ephemeral containers"),
    ] {
        for (attr, a, desc) in attrs {
            let desc = if which == "containers" {
                desc.to_string()
            } else {
                desc.replace("containers'", &format!("{which}'"))
            };
            add(&format!("ka.req.pod.{list}.{attr}"), AUDIT, List, Index, &desc, K::Pod(pl, a));
        }
    }
    add("ka.req.pod.volumes.hostpath", AUDIT, List, Index, "The host paths of the pod's `hostPath` volumes.", K::VolumesHostpath);
    add("ka.req.volume.hostpath", AUDIT, String, Required("path"), "`true` when the pod mounts this host path (a trailing `*` matches a prefix).", K::VolumeHostpathArg);
    add("ka.req.pod.volumes.flexvolume_driver", AUDIT, List, Index, "The drivers of the pod's flexVolume volumes.", K::VolumesFlexDriver);
    add("ka.req.pod.volumes.volume_type", AUDIT, List, Index, "The types of the pod's volumes (`hostPath`, `secret`, `emptyDir`, ...).", K::VolumesType);
    add("ka.req.service.type", AUDIT, String, NoArg, "The service's type (`ClusterIP`, `NodePort`, `LoadBalancer`, ...).", K::Spec(&["type"]));
    add("ka.req.service.ports", AUDIT, List, Index, "The service's ports, each as JSON text.", K::ServicePorts);
    add("ka.req.role.rules", AUDIT, List, NoArg, "The role's rules, each as JSON text.", K::RoleRules);
    add("ka.req.role.rules.apiGroups", AUDIT, List, Index, "The API groups of the role's rules.", K::RoleRulesAttr("apiGroups"));
    add("ka.req.role.rules.nonResourceURLs", AUDIT, List, Index, "The non-resource URLs of the role's rules.", K::RoleRulesAttr("nonResourceURLs"));
    add("ka.req.role.rules.verbs", AUDIT, List, Index, "The verbs of the role's rules.", K::RoleRulesAttr("verbs"));
    add("ka.req.role.rules.resources", AUDIT, List, Index, "The resources of the role's rules.", K::RoleRulesAttr("resources"));
    add("ka.resp.name", AUDIT, String, NoArg, "The name of the object in the response (`responseObject.metadata.name`).", K::RespName);
    add("ka.response.code", AUDIT, Int, NoArg, "The response's HTTP status code.", K::ResponseCode);
    add("ka.response.reason", AUDIT, String, NoArg, "The response status's reason (`Forbidden`, `NotFound`, ...).", K::ResponseReason);
    add("ka.useragent", AUDIT, String, NoArg, "The client's user agent.", K::UserAgent);
    add("ka.sourceips", AUDIT, List, Index, "The client's addresses (`sourceIPs`; `ka.sourceips[0]` is the client).", K::SourceIps);
    for (prefix, alias) in [("jevt", ""), ("json", " (the json plugin's name)")] {
        add(&format!("{prefix}.value"), AUDIT, String, Required("/json/pointer"), &format!("The value at a JSON pointer into the audit event (`~1` for `/`){alias}."), K::JevtValue);
        add(&format!("{prefix}.obj"), AUDIT, Json, NoArg, &format!("The whole audit event as JSON text{alias}."), K::JevtObj);
        add(&format!("{prefix}.rawtime"), AUDIT, Int, NoArg, &format!("The event's time in nanoseconds since the epoch{alias}."), K::JevtRawtime);
    }
    add("jevt.time", AUDIT, String, NoArg, "The event's time of day, `HH:MM:SS.nnnnnnnnn` (UTC).", K::JevtTime);

    // --- Agent sources: where the record came from --------------------------------------
    let a = |k| Kind::Agent(k);
    add("k8s.node.name", AGENT_SOURCES, String, NoArg, "The node whose agent read the record (for `journal`, else the entry's `_HOSTNAME`).", a(AgentKind::Ident(IdentField::Node)));
    add("k8s.cluster.name", AGENT_SOURCES, String, NoArg, "The cluster the agent belongs to, when configured.", a(AgentKind::Ident(IdentField::Cluster)));
    let pod_and_event = POD_SOURCES.with(Source::K8sEvent);
    add("k8s.ns.name", pod_and_event, String, NoArg, "The namespace of the pod that wrote the line (for `ingress`: the controller; for `dns`: CoreDNS); for `k8s_event`, the namespace of the object the event is about.", a(AgentKind::Ident(IdentField::Namespace)));
    add("k8s.pod.name", pod_and_event, String, NoArg, "The pod that wrote the line; for `k8s_event`, the pod the event is about (`<NA>` when it is about another kind).", a(AgentKind::Ident(IdentField::Pod)));
    add("k8s.pod.uid", pod_and_event, String, NoArg, "The uid of that pod.", a(AgentKind::Ident(IdentField::PodUid)));
    add("k8s.pod.labels", POD_SOURCES, List, NoArg, "The pod's labels, each as `key:value`.", a(AgentKind::Ident(IdentField::Labels)));
    add("k8s.pod.label", POD_SOURCES, String, Required("key"), "The value of one of the pod's labels.", a(AgentKind::Ident(IdentField::Label)));
    add("k8s.pod.owner.kind", POD_SOURCES, String, NoArg, "The kind of the pod's top owner: `Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`, ...", a(AgentKind::Ident(IdentField::OwnerKind)));
    add("k8s.pod.owner.name", POD_SOURCES, String, NoArg, "The name of the pod's top owner.", a(AgentKind::Ident(IdentField::OwnerName)));
    add("k8s.pod.service_account", POD_SOURCES, String, NoArg, "The pod's service account.", a(AgentKind::Ident(IdentField::ServiceAccount)));
    add("container.name", POD_SOURCES, String, NoArg, "The container that wrote the line.", a(AgentKind::Ident(IdentField::Container)));
    add("container.image", POD_SOURCES, String, NoArg, "The container's image, as the pod spec names it.", a(AgentKind::Ident(IdentField::Image)));
    add("container.image.repository", POD_SOURCES, String, NoArg, "The image without its tag or digest.", a(AgentKind::Ident(IdentField::ImageRepository)));
    add("container.image.tag", POD_SOURCES, String, NoArg, "The image's tag (`<NA>` without one).", a(AgentKind::Ident(IdentField::ImageTag)));

    // --- container_log --------------------------------------------------------------------
    let s = SourceSet::of(Source::ContainerLog);
    add("log.message", s, String, NoArg, "The line, without its newline (a runtime's partial lines joined).", a(AgentKind::Log(LogField::Message)));
    add("log.stream", s, String, NoArg, "`stdout` or `stderr`.", a(AgentKind::Log(LogField::Stream)));
    add("log.truncated", s, Bool, NoArg, "`true` when the line was longer than the agent's `max_line_bytes` and was cut.", a(AgentKind::Log(LogField::Truncated)));

    // --- ingress ----------------------------------------------------------------------------
    let s = SourceSet::of(Source::Ingress);
    let h = |f| a(AgentKind::Http(f));
    add("client.ip", s, Ip, NoArg, "The client's address as the ingress controller saw it (`$remote_addr`).", h(HttpField::ClientIp));
    add("http.method", s, String, NoArg, "The request's method.", h(HttpField::Method));
    add("http.path", s, String, NoArg, "The request's path and query, as logged.", h(HttpField::Path));
    add("http.path.decoded", s, String, NoArg, "`http.path` percent-decoded until it no longer changes (at most 3 rounds, so double encoding shows), `+` read as a space.", h(HttpField::PathDecoded));
    add("http.url.path", s, String, NoArg, "The path without the query.", h(HttpField::UrlPath));
    add("http.url.query", s, String, NoArg, "The query, without the `?` (`<NA>` without one).", h(HttpField::UrlQuery));
    add("http.query.param", s, String, Required("name"), "A query parameter, percent-decoded (the first one of that name).", h(HttpField::QueryParam));
    add("http.protocol", s, String, NoArg, "The request's protocol, for example `HTTP/1.1`.", h(HttpField::Protocol));
    add("http.status", s, Int, NoArg, "The response's status code.", h(HttpField::Status));
    add("http.host", s, String, NoArg, "The `Host` the request was for (when the log format has `$host`).", h(HttpField::Host));
    add("http.user_agent", s, String, NoArg, "The client's `User-Agent`.", h(HttpField::UserAgent));
    add("http.referer", s, String, NoArg, "The request's `Referer`.", h(HttpField::Referer));
    add("http.remote_user", s, String, NoArg, "The user of HTTP basic authentication (`$remote_user`).", h(HttpField::RemoteUser));
    add("http.body_bytes", s, Int, NoArg, "Bytes of the response body sent.", h(HttpField::BodyBytes));
    add("http.request_bytes", s, Int, NoArg, "Bytes of the request, headers and body.", h(HttpField::RequestBytes));
    add("http.request_time", s, Float, NoArg, "Seconds the request took.", h(HttpField::RequestTime));
    add("http.upstream.name", s, String, NoArg, "The upstream (backend) the ingress chose, for example `shop-web-80`.", h(HttpField::UpstreamName));
    add("http.upstream.addr", s, String, NoArg, "The upstream addresses tried, comma-separated as nginx writes them.", h(HttpField::UpstreamAddr));
    add("http.upstream.status", s, String, NoArg, "The upstream status(es).", h(HttpField::UpstreamStatus));
    add("http.request_id", s, String, NoArg, "The request id (`$req_id`).", h(HttpField::RequestId));
    add("http.var", s, String, Required("name"), "A variable of a configured log format that has no field of its own (`http.var[http_x_forwarded_for]`).", h(HttpField::Var));

    // --- dns ----------------------------------------------------------------------------------
    let s = SourceSet::of(Source::Dns);
    let d = |f| a(AgentKind::Dns(f));
    add("dns.client.ip", s, Ip, NoArg, "The address of the client that asked.", d(DnsField::ClientIp));
    add("dns.client.port", s, Int, NoArg, "The client's port.", d(DnsField::ClientPort));
    add("dns.query.id", s, Int, NoArg, "The DNS message id.", d(DnsField::QueryId));
    add("dns.query.name", s, String, NoArg, "The name asked for, lower-cased, without its trailing dot.", d(DnsField::Name));
    add("dns.query.name.raw", s, String, NoArg, "The name as CoreDNS logged it (with its trailing dot).", d(DnsField::NameRaw));
    add("dns.query.type", s, String, NoArg, "The record type asked for: `A`, `AAAA`, `TXT`, ...", d(DnsField::Type));
    add("dns.query.class", s, String, NoArg, "The class, nearly always `IN`.", d(DnsField::Class));
    add("dns.query.domain", s, String, NoArg, "The last two labels of the name (`pool.supportxmr.com` → `supportxmr.com`; no public-suffix list, so `example.co.uk` gives `co.uk`).", d(DnsField::Domain));
    add("dns.query.labels", s, Int, NoArg, "How many labels the name has.", d(DnsField::Labels));
    add("dns.query.max_label_len", s, Int, NoArg, "The length of the name's longest label (tunnels use long ones; at most 63).", d(DnsField::MaxLabelLen));
    add("dns.query.entropy", s, Float, NoArg, "The Shannon entropy, in bits per character, of the name's longest label (random or encoded data scores high).", d(DnsField::Entropy));
    add("dns.protocol", s, String, NoArg, "`udp` or `tcp`.", d(DnsField::Protocol));
    add("dns.rcode", s, String, NoArg, "The response code: `NOERROR`, `NXDOMAIN`, `SERVFAIL`, `REFUSED`, ...", d(DnsField::Rcode));
    add("dns.response.flags", s, List, NoArg, "The response's flags (`qr`, `aa`, `rd`, `ra`, ...).", d(DnsField::Flags));
    add("dns.request_bytes", s, Int, NoArg, "Size of the request in bytes.", d(DnsField::RequestBytes));
    add("dns.response_bytes", s, Int, NoArg, "Size of the response in bytes.", d(DnsField::ResponseBytes));
    add("dns.duration", s, Int, NoArg, "Nanoseconds CoreDNS took to answer.", d(DnsField::Duration));
    add("dns.dnssec_ok", s, Bool, NoArg, "The DNSSEC OK bit of the request.", d(DnsField::DnssecOk));

    // --- netflow ------------------------------------------------------------------------------
    let s = SourceSet::of(Source::Netflow);
    let n = |f| a(AgentKind::Net(f));
    add("net.src.ip", s, Ip, NoArg, "The packet's source address.", n(NetField::SrcIp));
    add("net.dst.ip", s, Ip, NoArg, "The packet's destination address.", n(NetField::DstIp));
    add("net.src.port", s, Int, NoArg, "The source port (TCP, UDP).", n(NetField::SrcPort));
    add("net.dst.port", s, Int, NoArg, "The destination port (TCP, UDP).", n(NetField::DstPort));
    add("net.src.scope", s, String, NoArg, "What the source address is: `private` (RFC 1918, CGNAT, ULA), `loopback`, `link_local`, `multicast`, `unspecified` or `public`.", n(NetField::SrcScope));
    add("net.dst.scope", s, String, NoArg, "What the destination address is (as `net.src.scope`).", n(NetField::DstScope));
    add("net.proto", s, String, NoArg, "The protocol as the kernel logged it: `TCP`, `UDP`, `ICMP`, ...", n(NetField::Proto));
    add("net.tcp.flags", s, List, NoArg, "The TCP flags set (`SYN`, `ACK`, `FIN`, `RST`, `PSH`, `URG`).", n(NetField::TcpFlags));
    add("net.prefix", s, String, NoArg, "The log prefix of the netfilter rule that logged the packet (`calico-packet:`...).", n(NetField::Prefix));
    add("net.in.iface", s, String, NoArg, "The interface the packet came in on.", n(NetField::InIface));
    add("net.out.iface", s, String, NoArg, "The interface the packet was going out on.", n(NetField::OutIface));
    add("net.mac", s, String, NoArg, "The `MAC=` header bytes as logged.", n(NetField::Mac));
    add("net.len", s, Int, NoArg, "The packet's length in bytes.", n(NetField::Len));
    add("net.ttl", s, Int, NoArg, "The packet's TTL.", n(NetField::Ttl));
    add("net.raw", s, String, NoArg, "The whole kernel log line.", n(NetField::Raw));

    // --- journal ------------------------------------------------------------------------------
    let s = SourceSet::of(Source::Journal);
    let j = |f| a(AgentKind::Journal(f));
    add("journal.unit", s, String, NoArg, "The systemd unit (`_SYSTEMD_UNIT`).", j(JournalField::Unit));
    add("journal.identifier", s, String, NoArg, "The syslog identifier (`SYSLOG_IDENTIFIER`).", j(JournalField::Identifier));
    add("journal.message", s, String, NoArg, "The message (`MESSAGE`).", j(JournalField::Message));
    add("journal.priority", s, Int, NoArg, "The priority, 0 (emerg) to 7 (debug).", j(JournalField::Priority));
    add("journal.pid", s, Int, NoArg, "The process id (`_PID`).", j(JournalField::Pid));
    add("journal.hostname", s, String, NoArg, "The host name (`_HOSTNAME`).", j(JournalField::Hostname));
    add("journal.boot_id", s, String, NoArg, "The boot id (`_BOOT_ID`).", j(JournalField::BootId));
    add("journal.cursor", s, String, NoArg, "The entry's cursor (`__CURSOR`).", j(JournalField::Cursor));
    add("journal.field", s, String, Required("NAME"), "Any other field of the entry (`journal.field[_COMM]`, `journal.field[_UID]`).", j(JournalField::Field));

    // --- k8s_event ----------------------------------------------------------------------------
    let s = SourceSet::of(Source::K8sEvent);
    let k = |f| a(AgentKind::KEvent(f));
    add("k8s.event.name", s, String, NoArg, "The event object's name.", k(KEventField::Name));
    add("k8s.event.namespace", s, String, NoArg, "The event object's namespace.", k(KEventField::Namespace));
    add("k8s.event.uid", s, String, NoArg, "The event object's uid.", k(KEventField::Uid));
    add("k8s.event.type", s, String, NoArg, "`Normal` or `Warning`.", k(KEventField::Type));
    add("k8s.event.reason", s, String, NoArg, "The reason: `FailedMount`, `BackOff`, `Killing`, `FailedScheduling`, ...", k(KEventField::Reason));
    add("k8s.event.message", s, String, NoArg, "The human-readable message (`note`, core/v1 `message`).", k(KEventField::Message));
    add("k8s.event.action", s, String, NoArg, "What was done or failed (events.k8s.io/v1 `action`).", k(KEventField::Action));
    add("k8s.event.controller", s, String, NoArg, "The controller that reported the event (`kubelet`, `default-scheduler`, ...).", k(KEventField::Controller));
    add("k8s.event.instance", s, String, NoArg, "The instance of that controller (for kubelet: the node).", k(KEventField::Instance));
    add("k8s.event.count", s, Int, NoArg, "How many times the event was seen.", k(KEventField::Count));
    add("k8s.event.object.kind", s, String, NoArg, "The kind of the object the event is about (`Pod`, `Node`, ...).", k(KEventField::ObjectKind));
    add("k8s.event.object.namespace", s, String, NoArg, "The namespace of that object.", k(KEventField::ObjectNamespace));
    add("k8s.event.object.name", s, String, NoArg, "The name of that object.", k(KEventField::ObjectName));
    add("k8s.event.object.uid", s, String, NoArg, "The uid of that object.", k(KEventField::ObjectUid));
    add("k8s.event.object.field_path", s, String, NoArg, "The part of the object the event is about (`spec.containers{web}`).", k(KEventField::ObjectFieldPath));
    out
}

/// The field reference as Markdown: one table per source.
pub fn markdown() -> String {
    let mut s = String::from(
        "# Rule fields\n\n\
         Generated from the code by `kestrel rules fields --format markdown`; do not edit (a test \
         fails when this page is stale).\n\n\
         A rule's `source` says which events it reads and so which fields it may use: Falco's \
         `k8s_audit` (the `audit` table) or one of Kestrel's tables. A field that is missing on an \
         event is `<NA>` in outputs and fails every comparison. Types: `list` fields hold several \
         values (`in`: all of them are in the set, `intersects`: any is, other operators: some \
         value matches); `int` and `float` compare numerically with `<`, `<=`, `>`, `>=`; `ip` \
         fields also match CIDR networks with `=`, `!=`, `in` and `intersects`; `time` is UTC \
         nanoseconds. `field[i]` picks one value of a field marked `[i]`.\n",
    );
    for src in Source::ALL {
        s.push_str(&format!("\n## `{}`", src.name()));
        if src.table() != src.name() {
            s.push_str(&format!(" (table `{}`)", src.table()));
        }
        s.push_str("\n\n| Field | Type | Description |\n|---|---|---|\n");
        for f in catalog().iter().filter(|f| f.sources.contains(src)) {
            s.push_str(&format!(
                "| `{}` | {} | {} |\n",
                f.display_name(),
                f.ty.name(),
                f.desc.replace('|', "\\|")
            ));
        }
    }
    s
}

/// The field reference as plain text: one line per field and source.
pub fn text() -> String {
    let mut s = String::new();
    for src in Source::ALL {
        s.push_str(&format!("{}:\n", src.name()));
        for f in catalog().iter().filter(|f| f.sources.contains(src)) {
            s.push_str(&format!(
                "  {:<40} {:<7} {}\n",
                f.display_name(),
                f.ty.name(),
                f.desc
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_source_has_fields() {
        let mut names: Vec<&str> = catalog().iter().map(|f| f.name.as_str()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate field names");
        for src in Source::ALL {
            assert!(
                catalog().iter().filter(|f| f.sources.contains(src)).count() >= 8,
                "{src}"
            );
        }
        assert!(catalog()
            .iter()
            .all(|f| f.desc.ends_with('.') || f.desc.ends_with("...")));
    }
}
