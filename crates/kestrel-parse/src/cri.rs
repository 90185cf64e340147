//! Container log lines in the CRI format (containerd, CRI-O):
//! `<RFC3339Nano time> <stdout|stderr> <P|F> <message>`.
//!
//! Parsing borrows the message from the input line (no allocation); join the `P` (partial) parts
//! with [`PartialMerger`](crate::PartialMerger).

use kestrel_event::LogStream;

use crate::timestamp::{parse_rfc3339_nanos, TimestampError};

/// One CRI log line, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriLine<'a> {
    /// When the runtime received the line, UTC nanoseconds.
    pub time: i64,
    pub stream: LogStream,
    /// `P`: the runtime split a long line and more parts follow; `F`: the last (or only) part.
    pub partial: bool,
    /// The message bytes as written by the container (not necessarily UTF-8).
    pub message: &'a [u8],
}

/// Why a line is not a CRI log line. Byte offsets count from the start of the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CriError {
    #[error("empty line")]
    Empty,
    /// The line ends before `field`.
    #[error("line ends at byte {at} before the {field} field")]
    Missing { field: &'static str, at: usize },
    #[error("timestamp at byte 0: {0}")]
    Time(#[source] TimestampError),
    #[error("stream at byte {at} is `{found}`, expected `stdout` or `stderr`")]
    Stream { at: usize, found: String },
    #[error("tag at byte {at} is `{found}`, expected `P` or `F`")]
    Tag { at: usize, found: String },
}

impl CriError {
    /// Short machine-readable cause for a dead letter.
    pub fn kind(&self) -> &'static str {
        match self {
            CriError::Empty => "empty",
            CriError::Missing { .. } => "truncated",
            CriError::Time(_) => "invalid_time",
            CriError::Stream { .. } => "invalid_stream",
            CriError::Tag { .. } => "invalid_tag",
        }
    }
}

fn lossy_cut(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(32)]).into_owned()
}

/// Parses one CRI line (without its `\n`; a trailing `\n` is ignored). The tag field may hold
/// several `:`-separated tags, as the CRI spec allows; the first one says `P` or `F`. A line that
/// ends right after the tag has an empty message.
#[inline]
pub fn parse_cri(line: &[u8]) -> Result<CriLine<'_>, CriError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.is_empty() {
        return Err(CriError::Empty);
    }
    let time_end = memchr::memchr(b' ', line).ok_or(CriError::Missing {
        field: "stream",
        at: line.len(),
    })?;
    let time = parse_rfc3339_nanos(&line[..time_end]).map_err(CriError::Time)?;
    let stream_at = time_end + 1;
    let rest = &line[stream_at..];
    // Both stream names are six bytes long.
    let stream = match rest.get(..6) {
        Some(b"stdout") => LogStream::Stdout,
        Some(b"stderr") => LogStream::Stderr,
        _ => return Err(stream_error(rest, stream_at)),
    };
    let tag_at = stream_at + 7;
    match rest.get(6) {
        Some(b' ') => {}
        None => {
            return Err(CriError::Missing {
                field: "tag",
                at: line.len(),
            })
        }
        Some(_) => return Err(stream_error(rest, stream_at)),
    }
    let rest = &line[tag_at..];
    // Fast path: a one-letter tag and a space.
    let (partial, msg_at) = match rest {
        [b'F', b' ', ..] | [b'F'] => (false, tag_at + 2),
        [b'P', b' ', ..] | [b'P'] => (true, tag_at + 2),
        _ => {
            let tag_end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
            let tags = &rest[..tag_end];
            let first = tags.split(|&c| c == b':').next().unwrap_or_default();
            let partial = match first {
                b"P" => true,
                b"F" => false,
                _ if tags.is_empty() && rest.is_empty() => {
                    return Err(CriError::Missing {
                        field: "tag",
                        at: line.len(),
                    })
                }
                _ => {
                    return Err(CriError::Tag {
                        at: tag_at,
                        found: lossy_cut(tags),
                    })
                }
            };
            (partial, tag_at + tag_end + 1)
        }
    };
    let message = line.get(msg_at..).unwrap_or_default();
    Ok(CriLine {
        time,
        stream,
        partial,
        message,
    })
}

