//! Multiline joining: never panics; records never exceed the size bound; every line ends up in
//! a record or in the dropped-bytes count.
#![no_main]

use kestrel_event::{ContainerLog, LogStream};
use kestrel_parse::MultilineJoiner;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

const MAX: usize = 100;

static TEMPLATE: LazyLock<MultilineJoiner> =
    LazyLock::new(|| MultilineJoiner::new(r"^\S", MAX, 10).unwrap());

fuzz_target!(|data: &[u8]| {
    let mut j = TEMPLATE.clone();
    let text = String::from_utf8_lossy(data);
    let mut records = Vec::new();
    let mut input_bytes = 0usize;
    for (i, line) in text.split('\n').enumerate() {
        input_bytes += line.len();
        let stream = if line.len() % 3 == 0 {
            LogStream::Stderr
        } else {
            LogStream::Stdout
        };
        let log = ContainerLog {
            time: i as i64,
            stream,
            message: line.to_owned(),
            truncated: false,
        };
        records.extend(j.push(log, i as i64));
        records.extend(j.flush_expired(i as i64));
    }
    while let Some(r) = j.flush() {
        records.push(r);
    }
    for r in &records {
        assert!(r.message.len() <= MAX);
    }
    let stats = j.stats();
    assert_eq!(stats.records, records.len() as u64);
    // Joining adds one `\n` per continuation line; cutting removes `dropped_bytes`.
    let out: usize = records.iter().map(|r| r.message.len()).sum();
    assert_eq!(
        out as u64 + stats.dropped_bytes,
        input_bytes as u64 + stats.continuation_lines
    );
});
