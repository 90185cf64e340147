//! CoreDNS `log` plugin lines for the demo: the pods' ordinary lookups (cluster services
//! through the `ndots:5` search path, external names that first fail in every search domain)
//! and the compromised web pod's mining-pool lookups, service-name guessing and DNS tunnel.
//!
//! Sizes follow the wire format: a query is 12 header bytes, the name, 4 bytes of type and class,
//! plus the EDNS OPT record when the client sends one; CoreDNS's cluster answers carry the
//! uncompressed name, its negative answers the `cluster.local.` SOA (93 bytes).

use rand::rngs::SmallRng;
use rand::Rng;

use crate::cluster::{CART_PODS, WEB_PODS};
use crate::logfmt::{chars, exp_gap, go_seconds, MS, SEC, US};
use crate::pod_logs::{Container, Timeline, TUNNEL_DOMAIN, VICTIM, WORKER_IP};

/// The VPC resolver CoreDNS forwards to.
const UPSTREAM: &str = "10.0.0.2:53";
const COREDNS_IP: &str = "10.244.1.3";

/// The node's search domain after the cluster's own.
const NODE_DOMAIN: &str = "eu-west-1.compute.internal";

/// How a client's resolver asks.
#[derive(Clone, Copy)]
struct Client<'a> {
    ip: &'a str,
    namespace: &'a str,
    /// EDNS buffer size and OPT bytes (Go's resolver: 1232 and 11; dig adds a cookie); `None`
    /// for musl and glibc, which send none.
    edns: Option<(u32, u32)>,
    /// The source port of the current lookup.
    port: u16,
}

/// The answer CoreDNS gives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// A cluster name that exists: `n` records.
    Cluster(u32),
    /// A cluster name that does not exist.
    ClusterNone,
    /// A cluster name without records of the type (AAAA of an IPv4 service): no answer, the SOA.
    ClusterNodata,
    /// Forwarded; `n` records of `size` bytes each (none: the SOA).
    External(u32, u32),
    /// Forwarded, the answer too large for UDP: truncated, to be retried over TCP.
    Truncated,
    /// Forwarded, and the name does not exist.
    ExternalNone,
    /// Forwarded TXT answer of `n` bytes, never cached (the tunnel).
    Tunnel(u32),
}

struct Dns<'a> {
    rng: &'a mut SmallRng,
    out: &'a mut Container,
}

