//! RFC 3339 timestamps to UTC nanoseconds: the hottest function of the agent (every CRI line
//! starts with one), so the common layout is parsed by hand.
//!
//! Written by hand because chrono's parser is general (it walks a format description and builds
//! a `DateTime` with its offset) and takes several times longer than the fixed-layout check
//! below. The fast path accepts exactly `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with 1 to 9
//! fraction digits; anything else (lower-case `t`/`z`, a space separator, a leap second, more than
//! nine fraction digits) goes to chrono, so the result never differs from chrono's.

use std::fmt;

/// Why a timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 timestamp `{text}`: {reason}")]
pub struct TimestampError {
    /// The text, cut to 64 bytes.
    pub text: String,
    /// What is wrong, from chrono's parser or the range check.
    pub reason: String,
}

impl TimestampError {
    fn new(text: &[u8], reason: impl fmt::Display) -> Self {
        let cut = &text[..text.len().min(64)];
        TimestampError {
            text: String::from_utf8_lossy(cut).into_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Parses an RFC 3339 timestamp (`2026-11-20T09:00:01.123456789Z`, `...+02:00`) to nanoseconds
/// since the Unix epoch, UTC. Times outside 1677-09-21..2262-04-11 (the range of `i64`
/// nanoseconds) are errors.
pub fn parse_rfc3339_nanos(text: &[u8]) -> Result<i64, TimestampError> {
    match fast(text) {
        Some(n) => Ok(n),
        None => slow(text),
    }
}

/// Two ASCII digits at `i..i+2`.
#[inline(always)]
fn two(b: &[u8], i: usize) -> Option<u32> {
    let hi = b[i].wrapping_sub(b'0');
    let lo = b[i + 1].wrapping_sub(b'0');
    if hi > 9 || lo > 9 {
        return None;
    }
    Some(u32::from(hi) * 10 + u32::from(lo))
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian); Howard Hinnant's
/// `days_from_civil`.
#[inline(always)]
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days in `month` of `year`.
#[inline(always)]
pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Nanoseconds since the epoch of a civil UTC time, `None` when out of `i64` range or invalid.
#[inline(always)]
pub(crate) fn civil_to_nanos(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> Option<i64> {
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    secs.checked_mul(1_000_000_000)
}

/// The fixed layout, or `None` for anything else (chrono then decides).
#[inline]
fn fast(b: &[u8]) -> Option<i64> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = i64::from(two(b, 0)? * 100 + two(b, 2)?);
    let month = two(b, 5)?;
    let day = two(b, 8)?;
    let hour = two(b, 11)?;
    let minute = two(b, 14)?;
    let second = two(b, 17)?;
    let mut i = 19;
    let mut frac: i64 = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 9 {
            frac = frac * 10 + i64::from(b[i] - b'0');
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || (i < b.len() && b[i].is_ascii_digit()) {
            return None;
        }
        frac *= 10_i64.pow(9 - digits as u32);
    }
    let offset_secs: i64 = match b.get(i)? {
        b'Z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let h = two(b, i + 1)?;
            let m = two(b, i + 4)?;
            if h > 23 || m > 59 {
                return None;
            }
            let s = i64::from(h * 3600 + m * 60);
            if *sign == b'+' {
                s
            } else {
                -s
            }
        }
        _ => return None,
    };
    let base = civil_to_nanos(year, month, day, hour, minute, second)?;
    base.checked_add(frac)?
        .checked_sub(offset_secs.checked_mul(1_000_000_000)?)
}

#[cold]
fn slow(text: &[u8]) -> Result<i64, TimestampError> {
    let s = std::str::from_utf8(text).map_err(|e| TimestampError::new(text, e))?;
    let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|e| TimestampError::new(text, e))?;
    t.timestamp_nanos_opt()
        .ok_or_else(|| TimestampError::new(text, "out of range (years 1677 to 2262)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone, Utc};
    use proptest::prelude::*;

    fn chrono_nanos(s: &str) -> Option<i64> {
        DateTime::parse_from_rfc3339(s).ok()?.timestamp_nanos_opt()
    }

    #[test]
    fn common_layouts() {
        let base = 1_795_165_201_000_000_000; // 2026-11-20T09:00:01Z
        let p = |s: &str| parse_rfc3339_nanos(s.as_bytes()).unwrap();
        assert_eq!(p("2026-11-20T09:00:01Z"), base);
        assert_eq!(p("2026-11-20T09:00:01.123456789Z"), base + 123_456_789);
        assert_eq!(p("2026-11-20T09:00:01.1Z"), base + 100_000_000);
        assert_eq!(p("2026-11-20T09:00:01.000211Z"), base + 211_000);
        assert_eq!(p("2026-11-20T10:00:01+01:00"), base);
        assert_eq!(p("2026-11-20T04:30:01.5-04:30"), base + 500_000_000);
        assert_eq!(p("1970-01-01T00:00:00Z"), 0);
        assert_eq!(p("1969-12-31T23:59:59.999999999Z"), -1);
    }

    #[test]
    fn unusual_forms_go_to_chrono() {
        let base = 1_795_165_201_000_000_000;
        let p = |s: &str| parse_rfc3339_nanos(s.as_bytes()).unwrap();
        assert_eq!(p("2026-11-20t09:00:01z"), base);
        assert_eq!(p("2026-11-20 09:00:01Z"), base);
        // More than nine fraction digits: chrono keeps nanoseconds.
        assert_eq!(p("2026-11-20T09:00:01.1234567891Z"), base + 123_456_789);
    }

    #[test]
    fn errors_name_the_text() {
        for bad in [
            "",
            "2026-11-20",
            "2026-13-20T09:00:01Z",
            "2026-02-30T09:00:01Z",
            "2026-11-20T24:00:01Z",
            "2026-11-20T09:00:01",
            "2026-11-20T09:00:01.Z",
            "2026-11-20T09:00:01Zjunk",
            "2026-11-20T09:00:01+0100",
            "9999-11-20T09:00:01Z",
            "2026-11-20T09:00:01\u{fffd}Z",
        ] {
            let e = parse_rfc3339_nanos(bad.as_bytes()).unwrap_err();
            assert!(e.to_string().contains(bad), "{bad}: {e}");
        }
        let e = parse_rfc3339_nanos(b"\xff\xfe2026").unwrap_err();
        assert!(e.reason.contains("utf-8"), "{e}");
    }

    proptest! {
        #[test]
        fn agrees_with_chrono_on_random_times(
            nanos in -2_000_000_000_000_000_000i64..7_000_000_000_000_000_000i64,
            offset_min in -(23 * 60 + 59)..(23 * 60 + 59i32),
            form in 0usize..5,
        ) {
            let tz = FixedOffset::east_opt(offset_min * 60).unwrap();
            let t = Utc.timestamp_nanos(nanos).with_timezone(&tz);
            let (text, expect) = match form {
                0 => (t.to_rfc3339_opts(SecondsFormat::Nanos, true), nanos),
                1 => (t.to_rfc3339_opts(SecondsFormat::AutoSi, true), nanos),
                2 => (t.to_rfc3339_opts(SecondsFormat::Micros, false), nanos - nanos.rem_euclid(1000)),
                3 => (t.to_rfc3339_opts(SecondsFormat::Secs, true), nanos - nanos.rem_euclid(1_000_000_000)),
                _ => (t.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Nanos, true), nanos),
            };
            prop_assert_eq!(parse_rfc3339_nanos(text.as_bytes()).ok(), Some(expect), "{}", text);
            prop_assert_eq!(chrono_nanos(&text), Some(expect));
        }

        #[test]
        fn agrees_with_chrono_on_mutated_text(
            nanos in any::<i64>(),
            pos in 0usize..36,
            byte in any::<u8>(),
        ) {
            let mut text = Utc.timestamp_nanos(nanos)
                .to_rfc3339_opts(SecondsFormat::Nanos, true)
                .into_bytes();
            if pos < text.len() {
                text[pos] = byte;
            }
            let ours = parse_rfc3339_nanos(&text).ok();
            let theirs = std::str::from_utf8(&text).ok().and_then(chrono_nanos);
            prop_assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(&text));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            let _ = parse_rfc3339_nanos(&bytes);
        }
    }
}