#[cold]
fn stream_error(rest: &[u8], at: usize) -> CriError {
    let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    CriError::Stream {
        at,
        found: lossy_cut(&rest[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{SecondsFormat, TimeZone, Utc};
    use proptest::prelude::*;

    const T: i64 = 1_795_165_201_123_456_789;

    #[test]
    fn full_and_partial_lines() {
        let l = parse_cri(b"2026-11-20T09:00:01.123456789Z stdout F GET /healthz 200").unwrap();
        assert_eq!(
            l,
            CriLine {
                time: T,
                stream: LogStream::Stdout,
                partial: false,
                message: b"GET /healthz 200"
            }
        );
        let l = parse_cri(b"2026-11-20T09:00:01.123456789Z stderr P  two  spaces \n").unwrap();
        assert_eq!(l.stream, LogStream::Stderr);
        assert!(l.partial);
        assert_eq!(l.message, b" two  spaces ");
    }

    #[test]
    fn empty_messages_and_tag_lists() {
        let l = parse_cri(b"2026-11-20T09:00:01.123456789Z stdout F ").unwrap();
        assert_eq!(l.message, b"");
        let l = parse_cri(b"2026-11-20T09:00:01.123456789Z stdout F").unwrap();
        assert_eq!(l.message, b"");
        let l = parse_cri(b"2026-11-20T09:00:01.123456789Z stdout P:x:y hi").unwrap();
        assert!(l.partial);
        assert_eq!(l.message, b"hi");
        let l = parse_cri(b"2026-11-20T09:00:01.123456789Z stdout F:x").unwrap();
        assert!(!l.partial);
        assert_eq!(l.message, b"");
    }

    #[test]
    fn malformed_lines() {
        let e = |s: &[u8]| parse_cri(s).unwrap_err();
        assert_eq!(e(b""), CriError::Empty);
        assert_eq!(e(b"\n"), CriError::Empty);
        assert_eq!(
            e(b"2026-11-20T09:00:01Z"),
            CriError::Missing {
                field: "stream",
                at: 20
            }
        );
        assert_eq!(
            e(b"2026-11-20T09:00:01Z stdout"),
            CriError::Missing {
                field: "tag",
                at: 27
            }
        );
        assert_eq!(
            e(b"2026-11-20T09:00:01Z stdout "),
            CriError::Missing {
                field: "tag",
                at: 28
            }
        );
        assert_eq!(
            e(b"2026-11-20T09:00:01Z stdin F x"),
            CriError::Stream {
                at: 21,
                found: "stdin".into()
            }
        );
        assert_eq!(
            e(b"2026-11-20T09:00:01Z stdoutx F x"),
            CriError::Stream {
                at: 21,
                found: "stdoutx".into()
            }
        );
        assert_eq!(
            e(b"2026-11-20T09:00:01Z stdout X x"),
            CriError::Tag {
                at: 28,
                found: "X".into()
            }
        );
        assert!(matches!(e(b"not a cri line"), CriError::Time(_)));
        assert!(matches!(
            e(b"2026-11-20T09:00:01.123+0000 stdout F x"),
            CriError::Time(_)
        ));
        let msg = e(b"2026-11-2X stdout F x").to_string();
        assert!(
            msg.starts_with("timestamp at byte 0: invalid RFC 3339 timestamp `2026-11-2X`"),
            "{msg}"
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse_cri(&bytes);
        }

        #[test]
        fn round_trips_a_formatted_line(
            nanos in 0i64..4_000_000_000_000_000_000,
            stderr in any::<bool>(),
            partial in any::<bool>(),
            message in proptest::collection::vec(any::<u8>(), 0..64)
                .prop_filter("no newline", |m| !m.contains(&b'\n')),
        ) {
            let time = Utc.timestamp_nanos(nanos).to_rfc3339_opts(SecondsFormat::Nanos, true);
            let stream = if stderr { LogStream::Stderr } else { LogStream::Stdout };
            let mut line = format!("{time} {} {} ", stream.as_str(), if partial { "P" } else { "F" })
                .into_bytes();
            line.extend_from_slice(&message);
            let parsed = parse_cri(&line).unwrap();
            prop_assert_eq!(parsed, CriLine { time: nanos, stream, partial, message: &message });
        }
    }
}

#[cfg(test)]
mod sample_tests {
    use super::*;
    use crate::merge::{MergeStats, PartialMerger};
    use crate::testdata;

    #[test]
    fn containerd_sample_parses_and_merges() {
        let mut merger = PartialMerger::new(16 * 1024);
        let mut out = Vec::new();
        for (i, line) in testdata::lines("cri/containerd.log").iter().enumerate() {
            let parsed = parse_cri(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
            if let Some(l) = merger.push_cri(parsed) {
                out.push(l.into_container_log());
            }
        }
        assert!(!merger.has_pending());
        assert_eq!(out.len(), 30);
        assert_eq!(out[0].time, 1_795_165_201_123_456_789);
        assert!(out[0].message.starts_with("2026-11-20 09:00:01.123 INFO"));
        // The stderr line written between two parts of a stdout line comes out first.
        assert_eq!(out[6].stream, LogStream::Stderr);
        assert_eq!(
            out[6].message,
            "warning: interleaved stderr line between partial stdout parts"
        );
        let joined = &out[7];
        assert_eq!(joined.stream, LogStream::Stdout);
        assert_eq!(
            joined.time, 1_795_165_202_000_000_000,
            "time of the first part"
        );
        assert!(joined
            .message
            .starts_with(r#"{"level":"debug","msg":"big payload","body":"AAAA"#));
        assert!(
            joined.message.ends_with(r#"BBBB café end"}"#),
            "a character split across parts: {}",
            joined.message
        );
        assert_eq!(out[8].message, "");
        assert_eq!(out[9].message, "latin-1 bytes: caf\u{fffd} na\u{fffd}ve");
        assert_eq!(out[10].message, "  leading and trailing spaces  ");
        assert!(out[11].message.ends_with("emoji 🚀"));
        assert_eq!(out[14].message, "offset time zone form");
        assert_eq!(out[15].message, "tag list");
        assert_eq!(out[16].message, "part one / part two / part three");
        assert!(out[17].message.ends_with('\r'));
        assert_eq!(
            merger.stats(),
            MergeStats {
                lines: 30,
                joined_lines: 2,
                truncated_lines: 0,
                dropped_bytes: 0,
                invalid_utf8_lines: 1,
            }
        );
    }

    #[test]
    fn containerd_sample_with_a_small_line_limit() {
        let mut merger = PartialMerger::new(40);
        let mut out = Vec::new();
        for line in testdata::lines("cri/containerd.log") {
            if let Some(l) = merger.push_cri(parse_cri(&line).unwrap()) {
                assert!(l.message.len() <= 40);
                out.push((l.message.into_owned(), l.truncated));
            }
        }
        assert_eq!(out.len(), 30, "a cut line is still one line");
        assert!(out
            .iter()
            .any(|(m, t)| *t && m == r#"{"level":"debug","msg":"big payload","bo"#));
        assert_eq!(
            merger.stats().truncated_lines,
            out.iter().filter(|(_, t)| *t).count() as u64
        );
    }

    #[test]
    fn malformed_sample() {
        let errors: Vec<String> = testdata::lines("cri/malformed.log")
            .iter()
            .map(|l| parse_cri(l).unwrap_err().to_string())
            .collect();
        assert_eq!(
            errors,
            [
                "empty line",
                "line ends at byte 30 before the stream field",
                "line ends at byte 37 before the tag field",
                "stream at byte 31 is `stdin`, expected `stdout` or `stderr`",
                "tag at byte 38 is `X`, expected `P` or `F`",
                "timestamp at byte 0: invalid RFC 3339 timestamp `20261120`: premature end of input",
                "timestamp at byte 0: invalid RFC 3339 timestamp `2026-11-20T25:00:01Z`: input is out of range",
                "timestamp at byte 0: invalid RFC 3339 timestamp `\u{0}\u{1}\u{2}\u{fffd}\u{fffd}`: invalid utf-8 sequence of 1 bytes from index 3",
                "timestamp at byte 0: invalid RFC 3339 timestamp `{\"log\":\"docker`: premature end of input",
                "timestamp at byte 0: invalid RFC 3339 timestamp `2026-11-20T09:00:01.123456789Zstdout`: trailing input",
            ]
        );
    }
}
