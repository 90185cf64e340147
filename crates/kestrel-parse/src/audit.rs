//! Kubernetes audit events from the API server's webhook (`EventList` bodies) and from audit log
//! files (JSON lines); every item or line that cannot become an event becomes a dead letter.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{error::Category, Map, Value};

use kestrel_event::{AuditEvent, DeadLetter};

use crate::error::BodyError;
use crate::redact::{redact_event, redact_lexical, redact_value};
use crate::scan::{self, ObjectShape};

/// The fields an event must have, non-empty, to be accepted; `verb|requestURI` means either. A
/// `kind`, when present, must be `Event`; everything else is optional, as in captures from old
/// clusters (`apiVersion` may be v1, v1beta1 or absent).
pub const REQUIRED_FIELDS: &[&str] = &["auditID", "stage", "verb|requestURI"];

/// Appended to a dead letter payload that was cut to `max_dead_letter_payload_bytes`.
pub const TRUNCATED_MARKER: &str = "…[truncated]";

/// How audit input is parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParseConfig {
    /// Largest event accepted, in bytes; a larger one becomes a `too_large` dead letter that keeps
    /// only its metadata (auditID, verb, user, objectRef, ...). Default 4 MiB.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    /// Secret redaction.
    #[serde(default)]
    pub redact: RedactConfig,
    /// Largest payload kept in a dead letter, in bytes; longer ones are cut and end with
    /// [`TRUNCATED_MARKER`]. Default 64 KiB.
    #[serde(default = "default_max_dead_letter_payload_bytes")]
    pub max_dead_letter_payload_bytes: usize,
}

/// Secret redaction settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactConfig {
    /// Replace secret values (Secret data, tokens, last-applied configurations of secrets) in
    /// events and dead letters by `<redacted>`. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_max_event_bytes() -> usize {
    4 << 20
}

fn default_max_dead_letter_payload_bytes() -> usize {
    64 << 10
}

fn default_true() -> bool {
    true
}

impl Default for AuditParseConfig {
    fn default() -> Self {
        AuditParseConfig {
            max_event_bytes: default_max_event_bytes(),
            redact: RedactConfig::default(),
            max_dead_letter_payload_bytes: default_max_dead_letter_payload_bytes(),
        }
    }
}

impl Default for RedactConfig {
    fn default() -> Self {
        RedactConfig {
            enabled: default_true(),
        }
    }
}

/// What came out of one body or one chunk of a log file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedBatch {
    /// The good events, in input order, redacted if configured.
    pub events: Vec<AuditEvent>,
    /// One per rejected item or line (and one for junk after the last list of a body), in input
    /// order.
    pub dead_letters: Vec<DeadLetter>,
}

/// Body of the API server's audit webhook: an `EventList`
/// (`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[...]}`, v1 or v1beta1).
///
/// Also accepted: a bare JSON array of events, a single event object, and several of these one
/// after the other (NDJSON). Items are numbered from 0 across the body (`item 3` is the fourth).
/// A body cut short yields its complete items and a dead letter for the partial one.
///
/// Errors only when nothing at all can be salvaged: an empty body, a body that is not JSON, a
/// JSON scalar, or a body cut before its first complete item. A complete single object that is
/// not a valid event is not an error: it becomes the dead letter of `item 0`.
pub fn parse_event_list(
    body: &[u8],
    cfg: &AuditParseConfig,
    source: &str,
    now_nanos: i64,
) -> Result<ParsedBatch, BodyError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = scan::skip_ws(body, 0);
    if start == body.len() {
        return Err(BodyError::Empty);
    }
    let mut p = Parser::new(cfg, source, now_nanos);
    // Fast path: the whole body in one pass. No item can be over the limit if the body is not.
    if body.len() <= cfg.max_event_bytes && p.whole_body(&body[start..]) {
        return Ok(p.out);
    }
    p.salvage(body, start)?;
    Ok(p.out)
}

/// An audit log file's content (JSON lines). `first_line` is the line number of the first line in
/// `data` (1-based). Blank lines are skipped; a final line without `\n` is parsed too; a `\r`
/// before the `\n` is ignored.
pub fn parse_json_lines(
    data: &[u8],
    first_line: u64,
    cfg: &AuditParseConfig,
    source: &str,
    now_nanos: i64,
) -> ParsedBatch {
    let mut p = Parser::new(cfg, source, now_nanos);
    let mut line_no = first_line;
    let mut rest = data;
    while !rest.is_empty() {
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if scan::skip_ws(line, 0) < line.len() {
            p.item(line, Loc::Line(line_no));
        }
        line_no += 1;
        rest = next;
    }
    p.out
}

