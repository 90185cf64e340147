//! Joining a container runtime's partial lines (CRI `P` parts, docker json-file objects without a
//! trailing `\n`) into whole lines, bounded by `max_line_bytes`.
//!
//! One [`PartialMerger`] per file. It is a pure state machine with one slot per stream: the
//! runtime writes stdout and stderr into the same file, and a long stdout line's parts may be
//! interleaved with stderr lines.
//!
//! Design: [`PartialMerger::push`] returns a [`MergedLine`] that *borrows* the message — from the
//! input line when it was a single part (the common case: no copy at all, and no allocation when
//! it is valid UTF-8), or from the merger's own buffer when parts were joined. The caller turns it
//! into a [`ContainerLog`] (one `String`) or writes the `&str` straight into its output (a JSON
//! batch, a rule's input) and skips the `String` altogether. A callback API would give the same
//! zero-copy property but makes the caller's control flow (batching, early return on a full queue)
//! awkward; a borrowed return value keeps it a plain loop.

use std::borrow::Cow;

use kestrel_event::{ContainerLog, LogStream};

use crate::cri::CriLine;

/// One whole line, borrowed from the input or from the merger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedLine<'a> {
    /// Time of the first part, UTC nanoseconds.
    pub time: i64,
    pub stream: LogStream,
    /// The line without its newline; invalid UTF-8 replaced by U+FFFD (then `invalid_utf8`).
    pub message: Cow<'a, str>,
    /// The line was longer than `max_line_bytes` and was cut (at a character boundary).
    pub truncated: bool,
    /// The line held bytes that are not UTF-8; they were replaced by U+FFFD.
    pub invalid_utf8: bool,
    /// How many runtime parts made the line (1 for an unsplit line).
    pub parts: u32,
}

impl MergedLine<'_> {
    /// The owned record.
    pub fn into_container_log(self) -> ContainerLog {
        ContainerLog {
            time: self.time,
            stream: self.stream,
            message: self.message.into_owned(),
            truncated: self.truncated,
        }
    }
}

/// Counters since the merger was created or since the last [`PartialMerger::take_stats`]; the
/// agent adds them to its metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Lines emitted.
    pub lines: u64,
    /// Lines made of more than one part.
    pub joined_lines: u64,
    /// Lines cut at `max_line_bytes`.
    pub truncated_lines: u64,
    /// Bytes dropped from cut lines.
    pub dropped_bytes: u64,
    /// Lines whose invalid UTF-8 was replaced.
    pub invalid_utf8_lines: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum SlotState {
    /// No line in progress.
    #[default]
    Idle,
    /// Parts of a line are in `buf`.
    Joining,
    /// The line was cut and emitted; its remaining parts are dropped until the last one.
    Discarding,
}

#[derive(Debug, Default)]
struct Slot {
    state: SlotState,
    time: i64,
    parts: u32,
    buf: Vec<u8>,
}

/// Joins partial lines; see the module documentation.
#[derive(Debug)]
pub struct PartialMerger {
    max_line_bytes: usize,
    slots: [Slot; 2],
    stats: MergeStats,
}

/// Index of the end of the longest prefix of `b` of at most `max` bytes that does not split a
/// UTF-8 character (`b` is longer than `max`). Invalid sequences are cut at `max`.
fn char_cut(b: &[u8], max: usize) -> usize {
    let mut i = max;
    // Step back over at most 3 continuation bytes to the character's first byte.
    while i > 0 && max - i < 3 && b[i] & 0xC0 == 0x80 {
        i -= 1;
    }
    if i < max && b[i] >= 0xC0 {
        i
    } else {
        max
    }
}

fn stream_index(s: LogStream) -> usize {
    match s {
        LogStream::Stdout => 0,
        LogStream::Stderr => 1,
    }
}

