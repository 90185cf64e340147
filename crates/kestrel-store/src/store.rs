//! The store: appends go through the WAL (group commit, fsync) before they are acknowledged,
//! stay queryable in memory, and are sealed into Parquet by a background flusher.
//!
//! ```text
//! append ─► committer thread ─► WAL segment (fsync per group) ─► active batches ─► ack
//!                 │ rotate (size / age / shutdown)
//!                 ▼
//!           frozen batches ─► flusher thread ─► Parquet (tmp, fsync, rename) ─► delete segment
//! ```
//! Queries see sealed files, frozen and active batches as one table. A WAL segment is deleted
//! only after every file made from it is durable and recorded in its table's manifest; recovery
//! records the removal of the files of any segment still present, deletes them and replays the
//! segment, so an interrupted flush neither loses nor duplicates rows, and leaves no file
//! unrecorded.
//!
//! Every change to the sealed files is an entry of the table's hash-chained manifest
//! ([`crate::manifest`]) written *before* the change is made on disk: a seal records its files
//! before its segment is deleted; retention and quarantine record a file's removal before
//! deleting or moving it, and recovery finishes a removal a crash interrupted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use datafusion::arrow::array::RecordBatch;
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use crate::manifest::{self, Change, Manifest, Op, RemoveReason};
use crate::parquet_files::{self, segment_of};
use crate::rows::{decode_wal_entry, dedup_keys, encode_wal_entry, is_batch_key, Table, TableRows};
use crate::wal::{self, SegmentWriter};
use crate::StoreError;

/// How the store behaves; every field has a default.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Data directory: `<root>/wal/` and one directory per table.
    pub root: PathBuf,
    /// A WAL segment is sealed into Parquet once it holds this many bytes.
    pub segment_max_bytes: u64,
    /// ... or once its first entry is this old.
    pub flush_interval: Duration,
    /// How long `(auditID, stage)` keys are remembered to drop re-sent audit events.
    pub dedup_window: Duration,
    /// How long agent batch identities are remembered to store a re-sent batch once. An agent
    /// re-sends a batch until it is acknowledged, so this only has to outlast an agent that
    /// crashed between the server's commit and its acknowledgement, and stayed down.
    pub batch_dedup_window: Duration,
    /// Days of data kept per table; tables not named use their default (audit: 180).
    pub retention_days: HashMap<Table, u32>,
    /// Signs each table's manifest head (Ed25519) after every change.
    pub signing_key: Option<ed25519_dalek::SigningKey>,
    /// Appends to tables other than `audit`, `falco` and `dead_letter` are refused while the
    /// data directory's file system has less free space than this.
    pub reserve_bytes: u64,
    /// Appends to `audit`, `falco` (alerts) and `dead_letter` are refused below this much free space:
    /// smaller than `reserve_bytes`, so audit keeps flowing after other sources stop.
    pub audit_reserve_bytes: u64,
}

impl StoreConfig {
    /// Defaults for a store under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StoreConfig {
            root: root.into(),
            segment_max_bytes: 64 * 1024 * 1024,
            flush_interval: Duration::from_secs(300),
            dedup_window: Duration::from_secs(3600),
            batch_dedup_window: Duration::from_secs(24 * 3600),
            retention_days: HashMap::new(),
            signing_key: None,
            reserve_bytes: 1024 * 1024 * 1024,
            audit_reserve_bytes: 256 * 1024 * 1024,
        }
    }

    /// The free space below which appends to `table` are refused.
    pub fn reserve_for(&self, table: Table) -> u64 {
        match table {
            Table::Audit | Table::DeadLetter | Table::Falco => self.audit_reserve_bytes,
            _ => self.reserve_bytes,
        }
    }

    /// Days of data kept for `table`.
    pub fn retention_for(&self, table: Table) -> u32 {
        self.retention_days
            .get(&table)
            .copied()
            .unwrap_or_else(|| table.default_retention_days())
    }
}

/// What an append did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Per input row: `true` if stored now, `false` if it was a duplicate of a stored row.
    pub accepted: Vec<bool>,
    /// Rows stored.
    pub written: usize,
    /// Rows dropped as duplicates.
    pub duplicates: usize,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct StoreStats {
    pub rows_written: [AtomicU64; Table::ALL.len()],
    pub duplicate_rows: AtomicU64,
    pub wal_bytes: AtomicU64,
    pub wal_syncs: AtomicU64,
    pub flushes: AtomicU64,
    pub flush_errors: AtomicU64,
    pub files_written: AtomicU64,
    pub files_deleted_by_retention: AtomicU64,
    pub wal_corrupt_entries: AtomicU64,
    /// Sealed files a query did not open because their `date=`/`hour=` partition lies outside
    /// the query's time predicate.
    pub query_files_pruned: AtomicU64,
    /// Sealed files moved to quarantine because they failed to open or decode.
    pub files_quarantined: AtomicU64,
    /// Files in a table directory that no manifest entry records (left out of queries).
    pub unrecorded_files: AtomicU64,
    /// Appends refused because free space fell below the table's reserve.
    pub appends_refused_disk_full: AtomicU64,
    /// Free bytes on the data directory's file system at the last check.
    pub free_bytes: AtomicU64,
    /// Manifest appends that failed (the seal or retention is retried).
    pub manifest_errors: AtomicU64,
}