/// Dead letter for a whole rejected body: redacted (structurally when it parses as JSON,
/// lexically otherwise) and cut to `max_dead_letter_payload_bytes`.
pub fn dead_letter_for_body(
    body: &[u8],
    err: &BodyError,
    cfg: &AuditParseConfig,
    source: &str,
    now_nanos: i64,
) -> DeadLetter {
    DeadLetter {
        time: now_nanos,
        source: source.to_owned(),
        kind: err.kind().to_owned(),
        reason: err.to_string(),
        location: None,
        size_bytes: body.len() as i64,
        payload: payload_of(body, cfg),
    }
}

/// Where in the input a dead letter comes from.
#[derive(Debug, Clone, Copy)]
enum Loc {
    Item(usize),
    Line(u64),
    Byte(usize),
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Item(n) => write!(f, "item {n}"),
            Loc::Line(n) => write!(f, "line {n}"),
            Loc::Byte(n) => write!(f, "byte {n}"),
        }
    }
}

/// A typed `EventList` (or anything with `items`), for the one-pass fast path.
#[derive(Deserialize)]
struct TypedList {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    items: Option<Vec<AuditEvent>>,
}

/// Checks [`REQUIRED_FIELDS`] and `kind`.
fn check_required(e: &AuditEvent) -> Result<(), String> {
    if let Some(kind) = e.kind.as_deref() {
        if kind != "Event" {
            return Err(format!("unexpected kind `{kind}`, expected `Event`"));
        }
    }
    if e.audit_id.is_empty() {
        return Err("missing required field `auditID`".to_owned());
    }
    if e.stage.is_empty() {
        return Err("missing required field `stage`".to_owned());
    }
    if e.verb.is_empty() && e.request_uri.is_empty() {
        return Err("missing required field `verb` or `requestURI`".to_owned());
    }
    Ok(())
}

/// Parses items and lines one by one, straight into [`AuditEvent`], so a bad one never costs the
/// good ones around it. A webhook body that parses whole takes one pass ([`Parser::whole_body`]);
/// only a damaged or oversized body is split item by item with the lenient scanner
/// ([`Parser::salvage`]), which also keeps the complete items of a truncated body.
struct Parser<'a> {
    cfg: &'a AuditParseConfig,
    source: &'a str,
    now: i64,
    out: ParsedBatch,
}

impl<'a> Parser<'a> {
    fn new(cfg: &'a AuditParseConfig, source: &'a str, now: i64) -> Self {
        Parser {
            cfg,
            source,
            now,
            out: ParsedBatch::default(),
        }
    }

    /// One pass over a body that is valid JSON and holds only valid events. Returns false (and
    /// leaves `out` untouched) when anything is off, for the item-by-item path to sort out.
    fn whole_body(&mut self, b: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(b) else {
            return false;
        };
        let events = match b[0] {
            b'[' => serde_json::from_str::<Vec<AuditEvent>>(text).ok(),
            b'{' => match serde_json::from_str::<TypedList>(text) {
                Ok(TypedList {
                    items: Some(items), ..
                }) => Some(items),
                Ok(TypedList { kind, items: None }) if kind.as_deref() == Some("EventList") => {
                    Some(Vec::new())
                }
                // A single event (valid JSON): parse it as the only item.
                Ok(_) => {
                    self.item(b, Loc::Item(0));
                    return true;
                }
                Err(_) => None,
            },
            _ => None,
        };
        let Some(mut events) = events else {
            return false;
        };
        if !events.iter().all(|e| check_required(e).is_ok()) {
            return false;
        }
        if self.cfg.redact.enabled {
            events.iter_mut().for_each(redact_event);
        }
        self.out.events = events;
        true
    }

