//! Extraction of the agent sources' fields (container logs, ingress, DNS, netflow, journal,
//! Kubernetes events) from their records and their batch's origin, plus the derived helpers
//! (decoded paths, DNS label statistics, address scopes).

use std::borrow::Cow;
use std::net::IpAddr;

use kestrel_event::PodIdentity;
use serde_json::Value;

use super::{
    json_str, opt, percent_decode, repository, uri_param, AgentKind, DnsField, HttpField,
    IdentField, JournalField, KEventField, LogField, NetField, Val,
};
use crate::event::Event;

fn num<T: ToString>(v: Option<T>) -> Val<'static> {
    v.map_or(Val::NA, |n| Val::One(Cow::Owned(n.to_string())))
}

fn boolean(b: bool) -> Val<'static> {
    Val::One(Cow::Borrowed(if b { "true" } else { "false" }))
}

fn s(v: &str) -> Val<'_> {
    Val::One(Cow::Borrowed(v))
}

/// A JSON object held as text (`labels`, `fields` columns), parsed once per event into `cache`.
fn json_member(text: Option<&String>, cache: &mut Option<Value>, key: &str) -> Val<'static> {
    let Some(text) = text else {
        return Val::NA;
    };
    let v = cache.get_or_insert_with(|| serde_json::from_str(text).unwrap_or(Value::Null));
    v.get(key)
        .map_or(Val::NA, |v| Val::One(Cow::Owned(json_str(v).into_owned())))
}

