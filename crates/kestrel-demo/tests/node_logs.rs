//! The node-side demo logs: every line in its real format (checked with Kestrel's own parsers),
//! kubelet's path layout, time order and span, determinism, the attack visible in each source,
//! and the joins with the audit scenario (pod uid, IP, times).

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use kestrel_demo::{
    demo_node_logs, demo_pod_logs, demo_scenario, node_log_story, scenario_steps, DemoLogFile,
};
use kestrel_event::{IngressAccess, LogStream};
use kestrel_parse::{parse_cri, parse_docker, parse_ingress_default, PartialMerger};
use serde_json::Value;

const ATTACKER: &str = "203.0.113.45";
const VICTIM_IP: &str = "10.244.1.21";

fn end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap()
}

fn ns(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap()
}

fn span() -> std::ops::RangeInclusive<i64> {
    ns(end() - Duration::hours(1))..=ns(end())
}

fn pods() -> Vec<DemoLogFile> {
    demo_pod_logs(end(), 42)
}

fn file<'a>(files: &'a [DemoLogFile], needle: &str) -> &'a DemoLogFile {
    files
        .iter()
        .find(|f| f.path.contains(needle))
        .unwrap_or_else(|| panic!("no file with {needle}"))
}

fn is_docker(f: &DemoLogFile) -> bool {
    f.lines.first().is_some_and(|l| l.starts_with('{'))
}

/// A container file's whole lines (partial lines joined), with the parsers the agent uses.
fn merged(f: &DemoLogFile) -> Vec<(i64, LogStream, String, u32)> {
    let mut merger = PartialMerger::new(1 << 20);
    let mut out = Vec::new();
    for line in &f.lines {
        let got = if is_docker(f) {
            let d = parse_docker(line.as_bytes())
                .unwrap_or_else(|e| panic!("{}: not docker json-file: {e}: {line}", f.path));
            merger
                .push(d.time, d.stream, d.partial, d.message.as_bytes())
                .map(|m| (m.time, m.stream, m.message.into_owned(), m.parts))
        } else {
            let c = parse_cri(line.as_bytes())
                .unwrap_or_else(|e| panic!("{}: not CRI: {e}: {line}", f.path));
            merger
                .push_cri(c)
                .map(|m| (m.time, m.stream, m.message.into_owned(), m.parts))
        };
        out.extend(got);
    }
    assert!(
        !merger.has_pending(),
        "{}: ends inside a partial line",
        f.path
    );
    out
}

fn dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns1123_label)
}

#[test]
fn paths_follow_kubelets_layout() {
    let files = pods();
    let mut seen = HashSet::new();
    for f in &files {
        let parts: Vec<&str> = f.path.split('/').collect();
        assert_eq!(parts.len(), 3, "{}", f.path);
        assert_eq!(parts[2], "0.log", "{}", f.path);
        assert!(dns1123_label(parts[1]), "container name {}", f.path);
        let ids: Vec<&str> = parts[0].split('_').collect();
        assert_eq!(ids.len(), 3, "{}", f.path);
        assert!(dns1123_label(ids[0]), "namespace in {}", f.path);
        assert!(dns1123_subdomain(ids[1]), "pod name in {}", f.path);
        assert!(
            uuid::Uuid::parse_str(ids[2]).is_ok(),
            "pod uid in {}",
            f.path
        );
        assert!(["node-a", "node-b", "node-c"].contains(&f.node.as_str()));
        assert!(seen.insert(f.path.clone()), "duplicate {}", f.path);
        assert!(!f.lines.is_empty(), "{} is empty", f.path);
    }
    let want = [
        "ingress-nginx_ingress-nginx-controller-",
        "kube-system_coredns-7db6d8ff4d-4xk9t_",
        "shop_web-7c9d8f6b5d-9kz7m_",
        "shop_cart-5b8f7d9c4-hx6rl_",
        "shop_order-worker-",
        "ci_gitlab-runner-6f7b9c8d5-k2m4x_",
    ];
    for w in want {
        assert!(files.iter().any(|f| f.path.starts_with(w)), "no {w}");
    }
    assert!(file(&files, "ingress-nginx-controller-")
        .path
        .ends_with("/controller/0.log"));
    assert!(file(&files, "coredns-").path.ends_with("/coredns/0.log"));
}

