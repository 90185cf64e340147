//! Durability: the server is killed (SIGKILL) or stopped (SIGTERM) in the middle of a stream of
//! webhook batches; every acknowledged event must be there exactly once after a restart, and
//! re-sending everything must converge to each distinct event exactly once.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::events::{audit_event, event_list, ALICE, CONTROLLER};
use crate::harness::{Api, TestServer, DEADLINE};
use reqwest::Method;

const BATCHES: usize = 300;
/// Requests per fresh batch; each request is two events (`RequestReceived`, `ResponseComplete`).
const REQUESTS_PER_BATCH: usize = 25;
/// Batches in flight at once, as an API server with a busy webhook backend has.
const SENDERS: usize = 4;
/// The server is stopped once this many batches were acknowledged.
const STOP_AFTER: usize = 100;

/// An event's identity for de-duplication: `(auditID, stage)`.
type Key = (String, String);

/// One webhook request body and the events in it.
struct Batch {
    body: Vec<u8>,
    keys: Vec<Key>,
}

/// 300 batches of 50 events, auditIDs prefixed `r<round>-`. Like an API server that retries:
/// every tenth batch re-sends the previous batch whole, and every tenth (offset 5) repeats ten
/// requests of a batch three back next to fresh ones.
fn stream(round: usize) -> Vec<Batch> {
    let verbs = [
        ("get", "pods"),
        ("list", "configmaps"),
        ("update", "deployments"),
        ("create", "events"),
        ("watch", "endpoints"),
    ];
    let mut fresh = 0usize;
    let mut requests_of: Vec<Vec<(String, String, &str, &str)>> = Vec::new();
    for i in 0..BATCHES {
        let requests = if i % 10 == 9 {
            requests_of[i - 1].clone()
        } else {
            let mut reqs = Vec::new();
            if i % 10 == 5 {
                reqs.extend(requests_of[i - 3][..10].iter().cloned());
            }
            while reqs.len() < REQUESTS_PER_BATCH {
                let (verb, resource) = verbs[fresh % verbs.len()];
                let user = if fresh.is_multiple_of(7) {
                    ALICE
                } else {
                    CONTROLLER
                };
                reqs.push((
                    format!("r{round}-{fresh:06}-5e0c1c2b-9f0f-4a77"),
                    format!("{resource}-{fresh}"),
                    verb,
                    user,
                ));
                fresh += 1;
            }
            reqs
        };
        requests_of.push(requests);
    }
    requests_of
        .into_iter()
        .map(|requests| {
            let mut items = Vec::new();
            let mut keys = Vec::new();
            for (id, name, verb, user) in &requests {
                for stage in ["RequestReceived", "ResponseComplete"] {
                    let resource = name.rsplit_once('-').unwrap().0;
                    items.push(audit_event(id, stage, verb, user, resource, "shop", name));
                    keys.push((id.clone(), stage.to_string()));
                }
            }
            Batch {
                body: event_list(&items),
                keys,
            }
        })
        .collect()
}

fn distinct_keys(batches: &[Batch]) -> BTreeSet<Key> {
    batches
        .iter()
        .flat_map(|b| b.keys.iter().cloned())
        .collect()
}

/// What a stream interrupted by a stop did.
struct Interrupted {
    /// Indices of the batches answered 200.
    acked: BTreeSet<usize>,
    /// Requests that got no answer or an error answer.
    failed: usize,
    /// Of those, the ones sent before the stop: in flight when the server went down.
    in_flight_at_stop: usize,
}

/// What the senders of [`stream_and_stop`] share.
#[derive(Default)]
struct Progress {
    next: AtomicUsize,
    acked: Mutex<BTreeSet<usize>>,
    failed: AtomicUsize,
    in_flight_at_stop: AtomicUsize,
    stopping: AtomicBool,
    reached: tokio::sync::Notify,
}