pub(super) fn extract<'e>(
    kind: AgentKind,
    arg: Option<&str>,
    ev: Event<'e>,
    json: &mut Option<Value>,
    labels: &mut Option<Value>,
) -> Val<'e> {
    match (kind, ev) {
        (AgentKind::Ident(f), ev) => ident(f, arg, ev, labels),
        (AgentKind::Log(f), Event::ContainerLog(r, _)) => match f {
            LogField::Message => s(&r.message),
            LogField::Stream => s(r.stream.as_str()),
            LogField::Truncated => boolean(r.truncated),
        },
        (AgentKind::Http(f), Event::Ingress(r, _)) => {
            let path = r.path.as_deref();
            match f {
                HttpField::ClientIp => opt(r.client_ip.as_ref()),
                HttpField::Method => opt(r.method.as_ref()),
                HttpField::Path => opt(r.path.as_ref()),
                HttpField::PathDecoded => path.map_or(Val::NA, |p| Val::One(decode_fully(p))),
                HttpField::UrlPath => path.map_or(Val::NA, |p| s(p.split('?').next().unwrap_or(p))),
                HttpField::UrlQuery => path
                    .and_then(|p| p.split_once('?'))
                    .map_or(Val::NA, |(_, q)| s(q)),
                HttpField::QueryParam => path.map_or(Val::NA, |p| uri_param(p, arg.unwrap_or(""))),
                HttpField::Protocol => opt(r.protocol.as_ref()),
                HttpField::Status => num(r.status),
                HttpField::Host => opt(r.host.as_ref()),
                HttpField::UserAgent => opt(r.user_agent.as_ref()),
                HttpField::Referer => opt(r.referer.as_ref()),
                HttpField::RemoteUser => opt(r.remote_user.as_ref()),
                HttpField::BodyBytes => num(r.body_bytes),
                HttpField::RequestBytes => num(r.request_bytes),
                HttpField::RequestTime => num(r.request_time),
                HttpField::UpstreamName => opt(r.upstream_name.as_ref()),
                HttpField::UpstreamAddr => opt(r.upstream_addr.as_ref()),
                HttpField::UpstreamStatus => opt(r.upstream_status.as_ref()),
                HttpField::RequestId => opt(r.request_id.as_ref()),
                HttpField::Var => json_member(r.fields.as_ref(), json, arg.unwrap_or("")),
            }
        }
        (AgentKind::Dns(f), Event::Dns(r, _)) => {
            let name = r.query_name.as_deref().map(normalize_name);
            let on_name = |g: fn(&str) -> Val<'static>| name.as_deref().map_or(Val::NA, g);
            match f {
                DnsField::ClientIp => opt(r.client_ip.as_ref()),
                DnsField::ClientPort => num(r.client_port),
                DnsField::QueryId => num(r.query_id),
                DnsField::Name => name.map_or(Val::NA, Val::One),
                DnsField::NameRaw => opt(r.query_name.as_ref()),
                DnsField::Type => opt(r.query_type.as_ref()),
                DnsField::Class => opt(r.query_class.as_ref()),
                DnsField::Domain => match name {
                    Some(Cow::Borrowed(n)) => s(domain(n)),
                    Some(Cow::Owned(n)) => Val::One(Cow::Owned(domain(&n).to_string())),
                    None => Val::NA,
                },
                DnsField::Labels => on_name(|n| num(Some(labels_of(n).count()))),
                DnsField::MaxLabelLen => {
                    on_name(|n| num(Some(longest_label(n).map_or(0, str::len))))
                }
                DnsField::Entropy => on_name(|n| {
                    Val::One(Cow::Owned(format!(
                        "{:.2}",
                        longest_label(n).map_or(0.0, entropy)
                    )))
                }),
                DnsField::Protocol => opt(r.protocol.as_ref()),
                DnsField::Rcode => opt(r.rcode.as_ref()),
                DnsField::Flags => r.response_flags.as_deref().map_or(Val::NA, |f| {
                    Val::Many(
                        f.split(',')
                            .filter(|x| !x.is_empty())
                            .map(Cow::Borrowed)
                            .collect(),
                    )
                }),
                DnsField::RequestBytes => num(r.request_bytes),
                DnsField::ResponseBytes => num(r.response_bytes),
                DnsField::Duration => num(r.duration_ns),
                DnsField::DnssecOk => r.dnssec_ok.map_or(Val::NA, boolean),
            }
        }
        (AgentKind::Net(f), Event::Netflow(r, _)) => match f {
            NetField::SrcIp => opt(r.src_ip.as_ref()),
            NetField::DstIp => opt(r.dst_ip.as_ref()),
            NetField::SrcPort => num(r.src_port),
            NetField::DstPort => num(r.dst_port),
            NetField::SrcScope => r.src_ip.as_deref().map_or(Val::NA, scope),
            NetField::DstScope => r.dst_ip.as_deref().map_or(Val::NA, scope),
            NetField::Proto => opt(r.protocol.as_ref()),
            NetField::TcpFlags => r.tcp_flags.as_deref().map_or(Val::NA, |f| {
                Val::Many(f.split_whitespace().map(Cow::Borrowed).collect())
            }),
            NetField::Prefix => opt(r.prefix.as_ref()),
            NetField::InIface => opt(r.in_interface.as_ref()),
            NetField::OutIface => opt(r.out_interface.as_ref()),
            NetField::Mac => opt(r.mac.as_ref()),
            NetField::Len => num(r.length),
            NetField::Ttl => num(r.ttl),
            NetField::Raw => s(&r.raw),
        },
        (AgentKind::Journal(f), Event::Journal(r, _)) => match f {
            JournalField::Unit => opt(r.unit.as_ref()),
            JournalField::Identifier => opt(r.identifier.as_ref()),
            JournalField::Message => opt(r.message.as_ref()),
            JournalField::Priority => num(r.priority),
            JournalField::Pid => num(r.pid),
            JournalField::Hostname => opt(r.hostname.as_ref()),
            JournalField::BootId => opt(r.boot_id.as_ref()),
            JournalField::Cursor => opt(r.cursor.as_ref()),
            JournalField::Field => json_member(r.fields.as_ref(), json, arg.unwrap_or("")),
        },
        (AgentKind::KEvent(f), Event::K8sEvent(r, _)) => match f {
            KEventField::Name => opt(r.name.as_ref()),
            KEventField::Namespace => opt(r.namespace.as_ref()),
            KEventField::Uid => opt(r.uid.as_ref()),
            KEventField::Type => opt(r.event_type.as_ref()),
            KEventField::Reason => opt(r.reason.as_ref()),
            KEventField::Message => opt(r.note.as_ref()),
            KEventField::Action => opt(r.action.as_ref()),
            KEventField::Controller => opt(r.reporting_controller.as_ref()),
            KEventField::Instance => opt(r.reporting_instance.as_ref()),
            KEventField::Count => num(r.count),
            KEventField::ObjectKind => opt(r.regarding_kind.as_ref()),
            KEventField::ObjectNamespace => opt(r.regarding_namespace.as_ref()),
            KEventField::ObjectName => opt(r.regarding_name.as_ref()),
            KEventField::ObjectUid => opt(r.regarding_uid.as_ref()),
            KEventField::ObjectFieldPath => opt(r.regarding_field_path.as_ref()),
        },
        _ => Val::NA,
    }
}

