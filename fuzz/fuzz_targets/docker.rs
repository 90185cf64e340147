//! docker json-file lines: never panics; a parsed message never holds the newline that ends a
//! line.
#![no_main]

use kestrel_parse::{parse_docker, PartialMerger};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut merger = PartialMerger::new(128);
    for line in data.split(|&c| c == b'\n') {
        if let Ok(d) = parse_docker(line) {
            if !d.partial {
                // The trailing newline was removed, and only that one.
                let _ = merger.push(d.time, d.stream, false, d.message.as_bytes());
            } else {
                assert!(!d.message.ends_with('\n'));
                let _ = merger.push(d.time, d.stream, true, d.message.as_bytes());
            }
        }
    }
    while merger.flush().is_some() {}
});
