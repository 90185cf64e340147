//! Kernel netfilter `LOG` lines (iptables/nftables `log`, Calico policy logging), read from
//! `/dev/kmsg` records or from a kern.log file written by a syslog daemon.
//!
//! Three layers, combined by the agent:
//! - [`parse_kmsg`]: a `/dev/kmsg` record `<priority>,<seq>,<usec since boot>,<flags>;<text>`
//!   → time, sequence number (to checkpoint by) and text;
//! - [`parse_kern_log`]: a kern.log line, traditional (`Nov 20 09:00:01 node-1 kernel: ...`) or
//!   RFC 3339 (`2026-11-20T09:00:01.123456+00:00 node-1 kernel: ...`) → time and text;
//! - [`parse_packet`]: the text `<prefix>IN=eth0 OUT= ... SRC=... DST=... PROTO=TCP ...` →
//!   [`NetfilterLog`].
//!
//! Every other kernel message is "not a packet log" (`Ok(None)`), not an error: a kern.log full of
//! other messages is normal.
//!
//! ```
//! use kestrel_parse::netfilter::{parse_kmsg, parse_packet};
//! let boot_ns = 1_795_000_000_000_000_000;
//! let rec = parse_kmsg(b"4,1234,5000000,-;calico-packet: IN=cali1 OUT=eth0 SRC=10.0.0.1 DST=10.0.0.2 LEN=60 PROTO=TCP SPT=1 DPT=80 SYN", boot_ns)
//!     .unwrap()
//!     .unwrap();
//! assert_eq!(rec.seq, 1234);
//! let packet = parse_packet(&rec.text, rec.time).unwrap().unwrap();
//! assert_eq!(packet.dst_port, Some(80));
//! ```

use std::borrow::Cow;

use chrono::Datelike;
use kestrel_event::NetfilterLog;

use crate::ingress_nginx::month_number;
use crate::timestamp::{civil_to_nanos, parse_rfc3339_nanos, TimestampError};

/// Why a record or line could not be read. Byte offsets count from the start of the input of
/// the function that failed (for [`parse_packet`], the text after the header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetfilterError {
    #[error("empty line")]
    Empty,
    /// A `/dev/kmsg` or syslog header is not as expected.
    #[error("bad {format} header at byte {at}: {reason}")]
    Header {
        format: &'static str,
        at: usize,
        reason: &'static str,
    },
    #[error("timestamp at byte 0: {0}")]
    Time(#[source] TimestampError),
    #[error("`{field}` at byte {at} is `{value}`: {reason}")]
    Value {
        field: &'static str,
        at: usize,
        value: String,
        reason: &'static str,
    },
}

impl NetfilterError {
    /// Short machine-readable cause for a dead letter.
    pub fn kind(&self) -> &'static str {
        match self {
            NetfilterError::Empty => "empty",
            NetfilterError::Header { .. } => "invalid_header",
            NetfilterError::Time(_) => "invalid_time",
            NetfilterError::Value { .. } => "invalid_value",
        }
    }
}

fn header(format: &'static str, at: usize, reason: &'static str) -> NetfilterError {
    NetfilterError::Header { format, at, reason }
}

/// One `/dev/kmsg` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord<'a> {
    /// Syslog level, 0 (emerg) to 7 (debug).
    pub level: u8,
    /// Syslog facility (0 for the kernel).
    pub facility: u32,
    /// The kernel's record sequence number: increasing, without gaps unless records were
    /// overwritten before being read. Checkpoint by it.
    pub seq: u64,
    /// `boot_time_ns` plus the record's microseconds since boot, UTC nanoseconds.
    pub time: i64,
    /// The message's first line (the kernel escapes unprintable bytes as `\xHH`).
    pub text: Cow<'a, str>,
}

