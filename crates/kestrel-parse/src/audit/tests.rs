use super::*;
use crate::redact::{LAST_APPLIED, REDACTED};
use proptest::prelude::*;
use serde_json::json;

const SRC: &str = "audit_webhook";
const NOW: i64 = 1_795_165_201_000_000_000;

fn cfg() -> AuditParseConfig {
    AuditParseConfig::default()
}

/// A realistic exec event (level Metadata).
fn exec_event(id: &str) -> String {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": id,
        "stage": "ResponseStarted",
        "requestURI": "/api/v1/namespaces/shop/pods/web-0/exec?command=sh&container=web&stdin=true&tty=true",
        "verb": "create",
        "user": {"username": "alice@example.com", "groups": ["devs", "system:authenticated"]},
        "sourceIPs": ["203.0.113.9"], "userAgent": "kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc",
        "objectRef": {"resource": "pods", "namespace": "shop", "name": "web-0", "apiVersion": "v1", "subresource": "exec"},
        "responseStatus": {"metadata": {}, "code": 101},
        "requestReceivedTimestamp": "2026-11-20T09:00:01.123456Z",
        "stageTimestamp": "2026-11-20T09:00:01.223456Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
    })
    .to_string()
}

/// A create of a Secret at level RequestResponse, carrying `secret` in data, stringData and the
/// last-applied annotation.
fn secret_event(id: &str, secret: &str) -> String {
    let applied = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"}, "stringData": {"password": secret}})
    .to_string();
    let obj = json!({"kind": "Secret", "apiVersion": "v1",
        "metadata": {"name": "db", "namespace": "shop", "annotations": {LAST_APPLIED: applied}},
        "data": {"password": secret}, "stringData": {"plain": secret}, "type": "Opaque"});
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse", "auditID": id,
        "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/shop/secrets", "verb": "create",
        "user": {"username": "alice@example.com"}, "sourceIPs": ["203.0.113.9"],
        "objectRef": {"resource": "secrets", "namespace": "shop", "name": "db", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestObject": obj, "responseObject": obj,
        "stageTimestamp": "2026-11-20T09:00:01.223456Z"
    })
    .to_string()
}

fn list(items: &[String]) -> String {
    format!(
        r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{}]}}"#,
        items.join(",")
    )
}

fn ids(b: &ParsedBatch) -> Vec<&str> {
    b.events.iter().map(|e| e.audit_id.as_str()).collect()
}

fn kinds(b: &ParsedBatch) -> Vec<(&str, &str)> {
    b.dead_letters
        .iter()
        .map(|d| (d.kind.as_str(), d.location.as_deref().unwrap_or("")))
        .collect()
}

fn assert_absent(b: &ParsedBatch, secret: &str) {
    let events = serde_json::to_string(&b.events).unwrap();
    let dls = serde_json::to_string(&b.dead_letters).unwrap();
    assert!(!events.contains(secret), "secret in events: {events}");
    assert!(!dls.contains(secret), "secret in dead letters: {dls}");
}

#[test]
fn event_list_v1_parses_in_one_pass() {
    let body = list(&[exec_event("a"), exec_event("b")]);
    let b = parse_event_list(body.as_bytes(), &cfg(), SRC, NOW).unwrap();
    assert_eq!(ids(&b), ["a", "b"]);
    assert!(b.dead_letters.is_empty());
    assert_eq!(b.events[0].response_code(), Some(101));
}

