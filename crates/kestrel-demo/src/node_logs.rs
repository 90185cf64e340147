//! The nodes' own logs for the demo's last hour: `kern.log` with Calico's netfilter policy log
//! lines (prefix `calico-packet: `) and the systemd journal as `journalctl -o json` prints it.
//!
//! Ordinary: pods reaching external APIs, NTP, timers, cron, CI build pods coming and going on
//! node-b. The attack: the web pod's connections on node-b (metadata service, download,
//! mining pool); on node-a the privileged pod `default/debug-x7k2` starting, and from its exec
//! session a miner installed as a systemd unit on the host, then SSH from 203.0.113.45.

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

use crate::cluster::{ATTACKER_IP, CART_PODS, NODES, NODE_IPS, WEB_PODS};
use crate::event::stable_uid;
use crate::logfmt::{
    chars, exp_gap, hex, klog, rfc3339_nano, roughen, rsyslog_time, xmrig_time, MS, SEC,
};
use crate::pod_logs::{timeline, DemoLogFile, Timeline, POOL_IP, VICTIM, WORKER_IP};

/// The nodes' `kern.log` and `journal.json` for the hour before `end`, with the same attack
/// timeline as [`demo_scenario`](crate::demo_scenario)`(end, seed)` and
/// [`demo_pod_logs`](crate::demo_pod_logs)`(end, seed)`. Deterministic for a given seed.
pub fn demo_node_logs(end: DateTime<Utc>, seed: u64) -> Vec<DemoLogFile> {
    let tl = timeline(end, seed);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6e6f_6465_2d6c_6f67);
    let mut kern: Vec<Kern> = (0..3)
        .map(|node| Kern {
            node,
            lines: Vec::new(),
        })
        .collect();
    let mut journals: Vec<Journal> = (0..3).map(|node| Journal::new(node, tl.end)).collect();
    ordinary_packets(&mut rng, &tl, &mut kern);
    attack_packets(&mut rng, &tl, &mut kern);
    for j in &mut journals {
        ordinary_journal(&mut rng, &tl, j);
    }
    ci_builds(&mut rng, &tl, &mut journals[1]);
    attack_journal(&mut rng, &tl, &mut journals[0]);
    let mut files = Vec::new();
    for (k, j) in kern.into_iter().zip(journals) {
        files.push(k.into_file(&tl));
        files.push(j.into_file(&mut rng, &tl));
    }
    files
}

/// A node's `kern.log`.
struct Kern {
    node: usize,
    /// Time and the kernel's text; the syslog header is added when the file is written.
    lines: Vec<(i64, String)>,
}

/// Where a logged packet was seen.
enum Hook<'a> {
    /// Forwarded from a pod's veth (`cali…`) to `eth0`.
    FromPod(&'a str),
    /// Sent by the host itself.
    HostOut,
    /// Received by the host on `eth0`.
    HostIn,
}

impl Kern {
    /// Logs one packet: a TCP SYN, or a UDP datagram of `udp_len` bytes.
    #[allow(clippy::too_many_arguments)]
    fn packet(
        &mut self,
        rng: &mut SmallRng,
        t: i64,
        hook: Hook<'_>,
        src: &str,
        dst: &str,
        sport: u16,
        dport: u16,
        udp_len: Option<u16>,
    ) {
        let node_mac = mac(&format!("node/{}", NODES[self.node]));
        let (iface, ttl) = match hook {
            Hook::FromPod(pod) => (
                format!(
                    "IN=cali{} OUT=eth0 MAC=ee:ee:ee:ee:ee:ee:{}:08:00",
                    &stable_uid(&format!("veth/{pod}")).replace('-', "")[..11],
                    mac(&format!("pod/{pod}"))
                ),
                63,
            ),
            Hook::HostOut => ("IN= OUT=eth0".to_owned(), 64),
            Hook::HostIn => (
                format!("IN=eth0 OUT= MAC={node_mac}:0a:9f:3e:51:c2:07:08:00"),
                rng.random_range(44..52),
            ),
        };
        let id: u16 = rng.random();
        let rest = match udp_len {
            Some(len) => format!(
                "LEN={} TOS=0x00 PREC=0x00 TTL={ttl} ID={id} DF PROTO=UDP SPT={sport} DPT={dport} LEN={len}",
                len + 20
            ),
            None => format!(
                "LEN=60 TOS=0x00 PREC=0x00 TTL={ttl} ID={id} DF PROTO=TCP SPT={sport} DPT={dport} WINDOW={} RES=0x00 SYN URGP=0",
                if matches!(hook, Hook::HostIn) { 64240 } else { 62727 }
            ),
        };
        self.lines.push((
            t,
            format!("calico-packet: {iface} SRC={src} DST={dst} {rest}"),
        ));
    }

