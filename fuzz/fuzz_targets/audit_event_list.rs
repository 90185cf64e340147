//! Webhook bodies: never panics; every item of a valid JSON body ends up as an event or a dead
//! letter; dead letters are bounded; events survive a redact/serialize/parse round trip.
#![no_main]

use kestrel_parse::{
    dead_letter_for_body, parse_event_list, parse_json_lines, AuditParseConfig, TRUNCATED_MARKER,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const MAX_PAYLOAD: usize = 512;

fn cfg() -> AuditParseConfig {
    AuditParseConfig {
        max_event_bytes: 4096,
        max_dead_letter_payload_bytes: MAX_PAYLOAD,
        ..AuditParseConfig::default()
    }
}

/// Items a valid JSON body holds, when that is unambiguous.
fn item_count(data: &[u8]) -> Option<usize> {
    let v: Value = serde_json::from_slice(data).ok()?;
    // A duplicated `items` key is read differently by a tree and by a scan: skip those.
    if memchr::memmem::find_iter(data, b"\"items\"").count() > 1 {
        return None;
    }
    match &v {
        Value::Array(a) => Some(a.len()),
        Value::Object(o) => match o.get("items") {
            Some(Value::Array(a)) => Some(a.len()),
            Some(Value::Null) => Some(0),
            Some(_) => None,
            None if o.get("kind").and_then(Value::as_str) == Some("EventList") => Some(0),
            None => Some(1),
        },
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let cfg = cfg();
    match parse_event_list(data, &cfg, "fuzz", 7) {
        Ok(batch) => {
            if let Some(n) = item_count(data) {
                assert_eq!(batch.events.len() + batch.dead_letters.len(), n);
            }
            let mut locations: Vec<&str> = batch
                .dead_letters
                .iter()
                .map(|d| {
                    d.location
                        .as_deref()
                        .expect("item dead letters have a location")
                })
                .collect();
            let all = locations.len();
            locations.sort_unstable();
            locations.dedup();
            assert_eq!(locations.len(), all, "a location is reported twice");
            for d in &batch.dead_letters {
                assert!(d.payload.len() <= MAX_PAYLOAD.max(TRUNCATED_MARKER.len()));
                assert!(d.size_bytes >= 0 && d.time == 7 && d.source == "fuzz");
            }
            for e in &batch.events {
                let line = serde_json::to_vec(e).unwrap();
                let again = parse_json_lines(&line, 1, &cfg, "fuzz", 7);
                assert_eq!(
                    again.events.as_slice(),
                    std::slice::from_ref(e),
                    "round trip"
                );
            }
        }
        Err(err) => {
            let d = dead_letter_for_body(data, &err, &cfg, "fuzz", 7);
            assert_eq!(d.kind, err.kind());
            assert!(d.payload.len() <= MAX_PAYLOAD.max(TRUNCATED_MARKER.len()));
        }
    }
});