/// Parses one `/dev/kmsg` record (`<priority>,<seq>,<usec>,<flags>[,...];<text>`), as one
/// `read` returns it. The lines after the first (` KEY=value` dictionary lines, which start with
/// a space) are ignored; given on its own, such a line is `Ok(None)`. `boot_time_ns` is when the
/// machine booted (UTC nanoseconds).
pub fn parse_kmsg(
    record: &[u8],
    boot_time_ns: i64,
) -> Result<Option<KmsgRecord<'_>>, NetfilterError> {
    const F: &str = "/dev/kmsg";
    if record.first() == Some(&b' ') {
        return Ok(None);
    }
    let first_line = &record[..memchr::memchr(b'\n', record).unwrap_or(record.len())];
    if first_line.is_empty() {
        return Err(NetfilterError::Empty);
    }
    let semi = memchr::memchr(b';', first_line).ok_or(header(
        F,
        first_line.len(),
        "no `;` before the text",
    ))?;
    let mut fields = first_line[..semi].split(|&c| c == b',');
    let mut at = 0;
    let mut next_num = |name: &'static str| -> Result<u64, NetfilterError> {
        let f = fields.next().unwrap_or_default();
        let start = at;
        at += f.len() + 1;
        if f.is_empty() || !f.iter().all(u8::is_ascii_digit) {
            return Err(NetfilterError::Value {
                field: name,
                at: start,
                value: String::from_utf8_lossy(f).into_owned(),
                reason: "expected a number",
            });
        }
        std::str::from_utf8(f)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(NetfilterError::Value {
                field: name,
                at: start,
                value: String::from_utf8_lossy(f).into_owned(),
                reason: "number out of range",
            })
    };
    let priority = next_num("priority")?;
    let seq = next_num("sequence")?;
    let usec = next_num("timestamp")?;
    let usec = i64::try_from(usec).unwrap_or(i64::MAX);
    let time = usec
        .checked_mul(1000)
        .and_then(|ns| ns.checked_add(boot_time_ns))
        .ok_or(header(F, 0, "timestamp out of range"))?;
    Ok(Some(KmsgRecord {
        level: (priority & 7) as u8,
        facility: u32::try_from(priority >> 3).unwrap_or(u32::MAX),
        seq,
        time,
        text: String::from_utf8_lossy(&first_line[semi + 1..]),
    }))
}

/// One kernel message of a kern.log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernLogLine<'a> {
    /// UTC nanoseconds.
    pub time: i64,
    pub host: Cow<'a, str>,
    /// The message, after the kernel's `[seconds.micros]` uptime stamp if there was one.
    pub text: Cow<'a, str>,
}

/// Parses one kern.log line. Traditional syslog stamps (`Nov 20 09:00:01`) have no year and no
/// zone: the year is the one that puts the line at most 7 days after `reference_ns` (the time the
/// caller read it, normally now), and the time is read in the zone `utc_offset_secs` east of UTC
/// (0 on nodes that run in UTC). RFC 3339 stamps (rsyslog's high-precision format) carry both.
/// Lines of other programs than `kernel` are `Ok(None)`.
pub fn parse_kern_log(
    line: &[u8],
    reference_ns: i64,
    utc_offset_secs: i32,
) -> Result<Option<KernLogLine<'_>>, NetfilterError> {
    const F: &str = "syslog";
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(NetfilterError::Empty);
    }
    let (time, mut pos) = if line[0].is_ascii_digit() {
        let end =
            memchr::memchr(b' ', line).ok_or(header(F, line.len(), "no host after the time"))?;
        let t = parse_rfc3339_nanos(&line[..end]).map_err(NetfilterError::Time)?;
        (t, end + 1)
    } else {
        traditional_time(line, reference_ns, utc_offset_secs)?
    };
    let host_end =
        memchr::memchr(b' ', &line[pos..]).ok_or(header(F, pos, "no program after the host"))?
            + pos;
    let host = String::from_utf8_lossy(&line[pos..host_end]);
    pos = host_end + 1;
    let rest = &line[pos..];
    let Some(after_tag) = rest.strip_prefix(b"kernel:") else {
        return Ok(None);
    };
    let mut text = after_tag.strip_prefix(b" ").unwrap_or(after_tag);
    // The kernel's own uptime stamp, `[12345.678901] ` (space-padded inside the brackets).
    if text.first() == Some(&b'[') {
        if let Some(close) = memchr::memchr(b']', text) {
            let stamp = &text[1..close];
            if stamp
                .iter()
                .all(|c| c.is_ascii_digit() || *c == b'.' || *c == b' ')
            {
                text = &text[close + 1..];
                text = text.strip_prefix(b" ").unwrap_or(text);
            }
        }
    }
    Ok(Some(KernLogLine {
        time,
        host,
        text: String::from_utf8_lossy(text),
    }))
}

