//! Netfilter LOG lines from /dev/kmsg records and kern.log lines: never panics; a packet always
//! has both addresses and keeps the whole text.
#![no_main]

use kestrel_parse::{parse_kern_log, parse_kmsg, parse_packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let check = |text: &str, time: i64| {
        if let Ok(Some(p)) = parse_packet(text, time) {
            assert!(p.src_ip.is_some() && p.dst_ip.is_some());
            assert_eq!(p.raw, text);
        }
    };
    if let Ok(Some(rec)) = parse_kmsg(data, 1_795_000_000_000_000_000) {
        check(&rec.text, rec.time);
    }
    for line in data.split(|&c| c == b'\n') {
        if let Ok(Some(l)) = parse_kern_log(line, 1_795_165_200_000_000_000, 3600) {
            check(&l.text, l.time);
        }
    }
});
