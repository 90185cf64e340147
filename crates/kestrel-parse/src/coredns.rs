//! CoreDNS query log lines (the `log` plugin's default format):
//! `[INFO] 10.244.1.7:52613 - 31337 "A IN api.example.com. udp 33 false 512" NOERROR qr,rd,ra 94 0.000211s`.
//!
//! The same container also prints startup banners, reload notices and `[ERROR] plugin/errors`
//! lines; those are "not a query" (`Ok(None)`), not errors, so the agent skips them.

use kestrel_event::DnsQuery;

/// Why a query log line could not be read. Byte offsets count from the start of the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorednsError {
    /// The line ends before `field`.
    #[error("line ends at byte {at} before the {field} field")]
    Missing { field: &'static str, at: usize },
    #[error("{field} at byte {at} is `{value}`: {reason}")]
    Value {
        field: &'static str,
        at: usize,
        value: String,
        reason: &'static str,
    },
}

impl CorednsError {
    /// Short machine-readable cause for a dead letter.
    pub fn kind(&self) -> &'static str {
        match self {
            CorednsError::Missing { .. } => "truncated",
            CorednsError::Value { .. } => "invalid_value",
        }
    }
}

fn value_error(field: &'static str, at: usize, value: &[u8], reason: &'static str) -> CorednsError {
    CorednsError::Value {
        field,
        at,
        value: String::from_utf8_lossy(&value[..value.len().min(64)]).into_owned(),
        reason,
    }
}

/// Parses one line (a trailing `\n` is ignored). `time` is the container runtime's time of the
/// line (CoreDNS prints none of its own). Returns `Ok(None)` for lines that are not query logs.
pub fn parse_coredns(line: &[u8], time: i64) -> Result<Option<DnsQuery>, CorednsError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut pos = skip_level(line);
    // `{remote}:{port} - `: anything else is not a query log line.
    let Some((ip, port, after)) = client(line, pos) else {
        return Ok(None);
    };
    pos = after;
    let mut q = DnsQuery {
        time,
        client_ip: Some(String::from_utf8_lossy(ip).into_owned()),
        client_port: Some(port),
        ..Default::default()
    };
    // `{>id} "`
    let (id, next) = token(line, pos, "query id")?;
    q.query_id = opt_num(id, pos, "query id")?;
    pos = next;
    if line.get(pos) != Some(&b'"') {
        return Err(match line.get(pos) {
            None => CorednsError::Missing {
                field: "question",
                at: pos,
            },
            Some(_) => value_error("question", pos, &line[pos..], "expected `\"`"),
        });
    }
    let q_start = pos + 1;
    let q_end = closing_quote(line, q_start).ok_or(CorednsError::Missing {
        field: "closing quote of the question",
        at: line.len(),
    })?;
    question(&line[q_start..q_end], q_start, &mut q)?;
    pos = q_end + 1;
    if line.get(pos) != Some(&b' ') {
        return Err(CorednsError::Missing {
            field: "rcode",
            at: pos,
        });
    }
    pos += 1;
    // `{rcode} {>rflags} {rsize} {duration}`; empty flags leave two spaces.
    let (rcode, next) = token(line, pos, "rcode")?;
    q.rcode = opt_text(rcode);
    pos = next;
    let (flags, next) = token(line, pos, "response flags")?;
    q.response_flags = opt_text(flags);
    pos = next;
    let (rsize, next) = token(line, pos, "response size")?;
    q.response_bytes = opt_num(rsize, pos, "response size")?;
    pos = next;
    let duration = &line[pos.min(line.len())..];
    if duration.is_empty() {
        return Err(CorednsError::Missing {
            field: "duration",
            at: line.len(),
        });
    }
    if duration != b"-" {
        q.duration_ns = Some(parse_duration_ns(duration).ok_or_else(|| {
            value_error(
                "duration",
                pos,
                duration,
                "expected a duration like 0.000211s",
            )
        })?);
    }
    Ok(Some(q))
}

/// Index after an optional `[INFO] ` (any upper-case level).
fn skip_level(line: &[u8]) -> usize {
    if line.first() == Some(&b'[') {
        if let Some(end) = memchr::memchr(b']', line) {
            let level = &line[1..end];
            if !level.is_empty()
                && level.iter().all(u8::is_ascii_uppercase)
                && line.get(end + 1) == Some(&b' ')
            {
                return end + 2;
            }
        }
    }
    0
}