    /// Item by item, with a lenient scanner finding the items: salvages what it can from a body
    /// that does not parse whole.
    fn salvage(&mut self, b: &[u8], mut pos: usize) -> Result<(), BodyError> {
        let mut next_item = 0usize;
        let mut complete_docs = 0usize;
        loop {
            pos = scan::skip_ws(b, pos);
            if pos >= b.len() {
                return Ok(());
            }
            // Each arm either moves `pos` past a complete top-level value or names the problem.
            let problem = match b[pos] {
                b'[' => {
                    let arr = scan::split_array(b, pos);
                    self.items(b, &arr.items, &mut next_item);
                    match (arr.end, arr.truncated_item) {
                        (Some(end), _) => {
                            complete_docs += 1;
                            pos = end;
                            continue;
                        }
                        (None, Some(t)) => Problem::TruncatedItem(t),
                        (None, None) => Problem::Unclosed,
                    }
                }
                b'{' => match scan::object_shape(b, pos) {
                    ObjectShape::List { items_start } => {
                        let arr = scan::split_array(b, items_start);
                        self.items(b, &arr.items, &mut next_item);
                        match (arr.end, arr.truncated_item) {
                            (Some(end), _) => {
                                complete_docs += 1;
                                pos = scan::container_end_from(b, end, 1).unwrap_or(b.len());
                                continue;
                            }
                            (None, Some(t)) => Problem::TruncatedItem(t),
                            (None, None) => Problem::Unclosed,
                        }
                    }
                    ObjectShape::EmptyKindList { end } => {
                        complete_docs += 1;
                        pos = end;
                        continue;
                    }
                    ObjectShape::EmptyList { end } => {
                        complete_docs += 1;
                        pos = end.unwrap_or(b.len());
                        continue;
                    }
                    ObjectShape::BadItems { end } => Problem::BadItems(end.unwrap_or(b.len())),
                    ObjectShape::Single { end: Some(end) } => {
                        self.item(&b[pos..end], Loc::Item(next_item));
                        next_item += 1;
                        complete_docs += 1;
                        pos = end;
                        continue;
                    }
                    ObjectShape::Single { end: None } => Problem::TruncatedItem(pos),
                },
                _ => Problem::Junk,
            };
            if next_item == 0 && complete_docs == 0 {
                return Err(body_error(b, &problem));
            }
            match problem {
                Problem::Unclosed => {}
                Problem::TruncatedItem(t) => {
                    let tail = &b[t..];
                    let reason = if tail.len() <= self.cfg.max_event_bytes {
                        match serde_json::from_slice::<serde::de::IgnoredAny>(tail) {
                            Err(e) => format!("truncated: the body ends inside this item ({e})"),
                            Ok(_) => "truncated: the body ends inside this item".to_owned(),
                        }
                    } else {
                        "truncated: the body ends inside this item".to_owned()
                    };
                    let kind = if std::str::from_utf8(tail).is_err() {
                        "invalid_utf8"
                    } else {
                        "invalid_json"
                    };
                    self.dead(tail, kind, reason, Loc::Item(next_item));
                }
                Problem::BadItems(end) => {
                    let reason = "`items` is neither an array nor null".to_owned();
                    self.dead(&b[pos..end], "schema", reason, Loc::Byte(pos));
                    pos = end;
                    continue;
                }
                Problem::Junk => {
                    let reason = "unexpected data after the event list".to_owned();
                    self.dead(&b[pos..], "invalid_json", reason, Loc::Byte(pos));
                }
            }
            return Ok(());
        }
    }

    fn items(&mut self, b: &[u8], ranges: &[(usize, usize)], next_item: &mut usize) {
        for &(s, e) in ranges {
            self.item(&b[s..e], Loc::Item(*next_item));
            *next_item += 1;
        }
    }

    /// One event's bytes: an event, or a dead letter.
    fn item(&mut self, bytes: &[u8], loc: Loc) {
        if bytes.len() > self.cfg.max_event_bytes {
            self.too_large(bytes, loc);
            return;
        }
        // Validating UTF-8 once up front (fast for ASCII) is cheaper than serde_json checking
        // every string piece, and names the problem precisely.
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(u) => {
                let reason = format!("invalid UTF-8 at byte {}", u.valid_up_to());
                self.dead(bytes, "invalid_utf8", reason, loc);
                return;
            }
        };
        match serde_json::from_str::<AuditEvent>(text) {
            Ok(mut e) => match check_required(&e) {
                Ok(()) => {
                    if self.cfg.redact.enabled {
                        redact_event(&mut e);
                    }
                    self.out.events.push(e);
                }
                Err(reason) => self.dead(bytes, "schema", reason, loc),
            },
            Err(err) => {
                let kind = match err.classify() {
                    Category::Data => "schema",
                    _ => "invalid_json",
                };
                self.dead(bytes, kind, err.to_string(), loc);
            }
        }
    }

    fn too_large(&mut self, bytes: &[u8], loc: Loc) {
        let reason = format!(
            "event is {} bytes, over max_event_bytes ({}); only its metadata is kept",
            bytes.len(),
            self.cfg.max_event_bytes
        );
        let payload = truncate(
            metadata_of(bytes).to_string(),
            self.cfg.max_dead_letter_payload_bytes,
            false,
        );
        self.push_dead(bytes.len(), "too_large", reason, loc, payload);
    }

    fn dead(&mut self, bytes: &[u8], kind: &str, reason: String, loc: Loc) {
        let payload = payload_of(bytes, self.cfg);
        self.push_dead(bytes.len(), kind, reason, loc, payload);
    }

    fn push_dead(&mut self, size: usize, kind: &str, reason: String, loc: Loc, payload: String) {
        self.out.dead_letters.push(DeadLetter {
            time: self.now,
            source: self.source.to_owned(),
            kind: kind.to_owned(),
            reason,
            location: Some(loc.to_string()),
            size_bytes: size as i64,
            payload,
        });
    }
}

