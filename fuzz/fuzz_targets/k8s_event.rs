//! Kubernetes events: never panics on any bytes.
#![no_main]

use kestrel_parse::parse_k8s_event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_k8s_event(data);
});
