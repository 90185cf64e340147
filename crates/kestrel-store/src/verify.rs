//! `kestrel verify`: checks a data directory against its manifests, with no server running (or
//! beside one: it only reads).
//!
//! For each table it walks the manifest chain (every entry's hash, sequence and link to the
//! one before), replays it into the set of files the table should hold, re-hashes those files,
//! and looks for files nobody recorded. It then checks the chain's head against the signed head
//! on disk and against heads exported earlier, which catches a chain rewritten from some entry
//! on. Every problem names the entry or file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::manifest::{self, Entry, Head, Op, GENESIS, HEAD_FILE, MANIFEST_FILE};
use crate::parquet_files::{scan_table_dir, segment_of};
use crate::rows::Table;

/// What to check besides the chain and the files.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Heads exported earlier (`kestrel verify --export-head`): each table's chain must still
    /// hold that entry with that hash.
    pub exported_heads: Vec<Head>,
    /// The manifest signing key's public half: signatures of the head on disk and of exported
    /// heads must verify with it.
    pub public_key: Option<VerifyingKey>,
}

/// Kinds of problems, for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A manifest line that is not an entry.
    EntryUnreadable,
    /// An entry's content no longer matches its hash.
    EntryRewritten,
    /// An entry's sequence number is not the next one: entries were deleted, inserted or
    /// reordered.
    EntryOutOfSequence,
    /// An entry does not link to the one before it.
    ChainBroken,
    /// A file's bytes differ from those recorded.
    FileModified,
    /// A recorded file is missing.
    FileDeleted,
    /// A file no entry records.
    FileInserted,
    /// A recorded file's content is now found under another name.
    FileMoved,
    /// The chain does not hold a head signed or exported earlier.
    HeadMismatch,
    /// A head's signature does not verify.
    BadSignature,
    /// The manifest or a file could not be read.
    Unreadable,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The manifest entry concerned (its sequence number), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<u64>,
    /// The manifest line concerned (1-based), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The file concerned, relative to the table directory, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub message: String,
}

/// What verifying one table found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableReport {
    pub table: String,
    /// Entries in the manifest.
    pub entries: u64,
    /// Files re-hashed.
    pub files_checked: u64,
    /// The chain's last entry.
    pub head_seq: u64,
    pub head_hash: String,
    /// Whether the head on disk is signed and the signature verified with the given key.
    pub head_signature_verified: bool,
    pub problems: Vec<Problem>,
    /// Things worth knowing that are not tampering (a seal in progress, quarantined files).
    pub notes: Vec<String>,
}

impl TableReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies `tables` (every table when empty) of the data directory `root`.
pub fn verify(root: &Path, tables: &[Table], opts: &VerifyOptions) -> Vec<TableReport> {
    let tables: Vec<Table> = if tables.is_empty() {
        Table::ALL.to_vec()
    } else {
        tables.to_vec()
    };
    tables
        .into_iter()
        .map(|t| verify_table(root, t, opts))
        .collect()
}

fn problem(kind: ProblemKind, message: String) -> Problem {
    Problem {
        kind,
        entry: None,
        line: None,
        file: None,
        message,
    }
}

/// Verifies one table.
pub fn verify_table(root: &Path, table: Table, opts: &VerifyOptions) -> TableReport {
    let name = table.name();
    let dir = root.join(name);
    let mut report = TableReport {
        table: name.to_owned(),
        entries: 0,
        files_checked: 0,
        head_seq: 0,
        head_hash: GENESIS.to_owned(),
        head_signature_verified: false,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let (lines, _, torn) = match manifest::read_lines(&dir.join(MANIFEST_FILE)) {
        Ok(l) => l,
        Err(e) => {
            report.problems.push(problem(
                ProblemKind::Unreadable,
                format!("cannot read the manifest: {e}"),
            ));
            return report;
        }
    };
    if torn {
        report
            .notes
            .push("the manifest ends in an unfinished line (a write in progress or a crash); it was not checked".into());
    }

    // Walk the chain.
    let mut chain: HashMap<u64, String> = HashMap::new();
    let mut live: BTreeMap<String, Entry> = BTreeMap::new();
    let (mut expected_seq, mut prev) = (1u64, GENESIS.to_owned());
    for (i, line) in lines.iter().enumerate() {
        let line_no = i + 1;
        let entry: Entry = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => {
                report.problems.push(Problem {
                    line: Some(line_no),
                    ..problem(
                        ProblemKind::EntryUnreadable,
                        format!("manifest line {line_no} is not an entry: {e}"),
                    )
                });
                expected_seq += 1;
                continue;
            }
        };
        report.entries += 1;
        let at = |kind, message: String| Problem {
            kind,
            entry: Some(entry.seq),
            line: Some(line_no),
            file: Some(entry.path.clone()),
            message,
        };
        if entry.hash != entry.compute_hash(name) {
            report.problems.push(at(
                ProblemKind::EntryRewritten,
                format!(
                    "entry {} (line {line_no}, {:?} {}) was changed after it was written: its content does not match its hash",
                    entry.seq, entry.op, entry.path
                ),
            ));
        } else if entry.seq != expected_seq {
            let message = if entry.seq > expected_seq {
                format!(
                    "entry {} at line {line_no} follows entry {}: entries {}..{} are missing (deleted) or out of order",
                    entry.seq,
                    expected_seq - 1,
                    expected_seq,
                    entry.seq - 1
                )
            } else {
                format!(
                    "entry {} at line {line_no} comes after entry {}: entries were reordered or inserted",
                    entry.seq,
                    expected_seq - 1
                )
            };
            report
                .problems
                .push(at(ProblemKind::EntryOutOfSequence, message));
        } else if entry.prev != prev {
            report.problems.push(at(
                ProblemKind::ChainBroken,
                format!(
                    "entry {} (line {line_no}) does not link to the entry before it: an entry before it was rewritten, inserted or removed",
                    entry.seq
                ),
            ));
        }
        expected_seq = entry.seq + 1;
        prev = entry.hash.clone();
        chain.insert(entry.seq, entry.hash.clone());
        report.head_seq = entry.seq;
        report.head_hash = entry.hash.clone();
        match entry.op {
            Op::Add => {
                live.insert(entry.path.clone(), entry);
            }
            Op::Remove => {
                live.remove(&entry.path);
            }
        }
    }

    check_heads(&dir, name, &chain, &mut report, opts);
    check_files(root, &dir, &live, &mut report);
    report
}