fn ident<'e>(
    f: IdentField,
    arg: Option<&str>,
    ev: Event<'e>,
    labels: &mut Option<Value>,
) -> Val<'e> {
    let origin = ev.origin();
    match (f, ev) {
        (IdentField::Node, Event::Journal(r, o)) => {
            opt(o.and_then(|o| o.node.as_ref()).or(r.hostname.as_ref()))
        }
        (IdentField::Node, _) => opt(origin.and_then(|o| o.node.as_ref())),
        (IdentField::Cluster, _) => opt(origin.and_then(|o| o.cluster.as_ref())),
        // A Kubernetes event names the object it is about.
        (IdentField::Namespace, Event::K8sEvent(r, _)) => {
            opt(r.regarding_namespace.as_ref().or(r.namespace.as_ref()))
        }
        (IdentField::Pod | IdentField::PodUid, Event::K8sEvent(r, _)) => {
            if r.regarding_kind.as_deref() != Some("Pod") {
                return Val::NA;
            }
            opt(if f == IdentField::Pod {
                r.regarding_name.as_ref()
            } else {
                r.regarding_uid.as_ref()
            })
        }
        (f, ev) => match ev.pod() {
            Some(p) => pod_field(f, arg, p, labels),
            None => Val::NA,
        },
    }
}

fn pod_field<'e>(
    f: IdentField,
    arg: Option<&str>,
    p: &'e PodIdentity,
    labels: &mut Option<Value>,
) -> Val<'e> {
    match f {
        IdentField::Namespace => opt(p.namespace.as_ref()),
        IdentField::Pod => opt(p.pod.as_ref()),
        IdentField::PodUid => opt(p.pod_uid.as_ref()),
        IdentField::OwnerKind => opt(p.owner_kind.as_ref()),
        IdentField::OwnerName => opt(p.owner_name.as_ref()),
        IdentField::ServiceAccount => opt(p.service_account.as_ref()),
        IdentField::Container => opt(p.container.as_ref()),
        IdentField::Image => opt(p.image.as_ref()),
        IdentField::ImageRepository => p.image.as_deref().map_or(Val::NA, |i| s(repository(i))),
        IdentField::ImageTag => p.image.as_deref().and_then(image_tag).map_or(Val::NA, s),
        IdentField::Label => json_member(p.labels.as_ref(), labels, arg.unwrap_or("")),
        IdentField::Labels => {
            let Some(text) = &p.labels else {
                return Val::NA;
            };
            let v = labels.get_or_insert_with(|| serde_json::from_str(text).unwrap_or(Value::Null));
            match v {
                Value::Object(m) => Val::Many(
                    m.iter()
                        .map(|(k, v)| Cow::Owned(format!("{k}:{}", json_str(v))))
                        .collect(),
                ),
                _ => Val::NA,
            }
        }
        IdentField::Node | IdentField::Cluster => unreachable!("read from the origin"),
    }
}

/// The tag of an image reference: after the last `:` of its last path segment, digest removed.
fn image_tag(image: &str) -> Option<&str> {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split_once(':')
        .map(|(_, t)| t)
        .filter(|t| !t.is_empty())
}

/// Percent-decodes until the text no longer changes, at most three rounds.
fn decode_fully(p: &str) -> Cow<'_, str> {
    let mut cur = percent_decode(p);
    for _ in 0..2 {
        let next = percent_decode(&cur).into_owned();
        if next == cur {
            break;
        }
        cur = Cow::Owned(next);
    }
    cur
}

