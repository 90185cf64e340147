//! The node side of the demo story: container logs as kubelet lays them out under
//! `/var/log/pods`, for the hour before `end` of [`demo_scenario`](crate::demo_scenario).
//!
//! While the audit log shows the stolen CI token at work, the same address, 203.0.113.45, breaks
//! into the shop's web application through the ingress: a path scan, path traversal, SQL and
//! template injection, then a server-side template injection that runs its commands in
//! `shop/web-7c9d8f6b5d-9kz7m` (node-b, 10.244.1.21). From there it probes the cloud metadata
//! service, downloads and starts a crypto miner, guesses service names over DNS, and tunnels
//! data out through DNS. Around it: ordinary shop traffic (ingress, web, cart, a worker) and
//! cluster DNS. The privileged pod of the audit story shows up in node-a's journal and kern.log
//! ([`crate::node_logs`]).
//!
//! Pod names, uids, IPs and nodes are those of the audit scenario, so the sources join on pod,
//! pod uid and IP; ingress request ids reappear in the applications' logs.

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::cluster::{ATTACKER_IP, CART_PODS, CURL_UA, GITLAB_RUNNER_POD, NODES, WEB_PODS};
use crate::event::stable_uid;
use crate::logfmt::{
    chars, exp_gap, go_seconds, hex, js, nginx_error_time, pick, rfc3339_nano, roughen, time_local,
    weighted, xmrig_time, MS, SEC, US,
};
use crate::scenario::{attack_timeline, AttackTimeline};

/// One log file of the demo, as it lies on a node's disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoLogFile {
    /// The node whose disk holds the file: `node-a`, `node-b` or `node-c`.
    pub node: String,
    /// Relative path. Container logs: `<namespace>_<pod>_<pod-uid>/<container>/0.log`, as
    /// kubelet lays them out under `/var/log/pods`. Node logs: `kern.log` (rsyslog, under
    /// `/var/log`) and `journal.json` (`journalctl -o json`).
    pub path: String,
    /// Complete lines without their `\n`, in time order.
    pub lines: Vec<String>,
}

/// Where the node-side logs show the attack, for `kestrel up` to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceStory {
    /// The table the agent stores these lines in: `ingress`, `container_log`, `dns`,
    /// `netflow`, `journal`.
    pub source: &'static str,
    /// Which demo files hold it.
    pub files: &'static str,
    /// The steps it shows: names of [`scenario_steps`](crate::scenario_steps), and
    /// `web-exploit`, `cryptomining`, `dns-tunnelling` for the steps only node logs see.
    pub steps: &'static [&'static str],
    /// One paragraph: when (as an offset into the two-hour window) and what.
    pub description: &'static str,
    /// An SQL query that shows it.
    pub example_query: &'static str,
}

const STORY: [SourceStory; 5] = [
    SourceStory {
        source: "ingress",
        files: "ingress-nginx/ingress-nginx-controller-6b8f9d7c54-r2x8p/controller",
        steps: &["web-exploit"],
        description: "T+60m to T+64m: 203.0.113.45 runs gobuster against shop.example.com (about 80 requests in 40 s, nearly all 404: /.env, /wp-login.php, /admin...; /api/v1/preview answers 405), tries path traversal with curl (/../../etc/passwd, rejected 400 by nginx itself), SQL injection (500) and template probes, then POSTs a 36 KB template to /api/v1/preview: 200, served by 10.244.1.21:8080, the web pod on node-b. nginx's error log (stderr, not access lines) notes the body buffered to a temporary file.",
        example_query: "SELECT time, method, path, status, request_bytes, user_agent, upstream_addr FROM ingress WHERE client_ip = '203.0.113.45' ORDER BY time",
    },
    SourceStory {
        source: "container_log",
        files: "shop/web-7c9d8f6b5d-9kz7m/web",
        steps: &["web-exploit", "cryptomining"],
        description: "T+64m: the web pod logs the 36 KB template (one line, which the runtime splits into partial lines), then the injected shell's errors on stderr: sudo not found, /etc/shadow denied, curl to the metadata service timing out, a read-only filesystem, busybox wget fetching kswapd0 from 203.0.113.45:8000. Less than a minute later an XMRig miner disguised as kswapd0 prints its pool and its hashrate every minute to stdout, until the end.",
        example_query: "SELECT time, stream, message FROM container_log WHERE pod = 'web-7c9d8f6b5d-9kz7m' AND (stream = 'stderr' OR message LIKE '%miner%' OR message LIKE '% net %') ORDER BY time",
    },
    SourceStory {
        source: "dns",
        files: "kube-system/coredns-7db6d8ff4d-4xk9t/coredns",
        steps: &["cryptomining", "dns-tunnelling"],
        description: "From about T+64m the web pod (10.244.1.21) resolves pool.supportxmr.com through the search path (NXDOMAIN in each search domain first) and again whenever the miner reconnects; at T+65m it guesses 60 service names with dig in a few seconds (an NXDOMAIN burst: vault, jenkins, etcd...); from about T+69m it sends about 150 TXT queries with 63-character random labels under d.cdnsync.example: data leaving through DNS.",
        example_query: "SELECT query_type, rcode, count(*) AS n, max(length(query_name)) AS longest FROM dns WHERE client_ip = '10.244.1.21' GROUP BY 1, 2 ORDER BY n DESC",
    },
    SourceStory {
        source: "netflow",
        files: "node-b and node-a kern.log",
        steps: &["web-exploit", "cryptomining", "exec-into-pod", "persistence"],
        description: "From T+64m, Calico's policy log (prefix calico-packet) on node-b shows the web pod's SYNs to 169.254.169.254:80 (the metadata service, denied), then to 203.0.113.45:8000 (the download) and to the mining pool on port 443. On node-a, after the exec into debug-x7k2 (T+76m), the host itself (10.0.1.11, hostNetwork) fetches from 203.0.113.45:8000, connects to the pool, and later accepts SSH from 203.0.113.45.",
        example_query: "SELECT time, src_ip, dst_ip, dst_port, protocol FROM netflow WHERE dst_ip IN ('169.254.169.254', '203.0.113.45', '192.0.2.77') OR src_ip = '203.0.113.45' ORDER BY time",
    },
    SourceStory {
        source: "journal",
        files: "node-a journal.json",
        steps: &["privileged-pod", "exec-into-pod", "persistence"],
        description: "T+70m: kubelet and containerd on node-a start default/debug-x7k2 (alpine:3.20, privileged). During the exec session (T+76m) systemd reloads and starts a new unit, kube-node-helper.service, whose output is XMRig's (with colour codes, so journald keeps the messages as byte arrays); after the session, sshd accepts root's new key from 203.0.113.45.",
        example_query: "SELECT time, unit, identifier, message FROM journal WHERE node = 'node-a' AND (unit IN ('kube-node-helper.service', 'ssh.service') OR message LIKE '%debug-x7k2%') ORDER BY time",
    },
];

