//! SQL over HTTP is read-only: every statement that defines, changes or writes anything is
//! refused with 403, files cannot be read as tables, and syntax errors carry the parser's words.

use crate::events::{audit_event, event_list, ALICE};
use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_select_is_allowed_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(&tmp.path().join("data")).await;
    let api = server.api();
    let admin = server.admin.as_str();
    let event = audit_event(
        "sql-1",
        "ResponseComplete",
        "get",
        ALICE,
        "pods",
        "shop",
        "web-0",
    );
    assert_eq!(
        api.post_audit(Some(admin), event_list(&[event]))
            .await
            .status,
        200
    );

    let copy_target = tmp.path().join("copied.csv");
    let forbidden = [
        "CREATE TABLE t (a INT)".to_string(),
        "CREATE TABLE t AS SELECT * FROM audit".to_string(),
        "CREATE EXTERNAL TABLE passwd (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'"
            .to_string(),
        "INSERT INTO audit (audit_id, verb) VALUES ('x', 'delete')".to_string(),
        "UPDATE audit SET verb = 'x'".to_string(),
        "DELETE FROM audit".to_string(),
        "DROP TABLE audit".to_string(),
        format!("COPY (SELECT * FROM audit) TO '{}'", copy_target.display()),
        format!("COPY audit TO '{}' STORED AS CSV", copy_target.display()),
        "CREATE VIEW v AS SELECT * FROM audit".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
        "SELECT 1; DROP TABLE audit".to_string(),
    ];
    for sql in &forbidden {
        let r = api.query(admin, sql).await;
        assert_eq!(r.status, 403, "{sql}: {}", r.text);
        let msg = r.error();
        assert!(
            msg.contains("read-only") || msg.contains("only one statement"),
            "{sql}: {msg}"
        );
    }
    assert!(!copy_target.exists(), "COPY wrote a file");

    // Files are not tables, nor table functions.
    for sql in [
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_parquet('/etc/passwd')",
    ] {
        let r = api.query(admin, sql).await;
        assert!(
            (400..500).contains(&r.status),
            "{sql}: {} {}",
            r.status,
            r.text
        );
        r.error();
        assert!(!r.text.contains("root:"), "{sql} read the file: {}", r.text);
    }

    // A syntax error: 400 with the parser's message.
    let r = api.query(admin, "SELEC verb FROM audit").await;
    assert_eq!(r.status, 400);
    let msg = r.error();
    assert!(
        msg.contains("does not parse") && msg.contains("SELEC"),
        "{msg}"
    );

    // Nothing was changed.
    assert_eq!(
        server.query("SELECT audit_id, verb FROM audit").await,
        [[serde_json::json!("sql-1"), serde_json::json!("get")]]
    );
}