impl Dns<'_> {
    /// Logs one query sent at `t`; returns when it was answered.
    fn query(
        &mut self,
        t: i64,
        client: Client<'_>,
        qtype: &str,
        name: &str,
        proto: &str,
        answer: Answer,
    ) -> i64 {
        let wire = name.len() as u32 + 1;
        let opt = client.edns.map_or(0, |(_, bytes)| bytes);
        let size = 12 + wire + 4 + opt;
        let bufsize = match (proto, client.edns) {
            ("tcp", None) => 65_535,
            (_, Some((b, _))) => b,
            _ => 512,
        };
        let edns_reply = if opt > 0 { 11 } else { 0 };
        let cached = self.rng.random_bool(0.7);
        let (rcode, flags, rsize, dur) = match answer {
            Answer::Cluster(n) => (
                "NOERROR",
                "qr,aa,rd",
                size - opt + edns_reply + n * (wire + if qtype == "AAAA" { 26 } else { 14 }),
                self.rng.random_range(40..320) * US,
            ),
            Answer::ClusterNone | Answer::ClusterNodata => (
                if answer == Answer::ClusterNone {
                    "NXDOMAIN"
                } else {
                    "NOERROR"
                },
                "qr,aa,rd",
                size - opt + edns_reply + 93,
                self.rng.random_range(40..280) * US,
            ),
            Answer::Truncated => (
                "NOERROR",
                "qr,tc,rd,ra",
                size - opt + edns_reply,
                self.rng.random_range(600..9_000) * US,
            ),
            Answer::External(n, each) => (
                "NOERROR",
                "qr,rd,ra",
                size - opt + edns_reply + if n == 0 { 61 } else { n * each },
                if cached {
                    self.rng.random_range(50..260) * US
                } else {
                    self.rng.random_range(600..28_000) * US + self.rng.random_range(0..999)
                },
            ),
            Answer::ExternalNone => (
                "NXDOMAIN",
                "qr,rd,ra",
                size - opt + edns_reply + 76 + self.rng.random_range(0..30),
                if cached {
                    self.rng.random_range(50..260) * US
                } else {
                    self.rng.random_range(500..9_000) * US + self.rng.random_range(0..999)
                },
            ),
            Answer::Tunnel(n) => (
                "NOERROR",
                "qr,rd,ra",
                size - opt + edns_reply + 12 + n,
                self.rng.random_range(18_000..95_000) * US + self.rng.random_range(0..999),
            ),
        };
        let done = t + dur;
        let addr = if client.ip.contains(':') {
            format!("[{}]:{}", client.ip, client.port)
        } else {
            format!("{}:{}", client.ip, client.port)
        };
        let id: u16 = self.rng.random();
        self.out.out(
            done,
            format!(
                "[INFO] {addr} - {id} \"{qtype} IN {name} {proto} {size} false {bufsize}\" {rcode} {flags} {rsize} {}s",
                go_seconds(dur)
            ),
        );
        done
    }

    fn port(&mut self) -> u16 {
        self.rng.random_range(32_768..61_000)
    }

    /// `client` with a fresh source port.
    fn new_port<'c>(&mut self, client: Client<'c>) -> Client<'c> {
        Client {
            port: self.port(),
            ..client
        }
    }

    /// A lookup through the pod's resolver (`ndots:5`, search `<ns>.svc.cluster.local
    /// svc.cluster.local cluster.local <node domain>`), A and AAAA in parallel, until a
    /// candidate answers. `service` is true for a cluster service name (found in the first
    /// search domain), false for an external name (found only as written).
    fn resolve(&mut self, t: i64, client: Client<'_>, name: &str, service: bool) -> i64 {
        let ns = client.namespace;
        let mut candidates: Vec<(String, bool)> = Vec::new();
        if name.matches('.').count() < 5 {
            candidates.push((format!("{name}.{ns}.svc.cluster.local."), service));
            if !service {
                candidates.push((format!("{name}.svc.cluster.local."), false));
                candidates.push((format!("{name}.cluster.local."), false));
                candidates.push((format!("{name}.{NODE_DOMAIN}."), false));
            }
        }
        if !service {
            candidates.push((format!("{name}."), true));
        }
        let last = candidates.len() - 1;
        let client = self.new_port(client);
        let mut t = t;
        for (i, (candidate, found)) in candidates.iter().enumerate() {
            let cluster = candidate.ends_with(".cluster.local.");
            let (a, aaaa) = match (cluster, *found, i == last && !service) {
                (true, true, _) => (Answer::Cluster(1), Answer::ClusterNodata),
                (true, false, _) => (Answer::ClusterNone, Answer::ClusterNone),
                (false, _, true) => (
                    Answer::External(self.rng.random_range(1..4), 16),
                    Answer::External(self.rng.random_range(0..3), 28),
                ),
                (false, _, false) => (Answer::ExternalNone, Answer::ExternalNone),
            };
            let done_a = self.query(t, client, "A", candidate, "udp", a);
            let done_aaaa = self.query(t + 20 * US, client, "AAAA", candidate, "udp", aaaa);
            t = done_a.max(done_aaaa) + self.rng.random_range(20..120) * US;
            if *found {
                break;
            }
        }
        t
    }

    /// A name that does not exist anywhere: every candidate fails.
    fn resolve_missing(&mut self, t: i64, client: Client<'_>, name: &str) -> i64 {
        let ns = client.namespace;
        let client = self.new_port(client);
        let mut t = t;
        for candidate in [
            format!("{name}.{ns}.svc.cluster.local."),
            format!("{name}.svc.cluster.local."),
            format!("{name}.cluster.local."),
            format!("{name}.{NODE_DOMAIN}."),
            format!("{name}."),
        ] {
            let answer = if candidate.ends_with(".cluster.local.") {
                Answer::ClusterNone
            } else {
                Answer::ExternalNone
            };
            let a = self.query(t, client, "A", &candidate, "udp", answer);
            let b = self.query(t + 15 * US, client, "AAAA", &candidate, "udp", answer);
            t = a.max(b) + 50 * US;
        }
        t
    }

    /// Repeats `lookup` at Poisson times with the given mean gap over `[from, end)`.
    fn every(&mut self, from: i64, end: i64, mean: i64, mut lookup: impl FnMut(&mut Self, i64)) {
        let mut t = from + exp_gap(self.rng, mean);
        while t < end {
            lookup(self, t);
            t += exp_gap(self.rng, mean);
        }
    }
}

