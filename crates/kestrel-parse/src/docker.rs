//! Container log lines in docker's json-file format:
//! `{"log":"GET /healthz 200\n","stream":"stdout","time":"2026-11-20T09:00:01.123456789Z"}`.
//!
//! Docker splits long lines into several objects; all but the last lack the trailing `\n`, so a
//! line without one is a partial part, joined by [`PartialMerger`](crate::PartialMerger) exactly
//! as CRI `P` parts are. Other keys (`attrs` from `--log-opt labels=...`) are ignored.

use std::borrow::Cow;

use kestrel_event::LogStream;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::timestamp::{parse_rfc3339_nanos, TimestampError};

/// One json-file line. The message is borrowed from the input when it has no JSON escapes
/// other than its trailing `\n` (the common case), decoded otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerLine<'a> {
    /// `time`, UTC nanoseconds.
    pub time: i64,
    pub stream: LogStream,
    /// The `log` value had no trailing `\n`: more parts of the same line follow.
    pub partial: bool,
    /// The `log` value without its trailing `\n`.
    pub message: Cow<'a, str>,
}

/// Why a line is not a docker json-file line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DockerError {
    #[error("empty line")]
    Empty,
    /// Not a JSON object, or a key has the wrong type.
    #[error("invalid JSON at column {column}: {reason}")]
    Json { column: usize, reason: String },
    #[error("not a JSON object")]
    NotObject,
    #[error("missing field `{field}`")]
    Missing { field: &'static str },
    #[error("field `time`: {0}")]
    Time(#[source] TimestampError),
    #[error("field `stream` is `{found}`, expected `stdout` or `stderr`")]
    Stream { found: String },
}

impl DockerError {
    /// Short machine-readable cause for a dead letter.
    pub fn kind(&self) -> &'static str {
        match self {
            DockerError::Empty => "empty",
            DockerError::Json { .. } => "invalid_json",
            DockerError::NotObject | DockerError::Missing { .. } => "schema",
            DockerError::Time(_) => "invalid_time",
            DockerError::Stream { .. } => "invalid_stream",
        }
    }
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow, default)]
    log: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
}

fn json_error(e: serde_json::Error) -> DockerError {
    DockerError::Json {
        column: e.column(),
        reason: e.to_string(),
    }
}

/// Parses one json-file line (a trailing `\n` or `\r\n` after the object is ignored).
pub fn parse_docker(line: &[u8]) -> Result<DockerLine<'_>, DockerError> {
    match line.iter().find(|c| !c.is_ascii_whitespace()) {
        None => return Err(DockerError::Empty),
        // serde would read an array as the struct's fields in order.
        Some(b'[') => return Err(DockerError::NotObject),
        Some(_) => {}
    }
    if let Some(parsed) = fast(line) {
        return parsed;
    }
    let raw: Raw<'_> = serde_json::from_slice(line).map_err(json_error)?;
    let time = raw.time.ok_or(DockerError::Missing { field: "time" })?;
    let time = parse_rfc3339_nanos(time.as_bytes()).map_err(DockerError::Time)?;
    let stream = match raw.stream.as_deref() {
        Some("stdout") => LogStream::Stdout,
        Some("stderr") => LogStream::Stderr,
        Some(other) => {
            return Err(DockerError::Stream {
                found: other.chars().take(32).collect(),
            })
        }
        None => return Err(DockerError::Missing { field: "stream" }),
    };
    // docker omits an empty `log`.
    let (message, partial) = match raw.log {
        None => (Cow::Borrowed(""), true),
        Some(log) => decode_log(log)?,
    };
    Ok(DockerLine {
        time,
        stream,
        partial,
        message,
    })
}