#[test]
fn every_container_line_parses_in_time_order_within_the_hour() {
    let files = pods();
    let mut total = 0;
    let mut partial_lines = 0;
    let mut stderr = 0;
    let mut docker_files = 0;
    for f in &files {
        docker_files += usize::from(is_docker(f));
        let whole = merged(f);
        total += f.lines.len();
        let mut last = i64::MIN;
        for (t, stream, message, parts) in &whole {
            assert!(span().contains(t), "{}: time {t} outside the hour", f.path);
            assert!(*t >= last, "{}: out of order at {message:.80}", f.path);
            last = *t;
            assert!(!message.contains('\n'), "{}: newline inside a line", f.path);
            partial_lines += usize::from(*parts > 1);
            stderr += usize::from(*stream == LogStream::Stderr);
        }
    }
    assert_eq!(docker_files, 1, "one container in docker json-file format");
    assert!(partial_lines >= 3, "only {partial_lines} split lines");
    assert!(stderr >= 20, "only {stderr} stderr lines");
    assert!((3_000..12_000).contains(&total), "{total} lines");
}

#[test]
fn the_split_template_is_one_json_line_again() {
    let files = pods();
    let web = merged(file(&files, "web-7c9d8f6b5d-9kz7m"));
    let (_, _, line, parts) = web
        .iter()
        .find(|(_, _, m, _)| m.contains("\"templateBytes\""))
        .expect("the exploit's template is logged");
    assert_eq!(*parts, 3, "36 KB in 16 KiB parts");
    let v: Value = serde_json::from_str(line).expect("the joined line is JSON");
    assert!(v["template"].as_str().unwrap().contains("child_process"));
    // The docker worker's long line, too.
    let worker = merged(file(&files, "order-worker-"));
    assert!(worker
        .iter()
        .any(|(_, _, m, parts)| *parts > 1 && m.contains("rebuild_search_index")));
}

/// The controller's access lines (stdout) and its other lines (stderr: nginx's error log).
fn ingress(files: &[DemoLogFile]) -> (Vec<IngressAccess>, Vec<String>) {
    let mut access = Vec::new();
    let mut other = Vec::new();
    for (t, stream, message, _) in merged(file(files, "ingress-nginx-controller-")) {
        match stream {
            LogStream::Stdout => access.push(
                parse_ingress_default(message.as_bytes(), Some(t))
                    .unwrap_or_else(|e| panic!("not an access line: {e}: {message}")),
            ),
            LogStream::Stderr => {
                assert!(
                    parse_ingress_default(message.as_bytes(), Some(t)).is_err(),
                    "an error-log line parses as access: {message}"
                );
                other.push(message);
            }
        }
    }
    (access, other)
}

#[test]
fn every_access_line_parses_and_error_lines_are_nginx_error_log() {
    let files = pods();
    let (access, errors) = ingress(&files);
    assert!(access.len() > 1_000, "{} access lines", access.len());
    assert!(errors.len() >= 2);
    for e in &errors {
        let bytes = e.as_bytes();
        assert!(
            bytes.len() > 20 && bytes[4] == b'/' && bytes[7] == b'/' && bytes[19] == b' ',
            "{e}"
        );
        assert!(e.contains(" [error] ") || e.contains(" [warn] "), "{e}");
    }
    let clients: HashSet<&str> = access
        .iter()
        .filter_map(|a| a.client_ip.as_deref())
        .collect();
    assert!(clients.len() >= 30, "{} clients", clients.len());
    assert!(clients.iter().any(|c| c.contains(':')), "an IPv6 client");
    // Retries: two upstreams in one line, as nginx writes them.
    let retry = access
        .iter()
        .find(|a| {
            a.upstream_status
                .as_deref()
                .is_some_and(|s| s.contains(", "))
        })
        .expect("a retried request");
    assert_eq!(
        retry
            .upstream_addr
            .as_deref()
            .unwrap()
            .matches(", ")
            .count(),
        1
    );
    for a in &access {
        assert!(a.method.is_some() && a.path.is_some() && a.status.is_some());
        assert_eq!(a.request_id.as_deref().map(str::len), Some(32));
    }
}

