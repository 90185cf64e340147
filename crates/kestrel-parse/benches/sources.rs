//! Throughput of the node agent's source parsers, in bytes and lines per second.
//!
//! Run: `cargo bench -p kestrel-parse --bench sources`. Each benchmark walks a buffer of lines
//! (split with memchr, as the agent's reader does) and parses every line.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kestrel_parse::{
    parse_coredns, parse_cri, parse_docker, parse_ingress_default, parse_rfc3339_nanos,
    IngressFormat, PartialMerger,
};

const LINES: usize = 10_000;
/// Bytes per CRI line, newline included: the agent's target figure is for 283-byte lines.
const CRI_LINE_BYTES: usize = 283;

/// Calls `f` on each line of `buf`.
#[inline(always)]
fn each_line(buf: &[u8], mut f: impl FnMut(&[u8])) {
    let mut rest = buf;
    while let Some(i) = memchr::memchr(b'\n', rest) {
        f(&rest[..i]);
        rest = &rest[i + 1..];
    }
}

fn cri_buffer(partial_every: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(LINES * CRI_LINE_BYTES);
    for i in 0..LINES {
        let head = format!(
            "2026-11-20T09:{:02}:{:02}.{:09}Z {} {} ",
            (i / 60) % 60,
            i % 60,
            (i * 7919) % 1_000_000_000,
            if i % 10 == 9 { "stderr" } else { "stdout" },
            if partial_every > 0 && i % partial_every == 0 {
                "P"
            } else {
                "F"
            },
        );
        let body = format!(
            "{{\"level\":\"info\",\"ts\":\"2026-11-20T09:00:01.200Z\",\"msg\":\"request served\",\"method\":\"GET\",\"path\":\"/api/v1/products/{i}\",\"status\":200,\"duration_ms\":0.41,\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64)\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\""
        );
        let mut line = head.into_bytes();
        line.extend_from_slice(body.as_bytes());
        line.resize(CRI_LINE_BYTES - 2, b' ');
        line.extend_from_slice(b"}\n");
        buf.extend_from_slice(&line);
    }
    buf
}

fn docker_buffer() -> Vec<u8> {
    let mut buf = Vec::new();
    for i in 0..LINES {
        let line = serde_json::json!({
            "log": format!("{{\"level\":\"info\",\"msg\":\"request served\",\"method\":\"GET\",\"path\":\"/api/v1/products/{i}\",\"status\":200,\"duration_ms\":0.41}}\n"),
            "stream": "stdout",
            "time": format!("2026-11-20T09:00:{:02}.{:09}Z", i % 60, (i * 7919) % 1_000_000_000),
        });
        buf.extend_from_slice(line.to_string().as_bytes());
        buf.push(b'\n');
    }
    buf
}

