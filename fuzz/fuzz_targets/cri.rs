//! CRI lines through the partial merger: never panics; every emitted line fits `max_line_bytes`
//! and is a prefix of what its parts held; the counters add up.
#![no_main]

use kestrel_parse::{parse_cri, PartialMerger};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 64;

fuzz_target!(|data: &[u8]| {
    let mut merger = PartialMerger::new(MAX);
    let mut emitted = 0u64;
    for line in data.split(|&c| c == b'\n') {
        let Ok(parsed) = parse_cri(line) else {
            continue;
        };
        assert!(parsed.message.len() <= line.len());
        if let Some(l) = merger.push_cri(parsed) {
            assert!(
                l.message.len() <= MAX || l.invalid_utf8,
                "{}",
                l.message.len()
            );
            emitted += 1;
        }
    }
    while let Some(l) = merger.flush() {
        assert!(!l.truncated);
        emitted += 1;
    }
    assert!(!merger.has_pending());
    assert_eq!(merger.stats().lines, emitted);
});
