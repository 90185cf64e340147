//! Server integration tests that need the library rather than the binary: TLS with a generated
//! certificate.

use kestrel_server::{Role, Server, ServerConfig};

#[tokio::test]
async fn serves_https_with_the_configured_certificate_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert_pem = certified.cert.pem();
    std::fs::write(dir.path().join("tls.crt"), &cert_pem).unwrap();
    std::fs::write(
        dir.path().join("tls.key"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    let config = ServerConfig::from_yaml(&format!(
        "listen: 127.0.0.1:0\ndata_dir: {d}/data\ntls: {{cert_file: {d}/tls.crt, key_file: {d}/tls.key}}\n",
        d = dir.path().display()
    ))
    .unwrap();
    let server = Server::bind(config).await.unwrap();
    assert_eq!(server.scheme(), "https");
    let addr = server.local_addr();
    let token = server.state().tokens.create("t", Role::Admin).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stop_rx.await;
    }));

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let health = client
        .get(format!("https://localhost:{}/healthz", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let query = client
        .post(format!("https://localhost:{}/v1/query", addr.port()))
        .bearer_auth(&token)
        .json(&serde_json::json!({"sql": "SELECT count(*) AS n FROM audit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 200);
    let body: serde_json::Value = query.json().await.unwrap();
    assert_eq!(body["rows"][0][0], 0);

    // A client that does not trust the certificate is refused, and so is plain HTTP.
    assert!(
        reqwest::get(format!("https://localhost:{}/healthz", addr.port()))
            .await
            .is_err()
    );
    let plain = reqwest::get(format!("http://127.0.0.1:{}/healthz", addr.port())).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    stop_tx.send(()).unwrap();
    serving.await.unwrap().unwrap();
}

/// A CA and a certificate it signs for `names`, as PEM (certificate, key).
struct TestCa {
    cert_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            cert_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    fn sign(&self, names: &[&str], usage: rcgen::ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

const FALCO_EVENT: &str = r#"{"uuid":"7f3c2a10-1b2c-4d5e-8f90-a1b2c3d4e5f6","output":"09:00:01.123456789: Warning Shell spawned in a container (user=root container=web-0 shell=sh)","priority":"Warning","rule":"Terminal shell in container","time":"2026-11-20T09:00:01.123456789Z","output_fields":{"container.id":"a1b2c3d4e5f6","k8s.ns.name":"shop","k8s.pod.name":"web-0","proc.cmdline":"sh"},"source":"syscall","tags":["container","shell"],"hostname":"node-1"}"#;

#[tokio::test]
async fn falco_posts_with_a_token_in_the_url_or_a_client_certificate_and_becomes_alerts() {
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("kestrel test CA");
    let (server_cert, server_key) = ca.sign(&["localhost"], ServerAuth);
    let (falco_cert, falco_key) = ca.sign(&["falco"], ClientAuth);
    let stranger = TestCa::new("another CA");
    let (bad_cert, bad_key) = stranger.sign(&["falco"], ClientAuth);
    let d = dir.path();
    std::fs::write(d.join("tls.crt"), &server_cert).unwrap();
    std::fs::write(d.join("tls.key"), &server_key).unwrap();
    std::fs::write(d.join("clients.crt"), &ca.cert_pem).unwrap();
    let config = ServerConfig::from_yaml(&format!(
        "listen: 127.0.0.1:0\ndata_dir: {d}/data\ncluster: prod\n\
         tls: {{cert_file: {d}/tls.crt, key_file: {d}/tls.key, client_ca_file: {d}/clients.crt}}\n",
        d = d.display()
    ))
    .unwrap();
    let server = Server::bind(config).await.unwrap();
    let port = server.local_addr().port();
    let ingest = server.state().tokens.create("falco", Role::Ingest).unwrap();
    let viewer = server
        .state()
        .tokens
        .create("viewer", Role::Viewer)
        .unwrap();
    let admin = server.state().tokens.create("admin", Role::Admin).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stop_rx.await;
    }));
    let url = |path: &str| format!("https://localhost:{port}{path}");
    let client = |identity: Option<(&str, &str)>| {
        let mut b = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap());
        if let Some((cert, key)) = identity {
            b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
        }
        b.build().unwrap()
    };
    let post = |client: &reqwest::Client, path: &str, body: &str| {
        client
            .post(url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };

    // (a) The token in the URL.
    let plain = client(None);
    let r = post(&plain, &format!("/v1/ingest/falco/{ingest}"), FALCO_EVENT)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let summary: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (summary["accepted"].as_u64(), summary["alerts"].as_u64()),
        (Some(1), Some(1))
    );
    // Sent again (the same uuid): stored once, no new alert.
    let again: serde_json::Value = post(&plain, &format!("/v1/ingest/falco/{ingest}"), FALCO_EVENT)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicates"], 1);
    assert_eq!(again["alerts"], 0);
    let bad_token = post(&plain, "/v1/ingest/falco/kst_0000", FALCO_EVENT)
        .await
        .unwrap();
    assert_eq!(bad_token.status(), 401);
    let no_role = post(&plain, &format!("/v1/ingest/falco/{viewer}"), FALCO_EVENT)
        .await
        .unwrap();
    assert_eq!(no_role.status(), 403);
    // Neither a token nor a certificate.
    let anonymous = post(&plain, "/v1/ingest/falco", FALCO_EVENT).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    // Plain-text output (json_output: false) is refused with the reason.
    let text = post(
        &plain,
        &format!("/v1/ingest/falco/{ingest}"),
        "09:00:01: Warning x",
    )
    .await
    .unwrap();
    assert_eq!(text.status(), 400);
    assert!(text.text().await.unwrap().contains("json_output"));

    // (b) A client certificate signed by the configured CA authenticates as ingest.
    let falco = client(Some((&falco_cert, &falco_key)));
    let second = FALCO_EVENT
        .replace("7f3c2a10", "8a4d3b21")
        .replace("web-0", "web-1");
    let r = post(&falco, "/v1/ingest/falco", &second).await.unwrap();
    assert_eq!(r.status(), 200);
    let summary: serde_json::Value = r.json().await.unwrap();
    assert_eq!(summary["alerts"], 1);
    // ... but only for sending data.
    let read = falco.get(url("/v1/alerts")).send().await.unwrap();
    assert_eq!(read.status(), 403);
    // A certificate from another CA is refused during the handshake.
    let stranger = client(Some((&bad_cert, &bad_key)));
    assert!(post(&stranger, "/v1/ingest/falco", &second).await.is_err());

    // Stored in the falco table and become alerts labelled by their identity.
    let q: serde_json::Value = plain
        .post(url("/v1/query"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"sql": "SELECT pod, hostname, \"cluster\" FROM falco ORDER BY pod"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        q["rows"],
        serde_json::json!([["web-0", "node-1", "prod"], ["web-1", "node-1", "prod"]]),
        "{q}"
    );
    let alerts: serde_json::Value = plain
        .get(url("/v1/alerts"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alerts = alerts["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    let a = &alerts[0];
    assert_eq!(a["rule"], "Terminal shell in container");
    assert_eq!(a["labels"]["namespace"], "shop");
    assert_eq!(a["labels"]["hostname"], "node-1");
    assert_eq!(a["labels"]["tags"], "container,shell");
    assert!(a["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains("Shell spawned"));
    assert_eq!(a["event"]["table"], "falco");

    stop_tx.send(()).unwrap();
    serving.await.unwrap().unwrap();
}

/// Polls `probe` every 50 ms until it is true; panics after a minute.
async fn eventually(what: &str, mut probe: impl AsyncFnMut() -> bool) {
    let start = std::time::Instant::now();
    while !probe().await {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_ships_with_its_client_certificate_and_without_one_it_cannot() {
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new("kestrel test CA");
    let (server_cert, server_key) = ca.sign(&["localhost"], ServerAuth);
    let (agent_cert, agent_key) = ca.sign(&["node-1"], ClientAuth);
    let (rogue_cert, rogue_key) = TestCa::new("another CA").sign(&["node-1"], ClientAuth);
    for (file, text) in [
        ("ca.crt", &ca.cert_pem),
        ("server.crt", &server_cert),
        ("server.key", &server_key),
        ("agent.crt", &agent_cert),
        ("agent.key", &agent_key),
    ] {
        std::fs::write(d.join(file), text).unwrap();
    }
    let config = ServerConfig::from_yaml(&format!(
        "listen: 127.0.0.1:0\ndata_dir: {d}/data\ntls: {{cert_file: {d}/server.crt, key_file: {d}/server.key, client_ca_file: {d}/ca.crt}}\n",
        d = d.display()
    ))
    .unwrap();
    let server = Server::bind(config).await.unwrap();
    let port = server.local_addr().port();
    let admin = server.state().tokens.create("admin", Role::Admin).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stop_rx.await;
    }));
    let trust = reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap();

    // A certificate from another CA is refused during the handshake.
    let rogue = reqwest::Client::builder()
        .add_root_certificate(trust.clone())
        .identity(
            reqwest::Identity::from_pem(format!("{rogue_cert}{rogue_key}").as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    assert!(rogue
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .is_err());

    // The real agent, with only its certificate (no token), ships a pod log.
    let pod_dir = d.join("pods/shop_web-1_1f2e3d4c-aaaa-bbbb-cccc-123456789abc/nginx");
    std::fs::create_dir_all(&pod_dir).unwrap();
    let lines: String = (0..50)
        .map(|i| {
            format!(
                "2026-11-20T09:00:{:02}.000000000Z stdout F mtls line {i}\n",
                i % 60
            )
        })
        .collect();
    std::fs::write(pod_dir.join("0.log"), lines).unwrap();
    let agent_yaml = |name: &str, cert: bool| {
        format!(
            "server:\n  url: https://localhost:{port}\n  ca_file: {d}/ca.crt\n  max_backoff: 200ms\n{cert}\
             data_dir: {d}/{name}\nname: {name}\nlisten: null\nkubernetes: {{enabled: false}}\ninputs:\n  - type: pod_logs\n    path: {d}/pods\n",
            d = d.display(),
            cert = if cert {
                format!(
                    "  client_cert_file: {d}/agent.crt\n  client_key_file: {d}/agent.key\n",
                    d = d.display()
                )
            } else {
                String::new()
            }
        )
    };
    let agent = kestrel_agent::Agent::start(
        kestrel_agent::config::AgentConfig::from_yaml(&agent_yaml("node-1", true)).unwrap(),
    )
    .await
    .unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(trust)
        .build()
        .unwrap();
    let count = async || -> i64 {
        let body: serde_json::Value = client
            .post(format!("https://localhost:{port}/v1/query"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"sql": "SELECT count(*) AS n FROM container_log"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["rows"][0][0].as_i64().unwrap_or(0)
    };
    eventually("the agent's 50 lines", async || count().await == 50).await;
    agent.shutdown(std::time::Duration::from_secs(1)).await;

    // The same agent with neither a certificate nor a token cannot deliver: it retries, and
    // nothing more lands.
    let anonymous_agent = kestrel_agent::Agent::start(
        kestrel_agent::config::AgentConfig::from_yaml(&agent_yaml("node-2", false)).unwrap(),
    )
    .await
    .unwrap();
    eventually("the anonymous agent to retry", async || {
        anonymous_agent.metrics().retries.get() >= 2
    })
    .await;
    assert_eq!(anonymous_agent.metrics().batches_acked.get(), 0);
    assert_eq!(count().await, 50);
    anonymous_agent
        .shutdown(std::time::Duration::from_millis(100))
        .await;

    stop_tx.send(()).unwrap();
    serving.await.unwrap().unwrap();
}

/// A tmpfs of `size_mib` mounted on a temporary directory (needs root), unmounted on drop.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn mount(size_mib: u64) -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success())
            .then_some(SmallFs(dir))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Lazily: the server's state database may still be open in a task being dropped.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// Writes a filler file so that about `free_mib` MiB stay free on the file system of `dir`.
fn leave_free(dir: &std::path::Path, free_mib: u64) {
    use std::io::Write;
    let filler = dir.join("filler");
    let _ = std::fs::remove_file(&filler);
    let free = kestrel_store::free_bytes(dir).unwrap();
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..(free >> 20).saturating_sub(free_mib) {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
}

fn agent_batch_body() -> Vec<u8> {
    use kestrel_event::{BatchOrigin, ContainerLog, IngestBatch, LogStream};
    let origin = BatchOrigin {
        agent: "node-1".into(),
        input: "pods".into(),
        stream: "f1".into(),
        ..Default::default()
    };
    let batch = IngestBatch {
        version: kestrel_event::INGEST_FORMAT_VERSION,
        id: kestrel_event::batch_id(&origin.agent, &origin.input, &origin.stream, 0, 10),
        origin,
        start: 0,
        end: 10,
        container_logs: vec![ContainerLog {
            time: kestrel_event::time::now_nanos(),
            stream: LogStream::Stdout,
            message: "hello".into(),
            truncated: false,
        }],
        ..Default::default()
    };
    serde_json::to_vec(&batch).unwrap()
}

fn event_list(id: &str) -> String {
    serde_json::json!({
        "kind": "EventList", "apiVersion": "audit.k8s.io/v1",
        "items": [{
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": id, "stage": "ResponseComplete", "requestURI": "/api/v1/pods",
            "verb": "list", "user": {"username": "alice"},
            "stageTimestamp": "2026-11-20T09:00:01.000000Z",
            "requestReceivedTimestamp": "2026-11-20T09:00:01.000000Z"
        }]
    })
    .to_string()
}

/// On a nearly full disk, agent batches get 503 with Retry-After while the audit webhook is
/// still served; below the audit reserve the webhook gets 503 too. Storage endpoints list the
/// manifest heads, verify, and the quarantine.
#[tokio::test]
async fn a_full_disk_refuses_low_value_sources_first_with_retry_after() {
    let Some(small) = SmallFs::mount(48) else {
        eprintln!(
            "note: cannot mount a tmpfs (needs root); the disk-full test checks nothing here"
        );
        return;
    };
    let config = ServerConfig::from_yaml(&format!(
        "listen: 127.0.0.1:0\ndata_dir: {}/data\nstorage: {{reserve_bytes: 25165824, audit_reserve_bytes: 8388608}}\n",
        small.0.path().display()
    ))
    .unwrap();
    let server = Server::bind(config).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    let token = server.state().tokens.create("t", Role::Admin).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::new();
    let post = |path: &str, body: Vec<u8>| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .body(body)
            .send()
    };

    leave_free(small.0.path(), 16);
    let refused = post("/v1/ingest", agent_batch_body()).await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "30");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("container_log"),
        "{body}"
    );
    let kept = post("/v1/audit/webhook", event_list("a1").into_bytes())
        .await
        .unwrap();
    assert_eq!(kept.status(), 200);

    leave_free(small.0.path(), 4);
    let refused = post("/v1/audit/webhook", event_list("a2").into_bytes())
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "30");

    std::fs::remove_file(small.0.path().join("filler")).unwrap();
    let accepted = post("/v1/ingest", agent_batch_body()).await.unwrap();
    assert_eq!(accepted.status(), 200);

    let get = |path: &str| {
        client
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
    };
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("kestrel_store_appends_refused_disk_full_total 2"),
        "{metrics}"
    );
    assert!(metrics.contains("kestrel_store_free_bytes "));
    let heads: serde_json::Value = get("/v1/storage/heads")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        heads["heads"].as_array().unwrap().len(),
        kestrel_store::Table::ALL.len()
    );
    let verified: serde_json::Value = get("/v1/storage/verify?table=audit")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["tables"][0]["table"], "audit");
    let quarantine: serde_json::Value = get("/v1/storage/quarantine")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(quarantine["files"], serde_json::json!([]));

    stop_tx.send(()).unwrap();
    serving.await.unwrap().unwrap();
}
