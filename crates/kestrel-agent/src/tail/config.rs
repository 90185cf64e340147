//! Configuration of the tailer (one YAML/JSON section, every key documented, durations with units).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// What to tail and how. Every field but `include` has a default.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailConfig {
    /// Absolute glob patterns of files to tail, like `/var/log/pods/*/*/*.log`. `*` and `?` do
    /// not cross `/`. Kubelet's rotated files (`<n>.log.<YYYYMMDD-hhmmss>`) need a pattern of
    /// their own, like `/var/log/pods/*/*/*.log.*`, so a file renamed by rotation stays found
    /// (it is read to the end from its open handle either way).
    pub include: Vec<String>,
    /// Glob patterns of files never to tail, matched like `include`. Files ending in `.gz` are
    /// never read, whatever the patterns say.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Longest line kept whole, in bytes; a longer line is cut to this length, followed by the
    /// marker `…[truncated N bytes]` (N = bytes dropped) and its `\n`, and counted.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Most bytes of file read into one chunk. A chunk ends at the last `\n` within this many
    /// bytes of its start, so chunk boundaries depend only on the start offset and the bytes in
    /// the file. Must exceed `max_line_bytes`.
    #[serde(default = "default_max_chunk_bytes")]
    pub max_chunk_bytes: usize,
    /// Bytes of chunk data that may wait in the channel to the consumer; when full, the tailer
    /// stops reading (the log files are the buffer). At least one chunk always fits.
    #[serde(default = "default_max_queued_bytes")]
    pub max_queued_bytes: usize,
    /// Cap of the fingerprint window (the file's first line) that identifies a file, in bytes.
    #[serde(default = "default_fingerprint_bytes")]
    pub fingerprint_bytes: u64,
    /// Interval of the full reconcile scan of the patterns, like `10s`; inotify finds changes
    /// sooner, and this scan catches whatever inotify missed.
    #[serde(default = "default_scan_interval", deserialize_with = "duration")]
    pub scan_interval: Duration,
    /// Interval at which open files are checked for growth without an inotify event, like
    /// `250ms` (writes to deleted or renamed-away files raise no event).
    #[serde(default = "default_poll_interval", deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// A file read to its end and unchanged for this long has its handle closed, like `60s`;
    /// its identity and offset are kept, and it is reopened when it grows.
    #[serde(default = "default_idle_close", deserialize_with = "duration")]
    pub idle_close: Duration,
    /// A file renamed away or deleted, read to its end and unchanged for this long, is finished,
    /// like `5s`: its incomplete last line (if any) is emitted with a `\n` appended, its last
    /// chunk is flagged `finished`, and its handle is closed.
    #[serde(default = "default_rotate_wait", deserialize_with = "duration")]
    pub rotate_wait: Duration,
    /// Most file handles held open at once; fully read files are closed first (least recently
    /// active first) to make room.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    /// Interval at which changed checkpoints are written to disk, like `1s`.
    #[serde(default = "default_checkpoint_interval", deserialize_with = "duration")]
    pub checkpoint_interval: Duration,
    /// A checkpoint whose file has not been seen for this long is forgotten, like `1h`.
    #[serde(default = "default_forget_after", deserialize_with = "duration")]
    pub forget_after: Duration,
    /// Use inotify to notice changes at once (the periodic scan and poll run regardless).
    #[serde(default = "default_true")]
    pub inotify: bool,
}

fn default_max_line_bytes() -> usize {
    256 * 1024
}
fn default_max_chunk_bytes() -> usize {
    1024 * 1024
}
fn default_max_queued_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_fingerprint_bytes() -> u64 {
    1024
}
fn default_scan_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_poll_interval() -> Duration {
    Duration::from_millis(250)
}
fn default_idle_close() -> Duration {
    Duration::from_secs(60)
}
fn default_rotate_wait() -> Duration {
    Duration::from_secs(5)
}
fn default_max_open_files() -> usize {
    1024
}
fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_forget_after() -> Duration {
    Duration::from_secs(3600)
}
fn default_true() -> bool {
    true
}

