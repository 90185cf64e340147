//! The agent's inputs that are not files, end to end into a real server: the systemd journal
//! (real journal files written by `systemd-journal-remote`, followed by the real `journalctl`),
//! the kernel log (`kmsg` records, from a file here) and, in cluster mode, Kubernetes events.
//! Each goes through `kill -9` of the agent and must be stored exactly once.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::{json, Value};

use crate::agent::TestAgent;
use crate::harness::{wait_for, TestServer};

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// Appends entries `(unit, message)` to `<dir>/node.journal`, a real journal file.
fn append_journal(dir: &Path, entries: &[(&str, String)]) {
    let mut export = String::new();
    for (unit, message) in entries {
        let us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros();
        export.push_str(&format!(
            "__REALTIME_TIMESTAMP={us}\n__MONOTONIC_TIMESTAMP={us}\n\
             _BOOT_ID=6d7e8f90a1b24c3d9e8f7a6b5c4d3e2f\n_SYSTEMD_UNIT={unit}\n\
             SYSLOG_IDENTIFIER={}\nPRIORITY=6\n_HOSTNAME=node-1\nMESSAGE={message}\n\n",
            unit.trim_end_matches(".service")
        ));
    }
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", dir.join("node.journal").display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run systemd-journal-remote");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(export.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn kmsg_packet(seq: u64) -> String {
    format!(
        "4,{seq},{},-;calico-packet: IN=cali1a2b OUT=eth0 SRC=10.244.1.17 DST=10.96.0.10 LEN=60 \
         TOS=0x00 PREC=0x00 TTL=63 ID={seq} DF PROTO=TCP SPT={} DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0\n",
        1_000_000 + seq,
        10_000 + seq
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_entries_and_kernel_packets_are_stored_once_through_agent_kills() {
    if !Path::new(JOURNAL_REMOTE).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{JOURNAL_REMOTE} is missing (apt-get install systemd-journal-remote)"
        );
        eprintln!("skipped: {JOURNAL_REMOTE} is missing (apt-get install systemd-journal-remote)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(&tmp.path().join("server")).await;
    let token = server.create_token("ingest", "agent-node-1");
    let journal = tmp.path().join("journal");
    fs::create_dir_all(&journal).unwrap();
    let kmsg = tmp.path().join("kmsg.txt");
    fs::write(&kmsg, "").unwrap();
    let token_file = tmp.path().join("agent.token");
    fs::write(&token_file, &token).unwrap();
    let config = tmp.path().join("agent.yaml");
    fs::write(
        &config,
        format!(
            "server:\n  url: {}\n  token_file: {}\n  max_backoff: 500ms\n\
             data_dir: {}\nname: node-1\nlisten: null\n\
             inputs:\n  - type: journal\n    directory: {}\n    units: [kubelet.service]\n\
             \x20   start_at: beginning\n    max_batch_wait: 100ms\n\
             \x20 - type: kmsg\n    path: {}\n    start_at: beginning\n    max_batch_wait: 100ms\n\
             batch:\n  max_bytes: 8192\n",
            server.url,
            token_file.display(),
            tmp.path().join("agent-data").display(),
            journal.display(),
            kmsg.display()
        ),
    )
    .unwrap();
    // journalctl refuses a directory without journal files: the agent starts after the first
    // round is written (it would retry with backoff until then).
    let mut agent: Option<TestAgent> = None;
    let rounds = 5u64;
    let per_round = 40u64;
    for round in 0..rounds {
        let entries: Vec<(&str, String)> = (0..per_round)
            .flat_map(|i| {
                [
                    ("kubelet.service", format!("kubelet {round}-{i}")),
                    ("sshd.service", format!("sshd {round}-{i}")),
                ]
            })
            .collect();
        append_journal(&journal, &entries);
        let mut f = fs::OpenOptions::new().append(true).open(&kmsg).unwrap();
        for i in 0..per_round {
            let n = round * per_round + i;
            f.write_all(kmsg_packet(2 * n).as_bytes()).unwrap();
            f.write_all(format!("6,{},1,-;other kernel message\n", 2 * n + 1).as_bytes())
                .unwrap();
        }
        drop(f);
        let agent = agent.get_or_insert_with(|| TestAgent::start(&config));
        // Kill the agent while it is shipping this round, then start it again.
        let shipped = (round + 1) * per_round / 2;
        wait_for("some of this round to arrive", async || {
            (server.count("SELECT count(*) FROM journal").await >= shipped).then_some(())
        })
        .await;
        agent.kill9();
        agent.restart();
    }
    let total = rounds * per_round;
    wait_for("every journal entry and packet", async || {
        let j = server.count("SELECT count(*) FROM journal").await;
        let n = server.count("SELECT count(*) FROM netflow").await;
        (j >= total && n >= total).then_some(())
    })
    .await;
    let rows = server
        .query("SELECT count(*), count(DISTINCT message), count(DISTINCT cursor) FROM journal")
        .await;
    assert_eq!(
        rows[0],
        [json!(total), json!(total), json!(total)],
        "agent log:\n{}",
        agent.as_ref().unwrap().log_text()
    );
    assert_eq!(
        server
            .count("SELECT count(*) FROM journal WHERE unit <> 'kubelet.service'")
            .await,
        0
    );
    let rows = server
        .query("SELECT count(*), count(DISTINCT src_port) FROM netflow")
        .await;
    assert_eq!(rows[0], [json!(total), json!(total)]);
}

/// The API server's events, answered as it does: an `EventList` for a list, and for a watch
/// from resourceVersion N the `ADDED` events after N (then the response ends; the watch is
/// renewed from the last resourceVersion, as after an API server's watch timeout).
#[derive(Default)]
struct FakeEvents {
    events: Mutex<Vec<Value>>,
    requests: Mutex<u64>,
}

fn k8s_event(i: usize) -> Value {
    json!({
        "kind": "Event", "apiVersion": "events.k8s.io/v1",
        "metadata": {"name": format!("web-1.{i:04}"), "namespace": "shop", "uid": format!("uid-{i}"),
            "resourceVersion": (i + 1).to_string(), "creationTimestamp": "2026-11-23T10:00:00Z"},
        "eventTime": "2026-11-23T10:00:01.000000Z",
        "reportingController": "kubelet", "reportingInstance": "node-1",
        "action": "Killing", "reason": if i.is_multiple_of(2) { "BackOff" } else { "Killing" },
        "type": "Warning", "note": format!("event {i}"),
        "regarding": {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "uid-web",
            "apiVersion": "v1"}
    })
}

async fn events_api(
    State(state): State<Arc<FakeEvents>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    *state.requests.lock().unwrap() += 1;
    let events = state.events.lock().unwrap().clone();
    let latest = events.len().to_string();
    let body = if query.get("watch").map(String::as_str) == Some("true") {
        let from: usize = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // An open watch waits a moment for news before it ends, as a real one would wait.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        events
            .iter()
            .skip(from)
            .map(|e| format!("{}\n", json!({"type": "ADDED", "object": e})))
            .collect::<String>()
    } else {
        json!({"kind": "EventList", "apiVersion": "events.k8s.io/v1",
               "metadata": {"resourceVersion": latest}, "items": events})
        .to_string()
    };
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

fn kubeconfig(dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster: {{server: \"{url}\"}}\n\
             users:\n- name: test\n  user: {{token: test-token}}\ncontexts:\n\
             - name: test\n  context: {{cluster: test, user: test}}\ncurrent-context: test\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_stores_kubernetes_events_once_through_agent_kills() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(&tmp.path().join("server")).await;
    let token = server.create_token("ingest", "agent-cluster");
    // No Kubernetes API server can run here: a stand-in answers the events list and watch in
    // the API server's JSON (see kestrel-agent's kube tests for the full protocol).
    let api = Arc::new(FakeEvents::default());
    api.events.lock().unwrap().extend((0..3).map(k8s_event));
    let app = axum::Router::new()
        .route(
            "/apis/events.k8s.io/v1/events",
            axum::routing::get(events_api),
        )
        .with_state(Arc::clone(&api));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let token_file = tmp.path().join("agent.token");
    fs::write(&token_file, &token).unwrap();
    let config = tmp.path().join("cluster-agent.yaml");
    fs::write(
        &config,
        format!(
            "server:\n  url: {}\n  token_file: {}\n  max_backoff: 500ms\n\
             data_dir: {}\nname: cluster-agent\ncluster: test\nlisten: null\n\
             kubernetes:\n  enabled: true\n  kubeconfig: {}\n\
             inputs:\n  - type: k8s_events\n    max_batch_events: 4\n    max_batch_wait: 100ms\n",
            server.url,
            token_file.display(),
            tmp.path().join("agent-data").display(),
            kubeconfig(tmp.path(), &api_url).display()
        ),
    )
    .unwrap();
    // Without --mode cluster the agent refuses the input, saying why.
    let check = Command::new(crate::harness::KESTREL)
        .args(["agent", "--check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("--mode cluster"));

    let mut agent = TestAgent::start_with_args(&config, &["--mode", "cluster"]);
    let mut expected = 3u64;
    for round in 0..4 {
        wait_for("the events so far", async || {
            (server.count("SELECT count(*) FROM k8s_event").await >= expected).then_some(())
        })
        .await;
        agent.kill9();
        let more = 5 + round;
        {
            let mut events = api.events.lock().unwrap();
            let n = events.len();
            events.extend((n..n + more).map(k8s_event));
        }
        expected += more as u64;
        agent.restart();
    }
    wait_for("every event", async || {
        (server.count("SELECT count(*) FROM k8s_event").await >= expected).then_some(())
    })
    .await;
    let rows = server
        .query("SELECT count(*), count(DISTINCT uid), min(cluster), min(agent) FROM k8s_event")
        .await;
    assert_eq!(
        rows[0],
        [
            json!(expected),
            json!(expected),
            json!("test"),
            json!("cluster-agent")
        ],
        "agent log:\n{}",
        agent.log_text()
    );
    let rows = server
        .query("SELECT reason, regarding_name, note FROM k8s_event WHERE uid = 'uid-0'")
        .await;
    assert_eq!(
        rows[0],
        [json!("BackOff"), json!("web-1"), json!("event 0")]
    );
    assert!(*api.requests.lock().unwrap() > 0);
}