    fn into_file(mut self, tl: &Timeline) -> DemoLogFile {
        self.lines.retain(|(t, _)| (tl.from..=tl.end).contains(t));
        self.lines.sort_by_key(|(t, _)| *t);
        roughen(
            self.lines.iter_mut().map(|(t, _)| t),
            1_000_000,
            NODES[self.node],
        );
        let node = NODES[self.node];
        DemoLogFile {
            node: node.to_owned(),
            path: "kern.log".to_owned(),
            lines: self
                .lines
                .into_iter()
                .filter(|(t, _)| *t <= tl.end)
                .map(|(t, text)| format!("{} {node} kernel: {text}", rsyslog_time(t)))
                .collect(),
        }
    }
}

/// A locally administered MAC address, stable per name.
fn mac(name: &str) -> String {
    let uid = format!("0a{}", stable_uid(name).replace('-', ""));
    (0..6)
        .map(|i| &uid[i * 2..i * 2 + 2])
        .collect::<Vec<_>>()
        .join(":")
}

fn ephemeral(rng: &mut SmallRng) -> u16 {
    rng.random_range(32_768..61_000)
}

/// External endpoints of the demo (documentation addresses).
const TAX_API: &str = "198.51.100.80";
const GITLAB: &str = "198.51.100.10";
const GITHUB: &str = "198.51.100.113";
const SMTP: &str = "198.51.100.25";
const REGISTRY: &str = "198.51.100.30";
const CRATES: &str = "198.51.100.140";
const NTP: &str = "198.51.100.123";
const METADATA: &str = "169.254.169.254";

/// Calico logs every new connection from a pod or node to the internet.
fn ordinary_packets(rng: &mut SmallRng, tl: &Timeline, kern: &mut [Kern]) {
    let flows: [(usize, &str, &str, u16, i64); 5] = [
        (1, CART_PODS[0].0, CART_PODS[0].2, 443, 240),
        (2, CART_PODS[1].0, CART_PODS[1].2, 443, 240),
        (1, "gitlab-runner-6f7b9c8d5-k2m4x", "10.244.1.9", 443, 120),
        (2, "argocd-application-controller-0", "10.244.2.7", 443, 180),
        (2, "order-worker-7d9c5b8f4-wq2zn", WORKER_IP, 587, 300),
    ];
    for (node, pod, ip, port, mean) in flows {
        let mut t = tl.from + exp_gap(rng, mean * SEC);
        while t < tl.end {
            let dst = match (pod, port) {
                (_, 587) => SMTP,
                (p, _) if p.starts_with("cart") => TAX_API,
                (p, _) if p.starts_with("gitlab") => GITLAB,
                (p, _) if p.starts_with("argocd") => GITHUB,
                _ => *crate::logfmt::pick(rng, &[REGISTRY, CRATES]),
            };
            let sport = ephemeral(rng);
            kern[node].packet(rng, t, Hook::FromPod(pod), ip, dst, sport, port, None);
            t += exp_gap(rng, mean * SEC);
        }
    }
    // CI build pods fetch images and crates.
    for job in &tl.ci_jobs {
        for (after, dst) in [(5, REGISTRY), (11, CRATES), (12, CRATES)] {
            let sport = ephemeral(rng);
            let t = job.start + after * SEC + rng.random_range(0..900) * MS;
            kern[1].packet(
                rng,
                t,
                Hook::FromPod(&job.pod),
                &job.ip,
                dst,
                sport,
                443,
                None,
            );
        }
    }
    for (node, k) in kern.iter_mut().enumerate() {
        let mut t = tl.from + rng.random_range(0..1_000) * SEC;
        while t < tl.end {
            let sport = ephemeral(rng);
            k.packet(
                rng,
                t,
                Hook::HostOut,
                NODE_IPS[node],
                NTP,
                sport,
                123,
                Some(56),
            );
            t += rng.random_range(900..1_100) * SEC;
        }
    }
}

