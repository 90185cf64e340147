//! Log paths: never panics; names read from a path never contain `_` or `/`.
#![no_main]

use kestrel_parse::parse_pod_log_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = String::from_utf8_lossy(data);
    if let Ok(p) = parse_pod_log_path(&path) {
        for name in [&p.namespace, &p.pod, &p.container] {
            assert!(!name.is_empty() && !name.contains('_') && !name.contains('/'));
        }
    }
});