/// A DNS name lower-cased, without its trailing dot.
fn normalize_name(n: &str) -> Cow<'_, str> {
    let n = n.strip_suffix('.').unwrap_or(n);
    if n.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(n.to_ascii_lowercase())
    } else {
        Cow::Borrowed(n)
    }
}

fn labels_of(n: &str) -> impl Iterator<Item = &str> {
    n.split('.').filter(|l| !l.is_empty())
}

/// The last two labels of a name.
fn domain(n: &str) -> &str {
    let mut dots = n.rmatch_indices('.');
    dots.next();
    match dots.next() {
        Some((i, _)) => &n[i + 1..],
        None => n,
    }
}

fn longest_label(n: &str) -> Option<&str> {
    labels_of(n).fold(None, |best: Option<&str>, l| match best {
        Some(b) if b.len() >= l.len() => Some(b),
        _ => Some(l),
    })
}

/// Shannon entropy of a string's bytes, in bits per byte.
fn entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// What kind of address `ip` is.
fn scope(ip: &str) -> Val<'static> {
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return Val::NA;
    };
    let name = match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            if v.is_loopback() {
                "loopback"
            } else if v.is_unspecified() {
                "unspecified"
            } else if v.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
                // RFC 1918, and the CGNAT range many clusters use for pods.
                "private"
            } else if v.is_link_local() {
                "link_local"
            } else if v.is_multicast() || v.is_broadcast() {
                "multicast"
            } else {
                "public"
            }
        }
        IpAddr::V6(v) => {
            let seg = v.segments()[0];
            if let Some(v4) = v.to_ipv4_mapped() {
                return scope(&v4.to_string());
            } else if v.is_loopback() {
                "loopback"
            } else if v.is_unspecified() {
                "unspecified"
            } else if (seg & 0xfe00) == 0xfc00 {
                "private"
            } else if (seg & 0xffc0) == 0xfe80 {
                "link_local"
            } else if v.is_multicast() {
                "multicast"
            } else {
                "public"
            }
        }
    };
    Val::One(Cow::Borrowed(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_helpers() {
        assert_eq!(
            normalize_name("Pool.SupportXMR.com."),
            "pool.supportxmr.com"
        );
        assert_eq!(domain("pool.supportxmr.com"), "supportxmr.com");
        assert_eq!(domain("localhost"), "localhost");
        assert_eq!(longest_label("a.bcd.ef"), Some("bcd"));
        assert_eq!(labels_of("a.b.c").count(), 3);
        assert!(entropy("aaaa") < 0.01);
        assert!((entropy("abcd") - 2.0).abs() < 1e-9);
        assert!(entropy("x7f3k9q2m8v1z6w4n5b0c7d2e9r3t8y1u6i4o0p5") > 4.0);
        assert!(entropy("kubernetes") < 3.2);
    }

    #[test]
    fn address_scopes_and_image_tags() {
        let sc = |ip| scope(ip).render();
        assert_eq!(sc("10.244.1.7"), "private");
        assert_eq!(sc("100.64.3.1"), "private");
        assert_eq!(sc("169.254.169.254"), "link_local");
        assert_eq!(sc("127.0.0.1"), "loopback");
        assert_eq!(sc("8.8.8.8"), "public");
        assert_eq!(sc("fd00::1"), "private");
        assert_eq!(sc("fe80::1"), "link_local");
        assert_eq!(sc("2001:4860::8888"), "public");
        assert_eq!(sc("::ffff:10.0.0.1"), "private");
        assert_eq!(sc("nope"), "<NA>");
        assert_eq!(image_tag("reg.io:5000/shop/web:1.4"), Some("1.4"));
        assert_eq!(image_tag("reg.io:5000/shop/web"), None);
        assert_eq!(image_tag("web@sha256:ab"), None);
    }

    #[test]
    fn decoding_goes_through_double_encoding() {
        assert_eq!(decode_fully("/a/%252e%252e%252fetc"), "/a/../etc");
        assert_eq!(decode_fully("/plain"), "/plain");
    }
}