/// The exact layout docker writes, `{"log":"...","stream":"...","time":"..."}`, read without a
/// general JSON parse; `None` for anything else (other keys, other order, spaces, a `log`
/// that is not valid UTF-8), which serde_json then reads.
fn fast(line: &[u8]) -> Option<Result<DockerLine<'_>, DockerError>> {
    const LOG: &[u8] = b"{\"log\":";
    if !line.starts_with(LOG) || line.get(LOG.len()) != Some(&b'"') {
        return None;
    }
    let log_end = crate::scan::string_end(line, LOG.len())?;
    let quoted = &line[LOG.len()..log_end];
    let rest = line[log_end..].strip_prefix(b",\"stream\":\"")?;
    let stream = match rest.get(..7)? {
        b"stdout\"" => LogStream::Stdout,
        b"stderr\"" => LogStream::Stderr,
        _ => return None,
    };
    let rest = rest[7..].strip_prefix(b",\"time\":\"")?;
    let time_end = memchr::memchr(b'"', rest)?;
    if !matches!(&rest[time_end + 1..], b"}" | b"}\r") {
        return None;
    }
    let inner = &quoted[1..quoted.len() - 1];
    let (body, partial) = match inner.strip_suffix(b"\\n") {
        Some(body) => (body, false),
        None => (inner, true),
    };
    let (message, partial) = if memchr::memchr(b'\\', body).is_none() {
        // JSON strings hold no raw control characters; leave such a line to serde's verdict.
        if body.iter().any(|&c| c < 0x20) {
            return None;
        }
        (Cow::Borrowed(std::str::from_utf8(body).ok()?), partial)
    } else {
        let mut decoded = unescape_json(std::str::from_utf8(inner).ok()?)?;
        match decoded.strip_suffix('\n') {
            Some(_) => {
                decoded.pop();
                (Cow::Owned(decoded), false)
            }
            None => (Cow::Owned(decoded), true),
        }
    };
    let time = match parse_rfc3339_nanos(&rest[..time_end]) {
        Ok(t) => t,
        Err(e) => return Some(Err(DockerError::Time(e))),
    };
    Some(Ok(DockerLine {
        time,
        stream,
        partial,
        message,
    }))
}

/// The text of a JSON string's content (between its quotes), or `None` for an invalid escape or
/// a raw control character. Written out because serde_json decodes only whole values, and here
/// the boundaries are already known.
fn unescape_json(inner: &str) -> Option<String> {
    let b = inner.as_bytes();
    if b.iter().any(|&c| c < 0x20) {
        return None;
    }
    let mut out = String::with_capacity(inner.len());
    let mut i = 0;
    while let Some(rel) = memchr::memchr(b'\\', &b[i..]) {
        let at = i + rel;
        out.push_str(&inner[i..at]);
        let c = match *b.get(at + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hex4 = |at: usize| u32::from_str_radix(inner.get(at..at + 4)?, 16).ok();
                let hi = hex4(at + 2)?;
                i = at + 6;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    // A surrogate pair: `\uD83D\uDE80`.
                    if b.get(i..i + 2)? != b"\\u" {
                        return None;
                    }
                    let lo = hex4(i + 2)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                out.push(char::from_u32(code)?);
                continue;
            }
            _ => return None,
        };
        out.push(c);
        i = at + 2;
    }
    out.push_str(&inner[i..]);
    Some(out)
}