fn sample_buffer(path: &str, keep: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let data = std::fs::read(format!(
        "{}/../../testdata/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("sample file");
    let lines: Vec<&[u8]> = data
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty() && keep(l))
        .collect();
    let mut buf = Vec::new();
    for i in 0..LINES {
        buf.extend_from_slice(lines[i % lines.len()]);
        buf.push(b'\n');
    }
    buf
}

fn bench_cri(c: &mut Criterion) {
    let buf = cri_buffer(0);
    let mut g = c.benchmark_group("cri_283B");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| {
            let mut n = 0usize;
            each_line(&buf, |l| n += parse_cri(l).unwrap().message.len());
            black_box(n)
        })
    });
    g.bench_function("parse_merge_borrowed", |b| {
        let mut m = PartialMerger::new(16 * 1024);
        b.iter(|| {
            let mut n = 0usize;
            each_line(&buf, |l| {
                if let Some(line) = m.push_cri(parse_cri(l).unwrap()) {
                    n += line.message.len();
                }
            });
            black_box(n)
        })
    });
    g.bench_function("parse_merge_container_log", |b| {
        let mut m = PartialMerger::new(16 * 1024);
        b.iter(|| {
            let mut n = 0usize;
            each_line(&buf, |l| {
                if let Some(line) = m.push_cri(parse_cri(l).unwrap()) {
                    n += black_box(line.into_container_log()).message.len();
                }
            });
            black_box(n)
        })
    });
    let partial = cri_buffer(4);
    g.throughput(Throughput::Bytes(partial.len() as u64));
    g.bench_function("parse_merge_borrowed_25pct_partial", |b| {
        let mut m = PartialMerger::new(16 * 1024);
        b.iter(|| {
            let mut n = 0usize;
            each_line(&partial, |l| {
                if let Some(line) = m.push_cri(parse_cri(l).unwrap()) {
                    n += line.message.len();
                }
            });
            black_box(n)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("cri_283B_lines");
    g.throughput(Throughput::Elements(LINES as u64));
    g.bench_function("parse_merge_borrowed", |b| {
        let mut m = PartialMerger::new(16 * 1024);
        b.iter(|| {
            let mut n = 0usize;
            each_line(&buf, |l| {
                if let Some(line) = m.push_cri(parse_cri(l).unwrap()) {
                    n += line.message.len();
                }
            });
            black_box(n)
        })
    });
    g.finish();
}

fn bench_timestamp(c: &mut Criterion) {
    let mut g = c.benchmark_group("timestamp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rfc3339_nanos", |b| {
        b.iter(|| parse_rfc3339_nanos(black_box(b"2026-11-20T09:00:01.123456789Z")).unwrap())
    });
    g.bench_function("chrono_rfc3339", |b| {
        b.iter(|| {
            chrono::DateTime::parse_from_rfc3339(black_box("2026-11-20T09:00:01.123456789Z"))
                .unwrap()
                .timestamp_nanos_opt()
        })
    });
    g.finish();
}

fn bench_others(c: &mut Criterion) {
    let docker = docker_buffer();
    let ingress = sample_buffer("ingress-nginx/access.log", |_| true);
    let coredns = sample_buffer("coredns/query.log", |l| {
        l.starts_with(b"[INFO] 10.") || l.starts_with(b"[INFO] [f")
    });
    for (name, buf) in [
        ("docker", &docker),
        ("ingress_nginx", &ingress),
        ("coredns", &coredns),
    ] {
        let mut g = c.benchmark_group(name);
        for (unit, tp) in [
            ("bytes", Throughput::Bytes(buf.len() as u64)),
            ("lines", Throughput::Elements(LINES as u64)),
        ] {
            g.throughput(tp);
            match name {
                "docker" => g.bench_function(format!("parse_merge_{unit}"), |b| {
                    let mut m = PartialMerger::new(16 * 1024);
                    b.iter(|| {
                        let mut n = 0usize;
                        each_line(buf, |l| {
                            let d = parse_docker(l).unwrap();
                            if let Some(line) =
                                m.push(d.time, d.stream, d.partial, d.message.as_bytes())
                            {
                                n += line.message.len();
                            }
                        });
                        black_box(n)
                    })
                }),
                "ingress_nginx" => {
                    let format = IngressFormat::default();
                    g.bench_function(format!("parse_{unit}"), |b| {
                        b.iter(|| {
                            let mut n = 0usize;
                            each_line(buf, |l| {
                                n += usize::from(format.parse(l, Some(1)).unwrap().status.unwrap())
                            });
                            black_box(n)
                        })
                    })
                }
                _ => g.bench_function(format!("parse_{unit}"), |b| {
                    b.iter(|| {
                        let mut n = 0usize;
                        each_line(buf, |l| {
                            n += parse_coredns(l, 1)
                                .unwrap()
                                .unwrap()
                                .response_bytes
                                .unwrap_or(0) as usize
                        });
                        black_box(n)
                    })
                }),
            };
        }
        g.finish();
    }
    // The default-format convenience function goes through the same compiled format.
    black_box(
        parse_ingress_default(
            &ingress[..memchr::memchr(b'\n', &ingress).unwrap()],
            Some(1),
        )
        .unwrap(),
    );
}

criterion_group!(benches, bench_cri, bench_timestamp, bench_others);
criterion_main!(benches);