fn attack_packets(rng: &mut SmallRng, tl: &Timeline, kern: &mut [Kern]) {
    let (pod, _, ip) = WEB_PODS[VICTIM];
    let node_b = &mut kern[1];
    // curl to the metadata service: a SYN and its two retransmissions, all denied.
    let sport = ephemeral(rng);
    for retry in [0, 1_000, 3_000] {
        let t = tl.metadata_probe + retry * MS + rng.random_range(0..40) * MS;
        node_b.packet(rng, t, Hook::FromPod(pod), ip, METADATA, sport, 80, None);
    }
    let sport = ephemeral(rng);
    node_b.packet(
        rng,
        tl.dropper - 15 * MS,
        Hook::FromPod(pod),
        ip,
        ATTACKER_IP,
        sport,
        8000,
        None,
    );
    let mut t = tl.miner + 470 * MS;
    while t < tl.end {
        let sport = ephemeral(rng);
        node_b.packet(rng, t, Hook::FromPod(pod), ip, POOL_IP, sport, 443, None);
        t += rng.random_range(420..900) * SEC;
    }
    // node-a, from the privileged pod's host network namespace and then the host's own unit.
    let node_a = &mut kern[0];
    let host = NODE_IPS[0];
    let sport = ephemeral(rng);
    node_a.packet(
        rng,
        tl.audit.exec_start + 41 * SEC,
        Hook::HostOut,
        host,
        METADATA,
        sport,
        80,
        None,
    );
    let sport = ephemeral(rng);
    node_a.packet(
        rng,
        tl.host_download - 12 * MS,
        Hook::HostOut,
        host,
        ATTACKER_IP,
        sport,
        8000,
        None,
    );
    let mut t = tl.host_unit + 1_200 * MS;
    while t < tl.end {
        let sport = ephemeral(rng);
        node_a.packet(rng, t, Hook::HostOut, host, POOL_IP, sport, 443, None);
        t += rng.random_range(420..900) * SEC;
    }
    let sport = ephemeral(rng);
    node_a.packet(
        rng,
        tl.ssh_login - 180 * MS,
        Hook::HostIn,
        ATTACKER_IP,
        host,
        sport,
        22,
        None,
    );
}

/// The message of a journal entry: text, or bytes that `journalctl -o json` prints as an array
/// of numbers (not UTF-8, or not printable: colour codes).
enum Message {
    Text(String),
    Bytes(Vec<u8>),
}

/// Who wrote a journal entry.
#[derive(Clone, Copy)]
struct Proc<'a> {
    unit: &'a str,
    ident: &'a str,
    pid: u32,
    comm: &'a str,
    exe: &'a str,
    cmdline: &'a str,
    /// `stdout` (a service's output), `syslog`, `journal` (systemd itself).
    transport: &'a str,
    uid: u32,
}

struct Entry {
    t: i64,
    fields: Map<String, Value>,
    message: Message,
}

/// A node's journal.
struct Journal {
    node: usize,
    boot_ns: i64,
    boot_id: String,
    machine_id: String,
    entries: Vec<Entry>,
}

