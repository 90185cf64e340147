//! CoreDNS query log lines: never panics; a parsed query always has its client.
#![no_main]

use kestrel_parse::parse_coredns;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&c| c == b'\n') {
        if let Ok(Some(q)) = parse_coredns(line, 5) {
            assert!(q.client_ip.is_some() && q.client_port.is_some());
            assert_eq!(q.time, 5);
        }
    }
});
