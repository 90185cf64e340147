//! Finding the files to tail: glob patterns for the periodic scan, inotify for changes between
//! scans.
//!
//! inotify events are not queued one by one: the watcher's callback adds the changed path to a
//! set and wakes the tailer, so a storm of writes while the tailer is blocked (backpressure)
//! costs memory per distinct path, not per event.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use glob::{MatchOptions, Pattern};
use notify::{EventKind, RecursiveMode, Watcher};

use super::TailError;

const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// Which paths are tailed.
#[derive(Debug)]
pub(crate) struct Patterns {
    include: Vec<(String, Pattern)>,
    exclude: Vec<Pattern>,
}

impl Patterns {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, TailError> {
        let compile = |p: &String| {
            Pattern::new(p)
                .map_err(|e| TailError::Config(vec![format!("invalid pattern {p:?}: {e}")]))
        };
        Ok(Patterns {
            include: include
                .iter()
                .map(|p| Ok((p.clone(), compile(p)?)))
                .collect::<Result<_, TailError>>()?,
            exclude: exclude.iter().map(compile).collect::<Result<_, _>>()?,
        })
    }

    /// Whether a path is to be tailed: matches an include pattern, no exclude pattern, and is not
    /// compressed (`.gz`).
    pub fn matches(&self, path: &Path) -> bool {
        if path.extension().is_some_and(|e| e == "gz") {
            return false;
        }
        self.include
            .iter()
            .any(|(_, p)| p.matches_path_with(path, MATCH))
            && !self
                .exclude
                .iter()
                .any(|p| p.matches_path_with(path, MATCH))
    }

    /// Every existing path that matches, in a stable order.
    pub fn scan(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        for (text, _) in &self.include {
            let Ok(paths) = glob::glob_with(text, MATCH) else {
                continue;
            };
            for path in paths.flatten() {
                if self.matches(&path) && seen.insert(path.clone()) {
                    found.push(path);
                }
            }
        }
        found
    }

    /// The directories to watch: the literal part of each include pattern, before its first
    /// wildcard.
    pub fn watch_roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = Vec::new();
        for (text, _) in &self.include {
            let mut root = PathBuf::new();
            let path = Path::new(text);
            let count = path.components().count();
            for (i, c) in path.components().enumerate() {
                let s = c.as_os_str().to_string_lossy();
                if i + 1 == count || s.contains(['*', '?', '[']) {
                    break;
                }
                if !matches!(c, Component::CurDir) {
                    root.push(c);
                }
            }
            if !roots.iter().any(|r| root.starts_with(r)) {
                roots.retain(|r| !r.starts_with(&root));
                roots.push(root);
            }
        }
        roots
    }
}

/// Paths changed since the tailer last looked, filled by the inotify callback.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub paths: HashSet<PathBuf>,
    /// A directory appeared, or events were lost: scan everything.
    pub rescan: bool,
}

/// Wakes the tailer's loop: inotify changes and shutdown.
#[derive(Clone)]
pub(crate) struct Waker {
    tx: SyncSender<()>,
}

impl Waker {
    pub fn new() -> (Waker, Receiver<()>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        (Waker { tx }, rx)
    }

    pub fn wake(&self) {
        match self.tx.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

/// The inotify watch over the patterns' roots; dropping it stops the watch.
pub(crate) struct FsWatch {
    watcher: notify::RecommendedWatcher,
    unwatched: Vec<PathBuf>,
}

impl FsWatch {
    pub fn start(
        roots: Vec<PathBuf>,
        changes: Arc<Mutex<Changes>>,
        waker: Waker,
    ) -> Result<FsWatch, notify::Error> {
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let mut c = changes.lock().unwrap();
            match res {
                Ok(event) => {
                    if event.need_rescan()
                        || matches!(
                            event.kind,
                            EventKind::Create(notify::event::CreateKind::Folder)
                        )
                    {
                        c.rescan = true;
                    }
                    c.paths.extend(event.paths);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "inotify error; rescanning");
                    c.rescan = true;
                }
            }
            drop(c);
            waker.wake();
        })?;
        let mut watch = FsWatch {
            watcher,
            unwatched: roots,
        };
        watch.retry();
        Ok(watch)
    }

    /// Watches the roots that could not be watched before (they did not exist yet).
    pub fn retry(&mut self) {
        let roots = std::mem::take(&mut self.unwatched);
        for root in roots {
            match self.watcher.watch(&root, RecursiveMode::Recursive) {
                Ok(()) => tracing::debug!(root = %root.display(), "watching"),
                Err(e) => {
                    if root.exists() {
                        tracing::warn!(root = %root.display(), error = %e,
                            "cannot watch; relying on the periodic scan");
                    }
                    self.unwatched.push(root);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_paths_match_and_gz_never_does() {
        let p = Patterns::new(
            &[
                "/var/log/pods/*/*/*.log".to_string(),
                "/var/log/pods/*/*/*.log.*".to_string(),
            ],
            &["/var/log/pods/kube-system_*/*/*".to_string()],
        )
        .unwrap();
        assert!(p.matches(Path::new("/var/log/pods/ns_pod_uid/app/0.log")));
        assert!(p.matches(Path::new(
            "/var/log/pods/ns_pod_uid/app/0.log.20261123-150000"
        )));
        assert!(!p.matches(Path::new(
            "/var/log/pods/ns_pod_uid/app/0.log.20261123-150000.gz"
        )));
        assert!(!p.matches(Path::new("/var/log/pods/ns_pod_uid/app/sub/0.log")));
        assert!(!p.matches(Path::new("/var/log/pods/kube-system_x_u/app/0.log")));
        assert_eq!(p.watch_roots(), vec![PathBuf::from("/var/log/pods")]);
    }

    #[test]
    fn watch_roots_are_deduplicated() {
        let p = Patterns::new(
            &[
                "/var/log/a/*.log".to_string(),
                "/var/log/*.log".to_string(),
                "/srv/x.log".to_string(),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            p.watch_roots(),
            vec![PathBuf::from("/var/log"), PathBuf::from("/srv")]
        );
    }

    #[test]
    fn scan_finds_matching_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.log", "a.log", "c.txt", "d.log.gz"] {
            std::fs::write(dir.path().join(name), b"x\n").unwrap();
        }
        let pattern = format!("{}/*.log*", dir.path().display());
        let p = Patterns::new(&[pattern], &[]).unwrap();
        let names: Vec<_> = p
            .scan()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["a.log", "b.log"]);
    }
}
