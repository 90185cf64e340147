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
