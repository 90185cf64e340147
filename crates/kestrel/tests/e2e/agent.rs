//! The node agent end to end: `kestrel agent` child processes tail pod log files written by the
//! test and ship them to a real server. Every line must be stored exactly once through agent
//! crashes (`kill -9`), a server outage, and a full disk buffer.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::Rng;

use crate::harness::{wait_for, TestServer, KESTREL};

/// A `kestrel agent` child process, killed when dropped.
pub struct TestAgent {
    config: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl TestAgent {
    pub fn start(config: &Path) -> TestAgent {
        TestAgent::start_with_args(config, &[])
    }

    /// Starts `kestrel agent -c CONFIG ARGS...`.
    pub fn start_with_args(config: &Path, args: &[&str]) -> TestAgent {
        let mut agent = TestAgent {
            config: config.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            log: config.with_extension("log"),
            child: None,
        };
        agent.launch();
        agent
    }

    fn launch(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open agent log");
        let child = Command::new(KESTREL)
            .arg("agent")
            .arg("-c")
            .arg(&self.config)
            .args(&self.args)
            .env_remove("KESTREL_TOKEN")
            .env("KESTREL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn kestrel agent");
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("agent running");
        child.kill().expect("SIGKILL the agent");
        child.wait().expect("reap the agent");
    }

    pub fn restart(&mut self) {
        self.launch();
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A free TCP port on 127.0.0.1 (the server must come back on the same address).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes an agent configuration for `pods` (and `more_inputs`, YAML list items) shipping to
/// `url`; `extra` is appended (top-level keys).
fn agent_config(
    dir: &Path,
    url: &str,
    token: &str,
    pods: &Path,
    more_inputs: &str,
    extra: &str,
) -> PathBuf {
    let token_file = dir.join("agent.token");
    fs::write(&token_file, token).unwrap();
    let config = dir.join("agent.yaml");
    fs::write(
        &config,
        format!(
            "server:\n  url: {url}\n  token_file: {}\n  max_backoff: 500ms\n\
             data_dir: {}\nlisten: null\ninputs:\n  - type: pod_logs\n    path: {}\n    scan_interval: 200ms\n    max_line_bytes: 1024\n{more_inputs}\
             batch:\n  max_bytes: 8192\n{extra}",
            token_file.display(),
            dir.join("agent-data").display(),
            pods.display(),
        ),
    )
    .unwrap();
    config
}

/// Appends CRI lines `<tag> <n>` to a pod's log, rotating it the way kubelet does (rename to
/// `0.log.<time>`, new `0.log`) every `rotate_every` lines.
struct PodLogWriter {
    dir: PathBuf,
    file: File,
    written: u64,
    rotations: u64,
}

impl PodLogWriter {
    fn new(pods: &Path, namespace: &str, pod: &str, container: &str) -> PodLogWriter {
        let dir = pods
            .join(format!("{namespace}_{pod}_{}", uuid_like(pod)))
            .join(container);
        fs::create_dir_all(&dir).unwrap();
        let file = File::create(dir.join("0.log")).unwrap();
        PodLogWriter {
            dir,
            file,
            written: 0,
            rotations: 0,
        }
    }

    fn write(&mut self, tag: &str, n: u64) {
        let line = format!(
            "2026-11-20T09:00:{:02}.{:09}Z stdout F {tag} {n:08} padding-to-make-lines-longer\n",
            n % 60,
            n
        );
        self.file.write_all(line.as_bytes()).unwrap();
        self.written += 1;
    }

    fn rotate(&mut self) {
        self.rotations += 1;
        fs::rename(
            self.dir.join("0.log"),
            self.dir
                .join(format!("0.log.20261120-0900{:02}", self.rotations)),
        )
        .unwrap();
        self.file = File::create(self.dir.join("0.log")).unwrap();
    }
}

fn uuid_like(seed: &str) -> String {
    let h = seed
        .bytes()
        .fold(7u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        h as u32,
        h & 0xffff_ffff_ffff
    )
}

async fn wait_for_count(server: &TestServer, expected: u64, agent: &TestAgent) {
    let sql = "SELECT count(*) FROM container_log";
    wait_for("every line to reach the server", async || {
        let n = server.count(sql).await;
        assert!(
            n <= expected,
            "more rows ({n}) than lines written ({expected}): duplicates; agent log:\n{}",
            agent.log_text()
        );
        (n == expected).then_some(())
    })
    .await;
}

async fn assert_each_line_once(server: &TestServer, expected: u64) {
    let rows = server
        .query("SELECT count(*), count(DISTINCT message) FROM container_log")
        .await;
    assert_eq!(rows[0][0], expected, "rows");
    assert_eq!(rows[0][1], expected, "distinct lines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_arrives_once_through_twenty_agent_kills_and_rotations() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(&tmp.path().join("server")).await;
    let token = server.create_token("ingest", "agent-node-1");
    let pods = tmp.path().join("pods");
    let config = agent_config(tmp.path(), &server.url, &token, &pods, "", "");
    let mut writers = [
        PodLogWriter::new(&pods, "shop", "web-1", "nginx"),
        PodLogWriter::new(&pods, "shop", "api-1", "api"),
        PodLogWriter::new(&pods, "batch", "job-1", "worker"),
    ];
    let mut agent = TestAgent::start(&config);
    let mut rng = rand::rng();
    let mut n = 0u64;
    for round in 0..20 {
        for _ in 0..rng.random_range(200..600) {
            let w = rng.random_range(0..writers.len());
            writers[w].write("kill-test", n);
            n += 1;
            if n.is_multiple_of(997) {
                writers[w].rotate();
            }
        }
        // Let the agent read and send some of it, then crash it at a random moment.
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..300))).await;
        agent.kill9();
        if round % 5 == 4 {
            // Rotate while the agent is down, too.
            writers[round % 3].rotate();
        }
        agent.restart();
    }
    wait_for_count(&server, n, &agent).await;
    assert_each_line_once(&server, n).await;
    // The path gave every row its pod identity.
    let rows = server
        .query("SELECT namespace, pod, container, count(*) FROM container_log GROUP BY 1, 2, 3 ORDER BY 1, 2")
        .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0][0], "batch");
    assert_eq!(rows[0][2], "worker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_minute_server_outage_is_buffered_and_delivered_once() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server =
        TestServer::start_on(&tmp.path().join("server"), &format!("127.0.0.1:{port}")).await;
    let token = server.create_token("ingest", "agent-node-1");
    let pods = tmp.path().join("pods");
    let config = agent_config(tmp.path(), &server.url, &token, &pods, "", "");
    let mut w = PodLogWriter::new(&pods, "shop", "web-1", "nginx");
    let agent = TestAgent::start(&config);
    let mut n = 0u64;
    for _ in 0..500 {
        w.write("outage", n);
        n += 1;
    }
    wait_for_count(&server, n, &agent).await;

    server.kill9();
    // Two minutes of writing with the server down: the agent keeps reading into its buffer.
    let outage = std::time::Instant::now();
    while outage.elapsed() < Duration::from_secs(120) {
        for _ in 0..50 {
            w.write("outage", n);
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let buffer_dir = tmp.path().join("agent-data").join("buffer");
    let buffered: u64 = fs::read_dir(&buffer_dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(buffered > 0, "the agent buffered nothing during the outage");

    server.restart().await;
    wait_for_count(&server, n, &agent).await;
    assert_each_line_once(&server, n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_buffer_pauses_reading_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server =
        TestServer::start_on(&tmp.path().join("server"), &format!("127.0.0.1:{port}")).await;
    let token = server.create_token("ingest", "agent-node-1");
    let pods = tmp.path().join("pods");
    let config = agent_config(
        tmp.path(),
        &server.url,
        &token,
        &pods,
        "",
        "buffer:\n  max_bytes: 16384\n  segment_bytes: 4096\n",
    );
    let mut w = PodLogWriter::new(&pods, "shop", "web-1", "nginx");
    let agent = TestAgent::start(&config);
    server.kill9();
    // Far more than 16 KiB of compressed batches: the buffer fills and reading stops.
    let mut n = 0u64;
    for _ in 0..40_000 {
        w.write("full", n);
        n += 1;
    }
    let buffer_dir = tmp.path().join("agent-data").join("buffer");
    let buffered = || -> u64 {
        fs::read_dir(&buffer_dir)
            .map(|d| d.map(|e| e.unwrap().metadata().unwrap().len()).sum())
            .unwrap_or(0)
    };
    wait_for("the buffer to fill", async || {
        (buffered() > 8192).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let full = buffered();
    assert!(
        full <= 16384 + 8192,
        "the buffer grew past its bound: {full} bytes"
    );
    server.restart().await;
    wait_for_count(&server, n, &agent).await;
    assert_each_line_once(&server, n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_files_are_redacted_on_the_node_and_kern_log_packets_become_netflow() {
    use crate::events::{audit_event, ALICE};
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(&tmp.path().join("server")).await;
    let token = server.create_token("ingest", "agent-cp-1");
    let audit_dir = tmp.path().join("audit");
    fs::create_dir_all(&audit_dir).unwrap();
    // A Secret created with a value, a normal read, and a line that is not JSON.
    let mut secret = audit_event(
        "a-1",
        "ResponseComplete",
        "create",
        ALICE,
        "secrets",
        "shop",
        "db",
    );
    secret["level"] = serde_json::json!("Request");
    secret["requestObject"] = serde_json::json!({
        "kind": "Secret", "apiVersion": "v1",
        "metadata": {"name": "db", "namespace": "shop"},
        "data": {"password": "aHVudGVyMi1zdXBlcnNlY3JldA=="},
    });
    let read = audit_event(
        "a-2",
        "ResponseComplete",
        "get",
        ALICE,
        "pods",
        "shop",
        "web-1",
    );
    let secret_text = secret.to_string();
    let cut = &secret_text[..secret_text.len() - 40];
    assert!(cut.contains("aHVudGVyMi1zdXBlcnNlY3JldA=="));
    fs::write(
        audit_dir.join("audit.log"),
        // The last line is the Secret's event cut short, as a crash of the API server leaves it.
        format!("{secret}\n{read}\n{cut}\n"),
    )
    .unwrap();
    let kern_log = tmp.path().join("kern.log");
    let raw = fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/netfilter/kern.log"
    ))
    .unwrap();
    fs::write(&kern_log, &raw).unwrap();
    let sample = String::from_utf8_lossy(&raw);
    let packets = sample
        .lines()
        .filter(|l| l.contains(" kernel: ") && l.contains("IN=") && l.contains("SRC="))
        .count() as u64;
    assert!(packets > 5);

    let pods = tmp.path().join("pods");
    fs::create_dir_all(&pods).unwrap();
    // Audit events are up to 4 MiB by default: batches must hold one.
    let config = agent_config(
        tmp.path(),
        &server.url,
        &token,
        &pods,
        &format!(
            "  - type: audit_files\n    path: {}/*.log\n    max_line_bytes: 65536\n  - type: kern_log\n    path: {}\n",
            audit_dir.display(),
            kern_log.display()
        ),
        "",
    );
    let text = fs::read_to_string(&config)
        .unwrap()
        .replace("max_bytes: 8192", "max_bytes: 1048576");
    fs::write(&config, text).unwrap();
    let agent = TestAgent::start(&config);
    wait_for("audit events and packets", async || {
        let a = server.count("SELECT count(*) FROM audit").await;
        let n = server.count("SELECT count(*) FROM netflow").await;
        let bad_audit = server
            .count("SELECT count(*) FROM dead_letter WHERE source = 'audit_file'")
            .await;
        // The sample holds one packet line with a port out of range: kept aside, counted.
        let bad_packets = server
            .count("SELECT count(*) FROM dead_letter WHERE source = 'kern_log'")
            .await;
        (a == 2 && bad_audit == 1 && n + bad_packets == packets && bad_packets == 1).then_some(())
    })
    .await;
    let rows = server
        .query("SELECT request_object FROM audit WHERE audit_id = 'a-1'")
        .await;
    let object = rows[0][0].as_str().unwrap();
    assert!(!object.contains("aHVudGVyMi1zdXBlcnNlY3JldA=="), "{object}");
    assert!(object.contains("<redacted>"), "{object}");
    let rows = server
        .query("SELECT payload, source FROM dead_letter WHERE source = 'audit_file'")
        .await;
    assert!(
        !rows[0][0]
            .as_str()
            .unwrap()
            .contains("aHVudGVyMi1zdXBlcnNlY3JldA=="),
        "{rows:?}; agent log:\n{}",
        agent.log_text()
    );
    let rows = server
        .query("SELECT prefix, src_ip, dst_ip, dst_port FROM netflow WHERE dst_ip = '169.254.169.254' LIMIT 1")
        .await;
    assert_eq!(rows[0][0], "calico-packet:");
    assert_eq!(rows[0][1], "10.244.1.7");
}