/// Which sources of the node-side logs show which steps of the attack.
pub fn node_log_story() -> Vec<SourceStory> {
    STORY.to_vec()
}

/// The node-side logs span the last hour of the two-hour scenario.
pub const NODE_LOG_SPAN_MINUTES: i64 = 60;

/// The runtime's line limit: longer lines become several `P` lines and a final `F`.
const RUNTIME_LINE_BYTES: usize = 16 * 1024;

/// When things happen on the node side, in UTC nanoseconds; derived from the audit story's
/// timeline and the seed.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    /// The audit story's steps.
    pub audit: AttackTimeline,
    /// The first moment of the node logs: [`NODE_LOG_SPAN_MINUTES`] before the end.
    pub from: i64,
    pub end: i64,
    /// Through the ingress: the path scan's first request, the first traversal, the first
    /// injection, and the exploit (when nginx logs it).
    pub scan: i64,
    pub traversal: i64,
    pub injection: i64,
    pub exploit: i64,
    /// In the web pod: curl to the metadata service, the miner's download, the miner's start,
    /// the service-name guessing, the DNS tunnel's first query.
    pub metadata_probe: i64,
    pub dropper: i64,
    pub miner: i64,
    pub service_guessing: i64,
    pub tunnel: i64,
    /// On node-a, during the exec session: the miner's download to the host, the start of its
    /// systemd unit; after the session, SSH in and out.
    pub host_download: i64,
    pub host_unit: i64,
    pub ssh_login: i64,
    pub ssh_logout: i64,
    /// The GitLab runner's jobs: each a build pod on node-b.
    pub ci_jobs: Vec<CiJob>,
}

/// One CI job: the runner picks it up, its build pod runs from `start` to `end`.
#[derive(Debug, Clone)]
pub(crate) struct CiJob {
    pub id: u64,
    pub start: i64,
    pub end: i64,
    pub pod: String,
    pub ip: String,
}

/// The node side's timeline for `demo_scenario(end, seed)`.
pub(crate) fn timeline(end: DateTime<Utc>, seed: u64) -> Timeline {
    let audit = attack_timeline(end, seed);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6e6f_6465_2d74_696d);
    let from = audit.end_ns - NODE_LOG_SPAN_MINUTES * 60 * SEC;
    let mut jitter = |base: i64, max_ms: i64| base + rng.random_range(0..max_ms) * MS;
    let scan = jitter(from + 15 * SEC, 20_000);
    let traversal = jitter(scan + 75 * SEC, 5_000);
    let injection = jitter(scan + 140 * SEC, 5_000);
    let exploit = jitter(scan + 205 * SEC, 10_000);
    let host_download = jitter(audit.exec_start + 130 * SEC, 20_000);
    let host_unit = jitter(host_download + 40 * SEC, 10_000);
    let ssh_login = jitter(audit.exec_end + 240 * SEC, 60_000);
    let ssh_logout = jitter(ssh_login + 200 * SEC, 120_000);
    let mut ci_jobs = Vec::new();
    // Jobs start well inside the hour, so every source sees each one begin.
    let mut t = from + 30 * SEC + exp_gap(&mut rng, 420 * SEC);
    let mut id = 88_412 + rng.random_range(0..40);
    while t < audit.end_ns - 60 * SEC {
        ci_jobs.push(CiJob {
            id,
            start: t,
            end: t + rng.random_range(150..400) * SEC + rng.random_range(0..1_000) * MS,
            pod: format!(
                "runner-t3kq9zbx-project-42-concurrent-0-{}",
                chars(&mut rng, b"bcdfghjklmnpqrstvwxz2456789", 8)
            ),
            ip: format!("10.244.1.{}", rng.random_range(40..200)),
        });
        id += rng.random_range(1..6);
        t += exp_gap(&mut rng, 420 * SEC);
    }
    Timeline {
        ci_jobs,
        from,
        end: audit.end_ns,
        scan,
        traversal,
        injection,
        exploit,
        metadata_probe: exploit + 6 * SEC + 210 * MS,
        dropper: exploit + 31 * SEC + 480 * MS,
        miner: exploit + 44 * SEC + 90 * MS,
        service_guessing: exploit + 78 * SEC + 300 * MS,
        tunnel: exploit + 300 * SEC + 720 * MS,
        host_unit,
        host_download,
        ssh_login,
        ssh_logout,
        audit,
    }
}

/// A container's log format on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Cri,
    DockerJson,
}

/// One record a container wrote: one line of its output.
struct Rec {
    time: i64,
    stderr: bool,
    message: String,
}

pub(crate) struct Container {
    node: usize,
    namespace: &'static str,
    pub(crate) pod: String,
    name: &'static str,
    format: Format,
    records: Vec<Rec>,
}

impl Container {
    fn new(node: usize, namespace: &'static str, pod: &str, name: &'static str) -> Self {
        Container {
            node,
            namespace,
            pod: pod.to_owned(),
            name,
            format: Format::Cri,
            records: Vec::new(),
        }
    }

    pub(crate) fn out(&mut self, time: i64, message: String) {
        self.records.push(Rec {
            time,
            stderr: false,
            message,
        });
    }

    pub(crate) fn err(&mut self, time: i64, message: String) {
        self.records.push(Rec {
            time,
            stderr: true,
            message,
        });
    }

    /// The file as the runtime writes it: records in time order, long ones split.
    fn into_file(mut self, from: i64, end: i64) -> DemoLogFile {
        self.records.sort_by_key(|r| r.time);
        roughen(
            self.records.iter_mut().map(|r| &mut r.time),
            1_000,
            &self.pod,
        );
        self.records.retain(|r| (from..=end).contains(&r.time));
        let mut lines = Vec::with_capacity(self.records.len());
        for r in &self.records {
            let stream = if r.stderr { "stderr" } else { "stdout" };
            let ts = rfc3339_nano(r.time);
            let parts = split_runtime(&r.message);
            let last = parts.len() - 1;
            for (i, part) in parts.into_iter().enumerate() {
                lines.push(match self.format {
                    Format::Cri => {
                        let tag = if i == last { 'F' } else { 'P' };
                        format!("{ts} {stream} {tag} {part}")
                    }
                    Format::DockerJson => {
                        let log = if i == last {
                            format!("{part}\n")
                        } else {
                            part.to_owned()
                        };
                        format!(
                            "{{\"log\":{},\"stream\":\"{stream}\",\"time\":\"{ts}\"}}",
                            js(&log)
                        )
                    }
                });
            }
        }
        let uid = stable_uid(&format!("pod/{}", self.pod));
        DemoLogFile {
            node: NODES[self.node].to_owned(),
            path: format!("{}_{}_{uid}/{}/0.log", self.namespace, self.pod, self.name),
            lines,
        }
    }
}