#[derive(Debug, Default)]
struct TableState {
    /// Rows of the open WAL segment.
    active: Vec<RecordBatch>,
    /// Rows of closed segments not yet sealed, by segment.
    frozen: BTreeMap<u64, Vec<RecordBatch>>,
    /// Sealed Parquet files.
    files: Vec<PathBuf>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    config: StoreConfig,
    wal_dir: PathBuf,
    tables: Vec<Mutex<TableState>>,
    /// One manifest per table. Lock order: a manifest before its table state.
    manifests: Vec<Mutex<Manifest>>,
    pub(crate) stats: StoreStats,
    /// Set after a failed WAL write or fsync: the WAL's state is unknown, so every later append
    /// is refused until a restart replays it.
    poisoned: AtomicBool,
    /// Set by shutdown: a flush that keeps failing stops retrying (its rows stay in the WAL).
    shutting_down: AtomicBool,
}

impl Shared {
    fn table(&self, t: Table) -> MutexGuard<'_, TableState> {
        self.tables[t.index()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn table_dir(&self, t: Table) -> PathBuf {
        self.config.root.join(t.name())
    }

    pub(crate) fn manifest(&self, t: Table) -> MutexGuard<'_, Manifest> {
        self.manifests[t.index()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

enum Command {
    Append {
        rows: TableRows,
        reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    },
    /// Close the open segment and hand its rows to the flusher; reply when they are sealed.
    Flush {
        reply: mpsc::Sender<()>,
    },
    Shutdown,
}

enum FlushJob {
    Segment(u64),
    /// Reply once every job queued before this one is done.
    Barrier(mpsc::Sender<()>),
}

/// The store. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Store {
    shared: Arc<Shared>,
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.shared.config.root)
            .finish()
    }
}

impl Store {
    /// Opens (or creates) the store under `config.root`, recovering whatever a crash left: torn
    /// WAL tails are cut, half-sealed files removed, unsealed segments replayed.
    pub fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let wal_dir = config.root.join("wal");
        fs::create_dir_all(&wal_dir)?;
        let mut manifests = Vec::new();
        for table in Table::ALL {
            let m = Manifest::open(
                &config.root.join(table.name()),
                table.name(),
                config.signing_key.clone(),
            )?;
            manifests.push(Mutex::new(m));
        }
        let shared = Arc::new(Shared {
            wal_dir: wal_dir.clone(),
            tables: Table::ALL.iter().map(|_| Mutex::default()).collect(),
            manifests,
            stats: StoreStats::default(),
            poisoned: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            config,
        });

        let segments = wal::list_segments(&wal_dir)?;
        let mut max_segment = segments.last().copied().unwrap_or(0);
        for table in Table::ALL {
            let seg = recover_table_files(&shared, table, &segments)?;
            max_segment = max_segment.max(seg);
        }

        let mut dedup = DedupSet::new(shared.config.dedup_window, shared.config.batch_dedup_window);
        for &seg in &segments {
            let contents = wal::read_segment(&wal::segment_path(&wal_dir, seg))?;
            let mut replayed = 0usize;
            for entry in contents.entries {
                match decode_wal_entry(&entry) {
                    Ok((table, batches)) => {
                        let mut state = shared.table(table);
                        for batch in batches {
                            for key in dedup_keys(table, &batch) {
                                dedup.insert(key);
                            }
                            replayed += batch.num_rows();
                            state.frozen.entry(seg).or_default().push(batch);
                        }
                    }
                    Err(e) => {
                        shared
                            .stats
                            .wal_corrupt_entries
                            .fetch_add(1, Ordering::Relaxed);
                        error!(segment = seg, error = %e, "wal entry with a valid checksum does not decode; its rows are skipped (the segment file is kept)");
                    }
                }
            }
            info!(segment = seg, rows = replayed, "replayed wal segment");
        }
        dedup.load_recent_files(&shared);

        let first_segment = max_segment + 1;
        let writer = SegmentWriter::create(&wal_dir, first_segment)?;