const MUSL: Option<(u32, u32)> = None;
const GO: Option<(u32, u32)> = Some((1232, 11));
const DIG: Option<(u32, u32)> = Some((1232, 23));

/// Service names an attacker tries from inside a pod, by namespace; `true` for the ones that
/// exist in the demo cluster.
const GUESSES: [(&str, &str, bool); 60] = [
    ("kubernetes", "default", true),
    ("vault", "default", false),
    ("vault", "vault", false),
    ("consul", "default", false),
    ("etcd", "kube-system", false),
    ("etcd-client", "kube-system", false),
    ("kube-dns", "kube-system", true),
    ("metrics-server", "kube-system", true),
    ("kubernetes-dashboard", "kubernetes-dashboard", false),
    ("dashboard", "kube-system", false),
    ("tiller-deploy", "kube-system", false),
    ("jenkins", "default", false),
    ("jenkins", "ci", false),
    ("gitlab", "gitlab", false),
    ("gitlab", "ci", false),
    ("gitlab-runner", "ci", false),
    ("gitlab-runner-metrics", "ci", true),
    ("argocd-server", "argocd", true),
    ("argocd-repo-server", "argocd", true),
    ("argocd-redis", "argocd", true),
    ("grafana", "monitoring", false),
    ("prometheus", "monitoring", false),
    ("prometheus-server", "monitoring", false),
    ("alertmanager", "monitoring", false),
    ("loki", "monitoring", false),
    ("elasticsearch", "logging", false),
    ("kibana", "logging", false),
    ("mysql", "default", false),
    ("mysql", "shop", false),
    ("postgres", "default", false),
    ("postgres", "shop", true),
    ("postgresql", "shop", false),
    ("redis", "default", false),
    ("redis", "shop", true),
    ("redis-master", "shop", false),
    ("mongodb", "shop", false),
    ("memcached", "shop", false),
    ("rabbitmq", "shop", false),
    ("kafka", "shop", false),
    ("minio", "default", false),
    ("minio", "shop", false),
    ("s3", "default", false),
    ("registry", "default", false),
    ("docker-registry", "kube-system", false),
    ("harbor", "harbor", false),
    ("nexus", "default", false),
    ("sonarqube", "default", false),
    ("keycloak", "default", false),
    ("admin", "shop", false),
    ("internal-api", "shop", false),
    ("payments", "shop", true),
    ("checkout", "shop", true),
    ("cart", "shop", true),
    ("web", "shop", true),
    ("api", "shop", false),
    ("backend", "shop", false),
    ("auth", "shop", false),
    ("secrets", "default", false),
    ("backup", "default", false),
    ("smtp", "default", false),
];

