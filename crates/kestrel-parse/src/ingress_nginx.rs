//! ingress-nginx access log lines: the controller's default `log-format-upstream`, or any nginx
//! `log_format` a user configured.
//!
//! A format is compiled once into a matcher: the literal text between `$variables`, each found
//! with a precomputed substring search. A variable between double quotes ends at the first
//! unescaped `"` followed by the rest of the separator (values may hold `\"` or nginx's `\x22`);
//! an `$upstream_*` variable may hold a list (`10.0.0.1:80, 10.0.0.2:80 : 10.0.0.3:80` after
//! retries and internal redirects), so a space after `,` or around ` : ` does not end it. Values
//! are unescaped (`\xHH`, and the JSON escapes of `escape=json`) and `-` is `None`. Variables
//! Kestrel knows become [`IngressAccess`] columns; the others go to its `fields` JSON object.

use std::sync::LazyLock;

use kestrel_event::IngressAccess;
use memchr::memmem;
use serde_json::{Map, Value};

use crate::timestamp::{civil_to_nanos, parse_rfc3339_nanos};

/// ingress-nginx's default `log-format-upstream`.
pub const DEFAULT_INGRESS_FORMAT: &str = "$remote_addr - $remote_user [$time_local] \"$request\" \
$status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_length $request_time \
[$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr \
$upstream_response_length $upstream_response_time $upstream_status $req_id";

/// A `log_format` string that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    #[error("the log format has no variables")]
    NoVariables,
    /// Two variables with nothing between them cannot be told apart.
    #[error("variables `${first}` and `${second}` at byte {at} have no text between them")]
    Adjacent {
        first: String,
        second: String,
        at: usize,
    },
    #[error("`$` at byte {at} is not followed by a variable name")]
    BadVariable { at: usize },
}

/// Why a line does not match the format. Byte offsets count from the start of the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IngressError {
    #[error("empty line")]
    Empty,
    #[error("expected `{expected}` at byte {at}, found `{found}`")]
    Literal {
        expected: String,
        at: usize,
        found: String,
    },
    /// The separator after a variable never comes.
    #[error("no `{expected}` after `${variable}` starting at byte {at}")]
    Unterminated {
        variable: String,
        expected: String,
        at: usize,
    },
    #[error("`${variable}` at byte {at} is `{value}`: {reason}")]
    Value {
        variable: String,
        at: usize,
        value: String,
        reason: &'static str,
    },
    /// The caller gave no time and the format has no parseable time variable.
    #[error("no time: the format has no `$time_local`, `$time_iso8601` or `$msec`")]
    NoTime,
}

impl IngressError {
    /// Short machine-readable cause for a dead letter.
    pub fn kind(&self) -> &'static str {
        match self {
            IngressError::Empty => "empty",
            IngressError::Literal { .. } | IngressError::Unterminated { .. } => "format_mismatch",
            IngressError::Value { .. } => "invalid_value",
            IngressError::NoTime => "invalid_time",
        }
    }
}

/// Where a variable's value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    ClientIp,
    RemoteUser,
    TimeLocal,
    TimeIso8601,
    Msec,
    Request,
    Method,
    Path,
    Protocol,
    Host,
    Status,
    BodyBytes,
    Referer,
    UserAgent,
    RequestBytes,
    RequestTime,
    UpstreamName,
    UpstreamAlternative,
    UpstreamAddr,
    UpstreamBytes,
    UpstreamTime,
    UpstreamStatus,
    RequestId,
    /// Into `fields`.
    Other,
}

fn target_of(name: &str) -> Target {
    use Target::*;
    match name {
        "remote_addr" | "the_real_ip" => ClientIp,
        "remote_user" => RemoteUser,
        "time_local" => TimeLocal,
        "time_iso8601" => TimeIso8601,
        "msec" => Msec,
        "request" => Request,
        "request_method" => Method,
        "request_uri" | "uri" => Path,
        "server_protocol" => Protocol,
        "host" | "http_host" => Host,
        "status" => Status,
        "body_bytes_sent" => BodyBytes,
        "http_referer" => Referer,
        "http_user_agent" => UserAgent,
        "request_length" => RequestBytes,
        "request_time" => RequestTime,
        "proxy_upstream_name" => UpstreamName,
        "proxy_alternative_upstream_name" => UpstreamAlternative,
        "upstream_addr" => UpstreamAddr,
        "upstream_response_length" => UpstreamBytes,
        "upstream_response_time" => UpstreamTime,
        "upstream_status" => UpstreamStatus,
        "req_id" | "request_id" => RequestId,
        _ => Other,
    }
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    target: Target,
    /// Between double quotes: ends at an unescaped `"`.
    quoted: bool,
    /// May hold a `, `/` : ` separated list.
    list: bool,
    /// The literal text after the variable (empty for a last variable that takes the rest).
    then: Vec<u8>,
    finder: memmem::Finder<'static>,
}