        let (cmd_tx, cmd_rx) = mpsc::channel();
        let (flush_tx, flush_rx) = mpsc::channel();
        for &seg in &segments {
            flush_tx
                .send(FlushJob::Segment(seg))
                .expect("receiver alive");
        }
        let committer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("kestrel-wal".into())
                .spawn(move || Committer::new(shared, writer, dedup, flush_tx).run(cmd_rx))?
        };
        let flusher = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("kestrel-flush".into())
                .spawn(move || run_flusher(shared, flush_rx))?
        };
        Ok(Store {
            shared,
            commands: Mutex::new(Some(cmd_tx)),
            threads: Mutex::new(vec![committer, flusher]),
        })
    }

    /// Appends rows and returns once they are durable (in the WAL and fsynced). Audit rows
    /// whose `(auditID, stage)` was stored before are dropped and reported as duplicates, and so
    /// is a whole agent batch ([`TableRows::Batch`]) whose key was stored before.
    pub async fn append(&self, rows: TableRows) -> Result<AppendOutcome, StoreError> {
        if rows.is_empty() {
            return Ok(AppendOutcome::default());
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Append { rows, reply })?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Seals everything appended so far into Parquet and waits until it is done.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (reply, rx) = mpsc::channel();
        self.send(Command::Flush { reply })?;
        rx.recv().map_err(|_| StoreError::Closed)
    }

    /// Seals everything, stops the background threads and waits for them. Appends after this
    /// fail with [`StoreError::Closed`].
    pub fn shutdown(&self) {
        self.shared.shutting_down.store(true, Ordering::Release);
        if let Some(tx) = self
            .commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = tx.send(Command::Shutdown);
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }

    fn send(&self, cmd: Command) -> Result<(), StoreError> {
        if self.shared.poisoned.load(Ordering::Acquire) {
            return Err(StoreError::Poisoned);
        }
        let guard = self.commands.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(cmd)
            .map_err(|_| StoreError::Closed)
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.shared.config.root
    }

    /// Counters for `/metrics`.
    pub fn stats(&self) -> &StoreStats {
        &self.shared.stats
    }

    /// The shared state, for query plans that outlive a borrow of the store.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Whether appends are accepted (false after a WAL failure or shutdown).
    pub fn is_writable(&self) -> bool {
        !self.shared.poisoned.load(Ordering::Acquire)
            && self
                .commands
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
    }

    /// What a query of `table` sees right now: sealed files and in-memory batches.
    pub(crate) fn snapshot(&self, table: Table) -> (Vec<PathBuf>, Vec<RecordBatch>) {
        let state = self.shared.table(table);
        let mut batches: Vec<RecordBatch> = state.frozen.values().flatten().cloned().collect();
        batches.extend(state.active.iter().cloned());
        (state.files.clone(), batches)
    }

    /// Takes a sealed file out of its table because it cannot be read: records the removal in
    /// the manifest, moves the file to `<root>/quarantine/<table>/` with a note of `reason`, and
    /// counts it. Returns where it went, or `None` if the file is no longer part of the table.
    pub fn quarantine(
        &self,
        table: Table,
        file: &Path,
        reason: &str,
    ) -> Result<Option<PathBuf>, StoreError> {
        let shared = &self.shared;
        let dir = shared.table_dir(table);
        let Some(rel) = manifest::relative_path(&dir, file) else {
            return Ok(None);
        };
        let mut manifest = shared.manifest(table);
        let Some(rec) = manifest.live().get(&rel).cloned() else {
            return Ok(None);
        };
        if let Err(e) = manifest.append(&[Change {
            op: Op::Remove,
            reason: Some(RemoveReason::Quarantine),
            path: rel.clone(),
            size: rec.size,
            sha256: rec.sha256,
        }]) {
            shared.stats.manifest_errors.fetch_add(1, Ordering::Relaxed);
            return Err(e.into());
        }
        shared.table(table).files.retain(|f| f != file);
        drop(manifest);
        let dest = move_to_quarantine(&shared.config.root, table, &dir, file, reason)?;
        shared
            .stats
            .files_quarantined
            .fetch_add(1, Ordering::Relaxed);
        error!(table = table.name(), file = %rel, quarantined_to = %dest.display(), reason, "quarantined a corrupt parquet file; the rest of the table stays queryable");
        Ok(Some(dest))
    }

    /// Files in quarantine, oldest first.
    pub fn quarantined_files(&self) -> Vec<QuarantinedFile> {
        let mut out = Vec::new();
        let dir = self.shared.config.root.join("quarantine");
        for table in fs::read_dir(&dir).into_iter().flatten().flatten() {
            for note in fs::read_dir(table.path()).into_iter().flatten().flatten() {
                let path = note.path();
                if path.extension().is_some_and(|e| e == "json") {
                    if let Ok(q) = fs::read(&path)
                        .map_err(|e| e.to_string())
                        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                    {
                        out.push(q);
                    }
                }
            }
        }
        out.sort_by(|a: &QuarantinedFile, b| a.time.cmp(&b.time));
        out
    }

    /// The current head of every table's manifest (signed when a key is configured).
    pub fn manifest_heads(&self) -> Vec<manifest::Head> {
        Table::ALL
            .iter()
            .map(|&t| {
                let mut head = self.shared.manifest(t).head();
                if let Some(key) = &self.shared.config.signing_key {
                    head.sign(key);
                }
                head
            })
            .collect()
    }

    /// The sealed files of `table` queries see, with what the manifest records of them.
    pub(crate) fn recorded_files(
        &self,
        table: Table,
    ) -> Vec<(PathBuf, Option<manifest::FileRecord>)> {
        let files = self.shared.table(table).files.clone();
        let dir = self.shared.table_dir(table);
        let manifest = self.shared.manifest(table);
        files
            .into_iter()
            .map(|f| {
                let rec = manifest::relative_path(&dir, &f)
                    .and_then(|rel| manifest.live().get(&rel).cloned());
                (f, rec)
            })
            .collect()
    }

    /// Applies retention now (it also runs in the background every few minutes).
    pub fn apply_retention(&self) {
        apply_retention(&self.shared, chrono::Utc::now().date_naive());
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Brings a table's files and its manifest into agreement after a start or a crash, and loads
/// the files queries see. Returns the highest segment number a kept file carries.
///
/// - Files of a segment still in the WAL belong to a seal that did not finish: their entries
///   (if any) are rolled back with `unfinished_seal` removals, the files deleted, and the
///   segment is replayed later.
/// - A file whose last entry removed it (a crash between the entry and the deletion or move)
///   is deleted, or moved to quarantine, now.
/// - A file no entry records is left where it is and out of queries (`kestrel verify` names
///   it), except in a table that had no manifest yet: its files are sealed data from before
///   manifests, and are recorded now.
fn recover_table_files(shared: &Shared, table: Table, segments: &[u64]) -> Result<u64, StoreError> {
    let dir = shared.table_dir(table);
    let (sealed, leftovers) = parquet_files::scan_table_dir(&dir)?;
    for tmp in leftovers {
        fs::remove_file(&tmp)?;
    }
    let in_wal = |path: &Path| segment_of(path).is_some_and(|s| segments.binary_search(&s).is_ok());
    let mut manifest = shared.manifest(table);
    let unfinished: Vec<Change> = manifest
        .live()
        .iter()
        .filter(|(rel, _)| in_wal(Path::new(rel.as_str())))
        .map(|(rel, rec)| Change {
            op: Op::Remove,
            reason: Some(RemoveReason::UnfinishedSeal),
            path: rel.clone(),
            size: rec.size,
            sha256: rec.sha256.clone(),
        })
        .collect();
    if !unfinished.is_empty() {
        info!(
            table = table.name(),
            files = unfinished.len(),
            "rolling back the manifest entries of an unfinished seal"
        );
        manifest.append(&unfinished)?;
    }
    let migrating = !manifest.existed();
    let mut adopted = Vec::new();
    let mut files = Vec::new();
    let mut max_segment = 0;
    for file in sealed {
        let Some(rel) = manifest::relative_path(&dir, &file) else {
            continue;
        };
        if in_wal(&file) {
            info!(file = %file.display(), "removing file of an unfinished flush");
            fs::remove_file(&file)?;
            continue;
        }
        if manifest.live().contains_key(&rel) {
            max_segment = max_segment.max(segment_of(&file).unwrap_or(0));
            files.push(file);
            continue;
        }
        if migrating {
            let (sha256, size) = manifest::hash_file(&file)?;
            adopted.push(Change {
                op: Op::Add,
                reason: None,
                path: rel,
                size,
                sha256,
            });
            max_segment = max_segment.max(segment_of(&file).unwrap_or(0));
            files.push(file);
            continue;
        }
        match manifest.removed_reason(&rel) {
            Some(RemoveReason::Quarantine) => {
                info!(file = %file.display(), "finishing an interrupted move to quarantine");
                move_to_quarantine(
                    &shared.config.root,
                    table,
                    &dir,
                    &file,
                    "recorded as quarantined before a crash",
                )?;
            }
            Some(reason) => {
                info!(file = %file.display(), reason = reason.as_str(), "finishing an interrupted removal");
                fs::remove_file(&file)?;
            }
            None => {
                shared
                    .stats
                    .unrecorded_files
                    .fetch_add(1, Ordering::Relaxed);
                // It may still carry a segment number; new segments must stay above it.
                max_segment = max_segment.max(segment_of(&file).unwrap_or(0));
                error!(table = table.name(), file = %file.display(), "file is not recorded in the table's manifest; it is left out of queries (run `kestrel verify`)");
            }
        }
    }
    if !adopted.is_empty() {
        warn!(table = table.name(), files = adopted.len(), "table has no manifest yet; recording its existing files (sealed before tamper evidence)");
        manifest.append(&adopted)?;
    }
    for rel in manifest.live().keys() {
        if !dir.join(rel).exists() {
            error!(table = table.name(), file = %rel, "a file the manifest records is missing; run `kestrel verify`");
        }
    }
    drop(manifest);
    shared.table(table).files = files;
    Ok(max_segment)
}

/// Where a quarantined file goes: `<root>/quarantine/<table>/<path with '/' as '_'>`.
fn quarantine_path(root: &Path, table: Table, rel: &str) -> PathBuf {
    root.join("quarantine")
        .join(table.name())
        .join(rel.replace('/', "_"))
}

/// Moves a sealed file to quarantine, with a `<name>.json` note of why and when.
fn move_to_quarantine(
    root: &Path,
    table: Table,
    table_dir: &Path,
    file: &Path,
    reason: &str,
) -> Result<PathBuf, StoreError> {
    let rel =
        manifest::relative_path(table_dir, file).unwrap_or_else(|| file.display().to_string());
    let dest = quarantine_path(root, table, &rel);
    let dest_dir = dest.parent().expect("quarantine path has a parent");
    fs::create_dir_all(dest_dir)?;
    let note = QuarantinedFile {
        table: table.name().to_owned(),
        path: rel,
        quarantined_to: dest.display().to_string(),
        reason: reason.to_owned(),
        time: kestrel_event::time::to_rfc3339(kestrel_event::time::now_nanos()),
    };
    fs::write(
        dest.with_extension("parquet.json"),
        serde_json::to_vec_pretty(&note).map_err(std::io::Error::other)?,
    )?;
    fs::rename(file, &dest)?;
    wal::sync_dir(dest_dir)?;
    if let Some(parent) = file.parent() {
        wal::sync_dir(parent)?;
    }
    Ok(dest)
}

/// A sealed file taken out of its table because it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuarantinedFile {
    pub table: String,
    /// Its path in the table directory.
    pub path: String,
    /// Where it is now.
    pub quarantined_to: String,
    /// What was wrong with it.
    pub reason: String,
    /// When it was quarantined (RFC 3339).
    pub time: String,
}