/// Splits a line where the runtime would (every 16 KiB, on a character boundary).
fn split_runtime(message: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = message;
    while rest.len() > RUNTIME_LINE_BYTES {
        let mut cut = RUNTIME_LINE_BYTES;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        parts.push(head);
        rest = tail;
    }
    parts.push(rest);
    parts
}

pub(crate) const INGRESS_POD: &str = "ingress-nginx-controller-6b8f9d7c54-r2x8p";
pub(crate) const INGRESS_IP: &str = "10.244.2.9";
pub(crate) const COREDNS_POD: &str = "coredns-7db6d8ff4d-4xk9t";
pub(crate) const WORKER_POD: &str = "order-worker-7d9c5b8f4-wq2zn";
pub(crate) const WORKER_IP: &str = "10.244.2.31";
/// The web pod the attacker gets into: `WEB_PODS[1]`, on node-b.
pub(crate) const VICTIM: usize = 1;
/// Where `pool.supportxmr.com` resolves to in the demo (TEST-NET-1).
pub(crate) const POOL_IP: &str = "192.0.2.77";
/// The attacker's DNS tunnel domain (a reserved `.example` name).
pub(crate) const TUNNEL_DOMAIN: &str = "d.cdnsync.example.";

/// All pod log files for the hour before `end`, with the same attack timeline as
/// [`demo_scenario`](crate::demo_scenario)`(end, seed)`. Deterministic for a given seed.
pub fn demo_pod_logs(end: DateTime<Utc>, seed: u64) -> Vec<DemoLogFile> {
    let tl = timeline(end, seed);
    let mut pods = Pods::new();
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x706f_642d_6c6f_6773);
    shop_traffic(&mut rng, &tl, &mut pods);
    web_attack(&mut rng, &tl, &mut pods);
    app_background(&mut rng, &tl, &mut pods);
    worker(&mut rng, &tl, &mut pods.worker);
    runner(&mut rng, &tl, &mut pods.runner);
    crate::dns::coredns(&mut rng, &tl, &mut pods.coredns);
    let Pods {
        ingress,
        coredns,
        web,
        cart,
        worker,
        runner,
    } = pods;
    let mut files: Vec<DemoLogFile> = [ingress, coredns, worker, runner]
        .into_iter()
        .chain(web)
        .chain(cart)
        .map(|c| c.into_file(tl.from, tl.end))
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

struct Pods {
    ingress: Container,
    coredns: Container,
    web: Vec<Container>,
    cart: Vec<Container>,
    worker: Container,
    runner: Container,
}

impl Pods {
    fn new() -> Self {
        let mut worker = Container::new(2, "shop", WORKER_POD, "worker");
        // One container in docker's json-file format, as a node with cri-dockerd writes it,
        // so the demo exercises both formats.
        worker.format = Format::DockerJson;
        Pods {
            ingress: Container::new(2, "ingress-nginx", INGRESS_POD, "controller"),
            coredns: Container::new(1, "kube-system", COREDNS_POD, "coredns"),
            web: WEB_PODS
                .iter()
                .map(|(pod, node, _)| Container::new(*node, "shop", pod, "web"))
                .collect(),
            cart: CART_PODS
                .iter()
                .map(|(pod, node, _)| Container::new(*node, "shop", pod, "cart"))
                .collect(),
            worker,
            runner: Container::new(1, "ci", GITLAB_RUNNER_POD, "gitlab-runner"),
        }
    }
}

/// One try of an upstream: address, status, response bytes, milliseconds.
type Attempt = (String, String, String, i64);

/// One request through the ingress.
struct Access<'a> {
    /// When nginx logged it (the end of the request).
    time: i64,
    client: &'a str,
    method: &'a str,
    path: &'a str,
    protocol: &'a str,
    status: u16,
    body_bytes: u64,
    referer: &'a str,
    user_agent: &'a str,
    request_bytes: u64,
    request_time_ms: i64,
    /// `$proxy_upstream_name`; empty when nginx answered before routing.
    upstream: &'a str,
    attempts: Vec<Attempt>,
    req_id: String,
}

impl Access<'_> {
    fn line(&self) -> String {
        let list = |f: &dyn Fn(&Attempt) -> String| {
            if self.attempts.is_empty() {
                "-".to_owned()
            } else {
                self.attempts.iter().map(f).collect::<Vec<_>>().join(", ")
            }
        };
        format!(
            "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" {} {:.3} [{}] [] {} {} {} {} {}",
            self.client,
            time_local(self.time),
            self.method,
            self.path,
            self.protocol,
            self.status,
            self.body_bytes,
            self.referer,
            self.user_agent,
            self.request_bytes,
            self.request_time_ms as f64 / 1000.0,
            self.upstream,
            list(&|a| a.0.clone()),
            list(&|a| a.2.clone()),
            list(&|a| format!("{:.3}", a.3 as f64 / 1000.0)),
            list(&|a| a.1.clone()),
            self.req_id,
        )
    }
}

const BROWSERS: [&str; 8] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.102 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];

const PRODUCTS: [&str; 12] = [
    "trail-runner-2",
    "merino-hoodie",
    "canvas-tote",
    "city-backpack-22l",
    "wool-socks-3pack",
    "rain-shell",
    "down-vest",
    "linen-shirt",
    "leather-belt",
    "beanie-rib",
    "chino-slim",
    "sneaker-court",
];

/// Clients of the shop: documentation addresses, a few IPv6.
fn clients(rng: &mut SmallRng) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for i in 0..64 {
        let ip = match i % 8 {
            0..=3 => format!("198.51.100.{}", rng.random_range(2..250)),
            4..=6 => format!("192.0.2.{}", rng.random_range(2..250)),
            _ => format!(
                "2001:db8:{:x}::{:x}",
                rng.random_range(1..0xffff),
                rng.random_range(1..0xfff)
            ),
        };
        out.push((ip, *pick(rng, &BROWSERS)));
    }
    out
}

#[derive(Clone, Copy)]
enum Route {
    Page,
    Asset,
    Cart,
}