#[test]
fn the_attackers_requests_are_in_the_access_log() {
    let files = pods();
    let (access, errors) = ingress(&files);
    let mine: Vec<&IngressAccess> = access
        .iter()
        .filter(|a| a.client_ip.as_deref() == Some(ATTACKER))
        .collect();
    let status = |path: &str| -> Vec<u16> {
        mine.iter()
            .filter(|a| a.path.as_deref() == Some(path))
            .filter_map(|a| a.status)
            .collect()
    };
    let scan_404 = mine
        .iter()
        .filter(|a| a.status == Some(404) && a.user_agent.as_deref() == Some("gobuster/3.6"))
        .count();
    assert!(scan_404 >= 60, "{scan_404} scanner 404s");
    for path in ["/.env", "/wp-login.php", "/admin"] {
        assert!(status(path).contains(&404), "{path}");
    }
    assert_eq!(status("/../../etc/passwd"), vec![400]);
    let traversal = mine
        .iter()
        .find(|a| a.path.as_deref() == Some("/../../etc/passwd"))
        .unwrap();
    assert_eq!(traversal.upstream_addr, None, "nginx answered itself");
    let sqli: Vec<&&IngressAccess> = mine
        .iter()
        .filter(|a| a.path.as_deref().is_some_and(|p| p.contains("%27%20OR%20")))
        .collect();
    assert_eq!(sqli.len(), 1);
    assert_eq!(sqli[0].status, Some(500));
    let exploit = mine
        .iter()
        .filter(|a| {
            a.method.as_deref() == Some("POST") && a.path.as_deref() == Some("/api/v1/preview")
        })
        .max_by_key(|a| a.request_bytes)
        .expect("the exploit");
    assert_eq!(exploit.status, Some(200));
    assert!(exploit.request_bytes.unwrap() > 30_000);
    assert_eq!(exploit.upstream_addr.as_deref(), Some("10.244.1.21:8080"));
    // In story order: scan, traversal, injection, exploit.
    let first = |pred: &dyn Fn(&IngressAccess) -> bool| {
        mine.iter().find(|a| pred(a)).map(|a| a.time).unwrap()
    };
    let scan = first(&|a| a.user_agent.as_deref() == Some("gobuster/3.6"));
    let trav = traversal.time;
    let inj = sqli[0].time;
    assert!(scan < trav && trav < inj && inj < exploit.time);
    assert!(errors
        .iter()
        .any(|e| e.contains("buffered to a temporary file") && e.contains(ATTACKER)));
}

#[test]
fn request_ids_join_the_ingress_and_the_applications() {
    let files = pods();
    let (access, _) = ingress(&files);
    let mut app_text = String::new();
    for f in files
        .iter()
        .filter(|f| f.path.contains("_web-") || f.path.contains("_cart-"))
    {
        for (_, _, m, _) in merged(f) {
            app_text.push_str(&m);
            app_text.push('\n');
        }
    }
    let mut joined = 0;
    for a in &access {
        let proxied = a
            .upstream_name
            .as_deref()
            .is_some_and(|n| n.starts_with("shop-"));
        if proxied && a.status != Some(499) {
            let id = a.request_id.as_deref().unwrap();
            assert!(app_text.contains(id), "request {id} not in the app logs");
            joined += 1;
        }
    }
    assert!(joined > 1_000);
}

#[test]
fn the_compromised_pod_shows_the_shell_and_the_miner() {
    let files = pods();
    let web = merged(file(&files, "web-7c9d8f6b5d-9kz7m"));
    let err: Vec<&str> = web
        .iter()
        .filter(|l| l.1 == LogStream::Stderr)
        .map(|l| l.2.as_str())
        .collect();
    for want in [
        "sudo: not found",
        "Connection timed out",
        "203.0.113.45:8000",
        "'kswapd0' saved",
    ] {
        assert!(err.iter().any(|l| l.contains(want)), "{want}");
    }
    let speeds = web
        .iter()
        .filter(|l| l.1 == LogStream::Stdout && l.2.contains(" miner    speed "))
        .count();
    assert!(speeds >= 30, "{speeds} hashrate lines");
    // The other web pods stay clean.
    for other in ["web-7c9d8f6b5d-2x4qp", "web-7c9d8f6b5d-tq8wn"] {
        let lines = merged(file(&files, other));
        assert!(!lines
            .iter()
            .any(|l| l.2.contains("kswapd0") || l.2.contains("supportxmr")));
    }
}

