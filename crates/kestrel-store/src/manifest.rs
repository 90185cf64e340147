//! The tamper-evident manifest of a table: an append-only, hash-chained log of every change to
//! the table's sealed files.
//!
//! ```text
//! <root>/<table>/_manifest.jsonl        one JSON entry per line, fsynced before it counts
//! <root>/<table>/_manifest.head.json    the last entry's (seq, hash), signed when a key is set
//! ```
//! An entry records one file: `add` when a seal publishes it, `remove` when retention deletes
//! it, compaction replaces it or a query finds it corrupt and quarantines it. Each entry holds
//! the SHA-256 and size of the file, a sequence number and the hash of the entry before it, and
//! its own hash covers all of that. Changing, deleting, inserting or reordering an entry breaks
//! the chain at that point; rewriting the whole chain from some point on changes the head, which
//! the signature (Ed25519) and heads exported elsewhere (`kestrel verify --export-head`) catch.
//!
//! Entries are appended in one write followed by an fsync; a crash can only leave a torn last
//! line, which was never acknowledged and is cut on open.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{error, warn};

use crate::wal::sync_dir;

/// The manifest's file name inside a table directory.
pub const MANIFEST_FILE: &str = "_manifest.jsonl";
/// The signed head's file name inside a table directory.
pub const HEAD_FILE: &str = "_manifest.head.json";
/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an entry does to the table's set of files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// A sealed file joins the table.
    Add,
    /// A file leaves the table (see the reason).
    Remove,
}

/// Why a file left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoveReason {
    /// Older than the table's retention; the file is deleted.
    Retention,
    /// Replaced by a compacted file (recorded by an `add` in the same append).
    Compaction,
    /// It failed to open or decode; moved to `<root>/quarantine/<table>/`.
    Quarantine,
    /// Written by a seal a crash interrupted; its rows are sealed again from the WAL.
    UnfinishedSeal,
}

impl RemoveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RemoveReason::Retention => "retention",
            RemoveReason::Compaction => "compaction",
            RemoveReason::Quarantine => "quarantine",
            RemoveReason::UnfinishedSeal => "unfinished_seal",
        }
    }
}

/// One line of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// 1 for the first entry, then one more per entry.
    pub seq: u64,
    /// When the entry was written (RFC 3339, UTC).
    pub time: String,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RemoveReason>,
    /// The file, relative to the table directory, with `/` separators.
    pub path: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The file's SHA-256 (hex).
    pub sha256: String,
    /// The hash of the entry before (hex; [`GENESIS`] for the first).
    pub prev: String,
    /// This entry's hash (hex), see [`Entry::compute_hash`].
    pub hash: String,
}

impl Entry {
    /// SHA-256 over the table name and every field but `hash`, in a fixed text layout that does
    /// not depend on JSON formatting.
    pub fn compute_hash(&self, table: &str) -> String {
        let op = match self.op {
            Op::Add => "add",
            Op::Remove => "remove",
        };
        let reason = self.reason.map(RemoveReason::as_str).unwrap_or("");
        let text = format!(
            "kestrel-manifest-v1\n{table}\n{}\n{}\n{op}\n{reason}\n{}\n{}\n{}\n{}\n",
            self.seq, self.time, self.path, self.size, self.sha256, self.prev
        );
        hex::encode(Sha256::digest(text.as_bytes()))
    }
}

/// A change to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub op: Op,
    pub reason: Option<RemoveReason>,
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// What the manifest knows of a file in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub size: u64,
    pub sha256: String,
    /// The entry that added it.
    pub seq: u64,
}

/// The last entry of a chain, as exported and signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub table: String,
    pub seq: u64,
    pub hash: String,
    /// When the head was written (RFC 3339).
    pub time: String,
    /// Ed25519 public key (hex) of the signer, when signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Ed25519 signature (hex) of [`Head::signed_text`], when signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Head {
    /// The bytes a signature covers.
    pub fn signed_text(&self) -> String {
        format!(
            "kestrel-manifest-head-v1\n{}\n{}\n{}\n{}\n",
            self.table, self.seq, self.hash, self.time
        )
    }

    /// Signs the head with `key`.
    pub fn sign(&mut self, key: &SigningKey) {
        let sig = key.sign(self.signed_text().as_bytes());
        self.public_key = Some(hex::encode(key.verifying_key().as_bytes()));
        self.signature = Some(hex::encode(sig.to_bytes()));
    }

    /// Checks the signature against `key` (not against the key the head names: anyone can sign
    /// with a key of their own).
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), String> {
        let Some(sig) = &self.signature else {
            return Err("the head is not signed".into());
        };
        let bytes: [u8; 64] = hex::decode(sig)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("the signature is not 64 bytes of hex")?;
        key.verify(
            self.signed_text().as_bytes(),
            &Signature::from_bytes(&bytes),
        )
        .map_err(|_| "the signature does not match the head and the public key".to_string())
    }
}