/// The head on disk and the exported heads must be entries of the chain, signed by the key.
fn check_heads(
    dir: &Path,
    table: &str,
    chain: &HashMap<u64, String>,
    report: &mut TableReport,
    opts: &VerifyOptions,
) {
    let in_chain =
        |h: &Head| chain.get(&h.seq) == Some(&h.hash) || (h.seq == 0 && h.hash == GENESIS);
    match std::fs::read(dir.join(HEAD_FILE)) {
        Ok(bytes) => match serde_json::from_slice::<Head>(&bytes) {
            Ok(head) => {
                if head.table != table {
                    report.problems.push(problem(
                        ProblemKind::HeadMismatch,
                        format!("the head on disk names table {:?}", head.table),
                    ));
                }
                if !in_chain(&head) {
                    report.problems.push(Problem {
                        entry: Some(head.seq),
                        ..problem(
                            ProblemKind::HeadMismatch,
                            format!(
                                "the head on disk (entry {}, hash {}) is not in the chain: the chain was rewritten or cut",
                                head.seq, head.hash
                            ),
                        )
                    });
                } else if head.seq < report.head_seq {
                    report.notes.push(format!(
                        "the head on disk is entry {}, the chain ends at {} (a crash between appending and writing the head, or entries added without the key)",
                        head.seq, report.head_seq
                    ));
                }
                if let Some(key) = &opts.public_key {
                    match head.verify_signature(key) {
                        Ok(()) => report.head_signature_verified = true,
                        Err(why) => report.problems.push(problem(
                            ProblemKind::BadSignature,
                            format!("the head on disk: {why}"),
                        )),
                    }
                }
            }
            Err(e) => report.problems.push(problem(
                ProblemKind::Unreadable,
                format!("the head on disk does not parse: {e}"),
            )),
        },
        Err(_) if report.entries == 0 => {}
        Err(e) => report.problems.push(problem(
            ProblemKind::Unreadable,
            format!("cannot read the head on disk ({HEAD_FILE}): {e}"),
        )),
    }
    for head in opts.exported_heads.iter().filter(|h| h.table == table) {
        if !in_chain(head) {
            report.problems.push(Problem {
                entry: Some(head.seq),
                ..problem(
                    ProblemKind::HeadMismatch,
                    format!(
                        "the exported head (entry {}, hash {}, exported {}) is not in the chain: history before it was rewritten or cut",
                        head.seq, head.hash, head.time
                    ),
                )
            });
        }
        if let Some(key) = &opts.public_key {
            if let Err(why) = head.verify_signature(key) {
                report.problems.push(problem(
                    ProblemKind::BadSignature,
                    format!("the exported head of entry {}: {why}", head.seq),
                ));
            }
        }
    }
}