/// Reads a duration written with a unit: `250ms`, `10s`, `5m`, `1h`.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!("invalid duration {s:?} (write e.g. 10s, 5m): {e}"))
    })
}

impl TailConfig {
    /// A configuration with every default and the given include patterns.
    pub fn new<S: Into<String>>(include: impl IntoIterator<Item = S>) -> Self {
        TailConfig {
            include: include.into_iter().map(Into::into).collect(),
            exclude: Vec::new(),
            max_line_bytes: default_max_line_bytes(),
            max_chunk_bytes: default_max_chunk_bytes(),
            max_queued_bytes: default_max_queued_bytes(),
            fingerprint_bytes: default_fingerprint_bytes(),
            scan_interval: default_scan_interval(),
            poll_interval: default_poll_interval(),
            idle_close: default_idle_close(),
            rotate_wait: default_rotate_wait(),
            max_open_files: default_max_open_files(),
            checkpoint_interval: default_checkpoint_interval(),
            forget_after: default_forget_after(),
            inotify: true,
        }
    }

    /// Checks the section and returns every problem at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.include.is_empty() {
            problems.push("include: at least one pattern is needed".to_string());
        }
        for (key, patterns) in [("include", &self.include), ("exclude", &self.exclude)] {
            for p in patterns {
                if let Err(e) = glob::Pattern::new(p) {
                    problems.push(format!("{key}: invalid pattern {p:?}: {e}"));
                }
                if key == "include" && !p.starts_with('/') {
                    problems.push(format!("include: pattern {p:?} must be an absolute path"));
                }
            }
        }
        if self.max_line_bytes == 0 {
            problems.push("max_line_bytes must be at least 1".to_string());
        }
        if self.max_chunk_bytes <= self.max_line_bytes + 64 {
            problems.push(format!(
                "max_chunk_bytes ({}) must exceed max_line_bytes ({}) by more than 64",
                self.max_chunk_bytes, self.max_line_bytes
            ));
        }
        if self.fingerprint_bytes == 0 {
            problems.push("fingerprint_bytes must be at least 1".to_string());
        }
        if self.max_open_files == 0 {
            problems.push("max_open_files must be at least 1".to_string());
        }
        for (key, d) in [
            ("scan_interval", self.scan_interval),
            ("poll_interval", self.poll_interval),
            ("checkpoint_interval", self.checkpoint_interval),
        ] {
            if d.is_zero() {
                problems.push(format!("{key} must be more than 0s"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_gets_defaults() {
        let c: TailConfig =
            serde_json::from_str(r#"{"include": ["/var/log/pods/*/*/*.log"]}"#).unwrap();
        assert_eq!(c.max_line_bytes, 256 * 1024);
        assert_eq!(c.max_chunk_bytes, 1024 * 1024);
        assert_eq!(c.scan_interval, Duration::from_secs(10));
        assert_eq!(c.fingerprint_bytes, 1024);
        c.validate().unwrap();
    }

    #[test]
    fn durations_need_units_and_unknown_keys_are_refused() {
        let e = serde_json::from_str::<TailConfig>(r#"{"include": ["/a"], "scan_interval": "10"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("invalid duration"), "{e}");
        let c: TailConfig =
            serde_json::from_str(r#"{"include": ["/a"], "scan_interval": "500ms"}"#).unwrap();
        assert_eq!(c.scan_interval, Duration::from_millis(500));
        assert!(serde_json::from_str::<TailConfig>(r#"{"include": ["/a"], "bogus": 1}"#).is_err());
    }

    #[test]
    fn validate_reports_every_problem() {
        let mut c = TailConfig::new(["relative/*.log", "/a/[.log"]);
        c.max_chunk_bytes = c.max_line_bytes;
        c.max_open_files = 0;
        let problems = c.validate().unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
    }
}