/// Errors reading keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Reads an Ed25519 private key: PKCS#8 PEM (`openssl genpkey -algorithm ed25519`) or 32 bytes
/// of hex.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let text = fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.into(),
        source,
    })?;
    if text.contains("-----BEGIN") {
        return SigningKey::from_pkcs8_pem(&text).map_err(|e| KeyError::Invalid {
            path: path.into(),
            message: format!("not an Ed25519 PKCS#8 private key: {e}"),
        });
    }
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| KeyError::Invalid {
            path: path.into(),
            message: "expected a PEM private key or 64 hex digits".into(),
        })?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Reads an Ed25519 public key: SPKI PEM (`openssl pkey -pubout`) or 32 bytes of hex.
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    let text = fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.into(),
        source,
    })?;
    let invalid = |message: String| KeyError::Invalid {
        path: path.into(),
        message,
    };
    if text.contains("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(&text)
            .map_err(|e| invalid(format!("not an Ed25519 public key: {e}")));
    }
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| invalid("expected a PEM public key or 64 hex digits".into()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| invalid(e.to_string()))
}

/// The lines of a manifest file: every complete line, and whether a torn (unterminated) last
/// line was left out.
pub fn read_lines(path: &Path) -> io::Result<(Vec<String>, u64, bool)> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0, false)),
        Err(e) => return Err(e),
    }
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let torn = complete < bytes.len();
    let lines = String::from_utf8_lossy(&bytes[..complete])
        .lines()
        .map(str::to_owned)
        .collect();
    Ok((lines, complete as u64, torn))
}

/// The open manifest of one table.
#[derive(Debug)]
pub struct Manifest {
    table: String,
    dir: PathBuf,
    file: File,
    last_seq: u64,
    last_hash: String,
    /// The table's files and their records, by relative path.
    live: BTreeMap<String, FileRecord>,
    /// The last entry of each path that was removed, by relative path.
    removed: BTreeMap<String, RemoveReason>,
    signer: Option<SigningKey>,
    /// Whether the file existed when opened (false: a new table or one from before manifests).
    existed: bool,
}

impl Manifest {
    /// Opens (or creates) the manifest in `table_dir`. A torn last line is cut; entries that do
    /// not parse or chain are logged (run `kestrel verify`) but do not stop the store: appends
    /// continue from the last readable entry.
    pub fn open(table_dir: &Path, table: &str, signer: Option<SigningKey>) -> io::Result<Self> {
        fs::create_dir_all(table_dir)?;
        let path = table_dir.join(MANIFEST_FILE);
        let existed = path.exists();
        let (lines, valid_bytes, torn) = read_lines(&path)?;
        if torn {
            warn!(table, manifest = %path.display(), "manifest ends in a torn entry (a crash while writing it); cutting it");
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(valid_bytes)?;
            f.sync_all()?;
        }
        let mut m = Manifest {
            table: table.to_owned(),
            dir: table_dir.to_owned(),
            file: OpenOptions::new().create(true).append(true).open(&path)?,
            last_seq: 0,
            last_hash: GENESIS.to_owned(),
            live: BTreeMap::new(),
            removed: BTreeMap::new(),
            signer,
            existed,
        };
        if !existed {
            sync_dir(table_dir)?;
        }
        let mut broken = 0usize;
        for (i, line) in lines.iter().enumerate() {
            let entry: Entry = match serde_json::from_str(line) {
                Ok(e) => e,
                Err(e) => {
                    broken += 1;
                    error!(table, line = i + 1, error = %e, "manifest entry does not parse; run `kestrel verify`");
                    continue;
                }
            };
            if entry.prev != m.last_hash
                || entry.seq != m.last_seq + 1
                || entry.hash != entry.compute_hash(table)
            {
                broken += 1;
            }
            m.apply(&entry);
        }
        if broken > 0 {
            error!(
                table,
                entries = broken,
                "the manifest chain is broken; run `kestrel verify --table {table}` to see where"
            );
        }
        Ok(m)
    }

    fn apply(&mut self, e: &Entry) {
        match e.op {
            Op::Add => {
                self.removed.remove(&e.path);
                self.live.insert(
                    e.path.clone(),
                    FileRecord {
                        size: e.size,
                        sha256: e.sha256.clone(),
                        seq: e.seq,
                    },
                );
            }
            Op::Remove => {
                self.live.remove(&e.path);
                self.removed
                    .insert(e.path.clone(), e.reason.unwrap_or(RemoveReason::Retention));
            }
        }
        self.last_seq = e.seq;
        self.last_hash = e.hash.clone();
    }