/// All of CoreDNS's lines for the hour.
pub(crate) fn coredns(rng: &mut SmallRng, tl: &Timeline, out: &mut Container) {
    let mut d = Dns { rng, out };
    let (from, end) = (tl.from, tl.end);
    for (_, _, ip) in WEB_PODS {
        let c = Client {
            ip,
            namespace: "shop",
            edns: MUSL,
            port: 0,
        };
        d.every(from, end, 60 * SEC, |d, t| {
            d.resolve(t, c, "cart", true);
        });
    }
    for (_, _, ip) in CART_PODS {
        let c = Client {
            ip,
            namespace: "shop",
            edns: GO,
            port: 0,
        };
        d.every(from, end, 120 * SEC, |d, t| {
            d.resolve(t, c, "redis", true);
        });
        d.every(from, end, 300 * SEC, |d, t| {
            d.resolve(t, c, "postgres", true);
        });
        d.every(from, end, 240 * SEC, |d, t| {
            d.resolve(t, c, "tax.api.example.net", false);
        });
    }
    let worker = Client {
        ip: WORKER_IP,
        namespace: "shop",
        edns: MUSL,
        port: 0,
    };
    d.every(from, end, 180 * SEC, |d, t| {
        d.resolve(t, worker, "redis", true);
    });
    d.every(from, end, 300 * SEC, |d, t| {
        d.resolve(t, worker, "smtp.mail.example.net", false);
    });
    // Dual-stack pods that resolve over IPv6.
    let runner = Client {
        ip: "fd00:10:244:1::9",
        namespace: "ci",
        edns: GO,
        port: 0,
    };
    d.every(from, end, 120 * SEC, |d, t| {
        d.resolve(t, runner, "gitlab.example.com", false);
    });
    let argocd = Client {
        ip: "fd00:10:244:2::7",
        namespace: "argocd",
        edns: GO,
        port: 0,
    };
    d.every(from, end, 180 * SEC, |d, t| {
        d.resolve(t, argocd, "argocd-repo-server", true);
    });
    d.every(from, end, 300 * SEC, |d, t| {
        d.resolve(t, argocd, "argocd-redis", true);
    });
    // CI build pods fetch their dependencies; a truncated answer is retried over TCP.
    for job in &tl.ci_jobs {
        let c = Client {
            ip: &job.ip,
            namespace: "ci",
            edns: MUSL,
            port: 0,
        };
        let mut at = d.resolve(job.start + 4 * SEC, c, "registry.example.com", false);
        at = d.resolve(at + 6 * SEC, c, "index.crates.io", false);
        let udp = d.new_port(c);
        let done = d.query(
            at + 30 * MS,
            udp,
            "A",
            "static.crates.io.",
            "udp",
            Answer::Truncated,
        );
        let tcp = d.new_port(c);
        d.query(
            done + 300 * US,
            tcp,
            "A",
            "static.crates.io.",
            "tcp",
            Answer::External(24, 16),
        );
    }
    // The upstream resolver times out now and then.
    for _ in 0..2 {
        let at = from + d.rng.random_range(0..3_500) * SEC;
        let port = d.port();
        d.out.out(
            at,
            format!(
                "[ERROR] plugin/errors: 2 tax.api.example.net. A: read udp {COREDNS_IP}:{port}->{UPSTREAM}: i/o timeout"
            ),
        );
    }

    // The compromised web pod.
    let victim = Client {
        ip: WEB_PODS[VICTIM].2,
        namespace: "shop",
        edns: MUSL,
        port: 0,
    };
    let mut t = d.resolve(tl.miner - 300 * MS, victim, "pool.supportxmr.com", false);
    d.resolve_missing(t + 5 * SEC, victim, "pool.minexmr.com");
    t += d.rng.random_range(420..900) * SEC;
    while t < end {
        d.resolve(t, victim, "pool.supportxmr.com", false);
        t += d.rng.random_range(420..900) * SEC;
    }
    // Service-name guessing with dig: absolute names, one A query each, in a few seconds.
    let dig = Client {
        edns: DIG,
        ..victim
    };
    let mut t = tl.service_guessing;
    for (svc, ns, exists) in GUESSES {
        let name = format!("{svc}.{ns}.svc.cluster.local.");
        let answer = if exists {
            Answer::Cluster(1)
        } else {
            Answer::ClusterNone
        };
        let dig = d.new_port(dig);
        t = d.query(t, dig, "A", &name, "udp", answer) + d.rng.random_range(40..160) * MS;
    }
    // The DNS tunnel: base32 chunks in two long labels, a sequence number, a session.
    const B32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let session = chars(d.rng, B32, 4);
    let mut t = tl.tunnel;
    for seq in 0..150u32 {
        let second = d.rng.random_range(30..50);
        let name = format!(
            "{}.{}.{seq:04x}.s{session}.{TUNNEL_DOMAIN}",
            chars(d.rng, B32, 63),
            chars(d.rng, B32, second),
        );
        let from = d.new_port(victim);
        let answer = Answer::Tunnel(d.rng.random_range(20..40));
        t = d.query(t, from, "TXT", &name, "udp", answer) + d.rng.random_range(200..1_400) * MS;
    }
}
