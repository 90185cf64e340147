//! Cost of redaction on the node: the built-in patterns over realistic log lines without
//! secrets (the common case: one Aho–Corasick pass, no regex) and with one secret each.
//! `cargo bench -p kestrel-agent --bench redact`; criterion reports the throughput in bytes.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kestrel_agent::process::{RedactionConfig, Redactor};

/// 1,000 clean lines in the shapes of container logs (access logs, JSON, plain text).
fn clean_lines() -> Vec<String> {
    (0..1000)
        .map(|i| match i % 4 {
            0 => format!(
                "10.244.1.{} - - [20/Nov/2026:09:00:{:02} +0000] \"GET /api/v1/orders/{i}?page=2 HTTP/1.1\" 200 {} \"https://shop.example.com/cart\" \"Mozilla/5.0 (X11; Linux x86_64)\" 0.012 [shop-web-80] 10.244.2.7:8080 {}",
                i % 250,
                i % 60,
                1200 + i,
                i * 7919
            ),
            1 => format!(
                r#"{{"level":"info","ts":"2026-11-20T09:00:{:02}.123Z","msg":"order placed","order_id":{i},"user":"u-{}","latency_ms":{}}}"#,
                i % 60,
                i * 31,
                i % 97
            ),
            2 => format!(
                "2026-11-20 09:00:{:02} INFO  [worker-{}] c.s.orders.OrderService - processed batch {i} in {} ms, {} items",
                i % 60,
                i % 8,
                i % 300,
                i % 50
            ),
            _ => format!(
                "I1120 09:00:{:02}.{:06} 1 controller.go:{}] Successfully synced pod default/web-{i} secretsSynced=true",
                i % 60,
                i,
                100 + i % 400
            ),
        })
        .collect()
}

/// The same lines, each carrying one secret of a different kind.
fn secret_lines() -> Vec<String> {
    let secrets = [
        "Authorization: Bearer abcdef0123456789abcdef",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "key AKIAIOSFODNN7EXAMPLE",
        "GET /login?user=bob&password=hunter2",
        "dsn postgres://app:s3cr3t@db:5432/shop",
        "ghp_0123456789abcdefghijABCDEFGHIJ0123456789",
    ];
    clean_lines()
        .into_iter()
        .enumerate()
        .map(|(i, l)| format!("{l} {}", secrets[i % secrets.len()]))
        .collect()
}

fn bench(c: &mut Criterion) {
    let redactor = Redactor::new(&RedactionConfig::default()).expect("defaults compile");
    let mut group = c.benchmark_group("redact");
    for (name, lines) in [
        ("clean", clean_lines()),
        ("one_secret_each", secret_lines()),
    ] {
        let bytes: usize = lines.iter().map(String::len).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_with_input(BenchmarkId::new("builtin", name), &lines, |b, lines| {
            let mut counts = redactor.new_counts();
            b.iter(|| {
                let mut changed = 0usize;
                for l in lines {
                    if let std::borrow::Cow::Owned(_) = redactor.redact(l, &mut counts) {
                        changed += 1;
                    }
                }
                changed
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
