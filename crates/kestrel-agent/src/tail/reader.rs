//! Cutting a file's bytes into chunks of whole lines, with long lines truncated.
//!
//! A chunk starting at offset `start` holds the complete lines found in
//! `[start, start + max_chunk_bytes)`: it ends at the last `\n` in that window, so given the
//! start offset and the bytes in the file, the chunk is always the same. Reads go straight into
//! the chunk's buffer (one `pread` of up to `max_chunk_bytes`); the incomplete line after the
//! last `\n` is read again with the next chunk instead of being carried over.
//!
//! A line longer than `max_line_bytes` keeps its first `max_line_bytes` bytes (backed off to a
//! UTF-8 character boundary), then the marker `…[truncated N bytes]` (N = bytes dropped) and
//! `\n`. Its byte range in the file is still covered by the chunk. A line longer than the whole
//! window is scanned over several turns and becomes a chunk of its own.

use std::fs::File;
use std::io;

use super::identity::{read_at_most, tail_hash, tail_hash_in};
use super::TruncatedLine;

/// Limits of one read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_line_bytes: usize,
    pub max_chunk_bytes: usize,
}

/// A line longer than the read window, being skipped over.
#[derive(Debug)]
pub(crate) struct LongLine {
    /// File offset where the line starts.
    start: u64,
    /// The part of the line that is kept.
    kept: Vec<u8>,
    /// File offset up to which the line has been scanned without finding its `\n`.
    scanned_to: u64,
}

impl LongLine {
    /// File offset up to which the line has been scanned.
    pub fn scanned_to(&self) -> u64 {
        self.scanned_to
    }
}

/// The lines of one chunk, before they get a file key and path.
#[derive(Debug)]
pub(crate) struct ChunkBody {
    pub start: u64,
    pub end: u64,
    pub data: Vec<u8>,
    pub lines: u32,
    pub truncated: Vec<TruncatedLine>,
    pub appended_newline: bool,
    /// Hash of the file bytes just before `end`.
    pub tail_hash: u64,
}

/// What one read turn did.
#[derive(Debug)]
pub(crate) enum ReadOutcome {
    /// A chunk of complete lines.
    Chunk(ChunkBody),
    /// Part of a long line was scanned; call again.
    Progress,
    /// No complete line is available (nothing new, or an incomplete last line held back).
    Idle,
}

/// Reads the next chunk of `file` from `start`, given the file's current `size`.
///
/// With `finished` (the file is renamed away or deleted, fully written and read), an incomplete
/// last line is emitted too, with a `\n` appended.
pub(crate) fn read_chunk(
    file: &File,
    start: u64,
    size: u64,
    limits: Limits,
    long_line: &mut Option<LongLine>,
    finished: bool,
) -> io::Result<ReadOutcome> {
    if let Some(long) = long_line {
        debug_assert_eq!(long.start, start);
        return continue_long_line(file, size, limits, long_line, finished);
    }
    let available = size.saturating_sub(start);
    if available == 0 {
        return Ok(ReadOutcome::Idle);
    }
    let want = available.min(limits.max_chunk_bytes as u64);
    let buf = read_at_most(file, start, want)?;
    match memchr::memrchr(b'\n', &buf) {
        Some(last) => {
            let end = start + last as u64 + 1;
            let tail = match tail_hash_in(&buf[..=last], start, end) {
                Some(h) => h,
                None => tail_hash(file, end)?.unwrap_or_default(),
            };
            let mut buf = buf;
            buf.truncate(last + 1);
            Ok(ReadOutcome::Chunk(cut_long_lines(
                buf,
                start,
                end,
                tail,
                limits.max_line_bytes,
            )))
        }
        None if buf.len() == limits.max_chunk_bytes => {
            // A line longer than the window: keep its head, skip to its end over later turns.
            let keep = utf8_floor(&buf, limits.max_line_bytes);
            let mut kept = buf;
            kept.truncate(keep);
            *long_line = Some(LongLine {
                start,
                kept,
                scanned_to: start + want,
            });
            Ok(ReadOutcome::Progress)
        }
        None if finished && buf.len() as u64 == available => {
            let end = start + buf.len() as u64;
            let tail = match tail_hash_in(&buf, start, end) {
                Some(h) => h,
                None => tail_hash(file, end)?.unwrap_or_default(),
            };
            let mut data = buf;
            data.push(b'\n');
            let mut body = cut_long_lines(data, start, end + 1, tail, limits.max_line_bytes);
            body.end = end;
            body.appended_newline = true;
            if let Some(t) = body.truncated.last_mut() {
                t.raw_len -= 1;
            }
            Ok(ReadOutcome::Chunk(body))
        }
        None => Ok(ReadOutcome::Idle),
    }
}