impl PartialMerger {
    /// A merger whose lines are cut at `max_line_bytes` (at least 1).
    pub fn new(max_line_bytes: usize) -> Self {
        PartialMerger {
            max_line_bytes: max_line_bytes.max(1),
            slots: Default::default(),
            stats: MergeStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> MergeStats {
        self.stats
    }

    /// Counters so far, resetting them to zero.
    pub fn take_stats(&mut self) -> MergeStats {
        std::mem::take(&mut self.stats)
    }

    /// True when a stream has a line in progress (parts seen, last part not yet): the bytes of
    /// its parts are not yet in any emitted line, so a reader must not checkpoint past them.
    pub fn has_pending(&self) -> bool {
        self.slots.iter().any(|s| s.state != SlotState::Idle)
    }

    /// Feeds one parsed CRI line; see [`PartialMerger::push`].
    #[inline]
    pub fn push_cri<'a>(&'a mut self, line: CriLine<'a>) -> Option<MergedLine<'a>> {
        self.push(line.time, line.stream, line.partial, line.message)
    }

    /// Feeds one part: `partial` when more parts of the same line follow. Returns the whole line
    /// when this part completes it, or when the line reached `max_line_bytes` (it is then cut and
    /// its remaining parts are dropped and counted).
    #[inline]
    pub fn push<'a>(
        &'a mut self,
        time: i64,
        stream: LogStream,
        partial: bool,
        message: &'a [u8],
    ) -> Option<MergedLine<'a>> {
        let max = self.max_line_bytes;
        let slot = &mut self.slots[stream_index(stream)];
        match slot.state {
            SlotState::Idle => {
                if message.len() > max {
                    let keep = char_cut(message, max);
                    self.stats.dropped_bytes += (message.len() - keep) as u64;
                    self.stats.truncated_lines += 1;
                    if partial {
                        slot.state = SlotState::Discarding;
                    }
                    return Some(emit(
                        &mut self.stats,
                        time,
                        stream,
                        &message[..keep],
                        true,
                        1,
                    ));
                }
                if !partial {
                    return Some(emit(&mut self.stats, time, stream, message, false, 1));
                }
                slot.state = SlotState::Joining;
                slot.time = time;
                slot.parts = 1;
                slot.buf.clear();
                slot.buf.extend_from_slice(message);
                None
            }
            SlotState::Joining => {
                slot.parts = slot.parts.saturating_add(1);
                let total = slot.buf.len() + message.len();
                if total > max {
                    // Take one byte past the limit to see whether the cut splits a character.
                    let take = max + 1 - slot.buf.len();
                    slot.buf.extend_from_slice(&message[..take]);
                    let keep = char_cut(&slot.buf, max);
                    self.stats.dropped_bytes += (total - keep) as u64;
                    self.stats.truncated_lines += 1;
                    slot.buf.truncate(keep);
                    slot.state = if partial {
                        SlotState::Discarding
                    } else {
                        SlotState::Idle
                    };
                    return Some(emit(
                        &mut self.stats,
                        slot.time,
                        stream,
                        &slot.buf,
                        true,
                        slot.parts,
                    ));
                }
                slot.buf.extend_from_slice(message);
                if partial {
                    return None;
                }
                slot.state = SlotState::Idle;
                Some(emit(
                    &mut self.stats,
                    slot.time,
                    stream,
                    &slot.buf,
                    false,
                    slot.parts,
                ))
            }
            SlotState::Discarding => {
                self.stats.dropped_bytes += message.len() as u64;
                if !partial {
                    slot.state = SlotState::Idle;
                }
                None
            }
        }
    }

    /// Emits a line in progress as it is (its last part never came: the file was rotated or
    /// deleted, or the caller's wait for it timed out). Call until it returns `None`; a line that
    /// was already cut and emitted is just forgotten.
    pub fn flush(&mut self) -> Option<MergedLine<'_>> {
        let idx = self.slots.iter().position(|s| s.state != SlotState::Idle)?;
        let slot = &mut self.slots[idx];
        let state = std::mem::take(&mut slot.state);
        if state == SlotState::Discarding {
            return self.flush();
        }
        let stream = if idx == 0 {
            LogStream::Stdout
        } else {
            LogStream::Stderr
        };
        let slot = &self.slots[idx];
        Some(emit(
            &mut self.stats,
            slot.time,
            stream,
            &slot.buf,
            false,
            slot.parts,
        ))
    }
}

