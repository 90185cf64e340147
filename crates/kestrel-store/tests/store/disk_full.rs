//! A nearly full disk: lower-value tables are refused first, audit keeps flowing until its
//! smaller reserve, and nothing stored before is harmed. Runs on a real small file system (a
//! tmpfs the test mounts, which needs root); without root it says so and checks nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kestrel_event::AuditRecord;
use kestrel_store::{free_bytes, QueryOptions, Store, StoreConfig, StoreError, TableRows};

const MIB: u64 = 1024 * 1024;
const T0: i64 = 1_795_165_201_000_000_000;

/// A tmpfs of `size` mounted on a temporary directory, unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size_mib: u64) -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(SmallFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Grows (or shrinks) a filler file until about `target` bytes are free.
fn leave_free(fs_root: &Path, filler: &PathBuf, target: u64) {
    let free = free_bytes(fs_root).unwrap();
    let current = fs::metadata(filler).map(|m| m.len()).unwrap_or(0);
    let want = (current + free).saturating_sub(target);
    let f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(filler)
        .unwrap();
    if want < current {
        f.set_len(want).unwrap();
    } else {
        // tmpfs allocates on write, not on set_len: write the bytes.
        use std::io::{Seek, SeekFrom, Write};
        let mut f = f;
        f.seek(SeekFrom::Start(current)).unwrap();
        let chunk = vec![0xEEu8; MIB as usize];
        let mut left = want - current;
        while left > 0 {
            let n = left.min(MIB) as usize;
            f.write_all(&chunk[..n]).unwrap();
            left -= n as u64;
        }
        f.sync_all().unwrap();
    }
    let now = free_bytes(fs_root).unwrap();
    assert!(
        now.abs_diff(target) < 2 * MIB,
        "free {now}, wanted {target}"
    );
}

fn audit(id: &str) -> TableRows {
    TableRows::Audit(vec![AuditRecord {
        time: T0,
        audit_id: id.into(),
        stage: "ResponseComplete".into(),
        ..Default::default()
    }])
}

fn logs(id: &str) -> Vec<TableRows> {
    use kestrel_event::{BatchOrigin, ContainerLog, IngestBatch, LogStream};
    let batch = IngestBatch {
        version: kestrel_event::INGEST_FORMAT_VERSION,
        id: id.into(),
        origin: BatchOrigin {
            agent: "n1".into(),
            input: "pods".into(),
            stream: "s".into(),
            ..Default::default()
        },
        container_logs: vec![ContainerLog {
            time: T0,
            stream: LogStream::Stdout,
            message: "hello".into(),
            truncated: false,
        }],
        ..Default::default()
    };
    kestrel_store::ingest_batches(&batch)
        .into_iter()
        .map(|(table, rows)| TableRows::Batch {
            table,
            rows,
            batch_key: id.into(),
        })
        .collect()
}

async fn count(store: &Store, table: &str) -> i64 {
    store
        .query(
            &format!("SELECT count(*) FROM {table}"),
            &QueryOptions::default(),
        )
        .await
        .unwrap()
        .rows[0][0]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn low_value_sources_are_refused_first_and_audit_last() {
    let Some(small) = SmallFs::mount(48) else {
        eprintln!(
            "note: cannot mount a tmpfs (needs root); the disk-full test checks nothing here"
        );
        return;
    };
    let root = small.path().join("data");
    let filler = small.path().join("filler");
    let mut config = StoreConfig::new(&root);
    config.reserve_bytes = 24 * MIB;
    config.audit_reserve_bytes = 8 * MIB;
    let store = Store::open(config.clone()).unwrap();
    store.append(audit("before")).await.unwrap();
    for rows in logs("logs-before") {
        store.append(rows).await.unwrap();
    }
    store.flush().unwrap();

    // Between the two reserves: logs are refused, audit is stored.
    leave_free(small.path(), &filler, 16 * MIB);
    for rows in logs("logs-refused") {
        match store.append(rows).await {
            Err(StoreError::DiskFull {
                table,
                reserve_bytes,
                ..
            }) => {
                assert_eq!(table, "container_log");
                assert_eq!(reserve_bytes, 24 * MIB);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    store.append(audit("audit-kept")).await.unwrap();

    // Below the audit reserve: audit is refused too.
    leave_free(small.path(), &filler, 4 * MIB);
    let err = store.append(audit("audit-refused")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::DiskFull { table: "audit", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("retry later"));
    // Queries still answer, and the refusals did not poison the store.
    assert_eq!(count(&store, "audit").await, 2);
    assert!(store.is_writable());
    assert_eq!(
        store
            .stats()
            .appends_refused_disk_full
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );

    // Space comes back: everything is accepted again, and nothing stored was harmed.
    fs::remove_file(&filler).unwrap();
    store.append(audit("audit-after")).await.unwrap();
    for rows in logs("logs-after") {
        store.append(rows).await.unwrap();
    }
    store.shutdown();
    let store = Store::open(config).unwrap();
    assert_eq!(count(&store, "audit").await, 3);
    assert_eq!(count(&store, "container_log").await, 2);
    let reports = kestrel_store::verify::verify(&root, &[], &Default::default());
    assert!(reports.iter().all(|r| r.ok()), "{reports:?}");
    store.shutdown();
}