/// Free bytes for unprivileged writers on the file system holding `path`; `None` (and no
/// refusal) when it cannot be measured.
pub fn free_bytes(path: &Path) -> Option<u64> {
    match rustix::fs::statvfs(path) {
        Ok(s) => Some(s.f_bavail.saturating_mul(s.f_frsize)),
        Err(e) => {
            debug!(path = %path.display(), error = %e, "cannot measure free space");
            None
        }
    }
}

/// Remembers recently stored `(auditID, stage)` keys and agent batch identities, each for its
/// own window of wall-clock time.
struct DedupSet {
    window: Duration,
    batch_window: Duration,
    seen: HashMap<String, Instant>,
    seen_batches: HashMap<String, Instant>,
    last_evict: Instant,
}

impl DedupSet {
    fn new(window: Duration, batch_window: Duration) -> Self {
        DedupSet {
            window,
            batch_window,
            seen: HashMap::new(),
            seen_batches: HashMap::new(),
            last_evict: Instant::now(),
        }
    }

    fn contains(&self, key: &str) -> bool {
        if is_batch_key(key) {
            self.seen_batches.contains_key(key)
        } else {
            self.seen.contains_key(key)
        }
    }

    fn insert(&mut self, key: String) {
        if is_batch_key(&key) {
            self.seen_batches.insert(key, Instant::now());
        } else {
            self.seen.insert(key, Instant::now());
        }
    }