/// The `log` string without its trailing newline, and whether it lacked one.
fn decode_log(raw: &RawValue) -> Result<(Cow<'_, str>, bool), DockerError> {
    let text = raw.get();
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        let (body, partial) = match inner.strip_suffix("\\n") {
            Some(body) => (body, false),
            None => (inner, true),
        };
        if memchr::memchr(b'\\', body.as_bytes()).is_none() {
            return Ok((Cow::Borrowed(body), partial));
        }
    }
    let decoded: String = serde_json::from_str(text).map_err(|e| DockerError::Json {
        column: e.column(),
        reason: format!("field `log`: {e}"),
    })?;
    Ok(match decoded.strip_suffix('\n') {
        Some(body) => (Cow::Owned(body.to_owned()), false),
        None => (Cow::Owned(decoded), true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: i64 = 1_795_165_201_123_456_789;

    #[test]
    fn whole_and_partial_lines() {
        let l = parse_docker(
            br#"{"log":"GET /healthz 200\n","stream":"stdout","time":"2026-11-20T09:00:01.123456789Z"}"#,
        )
        .unwrap();
        assert_eq!(
            l,
            DockerLine {
                time: T,
                stream: LogStream::Stdout,
                partial: false,
                message: Cow::Borrowed("GET /healthz 200")
            }
        );
        assert!(matches!(l.message, Cow::Borrowed(_)));
        let l = parse_docker(
            br#"{"log":"part one","stream":"stderr","time":"2026-11-20T09:00:01.123456789Z"}"#,
        )
        .unwrap();
        assert!(l.partial);
        assert_eq!(l.stream, LogStream::Stderr);
        assert_eq!(l.message, "part one");
    }

    #[test]
    fn escapes_are_decoded() {
        let l = parse_docker(
            br#"{"log":"\u003cscript\u003e \"q\" tab\there \\n\n","stream":"stdout","attrs":{"app":"web"},"time":"2026-11-20T09:00:01.1Z"}"#,
        )
        .unwrap();
        assert_eq!(l.message, "<script> \"q\" tab\there \\n");
        assert!(!l.partial);
        // An escaped newline written as \u000a ends a line too.
        let l =
            parse_docker(br#"{"log":"x\u000a","stream":"stdout","time":"2026-11-20T09:00:01Z"}"#)
                .unwrap();
        assert_eq!((l.message.as_ref(), l.partial), ("x", false));
        // A literal backslash-n at the end is not a newline.
        let l = parse_docker(
            br#"{"log":"ends with \\n","stream":"stdout","time":"2026-11-20T09:00:01Z"}"#,
        )
        .unwrap();
        assert_eq!(l.message, "ends with \\n");
        assert!(l.partial);
    }

    #[test]
    fn json_unescaping() {
        assert_eq!(
            unescape_json(r#"a\"b\\c\/d\b\f\n\r\t"#).as_deref(),
            Some("a\"b\\c/d\u{8}\u{c}\n\r\t")
        );
        assert_eq!(
            unescape_json(r"\u003c\u00e9\uD83D\uDE80").as_deref(),
            Some("<é🚀")
        );
        for bad in [
            r"\x",
            r"\u12",
            r"\uD83D",
            r"\uD83Dx\uDE80",
            r"\uD83D\u0041",
            "raw\ttab",
            "end\\",
        ] {
            assert_eq!(unescape_json(bad), None, "{bad}");
        }
    }

    #[test]
    fn malformed_lines() {
        let e = |s: &[u8]| parse_docker(s).unwrap_err();
        assert_eq!(e(b""), DockerError::Empty);
        assert_eq!(e(b" \r\n"), DockerError::Empty);
        assert!(matches!(
            e(b"{\"log\":\"x\\n\",\"stream\":\"stdout\""),
            DockerError::Json { .. }
        ));
        assert!(matches!(e(b"garbage"), DockerError::Json { column: 1, .. }));
        assert_eq!(
            e(br#"{"log":"x\n","stream":"stdout"}"#),
            DockerError::Missing { field: "time" }
        );
        assert_eq!(
            e(br#"{"log":"x\n","time":"2026-11-20T09:00:01Z"}"#),
            DockerError::Missing { field: "stream" }
        );
        assert_eq!(
            e(br#"{"log":"x\n","stream":"stdin","time":"2026-11-20T09:00:01Z"}"#),
            DockerError::Stream {
                found: "stdin".into()
            }
        );
        assert!(matches!(
            e(br#"{"log":"x\n","stream":"stdout","time":"yesterday"}"#),
            DockerError::Time(_)
        ));
        let err = e(br#"{"log":17,"stream":"stdout","time":"2026-11-20T09:00:01Z"}"#);
        assert!(err.to_string().contains("field `log`"), "{err}");
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse_docker(&bytes);
        }

        #[test]
        fn fast_path_agrees_with_serde(message in any::<String>(), stderr in any::<bool>(), frac in 0u32..1_000_000_000) {
            let line = serde_json::json!({
                "log": message,
                "stream": if stderr { "stderr" } else { "stdout" },
                "time": format!("2026-11-20T09:00:01.{frac:09}Z"),
            });
            let line = serde_json::to_vec(&line).unwrap();
            let slow: Raw<'_> = serde_json::from_slice(&line).unwrap();
            let (slow_message, slow_partial) = decode_log(slow.log.unwrap()).unwrap();
            if let Some(fast) = fast(&line) {
                let fast = fast.unwrap();
                prop_assert_eq!(fast.message, slow_message);
                prop_assert_eq!(fast.partial, slow_partial);
                prop_assert_eq!(fast.time, 1_795_165_201_000_000_000 + i64::from(frac));
            }
        }

        #[test]
        fn round_trips_any_message(message in any::<String>(), newline in any::<bool>()) {
            prop_assume!(!message.ends_with('\n'));
            let log = if newline { format!("{message}\n") } else { message.clone() };
            let line = serde_json::json!({"log": log, "stream": "stdout", "time": "2026-11-20T09:00:01.123456789Z"});
            let line = serde_json::to_vec(&line).unwrap();
            let parsed = parse_docker(&line).unwrap();
            prop_assert_eq!(parsed.message.as_ref(), message.as_str());
            prop_assert_eq!(parsed.partial, !newline);
        }
    }
}

#[cfg(test)]
mod sample_tests {
    use super::*;
    use crate::merge::PartialMerger;
    use crate::testdata;

    #[test]
    fn json_file_sample_parses_and_merges() {
        let mut merger = PartialMerger::new(16 * 1024);
        let mut out = Vec::new();
        for (i, line) in testdata::lines("docker/json-file.log").iter().enumerate() {
            let parsed = parse_docker(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
            if let Some(l) = merger.push(
                parsed.time,
                parsed.stream,
                parsed.partial,
                parsed.message.as_bytes(),
            ) {
                out.push(l.into_container_log());
            }
        }
        // The last line of the sample has no newline: it waits for more, and a flush emits it.
        assert!(merger.has_pending());
        out.push(merger.flush().unwrap().into_container_log());
        assert_eq!(out.len(), 26);
        assert_eq!(out[0].time, 1_795_165_201_123_456_789);
        assert_eq!(
            out[1].message,
            r#"{"level":"info","msg":"listening","addr":":8080"}"#
        );
        assert_eq!(out[3].stream, LogStream::Stderr);
        assert_eq!(
            out[4].message,
            "first part of a long line / second part / last part"
        );
        assert_eq!(out[4].time, 1_795_165_202_000_000_000);
        assert_eq!(out[5].message, "");
        assert_eq!(
            out[6].message,
            "html <b>bold</b> & \"quotes\" and \\backslashes\\"
        );
        assert_eq!(
            out[7].message,
            "unicode café ✓ 🚀 and control \u{1b}[1mbold\u{1b}[0m"
        );
        assert_eq!(out[8].message, "tab\there\r");
        assert_eq!(out[25].message, "no newline at end of container output");
    }

    #[test]
    fn malformed_sample() {
        let kinds: Vec<&str> = testdata::lines("docker/malformed.log")
            .iter()
            .map(|l| parse_docker(l).unwrap_err().kind())
            .collect();
        assert_eq!(
            kinds,
            [
                "empty",
                "invalid_json",
                "schema",
                "invalid_stream",
                "invalid_json",
                "invalid_time",
                "invalid_json",
                "schema"
            ]
        );
    }
}
