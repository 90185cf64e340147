//! The `kestrel query` command line against a running server, and `/metrics`.

use serde_json::{json, Value};

use crate::events::{audit_event, event_list, CONTROLLER};
use crate::harness::{kestrel_cli, TestServer};

const SQL: &str = "SELECT verb, count(*) AS n FROM audit GROUP BY verb ORDER BY verb";

/// Three `get`s and a `list`, stored through the webhook.
async fn server_with_events(dir: &std::path::Path) -> TestServer {
    let server = TestServer::start(dir).await;
    let items: Vec<Value> = [
        ("cli-1", "get"),
        ("cli-2", "get"),
        ("cli-3", "list"),
        ("cli-4", "get"),
    ]
    .iter()
    .map(|(id, verb)| {
        audit_event(
            id,
            "ResponseComplete",
            verb,
            CONTROLLER,
            "pods",
            "shop",
            "web-0",
        )
    })
    .collect();
    let r = server
        .api()
        .post_audit(Some(&server.admin), event_list(&items))
        .await;
    assert_eq!(r.num("accepted"), 4, "{}", r.text);
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kestrel_query_prints_table_json_and_csv_and_fails_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = server_with_events(&data).await;
    let dir = data.to_str().unwrap();

    // Found through <data-dir>/server.url and admin.token.
    let out = kestrel_cli(&["query", SQL, "--data-dir", dir], &[]);
    assert!(out.status.success(), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("verb") && l.contains('n')),
        "{}",
        out.stdout
    );
    assert!(
        lines.iter().any(|l| l.contains("get") && l.contains('3')),
        "{}",
        out.stdout
    );
    assert!(
        lines.iter().any(|l| l.contains("list") && l.contains('1')),
        "{}",
        out.stdout
    );
    assert_eq!(lines.last(), Some(&"(2 rows)"));

    let out = kestrel_cli(&["query", SQL, "--format", "json", "--data-dir", dir], &[]);
    assert!(out.status.success(), "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).expect("--format json prints JSON");
    assert_eq!(
        v,
        json!([{"verb": "get", "n": 3}, {"verb": "list", "n": 1}])
    );

    let out = kestrel_cli(&["query", SQL, "--format", "csv", "--data-dir", dir], &[]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.stdout, "verb,n\nget,3\nlist,1\n");

    // KESTREL_SERVER and KESTREL_TOKEN, with no data directory to fall back on.
    let viewer = server.create_token("viewer", "cli-viewer");
    let nowhere = tmp.path().join("nowhere");
    let env = [
        ("KESTREL_SERVER", server.url.as_str()),
        ("KESTREL_TOKEN", viewer.as_str()),
    ];
    let out = kestrel_cli(
        &[
            "query",
            SQL,
            "-f",
            "csv",
            "--data-dir",
            nowhere.to_str().unwrap(),
        ],
        &env,
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.stdout, "verb,n\nget,3\nlist,1\n");
    // ... and without them, that empty data directory is a clear error.
    let out = kestrel_cli(
        &["query", SQL, "--data-dir", nowhere.to_str().unwrap()],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        out.stderr.starts_with("error: no server given"),
        "{}",
        out.stderr
    );

    // Errors are one clear line and a non-zero exit.
    for (sql, expected) in [
        ("SELEC verb FROM audit", "sql does not parse"),
        ("DROP TABLE audit", "read-only"),
        ("SELECT nope FROM audit", "nope"),
    ] {
        let out = kestrel_cli(&["query", sql, "--data-dir", dir], &[]);
        assert!(!out.status.success(), "{sql} succeeded");
        assert_eq!(out.stdout, "", "{sql}");
        let err = out.stderr.trim_end();
        assert_eq!(err.lines().count(), 1, "{sql}: not one line:\n{err}");
        assert!(
            err.starts_with("error: ") && err.contains(expected),
            "{sql}: {err}"
        );
    }
    // --since and --until bound every table: the 4 events are from just now.
    for (args, expected) in [
        (&["--since", "1h"][..], "verb,n\nget,3\nlist,1\n"),
        (&["--until", "1h"][..], "verb,n\n"),
        (
            &[
                "--since",
                "2000-01-01T00:00:00Z",
                "--until",
                "2000-01-02T00:00:00Z",
            ][..],
            "verb,n\n",
        ),
    ] {
        let mut argv = vec!["query", SQL, "-f", "csv", "--data-dir", dir];
        argv.extend_from_slice(args);
        let out = kestrel_cli(&argv, &[]);
        assert!(out.status.success(), "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, expected, "{args:?}");
    }
    let out = kestrel_cli(
        &["query", SQL, "--since", "yesterday", "--data-dir", dir],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("since: \"yesterday\" is neither an RFC 3339 time nor a duration"),
        "{}",
        out.stderr
    );

    let bad_token = [
        ("KESTREL_SERVER", server.url.as_str()),
        ("KESTREL_TOKEN", "kst_wrong"),
    ];
    let out = kestrel_cli(&["query", SQL], &bad_token);
    assert!(!out.status.success());
    assert!(
        out.stderr.trim_end().lines().count() == 1 && out.stderr.contains("(HTTP 401)"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_ingested_events_and_wal_syncs() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server_with_events(&tmp.path().join("data")).await;
    let r = server.api().get("/metrics", Some(&server.admin)).await;
    assert_eq!(r.status, 200);
    let value = |name: &str| -> f64 {
        r.text
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{}", r.text))
    };
    assert_eq!(
        value("kestrel_ingest_events_total{source=\"audit_webhook\"}"),
        4.0
    );
    assert!(value("kestrel_store_wal_syncs_total") >= 1.0);
    assert!(r.text.contains("# TYPE kestrel_ingest_events counter"));
}
