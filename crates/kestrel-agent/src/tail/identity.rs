//! File identity: which logical file a set of bytes belongs to, stable across renames and restarts.
//!
//! A [`FileKey`] is the device and inode the file was first seen on plus a hash of its
//! fingerprint window: the file's first line (including its `\n`), capped at
//! `fingerprint_bytes`. The window is chosen by content alone, never by how much had been
//! written when the tailer looked, so the same file always gets the same key: after a crash, a
//! re-read chunk carries the key it carried before. Until the window is complete (an empty file,
//! or a first line still being written and shorter than `fingerprint_bytes`) the file has no
//! identity and nothing is read from it; there is nothing to read anyway, since only whole lines
//! are emitted. A rotated or deleted file whose only line never got its `\n` is identified by all
//! of its bytes when it is finished.
//!
//! Inode reuse (same device and inode, different first line) yields a different key. A saved
//! offset is also checked against [`tail_hash`], the hash of up to [`TAIL_HASH_BYTES`] bytes just
//! before it, so a file that kept its first line but was rewritten is not resumed mid-way.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::str::FromStr;

use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

/// How many bytes before a checkpointed offset are hashed to confirm it on restart.
pub const TAIL_HASH_BYTES: u64 = 256;

/// The stable identity of one logical file: device, inode, and hash of the fingerprint window.
///
/// Its string form (`Display`/`FromStr`) is `<dev hex>-<inode hex>-<fingerprint 16 hex>`, and
/// [`FileKey::as_u128`] gives a compact hash of all three; both are stable across versions and
/// fit in a batch identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey {
    /// `st_dev` of the file when it was first identified.
    pub dev: u64,
    /// `st_ino` of the file when it was first identified.
    pub ino: u64,
    /// xxh3-64 of the fingerprint window (see the module doc).
    pub fingerprint: u64,
}

impl FileKey {
    /// A 128-bit hash of the key (xxh3-128 of its three fields, little-endian).
    pub fn as_u128(&self) -> u128 {
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&self.dev.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.ino.to_le_bytes());
        bytes[16..].copy_from_slice(&self.fingerprint.to_le_bytes());
        xxh3_128(&bytes)
    }
}

impl fmt::Display for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}-{:x}-{:016x}", self.dev, self.ino, self.fingerprint)
    }
}

/// A string that is not `<dev hex>-<inode hex>-<fingerprint hex>`.
#[derive(Debug, thiserror::Error)]
#[error("invalid file key {0:?} (expected <dev hex>-<inode hex>-<fingerprint hex>)")]
pub struct ParseFileKeyError(String);

impl FromStr for FileKey {
    type Err = ParseFileKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseFileKeyError(s.to_string());
        let mut parts = s.split('-');
        let mut next = || {
            parts
                .next()
                .and_then(|p| u64::from_str_radix(p, 16).ok())
                .ok_or_else(bad)
        };
        let key = FileKey {
            dev: next()?,
            ino: next()?,
            fingerprint: next()?,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(key)
    }
}

/// The fingerprint window of a file, once it is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// xxh3-64 of the window.
    pub hash: u64,
    /// Length of the window in bytes.
    pub len: u64,
}

/// Reads a file's fingerprint window.
///
/// Returns `None` while the window is incomplete: the file is empty, or its first line has no
/// `\n` yet and is shorter than `max_bytes`. With `at_eof_final` (the file is rotated away or
/// deleted and fully read) the whole file stands as the window when it has no `\n`.
pub fn fingerprint(
    file: &File,
    size: u64,
    max_bytes: u64,
    at_eof_final: bool,
) -> io::Result<Option<Fingerprint>> {
    let want = size.min(max_bytes);
    if want == 0 {
        return Ok(None);
    }
    let buf = read_at_most(file, 0, want)?;
    let window = match memchr::memchr(b'\n', &buf) {
        Some(nl) => &buf[..=nl],
        None if buf.len() as u64 == max_bytes => &buf[..],
        None if at_eof_final && !buf.is_empty() => &buf[..],
        None => return Ok(None),
    };
    Ok(Some(Fingerprint {
        hash: xxh3_64(window),
        len: window.len() as u64,
    }))
}

/// Whether the file's first `fp.len` bytes still hash to `fp.hash`.
pub fn fingerprint_matches(file: &File, fp: Fingerprint) -> io::Result<bool> {
    let buf = read_at_most(file, 0, fp.len)?;
    Ok(buf.len() as u64 == fp.len && xxh3_64(&buf) == fp.hash)
}