/// A compiled access log format; build once, parse many lines.
#[derive(Debug, Clone)]
pub struct IngressFormat {
    lead: Vec<u8>,
    fields: Vec<Field>,
}

impl Default for IngressFormat {
    /// ingress-nginx's default format.
    fn default() -> Self {
        IngressFormat::new(DEFAULT_INGRESS_FORMAT).expect("the default format compiles")
    }
}

impl IngressFormat {
    /// Compiles an nginx `log_format` string (`$name` or `${name}` variables, anything else is
    /// literal text; nginx's multi-line `'...' '...'` quoting must already be joined).
    pub fn new(format: &str) -> Result<Self, FormatError> {
        let b = format.as_bytes();
        let mut lead = Vec::new();
        let mut fields: Vec<Field> = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        let mut prev_var_at = 0;
        while i < b.len() {
            if b[i] != b'$' {
                lit.push(b[i]);
                i += 1;
                continue;
            }
            let (name, next) = if b.get(i + 1) == Some(&b'{') {
                let close =
                    memchr::memchr(b'}', &b[i + 2..]).ok_or(FormatError::BadVariable { at: i })?;
                (&format[i + 2..i + 2 + close], i + 3 + close)
            } else {
                let len = b[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                    .count();
                (&format[i + 1..i + 1 + len], i + 1 + len)
            };
            if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
                return Err(FormatError::BadVariable { at: i });
            }
            match fields.last_mut() {
                None => lead = std::mem::take(&mut lit),
                Some(prev) => {
                    if lit.is_empty() {
                        return Err(FormatError::Adjacent {
                            first: prev.name.clone(),
                            second: name.to_owned(),
                            at: prev_var_at,
                        });
                    }
                    prev.set_then(std::mem::take(&mut lit));
                }
            }
            let quoted = lead_or_then(&lead, &fields).last() == Some(&b'"');
            let target = target_of(name);
            fields.push(Field {
                name: name.to_owned(),
                target,
                quoted,
                list: name.starts_with("upstream_"),
                then: Vec::new(),
                finder: memmem::Finder::new(b"").into_owned(),
            });
            prev_var_at = i;
            i = next;
        }
        let last = fields.last_mut().ok_or(FormatError::NoVariables)?;
        last.set_then(lit);
        // A quoted variable needs its closing quote right after it.
        for f in &mut fields {
            f.quoted &= f.then.first() == Some(&b'"');
        }
        Ok(IngressFormat { lead, fields })
    }

    /// Parses one line (a trailing `\n` is ignored). `time` is the container runtime's time of
    /// the line (finer than nginx's); without it, the format's `$time_local`, `$time_iso8601`
    /// or `$msec` is used.
    pub fn parse(&self, line: &[u8], time: Option<i64>) -> Result<IngressAccess, IngressError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Err(IngressError::Empty);
        }
        if !line.starts_with(&self.lead) {
            return Err(literal_error(&self.lead, line, 0));
        }
        let mut out = IngressAccess::default();
        let mut own_time = None;
        let mut extra = Map::new();
        let mut pos = self.lead.len();
        for f in &self.fields {
            let end = f.value_end(line, pos)?;
            let raw = &line[pos..end];
            let time_var = matches!(
                f.target,
                Target::TimeLocal | Target::TimeIso8601 | Target::Msec
            );
            // A time variable is read only when the caller has no better time.
            if raw != b"-" && !(time_var && time.is_some()) {
                f.store(raw, pos, &mut out, &mut own_time, &mut extra)?;
            }
            pos = end + f.then.len();
        }
        out.time = match (time, own_time) {
            (Some(t), _) | (None, Some(t)) => t,
            (None, None) => return Err(IngressError::NoTime),
        };
        if !extra.is_empty() {
            out.fields = Some(Value::Object(extra).to_string());
        }
        Ok(out)
    }
}