/// One CoreDNS `log` line: client address, type, name, rcode.
struct Query {
    client: String,
    qtype: String,
    name: String,
    proto: String,
    size: u32,
    rcode: String,
}

/// Checks a `log` plugin line field by field, as FORMATS.md gives it.
fn parse_coredns(line: &str) -> Option<Query> {
    let rest = line.strip_prefix("[INFO] ")?;
    let (addr, rest) = rest.split_once(" - ")?;
    let client = match addr.strip_prefix('[') {
        Some(v6) => {
            let (ip, port) = v6.split_once("]:")?;
            port.parse::<u16>().ok()?;
            ip.to_owned()
        }
        None => {
            let (ip, port) = addr.rsplit_once(':')?;
            port.parse::<u16>().ok()?;
            ip.to_owned()
        }
    };
    let (id, rest) = rest.split_once(" \"")?;
    id.parse::<u16>().ok()?;
    let (question, rest) = rest.split_once("\" ")?;
    let q: Vec<&str> = question.split(' ').collect();
    let [qtype, class, name, proto, size, dnssec, bufsize] = q[..] else {
        return None;
    };
    if class != "IN" || !name.ends_with('.') || !["udp", "tcp"].contains(&proto) {
        return None;
    }
    let size: u32 = size.parse().ok()?;
    dnssec.parse::<bool>().ok()?;
    bufsize.parse::<u32>().ok()?;
    let r: Vec<&str> = rest.split(' ').collect();
    let [rcode, flags, rsize, dur] = r[..] else {
        return None;
    };
    if !flags.starts_with("qr") {
        return None;
    }
    rsize.parse::<u32>().ok()?;
    dur.strip_suffix('s')?.parse::<f64>().ok()?;
    Some(Query {
        client,
        qtype: qtype.to_owned(),
        name: name.to_owned(),
        proto: proto.to_owned(),
        size,
        rcode: rcode.to_owned(),
    })
}

fn coredns() -> Vec<(i64, Query)> {
    let files = pods();
    let mut out = Vec::new();
    for (t, stream, m, _) in merged(file(&files, "coredns-")) {
        assert_eq!(stream, LogStream::Stdout);
        if m.starts_with("[ERROR] plugin/errors: ") {
            continue;
        }
        let q = parse_coredns(&m).unwrap_or_else(|| panic!("not a CoreDNS log line: {m}"));
        // The wire size: header, name, type and class, and an OPT record if any.
        assert!(
            [16, 27, 39].contains(&(q.size - q.name.len() as u32 - 1)),
            "{m}"
        );
        out.push((t, q));
    }
    out
}

#[test]
fn coredns_lines_show_the_miner_the_guessing_and_the_tunnel() {
    let dns = coredns();
    assert!(dns.len() > 800, "{} queries", dns.len());
    assert!(
        dns.iter().any(|(_, q)| q.client.contains(':')),
        "IPv6 clients"
    );
    assert!(dns.iter().any(|(_, q)| q.proto == "tcp"));
    assert!(dns
        .iter()
        .any(|(_, q)| q.name == "kubernetes.default.svc.cluster.local."));
    let victim: Vec<&(i64, Query)> = dns.iter().filter(|(_, q)| q.client == VICTIM_IP).collect();
    let pool: Vec<_> = victim
        .iter()
        .filter(|(_, q)| q.name == "pool.supportxmr.com." && q.qtype == "A")
        .collect();
    assert!(pool.len() >= 2, "mining pool resolved and re-resolved");
    assert!(pool.iter().all(|(_, q)| q.rcode == "NOERROR"));
    // The search path: the pool name fails in the cluster domains first.
    assert!(victim.iter().any(
        |(_, q)| q.name == "pool.supportxmr.com.shop.svc.cluster.local." && q.rcode == "NXDOMAIN"
    ));
    // An NXDOMAIN burst: many in a few seconds.
    let nx: Vec<i64> = victim
        .iter()
        .filter(|(_, q)| q.rcode == "NXDOMAIN")
        .map(|(t, _)| *t)
        .collect();
    let burst = nx.windows(40).any(|w| w[39] - w[0] < 15_000_000_000);
    assert!(burst, "40 NXDOMAIN within 15 s");
    // The tunnel: TXT queries with long random labels under one domain.
    let tunnel: Vec<_> = victim
        .iter()
        .filter(|(_, q)| q.qtype == "TXT" && q.name.ends_with(".d.cdnsync.example."))
        .collect();
    assert!(tunnel.len() >= 100);
    for (_, q) in &tunnel {
        let longest = q.name.split('.').map(str::len).max().unwrap();
        assert_eq!(longest, 63, "{}", q.name);
        assert!(q.name.len() <= 253);
    }
    let labels: HashSet<&str> = tunnel
        .iter()
        .map(|(_, q)| q.name.split('.').next().unwrap())
        .collect();
    assert_eq!(labels.len(), tunnel.len(), "every chunk differs");
    // No one else looks up the pool or the tunnel.
    assert!(!dns.iter().any(|(_, q)| q.client != VICTIM_IP
        && (q.name.contains("supportxmr") || q.name.contains("cdnsync"))));
}