fn continue_long_line(
    file: &File,
    size: u64,
    limits: Limits,
    long_line: &mut Option<LongLine>,
    finished: bool,
) -> io::Result<ReadOutcome> {
    let long = long_line.as_mut().expect("called with a long line");
    let available = size.saturating_sub(long.scanned_to);
    if available == 0 {
        if !finished {
            return Ok(ReadOutcome::Idle);
        }
        // The file ends inside the long line: emit it as a line of its own.
        let long = long_line.take().unwrap();
        let end = long.scanned_to;
        return Ok(ReadOutcome::Chunk(finish_long_line(
            long,
            end,
            tail_hash(file, end)?.unwrap_or_default(),
            true,
        )));
    }
    let want = available.min(limits.max_chunk_bytes as u64);
    let buf = read_at_most(file, long.scanned_to, want)?;
    match memchr::memchr(b'\n', &buf) {
        Some(nl) => {
            let end = long.scanned_to + nl as u64 + 1;
            let tail = match tail_hash_in(&buf[..=nl], long.scanned_to, end) {
                Some(h) => h,
                None => tail_hash(file, end)?.unwrap_or_default(),
            };
            let long = long_line.take().unwrap();
            Ok(ReadOutcome::Chunk(finish_long_line(long, end, tail, false)))
        }
        None => {
            long.scanned_to += buf.len() as u64;
            Ok(ReadOutcome::Progress)
        }
    }
}

/// The chunk of one long line ending at `end` (after its `\n`, or at end of file).
fn finish_long_line(long: LongLine, end: u64, tail_hash: u64, appended: bool) -> ChunkBody {
    let raw_len = end - long.start;
    let line_len = raw_len - u64::from(!appended);
    let mut data = long.kept;
    let dropped = line_len - data.len() as u64;
    push_marker(&mut data, dropped);
    ChunkBody {
        start: long.start,
        end,
        lines: 1,
        truncated: vec![TruncatedLine {
            data_end: data.len(),
            raw_len,
        }],
        data,
        appended_newline: appended,
        tail_hash,
    }
}

/// Turns a buffer of whole lines into a chunk, cutting lines over `max_line_bytes`. The buffer
/// is returned as is when no line is too long (the common case: no copy).
fn cut_long_lines(
    buf: Vec<u8>,
    start: u64,
    end: u64,
    tail_hash: u64,
    max_line: usize,
) -> ChunkBody {
    let mut lines = 0u32;
    let mut line_start = 0usize;
    let mut out: Option<Vec<u8>> = None;
    let mut copied_to = 0usize;
    let mut truncated = Vec::new();
    for nl in memchr::memchr_iter(b'\n', &buf) {
        lines += 1;
        let line = &buf[line_start..nl];
        if line.len() > max_line {
            let out = out.get_or_insert_with(|| Vec::with_capacity(buf.len()));
            out.extend_from_slice(&buf[copied_to..line_start]);
            let keep = utf8_floor(line, max_line);
            out.extend_from_slice(&line[..keep]);
            push_marker(out, (line.len() - keep) as u64);
            truncated.push(TruncatedLine {
                data_end: out.len(),
                raw_len: (nl + 1 - line_start) as u64,
            });
            copied_to = nl + 1;
        }
        line_start = nl + 1;
    }
    let data = match out {
        Some(mut out) => {
            out.extend_from_slice(&buf[copied_to..]);
            out
        }
        None => buf,
    };
    ChunkBody {
        start,
        end,
        data,
        lines,
        truncated,
        appended_newline: false,
        tail_hash,
    }
}

/// Appends the truncation marker and the line's `\n`.
fn push_marker(out: &mut Vec<u8>, dropped: u64) {
    use std::io::Write;
    writeln!(out, "…[truncated {dropped} bytes]").expect("writing to a Vec cannot fail");
}

