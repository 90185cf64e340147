//! Alerts end to end: audit events match bundled rules, alerts are listed, counted when they
//! repeat, sent once to a webhook receiver, acknowledged, and printed by `kestrel alerts`.

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
            "alerting:\n  receivers:\n    - name: hook\n      webhook:\n        url: {}\n        initial_backoff: 50ms\n",
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