#[inline]
fn emit<'a>(
    stats: &mut MergeStats,
    time: i64,
    stream: LogStream,
    bytes: &'a [u8],
    truncated: bool,
    parts: u32,
) -> MergedLine<'a> {
    // `from_utf8` validates ASCII a word at a time; `from_utf8_lossy` walks the bytes one by
    // one, so it is used only for lines that need it.
    let (message, invalid_utf8) = match std::str::from_utf8(bytes) {
        Ok(s) => (Cow::Borrowed(s), false),
        Err(_) => (String::from_utf8_lossy(bytes), true),
    };
    stats.lines += 1;
    stats.joined_lines += u64::from(parts > 1);
    stats.invalid_utf8_lines += u64::from(invalid_utf8);
    MergedLine {
        time,
        stream,
        message,
        truncated,
        invalid_utf8,
        parts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OUT: LogStream = LogStream::Stdout;
    const ERR: LogStream = LogStream::Stderr;

    fn owned(l: Option<MergedLine<'_>>) -> Option<(i64, LogStream, String, bool, u32)> {
        l.map(|l| {
            (
                l.time,
                l.stream,
                l.message.into_owned(),
                l.truncated,
                l.parts,
            )
        })
    }

    #[test]
    fn full_lines_pass_through_borrowed() {
        let mut m = PartialMerger::new(100);
        let msg = b"hello";
        let l = m.push(1, OUT, false, msg).unwrap();
        assert!(matches!(l.message, Cow::Borrowed("hello")));
        assert_eq!(l.parts, 1);
        assert!(!m.has_pending());
    }

    #[test]
    fn parts_join_with_the_first_parts_time_per_stream() {
        let mut m = PartialMerger::new(100);
        assert_eq!(owned(m.push(1, OUT, true, b"ab")), None);
        assert!(m.has_pending());
        // A stderr line between stdout parts is emitted at once.
        assert_eq!(
            owned(m.push(2, ERR, false, b"err")),
            Some((2, ERR, "err".into(), false, 1))
        );
        assert_eq!(owned(m.push(3, OUT, true, b"cd")), None);
        assert_eq!(
            owned(m.push(4, OUT, false, b"ef")),
            Some((1, OUT, "abcdef".into(), false, 3))
        );
        assert!(!m.has_pending());
        assert_eq!(
            m.stats(),
            MergeStats {
                lines: 2,
                joined_lines: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn a_character_split_across_parts_is_rejoined() {
        let mut m = PartialMerger::new(100);
        let e = "é".as_bytes();
        assert!(m.push(1, OUT, true, &e[..1]).is_none());
        let l = m.push(2, OUT, false, &e[1..]).unwrap();
        assert_eq!(l.message, "é");
        assert!(!l.invalid_utf8);
    }

    #[test]
    fn long_single_lines_are_cut_at_a_character_boundary() {
        let mut m = PartialMerger::new(4);
        let l = m.push(1, OUT, false, "abcé".as_bytes()).unwrap();
        assert_eq!((l.message.as_ref(), l.truncated), ("abc", true));
        let l = m.push(1, OUT, false, b"abcdef").unwrap();
        assert_eq!((l.message.as_ref(), l.truncated), ("abcd", true));
        let l = m.push(1, OUT, false, b"abcd").unwrap();
        assert_eq!((l.message.as_ref(), l.truncated), ("abcd", false));
        assert_eq!(
            m.take_stats(),
            MergeStats {
                lines: 3,
                truncated_lines: 2,
                dropped_bytes: 2 + 2,
                ..Default::default()
            }
        );
        assert_eq!(m.stats(), MergeStats::default());
    }

    #[test]
    fn long_joined_lines_are_emitted_when_full_and_the_rest_dropped() {
        let mut m = PartialMerger::new(5);
        assert!(m.push(1, OUT, true, b"abc").is_none());
        assert_eq!(
            owned(m.push(2, OUT, true, b"defg")),
            Some((1, OUT, "abcde".into(), true, 2))
        );
        assert!(m.push(3, OUT, true, b"hij").is_none());
        assert!(m.push(4, OUT, false, b"kl").is_none());
        // The next line is whole again.
        assert_eq!(
            owned(m.push(5, OUT, false, b"next")),
            Some((5, OUT, "next".into(), false, 1))
        );
        let s = m.stats();
        assert_eq!(
            (s.truncated_lines, s.dropped_bytes, s.lines),
            (1, 2 + 3 + 2, 2)
        );
        // A first part already over the limit.
        assert_eq!(
            owned(m.push(6, ERR, true, b"0123456789")),
            Some((6, ERR, "01234".into(), true, 1))
        );
        assert!(m.push(7, ERR, false, b"x").is_none());
        // A last part that overflows ends the line.
        assert!(m.push(8, ERR, true, b"abc").is_none());
        assert_eq!(
            owned(m.push(9, ERR, false, b"def")),
            Some((8, ERR, "abcde".into(), true, 2))
        );
        assert!(!m.has_pending());
    }

    #[test]
    fn invalid_utf8_is_replaced_and_counted() {
        let mut m = PartialMerger::new(100);
        let l = m.push(1, OUT, false, b"a\xffb").unwrap();
        assert_eq!(l.message, "a\u{fffd}b");
        assert!(l.invalid_utf8);
        assert_eq!(m.stats().invalid_utf8_lines, 1);
    }

    #[test]
    fn flush_emits_lines_in_progress() {
        let mut m = PartialMerger::new(4);
        assert!(m.flush().is_none());
        assert!(m.push(1, OUT, true, b"ab").is_none());
        assert!(m.push(2, ERR, true, b"0123456").is_some()); // cut, then discarding
        assert_eq!(owned(m.flush()), Some((1, OUT, "ab".into(), false, 1)));
        assert!(m.flush().is_none());
        assert!(!m.has_pending());
        assert_eq!(
            owned(m.push(3, ERR, false, b"new")),
            Some((3, ERR, "new".into(), false, 1))
        );
    }

    proptest! {
        /// Joined output equals the concatenation of the parts, cut at the limit.
        #[test]
        fn output_is_the_concatenation_of_parts(
            lines in proptest::collection::vec(
                proptest::collection::vec("[a-z0-9é]{0,6}", 1..5), 1..8),
            max in 1usize..40,
        ) {
            let mut m = PartialMerger::new(max);
            let mut got = Vec::new();
            let mut t = 0;
            for parts in &lines {
                for (i, part) in parts.iter().enumerate() {
                    t += 1;
                    let last = i + 1 == parts.len();
                    if let Some(l) = m.push(t, OUT, !last, part.as_bytes()) {
                        got.push((l.message.into_owned(), l.truncated));
                    }
                }
            }
            prop_assert!(!m.has_pending());
            prop_assert_eq!(got.len(), lines.len());
            let mut dropped = 0;
            for ((msg, truncated), parts) in got.iter().zip(&lines) {
                let whole = parts.concat();
                prop_assert_eq!(*truncated, whole.len() > max);
                prop_assert!(whole.starts_with(msg.as_str()));
                prop_assert!(msg.len() <= max);
                if *truncated {
                    prop_assert!(msg.len() + 1 >= max);
                    dropped += whole.len() - msg.len();
                } else {
                    prop_assert_eq!(msg, &whole);
                }
            }
            prop_assert_eq!(m.stats().dropped_bytes, dropped as u64);
        }
    }
}
