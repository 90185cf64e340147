//! Time and text formats of the node-side demo logs: Go's RFC3339Nano, nginx, klog, rsyslog,
//! and a few random-but-deterministic helpers shared by [`crate::pod_logs`] and
//! [`crate::node_logs`].

use chrono::{DateTime, Datelike, Timelike};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub(crate) const SEC: i64 = 1_000_000_000;
pub(crate) const MS: i64 = 1_000_000;
pub(crate) const US: i64 = 1_000;

fn civil(ns: i64, pattern: &str) -> String {
    DateTime::from_timestamp_nanos(ns)
        .format(pattern)
        .to_string()
}

/// Go's `time.RFC3339Nano` in UTC, as containerd and docker write it: the fraction has its
/// trailing zeros trimmed, and is left out when zero (`2026-11-20T09:00:01.1234Z`).
pub(crate) fn rfc3339_nano(ns: i64) -> String {
    // Field by field: chrono's `format` parses its pattern on every call, and this runs for
    // every container line.
    let t = DateTime::from_timestamp_nanos(ns);
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let frac = ns.rem_euclid(SEC);
    if frac != 0 {
        let digits = format!("{frac:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// RFC 3339 in UTC to the second: `2026-11-20T09:00:01Z`.
pub(crate) fn rfc3339_secs(ns: i64) -> String {
    civil(ns, "%Y-%m-%dT%H:%M:%SZ")
}

/// nginx's `$time_local` in UTC: `20/Nov/2026:09:00:01 +0000`.
pub(crate) fn time_local(ns: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = DateTime::from_timestamp_nanos(ns);
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        t.day(),
        MONTHS[t.month0() as usize],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// nginx's error log time: `2026/11/20 09:00:01`.
pub(crate) fn nginx_error_time(ns: i64) -> String {
    civil(ns, "%Y/%m/%d %H:%M:%S")
}

/// A klog header (kubelet, ingress-nginx's controller): `I1120 09:00:01.123456    1234 file.go:42] `.
pub(crate) fn klog(level: char, ns: i64, pid: u32, source: &str) -> String {
    format!(
        "{level}{} {:>7} {source}] ",
        civil(ns, "%m%d %H:%M:%S%.6f"),
        pid
    )
}

/// rsyslog's high-precision file timestamp (Ubuntu 24.04): `2026-11-20T09:00:01.123456+00:00`.
pub(crate) fn rsyslog_time(ns: i64) -> String {
    civil(ns, "%Y-%m-%dT%H:%M:%S%.6f+00:00")
}

/// XMRig's console time: `[2026-11-20 09:00:01.123]`.
pub(crate) fn xmrig_time(ns: i64) -> String {
    civil(ns, "[%Y-%m-%d %H:%M:%S%.3f]")
}

/// Seconds with up to nine decimals and no trailing zeros, as Go prints a duration's seconds
/// with `strconv.FormatFloat(d.Seconds(), 'f', -1, 64)` (`0.000211`).
pub(crate) fn go_seconds(ns: i64) -> String {
    let s = format!("{}.{:09}", ns / SEC, ns % SEC);
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Adds up to `max_ns` of jitter to times that are in order, keeping them in order (equal
/// times become increasing): generated offsets are round numbers, real clocks are not. The
/// jitter depends only on `key` and the position, so output stays deterministic.
pub(crate) fn roughen<'a>(times: impl Iterator<Item = &'a mut i64>, max_ns: i64, key: &str) {
    let seed = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut last = i64::MIN;
    for t in times {
        *t = (*t + rng.random_range(0..max_ns.max(1))).max(last.saturating_add(1));
        last = *t;
    }
}

/// A JSON string literal.
pub(crate) fn js(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// `n` random lower-case hex digits.
pub(crate) fn hex(rng: &mut SmallRng, n: usize) -> String {
    const H: &[u8] = b"0123456789abcdef";
    (0..n).map(|_| H[rng.random_range(0..16)] as char).collect()
}

/// `n` random characters of `alphabet` (ASCII).
pub(crate) fn chars(rng: &mut SmallRng, alphabet: &[u8], n: usize) -> String {
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// One of `items`.
pub(crate) fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// One of `items` by weight.
pub(crate) fn weighted<'a, T>(rng: &mut SmallRng, items: &'a [(u32, T)]) -> &'a T {
    let total: u32 = items.iter().map(|(w, _)| w).sum();
    let mut x = rng.random_range(0..total.max(1));
    for (w, item) in items {
        if x < *w {
            return item;
        }
        x -= w;
    }
    &items[items.len() - 1].1
}

/// A gap drawn from an exponential distribution with the given mean (Poisson arrivals).
pub(crate) fn exp_gap(rng: &mut SmallRng, mean_ns: i64) -> i64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    ((-u.ln()) * mean_ns as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(frac_ns: i64) -> i64 {
        Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 1)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap()
            + frac_ns
    }

    #[test]
    fn rfc3339_nano_trims_like_go() {
        assert_eq!(rfc3339_nano(at(0)), "2026-11-20T09:00:01Z");
        assert_eq!(
            rfc3339_nano(at(123_456_789)),
            "2026-11-20T09:00:01.123456789Z"
        );
        assert_eq!(rfc3339_nano(at(120_000_000)), "2026-11-20T09:00:01.12Z");
    }

    #[test]
    fn civil_formats() {
        assert_eq!(time_local(at(5)), "20/Nov/2026:09:00:01 +0000");
        assert_eq!(nginx_error_time(at(5)), "2026/11/20 09:00:01");
        assert_eq!(
            klog('I', at(123_456_000), 1234, "kubelet.go:2459"),
            "I1120 09:00:01.123456    1234 kubelet.go:2459] "
        );
        assert_eq!(
            rsyslog_time(at(123_456_789)),
            "2026-11-20T09:00:01.123456+00:00"
        );
        assert_eq!(xmrig_time(at(123_456_789)), "[2026-11-20 09:00:01.123]");
    }

    #[test]
    fn go_seconds_is_shortest() {
        assert_eq!(go_seconds(211_000), "0.000211");
        assert_eq!(go_seconds(1_434_627), "0.001434627");
        assert_eq!(go_seconds(2 * SEC), "2");
    }
}