/// Re-hashes the recorded files and looks for unrecorded ones.
fn check_files(root: &Path, dir: &Path, live: &BTreeMap<String, Entry>, report: &mut TableReport) {
    let on_disk: Vec<PathBuf> = match scan_table_dir(dir) {
        Ok((sealed, _)) => sealed,
        Err(e) => {
            report.problems.push(problem(
                ProblemKind::Unreadable,
                format!("cannot list {}: {e}", dir.display()),
            ));
            return;
        }
    };
    let segments_in_wal = crate::wal::list_segments(&root.join("wal")).unwrap_or_default();
    let by_sha: HashMap<&str, &str> = live
        .iter()
        .map(|(p, e)| (e.sha256.as_str(), p.as_str()))
        .collect();
    let mut hashes: HashMap<String, String> = HashMap::new();
    let mut hash = |rel: &str, report: &mut TableReport| -> Option<String> {
        if let Some(h) = hashes.get(rel) {
            return Some(h.clone());
        }
        report.files_checked += 1;
        match manifest::hash_file(&dir.join(rel)) {
            Ok((h, _)) => {
                hashes.insert(rel.to_owned(), h.clone());
                Some(h)
            }
            Err(e) => {
                report.problems.push(Problem {
                    file: Some(rel.to_owned()),
                    ..problem(ProblemKind::Unreadable, format!("cannot read {rel}: {e}"))
                });
                None
            }
        }
    };
    let disk_rel: Vec<String> = on_disk
        .iter()
        .filter_map(|p| manifest::relative_path(dir, p))
        .collect();
    for (rel, entry) in live {
        let at = |kind, message: String| Problem {
            kind,
            entry: Some(entry.seq),
            line: None,
            file: Some(rel.clone()),
            message,
        };
        if !disk_rel.contains(rel) {
            // Moved elsewhere in the table?
            let moved_to = disk_rel.iter().find(|other| {
                !live.contains_key(*other)
                    && hash(other, report).as_deref() == Some(entry.sha256.as_str())
            });
            let message = match moved_to {
                Some(other) => format!(
                    "{rel} (added by entry {}) is missing; its content is now at {other}",
                    entry.seq
                ),
                None => format!("{rel} (added by entry {}) is missing", entry.seq),
            };
            let kind = if moved_to.is_some() {
                ProblemKind::FileMoved
            } else {
                ProblemKind::FileDeleted
            };
            report.problems.push(at(kind, message));
            continue;
        }
        let Some(actual) = hash(rel, report) else {
            continue;
        };
        if actual != entry.sha256 {
            let message = match by_sha.get(actual.as_str()) {
                Some(other) => format!(
                    "{rel} holds the content entry {} recorded for {other}: files were swapped or reordered",
                    live[*other].seq
                ),
                None => format!(
                    "{rel} was modified after entry {} recorded it (SHA-256 {actual}, recorded {})",
                    entry.seq, entry.sha256
                ),
            };
            let kind = if by_sha.contains_key(actual.as_str()) {
                ProblemKind::FileMoved
            } else {
                ProblemKind::FileModified
            };
            report.problems.push(at(kind, message));
        }
    }
    for (path, rel) in on_disk.iter().zip(&disk_rel) {
        if live.contains_key(rel) {
            continue;
        }
        if segment_of(path).is_some_and(|s| segments_in_wal.binary_search(&s).is_ok()) {
            report.notes.push(format!(
                "{rel} belongs to a seal in progress (its WAL segment is still present)"
            ));
            continue;
        }
        if report
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::FileMoved && p.message.ends_with(rel.as_str()))
        {
            continue;
        }
        report.problems.push(Problem {
            file: Some(rel.clone()),
            ..problem(
                ProblemKind::FileInserted,
                format!("{rel} is not recorded in the manifest: it was inserted, or restored after its removal"),
            )
        });
    }
    let quarantine = root.join("quarantine").join(&report.table);
    let quarantined = std::fs::read_dir(&quarantine)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .count();
    if quarantined > 0 {
        report.notes.push(format!(
            "{quarantined} file(s) in {} (recorded as removed by quarantine)",
            quarantine.display()
        ));
    }
}

/// The head of each table's chain as it is now, for `kestrel verify --export-head`: the signed
/// head on disk when it is the chain's last entry, else the last entry unsigned.
pub fn current_heads(root: &Path, tables: &[Table]) -> Vec<Head> {
    let tables: Vec<Table> = if tables.is_empty() {
        Table::ALL.to_vec()
    } else {
        tables.to_vec()
    };
    let mut heads = Vec::new();
    for table in tables {
        let dir = root.join(table.name());
        let (lines, _, _) = manifest::read_lines(&dir.join(MANIFEST_FILE)).unwrap_or_default();
        let last = lines
            .iter()
            .rev()
            .find_map(|l| serde_json::from_str::<Entry>(l).ok());
        let (seq, hash) = last.map_or((0, GENESIS.to_owned()), |e| (e.seq, e.hash));
        let on_disk = std::fs::read(dir.join(HEAD_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<Head>(&b).ok())
            .filter(|h| h.seq == seq && h.hash == hash && h.table == table.name());
        heads.push(on_disk.unwrap_or_else(|| Head {
            table: table.name().to_owned(),
            seq,
            hash,
            time: kestrel_event::time::to_rfc3339(kestrel_event::time::now_nanos()),
            public_key: None,
            signature: None,
        }));
    }
    heads
}
