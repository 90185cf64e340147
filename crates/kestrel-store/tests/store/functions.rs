//! The security SQL functions through real SQL over stored rows, sealed and in memory.

use kestrel_event::AuditRecord;
use kestrel_store::{QueryError, QueryOptions, Store, StoreConfig, TableRows};
use serde_json::{json, Value};

const T0: i64 = 1_795_165_201_000_000_000; // 2026-11-20T09:00:01Z
const MIN: i64 = 60_000_000_000;

fn row(i: i64, ip: &str, object: Option<&str>, message: &str, agent: &str) -> AuditRecord {
    AuditRecord {
        time: T0 + i * MIN,
        audit_id: format!("f{i}"),
        stage: "ResponseComplete".into(),
        verb: "create".into(),
        user_name: "alice".into(),
        source_ip: Some(ip.into()),
        request_object: object.map(str::to_owned),
        response_message: Some(message.into()),
        user_agent: Some(agent.into()),
        ..Default::default()
    }
}

/// Five rows, three sealed into Parquet and two still in memory.
async fn store_with_rows() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let sealed = vec![
        row(
            0,
            "10.1.2.3",
            Some(
                r#"{"metadata":{"name":"web","labels":{"app/tier":"front"}},"spec":{"replicas":3,"paused":false,"ratio":0.5}}"#,
            ),
            "Connection refused by upstream",
            "kubectl/v1.31.2 (linux/amd64)",
        ),
        row(
            3,
            "192.168.0.9",
            Some(r#"{"metadata":{"name":"db"},"spec":{"replicas":"2","paused":true}}"#),
            "token ghp_Ab12cd used",
            "curl/8.5.0",
        ),
        row(
            7,
            "not-an-ip",
            Some("{this is not json"),
            "connection reset",
            "kubectl/v1.30.0",
        ),
    ];
    store.append(TableRows::Audit(sealed)).await.unwrap();
    store.flush().unwrap();
    let memory = vec![
        row(
            8,
            "fd00::1",
            Some(r#"{"metadata":{"name":"cache"}}"#),
            "refused connection",
            "helm/3",
        ),
        row(
            12,
            "::ffff:10.9.9.9",
            None,
            "REFUSED: connection limit",
            "kubectl/v1.29.1",
        ),
    ];
    store.append(TableRows::Audit(memory)).await.unwrap();
    (dir, store)
}

async fn rows(store: &Store, sql: &str) -> Vec<Vec<Value>> {
    store
        .query(sql, &QueryOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows
}

async fn error(store: &Store, sql: &str) -> String {
    match store.query(sql, &QueryOptions::default()).await {
        Ok(r) => panic!("{sql} answered {:?}", r.rows),
        Err(e @ QueryError::Invalid(_)) => e.to_string(),
        Err(e) => panic!("{sql}: unexpected error kind {e:?}"),
    }
}

#[tokio::test]
async fn json_get_reads_pointers_typed_and_gives_null_for_bad_rows() {
    let (_dir, store) = store_with_rows().await;
    let r = rows(
        &store,
        "SELECT audit_id, json_get(request_object, '/metadata/name'), \
                json_get(request_object, '/metadata/labels/app~1tier'), \
                json_get_int(request_object, '/spec/replicas'), \
                json_get_bool(request_object, '/spec/paused'), \
                json_get_float(request_object, '/spec/ratio'), \
                json_get(request_object, '/spec') \
         FROM audit ORDER BY time",
    )
    .await;
    assert_eq!(
        r,
        vec![
            vec![
                json!("f0"),
                json!("web"),
                json!("front"),
                json!(3),
                json!(false),
                json!(0.5),
                json!(r#"{"paused":false,"ratio":0.5,"replicas":3}"#)
            ],
            vec![
                json!("f3"),
                json!("db"),
                Value::Null,
                json!(2),
                json!(true),
                Value::Null,
                json!(r#"{"paused":true,"replicas":"2"}"#)
            ],
            vec![
                json!("f7"),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null
            ],
            vec![
                json!("f8"),
                json!("cache"),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null
            ],
            vec![
                json!("f12"),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null
            ],
        ]
    );
    // In a filter and a group, with pointers from literals.
    let r = rows(
        &store,
        "SELECT count(*) FROM audit WHERE json_get_int(request_object, '/spec/replicas') >= 2",
    )
    .await;
    assert_eq!(r, vec![vec![json!(2)]]);
    let e = error(
        &store,
        "SELECT json_get(request_object, 'metadata.name') FROM audit",
    )
    .await;
    assert!(e.contains("not a JSON pointer"), "{e}");
    let e = error(&store, "SELECT json_get(response_code, '/a') FROM audit").await;
    assert!(e.contains("must be text"), "{e}");
    assert_eq!(
        rows(
            &store,
            "SELECT json_get(NULL, '/a'), json_get('{\"a\":1}', '/a')"
        )
        .await,
        vec![vec![Value::Null, json!("1")]]
    );
}

#[tokio::test]
async fn cidr_contains_matches_v4_v6_and_mapped_and_refuses_bad_networks() {
    let (_dir, store) = store_with_rows().await;
    let r = rows(
        &store,
        "SELECT audit_id, cidr_contains(source_ip, '10.0.0.0/8'), cidr_contains(source_ip, 'fd00::/8') \
         FROM audit ORDER BY time",
    )
    .await;
    assert_eq!(
        r,
        vec![
            vec![json!("f0"), json!(true), json!(false)],
            vec![json!("f3"), json!(false), json!(false)],
            vec![json!("f7"), Value::Null, Value::Null],
            vec![json!("f8"), json!(false), json!(true)],
            vec![json!("f12"), json!(true), json!(false)],
        ]
    );
    let r = rows(
        &store,
        "SELECT count(*) FROM audit WHERE NOT cidr_contains(source_ip, '10.0.0.0/8') \
         AND NOT cidr_contains(source_ip, '192.168.0.0/16')",
    )
    .await;
    assert_eq!(r, vec![vec![json!(1)]]);
    let e = error(
        &store,
        "SELECT cidr_contains(source_ip, '10.0.0/8') FROM audit",
    )
    .await;
    assert!(e.contains("is not a network"), "{e}");
    let e = error(
        &store,
        "SELECT cidr_contains(source_ip, '10.0.0.0/40') FROM audit",
    )
    .await;
    assert!(e.contains("is not a network"), "{e}");
}

#[tokio::test]
async fn match_finds_all_words_on_boundaries_in_any_case() {
    let (_dir, store) = store_with_rows().await;
    let ids = |r: Vec<Vec<Value>>| -> Vec<String> {
        r.into_iter()
            .map(|r| r[0].as_str().unwrap().to_owned())
            .collect()
    };
    let r = rows(
        &store,
        "SELECT audit_id FROM audit WHERE match(response_message, 'connection refused') ORDER BY time",
    )
    .await;
    assert_eq!(ids(r), vec!["f0", "f8", "f12"]);
    let r = rows(
        &store,
        "SELECT audit_id FROM audit WHERE match(response_message, 'GHP_AB12CD') ORDER BY time",
    )
    .await;
    assert_eq!(ids(r), vec!["f3"]);
    let r = rows(
        &store,
        "SELECT audit_id FROM audit WHERE match(response_message, 'ghp_Ab12') ORDER BY time",
    )
    .await;
    assert!(r.is_empty(), "a prefix of a word is not a word: {r:?}");
    let e = error(
        &store,
        "SELECT count(*) FROM audit WHERE match(response_message, '  ')",
    )
    .await;
    assert!(e.contains("holds no word"), "{e}");
    assert_eq!(
        rows(&store, "SELECT match(NULL, 'x')").await,
        vec![vec![Value::Null]]
    );
}

#[tokio::test]
async fn time_bucket_groups_by_fixed_widths_and_regexp_match_works() {
    let (_dir, store) = store_with_rows().await;
    let r = rows(
        &store,
        "SELECT time_bucket('5 minutes', time) AS b, count(*) FROM audit GROUP BY b ORDER BY b",
    )
    .await;
    assert_eq!(
        r,
        vec![
            vec![json!("2026-11-20T09:00:00Z"), json!(2)],
            vec![json!("2026-11-20T09:05:00Z"), json!(2)],
            vec![json!("2026-11-20T09:10:00Z"), json!(1)],
        ]
    );
    // An SQL interval and a short duration give the same buckets.
    let a = rows(
        &store,
        "SELECT time_bucket(INTERVAL '1 hour', time) AS b, count(*) FROM audit GROUP BY b",
    )
    .await;
    let b = rows(
        &store,
        "SELECT time_bucket('1h', time) AS b, count(*) FROM audit GROUP BY b",
    )
    .await;
    assert_eq!(a, b);
    assert_eq!(a, vec![vec![json!("2026-11-20T09:00:00Z"), json!(5)]]);
    let e = error(&store, "SELECT time_bucket('1 month', time) FROM audit").await;
    assert!(e.contains("months"), "{e}");
    let e = error(&store, "SELECT time_bucket('soon', time) FROM audit").await;
    assert!(e.contains("not an interval"), "{e}");

    let r = rows(
        &store,
        "SELECT regexp_match(user_agent, 'kubectl/v([0-9.]+)')[1] AS v, count(*) FROM audit \
         WHERE regexp_like(user_agent, '^kubectl/') GROUP BY v ORDER BY v",
    )
    .await;
    assert_eq!(
        r,
        vec![
            vec![json!("1.29.1"), json!(1)],
            vec![json!("1.30.0"), json!(1)],
            vec![json!("1.31.2"), json!(1)],
        ]
    );
}
