//! The journal input against real journal files: `systemd-journal-remote` writes them from
//! journal export format (the format journald itself can export), and the real `journalctl`
//! follows them with `--directory`. Skipped with a message where systemd-journal-remote is not
//! installed (`apt-get install systemd-journal-remote`); under `CI` that is a failure.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use kestrel_event::batch_id;

use super::*;
use crate::stream::testing::Harness;

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";
const BOOT: &str = "6d7e8f90a1b24c3d9e8f7a6b5c4d3e2f";

/// Whether real journals can be written and read here.
fn real_journal_available() -> bool {
    let ok = Path::new(JOURNAL_REMOTE).exists()
        && Command::new("journalctl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{JOURNAL_REMOTE} or journalctl is missing (apt-get install systemd-journal-remote)"
        );
        eprintln!("skipped: {JOURNAL_REMOTE} or journalctl is missing (apt-get install systemd-journal-remote)");
    }
    ok
}

/// Appends entries `(unit, message bytes)` to `<dir>/node.journal` through
/// systemd-journal-remote (a message that is not UTF-8 uses the export format's binary form).
fn append(dir: &Path, entries: &[(&str, &[u8])]) {
    let mut export = Vec::new();
    for (unit, message) in entries {
        // Microseconds that grow across calls: journald's own clocks do.
        let us = kestrel_event::time::now_nanos() / 1000;
        std::thread::sleep(Duration::from_micros(2));
        let ident = unit.trim_end_matches(".service");
        write!(
            export,
            "__REALTIME_TIMESTAMP={us}\n__MONOTONIC_TIMESTAMP={us}\n_BOOT_ID={BOOT}\n\
             _SYSTEMD_UNIT={unit}\nSYSLOG_IDENTIFIER={ident}\nPRIORITY=6\n_PID=4242\n\
             _HOSTNAME=node-1\n"
        )
        .unwrap();
        if std::str::from_utf8(message).is_ok() && !message.contains(&b'\n') {
            export.extend_from_slice(b"MESSAGE=");
            export.extend_from_slice(message);
            export.push(b'\n');
        } else {
            export.extend_from_slice(b"MESSAGE\n");
            export.extend_from_slice(&(message.len() as u64).to_le_bytes());
            export.extend_from_slice(message);
            export.push(b'\n');
        }
        export.push(b'\n');
    }
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", dir.join("node.journal").display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&export).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "systemd-journal-remote: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn input(dir: &Path) -> JournalInput {
    JournalInput {
        directory: Some(dir.to_path_buf()),
        units: vec!["kubelet.service".into(), "containerd.service".into()],
        max_batch_wait: Duration::from_millis(50),
        max_restart_backoff: Duration::from_millis(200),
        ..JournalInput::default()
    }
}

struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(h: &Harness, input: JournalInput) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = start(
            input,
            h.sink(),
            Arc::clone(&h.checkpoint),
            &h.buffered(),
            &h.resume,
            1 << 20,
            Arc::clone(&stop),
        )
        .unwrap();
        Running {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn messages(batches: &[(crate::buffer::RecordId, BatchMeta, IngestBatch)]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|(_, _, b)| b.journal.iter())
        .map(|e| e.message.clone().unwrap_or_default())
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn follows_a_real_journal_from_its_end_and_resumes_after_the_acknowledged_cursor() {
    if !real_journal_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    append(
        &journal,
        &[
            ("kubelet.service", b"old 1"),
            ("sshd.service", b"old sshd"),
            ("kubelet.service", b"old 2"),
        ],
    );
    let data = tmp.path().join("data");
    let h = Harness::open(&data, "journal");
    let run = Running::start(&h, input(&journal));
    // The first start begins at the journal's end: its position is saved before reading.
    wait_until("the first start's position", || {
        h.checkpoint.saved().position.is_some()
    });
    append(
        &journal,
        &[
            ("kubelet.service", b"new 1"),
            ("sshd.service", b"Failed password for root from 203.0.113.9"),
            ("containerd.service", b"new 2"),
            ("kubelet.service", b"caf\xe9 new 3"),
        ],
    );
    let batches = h.batches_until(|b| messages(b).len() >= 3);
    assert_eq!(messages(&batches), ["new 1", "new 2", "caf\u{fffd} new 3"]);
    let before_ack = h.checkpoint.saved().position;
    for (_, meta, batch) in &batches {
        // The identity is the cursor range: the stream names the sequence-number source, the
        // range the first and last sequence numbers.
        let cursors: Vec<(&str, u64)> = batch
            .journal
            .iter()
            .map(|e| cursor_position(e.cursor.as_deref().unwrap()).unwrap())
            .collect();
        assert_eq!(meta.stream, format!("journal:{}", cursors[0].0));
        assert_eq!(meta.start, cursors[0].1);
        assert_eq!(meta.end, cursors.last().unwrap().1 + 1);
        assert_eq!(
            meta.id,
            batch_id("node-1", "journal", &meta.stream, meta.start, meta.end)
        );
        assert_eq!(
            batch.journal[0]
                .unit
                .as_deref()
                .map(|u| u.ends_with(".service")),
            Some(true)
        );
    }
    // Nothing acknowledged yet: the checkpoint has not moved.
    assert_eq!(h.checkpoint.saved().position, before_ack);
    for (id, meta, _) in &batches {
        h.ack(*id, meta);
    }
    let last_cursor = batches
        .last()
        .unwrap()
        .2
        .journal
        .last()
        .unwrap()
        .cursor
        .clone();
    wait_until("the checkpoint to pass the acknowledged batches", || {
        h.checkpoint.saved().position == last_cursor
    });
    assert_eq!(h.input_metrics().records.get(), 3);
    let first_ids: Vec<String> = batches.iter().map(|(_, m, _)| m.id.clone()).collect();
    drop(run);
    drop(h);

    // A restart resumes after the acknowledged entry: only new entries are read. Batches
    // still in the buffer's open segment are sent again with their identities.
    // More than 10 entries: `journalctl --follow` prints only the last 10 unless told
    // `--lines=all`, even after a cursor.
    let later: Vec<String> = (0..25).map(|i| format!("after restart {i}")).collect();
    let entries: Vec<(&str, &[u8])> = later
        .iter()
        .map(|m| ("kubelet.service", m.as_bytes()))
        .collect();
    append(&journal, &entries);
    let h = Harness::open(&data, "journal");
    let _run = Running::start(&h, input(&journal));
    let batches = h.batches_until(|b| messages(b).contains(later.last().unwrap()));
    let (resent, new): (Vec<_>, Vec<_>) = batches
        .into_iter()
        .partition(|(_, m, _)| first_ids.contains(&m.id));
    assert_eq!(messages(&new), later);
    assert_eq!(resent.len(), h.buffered().len());
}

#[test]
fn a_batch_left_in_the_disk_buffer_is_not_read_again_under_another_identity() {
    if !real_journal_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    let data = tmp.path().join("data");
    let beginning = JournalInput {
        start_at: StartAt::Beginning,
        ..input(&journal)
    };
    append(
        &journal,
        &[("kubelet.service", b"one"), ("kubelet.service", b"two")],
    );
    let h = Harness::open(&data, "journal");
    let run = Running::start(&h, beginning.clone());
    let first = h.batches_until(|b| messages(b).len() >= 2);
    // A crash: the batch is buffered (maybe sent) but not acknowledged.
    drop(run);
    drop(h);
    append(&journal, &[("kubelet.service", b"three")]);

    let h = Harness::open(&data, "journal");
    assert_eq!(h.buffered().len(), first.len());
    let run = Running::start(&h, beginning);
    // The buffered batch comes first, as it was; reading resumed after it.
    let again = h.batches_until(|b| messages(b).len() >= 3);
    assert_eq!(messages(&again), ["one", "two", "three"]);
    assert_eq!(again[0].1.id, first[0].1.id);
    // Acknowledging the re-sent batch and the new one moves the checkpoint past both.
    for (id, meta, _) in &again {
        h.ack(*id, meta);
    }
    let last = again
        .last()
        .unwrap()
        .2
        .journal
        .last()
        .unwrap()
        .cursor
        .clone();
    wait_until("the checkpoint to pass both", || {
        h.checkpoint.saved().position == last
    });
    drop(run);
}

#[test]
fn journalctl_that_exits_is_started_again_from_the_last_entry_read() {
    if !real_journal_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let journal = tmp.path().join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    // The real journalctl, cut short: each run prints one entry (without following) and exits,
    // after a complaint on stderr.
    let wrapper = tmp.path().join("journalctl-once");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\necho 'journalctl-once: printing one entry' >&2\n\
         for a in \"$@\"; do shift; [ \"$a\" = --follow ] || set -- \"$@\" \"$a\"; done\n\
         journalctl \"$@\" | head -n 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let lines: Vec<String> = (0..6).map(|i| format!("entry {i}")).collect();
    let entries: Vec<(&str, &[u8])> = lines
        .iter()
        .map(|l| ("kubelet.service", l.as_bytes()))
        .collect();
    append(&journal, &entries);
    let h = Harness::open(&tmp.path().join("data"), "journal");
    let _run = Running::start(
        &h,
        JournalInput {
            journalctl: wrapper,
            start_at: StartAt::Beginning,
            ..input(&journal)
        },
    );
    let batches = h.batches_until(|b| messages(b).len() >= 6);
    assert_eq!(messages(&batches), lines);
    assert!(h.input_metrics().restarts.get() >= 5);
}

#[test]
fn cursors_and_config() {
    assert_eq!(
        cursor_position("s=8821e2da;i=1a;b=6d7e;m=3e8;t=660f;x=9fb8"),
        Some(("8821e2da", 0x1a))
    );
    assert_eq!(cursor_position("i=1a"), None);
    assert_eq!(cursor_position("s=ab;i=zz"), None);
    let meta = BatchMeta {
        id: String::new(),
        input: "journal".into(),
        stream: "journal:8821e2da".into(),
        start: 10,
        end: 0x1b,
        records: 3,
    };
    assert_eq!(cursor_after(&meta).as_deref(), Some("s=8821e2da;i=1a"));
    let j: JournalInput = serde_yaml_ng::from_str("directory: /var/log/journal").unwrap();
    assert_eq!(
        j.units,
        ["kubelet.service", "containerd.service", "docker.service"]
    );
    assert_eq!(j.start_at, StartAt::End);
    assert!(j.problems().is_empty());
    let bad: JournalInput =
        serde_yaml_ng::from_str("units: ['']\nmax_batch_wait: 0s\nmax_restart_backoff: 1ms")
            .unwrap();
    assert_eq!(bad.problems().len(), 3);
    assert!(serde_yaml_ng::from_str::<JournalInput>("file: x").is_err());
}