/// Ordinary shop traffic: browsing sessions through the ingress to the web and cart pods,
/// each request logged by nginx and by the application with the same request id.
fn shop_traffic(rng: &mut SmallRng, tl: &Timeline, pods: &mut Pods) {
    let clients = clients(rng);
    let mut t = tl.from + exp_gap(rng, 8 * SEC);
    while t < tl.end {
        let (ip, ua) = pick(rng, &clients).clone();
        let product = *pick(rng, &PRODUCTS);
        let first_path = match rng.random_range(0..4) {
            0 => "/".to_owned(),
            1 => format!("/products/{product}"),
            2 => format!(
                "/products?category={}",
                pick(rng, &["men", "women", "bags", "sale"])
            ),
            _ => format!(
                "/search?q={}",
                pick(rng, &["hoodie", "backpack", "socks", "rain%20jacket"])
            ),
        };
        let mut session: Vec<(&str, String, Route)> = vec![("GET", first_path, Route::Page)];
        if rng.random_bool(0.6) {
            session.push(("GET", "/static/js/app.7f3c9a1e.js".into(), Route::Asset));
            session.push(("GET", "/static/css/main.4b2d8e61.css".into(), Route::Asset));
        }
        session.push(("GET", "/api/cart".into(), Route::Cart));
        if rng.random_bool(0.5) {
            session.push((
                "GET",
                format!("/api/recommendations?product={product}"),
                Route::Page,
            ));
        }
        if rng.random_bool(0.35) {
            session.push(("POST", "/api/cart/items".into(), Route::Cart));
        }
        if rng.random_bool(0.1) {
            session.push((
                "DELETE",
                format!("/api/cart/items/{}", rng.random_range(1000..9999)),
                Route::Cart,
            ));
        }
        let mut at = t;
        let mut referer = "-".to_owned();
        for (method, path, route) in session {
            at += rng.random_range(80..4_000) * MS;
            let asset = matches!(route, Route::Asset);
            let protocol = if ua.contains("Googlebot") {
                "HTTP/1.1"
            } else {
                "HTTP/2.0"
            };
            let (status, body) = match (route, method) {
                (Route::Asset, _) if rng.random_bool(0.4) => (304, 0),
                (Route::Asset, _) => (200, rng.random_range(40_000..190_000)),
                (Route::Cart, "POST") => (201, rng.random_range(180..420)),
                (Route::Cart, "DELETE") => (204, 0),
                (Route::Cart, _) => (200, rng.random_range(90..2_400)),
                (Route::Page, _) if path.starts_with("/products/") && rng.random_bool(0.04) => {
                    (404, 1_245)
                }
                (Route::Page, _) => (200, rng.random_range(3_000..48_000)),
            };
            let request_bytes = match method {
                "POST" => rng.random_range(700..1_100),
                _ => rng.random_range(350..900),
            };
            let up_ms = match route {
                Route::Asset => rng.random_range(1..6),
                Route::Cart => rng.random_range(2..40),
                Route::Page => rng.random_range(6..120),
            };
            let req = Req {
                time: at,
                client: &ip,
                method,
                path: &path,
                protocol,
                status,
                body_bytes: body,
                referer: &referer,
                user_agent: ua,
                request_bytes,
                up_ms,
                cart: matches!(route, Route::Cart),
            };
            serve(rng, pods, &req);
            if !asset && method == "GET" {
                referer = format!("https://shop.example.com{}", path);
            }
        }
        t += exp_gap(rng, 11 * SEC);
    }
}

/// What one proxied request looks like before the upstream pod is chosen.
struct Req<'a> {
    time: i64,
    client: &'a str,
    method: &'a str,
    path: &'a str,
    protocol: &'a str,
    status: u16,
    body_bytes: u64,
    referer: &'a str,
    user_agent: &'a str,
    request_bytes: u64,
    up_ms: i64,
    cart: bool,
}

/// Routes `req` to a web or cart pod, logs it in the pod and in the ingress; now and then the
/// first upstream fails and nginx retries the next one (two upstreams in the line, an error in
/// nginx's error log), or the client goes away first (499).
fn serve(rng: &mut SmallRng, pods: &mut Pods, req: &Req<'_>) -> String {
    let (upstream, addrs): (&str, Vec<(usize, &str)>) = if req.cart {
        (
            "shop-cart-8080",
            CART_PODS
                .iter()
                .enumerate()
                .map(|(i, p)| (i, p.2))
                .collect(),
        )
    } else {
        (
            "shop-web-8080",
            WEB_PODS.iter().enumerate().map(|(i, p)| (i, p.2)).collect(),
        )
    };
    let idx = rng.random_range(0..addrs.len());
    let req_id = hex(rng, 32);
    let mut attempts = Vec::new();
    let mut status = req.status;
    let mut body = req.body_bytes;
    let mut up_ms = req.up_ms;
    let retry = !req.cart && req.path.starts_with("/api/recommendations") && rng.random_bool(0.04);
    if retry {
        let failed = addrs[idx].1;
        let failed_ms = rng.random_range(1..8);
        let worker = rng.random_range(35..43);
        attempts.push((
            format!("{failed}:8080"),
            "502".to_owned(),
            "0".to_owned(),
            failed_ms,
        ));
        pods.ingress.err(
            req.time - up_ms * MS - 200 * US,
            format!(
                "{} [error] {worker}#{worker}: *{} upstream prematurely closed connection while reading response header from upstream, client: {}, server: shop.example.com, request: \"{} {} {}\", upstream: \"http://{failed}:8080{}\", host: \"shop.example.com\"",
                nginx_error_time(req.time),
                rng.random_range(100_000..900_000),
                req.client,
                req.method,
                req.path,
                req.protocol,
                req.path,
            ),
        );
        up_ms += failed_ms;
    }
    let served = if retry { (idx + 1) % addrs.len() } else { idx };
    let gone = rng.random_bool(0.006);
    if gone {
        status = 499;
        body = 0;
        attempts.push((
            format!("{}:8080", addrs[served].1),
            "-".to_owned(),
            "0".to_owned(),
            up_ms,
        ));
    } else {
        attempts.push((
            format!("{}:8080", addrs[served].1),
            req.status.to_string(),
            req.body_bytes.to_string(),
            req.up_ms,
        ));
    }
    let app_time = req.time - rng.random_range(100..900) * US;
    let pod = addrs[served].0;
    if !gone {
        if req.cart {
            cart_log(&mut pods.cart[pod], app_time, req, &req_id);
        } else {
            web_log(&mut pods.web[pod], app_time, req, &req_id, req.up_ms);
        }
    }
    let access = Access {
        time: req.time,
        client: req.client,
        method: req.method,
        path: req.path,
        protocol: req.protocol,
        status,
        body_bytes: body,
        referer: req.referer,
        user_agent: req.user_agent,
        request_bytes: req.request_bytes,
        request_time_ms: up_ms + rng.random_range(0..2),
        upstream,
        attempts,
        req_id: req_id.clone(),
    };
    pods.ingress
        .out(req.time + rng.random_range(30..400) * US, access.line());
    req_id
}