/// The literal text before the next variable.
fn lead_or_then<'a>(lead: &'a [u8], fields: &'a [Field]) -> &'a [u8] {
    fields.last().map_or(lead, |f| &f.then)
}

fn literal_error(expected: &[u8], line: &[u8], at: usize) -> IngressError {
    let found = &line[at.min(line.len())..];
    IngressError::Literal {
        expected: String::from_utf8_lossy(expected).into_owned(),
        at,
        found: String::from_utf8_lossy(&found[..found.len().min(expected.len().max(8))])
            .into_owned(),
    }
}

impl Field {
    fn set_then(&mut self, then: Vec<u8>) {
        self.finder = memmem::Finder::new(&then).into_owned();
        self.then = then;
    }

    fn unterminated(&self, at: usize) -> IngressError {
        IngressError::Unterminated {
            variable: self.name.clone(),
            expected: String::from_utf8_lossy(&self.then).into_owned(),
            at,
        }
    }

    /// End (exclusive) of this variable's value starting at `pos`.
    fn value_end(&self, line: &[u8], pos: usize) -> Result<usize, IngressError> {
        if self.then.is_empty() {
            return Ok(line.len());
        }
        let mut i = pos;
        if self.quoted {
            // The first unescaped `"` followed by the rest of the separator.
            while let Some(rel) = memchr::memchr2(b'"', b'\\', &line[i..]) {
                let at = i + rel;
                if line[at] == b'\\' {
                    i = at + 2;
                    if i > line.len() {
                        break;
                    }
                    continue;
                }
                if line[at..].starts_with(&self.then) {
                    return Ok(at);
                }
                i = at + 1;
            }
            return Err(self.unterminated(pos));
        }
        loop {
            let Some(rel) = self.finder.find(&line[i..]) else {
                return Err(self.unterminated(pos));
            };
            let at = i + rel;
            if self.list && self.then[0] == b' ' {
                let before = &line[pos..at];
                let after = &line[at + 1..];
                if before.ends_with(b",") || before.ends_with(b" :") || after.starts_with(b": ") {
                    i = at + 1;
                    continue;
                }
            }
            return Ok(at);
        }
    }

    fn store(
        &self,
        raw: &[u8],
        at: usize,
        out: &mut IngressAccess,
        own_time: &mut Option<i64>,
        extra: &mut Map<String, Value>,
    ) -> Result<(), IngressError> {
        let bad = |reason: &'static str| IngressError::Value {
            variable: self.name.clone(),
            at,
            value: String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned(),
            reason,
        };
        let text = || unescape(raw);
        use Target::*;
        match self.target {
            ClientIp => out.client_ip = Some(text()),
            RemoteUser => out.remote_user = Some(text()),
            TimeLocal => {
                *own_time = Some(
                    parse_time_local(raw)
                        .ok_or_else(|| bad("expected a time like 20/Nov/2026:09:00:01 +0000"))?,
                )
            }
            TimeIso8601 => {
                *own_time =
                    Some(parse_rfc3339_nanos(raw).map_err(|_| bad("expected an ISO 8601 time"))?)
            }
            Msec => {
                *own_time =
                    Some(parse_msec(raw).ok_or_else(|| bad("expected seconds with milliseconds"))?)
            }
            Request => split_request(&text(), out),
            Method => out.method = Some(text()),
            Path => out.path = Some(text()),
            Protocol => out.protocol = Some(text()),
            Host => out.host = Some(text()),
            Status => {
                out.status = Some(parse_int(raw).ok_or_else(|| bad("expected an HTTP status"))?)
            }
            BodyBytes => {
                out.body_bytes = Some(parse_int(raw).ok_or_else(|| bad("expected a byte count"))?)
            }
            Referer => out.referer = Some(text()),
            UserAgent => out.user_agent = Some(text()),
            RequestBytes => {
                out.request_bytes =
                    Some(parse_int(raw).ok_or_else(|| bad("expected a byte count"))?)
            }
            RequestTime => {
                let secs = std::str::from_utf8(raw)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| bad("expected seconds"))?;
                out.request_time = Some(secs);
            }
            UpstreamName => out.upstream_name = Some(text()),
            UpstreamAlternative => out.upstream_alternative = Some(text()),
            UpstreamAddr => out.upstream_addr = Some(text()),
            UpstreamBytes => out.upstream_bytes = Some(text()),
            UpstreamTime => out.upstream_time = Some(text()),
            UpstreamStatus => out.upstream_status = Some(text()),
            RequestId => out.request_id = Some(text()),
            Other => {
                extra.insert(self.name.clone(), Value::String(text()));
            }
        }
        Ok(())
    }
}

