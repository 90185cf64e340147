//! Stateful detection on the server: one [`Detector`] shared by every ingest path, so
//! thresholds, sequences, first-seen history, baselines and suppressions see all events, and
//! its state saved to `<data_dir>/detector-state.json` so a restart does not reset them.
//!
//! The state is saved every `rules.state_save_interval` when it changed, and at shutdown. The
//! file is written whole to a temporary name, fsynced and renamed, so a crash leaves either the
//! old or the new snapshot. A snapshot that cannot be read is moved aside (never deleted) and
//! detection starts with empty state, saying so.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kestrel_event::AuditEvent;
use kestrel_rules::{Detector, Event, RuleMatch, RuleSet, Snapshot, StateStats};
use tracing::{info, warn};

/// The snapshot's file name inside the data directory.
pub const STATE_FILE: &str = "detector-state.json";

/// Why the detector state could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("encoding the detector state: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The server's detector and where its state lives.
#[derive(Debug)]
pub struct Detection {
    detector: Mutex<Detector>,
    path: PathBuf,
    /// Set by every evaluation, cleared by a save.
    changed: AtomicBool,
    saves: AtomicU64,
}

impl Detection {
    /// Starts a detector for `rules`, restoring the state saved in `data_dir` if there is one.
    pub fn open(data_dir: &Path, rules: Arc<RuleSet>) -> Detection {
        let path = data_dir.join(STATE_FILE);
        let mut detector = Detector::new(rules);
        match read_snapshot(&path) {
            Ok(None) => {}
            Ok(Some(snapshot)) => {
                let report = detector.restore(snapshot);
                let stats = detector.stats();
                info!(
                    rules = report.restored,
                    keys = stats.keys,
                    "restored the state of stateful rules"
                );
                if !report.dropped.is_empty() {
                    info!(rules = ?report.dropped, "dropped saved state of rules that are no longer loaded or no longer stateful");
                }
            }
            Err(reason) => {
                let aside = path.with_extension(format!(
                    "json.unreadable-{}",
                    kestrel_event::time::now_nanos()
                ));
                let moved = std::fs::rename(&path, &aside);
                warn!(
                    file = %path.display(),
                    kept_as = %aside.display(),
                    moved_aside = moved.is_ok(),
                    %reason,
                    "cannot read the saved state of stateful rules; starting with empty state"
                );
            }
        }
        Detection {
            detector: Mutex::new(detector),
            path,
            changed: AtomicBool::new(false),
            saves: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Detector> {
        self.detector.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`Detection::evaluate`] for audit events, handing each match its audit event.
    pub fn evaluate_audit<'e>(
        &self,
        rules: &Arc<RuleSet>,
        events: impl IntoIterator<Item = (&'e AuditEvent, i64)>,
        mut on_match: impl FnMut(&'e AuditEvent, RuleMatch),
    ) {
        self.evaluate(
            rules,
            events.into_iter().map(|(e, t)| (Event::Audit(e), t)),
            |event, m| {
                if let Event::Audit(e) = *event {
                    on_match(e, m);
                }
            },
        );
    }

    /// Evaluates events of any source in order with `rules` (the rules in force; a reload swaps
    /// them in and keeps the state of rules that stay stateful), each at its own time (the
    /// second item), so replayed and live events count alike. The state is shared by every
    /// source, so sequences can cross sources.
    pub fn evaluate<'e>(
        &self,
        rules: &Arc<RuleSet>,
        events: impl IntoIterator<Item = (Event<'e>, i64)>,
        mut on_match: impl FnMut(&Event<'e>, RuleMatch),
    ) {
        let mut detector = self.lock();
        if !Arc::ptr_eq(detector.rules(), rules) {
            detector.set_rules(Arc::clone(rules));
        }
        for (event, now) in events {
            for m in detector.evaluate(&event, now) {
                on_match(&event, m);
            }
        }
        self.changed.store(true, Ordering::Relaxed);
    }

    /// Counters of the state held.
    pub fn stats(&self) -> StateStats {
        self.lock().stats()
    }

    /// Snapshots written since start.
    pub fn saves(&self) -> u64 {
        self.saves.load(Ordering::Relaxed)
    }

    /// Saves the state if it changed since the last save; returns whether it wrote.
    pub fn save(&self) -> Result<bool, SaveError> {
        if !self.changed.swap(false, Ordering::Relaxed) {
            return Ok(false);
        }
        let snapshot = self.lock().snapshot();
        let result = write_snapshot(&self.path, &snapshot);
        if result.is_err() {
            // Try again next time.
            self.changed.store(true, Ordering::Relaxed);
        } else {
            self.saves.fetch_add(1, Ordering::Relaxed);
        }
        result.map(|()| true)
    }

    /// Saves the state every `every` until the runtime stops.
    pub fn spawn_saver(self: &Arc<Self>, every: Duration) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let this = Arc::clone(&this);
                match tokio::task::spawn_blocking(move || this.save()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => warn!(error = %e, "cannot save the state of stateful rules"),
                    Err(e) => warn!(error = %e, "saving the state of stateful rules failed"),
                }
            }
        });
    }
}

