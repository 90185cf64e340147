//! Fast generation: each kind of request is rendered once into JSON text with placeholders
//! (`@@ID@@`, `@@STS@@`, ...), split into literal pieces and holes, and then every event is a few
//! `push_str` calls. No `serde_json::Value` is built per event.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::DateTime;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::event::{Req, Stage};

/// Which stages a request reports, and so how its timestamps relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timing {
    /// `ResponseComplete` only (the policy omits `RequestReceived`); received `latency` earlier.
    Complete,
    /// `RequestReceived`, then `ResponseComplete` after `latency`.
    Both,
    /// `RequestReceived`, `ResponseStarted` (a few ms later), `ResponseComplete` after `latency`:
    /// exec, attach, port-forward sessions.
    Streaming,
}

/// One kind of request in the traffic mix.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub weight: u32,
    pub timing: Timing,
    /// Latency range in milliseconds (for watches: the watch's duration).
    pub latency_ms: (u64, u64),
    pub req: Req,
}

impl Spec {
    pub(crate) fn new(weight: u32, timing: Timing, latency_ms: (u64, u64), req: Req) -> Self {
        Spec {
            weight,
            timing,
            latency_ms,
            req,
        }
    }
}

#[derive(Clone, Debug)]
enum Piece {
    Lit(Box<str>),
    /// The auditID (shared by all stages of a request).
    Id,
    /// `requestReceivedTimestamp`, microseconds.
    Rts,
    /// This stage's `stageTimestamp`, microseconds.
    Sts,
    /// `stageTimestamp` at second precision (`creationTimestamp` of new objects).
    Sec,
    /// A resourceVersion.
    Rv,
    /// A 5-character random name suffix, as `generateName` makes.
    Sfx,
    /// A new object's uid.
    Uid,
    /// 16 hex digits (event names).
    Hex,
}

#[derive(Clone, Debug)]
struct Template {
    timing: Timing,
    latency_ns: (u64, u64),
    stages: Vec<(Stage, Vec<Piece>, usize)>,
}

fn compile_line(line: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("@@") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("@@") else { break };
        let hole = match &after[..end] {
            "ID" => Piece::Id,
            "RTS" => Piece::Rts,
            "STS" => Piece::Sts,
            "SEC" => Piece::Sec,
            "RV" => Piece::Rv,
            "SFX" => Piece::Sfx,
            "UID" => Piece::Uid,
            "HEX" => Piece::Hex,
            other => panic!("unknown template hole @@{other}@@"),
        };
        if start > 0 {
            pieces.push(Piece::Lit(rest[..start].into()));
        }
        pieces.push(hole);
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Lit(rest.into()));
    }
    pieces
}

