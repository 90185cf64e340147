//! Writes the demo's pod and node logs under a directory, one subdirectory per node
//! (`<dir>/<node>/var/log/pods/...`, `<dir>/<node>/var/log/kern.log`, `<dir>/<node>/journal.json`),
//! and prints how many lines and bytes each source has and how long generating took.
//!
//! `cargo run --release -p kestrel-demo --example write_node_logs [dir] [seed] [repeat]`

use std::path::PathBuf;
use std::time::Instant;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "demo-logs".into()));
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(42);
    let end = chrono::Utc::now();
    let repeat: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    // Repeated calls show the steady state; the first pays for cold caches and a fresh heap.
    let (mut pods, mut nodes) = (Vec::new(), Vec::new());
    let (mut pod_s, mut node_s) = (0.0, 0.0);
    for _ in 0..repeat {
        let t = Instant::now();
        pods = kestrel_demo::demo_pod_logs(end, seed);
        pod_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        nodes = kestrel_demo::demo_node_logs(end, seed);
        node_s += t.elapsed().as_secs_f64();
    }
    let per_call = |s: f64| s * 1e3 / f64::from(repeat);
    println!(
        "mean of {repeat} calls: demo_pod_logs {:.1} ms, demo_node_logs {:.1} ms",
        per_call(pod_s),
        per_call(node_s)
    );
    for (files, under) in [(&pods, "var/log/pods"), (&nodes, "")] {
        for f in files {
            let path = if f.path == "kern.log" {
                dir.join(&f.node).join("var/log").join(&f.path)
            } else {
                dir.join(&f.node).join(under).join(&f.path)
            };
            std::fs::create_dir_all(path.parent().expect("a file has a parent"))?;
            let mut text = f.lines.join("\n");
            text.push('\n');
            std::fs::write(&path, &text)?;
            println!(
                "{:>6} lines {:>9} bytes  {}",
                f.lines.len(),
                text.len(),
                path.display()
            );
        }
    }
    Ok(())
}
