//! Writes the demo's pod and node logs under a directory, one subdirectory per node
//! (`<dir>/<node>/var/log/pods/...`, `<dir>/<node>/var/log/kern.log`, `<dir>/<node>/journal.json`),
//! and prints how many lines and bytes each source has and how long generating took.
//!
//! `cargo run -p kestrel-demo --example write_node_logs [dir] [seed]`

use std::path::PathBuf;
use std::time::Instant;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "demo-logs".into()));
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(42);
    let end = chrono::Utc::now();
    // The first call pays for cold caches and a fresh heap; the second is the steady state.
    let (mut pods, mut nodes) = (Vec::new(), Vec::new());
    for call in ["first", "second"] {
        let t = Instant::now();
        pods = kestrel_demo::demo_pod_logs(end, seed);
        let pod_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        nodes = kestrel_demo::demo_node_logs(end, seed);
        let node_ms = t.elapsed().as_secs_f64() * 1e3;
        println!("{call} call: demo_pod_logs {pod_ms:.1} ms, demo_node_logs {node_ms:.1} ms");
    }
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
