//! Alerting against real servers on 127.0.0.1: local HTTP receivers that check each provider's
//! payload, Debian's `prometheus-alertmanager`, and `aiosmtpd` for email. Timings run on a
//! manual clock; the tests wait only for network I/O.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Router;
use chrono::Utc;
use kestrel_alert::{
    dingtalk_sign, pagerduty_dedup_key, AlertStatus, AlertStore, Alerting, AlertingConfig, Clock,
    ManualClock, NewAlert, SystemClock,
};
use serde_json::{json, Value};

/// Bound on any wait for I/O; a healthy run needs a small fraction of it.
const DEADLINE: Duration = Duration::from_secs(60);

async fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Request {
    uri: Uri,
    headers: HeaderMap,
    body: Value,
}

/// A local HTTP receiver recording every request; answers `status` with `answer`, after
/// `fail_first` failures (503).
#[derive(Clone)]
struct Capture {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Capture {
    async fn start(status: u16, answer: Value, fail_first: usize) -> Capture {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let sink = Arc::clone(&requests);
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let sink = Arc::clone(&sink);
            let hits = Arc::clone(&hits);
            let answer = answer.clone();
            async move {
                if hits.fetch_add(1, Ordering::SeqCst) < fail_first {
                    return (StatusCode::SERVICE_UNAVAILABLE, String::new());
                }
                let body = serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
                sink.lock().unwrap().push(Request { uri, headers, body });
                (StatusCode::from_u16(status).unwrap(), answer.to_string())
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Capture { addr, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn wait(&self, n: usize) -> Vec<Request> {
        wait_for(&format!("{n} requests at {}", self.addr), || {
            let got = self.requests.lock().unwrap().clone();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

fn new_alert(rule: &str, namespace: &str, priority: &str) -> NewAlert {
    let labels: BTreeMap<String, String> = [
        ("rule", rule),
        ("namespace", namespace),
        ("priority", priority),
        ("source", "k8s_audit"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    NewAlert {
        rule: rule.into(),
        priority: priority.into(),
        source: "k8s_audit".into(),
        output: format!("{rule} in {namespace} by alice"),
        tags: vec!["k8s".into()],
        labels,
        annotations: [("ka.user.name".to_string(), "alice".to_string())].into(),
        event: None,
        time: Utc::now().timestamp_nanos_opt().unwrap(),
        generator_url: None,
    }
}

fn alerting(yaml: &str, clock: Arc<dyn Clock>) -> (Arc<Alerting>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(AlertStore::open(&dir.path().join("state.db")).unwrap());
    let config: AlertingConfig = serde_yaml_ng::from_str(yaml).unwrap();
    let compiled = config.compile().unwrap();
    (Alerting::new(&compiled, store, clock).unwrap(), dir)
}

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc::now()))
}

async fn wait_delivery(a: &Alerting, alert_id: &str, status: &str) -> kestrel_alert::Delivery {
    wait_for(&format!("a {status} delivery"), || {
        a.store()
            .deliveries(Some(alert_id), 10)
            .unwrap()
            .into_iter()
            .find(|d| d.status == status)
    })
    .await
}

#[tokio::test]
async fn webhook_is_retried_until_it_succeeds_and_a_dead_receiver_slows_nobody() {
    let hook = Capture::start(200, json!({}), 2).await;
    let clock = manual_clock();
    // The dead receiver never answers quickly: 127.0.0.1:9 refuses, with many retries.
    let (a, _dir) = alerting(
        &format!(
            r#"
route: {{receiver: hook, group_by: ['...'], group_wait: 0s, routes: [{{receiver: dead, continue: true}}, {{receiver: hook}}]}}
receivers:
  - name: hook
    webhook: {{url: "{}", headers: {{X-Token: abc}}}}
    initial_backoff: 10ms
  - name: dead
    webhook: {{url: "http://127.0.0.1:9/x"}}
    max_attempts: 3
    initial_backoff: 10ms
"#,
            hook.url("/hook")
        ),
        clock.clone(),
    );
    let (alert, is_new) = a.record(&new_alert("Exec", "shop", "Warning")).unwrap();
    assert!(is_new);
    // A duplicate before the tick: counted, one notification.
    let (dup, is_new) = a.record(&new_alert("Exec", "shop", "Warning")).unwrap();
    assert!(!is_new);
    assert_eq!(dup.count, 2);
    let out = a.tick();
    assert_eq!(out.notifications.len(), 2);

    let got = hook.wait(1).await;
    assert_eq!(got[0].uri.path(), "/hook");
    assert_eq!(got[0].headers["x-token"], "abc");
    let body = &got[0].body;
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "hook");
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(body["alerts"][0]["labels"]["rule"], "Exec");
    assert_eq!(body["alerts"][0]["fingerprint"], alert.id.as_str());
    assert_eq!(body["alerts"][0]["count"], 2);
    assert_eq!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    let d = wait_delivery(&a, &alert.id, "delivered").await;
    assert_eq!((d.attempts, d.receiver.as_str()), (3, "hook"));
    let failed = wait_delivery(&a, &alert.id, "failed").await;
    assert_eq!((failed.attempts, failed.receiver.as_str()), (3, "dead"));
    assert!(failed.last_error.unwrap().contains("request failed"));

    // Nothing new: no further notification, even much later (no repeat within 4h).
    clock.advance(Duration::from_secs(3600));
    assert!(a.tick().notifications.is_empty());
    // Resolved by hand: the resolution is sent at the group's next flush.
    a.set_status(&alert.id, AlertStatus::Resolved, "alice")
        .unwrap()
        .unwrap();
    clock.advance(Duration::from_secs(300));
    assert_eq!(a.tick().notifications.len(), 2);
    let got = hook.wait(2).await;
    assert_eq!(got[1].body["status"], "resolved");
    assert_eq!(got[1].body["alerts"][0]["status_by"], "alice");
    assert_ne!(got[1].body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
}

#[tokio::test]
async fn slack_dingtalk_pagerduty_and_sms_get_their_providers_formats() {
    let slack = Capture::start(200, json!("ok"), 0).await;
    let ding = Capture::start(200, json!({"errcode": 0, "errmsg": "ok"}), 0).await;
    let ding_refusing = Capture::start(
        200,
        json!({"errcode": 310000, "errmsg": "sign not match"}),
        0,
    )
    .await;
    let pd = Capture::start(
        202,
        json!({"status": "success", "message": "Event processed"}),
        0,
    )
    .await;
    let sms = Capture::start(200, json!({"ok": true}), 0).await;
    let clock = manual_clock();
    let yaml = format!(
        r##"
external_url: https://kestrel.example.com
route:
  receiver: slack
  group_by: [rule]
  group_wait: 0s
  group_interval: 1m
  routes:
    - {{receiver: slack, continue: true}}
    - {{receiver: ding, continue: true}}
    - {{receiver: ding-refusing, continue: true}}
    - {{receiver: pd, continue: true}}
    - {{receiver: sms}}
receivers:
  - name: slack
    slack:
      url: "{slack}"
      channel: "#security"
      text: "{{{{ alerts[0].output }}}}"
  - name: ding
    dingtalk:
      url: "{ding}"
      secret: SECtest
      at_mobiles: ["13800000000"]
      text: "{{{{ title }}}}: {{{{ alerts[0].output }}}}"
  - name: ding-refusing
    dingtalk: {{url: "{ding_refusing}"}}
    max_attempts: 1
  - name: pd
    pagerduty: {{routing_key: R0UT1NGKEY, url: "{pd}"}}
  - name: sms
    sms:
      url: "{sms}"
      to: ["+4915100000001", "+4915100000002"]
      headers: {{Authorization: "Bearer gw"}}
"##,
        slack = slack.url("/services/T/B/X"),
        ding = ding.url("/robot/send?access_token=tok"),
        ding_refusing = ding_refusing.url("/robot/send?access_token=bad"),
        pd = pd.url("/v2/enqueue"),
        sms = sms.url("/sms"),
    );
    let (a, _dir) = alerting(&yaml, clock.clone());
    let (alert, _) = a.record(&new_alert("Exec", "shop", "Warning")).unwrap();
    a.tick();
    let title = "[FIRING:1] Exec";
    let group_key = "0/0:{rule=\"Exec\"}";

    // Slack: Block Kit with a header, the text as mrkdwn and a context line.
    let got = slack.wait(1).await;
    assert_eq!(got[0].uri.path(), "/services/T/B/X");
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert_eq!(
        got[0].body,
        json!({
            "text": title,
            "channel": "#security",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": true}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "Exec in shop by alice"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "Kestrel · update · slack"}]},
            ],
        })
    );

    // DingTalk: signed URL, markdown message with the mention in the text.
    let got = ding.wait(1).await;
    let query: BTreeMap<String, String> = got[0]
        .uri
        .query()
        .unwrap()
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(query["access_token"], "tok");
    let ts: i64 = query["timestamp"].parse().unwrap();
    assert!((Utc::now().timestamp_millis() - ts).abs() < 3_600_000);
    assert_eq!(query["sign"], dingtalk_sign("SECtest", ts));
    assert_eq!(
        got[0].body,
        json!({
            "msgtype": "markdown",
            "markdown": {"title": title, "text": format!("{title}: Exec in shop by alice\n\n@13800000000")},
            "at": {"atMobiles": ["13800000000"], "isAtAll": false},
        })
    );
    // A robot answering 200 with an error code is a failed delivery.
    let refused = wait_for("the refused DingTalk delivery", || {
        a.store()
            .deliveries(Some(&alert.id), 20)
            .unwrap()
            .into_iter()
            .find(|d| d.receiver == "ding-refusing" && d.status == "failed")
    })
    .await;
    assert!(refused.last_error.unwrap().contains("sign not match"));

    // PagerDuty Events v2: trigger with a dedup key per group.
    let got = pd.wait(1).await;
    let body = &got[0].body;
    assert_eq!(got[0].uri.path(), "/v2/enqueue");
    let dedup = pagerduty_dedup_key(&group_key.replace("0/0", "0/3"));
    assert_eq!(body["routing_key"], "R0UT1NGKEY");
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(body["dedup_key"], dedup.as_str());
    assert_eq!(body["client"], "Kestrel");
    assert_eq!(body["client_url"], "https://kestrel.example.com");
    assert_eq!(
        body["links"],
        json!([{"href": format!("https://kestrel.example.com/v1/alerts/{}", alert.id), "text": "Exec"}])
    );
    let payload = &body["payload"];
    assert_eq!(payload["summary"], title);
    assert_eq!(payload["severity"], "warning");
    assert_eq!(payload["source"], "kestrel");
    assert_eq!(payload["component"], "shop");
    assert_eq!(payload["group"], "Exec");
    assert_eq!(payload["class"], "k8s_audit");
    assert!(chrono::DateTime::parse_from_rfc3339(payload["timestamp"].as_str().unwrap()).is_ok());
    assert_eq!(payload["custom_details"]["firing"], 1);
    let mut keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "client",
            "client_url",
            "dedup_key",
            "event_action",
            "links",
            "payload",
            "routing_key"
        ]
    );

    // SMS: one request per recipient, the default JSON body, the gateway's credentials.
    let got = sms.wait(2).await;
    let mut to: Vec<&str> = got.iter().map(|r| r.body["to"].as_str().unwrap()).collect();
    to.sort();
    assert_eq!(to, ["+4915100000001", "+4915100000002"]);
    for r in &got {
        assert_eq!(r.headers["authorization"], "Bearer gw");
        assert_eq!(
            r.body["text"],
            format!("{title}\nWarning: Exec in shop by alice")
        );
        assert_eq!(r.body.as_object().unwrap().len(), 2);
    }

    // Resolved: PagerDuty gets a resolve for the same dedup key, and nothing else.
    a.set_status(&alert.id, AlertStatus::Resolved, "bob")
        .unwrap();
    clock.advance(Duration::from_secs(60));
    a.tick();
    let got = pd.wait(2).await;
    assert_eq!(
        got[1].body,
        json!({"routing_key": "R0UT1NGKEY", "event_action": "resolve", "dedup_key": dedup})
    );
}

/// Kills a child process when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `None` (skip) when `what` is missing outside CI; in CI a missing tool fails the test.
fn require(what: &str, present: bool) -> Option<()> {
    if present {
        return Some(());
    }
    if std::env::var_os("CI").is_some() {
        panic!("{what} is missing; .ci/run installs it");
    }
    eprintln!("SKIPPED: {what} is not installed (CI installs it; see .ci/run)");
    None
}

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

#[tokio::test]
async fn alerts_reach_a_real_alertmanager_which_routes_them_to_its_webhook() {
    if require(
        "Debian's prometheus-alertmanager",
        std::path::Path::new(ALERTMANAGER).exists(),
    )
    .is_none()
    {
        return;
    }
    let hook = Capture::start(200, json!({}), 0).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let am_config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n        send_resolved: true\n",
            hook.url("/am-hook")
        ),
    )
    .unwrap();
    let storage = dir.path().join("am-data");
    let child = Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", am_config.display()))
        .arg(format!("--storage.path={}", storage.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus-alertmanager");
    let _guard = ChildGuard(child);
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        let ready = http
            .get(format!("http://127.0.0.1:{port}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "alertmanager never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The issue's configuration, verbatim but for the port.
    let yaml = format!(
        "route:\n  receiver: am\n  group_by: [rule]\n  group_wait: 1s\nreceivers:\n  - name: am\n    alertmanager:\n      url: http://127.0.0.1:{port}\n"
    );
    let clock = manual_clock();
    let (a, _state) = alerting(&yaml, clock.clone());
    let (alert, _) = a.record(&new_alert("Exec", "shop", "Critical")).unwrap();
    assert!(a.tick().notifications.is_empty(), "group_wait: 1s");
    clock.advance(Duration::from_secs(1));
    assert_eq!(a.tick().notifications.len(), 1);

    let got = hook.wait(1).await;
    let body = &got[0].body;
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "hook");
    let am_alert = &body["alerts"][0];
    assert_eq!(am_alert["labels"]["alertname"], "Exec");
    assert_eq!(am_alert["labels"]["rule"], "Exec");
    assert_eq!(am_alert["labels"]["namespace"], "shop");
    assert_eq!(am_alert["labels"]["severity"], "critical");
    assert_eq!(am_alert["annotations"]["summary"], "Exec in shop by alice");
    assert_eq!(am_alert["annotations"]["ka_user_name"], "alice");
    assert_eq!(
        am_alert["annotations"]["kestrel_alert_id"],
        alert.id.as_str()
    );
    let d = wait_delivery(&a, &alert.id, "delivered").await;
    assert_eq!(d.channel, "alertmanager");

    // Resolved in Kestrel: Alertmanager is told the end time and sends the resolution.
    a.set_status(&alert.id, AlertStatus::Resolved, "alice")
        .unwrap();
    clock.advance(Duration::from_secs(300));
    assert_eq!(a.tick().notifications.len(), 1);
    let got = wait_for("the resolution from alertmanager", || {
        let got = hook.requests.lock().unwrap().clone();
        got.iter()
            .any(|r| r.body["status"] == "resolved")
            .then_some(got)
    })
    .await;
    let resolved = got.iter().find(|r| r.body["status"] == "resolved").unwrap();
    assert_eq!(resolved.body["alerts"][0]["labels"]["alertname"], "Exec");
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server() {
    let has_aiosmtpd = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if require("aiosmtpd (pip install aiosmtpd)", has_aiosmtpd).is_none() {
        return;
    }
    let port = free_port();
    let mut child = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .env("PYTHONUNBUFFERED", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let stdout = child.stdout.take().unwrap();
    let _guard = ChildGuard(child);
    let printed = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&printed);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    // Wait until the server accepts connections.
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < DEADLINE, "aiosmtpd never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (a, _dir) = alerting(
        &format!(
            r#"
route: {{receiver: mail, group_by: ['...'], group_wait: 0s}}
receivers:
  - name: mail
    email:
      smarthost: "127.0.0.1:{port}"
      tls: none
      from: "Kestrel <kestrel@example.com>"
      to: ["oncall@example.com"]
      subject: "Kestrel: {{{{ alerts[0].rule }}}} in {{{{ alerts[0].labels.namespace }}}}"
"#
        ),
        Arc::new(SystemClock),
    );
    let (alert, _) = a.record(&new_alert("Exec", "shop", "Warning")).unwrap();
    a.tick();
    let text = wait_for("the email printed by aiosmtpd", || {
        let s = printed.lock().unwrap().clone();
        s.contains("Exec in shop by alice").then_some(s)
    })
    .await;
    assert!(text.contains("Subject: Kestrel: Exec in shop"), "{text}");
    assert!(text.contains("To: oncall@example.com"), "{text}");
    assert!(text.contains("multipart/alternative"), "{text}");
    assert!(text.contains("text/html"), "{text}");
    let d = wait_delivery(&a, &alert.id, "delivered").await;
    assert_eq!(d.channel, "email");
}

#[tokio::test]
async fn a_quiet_node_raises_source_quiet_resolved_when_it_sends_again_even_across_a_restart() {
    let yaml = "quiet_sources:\n  - {match: {source: audit}, per: [node], after: 10m}\n";
    let clock = manual_clock();
    let (a, dir) = alerting(yaml, clock.clone());
    let node = |n: &str| -> BTreeMap<String, String> {
        [("source", "audit"), ("node", n), ("input", "audit")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let quiet_alerts = |a: &Alerting| -> Vec<(String, AlertStatus, Option<String>)> {
        let mut v: Vec<_> = a
            .store()
            .list(&Default::default())
            .unwrap()
            .into_iter()
            .filter(|x| x.rule == "SourceQuiet")
            .map(|x| (x.labels["node"].clone(), x.status, x.status_by))
            .collect();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    };
    a.observe_data(&node("node-a"));
    a.observe_data(&node("node-b"));
    clock.advance(Duration::from_secs(5 * 60));
    a.observe_data(&node("node-a"));
    a.tick();
    clock.advance(Duration::from_secs(5 * 60));
    a.tick();
    assert_eq!(
        quiet_alerts(&a),
        [("node-b".into(), AlertStatus::Firing, None)]
    );
    // node-b sends again: resolved, by the data.
    a.observe_data(&node("node-b"));
    assert_eq!(
        quiet_alerts(&a),
        [(
            "node-b".into(),
            AlertStatus::Resolved,
            Some("data resumed".into())
        )]
    );
    a.tick(); // saves the senders' state
    drop(a);

    // Restarted: node-a, quiet since before the restart, is still noticed.
    let store = Arc::new(AlertStore::open(&dir.path().join("state.db")).unwrap());
    let config: AlertingConfig = serde_yaml_ng::from_str(yaml).unwrap();
    let a = Alerting::new(&config.compile().unwrap(), store, clock.clone()).unwrap();
    clock.advance(Duration::from_secs(5 * 60));
    a.tick();
    assert_eq!(
        quiet_alerts(&a),
        [
            ("node-a".into(), AlertStatus::Firing, None),
            (
                "node-b".into(),
                AlertStatus::Resolved,
                Some("data resumed".into())
            )
        ]
    );
}
