//! Bearer-token authentication and roles on every endpoint.

use reqwest::Method;

use crate::events::{audit_event, event_list, ALICE};
use crate::harness::{kestrel_cli, Api, Reply, TestServer};

/// Every endpoint that needs a token: method, path, and a body for POSTs.
const PROTECTED: &[(&str, &str)] = &[
    ("POST", "/v1/audit/webhook"),
    ("POST", "/v1/ingest"),
    ("POST", "/v1/query"),
    ("GET", "/v1/alerts"),
    ("GET", "/v1/alerts/x"),
    ("POST", "/v1/alerts/x/ack"),
    ("POST", "/v1/alerts/x/resolve"),
    ("GET", "/v1/rules"),
    ("POST", "/v1/rules/test"),
    ("GET", "/v1/tables"),
    ("GET", "/metrics"),
];

async fn call(api: &Api, method: &str, path: &str, token: Option<&str>) -> Reply {
    let body = match (method, path) {
        ("POST", "/v1/query") => Some(br#"{"sql":"SELECT 1"}"#.to_vec()),
        ("POST", "/v1/rules/test") => Some(br#"{"rules":""}"#.to_vec()),
        ("POST", "/v1/audit/webhook") => Some(event_list(&[audit_event(
            "auth-probe",
            "ResponseComplete",
            "get",
            ALICE,
            "pods",
            "shop",
            "web-0",
        )])),
        _ => None,
    };
    api.send(
        Method::from_bytes(method.as_bytes()).unwrap(),
        path,
        token,
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles_guard_every_endpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(&tmp.path().join("data")).await;
    let api = server.api();
    let ingest = server.create_token("ingest", "webhook");
    let viewer = server.create_token("viewer", "analyst");
    let wrong = "kst_0000000000000000000000000000000000000000000000000000000000000000";

    for (method, path) in PROTECTED {
        for token in [None, Some(wrong), Some("not-even-a-token")] {
            let r = call(&api, method, path, token).await;
            assert_eq!(r.status, 401, "{method} {path} with {token:?}: {}", r.text);
            r.error();
        }
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(api.get(path, None).await.status, 200, "{path}");
    }
    // The console's files and the API description hold no data and need no token.
    for path in ["/", "/console/app.js", "/v1/openapi.json"] {
        assert_eq!(api.get(path, None).await.status, 200, "{path}");
    }
    assert_eq!(api.get("/console/nope.js", None).await.status, 404);
    // The OpenAPI document describes every protected endpoint.
    let doc = api.get("/v1/openapi.json", None).await.json();
    for (method, path) in PROTECTED {
        let template = path.replace("/x", "/{id}");
        assert!(
            doc["paths"][&template][method.to_lowercase()].is_object(),
            "{method} {template} is missing from /v1/openapi.json"
        );
    }

    // ingest: may write, may not read.
    let r = call(&api, "POST", "/v1/audit/webhook", Some(&ingest)).await;
    assert_eq!((r.status, r.num("accepted")), (200, 1), "{}", r.text);
    for (method, path) in [
        ("POST", "/v1/query"),
        ("GET", "/v1/alerts"),
        ("GET", "/v1/alerts/x"),
        ("GET", "/v1/tables"),
        ("GET", "/metrics"),
    ] {
        let r = call(&api, method, path, Some(&ingest)).await;
        assert_eq!(r.status, 403, "ingest token on {method} {path}: {}", r.text);
        assert!(r.error().contains("role ingest"), "{}", r.text);
    }

    // viewer: may read, may neither write nor change alerts.
    let r = call(&api, "POST", "/v1/query", Some(&viewer)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        call(&api, "GET", "/v1/alerts", Some(&viewer)).await.status,
        200
    );
    for (method, path) in [("POST", "/v1/audit/webhook"), ("POST", "/v1/alerts/x/ack")] {
        let r = call(&api, method, path, Some(&viewer)).await;
        assert_eq!(r.status, 403, "viewer token on {method} {path}: {}", r.text);
        r.error();
    }

    // A token revoked while the server runs stops working at once.
    let out = kestrel_cli(
        &[
            "token",
            "revoke",
            "analyst",
            "--data-dir",
            server.data_dir.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", out.stderr);
    let r = call(&api, "POST", "/v1/query", Some(&viewer)).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.error().contains("revoked"));
    let listed = kestrel_cli(
        &[
            "token",
            "list",
            "--data-dir",
            server.data_dir.to_str().unwrap(),
        ],
        &[],
    );
    assert!(listed.stdout.contains("webhook") && !listed.stdout.contains("analyst"));
    assert!(
        !listed.stdout.contains(&ingest),
        "token list shows a token value"
    );
}
