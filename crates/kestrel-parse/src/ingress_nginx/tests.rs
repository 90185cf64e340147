use super::*;
use crate::testdata;
use proptest::prelude::*;

const T0: i64 = 1_795_165_201_000_000_000; // 2026-11-20T09:00:01Z
const SEC: i64 = 1_000_000_000;

fn lines() -> Vec<Vec<u8>> {
    testdata::lines("ingress-nginx/access.log")
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

#[test]
fn every_sample_line_parses() {
    let f = IngressFormat::default();
    for (i, line) in lines().iter().enumerate() {
        let rec = f
            .parse(line, None)
            .unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        assert!(rec.status.is_some(), "line {}", i + 1);
        assert_eq!(rec.fields, None);
        // With the runtime's time given, it wins over $time_local.
        assert_eq!(f.parse(line, Some(7)).unwrap().time, 7);
    }
}

#[test]
fn a_whole_record() {
    let rec = parse_ingress_default(&lines()[0], Some(T0 + 123)).unwrap();
    assert_eq!(
        rec,
        IngressAccess {
            time: T0 + 123,
            client_ip: s("10.244.1.7"),
            remote_user: None,
            method: s("GET"),
            host: None,
            path: s("/healthz"),
            protocol: s("HTTP/1.1"),
            status: Some(200),
            body_bytes: Some(2),
            referer: None,
            user_agent: s("kube-probe/1.31"),
            request_bytes: Some(112),
            request_time: Some(0.001),
            upstream_name: s("default-web-80"),
            upstream_alternative: s(""),
            upstream_addr: s("10.244.2.15:8080"),
            upstream_bytes: s("2"),
            upstream_time: s("0.001"),
            upstream_status: s("200"),
            request_id: s("5f3c8a1e2b7d4c6f9a0b1c2d3e4f5a6b"),
            fields: None,
        }
    );
}

#[test]
fn time_local_is_used_without_a_runtime_time() {
    let l = lines();
    assert_eq!(parse_ingress_default(&l[0], None).unwrap().time, T0);
    // 09:00:20 +0100 is 08:00:20 UTC.
    assert_eq!(
        parse_ingress_default(&l[19], None).unwrap().time,
        T0 + 19 * SEC - 3600 * SEC
    );
}

#[test]
fn ipv6_clients_users_and_upstreams() {
    let l = lines();
    let r = parse_ingress_default(&l[2], None).unwrap();
    assert_eq!(r.client_ip, s("2001:db8:85a3::8a2e:370:7334"));
    assert_eq!((r.method, r.status), (s("POST"), Some(401)));
    let r = parse_ingress_default(&l[3], None).unwrap();
    assert_eq!(r.remote_user, s("admin"));
    let r = parse_ingress_default(&l[15], None).unwrap();
    assert_eq!(r.upstream_addr, s("[fd00:10:244:1::17]:9090"));
    let r = parse_ingress_default(&l[16], None).unwrap();
    assert_eq!(r.client_ip, s("fd00:10:96::1"));
    assert_eq!((r.status, r.request_time), (Some(499), Some(12.501)));
    assert_eq!(r.upstream_status, None);
    let r = parse_ingress_default(&l[23], None).unwrap();
    assert_eq!(r.upstream_addr, s("unix:/var/run/chat.sock"));
}

#[test]
fn several_upstreams_stay_together() {
    let l = lines();
    let r = parse_ingress_default(&l[8], None).unwrap();
    assert_eq!(
        r.upstream_addr,
        s("10.244.3.40:8080, 10.244.3.41:8080, 10.244.3.42:8080")
    );
    assert_eq!(r.upstream_bytes, s("0, 0, 150"));
    assert_eq!(r.upstream_time, s("0.020, 0.020, 0.021"));
    assert_eq!(r.upstream_status, s("502, 502, 502"));
    assert_eq!(r.request_id, s("5e6f708192a3b4c5d6e7f8091a2b3c4d"));
    // An internal redirect adds ` : ` between groups.
    let r = parse_ingress_default(&l[9], None).unwrap();
    assert_eq!(
        r.upstream_addr,
        s("10.244.3.40:8080, 10.244.3.41:8080 : 10.244.4.9:8080")
    );
    assert_eq!(r.upstream_bytes, s("0, 0 : 932"));
    assert_eq!(r.upstream_time, s("0.020, 0.001 : 0.020"));
    assert_eq!(r.upstream_status, s("502, 502 : 200"));
    assert_eq!(r.request_id, s("6f708192a3b4c5d6e7f8091a2b3c4d5e"));
    let r = parse_ingress_default(&l[10], None).unwrap();
    assert_eq!(r.upstream_alternative, s("shop-web-canary-80"));
}

#[test]
fn escaped_quotes_and_bytes_are_decoded() {
    let l = lines();
    let r = parse_ingress_default(&l[6], None).unwrap();
    assert_eq!(r.path, s("/search?q=\"quoted\""));
    assert_eq!(r.referer, s("https://www.example.org/?ref=\"x\""));
    assert_eq!(r.user_agent, s("Mozilla/5.0 \"Evil\" Agent"));
    let r = parse_ingress_default(&l[7], None).unwrap();
    assert_eq!(r.user_agent, s("agent with \"json\" escapes"));
    let r = parse_ingress_default(&l[17], None).unwrap();
    assert_eq!(r.path, s("/café/menu"));
    assert_eq!(r.user_agent, s("Mozilla/5.0 (Linux; Android 15) 日本"));
    let r = parse_ingress_default(&l[18], None).unwrap();
    assert_eq!(r.user_agent, s("bad\u{fffd}byte-agent"));
    let r = parse_ingress_default(&l[26], None).unwrap();
    assert_eq!(r.user_agent, s("Apollo/3.11 (web) \\ backslash"));
    let r = parse_ingress_default(&l[5], None).unwrap();
    assert!(r.user_agent.unwrap().starts_with("${jndi:ldap://"));
}

#[test]
fn odd_requests_are_kept() {
    let l = lines();
    let r = parse_ingress_default(&l[11], None).unwrap();
    assert_eq!((r.method, r.protocol), (None, None));
    assert_eq!(
        r.path,
        s("\u{16}\u{3}\u{1}\0\u{fffd}\u{1}\0\0\u{fffd}\u{3}\u{3}")
    );
    assert_eq!(
        (r.status, r.upstream_name, r.upstream_addr),
        (Some(400), s(""), None)
    );
    let r = parse_ingress_default(&l[12], None).unwrap();
    assert_eq!((r.method, r.path, r.protocol), (None, None, None));
    let r = parse_ingress_default(&l[13], None).unwrap();
    assert_eq!(r.method, s("PROPFIND"));
    let r = parse_ingress_default(&l[20], None).unwrap();
    assert_eq!(r.user_agent, s(""));
}

#[test]
fn malformed_lines_say_what_and_where() {
    let bad = testdata::lines("ingress-nginx/malformed.log");
    let e = |i: usize| parse_ingress_default(&bad[i], Some(1)).unwrap_err();
    assert_eq!(e(0), IngressError::Empty);
    assert_eq!(
        e(1),
        IngressError::Unterminated {
            variable: "proxy_upstream_name".into(),
            expected: "] [".into(),
            at: 107
        }
    );
    assert_eq!(
        e(2),
        IngressError::Value {
            variable: "status".into(),
            at: 68,
            value: "abc".into(),
            reason: "expected an HTTP status"
        }
    );
    assert_eq!(
        e(3),
        IngressError::Unterminated {
            variable: "request".into(),
            expected: "\" ".into(),
            at: 45
        }
    );
    assert_eq!(
        e(4),
        IngressError::Unterminated {
            variable: "remote_addr".into(),
            expected: " - ".into(),
            at: 0
        }
    );
    assert_eq!(e(5).kind(), "format_mismatch");
    // `$time_local` only matters when no runtime time is given.
    assert!(parse_ingress_default(&bad[6], Some(1)).is_ok());
    assert_eq!(
        parse_ingress_default(&bad[6], None).unwrap_err(),
        IngressError::Value {
            variable: "time_local".into(),
            at: 16,
            value: "yesterday".into(),
            reason: "expected a time like 20/Nov/2026:09:00:01 +0000"
        }
    );
    assert_eq!(
        e(7),
        IngressError::Value {
            variable: "body_bytes_sent".into(),
            at: 65,
            value: "-5".into(),
            reason: "expected a byte count"
        }
    );
    assert_eq!(
        e(7).to_string(),
        "`$body_bytes_sent` at byte 65 is `-5`: expected a byte count"
    );
    // A huge line without the format's separators.
    let huge = vec![b'x'; 1 << 20];
    assert_eq!(
        parse_ingress_default(&huge, Some(1)).unwrap_err().kind(),
        "format_mismatch"
    );
}

#[test]
fn configured_formats() {
    let f = IngressFormat::new(
        "$remote_addr [$time_iso8601] $host \"$request_method ${request_uri} $server_protocol\" \
         $status $request_id xff=\"$http_x_forwarded_for\" tls=$ssl_protocol",
    )
    .unwrap();
    let r = f
        .parse(
            b"10.1.2.3 [2026-11-20T09:00:01+00:00] api.example.com \"PUT /v1/x?y=1 HTTP/1.1\" \
              201 abc123 xff=\"198.51.100.1, 10.0.0.1\" tls=TLSv1.3",
            None,
        )
        .unwrap();
    assert_eq!(r.time, T0);
    assert_eq!(r.host, s("api.example.com"));
    assert_eq!(
        (r.method, r.path, r.protocol),
        (s("PUT"), s("/v1/x?y=1"), s("HTTP/1.1"))
    );
    assert_eq!((r.status, r.request_id), (Some(201), s("abc123")));
    assert_eq!(
        r.fields,
        s(r#"{"http_x_forwarded_for":"198.51.100.1, 10.0.0.1","ssl_protocol":"TLSv1.3"}"#)
    );
    // Without any time variable the caller must pass one.
    let f = IngressFormat::new("$remote_addr $status").unwrap();
    assert_eq!(
        f.parse(b"1.2.3.4 200", None).unwrap_err(),
        IngressError::NoTime
    );
    assert_eq!(f.parse(b"1.2.3.4 200", Some(5)).unwrap().time, 5);
    // `$msec`.
    let f = IngressFormat::new("$msec $status").unwrap();
    assert_eq!(
        f.parse(b"1795165201.250 200", None).unwrap().time,
        T0 + 250_000_000
    );
}

#[test]
fn json_formats_with_escape_json() {
    let f = IngressFormat::new(
        r#"{"time": "$time_iso8601", "remote_addr": "$remote_addr", "request": "$request", "status": $status, "user_agent": "$http_user_agent"}"#,
    )
    .unwrap();
    let r = f
        .parse(
            br#"{"time": "2026-11-20T09:00:01+00:00", "remote_addr": "10.0.0.9", "request": "GET /a\"b HTTP/1.1", "status": 200, "user_agent": "say \"hi\" \\ \u00e9"}"#,
            None,
        )
        .unwrap();
    assert_eq!(r.path, s("/a\"b"));
    assert_eq!(r.user_agent, s("say \"hi\" \\ é"));
    assert_eq!(r.status, Some(200));
}

#[test]
fn format_errors() {
    assert_eq!(
        IngressFormat::new("no vars").unwrap_err(),
        FormatError::NoVariables
    );
    assert_eq!(
        IngressFormat::new("$a - $status$body_bytes_sent").unwrap_err(),
        FormatError::Adjacent {
            first: "status".into(),
            second: "body_bytes_sent".into(),
            at: 5
        }
    );
    assert_eq!(
        IngressFormat::new("$a $ b").unwrap_err(),
        FormatError::BadVariable { at: 3 }
    );
    assert_eq!(
        IngressFormat::new("$a ${b").unwrap_err(),
        FormatError::BadVariable { at: 3 }
    );
}

#[test]
fn time_local_parser() {
    assert_eq!(parse_time_local(b"20/Nov/2026:09:00:01 +0000"), Some(T0));
    assert_eq!(parse_time_local(b"20/Nov/2026:11:30:01 +0230"), Some(T0));
    assert_eq!(
        parse_time_local(b"20/Nov/2026:09:00:01 -0100"),
        Some(T0 + 3600 * SEC)
    );
    assert_eq!(parse_time_local(b"20/Foo/2026:09:00:01 +0000"), None);
    assert_eq!(parse_time_local(b"31/Nov/2026:09:00:01 +0000"), None);
    assert_eq!(parse_time_local(b"20/Nov/2026:09:00:01"), None);
}

proptest! {
    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_ingress_default(&bytes, None);
        let _ = parse_ingress_default(&bytes, Some(1));
    }

    #[test]
    fn never_panics_on_mutated_samples(line in 0usize..28, pos in 0usize..300, byte in any::<u8>()) {
        let mut l = lines()[line].clone();
        let at = pos % l.len();
        l[at] = byte;
        let _ = parse_ingress_default(&l, None);
    }

    #[test]
    fn formatted_lines_round_trip(
        ip in "[0-9a-f:.]{3,39}",
        path in "/[ -~]{0,40}",
        ua in "[ -~]{0,60}",
        status in 100u16..600,
        bytes in any::<u32>(),
    ) {
        let esc = |v: &str| v.replace('\\', "\\x5C").replace('"', "\\x22");
        let line = format!(
            "{ip} - - [20/Nov/2026:09:00:01 +0000] \"GET {} HTTP/1.1\" {status} {bytes} \"-\" \"{}\" 10 0.5 [up] [] 10.0.0.1:80 {bytes} 0.4 {status} rid",
            esc(&path), esc(&ua)
        );
        let r = parse_ingress_default(line.as_bytes(), None).unwrap();
        prop_assert_eq!(r.client_ip, Some(ip));
        prop_assert_eq!(r.path, Some(path));
        prop_assert_eq!(r.user_agent, if ua == "-" { None } else { Some(ua) });
        prop_assert_eq!(r.status, Some(status));
        prop_assert_eq!(r.body_bytes, Some(u64::from(bytes)));
        prop_assert_eq!(r.request_id, Some("rid".to_owned()));
    }
}