/// The largest length ≤ `max` that does not split a UTF-8 character of `bytes` (bytes that are
/// not UTF-8 are cut at `max`, at most 3 bytes earlier).
fn utf8_floor(bytes: &[u8], max: usize) -> usize {
    if bytes.len() <= max {
        return bytes.len();
    }
    let mut cut = max;
    while cut > 0 && max - cut < 3 && (bytes[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    if (bytes[cut] & 0xC0) == 0x80 {
        max
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.log");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        (dir, File::open(&path).unwrap())
    }

    const LIMITS: Limits = Limits {
        max_line_bytes: 10,
        max_chunk_bytes: 100,
    };

    /// Reads the whole file chunk by chunk, as the tailer does.
    fn read_all(content: &[u8], limits: Limits, finished: bool) -> Vec<ChunkBody> {
        let (_d, f) = file_with(content);
        let mut long = None;
        let mut pos = 0;
        let mut chunks = Vec::new();
        loop {
            match read_chunk(&f, pos, content.len() as u64, limits, &mut long, finished).unwrap() {
                ReadOutcome::Chunk(c) => {
                    assert_eq!(c.start, pos);
                    pos = c.end;
                    chunks.push(c);
                }
                ReadOutcome::Progress => {}
                ReadOutcome::Idle => return chunks,
            }
        }
    }

    #[test]
    fn chunk_ends_at_last_newline_and_holds_back_partial_line() {
        let c = read_all(b"one\ntwo\nthr", LIMITS, false);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].data, b"one\ntwo\n");
        assert_eq!((c[0].start, c[0].end, c[0].lines), (0, 8, 2));
    }

    #[test]
    fn finished_file_emits_partial_line_with_newline() {
        let c = read_all(b"one\ntwo\nthr", LIMITS, true);
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].data, b"thr\n");
        assert_eq!((c[1].start, c[1].end), (8, 11));
        assert!(c[1].appended_newline);
    }

    #[test]
    fn chunks_are_cut_at_the_window() {
        let line = b"123456789\n"; // 10 bytes
        let content: Vec<u8> = line.repeat(25);
        let c = read_all(&content, LIMITS, false);
        let ends: Vec<u64> = c.iter().map(|c| c.end).collect();
        assert_eq!(ends, vec![100, 200, 250]);
        assert_eq!(c.iter().map(|c| c.lines).sum::<u32>(), 25);
    }

    #[test]
    fn long_line_within_window_is_truncated_with_marker() {
        let c = read_all(b"short\n0123456789abcdef\nnext\n", LIMITS, false);
        assert_eq!(c.len(), 1);
        assert_eq!(
            String::from_utf8(c[0].data.clone()).unwrap(),
            "short\n0123456789…[truncated 6 bytes]\nnext\n"
        );
        assert_eq!(c[0].end, 28);
        assert_eq!(c[0].lines, 3);
        assert_eq!(c[0].truncated.len(), 1);
        assert_eq!(c[0].truncated[0].raw_len, 17);
    }

    #[test]
    fn line_longer_than_window_becomes_its_own_chunk() {
        let mut content = b"a\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', 350));
        content.extend_from_slice(b"\nb\n");
        let c = read_all(&content, LIMITS, false);
        let data: Vec<String> = c
            .iter()
            .map(|c| String::from_utf8(c.data.clone()).unwrap())
            .collect();
        assert_eq!(
            data,
            vec![
                "a\n".to_string(),
                "xxxxxxxxxx…[truncated 340 bytes]\n".to_string(),
                "b\n".to_string()
            ]
        );
        assert_eq!((c[1].start, c[1].end), (2, 353));
        assert_eq!(c[2].end, content.len() as u64);
    }

    #[test]
    fn truncation_does_not_split_utf8_characters() {
        // "ééééé…" : 2-byte characters; a cut at 10 bytes is a boundary, at 9 it is not.
        let limits = Limits {
            max_line_bytes: 9,
            max_chunk_bytes: 100,
        };
        let c = read_all("éééééé\n".as_bytes(), limits, false);
        assert_eq!(
            String::from_utf8(c[0].data.clone()).unwrap(),
            "éééé…[truncated 4 bytes]\n"
        );
        assert_eq!(utf8_floor(&[0x80; 20], 5), 5);
    }

    #[test]
    fn tail_hash_is_of_the_bytes_before_the_end() {
        let content = b"abc\ndef\n".repeat(100);
        let (_d, f) = file_with(&content);
        for c in read_all(&content, LIMITS, false) {
            assert_eq!(Some(c.tail_hash), tail_hash(&f, c.end).unwrap());
        }
    }
}
