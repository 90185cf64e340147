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
