//! Malformed webhook input: each bad body is refused with a clear JSON 4xx, each bad item of a
//! batch is dead-lettered with a clear reason, and the good events beside them are stored.

use serde_json::{json, Value};

use crate::events::{audit_event, event_list, ALICE};
use crate::harness::TestServer;

fn good(id: &str) -> Value {
    audit_event(
        id,
        "ResponseComplete",
        "get",
        ALICE,
        "configmaps",
        "shop",
        "settings",
    )
}

/// A row of the `dead_letter` table.
#[derive(Debug)]
struct DeadLetter {
    kind: String,
    reason: String,
    location: Option<String>,
    size_bytes: u64,
    payload: String,
}

/// The dead letters whose payload mentions `marker`.
async fn dead_letters_mentioning(server: &TestServer, marker: &str) -> Vec<DeadLetter> {
    let rows = server
        .query(&format!(
            "SELECT kind, reason, location, size_bytes, payload FROM dead_letter \
             WHERE payload LIKE '%{marker}%' ORDER BY time"
        ))
        .await;
    rows.into_iter()
        .map(|r| DeadLetter {
            kind: r[0].as_str().unwrap().to_string(),
            reason: r[1].as_str().unwrap().to_string(),
            location: r[2].as_str().map(str::to_string),
            size_bytes: r[3].as_u64().unwrap(),
            payload: r[4].as_str().unwrap().to_string(),
        })
        .collect()
}

/// The single dead letter mentioning `marker`.
async fn dead_letter(server: &TestServer, marker: &str) -> DeadLetter {
    let mut found = dead_letters_mentioning(server, marker).await;
    assert_eq!(
        found.len(),
        1,
        "dead letters mentioning {marker}: {found:?}"
    );
    found.pop().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_refused_or_dead_lettered_and_good_events_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::start(&tmp.path().join("data")).await;
    let api = server.api();
    let token = Some(server.admin.as_str());

    // A batch cut short: its complete items are stored, the partial one is dead-lettered.
    let text = String::from_utf8(event_list(&[
        good("trunc-good-1"),
        good("trunc-good-2"),
        good("trunc-partial"),
    ]))
    .unwrap();
    let cut = text.find("trunc-partial").unwrap() + 40;
    let r = api.post_audit(token, &text[..cut]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.num("accepted"), r.num("dead_letters")), (2, 1));
    let d = dead_letter(&server, "trunc-partial").await;
    assert_eq!(d.kind, "invalid_json");
    assert!(d.reason.contains("truncated"), "{d:?}");
    assert_eq!(d.location.as_deref(), Some("item 2"));

    // Wrong types: a number for `verb`, a string for `user`.
    let mut bad_verb = good("types-bad-verb");
    bad_verb["verb"] = json!(5);
    let mut bad_user = good("types-bad-user");
    bad_user["user"] = json!("x");
    let body = event_list(&[
        good("types-good-1"),
        bad_verb,
        bad_user,
        good("types-good-2"),
    ]);
    let r = api.post_audit(token, body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.num("accepted"), r.num("dead_letters")), (2, 2));
    let d = dead_letter(&server, "types-bad-verb").await;
    assert_eq!(
        (d.kind.as_str(), d.location.as_deref()),
        ("schema", Some("item 1"))
    );
    assert!(
        d.reason
            .contains("invalid type: integer `5`, expected a string"),
        "{d:?}"
    );
    let d = dead_letter(&server, "types-bad-user").await;
    assert_eq!(
        (d.kind.as_str(), d.location.as_deref()),
        ("schema", Some("item 2"))
    );
    assert!(d.reason.contains("invalid type: string \"x\""), "{d:?}");

    // A 10 MB event (a ConfigMap holding a bundle) between two good ones: dead-lettered with
    // its metadata only.
    let mut big = audit_event(
        "big-event",
        "ResponseComplete",
        "create",
        ALICE,
        "configmaps",
        "shop",
        "frontend-bundle",
    );
    big["level"] = json!("Request");
    big["requestObject"] = json!({
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "frontend-bundle", "namespace": "shop"},
        "data": {"main.js": "A".repeat(10 * 1024 * 1024)},
    });
    let body = event_list(&[good("big-good-1"), big, good("big-good-2")]);
    assert!(body.len() > 10 * 1024 * 1024);
    let r = api.post_audit(token, body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.num("accepted"), r.num("dead_letters")), (2, 1));
    let d = dead_letter(&server, "big-event").await;
    assert_eq!(
        (d.kind.as_str(), d.location.as_deref()),
        ("too_large", Some("item 1"))
    );
    assert!(d.size_bytes > 10 * 1024 * 1024, "{}", d.size_bytes);
    assert!(
        d.payload.len() < 4096 && !d.payload.contains("AAAAAAAA"),
        "the dead letter of a huge event keeps more than its metadata: {} bytes",
        d.payload.len()
    );
    let meta: Value = serde_json::from_str(&d.payload).expect("metadata is JSON");
    assert!(meta.to_string().contains("frontend-bundle"), "{meta}");

    // Invalid UTF-8 inside one item.
    let mut marked = good("utf8-bad");
    marked["requestURI"] = json!("/api/v1/namespaces/shop/configmaps/INVALID");
    let body = event_list(&[good("utf8-good-1"), marked, good("utf8-good-2")]);
    let at = body.windows(7).position(|w| w == b"INVALID").unwrap();
    let mut body = body;
    body.splice(at..at + 7, b"\xff\xfe\xc3(".iter().copied());
    let r = api.post_audit(token, body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.num("accepted"), r.num("dead_letters")), (2, 1));
    let d = dead_letter(&server, "utf8-bad").await;
    assert_eq!(
        (d.kind.as_str(), d.location.as_deref()),
        ("invalid_utf8", Some("item 1"))
    );
    assert!(d.reason.contains("UTF-8"), "{d:?}");

    // An empty body and a body that is not JSON: refused as a whole, and kept aside.
    let r = api.post_audit(token, "").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error(), "empty body");
    let r = api
        .post_audit(token, "<html>upstream says hello, not JSON</html>")
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("not valid JSON"), "{}", r.text);
    let d = dead_letter(&server, "upstream says hello").await;
    assert_eq!(d.kind, "invalid_json");
    let empty = server
        .count("SELECT count(*) FROM dead_letter WHERE kind = 'empty' AND size_bytes = 0")
        .await;
    assert_eq!(empty, 1);

    // A body over the 16 MiB limit is refused before it is read.
    let mut huge =
        b"{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"items\":[".to_vec();
    huge.resize(16 * 1024 * 1024 + 1, b' ');
    let r = api.post_audit(token, huge).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert!(
        r.error().contains("larger than 16777216 bytes"),
        "{}",
        r.text
    );

    // The good events of every batch are stored; one dead letter per bad item or body.
    let stored: Vec<String> = server
        .query("SELECT audit_id FROM audit ORDER BY audit_id")
        .await
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        stored,
        [
            "big-good-1",
            "big-good-2",
            "trunc-good-1",
            "trunc-good-2",
            "types-good-1",
            "types-good-2",
            "utf8-good-1",
            "utf8-good-2"
        ]
    );
    assert_eq!(server.count("SELECT count(*) FROM dead_letter").await, 7);
    let unclear = server
        .query("SELECT kind, reason FROM dead_letter WHERE reason = '' OR kind = ''")
        .await;
    assert!(
        unclear.is_empty(),
        "dead letters without a reason: {unclear:?}"
    );
}