const SYSTEMD: Proc<'static> = Proc {
    unit: "init.scope",
    ident: "systemd",
    pid: 1,
    comm: "systemd",
    exe: "/usr/lib/systemd/systemd",
    cmdline: "/sbin/init",
    transport: "journal",
    uid: 0,
};
const KUBELET: Proc<'static> = Proc {
    unit: "kubelet.service",
    ident: "kubelet",
    pid: 1498,
    comm: "kubelet",
    exe: "/usr/bin/kubelet",
    cmdline: "/usr/bin/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml --container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
    transport: "stdout",
    uid: 0,
};
const CONTAINERD: Proc<'static> = Proc {
    unit: "containerd.service",
    ident: "containerd",
    pid: 812,
    comm: "containerd",
    exe: "/usr/bin/containerd",
    cmdline: "/usr/bin/containerd",
    transport: "stdout",
    uid: 0,
};
const LOGIND: Proc<'static> = Proc {
    unit: "systemd-logind.service",
    ident: "systemd-logind",
    pid: 702,
    comm: "systemd-logind",
    exe: "/usr/lib/systemd/systemd-logind",
    cmdline: "/usr/lib/systemd/systemd-logind",
    transport: "journal",
    uid: 0,
};

impl Journal {
    fn new(node: usize, end: i64) -> Self {
        let name = NODES[node];
        Journal {
            node,
            boot_ns: end - (19 * 24 * 3600 + node as i64 * 3 * 3600 + 1_234) * SEC,
            boot_id: stable_uid(&format!("boot/{name}")).replace('-', ""),
            machine_id: stable_uid(&format!("machine/{name}")).replace('-', ""),
            entries: Vec::new(),
        }
    }

    fn log(&mut self, t: i64, p: Proc<'_>, priority: u8, message: Message) {
        let mut f = Map::new();
        let s = |v: &str| Value::String(v.to_owned());
        f.insert("_SYSTEMD_UNIT".into(), s(p.unit));
        f.insert("SYSLOG_IDENTIFIER".into(), s(p.ident));
        f.insert("_PID".into(), s(&p.pid.to_string()));
        f.insert("_UID".into(), s(&p.uid.to_string()));
        f.insert("_GID".into(), s(&p.uid.to_string()));
        f.insert("_COMM".into(), s(p.comm));
        f.insert("_EXE".into(), s(p.exe));
        f.insert("_CMDLINE".into(), s(p.cmdline));
        f.insert("_TRANSPORT".into(), s(p.transport));
        f.insert("PRIORITY".into(), s(&priority.to_string()));
        let slice = if p.unit.ends_with(".scope") && p.unit.starts_with("session-") {
            "user-0.slice"
        } else {
            "system.slice"
        };
        f.insert("_SYSTEMD_SLICE".into(), s(slice));
        f.insert("_SYSTEMD_CGROUP".into(), s(&format!("/{slice}/{}", p.unit)));
        f.insert(
            "SYSLOG_FACILITY".into(),
            s(if p.ident == "sshd" { "4" } else { "3" }),
        );
        if p.transport == "syslog" {
            f.insert("SYSLOG_PID".into(), s(&p.pid.to_string()));
            f.insert(
                "SYSLOG_TIMESTAMP".into(),
                s(&DateTime::from_timestamp_nanos(t)
                    .format("%b %e %H:%M:%S ")
                    .to_string()),
            );
        }
        self.entries.push(Entry {
            t,
            fields: f,
            message,
        });
    }

    fn text(&mut self, t: i64, p: Proc<'_>, priority: u8, message: impl Into<String>) {
        self.log(t, p, priority, Message::Text(message.into()));
    }

    fn kubelet(&mut self, t: i64, source: &str, message: &str) {
        let line = format!("{}{message}", klog('I', t, KUBELET.pid, source));
        self.text(t, KUBELET, 6, line);
    }