fn read_snapshot(path: &Path) -> Result<Option<Snapshot>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| e.to_string())
}

fn write_snapshot(path: &Path, snapshot: &Snapshot) -> Result<(), SaveError> {
    use std::io::Write;
    let bytes = serde_json::to_vec(snapshot)?;
    let tmp = path.with_extension("json.tmp");
    let io = |source| SaveError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    const THRESHOLD: &str = "
- rule: Forbidden burst
  desc: many forbidden requests by one user
  condition: ka.response.code = 403
  output: forbidden burst by %ka.user.name
  priority: WARNING
  source: k8s_audit
  threshold:
    count: 3
    window: 5m
    group_by: [ka.user.name]
";

    fn rules() -> Arc<RuleSet> {
        let (rs, report) = RuleSet::from_sources(&[("t.yaml".to_string(), THRESHOLD.to_string())]);
        assert!(report.is_ok(), "{report}");
        Arc::new(rs)
    }

    fn forbidden(user: &str) -> AuditEvent {
        serde_json::from_value(serde_json::json!({
            "auditID": "x", "stage": "ResponseComplete", "verb": "get", "requestURI": "/x",
            "user": {"username": user},
            "objectRef": {"resource": "secrets", "namespace": "a", "name": "n"},
            "responseStatus": {"code": 403}
        }))
        .unwrap()
    }

    fn fired(d: &Detection, rules: &Arc<RuleSet>, user: &str, t: i64) -> Vec<String> {
        let e = forbidden(user);
        let mut out = Vec::new();
        d.evaluate_audit(rules, [(&e, t * SEC)], |_, m| out.push(m.output));
        out
    }

    #[test]
    fn state_survives_a_restart_through_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let rules = rules();
        let d = Detection::open(dir.path(), Arc::clone(&rules));
        assert!(fired(&d, &rules, "alice", 1).is_empty());
        assert!(fired(&d, &rules, "alice", 2).is_empty());
        assert!(d.save().unwrap());
        assert!(!d.save().unwrap(), "nothing changed since the last save");
        drop(d);

        // A new process: the third forbidden request within the window fires.
        let d = Detection::open(dir.path(), Arc::clone(&rules));
        assert_eq!(d.stats().keys, 1);
        assert_eq!(
            fired(&d, &rules, "alice", 3),
            ["forbidden burst by alice".to_string()]
        );
        // Without the snapshot it would not have.
        let empty = tempfile::tempdir().unwrap();
        let fresh = Detection::open(empty.path(), Arc::clone(&rules));
        assert!(fired(&fresh, &rules, "alice", 3).is_empty());
    }

    #[test]
    fn an_unreadable_snapshot_is_kept_aside_and_detection_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), b"{ not json").unwrap();
        let rules = rules();
        let d = Detection::open(dir.path(), Arc::clone(&rules));
        assert_eq!(d.stats().keys, 0);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("unreadable"))
            .collect();
        assert_eq!(aside.len(), 1, "the bad snapshot is kept for a human");
        assert_eq!(
            std::fs::read(dir.path().join(&aside[0])).unwrap(),
            b"{ not json"
        );
        // It still works and saves a good snapshot over the missing one.
        fired(&d, &rules, "bob", 1);
        assert!(d.save().unwrap());
        assert!(read_snapshot(&dir.path().join(STATE_FILE))
            .unwrap()
            .is_some());
    }

    #[test]
    fn reloaded_rules_keep_the_state_of_rules_still_stateful() {
        let dir = tempfile::tempdir().unwrap();
        let d = Detection::open(dir.path(), rules());
        let first = rules();
        fired(&d, &first, "carol", 1);
        fired(&d, &first, "carol", 2);
        // A reload compiles a new rule set with the same rule: its counts carry over.
        let reloaded = rules();
        assert_eq!(
            fired(&d, &reloaded, "carol", 3),
            ["forbidden burst by carol".to_string()]
        );
    }
}
