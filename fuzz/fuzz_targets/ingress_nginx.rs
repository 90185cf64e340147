//! ingress-nginx access logs: never panics, with the default format and with a format taken
//! from the input's first line.
#![no_main]

use kestrel_parse::{parse_ingress_default, IngressFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&c| c == b'\n');
    let first = lines.next().unwrap_or_default();
    let format = IngressFormat::new(&String::from_utf8_lossy(first)).ok();
    for line in lines {
        let _ = parse_ingress_default(line, None);
        if let Some(f) = &format {
            if let Ok(rec) = f.parse(line, Some(1)) {
                assert_eq!(rec.time, 1);
            }
        }
    }
});