    fn containerd(&mut self, t: i64, message: &str) {
        let line = format!(
            "time=\"{}\" level=info msg={}",
            rfc3339_nano(t),
            go_quote(message)
        );
        self.text(t, CONTAINERD, 6, line);
    }

    fn into_file(mut self, rng: &mut SmallRng, tl: &Timeline) -> DemoLogFile {
        self.entries.sort_by_key(|e| e.t);
        roughen(
            self.entries.iter_mut().map(|e| &mut e.t),
            400_000,
            NODES[self.node],
        );
        self.entries.retain(|e| (tl.from..=tl.end).contains(&e.t));
        let seqnum_id = stable_uid(&format!("seqnum/{}", NODES[self.node])).replace('-', "");
        let mut seq: u64 = 1_800_000 + rng.random_range(0..200_000);
        let mut lines = Vec::with_capacity(self.entries.len());
        for e in self.entries {
            seq += 1;
            let real_us = e.t / 1_000;
            let mono_us = (e.t - self.boot_ns) / 1_000;
            let mut f = e.fields;
            let s = |v: String| Value::String(v);
            f.insert(
                "__CURSOR".into(),
                s(format!(
                    "s={seqnum_id};i={seq:x};b={};m={mono_us:x};t={real_us:x};x={}",
                    self.boot_id,
                    hex(rng, 16)
                )),
            );
            f.insert("__REALTIME_TIMESTAMP".into(), s(real_us.to_string()));
            f.insert("__MONOTONIC_TIMESTAMP".into(), s(mono_us.to_string()));
            f.insert("__SEQNUM".into(), s(seq.to_string()));
            f.insert("__SEQNUM_ID".into(), s(seqnum_id.clone()));
            f.insert("_BOOT_ID".into(), s(self.boot_id.clone()));
            f.insert("_MACHINE_ID".into(), s(self.machine_id.clone()));
            f.insert("_HOSTNAME".into(), s(NODES[self.node].to_owned()));
            let message = match e.message {
                Message::Text(t) => Value::String(t),
                Message::Bytes(b) => Value::Array(b.into_iter().map(Value::from).collect()),
            };
            f.insert("MESSAGE".into(), message);
            lines.push(Value::Object(f).to_string());
        }
        DemoLogFile {
            node: NODES[self.node].to_owned(),
            path: "journal.json".to_owned(),
            lines,
        }
    }
}

/// Go's `%q`, as logrus quotes `msg`: double quotes, `"` and `\` escaped.
fn go_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Timers, cron and NTP: what every node's journal has.
fn ordinary_journal(rng: &mut SmallRng, tl: &Timeline, j: &mut Journal) {
    let mut t = tl.from - tl.from % (600 * SEC) + 600 * SEC + rng.random_range(0..3) * SEC;
    while t < tl.end {
        j.text(
            t,
            SYSTEMD,
            6,
            "Starting sysstat-collect.service - system activity accounting tool...",
        );
        let done = t + rng.random_range(20..90) * MS;
        j.text(
            done,
            SYSTEMD,
            6,
            "sysstat-collect.service: Deactivated successfully.",
        );
        j.text(
            done + 200_000,
            SYSTEMD,
            6,
            "Finished sysstat-collect.service - system activity accounting tool.",
        );
        t += 600 * SEC;
    }
    // cron.hourly at minute 17.
    let hour = 3_600 * SEC;
    let mut t = tl.from - tl.from % hour + 17 * 60 * SEC;
    while t < tl.end {
        let pid = rng.random_range(40_000..90_000);
        let cron = Proc {
            unit: "cron.service",
            ident: "CRON",
            pid,
            comm: "cron",
            exe: "/usr/sbin/cron",
            cmdline: "/usr/sbin/CRON -f -P",
            transport: "syslog",
            uid: 0,
        };
        j.text(
            t,
            cron,
            6,
            "pam_unix(cron:session): session opened for user root(uid=0) by root(uid=0)",
        );
        j.text(
            t + 2 * MS,
            cron,
            6,
            "(root) CMD (   cd / && run-parts --report /etc/cron.hourly)",
        );
        j.text(
            t + 40 * MS,
            cron,
            6,
            "pam_unix(cron:session): session closed for user root",
        );
        t += hour;
    }
    let chrony = Proc {
        unit: "chrony.service",
        ident: "chronyd",
        pid: 688,
        comm: "chronyd",
        exe: "/usr/sbin/chronyd",
        cmdline: "/usr/sbin/chronyd -F 1",
        transport: "syslog",
        uid: 118,
    };
    let at = tl.from + rng.random_range(0..3_500) * SEC;
    j.text(
        at,
        chrony,
        6,
        format!("Selected source {NTP} (ntp.ubuntu.com)"),
    );
    // The kubelet's readiness probes fail when the cart's database is slow.
    if let Some((pod, _, ip)) = CART_PODS.iter().find(|p| p.1 == j.node) {
        for _ in 0..rng.random_range(1..4) {
            let at = tl.from + rng.random_range(0..3_500) * SEC;
            j.kubelet(
                at,
                "prober.go:107",
                &format!(
                    "\"Probe failed\" probeType=\"Readiness\" pod=\"shop/{pod}\" podUID=\"{}\" containerName=\"cart\" probeResult=\"failure\" output=\"Get \\\"http://{ip}:8080/healthz\\\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)\"",
                    stable_uid(&format!("pod/{pod}"))
                ),
            );
        }
    }
}

