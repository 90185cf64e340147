//! A batch as the JSON the server reads (`POST /v1/ingest`, before zstd).
//!
//! serde_json writes everything but the container log lines; those, nearly every byte of a
//! batch, are written here. Written by hand because serde_json escapes strings through a
//! per-byte table lookup and branch, which was the largest single cost of the pipeline after
//! reading (a fifth of its CPU time on 283-byte lines); log messages almost never need
//! escaping, so checking 32 bytes at a time for a byte that does, then copying the message
//! whole, is several times cheaper. The JSON is the same, field for field: the server decodes
//! it with serde like any other.

use kestrel_event::{ContainerLog, IngestBatch};

/// The batch's JSON.
pub fn batch_json(batch: &mut IngestBatch) -> Vec<u8> {
    if batch.container_logs.is_empty() {
        return serde_json::to_vec(&*batch).expect("batches serialize");
    }
    let logs = std::mem::take(&mut batch.container_logs);
    let size: usize = logs.iter().map(|l| l.message.len() + 64).sum();
    let mut out = Vec::with_capacity(size + 1024);
    serde_json::to_writer(&mut out, &*batch).expect("batches serialize");
    batch.container_logs = logs;
    // The object always has fields (`version`, `id`, ...): replace its `}` by one more.
    debug_assert_eq!(out.last(), Some(&b'}'));
    out.pop();
    out.extend_from_slice(b",\"container_logs\":[");
    for (i, log) in batch.container_logs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_log(&mut out, log);
    }
    out.extend_from_slice(b"]}");
    out
}

fn write_log(out: &mut Vec<u8>, log: &ContainerLog) {
    out.extend_from_slice(b"{\"time\":");
    out.extend_from_slice(itoa::Buffer::new().format(log.time).as_bytes());
    out.extend_from_slice(b",\"stream\":\"");
    out.extend_from_slice(log.stream.as_str().as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    write_str(out, &log.message);
    if log.truncated {
        out.extend_from_slice(b",\"truncated\":true");
    }
    out.push(b'}');
}

/// A JSON string; copied as it is unless it holds a byte JSON requires escaping (`"`, `\`,
/// control characters), which serde_json then escapes.
fn write_str(out: &mut Vec<u8>, s: &str) {
    // No early exit inside a block: the compiler turns this into SIMD compares.
    let needs_escape = s.as_bytes().chunks(32).any(|block| {
        block.iter().fold(false, |acc, &b| {
            acc | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    });
    if needs_escape {
        serde_json::to_writer(&mut *out, s).expect("strings serialize");
    } else {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_event::{BatchOrigin, DeadLetter, LogStream};

    fn batch(messages: &[(&str, bool)]) -> IngestBatch {
        IngestBatch {
            version: kestrel_event::INGEST_FORMAT_VERSION,
            id: "b-1".into(),
            origin: BatchOrigin {
                agent: "node-1".into(),
                input: "pod_logs".into(),
                stream: "1:2:3".into(),
                ..BatchOrigin::default()
            },
            start: 10,
            end: 20,
            container_logs: messages
                .iter()
                .enumerate()
                .map(|(i, (m, truncated))| ContainerLog {
                    time: -5 + i as i64 * 170_000_000_000_000_000,
                    stream: if i % 2 == 0 {
                        LogStream::Stdout
                    } else {
                        LogStream::Stderr
                    },
                    message: (*m).to_string(),
                    truncated: *truncated,
                })
                .collect(),
            dead_letters: vec![DeadLetter {
                time: 1,
                source: "pod_logs".into(),
                kind: "invalid".into(),
                reason: "r".into(),
                location: None,
                size_bytes: 3,
                payload: "x\"y".into(),
            }],
            ..IngestBatch::default()
        }
    }

    #[test]
    fn the_json_reads_back_as_the_batch_serde_would_write() {
        let mut b = batch(&[
            ("plain line", false),
            ("quote \" backslash \\ tab \t nul \u{0} bell \u{7}", true),
            ("unicode é 日本 \u{7f} 🦀", false),
            ("", false),
            (&"x".repeat(100), false),
        ]);
        let ours = batch_json(&mut b);
        let back: IngestBatch = serde_json::from_slice(&ours).unwrap();
        assert_eq!(back, b);
        // Same value as serde_json's own output.
        let theirs: serde_json::Value = serde_json::to_value(&b).unwrap();
        let ours: serde_json::Value = serde_json::from_slice(&ours).unwrap();
        assert_eq!(ours, theirs);
        let mut empty = batch(&[]);
        assert_eq!(batch_json(&mut empty), serde_json::to_vec(&empty).unwrap());
    }

    proptest::proptest! {
        #[test]
        fn any_message_round_trips(messages in proptest::collection::vec((".{0,80}", proptest::bool::ANY), 1..8)) {
            let refs: Vec<(&str, bool)> = messages.iter().map(|(m, t)| (m.as_str(), *t)).collect();
            let mut b = batch(&refs);
            let back: IngestBatch = serde_json::from_slice(&batch_json(&mut b)).unwrap();
            proptest::prop_assert_eq!(back, b);
        }
    }
}
