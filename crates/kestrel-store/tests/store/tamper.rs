//! Tamper evidence and quarantine on real stored data: each kind of tampering with the files or
//! the manifest is found by `verify` and named; retention and quarantine are chain entries; a
//! corrupt file is quarantined while the rest of the table answers.

use std::fs;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use kestrel_event::AuditRecord;
use kestrel_store::manifest::{Entry, Head, RemoveReason, HEAD_FILE, MANIFEST_FILE};
use kestrel_store::verify::{current_heads, verify, ProblemKind, TableReport, VerifyOptions};
use kestrel_store::{QueryOptions, Store, StoreConfig, Table, TableRows};

const T0: i64 = 1_795_165_201_000_000_000; // 2026-11-20T09:00:01Z
const HOUR: i64 = 3_600_000_000_000;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

fn config(dir: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.signing_key = Some(key());
    c.retention_days.insert(Table::Audit, 100_000);
    c
}

/// A store holding three sealed audit files (one per hour), shut down.
async fn sealed_store() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    for h in 0..3 {
        let rows = (0..20)
            .map(|i| AuditRecord {
                time: T0 + h * HOUR + i,
                audit_id: format!("a{h}-{i}"),
                stage: "ResponseComplete".into(),
                verb: "get".into(),
                user_name: "alice".into(),
                ..Default::default()
            })
            .collect();
        store.append(TableRows::Audit(rows)).await.unwrap();
        store.flush().unwrap();
    }
    store.shutdown();
    let mut files: Vec<PathBuf> = walk(&dir.path().join("audit"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 3);
    (dir, files)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn opts() -> VerifyOptions {
    VerifyOptions {
        exported_heads: Vec::new(),
        public_key: Some(key().verifying_key()),
    }
}

fn audit_report(dir: &Path, opts: &VerifyOptions) -> TableReport {
    verify(dir, &[Table::Audit], opts).remove(0)
}

fn kinds(r: &TableReport) -> Vec<ProblemKind> {
    r.problems.iter().map(|p| p.kind).collect()
}

fn rel(dir: &Path, file: &Path) -> String {
    file.strip_prefix(dir.join("audit"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn manifest_lines(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("audit").join(MANIFEST_FILE))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_manifest(dir: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    fs::write(dir.join("audit").join(MANIFEST_FILE), text).unwrap();
}

#[tokio::test]
async fn an_untouched_store_verifies_with_a_signed_head() {
    let (dir, _) = sealed_store().await;
    for r in verify(dir.path(), &[], &opts()) {
        assert!(r.ok(), "{}: {:?}", r.table, r.problems);
    }
    let r = audit_report(dir.path(), &opts());
    assert_eq!(r.entries, 3);
    assert_eq!(r.files_checked, 3);
    assert!(r.head_signature_verified);
    // A signature by another key does not verify.
    let other = VerifyOptions {
        public_key: Some(SigningKey::from_bytes(&[1u8; 32]).verifying_key()),
        ..opts()
    };
    assert_eq!(
        kinds(&audit_report(dir.path(), &other)),
        vec![ProblemKind::BadSignature]
    );
}

#[tokio::test]
async fn modified_deleted_swapped_and_inserted_files_are_named() {
    let (dir, files) = sealed_store().await;
    let d = dir.path();
    // Modified: one byte in the middle.
    let mut bytes = fs::read(&files[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&files[0], bytes).unwrap();
    let r = audit_report(d, &opts());
    assert_eq!(kinds(&r), vec![ProblemKind::FileModified]);
    assert_eq!(
        r.problems[0].file.as_deref(),
        Some(rel(d, &files[0]).as_str())
    );
    assert_eq!(r.problems[0].entry, Some(1));

    let (dir, files) = sealed_store().await;
    let d = dir.path();
    fs::remove_file(&files[1]).unwrap();
    let r = audit_report(d, &opts());
    assert_eq!(kinds(&r), vec![ProblemKind::FileDeleted]);
    assert!(r.problems[0].message.contains(&rel(d, &files[1])));

    let (dir, files) = sealed_store().await;
    let d = dir.path();
    let tmp = d.join("swap");
    fs::rename(&files[0], &tmp).unwrap();
    fs::rename(&files[2], &files[0]).unwrap();
    fs::rename(&tmp, &files[2]).unwrap();
    let r = audit_report(d, &opts());
    assert_eq!(
        kinds(&r),
        vec![ProblemKind::FileMoved, ProblemKind::FileMoved]
    );
    assert!(
        r.problems[0].message.contains("swapped"),
        "{:?}",
        r.problems
    );

    let (dir, files) = sealed_store().await;
    let d = dir.path();
    let inserted = files[0].with_file_name("00000000000000000099-0.parquet");
    fs::copy(&files[0], &inserted).unwrap();
    let r = audit_report(d, &opts());
    assert_eq!(kinds(&r), vec![ProblemKind::FileInserted]);
    assert_eq!(
        r.problems[0].file.as_deref(),
        Some(rel(d, &inserted).as_str())
    );
    // The store leaves an inserted file out of queries.
    let store = Store::open(config(d)).unwrap();
    let n = store
        .query("SELECT count(*) FROM audit", &QueryOptions::default())
        .await
        .unwrap();
    assert_eq!(n.rows[0][0], 60);
    assert_eq!(
        store
            .stats()
            .unrecorded_files
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn rewritten_deleted_and_reordered_entries_are_named() {
    // An entry edited to match a modified file: its hash no longer matches.
    let (dir, _) = sealed_store().await;
    let d = dir.path();
    let mut lines = manifest_lines(d);
    let mut e: Entry = serde_json::from_str(&lines[1]).unwrap();
    e.sha256 = "00".repeat(32);
    lines[1] = serde_json::to_string(&e).unwrap();
    write_manifest(d, &lines);
    let r = audit_report(d, &opts());
    assert!(
        kinds(&r).starts_with(&[ProblemKind::EntryRewritten]),
        "{:?}",
        r.problems
    );
    assert_eq!(r.problems[0].entry, Some(2));
    assert_eq!(r.problems[0].line, Some(2));

    // ... with its hash recomputed too: the next entry no longer links to it.
    let (dir, _) = sealed_store().await;
    let d = dir.path();
    let mut lines = manifest_lines(d);
    let mut e: Entry = serde_json::from_str(&lines[1]).unwrap();
    e.size += 1;
    e.hash = e.compute_hash("audit");
    lines[1] = serde_json::to_string(&e).unwrap();
    write_manifest(d, &lines);
    let r = audit_report(d, &opts());
    assert!(
        kinds(&r).contains(&ProblemKind::ChainBroken),
        "{:?}",
        r.problems
    );
    assert_eq!(
        r.problems
            .iter()
            .find(|p| p.kind == ProblemKind::ChainBroken)
            .unwrap()
            .entry,
        Some(3)
    );

    // A deleted entry.
    let (dir, _) = sealed_store().await;
    let d = dir.path();
    let mut lines = manifest_lines(d);
    lines.remove(1);
    write_manifest(d, &lines);
    let r = audit_report(d, &opts());
    assert_eq!(r.problems[0].kind, ProblemKind::EntryOutOfSequence);
    assert!(
        r.problems[0].message.contains("entries 2..2 are missing"),
        "{:?}",
        r.problems
    );

    // Reordered entries.
    let (dir, _) = sealed_store().await;
    let d = dir.path();
    let mut lines = manifest_lines(d);
    lines.swap(1, 2);
    write_manifest(d, &lines);
    let r = audit_report(d, &opts());
    assert_eq!(
        kinds(&r)[..2],
        [
            ProblemKind::EntryOutOfSequence,
            ProblemKind::EntryOutOfSequence
        ]
    );
    assert_eq!(r.problems[0].line, Some(2));
}

#[tokio::test]
async fn a_consistently_rewritten_chain_is_caught_by_signed_and_exported_heads() {
    let (dir, files) = sealed_store().await;
    let d = dir.path();
    let exported = current_heads(d, &[Table::Audit]);
    assert_eq!(exported[0].seq, 3);
    assert!(exported[0].signature.is_some());
    // The attacker swaps the last file for one of their own and rebuilds the whole chain.
    fs::write(&files[2], b"forged").unwrap();
    let (sha, size) = kestrel_store::manifest::hash_file(&files[2]).unwrap();
    let mut lines = manifest_lines(d);
    let mut last: Entry = serde_json::from_str(&lines[2]).unwrap();
    last.sha256 = sha;
    last.size = size;
    last.hash = last.compute_hash("audit");
    lines[2] = serde_json::to_string(&last).unwrap();
    write_manifest(d, &lines);
    // The chain alone is consistent and the file matches it...
    let r = audit_report(
        d,
        &VerifyOptions {
            public_key: None,
            exported_heads: Vec::new(),
        },
    );
    assert_eq!(
        kinds(&r),
        vec![ProblemKind::HeadMismatch],
        "{:?}",
        r.problems
    );
    // ... and re-signing the head with another key does not help.
    let mut head: Head =
        serde_json::from_slice(&fs::read(d.join("audit").join(HEAD_FILE)).unwrap()).unwrap();
    head.hash = last.hash.clone();
    head.sign(&SigningKey::from_bytes(&[9u8; 32]));
    fs::write(
        d.join("audit").join(HEAD_FILE),
        serde_json::to_vec(&head).unwrap(),
    )
    .unwrap();
    let with_export = VerifyOptions {
        exported_heads: exported,
        ..opts()
    };
    let r = audit_report(d, &with_export);
    assert_eq!(
        kinds(&r),
        vec![ProblemKind::BadSignature, ProblemKind::HeadMismatch],
        "{:?}",
        r.problems
    );
    assert!(r.problems[1].message.contains("exported head"));
}

#[tokio::test]
async fn retention_and_unfinished_seals_are_chain_entries() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = config(d);
    c.retention_days.insert(Table::Audit, 180);
    let store = Store::open(c.clone()).unwrap();
    let old = kestrel_event::time::now_nanos() - 200 * 86_400 * 1_000_000_000;
    let now = kestrel_event::time::now_nanos();
    for (id, t) in [("old", old), ("new", now)] {
        let r = AuditRecord {
            time: t,
            audit_id: id.into(),
            stage: "ResponseComplete".into(),
            ..Default::default()
        };
        store.append(TableRows::Audit(vec![r])).await.unwrap();
        store.flush().unwrap();
    }
    store.apply_retention();
    store.shutdown();
    let lines = manifest_lines(d);
    assert_eq!(lines.len(), 3);
    let removal: Entry = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(removal.reason, Some(RemoveReason::Retention));
    assert!(!d.join("audit").join(&removal.path).exists());
    let r = audit_report(d, &opts());
    assert!(r.ok(), "{:?}", r.problems);

    // A seal interrupted after its entries were written (the segment still in the WAL): the
    // next start rolls the entries back, seals again, and the chain still verifies.
    let store = Store::open(c.clone()).unwrap();
    let r = AuditRecord {
        time: now,
        audit_id: "again".into(),
        stage: "ResponseComplete".into(),
        ..Default::default()
    };
    store.append(TableRows::Audit(vec![r])).await.unwrap();
    std::mem::forget(store);
    let wal = d.join("wal");
    let seg = kestrel_store::wal::list_segments(&wal).unwrap()[0];
    let seg_path = kestrel_store::wal::segment_path(&wal, seg);
    let saved = fs::read(&seg_path).unwrap();
    let store = Store::open(c.clone()).unwrap();
    store.flush().unwrap();
    std::mem::forget(store);
    fs::write(&seg_path, saved).unwrap();
    let store = Store::open(c.clone()).unwrap();
    store.flush().unwrap();
    let n = store
        .query("SELECT count(*) FROM audit", &QueryOptions::default())
        .await
        .unwrap();
    assert_eq!(n.rows[0][0], 2);
    store.shutdown();
    let reasons: Vec<Option<RemoveReason>> = manifest_lines(d)
        .iter()
        .map(|l| serde_json::from_str::<Entry>(l).unwrap().reason)
        .collect();
    assert!(
        reasons.contains(&Some(RemoveReason::UnfinishedSeal)),
        "{reasons:?}"
    );
    let r = audit_report(d, &opts());
    assert!(r.ok(), "{:?}", r.problems);
}

#[tokio::test]
async fn a_corrupt_file_is_quarantined_and_the_rest_stays_queryable() {
    for damage in ["truncate", "garble"] {
        let (dir, files) = sealed_store().await;
        let d = dir.path();
        let mut bytes = fs::read(&files[1]).unwrap();
        match damage {
            "truncate" => bytes.truncate(bytes.len() / 2),
            _ => {
                // Same size, garbage in the data pages.
                let half = bytes.len() / 2;
                for b in &mut bytes[8..half] {
                    *b = 0xAB;
                }
            }
        }
        fs::write(&files[1], &bytes).unwrap();
        let store = Store::open(config(d)).unwrap();
        let r = store
            .query(
                "SELECT count(*), count(DISTINCT audit_id) FROM audit",
                &QueryOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{damage}: {e}"));
        assert_eq!(r.rows[0][0], 40, "{damage}");
        assert_eq!(r.warnings.len(), 1, "{damage}: {:?}", r.warnings);
        assert!(r.warnings[0].contains("quarantined"), "{:?}", r.warnings);
        assert!(!files[1].exists());
        let q = store.quarantined_files();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].path, rel(d, &files[1]));
        assert!(Path::new(&q[0].quarantined_to).exists());
        assert!(Path::new(&q[0].quarantined_to).starts_with(d.join("quarantine/audit")));
        assert_eq!(
            store
                .stats()
                .files_quarantined
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        // The next query has nothing to warn about.
        let r = store
            .query("SELECT count(*) FROM audit", &QueryOptions::default())
            .await
            .unwrap();
        assert!(r.warnings.is_empty());
        store.shutdown();
        let last: Entry = serde_json::from_str(manifest_lines(d).last().unwrap()).unwrap();
        assert_eq!(last.reason, Some(RemoveReason::Quarantine));
        let r = audit_report(d, &opts());
        assert!(r.ok(), "{:?}", r.problems);
        assert!(
            r.notes.iter().any(|n| n.contains("quarantine")),
            "{:?}",
            r.notes
        );
    }
}
