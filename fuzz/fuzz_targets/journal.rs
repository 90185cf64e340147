//! journalctl JSON lines: never panics; `fields`, when set, is a JSON object.
#![no_main]

use kestrel_parse::parse_journal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&c| c == b'\n') {
        if let Ok(e) = parse_journal(line) {
            if let Some(f) = e.fields {
                let v: serde_json::Value = serde_json::from_str(&f).unwrap();
                assert!(v.is_object());
            }
            assert!(e.priority.is_none_or(|p| p <= 7));
        }
    }
});