#[test]
fn v1beta1_lists_bare_arrays_single_events_and_ndjson_are_accepted() {
    let beta = r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1beta1","items":[{"kind":"Event","apiVersion":"audit.k8s.io/v1beta1","metadata":{"creationTimestamp":"2018-10-25T13:58:49Z"},"level":"Request","timestamp":"2018-10-25T13:58:49Z","auditID":"841d3e6d","stage":"ResponseComplete","requestURI":"/api/v1/namespaces","verb":"create","user":{"username":"system:anonymous"},"sourceIPs":["192.168.99.1"]}]}"#;
    let b = parse_event_list(beta.as_bytes(), &cfg(), SRC, NOW).unwrap();
    assert_eq!(ids(&b), ["841d3e6d"]);
    assert!(b.events[0].event_time().is_some());

    let arr = format!("[{},{}]", exec_event("a"), exec_event("b"));
    assert_eq!(
        ids(&parse_event_list(arr.as_bytes(), &cfg(), SRC, NOW).unwrap()),
        ["a", "b"]
    );

    let single = exec_event("s");
    assert_eq!(
        ids(&parse_event_list(single.as_bytes(), &cfg(), SRC, NOW).unwrap()),
        ["s"]
    );

    let nd = format!("{}\n{}\n", exec_event("x"), list(&[exec_event("y")]));
    let b = parse_event_list(nd.as_bytes(), &cfg(), SRC, NOW).unwrap();
    assert_eq!(ids(&b), ["x", "y"]);
    assert!(b.dead_letters.is_empty());

    let no_items = r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{}}"#;
    for c in [
        cfg(),
        AuditParseConfig {
            max_event_bytes: 10,
            ..cfg()
        },
    ] {
        assert_eq!(
            parse_event_list(no_items.as_bytes(), &c, SRC, NOW).unwrap(),
            ParsedBatch::default()
        );
    }
    let empty = r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":null}"#;
    assert_eq!(
        parse_event_list(empty.as_bytes(), &cfg(), SRC, NOW).unwrap(),
        ParsedBatch::default()
    );
}

