//! Prints how fast `background_traffic` generates events, and the size of the demo scenario.
//!
//! `cargo run --release -p kestrel-demo --example generation_rate [events]`

use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let start = chrono::Utc::now();
    let t = Instant::now();
    let mut bytes = 0usize;
    for line in kestrel_demo::background_traffic(start, 10_000, 1).take(n) {
        bytes += line.len();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "background_traffic: {n} events, {:.1} MB in {secs:.3} s: {:.2} M events/s, {:.0} MB/s, {:.0} bytes/event",
        bytes as f64 / 1e6,
        n as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6,
        bytes as f64 / n as f64
    );
    let t = Instant::now();
    let demo = kestrel_demo::demo_scenario(start, 42);
    println!(
        "demo_scenario: {} events in {:.1} ms",
        demo.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
}
