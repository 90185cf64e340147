//! Joining the lines of one record (a stack trace, a pretty-printed JSON document) by a start
//! pattern, after the runtime's partial lines were merged.
//!
//! A line matching the `start` regex begins a new record; any other line is appended to the
//! record in progress with a `\n` (a line with no record in progress starts one). A joiner
//! made with [`MultilineJoiner::continuation`] reads its pattern the other way round: lines
//! matching it continue the record in progress, any other line starts one (stack traces are
//! easier to recognise by their continuation lines). A record that reaches `max_lines` lines
//! is emitted and the next line starts a new one (nothing is dropped). A record is
//! emitted when the next record starts, when the caller says its timeout elapsed
//! ([`MultilineJoiner::flush_expired`], with the time the caller passes), or on
//! [`MultilineJoiner::flush`]. One record in progress per stream: stdout and stderr interleave in
//! one file. Pure: no clock, no timer.

use kestrel_event::{ContainerLog, LogStream};
use regex::Regex;

/// The `start` pattern does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid multiline start pattern `{pattern}`: {reason}")]
pub struct MultilineError {
    pub pattern: String,
    pub reason: String,
}

/// Counters since creation or the last [`MultilineJoiner::take_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MultilineStats {
    /// Records emitted.
    pub records: u64,
    /// Lines appended to a record they did not start.
    pub continuation_lines: u64,
    /// Records cut at `max_bytes`.
    pub truncated_records: u64,
    /// Bytes dropped from cut records.
    pub dropped_bytes: u64,
    /// Records emitted because they reached `max_lines` (the next line began a new record).
    pub line_limited_records: u64,
}

#[derive(Debug, Clone)]
struct Pending {
    record: ContainerLog,
    /// When the last line was added (the caller's clock).
    updated_ns: i64,
    /// The record is full: further continuation lines are dropped.
    full: bool,
    /// Lines in the record.
    lines: usize,
}

/// Joins lines into records; see the module documentation. Clone a configured joiner to get
/// one per file without compiling the pattern again.
#[derive(Debug, Clone)]
pub struct MultilineJoiner {
    /// The start pattern, or the continuation pattern when `continuation` is set.
    start: Regex,
    continuation: bool,
    max_bytes: usize,
    max_lines: usize,
    timeout_ns: i64,
    slots: [Option<Pending>; 2],
    stats: MultilineStats,
}

fn slot_of(s: LogStream) -> usize {
    match s {
        LogStream::Stdout => 0,
        LogStream::Stderr => 1,
    }
}

