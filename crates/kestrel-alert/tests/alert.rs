//! Delivery to a real HTTP receiver (an axum server on 127.0.0.1) that fails before it succeeds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use kestrel_alert::{AlertStore, AlertingConfig, NewAlert, Notifier};

#[tokio::test]
async fn webhook_is_retried_until_it_succeeds_and_logged() {
    let hits = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let app = {
        let hits = Arc::clone(&hits);
        let bodies = Arc::clone(&bodies);
        Router::new().route(
            "/hook",
            post(move |Json(v): Json<serde_json::Value>| {
                let hits = Arc::clone(&hits);
                let bodies = Arc::clone(&bodies);
                async move {
                    if hits.fetch_add(1, Ordering::SeqCst) < 2 {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    bodies.lock().unwrap().push(v);
                    StatusCode::OK
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(AlertStore::open(&dir.path().join("state.db")).unwrap());
    let config: AlertingConfig = serde_yaml_ng::from_str(&format!(
        "receivers:\n  - name: hook\n    webhook:\n      url: http://{addr}/hook\n      initial_backoff: 10ms\n      headers: {{X-Token: abc}}\n"
    ))
    .unwrap();
    config.validate().unwrap();
    let notifier = Notifier::start(config, Arc::clone(&store));
    let labels: BTreeMap<String, String> = [("rule".to_string(), "Exec".to_string())].into();
    let (alert, is_new) = store
        .record(&NewAlert {
            rule: "Exec".into(),
            priority: "Warning".into(),
            source: "k8s_audit".into(),
            output: "exec into shop/web-0".into(),
            tags: vec![],
            labels,
            annotations: BTreeMap::new(),
            event: None,
            time: 1,
        })
        .unwrap();
    assert!(is_new);
    notifier.notify(&alert);

    let mut delivered = None;
    for _ in 0..200 {
        let log = store.deliveries(Some(&alert.id), 10).unwrap();
        if log.first().is_some_and(|d| d.status == "delivered") {
            delivered = log.into_iter().next();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let d = delivered.expect("delivery recorded as delivered");
    assert_eq!(d.attempts, 3);
    assert_eq!(d.receiver, "hook");
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["alerts"][0]["output"], "exec into shop/web-0");
    assert_eq!(bodies[0]["receiver"], "hook");
}

#[tokio::test]
async fn unreachable_receiver_is_given_up_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(AlertStore::open(&dir.path().join("state.db")).unwrap());
    // Port 9 on loopback: nothing listens, connections are refused at once.
    let config: AlertingConfig = serde_yaml_ng::from_str(
        "receivers:\n  - name: dead\n    webhook: {url: 'http://127.0.0.1:9/x', max_attempts: 2, initial_backoff: 10ms}\n",
    )
    .unwrap();
    let notifier = Notifier::start(config, Arc::clone(&store));
    let (alert, _) = store
        .record(&NewAlert {
            rule: "R".into(),
            priority: "Notice".into(),
            source: "k8s_audit".into(),
            output: "o".into(),
            tags: vec![],
            labels: [("rule".to_string(), "R".to_string())].into(),
            annotations: BTreeMap::new(),
            event: None,
            time: 1,
        })
        .unwrap();
    notifier.notify(&alert);
    for _ in 0..200 {
        let log = store.deliveries(None, 10).unwrap();
        if log[0].status == "failed" {
            assert_eq!(log[0].attempts, 2);
            assert!(log[0]
                .last_error
                .as_deref()
                .unwrap()
                .contains("request failed"));
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("delivery never recorded as failed");
}