/// Hash of the (up to [`TAIL_HASH_BYTES`]) bytes just before `offset`, from a buffer holding
/// the file's bytes `[buf_start, buf_start + buf.len())`. `None` if the buffer does not hold
/// them all.
pub fn tail_hash_in(buf: &[u8], buf_start: u64, offset: u64) -> Option<u64> {
    let from = offset.saturating_sub(TAIL_HASH_BYTES);
    if from < buf_start || offset > buf_start + buf.len() as u64 {
        return None;
    }
    Some(xxh3_64(
        &buf[(from - buf_start) as usize..(offset - buf_start) as usize],
    ))
}

/// Hash of the (up to [`TAIL_HASH_BYTES`]) bytes of `file` just before `offset`; `None` if the
/// file is shorter than `offset`.
pub fn tail_hash(file: &File, offset: u64) -> io::Result<Option<u64>> {
    let from = offset.saturating_sub(TAIL_HASH_BYTES);
    let buf = read_at_most(file, from, offset - from)?;
    if (buf.len() as u64) < offset - from {
        return Ok(None);
    }
    Ok(Some(xxh3_64(&buf)))
}

/// Reads up to `len` bytes at `offset`, stopping early only at end of file. Large reads go
/// straight into the buffer's spare capacity (seek, then `read_to_end`: no zeroing first);
/// small ones take a single `pread`.
pub fn read_at_most(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    if len > 4096 {
        let mut buf = Vec::with_capacity(len as usize);
        let mut reader = file;
        reader.seek(SeekFrom::Start(offset))?;
        reader.take(len).read_to_end(&mut buf)?;
        return Ok(buf);
    }
    let mut buf = vec![0u8; len as usize];
    let mut filled = 0usize;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
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

    #[test]
    fn reads_stop_at_end_of_file_small_or_large() {
        let content: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
        let (_d, f) = file_with(&content);
        assert_eq!(read_at_most(&f, 10, 100).unwrap(), &content[10..110]);
        assert_eq!(read_at_most(&f, 19_990, 100).unwrap(), &content[19_990..]);
        assert_eq!(
            read_at_most(&f, 1000, 10_000).unwrap(),
            &content[1000..11_000]
        );
        assert_eq!(
            read_at_most(&f, 15_000, 10_000).unwrap(),
            &content[15_000..]
        );
        assert!(read_at_most(&f, 30_000, 10_000).unwrap().is_empty());
    }

    #[test]
    fn key_string_round_trips() {
        let key = FileKey {
            dev: 0x803,
            ino: 12345,
            fingerprint: 0xdead_beef,
        };
        assert_eq!(key.to_string(), "803-3039-00000000deadbeef");
        assert_eq!(key.to_string().parse::<FileKey>().unwrap(), key);
        assert!("803-3039".parse::<FileKey>().is_err());
        assert!("803-3039-1-2".parse::<FileKey>().is_err());
        assert!("x-1-2".parse::<FileKey>().is_err());
    }

    #[test]
    fn window_is_first_line_capped() {
        let (_d, f) = file_with(b"first\nsecond\n");
        let fp = fingerprint(&f, 13, 1024, false).unwrap().unwrap();
        assert_eq!(fp.len, 6);
        assert_eq!(fp.hash, xxh3_64(b"first\n"));
        let (_d, f) = file_with(b"abcdefgh");
        let fp = fingerprint(&f, 8, 4, false).unwrap().unwrap();
        assert_eq!(fp.len, 4);
    }

    #[test]
    fn short_first_line_without_newline_has_no_identity_until_final() {
        let (_d, f) = file_with(b"abc");
        assert_eq!(fingerprint(&f, 3, 1024, false).unwrap(), None);
        let fp = fingerprint(&f, 3, 1024, true).unwrap().unwrap();
        assert_eq!(fp.len, 3);
        let (_d, f) = file_with(b"");
        assert_eq!(fingerprint(&f, 0, 1024, true).unwrap(), None);
    }

    #[test]
    fn window_does_not_depend_on_how_much_was_written() {
        let (_d, short) = file_with(b"line one\n");
        let (_d2, long) = file_with(b"line one\nline two\nline three\n");
        assert_eq!(
            fingerprint(&short, 9, 1024, false).unwrap(),
            fingerprint(&long, 29, 1024, false).unwrap()
        );
        let fp = fingerprint(&short, 9, 1024, false).unwrap().unwrap();
        assert!(fingerprint_matches(&long, fp).unwrap());
    }

    #[test]
    fn tail_hash_in_buffer_agrees_with_file() {
        let content: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let (_d, f) = file_with(&content);
        for offset in [0u64, 10, 256, 300, 1000] {
            let from_file = tail_hash(&f, offset).unwrap().unwrap();
            let from_buf = tail_hash_in(&content[..offset as usize], 0, offset).unwrap();
            assert_eq!(from_file, from_buf);
        }
        assert_eq!(tail_hash_in(&content[500..], 500, 600), None);
        assert_eq!(tail_hash(&f, 1001).unwrap(), None);
    }
}