/// A line of the Node.js web app (pino).
fn web_log(c: &mut Container, t: i64, req: &Req<'_>, req_id: &str, ms: i64) {
    let level = match req.status {
        500.. => 50,
        400.. => 40,
        _ => 30,
    };
    c.out(
        t,
        format!(
            "{{\"level\":{level},\"time\":{},\"pid\":1,\"hostname\":\"{}\",\"reqId\":\"{req_id}\",\"req\":{{\"method\":\"{}\",\"url\":{},\"remoteAddress\":\"{INGRESS_IP}\",\"forwardedFor\":\"{}\"}},\"res\":{{\"statusCode\":{}}},\"responseTime\":{ms},\"msg\":\"request completed\"}}",
            t / MS,
            c.pod,
            req.method,
            js(req.path),
            req.client,
            req.status
        ),
    );
}

/// A line of the Go cart service (log/slog JSON).
fn cart_log(c: &mut Container, t: i64, req: &Req<'_>, req_id: &str) {
    c.out(
        t,
        format!(
            "{{\"time\":\"{}\",\"level\":\"INFO\",\"msg\":\"http request\",\"method\":\"{}\",\"path\":{},\"status\":{},\"bytes\":{},\"duration_ms\":{}.{},\"request_id\":\"{req_id}\",\"client_ip\":\"{}\"}}",
            rfc3339_nano(t),
            req.method,
            js(req.path),
            req.status,
            req.body_bytes,
            req.up_ms,
            (t / US) % 10,
            req.client
        ),
    );
}

/// The paths of the attacker's scan (gobuster with a common wordlist), with the shop's answers.
const SCAN: [(&str, u16); 78] = [
    ("/.env", 404),
    ("/.env.bak", 404),
    ("/.env.production", 404),
    ("/.env.local", 404),
    ("/.git/config", 404),
    ("/.git/HEAD", 404),
    ("/.gitignore", 404),
    ("/.aws/credentials", 404),
    ("/.DS_Store", 404),
    ("/.htaccess", 404),
    ("/.htpasswd", 404),
    ("/.svn/entries", 404),
    ("/.ssh/id_rsa", 404),
    ("/.npmrc", 404),
    ("/.dockerenv", 404),
    ("/admin", 404),
    ("/admin/", 404),
    ("/admin/login", 404),
    ("/admin.php", 404),
    ("/administrator/", 404),
    ("/wp-login.php", 404),
    ("/wp-admin/", 404),
    ("/wp-config.php.bak", 404),
    ("/wp-content/debug.log", 404),
    ("/xmlrpc.php", 404),
    ("/phpmyadmin/", 404),
    ("/pma/", 404),
    ("/phpinfo.php", 404),
    ("/info.php", 404),
    ("/server-status", 404),
    ("/server-info", 404),
    ("/actuator", 404),
    ("/actuator/env", 404),
    ("/actuator/health", 404),
    ("/actuator/heapdump", 404),
    ("/api", 404),
    ("/api/v1", 404),
    ("/api/v1/users", 404),
    ("/api/v1/preview", 405),
    ("/api/admin", 404),
    ("/api/swagger.json", 404),
    ("/swagger-ui.html", 404),
    ("/v2/api-docs", 404),
    ("/graphql", 404),
    ("/console", 404),
    ("/debug", 404),
    ("/debug/pprof/", 404),
    ("/metrics", 404),
    ("/config.json", 404),
    ("/config.yml", 404),
    ("/settings.py", 404),
    ("/backup.zip", 404),
    ("/backup.tar.gz", 404),
    ("/backup.sql", 404),
    ("/db.sql", 404),
    ("/dump.sql", 404),
    ("/database.sqlite", 404),
    ("/id_rsa", 404),
    ("/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", 404),
    ("/cgi-bin/luci", 404),
    ("/cgi-bin/test.cgi", 404),
    ("/solr/admin/info/system", 404),
    ("/jenkins/login", 404),
    ("/manager/html", 404),
    ("/login", 200),
    ("/robots.txt", 200),
    ("/sitemap.xml", 200),
    ("/.well-known/security.txt", 404),
    ("/health", 404),
    ("/status", 404),
    ("/telescope/requests", 404),
    ("/_profiler/", 404),
    ("/elmah.axd", 404),
    ("/owa/", 404),
    ("/remote/login", 404),
    ("/boaform/admin/formLogin", 404),
    ("/HNAP1/", 404),
    ("/.vscode/sftp.json", 404),
];

const GOBUSTER_UA: &str = "gobuster/3.6";
const EXPLOIT_UA: &str = "python-requests/2.31.0";