fn nodes() -> Vec<DemoLogFile> {
    demo_node_logs(end(), 42)
}

#[test]
fn kern_log_lines_are_netfilter_log_lines_in_order() {
    let files = nodes();
    let kern: Vec<&DemoLogFile> = files.iter().filter(|f| f.path == "kern.log").collect();
    assert_eq!(kern.len(), 3);
    for f in &kern {
        let mut last = String::new();
        for line in &f.lines {
            let (time, rest) = line.split_once(' ').unwrap();
            let t = DateTime::parse_from_rfc3339(time).expect("an RFC 3339 time");
            assert!(span().contains(&ns(t.with_timezone(&Utc))), "{line}");
            assert!(time >= last.as_str(), "out of order: {line}");
            last = time.to_owned();
            let text = rest
                .strip_prefix(&format!("{} kernel: calico-packet: ", f.node))
                .unwrap_or_else(|| panic!("{line}"));
            let fields: HashMap<&str, &str> = text
                .split(' ')
                .filter_map(|kv| kv.split_once('='))
                .collect();
            for key in [
                "IN", "OUT", "SRC", "DST", "LEN", "TTL", "PROTO", "SPT", "DPT",
            ] {
                assert!(fields.contains_key(key), "{key} missing: {line}");
            }
        }
    }
    let node_b = kern.iter().find(|f| f.node == "node-b").unwrap();
    let from_victim = |dst: &str| {
        node_b
            .lines
            .iter()
            .filter(|l| l.contains(&format!("SRC={VICTIM_IP} DST={dst} ")))
            .count()
    };
    assert_eq!(
        from_victim("169.254.169.254"),
        3,
        "a SYN and two retransmissions"
    );
    assert_eq!(from_victim(ATTACKER), 1);
    assert!(from_victim("192.0.2.77") >= 2);
    let node_a = kern.iter().find(|f| f.node == "node-a").unwrap();
    assert!(node_a
        .lines
        .iter()
        .any(|l| l.contains(&format!("SRC={ATTACKER} DST=10.0.1.11 ")) && l.contains("DPT=22 ")));
}

fn journal(files: &[DemoLogFile], node: &str) -> Vec<Value> {
    files
        .iter()
        .find(|f| f.node == node && f.path == "journal.json")
        .unwrap()
        .lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("journalctl -o json lines are JSON"))
        .collect()
}

fn message(e: &Value) -> String {
    match &e["MESSAGE"] {
        Value::String(s) => s.clone(),
        Value::Array(bytes) => {
            let b: Vec<u8> = bytes.iter().map(|v| v.as_u64().unwrap() as u8).collect();
            String::from_utf8_lossy(&b).into_owned()
        }
        other => panic!("MESSAGE is {other}"),
    }
}

