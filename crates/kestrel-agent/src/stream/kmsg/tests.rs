//! The kmsg input against a FIFO and a file in `/dev/kmsg`'s text form, and against the real
//! `/dev/kmsg` when this process may read it (skipped with a message otherwise).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use kestrel_event::batch_id;

use super::*;
use crate::stream::testing::Harness;

const PACKET: &str = "calico-packet: IN=cali1a2b OUT=eth0 MAC=ee:ee:ee:ee:ee:ee:aa:bb:cc:dd:ee:ff:08:00 \
                      SRC=10.244.1.17 DST=169.254.169.254 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=4242 DF \
                      PROTO=TCP SPT=41234 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0";

fn packet(seq: u64, dpt: u16) -> String {
    format!(
        "4,{seq},{},-;{}\n",
        5_000_000 + seq,
        PACKET.replace("DPT=80", &format!("DPT={dpt}"))
    )
}

struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(h: &Harness, input: KmsgInput) -> Running {
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

fn input(path: &Path) -> KmsgInput {
    KmsgInput {
        path: path.to_path_buf(),
        max_batch_wait: Duration::from_millis(50),
        ..KmsgInput::default()
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ports(batches: &[(crate::buffer::RecordId, BatchMeta, IngestBatch)]) -> Vec<u16> {
    batches
        .iter()
        .flat_map(|(_, _, b)| b.netflow.iter())
        .filter_map(|p| p.dst_port)
        .collect()
}

#[test]
fn records_from_a_fifo_become_netflow_with_lost_records_counted_and_a_restart_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("kmsg.fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let data = tmp.path().join("data");
    let h = Harness::open(&data, "kmsg");
    let run = Running::start(&h, input(&fifo));
    // Opening the write end waits for the reader to open the FIFO.
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let mut text = String::new();
    text.push_str(&packet(100, 80));
    text.push_str("6,101,5000101,-;usb 1-1: new high-speed USB device number 2\n");
    text.push_str(" SUBSYSTEM=usb\n DEVICE=c189:1\n");
    text.push_str("not a kmsg record\n");
    text.push_str(&packet(102, 443));
    // Records 103 and 104 were overwritten before they were read.
    text.push_str(&packet(105, 22));
    writer.write_all(text.as_bytes()).unwrap();
    let batches = h.batches_until(|b| ports(b).len() >= 3);
    assert_eq!(ports(&batches), [80, 443, 22]);
    let stream = format!("kmsg:{}", boot_id());
    let (_, meta, batch) = &batches[0];
    assert_eq!(meta.stream, stream);
    assert_eq!(
        meta.id,
        batch_id("node-1", "kmsg", &stream, meta.start, meta.end)
    );
    assert_eq!(batch.netflow[0].src_ip.as_deref(), Some("10.244.1.17"));
    assert_eq!(batch.netflow[0].prefix.as_deref(), Some("calico-packet:"));
    let dead: Vec<_> = batches
        .iter()
        .flat_map(|(_, _, b)| &b.dead_letters)
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload, "not a kmsg record");
    let m = h.input_metrics();
    assert_eq!((m.lost.get(), m.errors.get()), (2, 1));
    for (id, meta, _) in &batches {
        h.ack(*id, meta);
    }
    wait_until("the checkpoint to pass the acknowledged batches", || {
        h.checkpoint.saved().end(&stream) == Some(106)
    });
    let first_ids: Vec<String> = batches.iter().map(|(_, m, _)| m.id.clone()).collect();
    drop(writer);
    drop(run);
    drop(h);

    // The same records again, as a file (a restart reads from the start of the ring buffer):
    // only what follows the checkpoint is read. Batches still in the buffer's open segment
    // are sent again with their identities (the server keeps one copy).
    let file = tmp.path().join("kmsg.txt");
    let mut again = text.clone();
    again.push_str(&packet(106, 8443));
    std::fs::write(&file, again).unwrap();
    let h = Harness::open(&data, "kmsg");
    let _run = Running::start(&h, input(&file));
    let batches = h.batches_until(|b| ports(b).contains(&8443));
    let (resent, new): (Vec<_>, Vec<_>) = batches
        .into_iter()
        .partition(|(_, m, _)| first_ids.contains(&m.id));
    assert_eq!(ports(&new), [8443]);
    assert_eq!((new[0].1.start, new[0].1.end), (106, 107));
    assert!(resent.iter().all(|(_, m, _)| m.end <= 106));
    assert_eq!(h.input_metrics().lost.get(), 0);
}

#[test]
fn the_first_start_skips_what_was_logged_before() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("kmsg.txt");
    std::fs::write(&file, packet(1, 80) + &packet(2, 81)).unwrap();
    let h = Harness::open(&tmp.path().join("data"), "kmsg");
    let _run = Running::start(&h, input(&file));
    // Once the reader has the file open (seen in /proc/self/fd), it is at the end: append.
    wait_until("the reader to open the file", || {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(Result::ok)
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|p| p == file))
    });
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    f.write_all(packet(3, 82).as_bytes()).unwrap();
    let batches = h.batches_until(|b| !ports(b).is_empty());
    assert_eq!(ports(&batches), [82]);
}

#[test]
fn the_real_dev_kmsg_is_read_and_checkpointed() {
    let path = Path::new("/dev/kmsg");
    match std::fs::File::open(path) {
        Ok(_) => {}
        Err(e) => {
            eprintln!("skipped: /dev/kmsg cannot be read here: {e}");
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let h = Harness::open(&tmp.path().join("data"), "kmsg");
    let stream = format!("kmsg:{}", boot_id());
    let _run = Running::start(
        &h,
        KmsgInput {
            start_at: StartAt::Beginning,
            ..input(path)
        },
    );
    // The ring buffer holds at least the boot messages: they are read (none is a packet log
    // here, so no batch is sent) and the checkpoint passes them.
    wait_until("the ring buffer to be read", || {
        h.checkpoint.saved().end(&stream).is_some()
    });
    assert!(h.input_metrics().records.get() > 0);
    assert_eq!(h.input_metrics().errors.get(), 0);
}

#[test]
fn config() {
    let k: KmsgInput = serde_yaml_ng::from_str("start_at: beginning").unwrap();
    assert_eq!(k.path, Path::new("/dev/kmsg"));
    assert_eq!(k.start_at, StartAt::Beginning);
    assert!(k.problems().is_empty());
    let bad: KmsgInput = serde_yaml_ng::from_str("path: ''\nmax_batch_wait: 0s").unwrap();
    assert_eq!(bad.problems().len(), 2);
    assert!(serde_yaml_ng::from_str::<KmsgInput>("device: /dev/kmsg").is_err());
}