    fn evict_expired(&mut self) {
        if self.last_evict.elapsed() < Duration::from_secs(30) {
            return;
        }
        let (window, batch_window) = (self.window, self.batch_window);
        self.seen.retain(|_, at| at.elapsed() < window);
        self.seen_batches
            .retain(|_, at| at.elapsed() < batch_window);
        self.last_evict = Instant::now();
    }

    /// Loads the keys of files sealed within the windows (by modification time), so a restart
    /// does not forget what was acknowledged just before it.
    fn load_recent_files(&mut self, shared: &Shared) {
        for table in Table::ALL {
            let (window, columns): (Duration, &[&str]) = if table.has_batch_id() {
                (self.batch_window, &["batch_id"])
            } else if table == Table::Audit {
                (self.window, &["audit_id", "stage"])
            } else if table == Table::Falco {
                (self.window, &["uuid"])
            } else {
                continue;
            };
            let files = shared.table(table).files.clone();
            let cutoff = SystemTime::now() - window;
            for file in files {
                let recent = fs::metadata(&file)
                    .and_then(|m| m.modified())
                    .map(|m| m >= cutoff)
                    .unwrap_or(true);
                if !recent {
                    continue;
                }
                match parquet_files::read_file(&file, columns) {
                    Ok(batches) => {
                        for b in batches {
                            for key in dedup_keys(table, &b) {
                                self.insert(key);
                            }
                        }
                    }
                    Err(e) => {
                        warn!(file = %file.display(), error = %e, "cannot read de-duplication keys from file")
                    }
                }
            }
        }
        debug!(
            keys = self.seen.len(),
            batches = self.seen_batches.len(),
            "de-duplication keys loaded"
        );
    }
}

