//! RFC 3339 timestamps: never panics, and agrees with chrono on every input.
#![no_main]

use kestrel_parse::parse_rfc3339_nanos;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ours = parse_rfc3339_nanos(data).ok();
    let chrono = std::str::from_utf8(data)
        .ok()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .and_then(|t| t.timestamp_nanos_opt());
    assert_eq!(ours, chrono, "{:?}", String::from_utf8_lossy(data));
});
