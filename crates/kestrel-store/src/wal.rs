//! The write-ahead log: numbered segment files of CRC-framed entries.
//!
//! ```text
//! <root>/wal/<segment:020>.wal   entry* ; entry = len:u32le crc32:u32le payload[len]
//! ```
//! An entry is appended and the file fsynced before anything is acknowledged. On open, a segment
//! is read up to its first torn or corrupt entry (the tail a crash left behind), and the file is
//! cut there so later appends never follow garbage.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

/// Entries larger than this are refused; it bounds what a corrupt length field can make us
/// allocate during recovery.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024 * 1024;

const HEADER_BYTES: usize = 8;

/// Path of segment `id` under `dir`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

/// Ids of the segments in `dir`, ascending.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name
            .strip_suffix(".wal")
            .and_then(|s| s.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// fsync a directory so that creations, renames and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An open segment that entries are appended to.
#[derive(Debug)]
pub struct SegmentWriter {
    id: u64,
    file: File,
    bytes: u64,
}

impl SegmentWriter {
    /// Creates segment `id` (it must not exist) and makes its creation durable.
    pub fn create(dir: &Path, id: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(segment_path(dir, id))?;
        sync_dir(dir)?;
        Ok(SegmentWriter { id, file, bytes: 0 })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Bytes written to this segment so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Writes one framed entry (not yet durable: call [`SegmentWriter::sync`]).
    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        if payload.len() > MAX_ENTRY_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("wal entry of {} bytes exceeds the limit", payload.len()),
            ));
        }
        let mut header = [0u8; HEADER_BYTES];
        header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
        self.file.write_all(&header)?;
        self.file.write_all(payload)?;
        self.bytes += (HEADER_BYTES + payload.len()) as u64;
        Ok(())
    }

    /// Makes every appended entry durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// What reading a segment found.
#[derive(Debug, Default)]
pub struct SegmentContents {
    pub entries: Vec<Vec<u8>>,
    /// Bytes of valid entries; anything after this was a torn or corrupt tail.
    pub valid_bytes: u64,
    /// Bytes past the valid prefix that were dropped.
    pub dropped_tail_bytes: u64,
}

/// Reads every intact entry of a segment, stopping at the first torn or corrupt one, and cuts
/// the file to its valid prefix.
pub fn read_segment(path: &Path) -> io::Result<SegmentContents> {
    let file = File::open(path)?;
    let total = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut out = SegmentContents::default();
    loop {
        let mut header = [0u8; HEADER_BYTES];
        match read_full(&mut reader, &mut header)? {
            0 => break,
            n if n < HEADER_BYTES => break,
            _ => {}
        }
        let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().unwrap());
        if len > MAX_ENTRY_BYTES || out.valid_bytes + (HEADER_BYTES + len) as u64 > total {
            break;
        }
        let mut payload = vec![0u8; len];
        if read_full(&mut reader, &mut payload)? < len || crc32fast::hash(&payload) != crc {
            break;
        }
        out.valid_bytes += (HEADER_BYTES + len) as u64;
        out.entries.push(payload);
    }
    out.dropped_tail_bytes = total - out.valid_bytes;
    if out.dropped_tail_bytes > 0 {
        warn!(
            segment = %path.display(),
            dropped_bytes = out.dropped_tail_bytes,
            "wal segment ends in a torn or corrupt entry; cutting it (those bytes were never acknowledged)"
        );
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(out.valid_bytes)?;
        f.sync_all()?;
    }
    Ok(out)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 7).unwrap();
        w.append(b"one").unwrap();
        w.append(b"two").unwrap();
        w.sync().unwrap();
        let good = w.bytes();
        drop(w);
        // A crash in the middle of a third entry.
        let path = segment_path(dir.path(), 7);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[100, 0, 0, 0, 1, 2, 3, 4, b'x']).unwrap();
        drop(f);
        let got = read_segment(&path).unwrap();
        assert_eq!(got.entries, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(got.valid_bytes, good);
        assert_eq!(fs::metadata(&path).unwrap().len(), good);
        assert_eq!(list_segments(dir.path()).unwrap(), vec![7]);
    }

    #[test]
    fn corrupt_entry_stops_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 1).unwrap();
        w.append(b"first").unwrap();
        w.append(b"second").unwrap();
        w.sync().unwrap();
        drop(w);
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let got = read_segment(&path).unwrap();
        assert_eq!(got.entries, vec![b"first".to_vec()]);
    }
}