/// The GitLab runner's build pods start and stop on node-b.
fn ci_builds(rng: &mut SmallRng, tl: &Timeline, j: &mut Journal) {
    for job in &tl.ci_jobs {
        let (t, pod) = (job.start, &job.pod);
        let uid = stable_uid(&format!("pod/{pod}"));
        let sandbox = hex(rng, 64);
        j.kubelet(
            t,
            "kubelet.go:2407",
            &format!("\"SyncLoop ADD\" source=\"api\" pods=[\"ci/{pod}\"]"),
        );
        let meta = format!("&PodSandboxMetadata{{Name:{pod},Uid:{uid},Namespace:ci,Attempt:0,}}");
        j.containerd(t + 150 * MS, &format!("RunPodSandbox for {meta}"));
        j.containerd(
            t + 420 * MS,
            &format!("RunPodSandbox for {meta} returns sandbox id \"{sandbox}\""),
        );
        let mut at = t + 500 * MS;
        for name in ["build", "helper"] {
            let id = hex(rng, 64);
            j.containerd(at, &format!("CreateContainer within sandbox \"{sandbox}\" for container &ContainerMetadata{{Name:{name},Attempt:0,}}"));
            j.containerd(at + 60 * MS, &format!("CreateContainer within sandbox \"{sandbox}\" for &ContainerMetadata{{Name:{name},Attempt:0,}} returns container id \"{id}\""));
            j.containerd(at + 70 * MS, &format!("StartContainer for \"{id}\""));
            j.containerd(
                at + 160 * MS,
                &format!("StartContainer for \"{id}\" returns successfully"),
            );
            at += 300 * MS;
        }
        let done = job.end;
        j.kubelet(
            done,
            "kubelet.go:2423",
            &format!("\"SyncLoop DELETE\" source=\"api\" pods=[\"ci/{pod}\"]"),
        );
        j.containerd(done + 2 * SEC, &format!("StopPodSandbox for \"{sandbox}\""));
        j.containerd(
            done + 2 * SEC + 90 * MS,
            &format!("TearDown network for sandbox \"{sandbox}\" successfully"),
        );
        j.containerd(
            done + 2 * SEC + 140 * MS,
            &format!("StopPodSandbox for \"{sandbox}\" returns successfully"),
        );
    }
}

/// XMRig's console line with its colours, as the host's journal keeps it.
fn colour(t: i64, tag: &str, text: &str) -> Vec<u8> {
    format!("{} \x1b[1;37m{tag:<8}\x1b[0m {text}", xmrig_time(t)).into_bytes()
}