/// `ip:port - ` or `[ipv6]:port - ` at `pos`: the address, port and the index after `- `.
fn client(line: &[u8], pos: usize) -> Option<(&[u8], u16, usize)> {
    let rest = &line[pos..];
    let sp = memchr::memmem::find(rest, b" - ")?;
    let addr = &rest[..sp];
    let (ip, port) = match addr.strip_prefix(b"[") {
        Some(v6) => {
            let close = memchr::memmem::find(v6, b"]:")?;
            (&v6[..close], &v6[close + 2..])
        }
        None => {
            let colon = memchr::memrchr(b':', addr)?;
            (&addr[..colon], &addr[colon + 1..])
        }
    };
    let ip_ok = !ip.is_empty()
        && ip
            .iter()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, b'.' | b':' | b'%'));
    if !ip_ok || port.is_empty() || !port.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let port = std::str::from_utf8(port).ok()?.parse().ok()?;
    Some((ip, port, pos + sp + 3))
}

/// The text up to the next space from `pos`, and the index after that space.
fn token<'a>(
    line: &'a [u8],
    pos: usize,
    field: &'static str,
) -> Result<(&'a [u8], usize), CorednsError> {
    let rest = line.get(pos..).unwrap_or_default();
    match memchr::memchr(b' ', rest) {
        Some(sp) => Ok((&rest[..sp], pos + sp + 1)),
        None => Err(CorednsError::Missing {
            field: if rest.is_empty() {
                field
            } else {
                "field after it"
            },
            at: line.len(),
        }),
    }
}

/// End of a quoted string whose content starts at `i` (backslash escapes skipped).
fn closing_quote(line: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let rel = memchr::memchr2(b'"', b'\\', line.get(i..)?)?;
        let at = i + rel;
        if line[at] == b'"' {
            return Some(at);
        }
        i = at + 2;
    }
}

fn opt_text(v: &[u8]) -> Option<String> {
    (v != b"-" && !v.is_empty()).then(|| String::from_utf8_lossy(v).into_owned())
}

fn opt_num<T: std::str::FromStr>(
    v: &[u8],
    at: usize,
    field: &'static str,
) -> Result<Option<T>, CorednsError> {
    if v == b"-" {
        return Ok(None);
    }
    let n = (!v.is_empty() && v.iter().all(u8::is_ascii_digit))
        .then(|| std::str::from_utf8(v).ok()?.parse().ok())
        .flatten();
    n.map(Some)
        .ok_or_else(|| value_error(field, at, v, "expected a number"))
}

/// `{type} {class} {name} {proto} {size} {>do} {>bufsize}`; the name may hold escaped spaces,
/// so the fields around it are taken from both ends.
fn question(q: &[u8], at: usize, out: &mut DnsQuery) -> Result<(), CorednsError> {
    let missing = |field| CorednsError::Missing {
        field,
        at: at + q.len(),
    };
    let mut left = q.splitn(3, |&c| c == b' ');
    let qtype = left.next().unwrap_or_default();
    let qclass = left.next().ok_or(missing("query class"))?;
    let rest = left.next().ok_or(missing("query name"))?;
    let rest_at = at + qtype.len() + qclass.len() + 2;
    let mut right = rest.rsplitn(5, |&c| c == b' ');
    let bufsize = right.next().unwrap_or_default();
    let dnssec = right.next().ok_or(missing("query name"))?;
    let size = right.next().ok_or(missing("query name"))?;
    let proto = right.next().ok_or(missing("query name"))?;
    let name = right.next().ok_or(missing("query name"))?;
    out.query_type = opt_text(qtype);
    out.query_class = opt_text(qclass);
    out.query_name = opt_text(name);
    out.protocol = opt_text(proto);
    let size_at = rest_at + name.len() + proto.len() + 2;
    out.request_bytes = opt_num(size, size_at, "request size")?;
    let do_at = size_at + size.len() + 1;
    out.dnssec_ok = match dnssec {
        b"true" => Some(true),
        b"false" => Some(false),
        b"-" => None,
        other => {
            return Err(value_error(
                "DO bit",
                do_at,
                other,
                "expected true or false",
            ))
        }
    };
    out.buffer_size = opt_num(bufsize, do_at + dnssec.len() + 1, "buffer size")?;
    Ok(())
}