/// Largest `i <= max` that is a character boundary of `s`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl MultilineJoiner {
    /// A joiner whose records start at lines matching `start_pattern`, are cut at `max_bytes`
    /// (at least 1) and are emitted once `timeout_ns` passed without a new line.
    pub fn new(
        start_pattern: &str,
        max_bytes: usize,
        timeout_ns: i64,
    ) -> Result<Self, MultilineError> {
        let start = Regex::new(start_pattern).map_err(|e| MultilineError {
            pattern: start_pattern.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(MultilineJoiner {
            start,
            continuation: false,
            max_bytes: max_bytes.max(1),
            max_lines: usize::MAX,
            timeout_ns,
            slots: [None, None],
            stats: MultilineStats::default(),
        })
    }

    /// A joiner whose pattern matches continuation lines: a line matching
    /// `continuation_pattern` is appended to the record in progress, any other line starts a
    /// record. Otherwise as [`MultilineJoiner::new`].
    pub fn continuation(
        continuation_pattern: &str,
        max_bytes: usize,
        timeout_ns: i64,
    ) -> Result<Self, MultilineError> {
        let mut joiner = MultilineJoiner::new(continuation_pattern, max_bytes, timeout_ns)?;
        joiner.continuation = true;
        Ok(joiner)
    }

    /// Emits a record once it holds `max_lines` lines (at least 1); the next line starts a new
    /// record whatever it is.
    pub fn with_max_lines(mut self, max_lines: usize) -> Self {
        self.max_lines = max_lines.max(1);
        self
    }

    /// Counters so far.
    pub fn stats(&self) -> MultilineStats {
        self.stats
    }

    /// Counters so far, resetting them to zero.
    pub fn take_stats(&mut self) -> MultilineStats {
        std::mem::take(&mut self.stats)
    }

    /// True when a record is in progress.
    pub fn has_pending(&self) -> bool {
        self.slots.iter().any(Option::is_some)
    }

    /// When the earliest record in progress times out, in the caller's clock.
    pub fn next_deadline(&self) -> Option<i64> {
        self.slots
            .iter()
            .flatten()
            .map(|p| p.updated_ns.saturating_add(self.timeout_ns))
            .min()
    }

    /// Feeds one line at `now_ns` (the caller's clock); returns the record it completed, if any.
    pub fn push(&mut self, line: ContainerLog, now_ns: i64) -> Option<ContainerLog> {
        let idx = slot_of(line.stream);
        let starts = self.start.is_match(&line.message) != self.continuation;
        if !starts {
            let at_limit = self.slots[idx]
                .as_ref()
                .is_some_and(|p| p.lines >= self.max_lines);
            if at_limit {
                self.stats.line_limited_records += 1;
            } else if let Some(p) = &mut self.slots[idx] {
                p.updated_ns = now_ns;
                p.lines += 1;
                self.stats.continuation_lines += 1;
                p.record.truncated |= line.truncated;
                let len = p.record.message.len();
                if !p.full && len + 1 + line.message.len() <= self.max_bytes {
                    p.record.message.push('\n');
                    p.record.message.push_str(&line.message);
                    return None;
                }
                if p.full {
                    self.stats.dropped_bytes += line.message.len() as u64 + 1;
                    return None;
                }
                // This line overflows the record: keep what fits, drop the rest of the record.
                let room = self.max_bytes.saturating_sub(len + 1);
                let keep = if room == 0 {
                    self.stats.dropped_bytes += 1;
                    0
                } else {
                    floor_char_boundary(&line.message, room)
                };
                if room > 0 {
                    p.record.message.push('\n');
                    p.record.message.push_str(&line.message[..keep]);
                }
                self.stats.dropped_bytes += (line.message.len() - keep) as u64;
                self.stats.truncated_records += 1;
                p.full = true;
                p.record.truncated = true;
                return None;
            }
        }
        let done = self.slots[idx].take().map(|p| self.finish(p));
        let mut record = line;
        let mut full = false;
        if record.message.len() > self.max_bytes {
            let keep = floor_char_boundary(&record.message, self.max_bytes);
            self.stats.truncated_records += 1;
            self.stats.dropped_bytes += (record.message.len() - keep) as u64;
            record.message.truncate(keep);
            record.truncated = true;
            full = true;
        }
        self.slots[idx] = Some(Pending {
            record,
            updated_ns: now_ns,
            full,
            lines: 1,
        });
        done
    }

    /// Emits one record whose last line is `timeout_ns` or more older than `now_ns`; call until
    /// it returns `None`.
    pub fn flush_expired(&mut self, now_ns: i64) -> Option<ContainerLog> {
        let timeout = self.timeout_ns;
        let idx = self.slots.iter().position(|p| {
            p.as_ref()
                .is_some_and(|p| now_ns.saturating_sub(p.updated_ns) >= timeout)
        })?;
        let p = self.slots[idx].take()?;
        Some(self.finish(p))
    }

    /// Emits one record in progress whatever its age (end of input); call until it returns
    /// `None`.
    pub fn flush(&mut self) -> Option<ContainerLog> {
        let p = self.slots.iter_mut().find_map(Option::take)?;
        Some(self.finish(p))
    }

    fn finish(&mut self, p: Pending) -> ContainerLog {
        self.stats.records += 1;
        p.record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(time: i64, stream: LogStream, message: &str) -> ContainerLog {
        ContainerLog {
            time,
            stream,
            message: message.into(),
            truncated: false,
        }
    }

    const OUT: LogStream = LogStream::Stdout;
    const ERR: LogStream = LogStream::Stderr;

    fn joiner(max: usize) -> MultilineJoiner {
        MultilineJoiner::new(r"^\d{4}-\d{2}-\d{2} ", max, 5_000).unwrap()
    }

    #[test]
    fn joins_continuation_lines_per_stream() {
        let mut j = joiner(1000);
        assert_eq!(j.push(log(1, ERR, "2026-11-20 ERROR boom"), 0), None);
        assert_eq!(j.push(log(2, OUT, "2026-11-20 INFO ok"), 0), None);
        assert_eq!(j.push(log(3, ERR, "\tat a.b(C.java:1)"), 1), None);
        assert_eq!(j.push(log(4, ERR, "\tat d.e(F.java:2)"), 2), None);
        let done = j.push(log(5, ERR, "2026-11-20 INFO next"), 3).unwrap();
        assert_eq!(
            done,
            log(
                1,
                ERR,
                "2026-11-20 ERROR boom\n\tat a.b(C.java:1)\n\tat d.e(F.java:2)"
            )
        );
        assert_eq!(j.flush(), Some(log(2, OUT, "2026-11-20 INFO ok")));
        assert_eq!(j.flush(), Some(log(5, ERR, "2026-11-20 INFO next")));
        assert_eq!(j.flush(), None);
        assert_eq!(
            j.stats(),
            MultilineStats {
                records: 3,
                continuation_lines: 2,
                ..Default::default()
            }
        );
    }

    #[test]
    fn a_continuation_without_a_record_starts_one() {
        let mut j = joiner(1000);
        assert_eq!(j.push(log(1, OUT, "  orphan"), 0), None);
        assert_eq!(j.push(log(2, OUT, "  more"), 0), None);
        assert_eq!(j.flush(), Some(log(1, OUT, "  orphan\n  more")));
    }

    #[test]
    fn timeout_flush_uses_the_callers_clock() {
        let mut j = joiner(1000);
        assert_eq!(j.next_deadline(), None);
        j.push(log(1, OUT, "2026-11-20 a"), 100);
        j.push(log(2, ERR, "2026-11-20 b"), 200);
        j.push(log(3, OUT, " c"), 300);
        assert_eq!(j.next_deadline(), Some(5_200));
        assert_eq!(j.flush_expired(5_199), None);
        assert_eq!(j.flush_expired(5_200), Some(log(2, ERR, "2026-11-20 b")));
        assert_eq!(j.flush_expired(5_200), None);
        assert_eq!(
            j.flush_expired(5_300),
            Some(log(1, OUT, "2026-11-20 a\n c"))
        );
        assert!(!j.has_pending());
    }

    #[test]
    fn records_are_cut_at_max_bytes() {
        let mut j = joiner(16);
        j.push(log(1, OUT, "2026-11-20 abc"), 0); // 14 bytes
        j.push(log(2, OUT, "défg"), 0); // room for "\n" + 1 byte: `d`
        j.push(log(3, OUT, "dropped"), 0);
        let rec = j.flush().unwrap();
        assert_eq!(rec.message, "2026-11-20 abc\nd");
        assert!(rec.truncated);
        let s = j.stats();
        assert_eq!((s.truncated_records, s.dropped_bytes), (1, 4 + 8));
        // A single long start line.
        j.push(log(4, OUT, "2026-11-20 0123456789"), 0);
        let rec = j.flush().unwrap();
        assert_eq!(
            (rec.message.as_str(), rec.truncated),
            ("2026-11-20 01234", true)
        );
    }

    #[test]
    fn continuation_patterns_and_the_line_limit() {
        let mut j = MultilineJoiner::continuation(r"^\s", 1000, 5)
            .unwrap()
            .with_max_lines(3);
        assert_eq!(j.push(log(1, OUT, "Exception in main"), 0), None);
        assert_eq!(j.push(log(2, OUT, "\tat a"), 0), None);
        assert_eq!(j.push(log(3, OUT, "\tat b"), 0), None);
        // The record holds three lines: the fourth starts a new one, nothing is dropped.
        let first = j.push(log(4, OUT, "\tat c"), 0).unwrap();
        assert_eq!(first.message, "Exception in main\n\tat a\n\tat b");
        let second = j.push(log(5, OUT, "next"), 0).unwrap();
        assert_eq!(second.message, "\tat c");
        assert_eq!(j.flush().unwrap().message, "next");
        let s = j.stats();
        assert_eq!((s.records, s.line_limited_records), (3, 1));
    }

    #[test]
    fn truncation_by_the_runtime_is_kept() {
        let mut j = joiner(1000);
        j.push(log(1, OUT, "2026-11-20 a"), 0);
        let mut cut = log(2, OUT, " b");
        cut.truncated = true;
        j.push(cut, 0);
        assert!(j.flush().unwrap().truncated);
    }

    proptest::proptest! {
        /// Every input byte ends up in a record or in `dropped_bytes`; records respect the bound.
        #[test]
        fn bytes_are_accounted_for(
            lines in proptest::collection::vec(("[ a-zé]{0,12}", proptest::bool::ANY), 0..30),
            max in 1usize..40,
        ) {
            let mut j = MultilineJoiner::new(r"^\S", max, 3).unwrap();
            let mut out = Vec::new();
            let mut input = 0u64;
            for (i, (line, stderr)) in lines.iter().enumerate() {
                input += line.len() as u64;
                let stream = if *stderr { ERR } else { OUT };
                out.extend(j.push(log(i as i64, stream, line), i as i64));
                out.extend(j.flush_expired(i as i64));
            }
            while let Some(r) = j.flush() {
                out.push(r);
            }
            let s = j.stats();
            proptest::prop_assert_eq!(s.records, out.len() as u64);
            proptest::prop_assert!(out.iter().all(|r| r.message.len() <= max));
            let kept: u64 = out.iter().map(|r| r.message.len() as u64).sum();
            proptest::prop_assert_eq!(kept + s.dropped_bytes, input + s.continuation_lines);
        }
    }

    #[test]
    fn bad_patterns_are_reported() {
        let e = MultilineJoiner::new("(unclosed", 10, 1).unwrap_err();
        assert_eq!(e.pattern, "(unclosed");
        assert!(
            e.to_string()
                .starts_with("invalid multiline start pattern `(unclosed`"),
            "{e}"
        );
    }
}