/// Posts every batch with [`SENDERS`] concurrent senders and calls `stop` (which kills or
/// stops the server) as soon as [`STOP_AFTER`] batches were acknowledged, while the other
/// senders' requests are in flight. The senders go on until every batch was tried once.
async fn stream_and_stop<F: AsyncFnOnce()>(
    api: &Api,
    token: &str,
    batches: &Arc<Vec<Batch>>,
    stop: F,
) -> Interrupted {
    let progress = Arc::new(Progress::default());
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (api, token, batches) = (api.clone(), token.to_string(), Arc::clone(batches));
        let progress = Arc::clone(&progress);
        senders.push(tokio::spawn(async move {
            loop {
                let i = progress.next.fetch_add(1, Ordering::SeqCst);
                let Some(batch) = batches.get(i) else { break };
                let sent_before_stop = !progress.stopping.load(Ordering::SeqCst);
                let reply = api
                    .try_send(
                        Method::POST,
                        "/v1/audit/webhook",
                        Some(&token),
                        Some(batch.body.clone()),
                    )
                    .await;
                match reply {
                    Ok(r) if r.status == 200 => {
                        let mut acked = progress.acked.lock().unwrap();
                        acked.insert(i);
                        if acked.len() >= STOP_AFTER {
                            progress.reached.notify_one();
                        }
                    }
                    Ok(r) => {
                        // While stopping, the server may refuse with 503; a 4xx is a bug.
                        assert!(r.status >= 500, "batch {i}: {} {}", r.status, r.text);
                        progress.failed.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => {
                        progress.failed.fetch_add(1, Ordering::SeqCst);
                        if sent_before_stop {
                            progress.in_flight_at_stop.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }
        }));
    }
    tokio::time::timeout(DEADLINE, progress.reached.notified())
        .await
        .expect("the server acknowledged too few batches in time");
    progress.stopping.store(true, Ordering::SeqCst);
    stop().await;
    for s in senders {
        s.await.expect("sender task");
    }
    let acked = std::mem::take(&mut *progress.acked.lock().unwrap());
    Interrupted {
        acked,
        failed: progress.failed.load(Ordering::SeqCst),
        in_flight_at_stop: progress.in_flight_at_stop.load(Ordering::SeqCst),
    }
}

/// Every `(audit_id, stage)` stored for round `round`, checking on the way that no
/// `(audit_id, stage)` of any round is stored twice.
async fn stored_keys(server: &TestServer, round: usize) -> BTreeSet<Key> {
    let dupes = server
        .query("SELECT audit_id, stage, count(*) FROM audit GROUP BY 1, 2 HAVING count(*) > 1")
        .await;
    assert!(dupes.is_empty(), "events stored twice: {dupes:?}");
    let rows = server
        .query(&format!(
            "SELECT audit_id, stage FROM audit WHERE audit_id LIKE 'r{round}-%'"
        ))
        .await;
    let keys: BTreeSet<Key> = rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                r[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(keys.len(), rows.len(), "duplicate rows in round {round}");
    keys
}

/// After a restart: every event of every acknowledged batch is stored, nothing was invented.
async fn assert_acknowledged_events_stored_once(
    server: &TestServer,
    round: usize,
    batches: &[Batch],
    outcome: &Interrupted,
) -> BTreeSet<Key> {
    let stored = stored_keys(server, round).await;
    let all = distinct_keys(batches);
    for &i in &outcome.acked {
        for key in &batches[i].keys {
            assert!(
                stored.contains(key),
                "round {round}: event {key:?} of acknowledged batch {i} is missing after restart"
            );
        }
    }
    assert!(
        stored.is_subset(&all),
        "round {round}: rows that were never sent"
    );
    stored
}

/// Re-sends every batch, as the API server retries what was not acknowledged (and sometimes
/// what was); afterwards each distinct event is stored exactly once.
async fn resend_everything(
    server: &TestServer,
    round: usize,
    batches: &[Batch],
    stored_before: &BTreeSet<Key>,
) {
    let api = server.api();
    let mut accepted = 0;
    for (i, b) in batches.iter().enumerate() {
        let r = api.post_audit(Some(&server.admin), b.body.clone()).await;
        assert_eq!(r.status, 200, "re-sending batch {i}: {}", r.text);
        assert_eq!(r.num("dead_letters"), 0);
        accepted += r.num("accepted") as usize;
    }
    let all = distinct_keys(batches);
    assert_eq!(
        accepted,
        all.len() - stored_before.len(),
        "round {round}: the re-send stored something twice or lost something"
    );
    assert_eq!(stored_keys(server, round).await, all);
}

/// A configuration whose queries return every row of a round. With `small_segments`, WAL
/// segments of 1 MiB (about 20 batches) are sealed into Parquet all through the stream, so a
/// kill lands among rotations and flushes too.
fn crash_config(dir: &Path, small_segments: bool) -> std::path::PathBuf {
    let path = dir.join("kestrel.yaml");
    let mut yaml = String::from("query:\n  max_rows: 1000000\n");
    if small_segments {
        yaml.push_str("storage:\n  segment_max_bytes: 1048576\n");
    }
    std::fs::write(&path, yaml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_keeps_every_acknowledged_event_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let config = crash_config(tmp.path(), true);
    let data = tmp.path().join("data");
    let mut server = TestServer::start_with_config(&data, Some(&config)).await;
    let mut total = 0;
    let mut in_flight_at_kills = 0;
    for round in 1..=3 {
        let batches = Arc::new(stream(round));
        let api = server.api();
        let admin = server.admin.clone();
        let outcome = stream_and_stop(&api, &admin, &batches, async || server.kill9()).await;
        assert!(
            outcome.acked.len() >= STOP_AFTER && outcome.acked.len() < BATCHES,
            "round {round}: the kill did not land mid-stream ({} acknowledged)",
            outcome.acked.len()
        );
        assert!(outcome.failed > 0);

        server.restart().await;
        let stored =
            assert_acknowledged_events_stored_once(&server, round, &batches, &outcome).await;
        println!(
            "round {round}: {} of {BATCHES} batches acknowledged, {} requests in flight at the \
             kill; {} events stored after restart, {} acknowledged",
            outcome.acked.len(),
            outcome.in_flight_at_stop,
            stored.len(),
            outcome
                .acked
                .iter()
                .flat_map(|&i| &batches[i].keys)
                .collect::<BTreeSet<_>>()
                .len(),
        );
        in_flight_at_kills += outcome.in_flight_at_stop;
        let log = server.log_text();
        println!(
            "  recovery so far: {} wal segments replayed, {} files of unfinished flushes removed",
            log.matches("replayed wal segment").count(),
            log.matches("removing file of an unfinished flush").count()
        );
        resend_everything(&server, round, &batches, &stored).await;
        total += distinct_keys(&batches).len() as u64;
        assert_eq!(server.count("SELECT count(*) FROM audit").await, total);
        // Whatever the kill interrupted, every sealed file is in the manifest chain.
        let data_dir = server.data_dir.to_str().unwrap().to_owned();
        let verify = crate::harness::kestrel_cli(&["verify", "--data-dir", &data_dir], &[]);
        assert!(
            verify.status.success(),
            "round {round}: kestrel verify after a kill -9:\n{}{}",
            verify.stdout,
            verify.stderr
        );
    }
    assert!(
        in_flight_at_kills > 0,
        "no request was in flight at any kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_seals_every_acknowledged_event_into_parquet() {
    let tmp = tempfile::tempdir().unwrap();
    let config = crash_config(tmp.path(), false);
    let data = tmp.path().join("data");
    let mut server = TestServer::start_with_config(&data, Some(&config)).await;
    let round = 1;
    let batches = Arc::new(stream(round));
    let api = server.api();
    let admin = server.admin.clone();
    let mut exit = None;
    let outcome = stream_and_stop(&api, &admin, &batches, async || {
        exit = Some(server.terminate().await);
    })
    .await;
    let exit = exit.unwrap();
    assert!(exit.success(), "graceful stop exited with {exit}");
    assert!(outcome.acked.len() >= STOP_AFTER);
    println!(
        "sigterm: {} of {BATCHES} batches acknowledged, {} requests in flight at the stop",
        outcome.acked.len(),
        outcome.in_flight_at_stop
    );

    // Everything was sealed: no WAL segment holds data, the rows are in Parquet files.
    for entry in std::fs::read_dir(data.join("wal")).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(
            entry.metadata().unwrap().len(),
            0,
            "wal segment {} still holds data after a graceful stop",
            entry.path().display()
        );
    }
    let files = parquet_files(&data.join("audit"));
    assert!(!files.is_empty(), "no parquet files after a graceful stop");
    let rows_in_parquet: u64 = files.iter().map(|f| parquet_row_count(f)).sum();

    server.restart().await;
    let stored = assert_acknowledged_events_stored_once(&server, round, &batches, &outcome).await;
    assert_eq!(
        rows_in_parquet,
        stored.len() as u64,
        "the parquet files do not hold exactly the stored rows"
    );
    resend_everything(&server, round, &batches, &stored).await;
}

/// Every `<table_dir>/date=YYYY-MM-DD/hour=HH/*.parquet`; panics on anything else there but
/// the table's manifest (`_manifest.jsonl`, `_manifest.head.json`).
pub fn parquet_files(table_dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for date in std::fs::read_dir(table_dir).unwrap() {
        let date = date.unwrap().path();
        let name = date.file_name().unwrap().to_str().unwrap().to_string();
        if name == "_manifest.jsonl" || name == "_manifest.head.json" {
            continue;
        }
        assert!(
            name.starts_with("date=") && name.len() == "date=2026-01-01".len(),
            "unexpected {name}"
        );
        for hour in std::fs::read_dir(&date).unwrap() {
            let hour = hour.unwrap().path();
            let name = hour.file_name().unwrap().to_str().unwrap().to_string();
            assert!(
                name.starts_with("hour=") && name.len() == "hour=00".len(),
                "unexpected {name}"
            );
            for f in std::fs::read_dir(&hour).unwrap() {
                let f = f.unwrap().path();
                assert_eq!(
                    f.extension().and_then(|e| e.to_str()),
                    Some("parquet"),
                    "{}",
                    f.display()
                );
                files.push(f);
            }
        }
    }
    files.sort();
    files
}

fn parquet_row_count(path: &Path) -> u64 {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    reader.metadata().file_metadata().num_rows() as u64
}