/// A Go duration as CoreDNS prints it (`0.000211s`; also `211µs`, `1.5ms`, `3ns`) in
/// nanoseconds, exactly (no floating point).
pub fn parse_duration_ns(text: &[u8]) -> Option<i64> {
    let digits_end = text
        .iter()
        .position(|c| !c.is_ascii_digit() && *c != b'.')
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(digits_end);
    let scale: i64 = match unit {
        b"s" => 1_000_000_000,
        b"ms" => 1_000_000,
        b"\xc2\xb5s" | b"us" => 1_000,
        b"ns" => 1,
        _ => return None,
    };
    let num = std::str::from_utf8(num).ok()?;
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    let int: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut total = int.checked_mul(scale)?;
    // Fraction digits beyond the unit's nanosecond resolution are dropped.
    let mut unit_scale = scale;
    for c in frac.bytes() {
        unit_scale /= 10;
        total = total.checked_add(i64::from(c - b'0') * unit_scale)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;
    use proptest::prelude::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn a_whole_query() {
        let q = parse_coredns(
            br#"[INFO] 10.244.1.7:52613 - 31337 "A IN api.example.com. udp 33 false 512" NOERROR qr,rd,ra 94 0.000211s"#,
            42,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            q,
            DnsQuery {
                time: 42,
                client_ip: s("10.244.1.7"),
                client_port: Some(52613),
                query_id: Some(31337),
                query_type: s("A"),
                query_class: s("IN"),
                query_name: s("api.example.com."),
                protocol: s("udp"),
                request_bytes: Some(33),
                dnssec_ok: Some(false),
                buffer_size: Some(512),
                rcode: s("NOERROR"),
                response_flags: s("qr,rd,ra"),
                response_bytes: Some(94),
                duration_ns: Some(211_000),
            }
        );
    }

    #[test]
    fn sample_file() {
        let lines = testdata::lines("coredns/query.log");
        let mut queries = Vec::new();
        let mut skipped = 0;
        for (i, line) in lines.iter().enumerate() {
            match parse_coredns(line, i as i64) {
                Ok(Some(q)) => queries.push(q),
                Ok(None) => skipped += 1,
                Err(e) => panic!("line {}: {e}", i + 1),
            }
        }
        assert_eq!((queries.len(), skipped), (30, 9));
        let v6 = queries
            .iter()
            .find(|q| q.client_ip.as_deref() == Some("fd00:10:244:1::1b"))
            .unwrap();
        assert_eq!(v6.client_port, Some(53000));
        assert_eq!(v6.query_type, s("AAAA"));
        let tcp = queries
            .iter()
            .find(|q| q.protocol.as_deref() == Some("tcp"))
            .unwrap();
        assert_eq!(
            (tcp.request_bytes, tcp.dnssec_ok, tcp.buffer_size),
            (Some(59), Some(true), Some(1232))
        );
        let nx = queries
            .iter()
            .filter(|q| q.rcode.as_deref() == Some("NXDOMAIN"))
            .count();
        assert_eq!(nx, 8);
        // Empty response flags (two spaces).
        assert!(queries
            .iter()
            .any(|q| q.response_flags.is_none() && q.rcode.as_deref() == Some("SERVFAIL")));
        // A name with an escaped space and an escaped quote.
        assert!(queries
            .iter()
            .any(|q| q.query_name.as_deref() == Some(r#"odd\ name\".example.com."#)));
        assert!(queries.iter().any(|q| q.duration_ns == Some(2_004_512_345)));
    }

    #[test]
    fn not_query_lines() {
        for line in [
            &b""[..],
            b".:53",
            b"CoreDNS-1.11.3",
            b"linux/amd64, go1.21.11, a6338e9",
            b"[INFO] plugin/reload: Running configuration SHA512 = 591cf328cccc12bc490481273e738df59329c62c0b729d94e8b61db9961c2fa5f046dd37f1cf888b953814040d180f52594972691cd6ff41be96639138a43908",
            b"[ERROR] plugin/errors: 2 7143186483426178211.3404302483401316478. HINFO: read udp 10.244.0.2:40133->8.8.8.8:53: i/o timeout",
            b"[WARNING] No files matching import glob pattern: /etc/coredns/custom/*.override",
        ] {
            assert_eq!(parse_coredns(line, 0), Ok(None), "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn malformed_query_lines() {
        let e = |l: &str| parse_coredns(l.as_bytes(), 0).unwrap_err();
        assert_eq!(
            e(r#"[INFO] 10.0.0.1:5 - x1 "A IN a. udp 1 false 512" NOERROR qr 9 0.1s"#),
            CorednsError::Value {
                field: "query id",
                at: 20,
                value: "x1".into(),
                reason: "expected a number"
            }
        );
        assert_eq!(
            e(r#"[INFO] 10.0.0.1:5 - 1 "A IN a. udp 1 false 512"#),
            CorednsError::Missing {
                field: "closing quote of the question",
                at: 46
            }
        );
        assert_eq!(
            e(r#"[INFO] 10.0.0.1:5 - 1 "A IN a. udp 1 maybe 512" NOERROR qr 9 0.1s"#),
            CorednsError::Value {
                field: "DO bit",
                at: 37,
                value: "maybe".into(),
                reason: "expected true or false"
            }
        );
        assert_eq!(
            e(r#"[INFO] 10.0.0.1:5 - 1 "A IN a. udp" NOERROR qr 9 0.1s"#),
            CorednsError::Missing {
                field: "query name",
                at: 34
            }
        );
        assert_eq!(
            e(r#"[INFO] 10.0.0.1:5 - 1 "A IN a. udp 1 false 512" NOERROR qr 9 fast"#),
            CorednsError::Value {
                field: "duration",
                at: 61,
                value: "fast".into(),
                reason: "expected a duration like 0.000211s"
            }
        );
        assert_eq!(
            e(r#"[INFO] 10.0.0.1:5 - 1 "A IN a. udp 1 false 512" NOERROR qr"#),
            CorednsError::Missing {
                field: "field after it",
                at: 58
            }
        );
        assert_eq!(e(r#"[INFO] 10.0.0.1:5 - 1 junk"#).kind(), "invalid_value");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns(b"0.000211s"), Some(211_000));
        assert_eq!(parse_duration_ns(b"2s"), Some(2_000_000_000));
        assert_eq!(parse_duration_ns(b"1.5ms"), Some(1_500_000));
        assert_eq!(parse_duration_ns("211µs".as_bytes()), Some(211_000));
        assert_eq!(parse_duration_ns(b"0.0000000019s"), Some(1));
        assert_eq!(parse_duration_ns(b"3ns"), Some(3));
        for bad in [
            &b"s"[..],
            b".s",
            b"1.2.3s",
            b"1h",
            b"",
            b"99999999999999999999s",
        ] {
            assert_eq!(
                parse_duration_ns(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_coredns(&bytes, 0);
        }

        #[test]
        fn formatted_lines_round_trip(
            v6 in any::<bool>(),
            ip in "[0-9a-f]{1,4}(:[0-9a-f]{1,4}){0,7}",
            port in any::<u16>(),
            id in any::<u16>(),
            name in "([a-z0-9-]{1,10}\\.){1,4}",
            size in 0u32..65536,
            micros in 0i64..10_000_000,
        ) {
            let (client, ip) = if v6 { (format!("[{ip}]:{port}"), ip) } else { (format!("10.0.{}.{}:{port}", port % 256, id % 256), format!("10.0.{}.{}", port % 256, id % 256)) };
            let line = format!("[INFO] {client} - {id} \"TXT IN {name} udp {size} true 1232\" NOERROR qr,aa {size} {}.{:06}s", micros / 1_000_000, micros % 1_000_000);
            let q = parse_coredns(line.as_bytes(), 0).unwrap().unwrap();
            prop_assert_eq!(q.client_ip, Some(ip));
            prop_assert_eq!(q.client_port, Some(port));
            prop_assert_eq!(q.query_id, Some(u32::from(id)));
            prop_assert_eq!(q.query_name, Some(name));
            prop_assert_eq!(q.request_bytes, Some(size));
            prop_assert_eq!(q.duration_ns, Some(micros * 1000));
        }
    }
}