#[test]
fn bad_items_become_dead_letters_and_never_cost_good_ones() {
    let wrong_type = exec_event("w").replace(r#""verb":"create""#, r#""verb":5"#);
    let missing = exec_event("m").replace(r#""auditID":"m","#, "");
    let bad_json = r#"{"auditID": nope}"#.to_owned();
    let body = list(&[
        exec_event("a"),
        wrong_type,
        "42".to_owned(),
        missing,
        bad_json,
        r#"{"kind":"Status","auditID":"s","stage":"x","verb":"get"}"#.to_owned(),
        exec_event("b"),
    ]);
    let b = parse_event_list(body.as_bytes(), &cfg(), SRC, NOW).unwrap();
    assert_eq!(ids(&b), ["a", "b"]);
    assert_eq!(
        kinds(&b),
        [
            ("schema", "item 1"),
            ("schema", "item 2"),
            ("schema", "item 3"),
            ("invalid_json", "item 4"),
            ("schema", "item 5")
        ]
    );
    let d = &b.dead_letters;
    assert!(
        d[0].reason.contains("invalid type: integer `5`"),
        "{}",
        d[0].reason
    );
    assert!(d[0].reason.contains("column"), "{}", d[0].reason);
    assert_eq!(d[2].reason, "missing required field `auditID`");
    assert!(d[3].reason.contains("line 1 column 14"), "{}", d[3].reason);
    assert!(d[4].reason.contains("unexpected kind `Status`"));
    assert_eq!(d[1].payload, "42");
    assert_eq!(d[1].size_bytes, 2);
    assert!(d.iter().all(|d| d.time == NOW && d.source == SRC));
}

#[test]
fn truncated_body_keeps_complete_items() {
    let body = list(&[
        exec_event("a"),
        exec_event("b"),
        secret_event("c", "c2VjcmV0LXRydW5j"),
    ]);
    let cut = body.find("c2VjcmV0LXRydW5j").unwrap() + 10;
    let b = parse_event_list(&body.as_bytes()[..cut], &cfg(), SRC, NOW).unwrap();
    assert_eq!(ids(&b), ["a", "b"]);
    assert_eq!(kinds(&b), [("invalid_json", "item 2")]);
    let d = &b.dead_letters[0];
    assert!(d.reason.starts_with("truncated"), "{}", d.reason);
    assert!(d.reason.contains("EOF while parsing"), "{}", d.reason);
    assert!(d.payload.contains(r#""auditID":"c""#), "{}", d.payload);
    assert_absent(&b, "c2VjcmV0LXRy");

    // Cut right after a complete item: nothing is lost, nothing is dead-lettered.
    let cut = body.find(r#",{"apiVersion"#).map_or(0, |_| 0) + list(&[exec_event("a")]).len() - 2;
    let b = parse_event_list(&body.as_bytes()[..cut], &cfg(), SRC, NOW).unwrap();
    assert_eq!(ids(&b), ["a"]);
    assert!(b.dead_letters.is_empty(), "{:?}", b.dead_letters);
}

#[test]
fn body_cut_before_its_first_item_is_an_error_with_a_redacted_dead_letter() {
    let body = list(&[secret_event("c", "c2VjcmV0LWZpcnN0")]);
    let cut = &body.as_bytes()[..body.find("c2VjcmV0LWZpcnN0").unwrap() + 8];
    let err = parse_event_list(cut, &cfg(), SRC, NOW).unwrap_err();
    assert_eq!(err.kind(), "invalid_json");
    assert!(err.to_string().contains("EOF while parsing"), "{err}");
    let d = dead_letter_for_body(cut, &err, &cfg(), SRC, NOW);
    assert_eq!(d.size_bytes, cut.len() as i64);
    assert!(!d.payload.contains("c2VjcmV0"), "{}", d.payload);
    assert!(d.payload.contains(r#""auditID":"c""#));
}

#[test]
fn empty_and_non_json_bodies_are_errors() {
    for body in [&b""[..], b"  \r\n\t", b"\xEF\xBB\xBF"] {
        let err = parse_event_list(body, &cfg(), SRC, NOW).unwrap_err();
        assert_eq!(err, BodyError::Empty);
        assert_eq!(
            dead_letter_for_body(body, &err, &cfg(), SRC, NOW).kind,
            "empty"
        );
    }
    let err = parse_event_list(b"hello world", &cfg(), SRC, NOW).unwrap_err();
    assert_eq!(err.kind(), "invalid_json");
    assert!(err.to_string().contains("line 1 column 1"), "{err}");
    let err = parse_event_list(b"42", &cfg(), SRC, NOW).unwrap_err();
    assert_eq!(err.kind(), "schema");
    assert!(err.to_string().contains("a number"), "{err}");
    let err = parse_event_list(b"{\"a\":\"\xff\"", &cfg(), SRC, NOW).unwrap_err();
    assert_eq!(err.kind(), "invalid_utf8");
    let err = parse_event_list(br#"{"kind":"EventList","items":5}"#, &cfg(), SRC, NOW).unwrap_err();
    assert_eq!(err.kind(), "schema");
}

#[test]
fn junk_after_a_list_is_dead_lettered() {
    let body = format!("{} trailing junk", list(&[exec_event("a")]));
    let b = parse_event_list(body.as_bytes(), &cfg(), SRC, NOW).unwrap();
    assert_eq!(ids(&b), ["a"]);
    assert_eq!(b.dead_letters.len(), 1);
    assert_eq!(b.dead_letters[0].kind, "invalid_json");
    assert!(b.dead_letters[0]
        .location
        .as_deref()
        .unwrap()
        .starts_with("byte "));
}

#[test]
fn ten_megabyte_event_is_too_large_and_keeps_only_metadata() {
    let big_value = "A".repeat(10 << 20);
    let big = secret_event("big", &big_value);
    let body = list(&[exec_event("a"), big.clone(), exec_event("b")]);
    let b = parse_event_list(body.as_bytes(), &cfg(), SRC, NOW).unwrap();
    assert_eq!(ids(&b), ["a", "b"]);
    assert_eq!(kinds(&b), [("too_large", "item 1")]);
    let d = &b.dead_letters[0];
    assert_eq!(d.size_bytes, big.len() as i64);
    assert!(d.reason.contains("max_event_bytes"), "{}", d.reason);
    assert!(d.payload.len() < 4096, "{}", d.payload.len());
    assert!(!d.payload.contains("AAAA"));
    let meta: Value = serde_json::from_str(&d.payload).unwrap();
    assert_eq!(meta["auditID"], "big");
    assert_eq!(meta["verb"], "create");
    assert_eq!(meta["stage"], "ResponseComplete");
    assert_eq!(meta["user"]["username"], "alice@example.com");
    assert_eq!(meta["objectRef"]["name"], "db");
    assert_eq!(meta["sourceIPs"][0], "203.0.113.9");
    assert_eq!(meta["stageTimestamp"], "2026-11-20T09:00:01.223456Z");
    assert_eq!(meta["requestURI"], "/api/v1/namespaces/shop/secrets");

    // The same as a log line, and as a single-event body.
    let lines = format!("{}\n{big}\n{}\n", exec_event("a"), exec_event("b"));
    let b = parse_json_lines(lines.as_bytes(), 1, &cfg(), "audit_file", NOW);
    assert_eq!(ids(&b), ["a", "b"]);
    assert_eq!(kinds(&b), [("too_large", "line 2")]);
    let b = parse_event_list(big.as_bytes(), &cfg(), SRC, NOW).unwrap();
    assert_eq!(kinds(&b), [("too_large", "item 0")]);
}

#[test]
fn invalid_utf8_items_and_lines_are_dead_lettered() {
    let mut body = list(&[exec_event("a"), exec_event("bad"), exec_event("b")]).into_bytes();
    let at = body.windows(9).position(|w| w == b"alice@exa").unwrap();
    let second = at
        + 1
        + body[at + 1..]
            .windows(9)
            .position(|w| w == b"alice@exa")
            .unwrap();
    body[second] = 0xff;
    let b = parse_event_list(&body, &cfg(), SRC, NOW).unwrap();
    assert_eq!(ids(&b), ["a", "b"]);
    assert_eq!(kinds(&b), [("invalid_utf8", "item 1")]);
    assert!(b.dead_letters[0].reason.contains("invalid UTF-8 at byte"));
    assert!(b.dead_letters[0].payload.contains('\u{fffd}'));

    let lines = b"{\"auditID\":\"\xc3\x28\",\"stage\":\"ResponseComplete\",\"verb\":\"get\"}\n";
    let b = parse_json_lines(lines, 7, &cfg(), "audit_file", NOW);
    assert_eq!(kinds(&b), [("invalid_utf8", "line 7")]);
}

#[test]
fn json_lines_skip_blanks_count_lines_and_parse_a_final_partial_line() {
    let data = format!(
        "{}\r\n\n   \n{{\"auditID\":\n{}",
        exec_event("a"),
        exec_event("z")
    );
    let b = parse_json_lines(data.as_bytes(), 41, &cfg(), "audit_file", NOW);
    assert_eq!(ids(&b), ["a", "z"]);
    assert_eq!(kinds(&b), [("invalid_json", "line 44")]);
    assert!(
        b.dead_letters[0].reason.contains("line 1 column"),
        "{}",
        b.dead_letters[0].reason
    );
    assert_eq!(
        parse_json_lines(b"", 1, &cfg(), SRC, NOW),
        ParsedBatch::default()
    );
}

#[test]
fn secrets_never_reach_events_or_dead_letters() {
    let s = "UzNjcjN0VmFsdWU=";
    let good = secret_event("a", s);
    let schema_bad = secret_event("b", s).replace(r#""verb":"create""#, r#""verb":[1]"#);
    let truncated = secret_event("c", s);
    let cut = truncated.find(s).unwrap() + 4;
    let body = format!("{}{}", &list(&[good.clone(), schema_bad.clone()])[..], "");
    let b = parse_event_list(body.as_bytes(), &cfg(), SRC, NOW).unwrap();
    assert_eq!(ids(&b), ["a"]);
    assert_eq!(kinds(&b), [("schema", "item 1")]);
    assert_absent(&b, s);
    let req = b.events[0].request_object.as_ref().unwrap();
    assert_eq!(req["data"]["password"], REDACTED);
    assert_eq!(req["type"], "Opaque");

    let lines = format!("{good}\n{schema_bad}\n{}\n", &truncated[..cut]);
    let b = parse_json_lines(lines.as_bytes(), 1, &cfg(), "audit_file", NOW);
    assert_eq!(
        kinds(&b),
        [("schema", "line 2"), ("invalid_json", "line 3")]
    );
    assert_absent(&b, s);
    assert_absent(&b, &s[..4]);

    // Turned off, nothing is touched.
    let off = AuditParseConfig {
        redact: RedactConfig { enabled: false },
        ..cfg()
    };
    let b = parse_event_list(good.as_bytes(), &off, SRC, NOW).unwrap();
    assert!(serde_json::to_string(&b.events).unwrap().contains(s));
}

#[test]
fn dead_letter_payloads_are_cut_with_a_marker() {
    let small = AuditParseConfig {
        max_dead_letter_payload_bytes: 100,
        ..cfg()
    };
    let bad = format!("{{\"auditID\": {}", "x".repeat(1000));
    let b = parse_json_lines(bad.as_bytes(), 1, &small, SRC, NOW);
    let d = &b.dead_letters[0];
    assert!(
        d.payload.len() <= 100 && d.payload.ends_with(TRUNCATED_MARKER),
        "{}",
        d.payload
    );
    assert_eq!(d.size_bytes, bad.len() as i64);
    let big_schema = exec_event("a").replace(
        r#""verb":"create""#,
        &format!(r#""verb":{}"#, "1".repeat(500)),
    );
    let b = parse_json_lines(big_schema.as_bytes(), 1, &small, SRC, NOW);
    assert!(b.dead_letters[0].payload.len() <= 100);
    let err = BodyError::InvalidJson { reason: "x".into() };
    let d = dead_letter_for_body("é".repeat(200).as_bytes(), &err, &small, SRC, NOW);
    assert!(d.payload.len() <= 100 && d.payload.ends_with(TRUNCATED_MARKER));
}

#[test]
fn slow_path_matches_fast_path() {
    let items = [
        exec_event("a"),
        secret_event("b", "c2xvdy1wYXRo"),
        exec_event("c"),
    ];
    let body = list(&items);
    let fast = parse_event_list(body.as_bytes(), &cfg(), SRC, NOW).unwrap();
    // Force the item-by-item path with a limit below the body size.
    let slow_cfg = AuditParseConfig {
        max_event_bytes: body.len() - 1,
        ..cfg()
    };
    let slow = parse_event_list(body.as_bytes(), &slow_cfg, SRC, NOW).unwrap();
    assert_eq!(fast, slow);
    assert_eq!(fast.events.len(), 3);
}

#[test]
fn config_defaults_and_rejects_unknown_keys() {
    let c: AuditParseConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(c, AuditParseConfig::default());
    assert_eq!(c.max_event_bytes, 4 << 20);
    assert_eq!(c.max_dead_letter_payload_bytes, 64 << 10);
    assert!(c.redact.enabled);
    assert!(serde_json::from_str::<AuditParseConfig>(r#"{"max_event_byte":1}"#).is_err());
}

/// Falco's captures: real audit events (v1 and v1beta1), one file per scenario.
#[test]
fn falco_traces_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/compat/falco/traces");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: {} not found", dir.display());
        return;
    };
    let mut files = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let data = std::fs::read(&path).unwrap();
        let b = parse_json_lines(&data, 1, &cfg(), "audit_file", NOW);
        let (events, dead) = match name.as_str() {
            "fal_01_003.json" => (0, 1),
            "create_configmap_sensitive_values.json" => (6, 0),
            _ => (1, 0),
        };
        assert_eq!(
            (b.events.len(), b.dead_letters.len()),
            (events, dead),
            "{name}: {:?}",
            b.dead_letters
        );
        if name == "fal_01_003.json" {
            assert_eq!(b.dead_letters[0].kind, "schema");
            assert!(parse_event_list(&data, &cfg(), SRC, NOW)
                .unwrap()
                .events
                .is_empty());
        } else {
            // As a webhook body (NDJSON) the same events come out.
            let w = parse_event_list(&data, &cfg(), SRC, NOW).unwrap();
            assert_eq!(w.events, b.events, "{name}");
        }
        files += 1;
    }
    assert!(files >= 40, "{files}");
}

fn any_secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/]{12,24}".prop_map(|s| format!("S3CR{s}"))
}

/// Places `secret` somewhere a secret lives.
fn secret_shapes(secret: &str) -> Vec<Value> {
    let sec = |resource: &str, sub: Option<&str>, req: Value, resp: Value| {
        json!({"auditID": "x", "stage": "ResponseComplete", "verb": "patch",
            "objectRef": {"resource": resource, "subresource": sub},
            "requestObject": req, "responseObject": resp})
    };
    let applied = json!({"kind": "Secret", "data": {"k": secret}}).to_string();
    vec![
        sec(
            "secrets",
            None,
            json!({"kind": "Secret", "data": {"k": secret}}),
            json!({"kind": "Secret", "stringData": {"k": secret}}),
        ),
        sec("secrets", None, json!({"data": {"k": secret}}), json!(null)),
        sec(
            "secrets",
            None,
            json!([{"op": "add", "path": "/data/k", "value": secret}]),
            json!(null),
        ),
        sec(
            "secrets",
            None,
            json!(null),
            json!({"kind": "SecretList", "items": [{"data": {"k": secret}}]}),
        ),
        sec(
            "secrets",
            None,
            json!(null),
            json!({"kind": "Table", "rows": [{"object": {"data": {"k": secret}}}]}),
        ),
        sec(
            "deployments",
            None,
            json!({"kind": "Deployment", "metadata": {"annotations": {LAST_APPLIED: applied}}}),
            json!(null),
        ),
        sec(
            "serviceaccounts",
            Some("token"),
            json!(null),
            json!({"status": {"token": secret}}),
        ),
        sec(
            "tokenreviews",
            None,
            json!({"kind": "TokenReview", "spec": {"token": secret}}),
            json!(null),
        ),
        sec(
            "configmaps",
            None,
            json!({"kind": "List", "items": [{"kind": "Secret", "data": {"k": secret}}]}),
            json!(null),
        ),
    ]
}

proptest! {
    #[test]
    fn json_lines_never_panic_and_account_for_every_line(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let b = parse_json_lines(&data, 1, &cfg(), SRC, NOW);
        let non_blank = data
            .split(|&c| c == b'\n')
            .filter(|l| scan::skip_ws(l, 0) < l.len())
            .count();
        prop_assert_eq!(b.events.len() + b.dead_letters.len(), non_blank);
    }

    #[test]
    fn good_lines_survive_any_garbage_between_them(
        lines in proptest::collection::vec(prop_oneof![
            "[a-z]{1,8}".prop_map(|id| (true, exec_event(&id))),
            "[^\r\n]{0,60}".prop_map(|g| (false, g)),
        ], 0..20)
    ) {
        let data = lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n");
        let b = parse_json_lines(data.as_bytes(), 1, &cfg(), SRC, NOW);
        let want: Vec<String> = lines
            .iter()
            .filter(|(good, _)| *good)
            .map(|(_, l)| serde_json::from_str::<AuditEvent>(l).unwrap().audit_id)
            .collect();
        let got: Vec<String> = b.events.iter().map(|e| e.audit_id.clone()).collect();
        prop_assert_eq!(got, want);
        let garbage = lines.iter().filter(|(good, l)| !good && scan::skip_ws(l.as_bytes(), 0) < l.len()).count();
        prop_assert_eq!(b.dead_letters.len(), garbage);
    }

    #[test]
    fn event_list_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(b) = parse_event_list(&data, &cfg(), SRC, NOW) {
            let mut locs: Vec<&str> = b.dead_letters.iter().filter_map(|d| d.location.as_deref()).collect();
            let n = locs.len();
            locs.dedup();
            prop_assert_eq!(locs.len(), n);
        }
    }

    #[test]
    fn truncated_lists_keep_every_complete_item(n in 1usize..6, cut_frac in 0.0f64..1.0) {
        let items: Vec<String> = (0..n).map(|i| exec_event(&format!("id{i}"))).collect();
        let body = list(&items);
        let cut = (body.len() as f64 * cut_frac) as usize;
        let head = &body.as_bytes()[..cut];
        // Items wholly inside the cut.
        let prefix_len = body.find("\"items\":[").unwrap() + 9;
        let mut end = prefix_len;
        let mut complete = 0;
        for it in &items {
            end += it.len();
            if end <= cut { complete += 1; }
            end += 1;
        }
        match parse_event_list(head, &cfg(), SRC, NOW) {
            Ok(b) => {
                prop_assert_eq!(b.events.len(), complete);
                prop_assert!(b.dead_letters.len() <= 1);
            }
            Err(_) => prop_assert_eq!(complete, 0),
        }
    }

    #[test]
    fn redaction_is_idempotent_and_leaves_no_secret(secret in any_secret()) {
        for shape in secret_shapes(&secret) {
            let mut e: AuditEvent = serde_json::from_value(shape.clone()).unwrap();
            redact_event(&mut e);
            let once = e.clone();
            prop_assert!(!serde_json::to_string(&e).unwrap().contains(&secret), "{:?}", e);
            redact_event(&mut e);
            prop_assert_eq!(&e, &once);
            let mut v = shape;
            redact_value(&mut v);
            prop_assert!(!v.to_string().contains(&secret));
        }
    }

    #[test]
    fn lexical_redaction_masks_any_cut_of_a_secret_body(secret in any_secret(), cut_frac in 0.0f64..1.0) {
        let body = secret_event("a", &secret);
        let mut cut = (body.len() as f64 * cut_frac) as usize;
        while !body.is_char_boundary(cut) { cut -= 1; }
        let r = crate::redact::redact_lexical(&body[..cut]);
        prop_assert!(!r.contains(&secret), "{}", r);
    }
}

/// Rough throughput check: `cargo test --release -p kestrel-parse -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    let falco = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/compat/falco/traces/create_nginx_pod_privileged.json");
    let pod = std::fs::read_to_string(falco).unwrap_or_else(|_| secret_event("p", "x"));
    let pod = pod.trim();
    let items: Vec<String> = (0..400)
        .map(|i| match i % 4 {
            0 => exec_event(&format!("e{i}")),
            1 => secret_event(&format!("s{i}"), "c2VjcmV0"),
            _ => pod.to_owned(),
        })
        .collect();
    let body = list(&items);
    let lines = items.join("\n");
    let list_run = || {
        parse_event_list(body.as_bytes(), &cfg(), SRC, NOW)
            .unwrap()
            .events
            .len()
    };
    let lines_run = || {
        parse_json_lines(lines.as_bytes(), 1, &cfg(), SRC, NOW)
            .events
            .len()
    };
    let runs: [(&str, &dyn Fn() -> usize); 2] =
        [("event_list", &list_run), ("json_lines", &lines_run)];
    for (name, f) in runs {
        let start = std::time::Instant::now();
        let mut n = 0;
        while start.elapsed().as_secs_f64() < 2.0 {
            n += f();
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "{name}: {:.0} events/s, {:.0} MB/s (avg event {} bytes)",
            n as f64 / secs,
            n as f64 * (body.len() as f64 / 400.0) / secs / 1e6,
            body.len() / 400
        );
    }
}

#[test]
#[ignore]
fn throughput_parts() {
    let falco = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/compat/falco/traces/create_nginx_pod_privileged.json");
    let pod = std::fs::read_to_string(falco).unwrap();
    let pod = pod.trim().to_owned();
    let exec = exec_event("a");
    let sec = secret_event("s", "c2VjcmV0");
    let time = |name: &str, f: &dyn Fn() -> usize| {
        let start = std::time::Instant::now();
        let mut n = 0;
        while start.elapsed().as_secs_f64() < 1.0 {
            for _ in 0..100 {
                n += f();
            }
        }
        eprintln!("{name}: {:.0}/s", n as f64 / start.elapsed().as_secs_f64());
    };
    for (label, s) in [("pod", &pod), ("exec", &exec), ("secret", &sec)] {
        eprintln!("{label}: {} bytes", s.len());
        time("  AuditEvent", &|| {
            serde_json::from_str::<AuditEvent>(s).map_or(0, |_| 1)
        });
        time("  Value", &|| {
            serde_json::from_str::<Value>(s).map_or(0, |_| 1)
        });
        time("  IgnoredAny", &|| {
            serde_json::from_str::<serde::de::IgnoredAny>(s).map_or(0, |_| 1)
        });
        time("  lines", &|| {
            parse_json_lines(s.as_bytes(), 1, &cfg(), SRC, NOW)
                .events
                .len()
        });
        let e: AuditEvent = serde_json::from_str(s).unwrap();
        time("  redact", &|| {
            let mut e2 = e.clone();
            redact_event(&mut e2);
            1
        });
        time("  clone", &|| {
            let _e2 = e.clone();
            1
        });
    }
}

fn any_item() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{1,12}".prop_map(|id| exec_event(&id)),
        ("[a-z]{1,8}", any_secret()).prop_map(|(id, s)| secret_event(&id, &s)),
        "[a-z]{1,8}".prop_map(|id| exec_event(&id).replace(r#""stage":"ResponseStarted","#, "")),
        "[a-z]{1,8}".prop_map(|id| exec_event(&id).replace(r#""verb":"create""#, r#""verb":{}"#)),
        any::<i64>().prop_map(|n| n.to_string()),
        "\\PC{0,10}".prop_map(|s| Value::String(s).to_string()),
        Just("null".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
    ]
}

proptest! {
    /// What the `audit_event_list` fuzz target asserts, on structured bodies: every item is
    /// accounted for, and the one-pass and item-by-item paths agree.
    #[test]
    fn every_item_of_a_valid_body_is_an_event_or_a_dead_letter(
        items in proptest::collection::vec(any_item(), 0..8),
        shape in 0..3u8,
    ) {
        let body = match shape {
            0 => list(&items),
            1 => format!("[{}]", items.join(",")),
            _ => items.join("\n"),
        };
        let n = items.len();
        let fast = parse_event_list(body.as_bytes(), &cfg(), SRC, NOW);
        let largest = items.iter().map(String::len).max().unwrap_or(0);
        let slow_cfg = AuditParseConfig { max_event_bytes: largest.max(1), ..cfg() };
        let slow = parse_event_list(body.as_bytes(), &slow_cfg, SRC, NOW);
        match (&fast, shape) {
            (Ok(b), 0 | 1) => prop_assert_eq!(b.events.len() + b.dead_letters.len(), n),
            (Ok(b), _) => {
                // Scalars between objects in NDJSON are junk: the rest of the body is one dead letter.
                prop_assert!(b.events.len() + b.dead_letters.len() <= n);
            }
            (Err(_), _) => prop_assert!(shape == 2),
        }
        if body.len() > largest {
            prop_assert_eq!(&fast, &slow);
        }
        if let Ok(b) = &fast {
            for e in &b.events {
                let line = serde_json::to_string(e).unwrap();
                let again = parse_json_lines(line.as_bytes(), 1, &cfg(), SRC, NOW);
                prop_assert_eq!(again.events.as_slice(), std::slice::from_ref(e));
            }
            let all = serde_json::to_string(&b.events).unwrap()
                + &serde_json::to_string(&b.dead_letters).unwrap();
            prop_assert!(!all.contains("S3CR"), "{}", all);
        }
    }
}