/// `Nov 20 09:00:01 ` (or `Nov  5 ...`): the time and the index after the space.
fn traditional_time(
    line: &[u8],
    reference_ns: i64,
    utc_offset_secs: i32,
) -> Result<(i64, usize), NetfilterError> {
    const F: &str = "syslog";
    if line.len() < 16
        || line[3] != b' '
        || line[6] != b' '
        || line[9] != b':'
        || line[12] != b':'
        || line[15] != b' '
    {
        return Err(header(
            F,
            0,
            "expected a time like `Nov 20 09:00:01` or RFC 3339",
        ));
    }
    let month = month_number(&line[..3]).ok_or(header(F, 0, "unknown month"))?;
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = std::str::from_utf8(&line[r]).ok()?.trim_start();
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let bad_time = || header(F, 0, "expected a time like `Nov 20 09:00:01` or RFC 3339");
    let day = num(4..6).ok_or_else(bad_time)?;
    let (h, m, s) = (
        num(7..9).ok_or_else(bad_time)?,
        num(10..12).ok_or_else(bad_time)?,
        num(13..15).ok_or_else(bad_time)?,
    );
    let offset_ns = i64::from(utc_offset_secs) * 1_000_000_000;
    let local_ref = reference_ns.saturating_add(offset_ns);
    let ref_year = i64::from(chrono::DateTime::from_timestamp_nanos(local_ref).year());
    const WEEK: i64 = 7 * 86_400 * 1_000_000_000;
    // Feb 29 exists only in leap years: try earlier years until the date is valid.
    for year in [
        ref_year,
        ref_year - 1,
        ref_year - 2,
        ref_year - 3,
        ref_year - 4,
    ] {
        if let Some(local) = civil_to_nanos(year, month, day, h, m, s) {
            if local <= local_ref.saturating_add(WEEK) {
                return Ok((local - offset_ns, 16));
            }
        }
    }
    Err(header(F, 0, "invalid date"))
}

/// TCP flags as the kernel's `LOG` target prints them.
const TCP_FLAGS: [&str; 8] = ["CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"];

/// Parses the text of a kernel message. `Ok(None)` when it is not a packet log (no `IN=` with
/// `SRC=` and `DST=` after it). The prefix is the text before `IN=`, trimmed. Fields of a packet
/// quoted inside an ICMP error (`[SRC=... DST=...]`) are not the packet's and are skipped; `raw`
/// keeps everything.
pub fn parse_packet(text: &str, time: i64) -> Result<Option<NetfilterLog>, NetfilterError> {
    let b = text.as_bytes();
    let Some(anchor) = find_anchor(b) else {
        return Ok(None);
    };
    let prefix = text[..anchor].trim();
    let mut log = NetfilterLog {
        time,
        prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
        raw: text.to_owned(),
        ..Default::default()
    };
    let mut flags: Vec<&str> = Vec::new();
    let mut at = anchor;
    for tok in text[anchor..].split(' ') {
        let tok_at = at;
        at += tok.len() + 1;
        if tok.is_empty() {
            continue;
        }
        if tok.starts_with('[') {
            break;
        }
        let Some((key, value)) = tok.split_once('=') else {
            if TCP_FLAGS.contains(&tok) {
                flags.push(tok);
            }
            continue;
        };
        let value_at = tok_at + key.len() + 1;
        let opt = || (!value.is_empty()).then(|| value.to_owned());
        match key {
            "IN" => log.in_interface = opt(),
            "OUT" => log.out_interface = opt(),
            "MAC" => log.mac = opt(),
            "SRC" => log.src_ip = opt(),
            "DST" => log.dst_ip = opt(),
            "PROTO" => log.protocol = opt(),
            // A UDP header repeats `LEN=` after `PROTO=`: the first one is the packet's.
            "LEN" if log.length.is_none() => log.length = Some(number("LEN", value, value_at)?),
            "TTL" => log.ttl = Some(number("TTL", value, value_at)?),
            "HOPLIMIT" => log.ttl = Some(number("HOPLIMIT", value, value_at)?),
            "SPT" => log.src_port = Some(number("SPT", value, value_at)?),
            "DPT" => log.dst_port = Some(number("DPT", value, value_at)?),
            _ => {}
        }
    }
    if log.src_ip.is_none() || log.dst_ip.is_none() {
        return Ok(None);
    }
    if !flags.is_empty() {
        log.tcp_flags = Some(flags.join(" "));
    }
    Ok(Some(log))
}

/// Index of the `IN=` that starts the packet fields: the first one whose value is followed by
/// ` OUT=`, else the first one.
fn find_anchor(b: &[u8]) -> Option<usize> {
    let mut first = None;
    for at in memchr::memmem::find_iter(b, b"IN=") {
        first.get_or_insert(at);
        let value_end = memchr::memchr(b' ', &b[at..]).map_or(b.len(), |e| at + e);
        if b[value_end..].starts_with(b" OUT=") {
            return Some(at);
        }
    }
    first
}

fn number<T: std::str::FromStr>(
    field: &'static str,
    value: &str,
    at: usize,
) -> Result<T, NetfilterError> {
    let bad = |reason| NetfilterError::Value {
        field,
        at,
        value: value.chars().take(32).collect(),
        reason,
    };
    if value.is_empty() || !value.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad("expected a number"));
    }
    value.parse().map_err(|_| bad("number out of range"))
}

#[cfg(test)]
mod tests;
