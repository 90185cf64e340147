//! Rule evaluation throughput on parsed audit events (JSON parsing excluded), with the bundled
//! pack: the stateless path (`RuleSet::evaluate_audit`) and the stateful one (`Detector`).
//!
//! Run: `cargo bench -p kestrel-rules --bench evaluate`. The events are `kestrel-demo`'s
//! ordinary cluster traffic (controllers, kubelets, users, CI), parsed once before measuring.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kestrel_event::AuditEvent;
use kestrel_rules::{Detector, RuleSet};

const EVENTS: usize = 20_000;

fn events() -> Vec<(AuditEvent, i64)> {
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-20T09:00:00Z")
        .unwrap()
        .to_utc();
    kestrel_demo::background_traffic(start, 2000, 7)
        .take(EVENTS)
        .map(|line| {
            let e: AuditEvent = serde_json::from_str(&line).expect("generated events parse");
            let t = e
                .event_time()
                .map(kestrel_event::time::to_nanos)
                .unwrap_or_default();
            (e, t)
        })
        .collect()
}

fn audit(c: &mut Criterion) {
    let evs = events();
    let rules = std::sync::Arc::new(RuleSet::bundled());
    let mut g = c.benchmark_group("audit");
    g.throughput(Throughput::Elements(evs.len() as u64));
    g.bench_function("ruleset_stateless", |b| {
        b.iter(|| {
            evs.iter()
                .map(|(e, _)| rules.evaluate_audit(black_box(e)).len())
                .sum::<usize>()
        })
    });
    g.bench_function("detector_stateful", |b| {
        b.iter(|| {
            let mut d = Detector::new(rules.clone());
            evs.iter()
                .map(|(e, t)| d.evaluate_audit(black_box(e), *t).len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, audit);
criterion_main!(benches);
