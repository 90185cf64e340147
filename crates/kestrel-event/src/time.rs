//! Event time helpers: every table stores `time` as UTC nanoseconds since the Unix epoch.

use chrono::{DateTime, Utc};

/// Nanoseconds since the Unix epoch for `t`, saturating outside the representable range
/// (years 1677–2262).
pub fn to_nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// The current time in nanoseconds since the Unix epoch.
pub fn now_nanos() -> i64 {
    to_nanos(Utc::now())
}

/// RFC 3339 text of a nanosecond timestamp, in UTC (`Z`), with as many fractional digits as
/// it needs: how Kestrel shows every event time.
pub fn to_rfc3339(nanos: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(nanos)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The UTC date and hour (`YYYY-MM-DD`, `HH`) a nanosecond timestamp falls in; these name the
/// `date=`/`hour=` partitions.
pub fn partition_of(nanos: i64) -> (String, String) {
    let t = DateTime::<Utc>::from_timestamp_nanos(nanos);
    (t.format("%Y-%m-%d").to_string(), t.format("%H").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_keeps_only_needed_digits() {
        assert_eq!(
            to_rfc3339(1_795_165_201_000_000_000),
            "2026-11-20T09:00:01Z"
        );
        assert_eq!(
            to_rfc3339(1_795_165_201_123_456_000),
            "2026-11-20T09:00:01.123456Z"
        );
    }

    #[test]
    fn partition_of_names_utc_date_and_hour() {
        let t: DateTime<Utc> = "2026-11-20T09:00:01.123456Z".parse().unwrap();
        assert_eq!(
            partition_of(to_nanos(t)),
            ("2026-11-20".to_string(), "09".to_string())
        );
    }
}
