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
//! only after every file made from it is durable; recovery deletes the files of any segment
//! still present and replays it, so an interrupted flush neither loses nor duplicates rows.

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

    fn table_dir(&self, t: Table) -> PathBuf {
        self.config.root.join(t.name())
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
        let shared = Arc::new(Shared {
            wal_dir: wal_dir.clone(),
            tables: Table::ALL.iter().map(|_| Mutex::default()).collect(),
            stats: StoreStats::default(),
            poisoned: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            config,
        });

        let segments = wal::list_segments(&wal_dir)?;
        let mut max_segment = segments.last().copied().unwrap_or(0);
        for table in Table::ALL {
            let (sealed, leftovers) = parquet_files::scan_table_dir(&shared.table_dir(table))?;
            for tmp in leftovers {
                fs::remove_file(&tmp)?;
            }
            let mut state = shared.table(table);
            for file in sealed {
                match segment_of(&file) {
                    Some(seg) if segments.binary_search(&seg).is_ok() => {
                        // Sealed from a segment that is still in the WAL: the flush did not
                        // finish. The segment is replayed below, so this file goes.
                        info!(file = %file.display(), "removing file of an unfinished flush");
                        fs::remove_file(&file)?;
                    }
                    seg => {
                        max_segment = max_segment.max(seg.unwrap_or(0));
                        state.files.push(file);
                    }
                }
            }
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
        for (mut rows, reply) in appends {
            let table = rows.table();
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

/// Writes the frozen rows of segment `seg` to Parquet, publishes the files, then deletes the
/// segment.
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
    for (table, files) in written {
        let mut state = shared.table(table);
        state.frozen.remove(&seg);
        shared
            .stats
            .files_written
            .fetch_add(files.len() as u64, Ordering::Relaxed);
        state.files.extend(files);
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

/// Deletes whole `date=` partitions older than each table's retention.
fn apply_retention(shared: &Shared, today: chrono::NaiveDate) {
    for table in Table::ALL {
        let days = shared.config.retention_for(table);
        let cutoff = today - chrono::Days::new(u64::from(days));
        let dir = shared.table_dir(table);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(date) = name
                .to_str()
                .and_then(|n| n.strip_prefix("date="))
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            else {
                continue;
            };
            if date >= cutoff {
                continue;
            }
            let part = entry.path();
            let mut state = shared.table(table);
            let before = state.files.len();
            state.files.retain(|f| !f.starts_with(&part));
            let removed = before - state.files.len();
            drop(state);
            match fs::remove_dir_all(&part) {
                Ok(()) => {
                    info!(table = table.name(), partition = %part.display(), files = removed, "retention removed partition");
                    shared
                        .stats
                        .files_deleted_by_retention
                        .fetch_add(removed as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    warn!(partition = %part.display(), error = %e, "retention could not remove partition")
                }
            }
        }
    }
}