    /// Whether the manifest file existed before [`Manifest::open`].
    pub fn existed(&self) -> bool {
        self.existed
    }

    /// The table's files as the manifest records them.
    pub fn live(&self) -> &BTreeMap<String, FileRecord> {
        &self.live
    }

    /// Why `path` left the table, if its last entry removed it.
    pub fn removed_reason(&self, path: &str) -> Option<RemoveReason> {
        self.removed.get(path).copied()
    }

    /// The current head (unsigned).
    pub fn head(&self) -> Head {
        Head {
            table: self.table.clone(),
            seq: self.last_seq,
            hash: self.last_hash.clone(),
            time: kestrel_event::time::to_rfc3339(kestrel_event::time::now_nanos()),
            public_key: None,
            signature: None,
        }
    }

    /// Appends `changes` as entries in one write, makes them durable, and writes the new head.
    pub fn append(&mut self, changes: &[Change]) -> io::Result<Vec<Entry>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let time = kestrel_event::time::to_rfc3339(kestrel_event::time::now_nanos());
        let mut entries = Vec::with_capacity(changes.len());
        let mut text = String::new();
        let (mut seq, mut prev) = (self.last_seq, self.last_hash.clone());
        for c in changes {
            seq += 1;
            let mut e = Entry {
                seq,
                time: time.clone(),
                op: c.op,
                reason: c.reason,
                path: c.path.clone(),
                size: c.size,
                sha256: c.sha256.clone(),
                prev: prev.clone(),
                hash: String::new(),
            };
            e.hash = e.compute_hash(&self.table);
            prev = e.hash.clone();
            text.push_str(&serde_json::to_string(&e).map_err(io::Error::other)?);
            text.push('\n');
            entries.push(e);
        }
        self.file.write_all(text.as_bytes())?;
        self.file.sync_data()?;
        for e in &entries {
            self.apply(e);
        }
        self.write_head()?;
        Ok(entries)
    }

    /// Writes `_manifest.head.json` (signed when a key is set): tmp, fsync, rename.
    pub fn write_head(&self) -> io::Result<()> {
        let mut head = self.head();
        if let Some(key) = &self.signer {
            head.sign(key);
        }
        let path = self.dir.join(HEAD_FILE);
        let tmp = self.dir.join(format!("{HEAD_FILE}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(
            serde_json::to_string_pretty(&head)
                .map_err(io::Error::other)?
                .as_bytes(),
        )?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)
    }
}

/// SHA-256 (hex) and size of a file.
pub fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// A writer that hashes what passes through it, so a sealed file's SHA-256 costs no second read.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the SHA-256 (hex) and the byte count of everything written.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A path relative to a table directory, with `/` separators (as the manifest writes it).
pub fn relative_path(table_dir: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(table_dir).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(path: &str) -> Change {
        Change {
            op: Op::Add,
            reason: None,
            path: path.into(),
            size: 3,
            sha256: "ab".repeat(32),
        }
    }

    #[test]
    fn entries_chain_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let mut m = Manifest::open(dir.path(), "audit", Some(key.clone())).unwrap();
        assert!(!m.existed());
        let e = m.append(&[add("a.parquet"), add("b.parquet")]).unwrap();
        assert_eq!(e[0].prev, GENESIS);
        assert_eq!(e[1].prev, e[0].hash);
        assert_eq!(e[1].seq, 2);
        m.append(&[Change {
            op: Op::Remove,
            reason: Some(RemoveReason::Retention),
            ..add("a.parquet")
        }])
        .unwrap();
        drop(m);
        let path = dir.path().join(MANIFEST_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":4,\"ti").unwrap();
        drop(f);
        let m = Manifest::open(dir.path(), "audit", None).unwrap();
        assert!(m.existed());
        assert_eq!(m.live().keys().collect::<Vec<_>>(), vec!["b.parquet"]);
        assert_eq!(m.removed_reason("a.parquet"), Some(RemoveReason::Retention));
        assert_eq!(m.head().seq, 3);
        assert!(fs::read_to_string(&path).unwrap().ends_with("}\n"));
        let head: Head =
            serde_json::from_str(&fs::read_to_string(dir.path().join(HEAD_FILE)).unwrap()).unwrap();
        assert_eq!(head.seq, 3);
        head.verify_signature(&key.verifying_key()).unwrap();
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert!(head.verify_signature(&other).is_err());
    }

    #[test]
    fn hashing_writer_matches_hash_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut w = HashingWriter::new(File::create(&p).unwrap());
        w.write_all(b"hello world").unwrap();
        let (_, sha, n) = w.finish();
        assert_eq!(n, 11);
        assert_eq!(hash_file(&p).unwrap(), (sha, 11));
    }
}