/// What stopped the item-by-item scan of a body.
enum Problem {
    /// The body ends inside the item starting here.
    TruncatedItem(usize),
    /// The body ends before the array closes, after a complete item: nothing is lost.
    Unclosed,
    /// `items` is neither an array nor null; the object ends here.
    BadItems(usize),
    /// Something other than an object or array where a top-level value belongs.
    Junk,
}

/// The error for a body from which nothing could be salvaged.
fn body_error(b: &[u8], problem: &Problem) -> BodyError {
    if let Problem::BadItems(_) = problem {
        return BodyError::NotEventList {
            reason: "`items` is neither an array nor null".to_owned(),
        };
    }
    if let Err(u) = std::str::from_utf8(b) {
        return BodyError::InvalidUtf8 {
            reason: format!("invalid byte at offset {}", u.valid_up_to()),
        };
    }
    match serde_json::from_slice::<Value>(b) {
        Err(e) => BodyError::InvalidJson {
            reason: e.to_string(),
        },
        Ok(v) => BodyError::NotEventList {
            reason: format!("found {}", json_type(&v)),
        },
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The payload of a dead letter: redacted (structurally when it parses, and always lexically,
/// which also covers what structure cannot tell), lossy UTF-8, cut to the configured size.
fn payload_of(bytes: &[u8], cfg: &AuditParseConfig) -> String {
    let max = cfg.max_dead_letter_payload_bytes;
    if cfg.redact.enabled && bytes.len() <= cfg.max_event_bytes {
        if let Ok(mut v) = serde_json::from_slice::<Value>(bytes) {
            redact_value(&mut v);
            return truncate(redact_lexical(&v.to_string()), max, false);
        }
    }
    let cut = bytes.len() > max;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]);
    let text = if cfg.redact.enabled {
        redact_lexical(&text)
    } else {
        text.into_owned()
    };
    truncate(text, max, cut)
}

/// Cuts `s` to at most `max` bytes (at a char boundary) ending with [`TRUNCATED_MARKER`], if it is
/// longer or if `cut` says it was already cut.
fn truncate(mut s: String, max: usize, cut: bool) -> String {
    if s.len() <= max && !cut {
        return s;
    }
    let mut keep = max.saturating_sub(TRUNCATED_MARKER.len()).min(s.len());
    while !s.is_char_boundary(keep) {
        keep -= 1;
    }
    s.truncate(keep);
    s.push_str(TRUNCATED_MARKER);
    s
}

/// Top-level fields of an oversized event kept in its dead letter.
const METADATA_KEYS: &[&str] = &[
    "kind",
    "apiVersion",
    "level",
    "auditID",
    "stage",
    "requestURI",
    "verb",
    "user",
    "impersonatedUser",
    "sourceIPs",
    "userAgent",
    "objectRef",
    "responseStatus",
    "requestReceivedTimestamp",
    "stageTimestamp",
    "timestamp",
];

/// Largest single metadata value read from an oversized event.
const MAX_METADATA_VALUE_BYTES: usize = 16 << 10;

/// The metadata of an (oversized, possibly damaged) event, read key by key without parsing the
/// big bodies: whatever could be read before the first damage.
fn metadata_of(b: &[u8]) -> Value {
    let mut meta = Map::new();
    let mut i = scan::skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return Value::Object(meta);
    }
    i += 1;
    loop {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b',') {
            i += 1;
        }
        if b.get(i) != Some(&b'"') {
            break;
        }
        let Some(key_end) = scan::string_end(b, i) else {
            break;
        };
        let key = &b[i + 1..key_end - 1];
        i = scan::skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            break;
        }
        i = scan::skip_ws(b, i + 1);
        let Some(end) = scan::value_end(b, i) else {
            break;
        };
        let wanted = METADATA_KEYS.iter().find(|k| k.as_bytes() == key);
        if let (Some(name), true) = (wanted, end - i <= MAX_METADATA_VALUE_BYTES) {
            if let Ok(mut v) = serde_json::from_slice::<Value>(&b[i..end]) {
                match *name {
                    "user" | "impersonatedUser" => {
                        v = serde_json::json!({ "username": v.get("username") });
                    }
                    "responseStatus" => v = serde_json::json!({ "code": v.get("code") }),
                    _ => {}
                }
                meta.insert((*name).to_owned(), v);
            }
        }
        i = end;
    }
    Value::Object(meta)
}

#[cfg(test)]
mod tests;