/// The attacker's requests through the ingress and what the web pod shows of them.
fn web_attack(rng: &mut SmallRng, tl: &Timeline, pods: &mut Pods) {
    // The scan: about two requests a second, all to the web app.
    let mut t = tl.scan;
    for (path, status) in SCAN {
        t += rng.random_range(250..800) * MS;
        let body = match status {
            200 => rng.random_range(300..2_000),
            405 => 0,
            _ => 1_245,
        };
        let req = Req {
            time: t,
            client: ATTACKER_IP,
            method: "GET",
            path,
            protocol: "HTTP/1.1",
            status,
            body_bytes: body,
            referer: "-",
            user_agent: GOBUSTER_UA,
            request_bytes: rng.random_range(150..190),
            up_ms: rng.random_range(1..6),
            cart: false,
        };
        serve_on(rng, pods, &req, VICTIM);
    }
    // A few scan requests by IP address reach the controller's default backend.
    for path in ["/", "/.env", "/admin"] {
        t += rng.random_range(300..700) * MS;
        let access = Access {
            time: t,
            client: ATTACKER_IP,
            method: "GET",
            path,
            protocol: "HTTP/1.1",
            status: 404,
            body_bytes: 548,
            referer: "-",
            user_agent: GOBUSTER_UA,
            request_bytes: 148,
            request_time_ms: 0,
            upstream: "upstream-default-backend",
            attempts: vec![("127.0.0.1:8181".into(), "404".into(), "548".into(), 0)],
            req_id: hex(rng, 32),
        };
        pods.ingress.out(t + 120 * US, access.line());
    }

    // Path traversal: nginx rejects a path above the root itself (400, no upstream); encoded
    // forms reach the app.
    let mut t = tl.traversal;
    for (path, status) in [
        ("/../../etc/passwd", 400),
        ("/../../../../etc/passwd", 400),
        ("/static/..%2f..%2f..%2f..%2fetc%2fpasswd", 404),
        ("/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 400),
        ("/download?file=../../../../etc/passwd", 404),
        ("/products/..%252f..%252f..%252fetc%252fpasswd", 404),
    ] {
        t += rng.random_range(2_000..6_000) * MS;
        if status == 400 && path.starts_with("/..") {
            let access = Access {
                time: t,
                client: ATTACKER_IP,
                method: "GET",
                path,
                protocol: "HTTP/1.1",
                status,
                body_bytes: 150,
                referer: "-",
                user_agent: "-",
                request_bytes: 0,
                request_time_ms: 0,
                upstream: "",
                attempts: Vec::new(),
                req_id: hex(rng, 32),
            };
            pods.ingress.out(t + 90 * US, access.line());
            continue;
        }
        let req = Req {
            time: t,
            client: ATTACKER_IP,
            method: "GET",
            path,
            protocol: "HTTP/1.1",
            status,
            body_bytes: if status == 400 { 57 } else { 1_245 },
            referer: "-",
            user_agent: CURL_UA,
            request_bytes: rng.random_range(90..140),
            up_ms: rng.random_range(1..5),
            cart: false,
        };
        serve_on(rng, pods, &req, VICTIM);
    }

    // SQL injection (the query fails: 500) and template probes (the preview renders them).
    let mut t = tl.injection;
    for (method, path, status, bytes) in [
        ("GET", "/api/products?id=1%27%20OR%20%271%27%3D%271", 500, 0),
        (
            "GET",
            "/api/products?id=1%20UNION%20SELECT%20username,password%20FROM%20users--",
            500,
            0,
        ),
        (
            "GET",
            "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            200,
            0,
        ),
        ("POST", "/api/v1/preview", 200, 61),
        ("POST", "/api/v1/preview", 200, 66),
    ] {
        t += rng.random_range(3_000..9_000) * MS;
        let req = Req {
            time: t,
            client: ATTACKER_IP,
            method,
            path,
            protocol: "HTTP/1.1",
            status,
            body_bytes: if status == 500 { 72 } else { 4_210 },
            referer: "-",
            user_agent: if method == "POST" {
                EXPLOIT_UA
            } else {
                CURL_UA
            },
            request_bytes: 220 + bytes,
            up_ms: rng.random_range(3..30),
            cart: false,
        };
        let req_id = serve_on(rng, pods, &req, VICTIM);
        let web = &mut pods.web[VICTIM];
        if status == 500 {
            web.out(
                t - 2 * MS,
                format!(
                    "{{\"level\":50,\"time\":{},\"pid\":1,\"hostname\":\"{}\",\"reqId\":\"{req_id}\",\"err\":{{\"type\":\"QueryFailedError\",\"message\":\"syntax error at or near \\\"OR\\\"\",\"code\":\"42601\"}},\"msg\":\"product query failed\"}}",
                    (t - 2 * MS) / MS,
                    web.pod
                ),
            );
        }
    }

    // The exploit: a 36 KB template whose code runs a shell command.
    let t = tl.exploit;
    let blob = chars(
        rng,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        35_840,
    );
    let template = format!(
        "<%= global.process.mainModule.require('child_process').execSync(Buffer.from('{blob}','base64').toString(),{{stdio:['pipe','pipe','inherit']}}) %>"
    );
    let req = Req {
        time: t,
        client: ATTACKER_IP,
        method: "POST",
        path: "/api/v1/preview",
        protocol: "HTTP/1.1",
        status: 200,
        body_bytes: 812,
        referer: "-",
        user_agent: EXPLOIT_UA,
        request_bytes: template.len() as u64 + 318,
        up_ms: rng.random_range(1_100..1_900),
        cart: false,
    };
    let req_id = serve_on(rng, pods, &req, VICTIM);
    let received = t - req.up_ms * MS;
    pods.ingress.err(
        received - 3 * MS,
        format!(
            "{} [warn] 39#39: *{} a client request body is buffered to a temporary file /tmp/nginx/client-body/00000000{:02}, client: {ATTACKER_IP}, server: shop.example.com, request: \"POST /api/v1/preview HTTP/1.1\", host: \"shop.example.com\"",
            nginx_error_time(received),
            rng.random_range(100_000..900_000),
            rng.random_range(10..99)
        ),
    );
    let web = &mut pods.web[VICTIM];
    let pod = web.pod.clone();
    web.out(
        received + 4 * MS,
        format!(
            "{{\"level\":40,\"time\":{},\"pid\":1,\"hostname\":\"{pod}\",\"reqId\":\"{req_id}\",\"templateBytes\":{},\"template\":{},\"msg\":\"preview template larger than 16 KiB\"}}",
            (received + 4 * MS) / MS,
            template.len(),
            js(&template)
        ),
    );

    // The injected shell: stdout goes back in the response, stderr to the container's log.
    let shell = [
        (received + 900 * MS, "sh: 1: sudo: not found"),
        (
            received + 1_300 * MS,
            "cat: can't open '/etc/shadow': Permission denied",
        ),
        (
            tl.metadata_probe + 5_002 * MS,
            "curl: (28) Connection timed out after 5002 milliseconds",
        ),
        (
            tl.metadata_probe + 9_400 * MS,
            "sh: 1: cannot create /app/.cache/k: Read-only file system",
        ),
        (
            tl.dropper,
            "Connecting to 203.0.113.45:8000 (203.0.113.45:8000)",
        ),
        (tl.dropper + 20 * MS, "saving to 'kswapd0'"),
        (
            tl.dropper + 1_910 * MS,
            "kswapd0              100% |********************************| 2874k  0:00:00 ETA",
        ),
        (tl.dropper + 1_911 * MS, "'kswapd0' saved"),
        (tl.miner - 400 * MS, "nohup: ignoring input"),
    ];
    for (at, line) in shell {
        web.err(at, line.to_owned());
    }

    // XMRig, renamed kswapd0, started with --no-color --randomx-mode=light.
    let m = tl.miner;
    let banner = [
        " * ABOUT        XMRig/6.21.0 gcc/10.2.1",
        " * LIBS         libuv/1.44.2 OpenSSL/3.0.8 hwloc/2.9.0",
        " * HUGE PAGES   unavailable",
        " * 1GB PAGES    unavailable",
        " * CPU          Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz (1) 64-bit AES",
        " * MEMORY       3.1/7.6 GB (41%)",
        " * DONATE       0%",
        " * ASSEMBLY     auto:intel",
        " * POOL #1      pool.supportxmr.com:443 algo auto",
        " * COMMANDS     hashrate, pause, resume, results, connection",
    ];
    for (i, line) in banner.iter().enumerate() {
        web.out(m + i as i64 * 40 * US, (*line).to_owned());
    }
    let height = 3_280_000 + rng.random_range(0..20_000);
    let seed_hash = hex(rng, 64);
    let mut t = m + 480 * MS;
    let x = |t: i64, what: &str| format!("{} {what}", xmrig_time(t));
    web.out(
        t,
        x(
            t,
            &format!(" net      use pool pool.supportxmr.com:443 TLSv1.3 {POOL_IP}"),
        ),
    );
    web.out(
        t,
        x(
            t,
            &format!(" net      fingerprint (SHA-256): \"{}\"", hex(rng, 64)),
        ),
    );
    t += 120 * MS;
    web.out(t, x(t, &format!(" net      new job from pool.supportxmr.com:443 diff 100001 algo rx/0 height {height} (13 tx)")));
    web.out(
        t,
        x(
            t,
            &format!(" randomx  init dataset algo rx/0 (2 threads) seed {seed_hash}..."),
        ),
    );
    t += 1_100 * MS;
    web.out(
        t,
        x(
            t,
            " randomx  allocated 256 MB (256+0) huge pages 0% 0/128 +JIT (1 ms)",
        ),
    );
    t += 8_300 * MS;
    web.out(t, x(t, " randomx  dataset ready (8301 ms)"));
    web.out(
        t,
        x(
            t,
            " cpu      use profile  rx  (2 threads) scratchpad 2048 KB",
        ),
    );
    t += 60 * MS;
    web.out(
        t,
        x(
            t,
            " cpu      READY threads 2/2 (2) huge pages 0% 0/2 memory 4096 KB (58 ms)",
        ),
    );
    let mut accepted = 0;
    let mut next_job = t + rng.random_range(20..90) * SEC;
    let mut minute = t + 60 * SEC;
    let mut h = height;
    while minute < tl.end {
        while next_job < minute {
            h += 1;
            web.out(next_job, x(next_job, &format!(" net      new job from pool.supportxmr.com:443 diff 100001 algo rx/0 height {h} ({} tx)", rng.random_range(3..60))));
            if rng.random_bool(0.5) {
                accepted += 1;
                let at = next_job + rng.random_range(5..60) * SEC;
                web.out(
                    at,
                    x(
                        at,
                        &format!(
                            " cpu      accepted ({accepted}/0) diff 100001 ({} ms)",
                            rng.random_range(60..240)
                        ),
                    ),
                );
            }
            next_job += rng.random_range(60..150) * SEC;
        }
        let speed = 1_420.0 + rng.random_range(0..900) as f64 / 10.0;
        web.out(
            minute,
            x(
                minute,
                &format!(
                    " miner    speed 10s/60s/15m {:.1} {:.1} n/a H/s max {:.1} H/s",
                    speed,
                    speed - 3.2,
                    speed + 41.5
                ),
            ),
        );
        minute += 60 * SEC;
    }
}

/// [`serve`] on a given pod of the web service.
fn serve_on(rng: &mut SmallRng, pods: &mut Pods, req: &Req<'_>, pod: usize) -> String {
    let req_id = hex(rng, 32);
    let addr = WEB_PODS[pod].2;
    let app_time = req.time - rng.random_range(100..900) * US;
    web_log(&mut pods.web[pod], app_time, req, &req_id, req.up_ms);
    let access = Access {
        time: req.time,
        client: req.client,
        method: req.method,
        path: req.path,
        protocol: req.protocol,
        status: req.status,
        body_bytes: req.body_bytes,
        referer: req.referer,
        user_agent: req.user_agent,
        request_bytes: req.request_bytes,
        request_time_ms: req.up_ms + rng.random_range(0..2),
        upstream: "shop-web-8080",
        attempts: vec![(
            format!("{addr}:8080"),
            req.status.to_string(),
            req.body_bytes.to_string(),
            req.up_ms,
        )],
        req_id: req_id.clone(),
    };
    pods.ingress
        .out(req.time + rng.random_range(30..400) * US, access.line());
    req_id
}

/// What the applications log besides requests: pool stats, slow queries, Go's stderr logger,
/// one oversized line.
fn app_background(rng: &mut SmallRng, tl: &Timeline, pods: &mut Pods) {
    for cart in &mut pods.cart {
        let mut t = tl.from + rng.random_range(0..300) * SEC;
        while t < tl.end {
            let line = format!(
                "{{\"time\":\"{}\",\"level\":\"INFO\",\"msg\":\"db pool stats\",\"open\":{},\"idle\":{},\"in_use\":{},\"wait_count\":{}}}",
                rfc3339_nano(t),
                rng.random_range(8..16),
                rng.random_range(4..9),
                rng.random_range(0..5),
                rng.random_range(0..3)
            );
            cart.out(t, line);
            if rng.random_bool(0.3) {
                let at = t + rng.random_range(10..200) * SEC;
                let line = format!(
                    "{{\"time\":\"{}\",\"level\":\"WARN\",\"msg\":\"slow query\",\"query\":\"SELECT i.sku, i.qty, p.price FROM cart_items i JOIN prices p ON p.sku = i.sku WHERE i.cart_id = $1\",\"duration_ms\":{}}}",
                    rfc3339_nano(at),
                    rng.random_range(400..2_400)
                );
                cart.out(at, line);
            }
            t += 300 * SEC;
        }
    }
    // Go's default logger writes to stderr.
    let cart = &mut pods.cart[0];
    for _ in 0..3 {
        let at = tl.from + rng.random_range(60..3_500) * SEC;
        cart.err(
            at,
            format!(
                "{} http: superfluous response.WriteHeader call from main.(*handler).writeError (errors.go:41)",
                crate::logfmt::nginx_error_time(at)
            ),
        );
    }
    // A cart with hundreds of items, logged whole: one line of about 20 KB.
    let at = tl.from + rng.random_range(600..3_000) * SEC;
    let items: Vec<String> = (0..420)
        .map(|i| {
            format!(
                "{{\"sku\":\"SKU-{:06}\",\"qty\":{},\"price_cents\":{}}}",
                100_000 + i * 7,
                rng.random_range(1..4),
                rng.random_range(500..25_000)
            )
        })
        .collect();
    let line = format!(
        "{{\"time\":\"{}\",\"level\":\"WARN\",\"msg\":\"cart exceeds 300 items\",\"cart_id\":\"{}\",\"items\":[{}]}}",
        rfc3339_nano(at),
        hex(rng, 24),
        items.join(",")
    );
    pods.cart[1].out(at, line);
    // The web pods notice a slow cart now and then.
    for web in &mut pods.web {
        for _ in 0..rng.random_range(2..5) {
            let at = tl.from + rng.random_range(0..3_600) * SEC;
            web.out(
                at,
                format!(
                    "{{\"level\":40,\"time\":{},\"pid\":1,\"hostname\":\"{}\",\"service\":\"cart\",\"durationMs\":{},\"msg\":\"upstream call slow\"}}",
                    at / MS,
                    web.pod,
                    rng.random_range(1_000..3_000)
                ),
            );
        }
    }
}

/// A Celery worker sending order mails and rebuilding the search index; Python logs to stderr.
fn worker(rng: &mut SmallRng, tl: &Timeline, c: &mut Container) {
    let stamp = |t: i64| crate::logfmt::nginx_error_time(t).replace('/', "-");
    let ms = |t: i64| (t / MS) % 1000;
    let mut t = tl.from + rng.random_range(0..20) * SEC;
    while t < tl.end {
        let id = format!(
            "{}-{}-{}-{}-{}",
            hex(rng, 8),
            hex(rng, 4),
            hex(rng, 4),
            hex(rng, 4),
            hex(rng, 12)
        );
        let task = *weighted(
            rng,
            &[
                (6, "shop.tasks.send_order_confirmation"),
                (3, "shop.tasks.sync_inventory"),
                (1, "shop.tasks.expire_carts"),
            ],
        );
        c.err(
            t,
            format!(
                "[{},{:03}: INFO/MainProcess] Task {task}[{id}] received",
                stamp(t),
                ms(t)
            ),
        );
        let took = rng.random_range(40..900) * MS;
        let done = t + took + rng.random_range(1..20) * MS;
        let worker_no = rng.random_range(1..5);
        c.err(
            done,
            format!(
                "[{},{:03}: INFO/ForkPoolWorker-{worker_no}] Task {task}[{id}] succeeded in {}s: None",
                stamp(done),
                ms(done),
                go_seconds(took - took % 1000)
            ),
        );
        t += exp_gap(rng, 25 * SEC);
    }
    // A failed task: Python's traceback, one record per line.
    let at = tl.from + rng.random_range(900..2_400) * SEC;
    let id = hex(rng, 8);
    let trace = [
        format!("[{},{:03}: ERROR/ForkPoolWorker-2] Task shop.tasks.send_order_confirmation[{id}-1c2d-4e5f-8a9b-0c1d2e3f4a5b] raised unexpected: SMTPServerDisconnected('Connection unexpectedly closed')", stamp(at), ms(at)),
        "Traceback (most recent call last):".to_owned(),
        "  File \"/usr/local/lib/python3.12/site-packages/celery/app/trace.py\", line 453, in trace_task".to_owned(),
        "    R = retval = fun(*args, **kwargs)".to_owned(),
        "  File \"/app/shop/tasks.py\", line 88, in send_order_confirmation".to_owned(),
        "    smtp.send_message(msg)".to_owned(),
        "  File \"/usr/local/lib/python3.12/smtplib.py\", line 405, in getreply".to_owned(),
        "    raise SMTPServerDisconnected(\"Connection unexpectedly closed\")".to_owned(),
        "smtplib.SMTPServerDisconnected: Connection unexpectedly closed".to_owned(),
    ];
    for (i, line) in trace.into_iter().enumerate() {
        c.err(at + i as i64 * 3 * US, line);
    }
    // The index rebuild logs its arguments: one line of about 20 KB.
    let at = tl.from + rng.random_range(300..3_300) * SEC;
    let ids: Vec<String> = (0..2_600).map(|i| (400_000 + i * 3).to_string()).collect();
    c.err(
        at,
        format!(
            "[{},{:03}: INFO/MainProcess] Task shop.tasks.rebuild_search_index[{}] received: args=([{}],)",
            stamp(at),
            ms(at),
            hex(rng, 8),
            ids.join(", ")
        ),
    );
    // The worker reports to stdout when it polls the broker after a restart of Redis.
    let at = tl.from + rng.random_range(1_200..2_000) * SEC;
    c.out(at, format!("[{},{:03}: WARNING/MainProcess] consumer: Connection to broker lost. Trying to re-establish the connection...", stamp(at), ms(at)));
    let at = at + 2 * SEC;
    c.out(
        at,
        format!(
            "[{},{:03}: INFO/MainProcess] Connected to redis://redis.shop.svc.cluster.local:6379/0",
            stamp(at),
            ms(at)
        ),
    );
}

/// The GitLab runner (`--log-format json`): the jobs whose build pods node-b's journal shows
/// starting and stopping, and once a failed poll.
fn runner(rng: &mut SmallRng, tl: &Timeline, c: &mut Container) {
    let line = |t: i64, level: &str, msg: &str, rest: &str| {
        format!(
            "{{\"level\":\"{level}\",\"msg\":{}{rest},\"runner\":\"t3kq9zbx\",\"time\":\"{}\"}}",
            js(msg),
            crate::logfmt::rfc3339_secs(t)
        )
    };
    for job in &tl.ci_jobs {
        let t = job.start - rng.random_range(300..900) * MS;
        c.err(
            t,
            line(
                t,
                "info",
                "Checking for jobs... received",
                &format!(
                    ",\"job\":{},\"repo_url\":\"https://gitlab.example.com/shop/web.git\"",
                    job.id
                ),
            ),
        );
        let done = job.end - rng.random_range(500..1_500) * MS;
        let secs = (done - job.start) as f64 / SEC as f64;
        c.err(
            done,
            line(
                done,
                "info",
                "Job succeeded",
                &format!(
                    ",\"duration_s\":{secs:.6},\"job\":{},\"project\":42",
                    job.id
                ),
            ),
        );
    }
    let t = tl.from + rng.random_range(300..3_300) * SEC;
    c.err(
        t,
        line(
            t,
            "warning",
            "Checking for jobs... failed",
            ",\"status\":\"couldn't execute POST against https://gitlab.example.com/api/v4/jobs/request: Post \\\"https://gitlab.example.com/api/v4/jobs/request\\\": dial tcp 198.51.100.10:443: i/o timeout\"",
        ),
    );
}