#[test]
fn journal_entries_are_journalctl_json() {
    let files = nodes();
    let mut cursors = HashSet::new();
    let mut byte_messages = 0;
    for node in ["node-a", "node-b", "node-c"] {
        let entries = journal(&files, node);
        assert!(!entries.is_empty());
        let mut last = 0i64;
        for e in &entries {
            for key in [
                "__CURSOR",
                "__REALTIME_TIMESTAMP",
                "__MONOTONIC_TIMESTAMP",
                "_BOOT_ID",
                "_HOSTNAME",
                "PRIORITY",
                "SYSLOG_IDENTIFIER",
                "_PID",
                "_SYSTEMD_UNIT",
                "_TRANSPORT",
            ] {
                assert!(e[key].is_string(), "{key} is not a string in {e}");
            }
            assert_eq!(e["_HOSTNAME"], node);
            let us: i64 = e["__REALTIME_TIMESTAMP"].as_str().unwrap().parse().unwrap();
            assert!(span().contains(&(us * 1_000)), "{e}");
            assert!(us >= last, "out of order: {e}");
            last = us;
            let cursor = e["__CURSOR"].as_str().unwrap();
            assert!(cursor.starts_with("s=") && cursor.contains(";i=") && cursor.contains(";t="));
            assert!(cursors.insert(cursor.to_owned()), "duplicate cursor");
            byte_messages += usize::from(e["MESSAGE"].is_array());
            message(e);
        }
    }
    assert!(byte_messages >= 10, "colour codes keep messages as bytes");
}