/// node-a: the privileged pod, the exec session's changes to the host, SSH.
fn attack_journal(rng: &mut SmallRng, tl: &Timeline, j: &mut Journal) {
    let a = &tl.audit;
    let pod = "debug-x7k2";
    let uid = &a.debug_pod_uid;
    let t = a.debug_pod_created + 42 * MS;
    let sandbox = hex(rng, 64);
    let container = hex(rng, 64);
    j.kubelet(
        t,
        "kubelet.go:2407",
        &format!("\"SyncLoop ADD\" source=\"api\" pods=[\"default/{pod}\"]"),
    );
    j.kubelet(
        t + 31 * MS,
        "reconciler_common.go:245",
        &format!("\"operationExecutor.VerifyControllerAttachedVolume started for volume \\\"host\\\" (UniqueName: \\\"kubernetes.io/host-path/{uid}-host\\\") pod \\\"{pod}\\\" (UID: \\\"{uid}\\\") \" pod=\"default/{pod}\""),
    );
    let meta = format!("&PodSandboxMetadata{{Name:{pod},Uid:{uid},Namespace:default,Attempt:0,}}");
    j.containerd(t + 180 * MS, &format!("RunPodSandbox for {meta}"));
    j.containerd(
        t + 251 * MS,
        &format!("RunPodSandbox for {meta} returns sandbox id \"{sandbox}\""),
    );
    j.containerd(t + 262 * MS, "PullImage \"alpine:3.20\"");
    j.containerd(
        t + 1_904 * MS,
        &format!(
            "PullImage \"alpine:3.20\" returns image reference \"sha256:{}\"",
            hex(rng, 64)
        ),
    );
    j.containerd(t + 1_921 * MS, &format!("CreateContainer within sandbox \"{sandbox}\" for container &ContainerMetadata{{Name:debug,Attempt:0,}}"));
    j.containerd(t + 1_984 * MS, &format!("CreateContainer within sandbox \"{sandbox}\" for &ContainerMetadata{{Name:debug,Attempt:0,}} returns container id \"{container}\""));
    j.containerd(
        t + 1_990 * MS,
        &format!("StartContainer for \"{container}\""),
    );
    j.containerd(
        t + 2_087 * MS,
        &format!("StartContainer for \"{container}\" returns successfully"),
    );
    j.kubelet(
        t + 2_905 * MS,
        "kubelet.go:2439",
        &format!("\"SyncLoop (PLEG): event for pod\" pod=\"default/{pod}\" event={{\"ID\":\"{uid}\",\"Type\":\"ContainerStarted\",\"Data\":\"{container}\"}}"),
    );

    // In the exec session: nsenter into the host, install and start a unit running the miner.
    let unit_pid = rng.random_range(90_000..120_000);
    let ctl_pid = unit_pid - rng.random_range(3..40);
    let reload = tl.host_unit - 1_400 * MS;
    j.text(
        reload,
        SYSTEMD,
        6,
        format!("Reloading requested from client PID {ctl_pid} ('systemctl') (unit cri-containerd-{container}.scope)..."),
    );
    j.text(reload + MS, SYSTEMD, 6, "Reloading...");
    j.text(
        reload + 214 * MS,
        SYSTEMD,
        6,
        "Reloading finished in 213 ms.",
    );
    j.text(
        reload + 240 * MS,
        SYSTEMD,
        4,
        "/etc/systemd/system/kube-node-helper.service:9: Unknown key name 'StartLimitIntervalSec' in section 'Service', ignoring.",
    );
    j.text(
        tl.host_unit,
        SYSTEMD,
        6,
        "Started kube-node-helper.service - Kubernetes node helper.",
    );
    let miner = Proc {
        unit: "kube-node-helper.service",
        ident: "kswapd0",
        pid: unit_pid,
        comm: "kswapd0",
        exe: "/usr/local/lib/.cache/kswapd0",
        cmdline: "/usr/local/lib/.cache/kswapd0 -o pool.supportxmr.com:443 --tls -k --cpu-max-threads-hint=75",
        transport: "stdout",
        uid: 0,
    };
    let mut t = tl.host_unit + 30 * MS;
    for (tag, text) in [
        ("ABOUT", "\x1b[1;36mXMRig/6.21.0\x1b[0m gcc/10.2.1"),
        (
            "CPU",
            "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz (1) 64-bit AES",
        ),
        (
            "POOL #1",
            "\x1b[1;36mpool.supportxmr.com:443\x1b[0m algo auto",
        ),
    ] {
        j.log(
            t,
            miner,
            6,
            Message::Bytes(format!(" * \x1b[1;37m{tag:<12}\x1b[0m{text}").into_bytes()),
        );
        t += 20_000;
    }
    let t = tl.host_unit + 1_300 * MS;
    j.log(
        t,
        miner,
        6,
        Message::Bytes(colour(
            t,
            "net",
            &format!(
                "use pool \x1b[1;36mpool.supportxmr.com:443\x1b[0m \x1b[1;30m{POOL_IP}\x1b[0m"
            ),
        )),
    );
    let mut minute = t + 60 * SEC;
    while minute < tl.end {
        let speed = 2_380.0 + rng.random_range(0..700) as f64 / 10.0;
        let text = format!("speed 10s/60s/15m \x1b[1;36m{speed:.1}\x1b[0m \x1b[0;36m{:.1}\x1b[0m \x1b[0;36mn/a\x1b[0m \x1b[1;36mH/s\x1b[0m max \x1b[1;36m{:.1} H/s\x1b[0m", speed - 4.1, speed + 37.9);
        j.log(
            minute,
            miner,
            6,
            Message::Bytes(colour(minute, "miner", &text)),
        );
        minute += 60 * SEC;
    }

    // SSH with the key the attacker added to /root/.ssh/authorized_keys.
    let port = ephemeral(rng);
    let session = rng.random_range(12..40);
    let sshd = Proc {
        unit: "ssh.service",
        ident: "sshd",
        pid: unit_pid + rng.random_range(2_000..9_000),
        comm: "sshd",
        exe: "/usr/sbin/sshd",
        cmdline: "sshd: root [priv]",
        transport: "syslog",
        uid: 0,
    };
    let scope = format!("session-{session}.scope");
    let t = tl.ssh_login;
    j.text(
        t,
        sshd,
        6,
        format!(
            "Accepted publickey for root from {ATTACKER_IP} port {port} ssh2: ED25519 SHA256:{}",
            chars(
                rng,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                43
            )
        ),
    );
    j.text(
        t + 9 * MS,
        sshd,
        6,
        "pam_unix(sshd:session): session opened for user root(uid=0) by root(uid=0)",
    );
    j.text(
        t + 14 * MS,
        LOGIND,
        6,
        format!("New session {session} of user root."),
    );
    j.text(
        t + 21 * MS,
        SYSTEMD,
        6,
        format!("Started {scope} - Session {session} of User root."),
    );
    let t = tl.ssh_logout;
    j.text(
        t,
        sshd,
        6,
        format!("Received disconnect from {ATTACKER_IP} port {port}:11: disconnected by user"),
    );
    j.text(
        t + MS,
        sshd,
        6,
        format!("Disconnected from user root {ATTACKER_IP} port {port}"),
    );
    j.text(
        t + 3 * MS,
        sshd,
        6,
        "pam_unix(sshd:session): session closed for user root",
    );
    j.text(
        t + 8 * MS,
        LOGIND,
        6,
        format!("Session {session} logged out. Waiting for processes to exit."),
    );
    j.text(
        t + 12 * MS,
        SYSTEMD,
        6,
        format!("{scope}: Deactivated successfully."),
    );
    j.text(
        t + 15 * MS,
        LOGIND,
        6,
        format!("Removed session {session}."),
    );
}