fn parse_int<T: std::str::FromStr>(raw: &[u8]) -> Option<T> {
    if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// `$msec`: seconds since the epoch with a millisecond fraction, `1795165201.123`.
fn parse_msec(raw: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(raw).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = parse_int(secs.as_bytes())?;
    let mut nanos: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    nanos *= 10_i64.pow(9 - frac.len() as u32);
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// nginx's `$time_local`: `20/Nov/2026:09:00:01 +0000`.
pub fn parse_time_local(raw: &[u8]) -> Option<i64> {
    if raw.len() != 26 || raw[2] != b'/' || raw[6] != b'/' || raw[11] != b':' || raw[20] != b' ' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> { parse_int(&raw[r]) };
    let day = num(0..2)?;
    let month = month_number(&raw[3..6])?;
    let year = num(7..11)?;
    let (h, m, s) = (num(12..14)?, num(15..17)?, num(18..20)?);
    if raw[14] != b':' || raw[17] != b':' {
        return None;
    }
    let sign = match raw[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = (num(22..24)?, num(24..26)?);
    let offset = sign * i64::from(oh * 3600 + om * 60) * 1_000_000_000;
    civil_to_nanos(i64::from(year), month, day, h, m, s)?.checked_sub(offset)
}

/// `Jan` → 1 … `Dec` → 12.
pub(crate) fn month_number(name: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    MONTHS
        .iter()
        .position(|m| m.as_slice() == name)
        .map(|i| i as u32 + 1)
}

/// `GET /path?q HTTP/1.1` into method, path and protocol. A request line that does not split
/// so (a TLS handshake sent to the HTTP port, a scanner's junk) is kept whole as the path.
fn split_request(request: &str, out: &mut IngressAccess) {
    let mut parts = request.splitn(2, ' ');
    let method = parts.next().unwrap_or_default();
    let rest = parts.next();
    let plausible_method = !method.is_empty()
        && method
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c == b'-' || c == b'_');
    match rest {
        Some(rest) if plausible_method => {
            out.method = Some(method.to_owned());
            match rest.rsplit_once(' ') {
                Some((path, proto)) if proto.starts_with("HTTP/") => {
                    out.path = Some(path.to_owned());
                    out.protocol = Some(proto.to_owned());
                }
                _ => out.path = Some(rest.to_owned()),
            }
        }
        _ => out.path = Some(request.to_owned()),
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Undoes nginx's escaping (`\xHH`; `\"`, `\\`, `\n`, `\uXXXX`... of `escape=json`) and decodes
/// the bytes as lossy UTF-8. Unknown escapes stay as written.
fn unescape(raw: &[u8]) -> String {
    if memchr::memchr(b'\\', raw).is_none() {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' || i + 1 >= raw.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let simple = match raw[i + 1] {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            i += 2;
            continue;
        }
        if raw[i + 1] == b'x' && i + 3 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 2]), hex(raw[i + 3])) {
                out.push(h << 4 | l);
                i += 4;
                continue;
            }
        }
        if raw[i + 1] == b'u' && i + 5 < raw.len() {
            let code = raw[i + 2..i + 6]
                .iter()
                .try_fold(0u32, |acc, &c| Some(acc << 4 | u32::from(hex(c)?)));
            if let Some(ch) = code.and_then(char::from_u32) {
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                i += 6;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Parses one line of ingress-nginx's default format; see [`IngressFormat::parse`].
pub fn parse_ingress_default(
    line: &[u8],
    time: Option<i64>,
) -> Result<IngressAccess, IngressError> {
    static DEFAULT: LazyLock<IngressFormat> = LazyLock::new(IngressFormat::default);
    DEFAULT.parse(line, time)
}

#[cfg(test)]
mod tests;