#[test]
fn node_a_journal_tells_the_privileged_pod_and_the_persistence() {
    let files = nodes();
    let entries = journal(&files, "node-a");
    let texts: Vec<(i64, String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["__REALTIME_TIMESTAMP"]
                    .as_str()
                    .unwrap()
                    .parse::<i64>()
                    .unwrap()
                    * 1_000,
                e["_SYSTEMD_UNIT"].as_str().unwrap().to_owned(),
                message(e),
            )
        })
        .collect();
    let find = |needle: &str| {
        texts
            .iter()
            .find(|(_, _, m)| m.contains(needle))
            .unwrap_or_else(|| panic!("no {needle}"))
    };
    // The pod uid the audit scenario gave debug-x7k2 is the one kubelet and containerd name.
    let audit = demo_scenario(end(), 42);
    let created = audit
        .iter()
        .find(|e| {
            e["verb"] == "create"
                && e["objectRef"]["name"] == "debug-x7k2"
                && e["objectRef"].get("subresource").is_none()
                && e["stage"] == "ResponseComplete"
        })
        .expect("the audit scenario creates debug-x7k2");
    let uid = created["responseObject"]["metadata"]["uid"]
        .as_str()
        .unwrap();
    let sandbox = find("RunPodSandbox for &PodSandboxMetadata{Name:debug-x7k2");
    assert!(sandbox.2.contains(uid), "{} lacks {uid}", sandbox.2);
    let created_at = DateTime::parse_from_rfc3339(created["stageTimestamp"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    let add = find("\"SyncLoop ADD\" source=\"api\" pods=[\"default/debug-x7k2\"]");
    assert!(add.0 > ns(created_at) && add.0 - ns(created_at) < 1_000_000_000);
    // The host unit starts during the exec session, the SSH login comes after it.
    let exec = audit
        .iter()
        .find(|e| {
            e["objectRef"]["subresource"] == "exec"
                && e["objectRef"]["name"] == "debug-x7k2"
                && e["responseStatus"]["code"] == 101
                && e["stage"] == "ResponseComplete"
        })
        .expect("the exec session");
    let t = |k: &str| {
        ns(DateTime::parse_from_rfc3339(exec[k].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc))
    };
    let (start, end_) = (t("requestReceivedTimestamp"), t("stageTimestamp"));
    let unit = find("Started kube-node-helper.service");
    assert!(start < unit.0 && unit.0 < end_);
    let ssh = find(&format!("Accepted publickey for root from {ATTACKER}"));
    assert_eq!(ssh.1, "ssh.service");
    assert!(ssh.0 > end_);
    assert!(texts
        .iter()
        .any(|(_, u, m)| u == "kube-node-helper.service" && m.contains("speed 10s/60s/15m")));
}

#[test]
fn the_ingress_attack_falls_between_the_audit_steps() {
    let files = pods();
    let (access, _) = ingress(&files);
    let exploit = access
        .iter()
        .filter(|a| a.client_ip.as_deref() == Some(ATTACKER))
        .map(|a| a.time)
        .max()
        .unwrap();
    let audit = demo_scenario(end(), 42);
    let privileged = audit
        .iter()
        .find(|e| e["objectRef"]["name"] == "debug-x7k2" && e["verb"] == "create")
        .unwrap();
    let at = DateTime::parse_from_rfc3339(privileged["stageTimestamp"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    assert!(
        exploit < ns(at),
        "the web exploit precedes the privileged pod"
    );
    assert!(exploit > *span().start());
}

#[test]
fn generation_is_deterministic_per_seed() {
    assert_eq!(demo_pod_logs(end(), 7), demo_pod_logs(end(), 7));
    assert_eq!(demo_node_logs(end(), 7), demo_node_logs(end(), 7));
    assert_ne!(demo_pod_logs(end(), 7), demo_pod_logs(end(), 8));
    assert_ne!(demo_node_logs(end(), 7), demo_node_logs(end(), 8));
    // Another seed keeps the story: same files, the attack still there.
    let other = demo_pod_logs(end(), 8);
    let paths = |f: &[DemoLogFile]| f.iter().map(|f| f.path.clone()).collect::<BTreeSet<_>>();
    assert_eq!(paths(&other), paths(&pods()));
    let (access, _) = ingress(&other);
    assert!(access
        .iter()
        .any(|a| a.client_ip.as_deref() == Some(ATTACKER)
            && a.path.as_deref() == Some("/api/v1/preview")
            && a.status == Some(200)));
}

#[test]
fn the_story_names_known_steps_and_real_tables() {
    let known: HashSet<&str> = scenario_steps()
        .iter()
        .map(|s| s.name)
        .chain(["web-exploit", "cryptomining", "dns-tunnelling"])
        .collect();
    let story = node_log_story();
    let tables: BTreeSet<&str> = story.iter().map(|s| s.source).collect();
    assert_eq!(
        tables,
        BTreeSet::from(["container_log", "dns", "ingress", "journal", "netflow"])
    );
    for s in &story {
        // It opens with when, as an offset into the scenario's window.
        let when = s.description.split_once("T+").map(|(head, _)| head.len());
        assert!(when.is_some_and(|n| n <= 12), "{}", s.description);
        assert!(s.example_query.contains(&format!("FROM {}", s.source)));
        for step in s.steps {
            assert!(known.contains(step), "unknown step {step}");
        }
    }
}

#[test]
fn ci_jobs_agree_across_the_runner_the_journal_and_dns() {
    let files = pods();
    let runner = merged(file(&files, "ci_gitlab-runner-6f7b9c8d5-k2m4x_"));
    let received: Vec<i64> = runner
        .iter()
        .filter(|l| l.2.contains("\"Checking for jobs... received\""))
        .map(|l| l.0)
        .collect();
    assert!(received.len() >= 3, "{} jobs", received.len());
    let nodes = nodes();
    let adds: Vec<i64> = journal(&nodes, "node-b")
        .iter()
        .filter(|e| message(e).contains("\"SyncLoop ADD\" source=\"api\" pods=[\"ci/runner-"))
        .map(|e| {
            e["__REALTIME_TIMESTAMP"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
                * 1_000
        })
        .collect();
    assert_eq!(adds.len(), received.len(), "one build pod per job");
    for (job, pod) in received.iter().zip(&adds) {
        assert!(
            job < pod && pod - job < 2_000_000_000,
            "the pod starts right after the job"
        );
    }
    let build_lookups = coredns()
        .iter()
        .filter(|(_, q)| q.name == "registry.example.com." && q.qtype == "A")
        .count();
    assert_eq!(build_lookups, adds.len());
}

#[test]
fn other_seeds_tell_the_same_story_in_valid_lines() {
    for seed in 1..=4 {
        let files = demo_pod_logs(end(), seed);
        for f in &files {
            let whole = merged(f);
            assert!(whole.windows(2).all(|w| w[0].0 <= w[1].0), "{}", f.path);
            assert!(whole.iter().all(|l| span().contains(&l.0)), "{}", f.path);
        }
        let (access, _) = ingress(&files);
        assert!(access
            .iter()
            .any(|a| a.client_ip.as_deref() == Some(ATTACKER)
                && a.path.as_deref() == Some("/api/v1/preview")
                && a.request_bytes.unwrap_or(0) > 30_000
                && a.status == Some(200)));
        let nodes = demo_node_logs(end(), seed);
        let a = journal(&nodes, "node-a");
        let unit = a
            .iter()
            .position(|e| message(e).starts_with("Started kube-node-helper.service"))
            .expect("the host unit starts");
        let ssh = a
            .iter()
            .position(|e| message(e).starts_with("Accepted publickey for root from 203.0.113.45"))
            .expect("the SSH login");
        assert!(unit < ssh, "seed {seed}");
    }
}
