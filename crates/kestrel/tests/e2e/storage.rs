//! Tamper evidence and quarantine through the real binary: `kestrel verify` with a signing key
//! made by openssl, exported heads, a modified file found and named, and a truncated file
//! quarantined by a query while the rest of the table answers.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::events::{audit_event, event_list, CONTROLLER};
use crate::harness::{kestrel_cli, TestServer};

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

async fn store_batch(server: &TestServer, prefix: &str) {
    let items: Vec<Value> = (0..5)
        .map(|i| {
            audit_event(
                &format!("{prefix}-{i}"),
                "ResponseComplete",
                "get",
                CONTROLLER,
                "pods",
                "shop",
                "web-0",
            )
        })
        .collect();
    let r = server
        .api()
        .post_audit(Some(&server.admin), event_list(&items))
        .await;
    assert_eq!(r.num("accepted"), 5, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_modified_file_and_a_query_quarantines_a_truncated_one() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("manifest.key");
    let public = tmp.path().join("manifest.pub");
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        key.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    let config = tmp.path().join("server.yaml");
    std::fs::write(
        &config,
        format!("storage:\n  manifest_signing_key_file: {}\n", key.display()),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let mut server = TestServer::start_with_config(&data, Some(&config)).await;
    // Two seals (a graceful stop seals), so the audit table holds two files.
    store_batch(&server, "first").await;
    assert!(server.terminate().await.success());
    server.restart().await;
    store_batch(&server, "second").await;
    assert!(server.terminate().await.success());

    let dir = data.to_str().unwrap();
    let public = public.to_str().unwrap();
    let out = kestrel_cli(&["verify", "--data-dir", dir, "--public-key", public], &[]);
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("head signature verified"),
        "{}",
        out.stdout
    );
    let out = kestrel_cli(
        &[
            "verify",
            "--data-dir",
            dir,
            "--export-head",
            "--table",
            "audit",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", out.stderr);
    let heads = tmp.path().join("heads.json");
    std::fs::write(&heads, &out.stdout).unwrap();
    let exported: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(exported["heads"][0]["seq"], 2);
    assert!(exported["heads"][0]["signature"].is_string());

    let files = parquet_files(&data.join("audit"));
    assert_eq!(files.len(), 2, "{files:?}");
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&files[0], &bytes).unwrap();
    let heads = heads.to_str().unwrap();
    let out = kestrel_cli(
        &[
            "verify",
            "--data-dir",
            dir,
            "--table",
            "audit",
            "--heads",
            heads,
            "--public-key",
            public,
            "--json",
        ],
        &[],
    );
    assert!(!out.status.success());
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let problems = report["tables"][0]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["kind"], "file_modified");
    let name = files[0].file_name().unwrap().to_str().unwrap();
    assert!(
        problems[0]["file"].as_str().unwrap().ends_with(name),
        "{report}"
    );
    assert!(out.stderr.contains("1 problem"), "{}", out.stderr);

    // Truncated: the next query quarantines it, answers from the other file and says so.
    bytes.truncate(bytes.len() / 3);
    std::fs::write(&files[0], &bytes).unwrap();
    server.restart().await;
    let r = server
        .api()
        .query(&server.admin, "SELECT count(*) FROM audit")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["rows"][0][0], 5);
    assert!(
        v["warnings"][0].as_str().unwrap().contains("quarantined"),
        "{v}"
    );
    let q = server
        .api()
        .get("/v1/storage/quarantine", Some(&server.admin))
        .await;
    assert_eq!(q.json()["files"].as_array().unwrap().len(), 1, "{}", q.text);
    assert!(server
        .log_text()
        .contains("quarantined a corrupt parquet file"));
    let metrics = server.api().get("/metrics", Some(&server.admin)).await.text;
    assert!(
        metrics.contains("kestrel_store_files_quarantined_total 1"),
        "{metrics}"
    );
    assert!(server.terminate().await.success());
    // Quarantine is a chain entry: the table verifies again.
    let out = kestrel_cli(
        &[
            "verify",
            "--data-dir",
            dir,
            "--table",
            "audit",
            "--public-key",
            public,
        ],
        &[],
    );
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("quarantine"), "{}", out.stdout);
}
