//! Pure parsers for Kestrel: bytes in, typed records and dead letters out.
//!
//! Architecture invariant: no I/O, no async runtime, no storage; everything here is a function of
//! its input (and of the `now_nanos` the caller passes), so it can be unit-tested, fuzzed
//! (`fuzz/` at the workspace root) and benchmarked in isolation.
//!
//! ```text
//! webhook body ──► parse_event_list ─┐                       ┌─► events (redacted)
//!                                    ├─► per item/line parse ┤
//! audit log     ──► parse_json_lines ┘                       └─► dead letters (redacted, cut)
//! ```

pub mod audit;
pub mod error;
pub mod redact;
mod scan;

pub use audit::{
    dead_letter_for_body, parse_event_list, parse_json_lines, AuditParseConfig, ParsedBatch,
    RedactConfig, REQUIRED_FIELDS, TRUNCATED_MARKER,
};
pub use error::BodyError;
pub use redact::{redact_event, redact_lexical, redact_value, REDACTED};