impl Template {
    fn compile(spec: &Spec) -> Self {
        let stages: &[Stage] = match spec.timing {
            Timing::Complete => &[Stage::ResponseComplete],
            Timing::Both => &[Stage::RequestReceived, Stage::ResponseComplete],
            Timing::Streaming => &[
                Stage::RequestReceived,
                Stage::ResponseStarted,
                Stage::ResponseComplete,
            ],
        };
        let stages = stages
            .iter()
            .map(|&stage| {
                let line = spec
                    .req
                    .render("@@ID@@", stage, "@@RTS@@", "@@STS@@")
                    .to_json();
                let len = line.len();
                (stage, compile_line(&line), len)
            })
            .collect();
        Template {
            timing: spec.timing,
            latency_ns: (spec.latency_ms.0 * 1_000_000, spec.latency_ms.1 * 1_000_000),
            stages,
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of the last two seconds seen, so chrono formats once per second.
#[derive(Debug)]
struct TsCache {
    secs: [i64; 2],
    text: [[u8; 19]; 2],
    next: usize,
}

impl TsCache {
    fn new() -> Self {
        TsCache {
            secs: [i64::MIN; 2],
            text: [[b'0'; 19]; 2],
            next: 0,
        }
    }

    fn prefix(&mut self, sec: i64) -> &str {
        let slot = if self.secs[0] == sec {
            0
        } else if self.secs[1] == sec {
            1
        } else {
            let slot = self.next;
            self.next ^= 1;
            let dt = DateTime::from_timestamp(sec, 0).unwrap_or_default();
            let s = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
            let mut buf = [b'0'; 19];
            let n = s.len().min(19);
            buf[..n].copy_from_slice(&s.as_bytes()[..n]);
            self.text[slot] = buf;
            self.secs[slot] = sec;
            slot
        };
        std::str::from_utf8(&self.text[slot]).unwrap_or("1970-01-01T00:00:00")
    }

    /// RFC 3339 with microseconds, as the API server writes audit timestamps.
    fn write_micros(&mut self, out: &mut String, ns: i64) {
        let sec = ns.div_euclid(1_000_000_000);
        let mut micros = (ns.rem_euclid(1_000_000_000) / 1000) as u32;
        out.push_str(self.prefix(sec));
        let mut b = *b".000000Z";
        for i in (1..7).rev() {
            b[i] = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        out.push_str(std::str::from_utf8(&b).unwrap_or(".000000Z"));
    }

    fn write_secs(&mut self, out: &mut String, ns: i64) {
        out.push_str(self.prefix(ns.div_euclid(1_000_000_000)));
        out.push('Z');
    }
}

fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

/// Characters Kubernetes uses for generated name suffixes (no vowels, no confusable digits).
const SUFFIX_ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";

/// Per-request values shared by all stages of the request.
struct Vals {
    id: [u8; 36],
    uid: [u8; 36],
    sfx: [u8; 5],
    rv: u64,
}

fn uuid_v4(rng: &mut SmallRng, out: &mut [u8; 36]) {
    let bytes: [u8; 16] = rng.random();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .encode_lower(out);
}

/// Endless audit traffic generated from a weighted mix of request templates. Events come out in
/// `stageTimestamp` order; later stages of a request wait in a queue until their time.
pub(crate) struct Generator {
    rng: SmallRng,
    templates: Vec<Template>,
    /// Template indices, each repeated `weight` times: a uniform pick is a weighted pick.
    pick: Vec<u16>,
    next_ns: i64,
    mean_ns: u64,
    rv: u64,
    pending: BinaryHeap<Reverse<(i64, u64, String)>>,
    seq: u64,
    ts: TsCache,
}

impl Generator {
    pub(crate) fn new(specs: &[Spec], start_ns: i64, mean_interval_ns: u64, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let templates: Vec<Template> = specs.iter().map(Template::compile).collect();
        let mut pick = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            let i = u16::try_from(i).unwrap_or(u16::MAX);
            pick.extend(std::iter::repeat_n(i, s.weight as usize));
        }
        assert!(!pick.is_empty(), "the traffic mix has no weight");
        // Some requests report two or three stages: space requests so that *events* come at
        // the requested mean interval.
        let weight: u64 = specs.iter().map(|s| u64::from(s.weight)).sum();
        let lines: u64 = specs
            .iter()
            .map(|s| {
                let n = match s.timing {
                    Timing::Complete => 1,
                    Timing::Both => 2,
                    Timing::Streaming => 3,
                };
                u64::from(s.weight) * n
            })
            .sum();
        let mean_request_ns = mean_interval_ns.max(1).saturating_mul(lines) / weight.max(1);
        let rv = 4_100_000 + rng.random_range(0..900_000u64);
        Generator {
            rng,
            templates,
            pick,
            next_ns: start_ns,
            mean_ns: mean_request_ns.max(1),
            rv,
            pending: BinaryHeap::new(),
            seq: 0,
            ts: TsCache::new(),
        }
    }

    /// The next event: its `stageTimestamp` (ns since the epoch) and its JSON line.
    pub(crate) fn next_event(&mut self) -> (i64, String) {
        if let Some(Reverse((t, _, _))) = self.pending.peek() {
            if *t <= self.next_ns {
                let Reverse((t, _, line)) = self.pending.pop().unwrap_or_default();
                return (t, line);
            }
        }
        let t = self.next_ns;
        self.next_ns += self.rng.random_range(0..=2 * self.mean_ns) as i64;

        let idx = self.pick[self.rng.random_range(0..self.pick.len())] as usize;
        let mut vals = Vals {
            id: [0; 36],
            uid: [0; 36],
            sfx: [0; 5],
            rv: 0,
        };
        uuid_v4(&mut self.rng, &mut vals.id);
        uuid_v4(&mut self.rng, &mut vals.uid);
        let mut r: u64 = self.rng.random();
        for c in &mut vals.sfx {
            *c = SUFFIX_ALPHABET[(r % 27) as usize];
            r /= 27;
        }
        self.rv += 1 + (r % 7);
        vals.rv = self.rv;

        let tpl = &self.templates[idx];
        let (lo, hi) = tpl.latency_ns;
        let latency = if hi > lo {
            self.rng.random_range(lo..=hi)
        } else {
            lo
        } as i64;
        let (received, complete) = match tpl.timing {
            Timing::Complete => (t - latency, t),
            Timing::Both | Timing::Streaming => (t, t + latency),
        };
        let started = received + (latency / 8).min(30_000_000);
        let mut first = None;
        for (stage, pieces, len) in &tpl.stages {
            let at = match stage {
                Stage::RequestReceived => received,
                Stage::ResponseStarted => started,
                Stage::ResponseComplete => complete,
            };
            let line = fill(pieces, *len, &vals, &mut self.ts, received, at);
            if first.is_none() {
                first = Some((at, line));
            } else {
                self.seq += 1;
                self.pending.push(Reverse((at, self.seq, line)));
            }
        }
        first.unwrap_or_default()
    }
}

fn fill(pieces: &[Piece], len: usize, v: &Vals, ts: &mut TsCache, rts: i64, sts: i64) -> String {
    let mut out = String::with_capacity(len + 64);
    for p in pieces {
        match p {
            Piece::Lit(s) => out.push_str(s),
            Piece::Id => out.push_str(std::str::from_utf8(&v.id).unwrap_or_default()),
            Piece::Uid => out.push_str(std::str::from_utf8(&v.uid).unwrap_or_default()),
            Piece::Hex => {
                let u = &v.uid;
                for part in [&u[0..8], &u[9..13], &u[14..18]] {
                    out.push_str(std::str::from_utf8(part).unwrap_or_default());
                }
            }
            Piece::Sfx => out.push_str(std::str::from_utf8(&v.sfx).unwrap_or_default()),
            Piece::Rv => push_u64(&mut out, v.rv),
            Piece::Rts => ts.write_micros(&mut out, rts),
            Piece::Sts => ts.write_micros(&mut out, sts),
            Piece::Sec => ts.write_secs(&mut out, sts),
        }
    }
    out
}