struct Committer {
    shared: Arc<Shared>,
    writer: SegmentWriter,
    opened: Instant,
    dedup: DedupSet,
    flush_jobs: mpsc::Sender<FlushJob>,
}

impl Committer {
    fn new(
        shared: Arc<Shared>,
        writer: SegmentWriter,
        dedup: DedupSet,
        flush_jobs: mpsc::Sender<FlushJob>,
    ) -> Self {
        Committer {
            shared,
            writer,
            opened: Instant::now(),
            dedup,
            flush_jobs,
        }
    }

    fn run(mut self, commands: mpsc::Receiver<Command>) {
        loop {
            let first = match commands.recv_timeout(Duration::from_secs(1)) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => {
                    self.rotate_if_due();
                    self.dedup.evict_expired();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // Group commit: everything already waiting shares one fsync.
            let mut group = vec![first];
            while group.len() < 4096 {
                match commands.try_recv() {
                    Ok(c) => group.push(c),
                    Err(_) => break,
                }
            }
            let mut appends = Vec::new();
            let mut control = Vec::new();
            for c in group {
                match c {
                    Command::Append { rows, reply } => appends.push((rows, reply)),
                    other => control.push(other),
                }
            }
            self.commit(appends);
            self.rotate_if_due();
            for c in control {
                match c {
                    Command::Flush { reply } => {
                        self.rotate();
                        let _ = self.flush_jobs.send(FlushJob::Barrier(reply));
                    }
                    Command::Shutdown => {
                        self.close();
                        return;
                    }
                    Command::Append { .. } => unreachable!("appends were taken out above"),
                }
            }
        }
        self.close();
    }

    fn commit(
        &mut self,
        appends: Vec<(
            TableRows,
            oneshot::Sender<Result<AppendOutcome, StoreError>>,
        )>,
    ) {
        if appends.is_empty() {
            return;
        }
        if self.shared.poisoned.load(Ordering::Acquire) {
            for (_, reply) in appends {
                let _ = reply.send(Err(StoreError::Poisoned));
            }
            return;
        }
        let mut pending = Vec::with_capacity(appends.len());
        let mut group_keys: HashSet<String> = HashSet::new();
        let mut failure: Option<String> = None;
        let free = free_bytes(&self.shared.config.root);
        if let Some(free) = free {
            self.shared.stats.free_bytes.store(free, Ordering::Relaxed);
        }
        for (mut rows, reply) in appends {
            let table = rows.table();
            let reserve = self.shared.config.reserve_for(table);
            if let Some(free) = free.filter(|&f| f < reserve) {
                self.shared
                    .stats
                    .appends_refused_disk_full
                    .fetch_add(1, Ordering::Relaxed);
                warn!(
                    table = table.name(),
                    free_bytes = free,
                    reserve_bytes = reserve,
                    "refusing an append: the data directory is nearly full"
                );
                let _ = reply.send(Err(StoreError::DiskFull {
                    table: table.name(),
                    free_bytes: free,
                    reserve_bytes: reserve,
                }));
                continue;
            }
            let mut accepted = vec![true; rows.len()];
            let mut duplicates = 0;
            if let Some(key) = rows.batch_key() {
                if self.dedup.contains(&key) || !group_keys.insert(key) {
                    accepted.iter_mut().for_each(|ok| *ok = false);
                    duplicates = accepted.len();
                }
            }
            for (i, ok) in accepted.iter_mut().enumerate() {
                if let Some(key) = rows.dedup_key(i) {
                    if self.dedup.contains(&key) || !group_keys.insert(key) {
                        *ok = false;
                        duplicates += 1;
                    }
                }
            }
            if duplicates > 0 {
                rows.retain_indices(&accepted);
            }
            let written = rows.len();
            let batch = (written > 0).then(|| rows.to_batch());
            drop(rows);
            if let (Some(batch), None) = (&batch, &failure) {
                match encode_wal_entry(table, batch) {
                    Ok(payload) => {
                        if let Err(e) = self.writer.append(&payload) {
                            failure = Some(e.to_string());
                        }
                        self.shared
                            .stats
                            .wal_bytes
                            .fetch_add(payload.len() as u64 + 8, Ordering::Relaxed);
                    }
                    Err(e) => failure = Some(e.to_string()),
                }
            }
            let outcome = AppendOutcome {
                written,
                accepted,
                duplicates,
            };
            pending.push((table, batch, outcome, reply));
        }
        if failure.is_none() {
            if let Err(e) = self.writer.sync() {
                failure = Some(e.to_string());
            }
            self.shared.stats.wal_syncs.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(msg) = failure {
            error!(error = %msg, "wal write failed; refusing appends until restart");
            self.shared.poisoned.store(true, Ordering::Release);
            for (_, _, _, reply) in pending {
                let _ = reply.send(Err(StoreError::Wal(msg.clone())));
            }
            return;
        }
        for key in group_keys {
            self.dedup.insert(key);
        }
        for (table, batch, outcome, reply) in pending {
            if let Some(batch) = batch {
                self.shared.table(table).active.push(batch);
            }
            self.shared.stats.rows_written[table.index()]
                .fetch_add(outcome.written as u64, Ordering::Relaxed);
            self.shared
                .stats
                .duplicate_rows
                .fetch_add(outcome.duplicates as u64, Ordering::Relaxed);
            let _ = reply.send(Ok(outcome));
        }
    }

    fn rotate_if_due(&mut self) {
        let bytes = self.writer.bytes();
        if bytes > 0
            && (bytes >= self.shared.config.segment_max_bytes
                || self.opened.elapsed() >= self.shared.config.flush_interval)
        {
            self.rotate();
        }
    }

    /// Closes the open segment (if it has entries), opens the next one and queues the closed
    /// one for sealing.
    fn rotate(&mut self) {
        if self.writer.bytes() == 0 || self.shared.poisoned.load(Ordering::Acquire) {
            return;
        }
        let old = self.writer.id();
        match SegmentWriter::create(&self.shared.wal_dir, old + 1) {
            Ok(w) => self.writer = w,
            Err(e) => {
                warn!(error = %e, "cannot open a new wal segment; will retry");
                return;
            }
        }
        self.opened = Instant::now();
        self.freeze(old);
    }

    /// At shutdown: queues the open segment for sealing (the flusher deletes it once sealed),
    /// or deletes it when empty. After a WAL failure the segment stays for the next start to
    /// replay.
    fn close(self) {
        if self.writer.bytes() == 0 {
            let _ = fs::remove_file(wal::segment_path(&self.shared.wal_dir, self.writer.id()));
        } else if !self.shared.poisoned.load(Ordering::Acquire) {
            self.freeze(self.writer.id());
        }
    }

    /// Moves the rows of `segment` from `active` to `frozen` and queues the segment for sealing.
    fn freeze(&self, segment: u64) {
        for table in Table::ALL {
            let mut state = self.shared.table(table);
            let active = std::mem::take(&mut state.active);
            if !active.is_empty() {
                state.frozen.entry(segment).or_default().extend(active);
            }
        }
        let _ = self.flush_jobs.send(FlushJob::Segment(segment));
    }
}

fn run_flusher(shared: Arc<Shared>, jobs: mpsc::Receiver<FlushJob>) {
    let mut last_retention = None::<Instant>;
    loop {
        if last_retention.is_none_or(|t: Instant| t.elapsed() > Duration::from_secs(600)) {
            apply_retention(&shared, chrono::Utc::now().date_naive());
            last_retention = Some(Instant::now());
        }
        match jobs.recv_timeout(Duration::from_secs(60)) {
            Ok(FlushJob::Segment(seg)) => {
                let mut backoff = Duration::from_millis(200);
                while let Err(e) = seal_segment(&shared, seg) {
                    shared.stats.flush_errors.fetch_add(1, Ordering::Relaxed);
                    error!(segment = seg, error = %e, "sealing wal segment into parquet failed; its rows stay in the wal and in memory, retrying");
                    if shared.shutting_down.load(Ordering::Acquire) {
                        warn!(segment = seg, "giving up sealing at shutdown; the wal keeps the rows for the next start");
                        break;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
            Ok(FlushJob::Barrier(reply)) => {
                let _ = reply.send(());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Writes the frozen rows of segment `seg` to Parquet, records the files in their tables'
/// manifests, publishes them to queries, then deletes the segment (which commits the seal).
fn seal_segment(shared: &Shared, seg: u64) -> Result<(), StoreError> {
    let mut written = Vec::new();
    for table in Table::ALL {
        let batches = shared
            .table(table)
            .frozen
            .get(&seg)
            .cloned()
            .unwrap_or_default();
        let files = parquet_files::write_partitioned(
            &shared.table_dir(table),
            &table.schema(),
            &batches,
            seg,
        )?;
        written.push((table, files));
    }
    for (table, files) in &written {
        let dir = shared.table_dir(*table);
        let mut manifest = shared.manifest(*table);
        // A retried seal rewrites the same files; one already recorded with these bytes is not
        // recorded twice.
        let changes: Vec<Change> = files
            .iter()
            .filter_map(|f| {
                let path = manifest::relative_path(&dir, &f.path)?;
                let recorded = manifest
                    .live()
                    .get(&path)
                    .is_some_and(|r| r.sha256 == f.sha256 && r.size == f.size);
                (!recorded).then(|| Change {
                    op: Op::Add,
                    reason: None,
                    path,
                    size: f.size,
                    sha256: f.sha256.clone(),
                })
            })
            .collect();
        if let Err(e) = manifest.append(&changes) {
            shared.stats.manifest_errors.fetch_add(1, Ordering::Relaxed);
            return Err(e.into());
        }
    }
    for (table, files) in written {
        let mut state = shared.table(table);
        state.frozen.remove(&seg);
        shared
            .stats
            .files_written
            .fetch_add(files.len() as u64, Ordering::Relaxed);
        for f in files {
            if !state.files.contains(&f.path) {
                state.files.push(f.path);
            }
        }
    }
    let path = wal::segment_path(&shared.wal_dir, seg);
    if path.exists() {
        fs::remove_file(&path)?;
        wal::sync_dir(&shared.wal_dir)?;
    }
    shared.stats.flushes.fetch_add(1, Ordering::Relaxed);
    debug!(segment = seg, "sealed wal segment");
    Ok(())
}

/// The day of a file's `date=` partition, read from its path relative to the table directory.
fn partition_date(rel: &str) -> Option<chrono::NaiveDate> {
    let part = rel.split('/').next()?.strip_prefix("date=")?;
    chrono::NaiveDate::parse_from_str(part, "%Y-%m-%d").ok()
}

/// Deletes the files of `date=` partitions older than each table's retention: each removal is
/// recorded in the manifest first, then the file deleted, then emptied directories. Files no
/// entry records are left for `kestrel verify` to report.
fn apply_retention(shared: &Shared, today: chrono::NaiveDate) {
    for table in Table::ALL {
        let days = shared.config.retention_for(table);
        let cutoff = today - chrono::Days::new(u64::from(days));
        let dir = shared.table_dir(table);
        let mut manifest = shared.manifest(table);
        let changes: Vec<Change> = manifest
            .live()
            .iter()
            .filter(|(rel, _)| partition_date(rel).is_some_and(|d| d < cutoff))
            .map(|(rel, rec)| Change {
                op: Op::Remove,
                reason: Some(RemoveReason::Retention),
                path: rel.clone(),
                size: rec.size,
                sha256: rec.sha256.clone(),
            })
            .collect();
        if changes.is_empty() {
            continue;
        }
        if let Err(e) = manifest.append(&changes) {
            shared.stats.manifest_errors.fetch_add(1, Ordering::Relaxed);
            warn!(table = table.name(), error = %e, "retention could not record its removals; nothing deleted, retrying later");
            continue;
        }
        drop(manifest);
        let paths: Vec<PathBuf> = changes.iter().map(|c| dir.join(&c.path)).collect();
        shared.table(table).files.retain(|f| !paths.contains(f));
        let mut partitions = std::collections::BTreeSet::new();
        for path in &paths {
            match fs::remove_file(path) {
                Ok(()) => {
                    shared
                        .stats
                        .files_deleted_by_retention
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(file = %path.display(), error = %e, "retention could not delete a file it recorded as removed; the next start deletes it")
                }
            }
            if let Some(hour) = path.parent() {
                partitions.insert(hour.to_path_buf());
            }
        }
        // Directories go only when empty (a file no entry records stays as evidence).
        for hour in &partitions {
            let _ = fs::remove_dir(hour);
            if let Some(date) = hour.parent() {
                let _ = fs::remove_dir(date);
            }
        }
        info!(
            table = table.name(),
            files = paths.len(),
            "retention removed files older than {days} days"
        );
    }
}
