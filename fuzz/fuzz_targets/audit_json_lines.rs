//! Audit log chunks: never panics; every non-blank line ends up as exactly one event or one dead
//! letter, with its own line number; redaction is idempotent.
#![no_main]

use kestrel_parse::{parse_json_lines, redact_event, AuditParseConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = AuditParseConfig {
        max_event_bytes: 4096,
        max_dead_letter_payload_bytes: 512,
        ..AuditParseConfig::default()
    };
    let batch = parse_json_lines(data, 10, &cfg, "fuzz", 7);
    let non_blank = data
        .split(|&c| c == b'\n')
        .filter(|l| l.iter().any(|c| !matches!(c, b' ' | b'\t' | b'\r')))
        .count();
    assert_eq!(batch.events.len() + batch.dead_letters.len(), non_blank);
    let lines = data.split(|&c| c == b'\n').count() as u64;
    let mut seen = Vec::new();
    for d in &batch.dead_letters {
        let loc = d.location.as_deref().unwrap();
        let n: u64 = loc.strip_prefix("line ").unwrap().parse().unwrap();
        assert!((10..10 + lines).contains(&n), "{loc}");
        assert!(!seen.contains(&n));
        seen.push(n);
    }
    for e in &batch.events {
        let mut again = e.clone();
        redact_event(&mut again);
        assert_eq!(&again, e, "redaction is not idempotent");
    }
});
