use super::*;
use crate::testdata;
use proptest::prelude::*;

const SEC: i64 = 1_000_000_000;
/// 2026-11-20T09:00:00Z.
const NOV20_9H: i64 = 1_795_165_200 * SEC;
const REF: i64 = NOV20_9H + 3 * 3600 * SEC;

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

enum Outcome {
    Packet(NetfilterLog),
    Skipped,
    Error(NetfilterError),
}

fn kern_log_outcomes() -> Vec<Outcome> {
    testdata::lines("netfilter/kern.log")
        .iter()
        .map(|l| match parse_kern_log(l, REF, 0) {
            Err(e) => Outcome::Error(e),
            Ok(None) => Outcome::Skipped,
            Ok(Some(k)) => match parse_packet(&k.text, k.time) {
                Ok(Some(p)) => Outcome::Packet(p),
                Ok(None) => Outcome::Skipped,
                Err(e) => Outcome::Error(e),
            },
        })
        .collect()
}

fn packet(o: &Outcome) -> &NetfilterLog {
    match o {
        Outcome::Packet(p) => p,
        _ => panic!("not a packet"),
    }
}

#[test]
fn kern_log_sample() {
    let out = kern_log_outcomes();
    let kinds: String = out
        .iter()
        .map(|o| match o {
            Outcome::Packet(_) => 'P',
            Outcome::Skipped => '-',
            Outcome::Error(_) => 'E',
        })
        .collect();
    assert_eq!(kinds, "-P-PPPPPP--PPPP--PPE");

    let calico = packet(&out[1]);
    assert_eq!(
        calico,
        &NetfilterLog {
            time: NOV20_9H + SEC,
            prefix: s("calico-packet:"),
            in_interface: s("cali8d1e2f3a4b5"),
            out_interface: s("eth0"),
            mac: s("ee:ee:ee:ee:ee:ee:0a:58:0a:f4:01:07:08:00"),
            src_ip: s("10.244.1.7"),
            dst_ip: s("169.254.169.254"),
            protocol: s("TCP"),
            src_port: Some(43512),
            dst_port: Some(80),
            length: Some(60),
            ttl: Some(64),
            tcp_flags: s("SYN"),
            raw: "calico-packet: IN=cali8d1e2f3a4b5 OUT=eth0 MAC=ee:ee:ee:ee:ee:ee:0a:58:0a:f4:01:07:08:00 SRC=10.244.1.7 DST=169.254.169.254 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=4321 DF PROTO=TCP SPT=43512 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0".into(),
        }
    );
    let ufw = packet(&out[3]);
    assert_eq!(
        (ufw.prefix.as_deref(), ufw.out_interface.as_deref()),
        (Some("[UFW BLOCK]"), None)
    );
    assert_eq!(packet(&out[4]).tcp_flags, s("ACK FIN"));
    // A prefix glued to `IN=`, and ICMP without ports.
    let icmp = packet(&out[5]);
    assert_eq!(
        (icmp.prefix.as_deref(), icmp.protocol.as_deref()),
        (Some("DROP-IN:"), Some("ICMP"))
    );
    assert_eq!((icmp.src_port, icmp.dst_port), (None, None));
    // UDP repeats LEN=: the packet's length is the first.
    let udp = packet(&out[6]);
    assert_eq!((udp.length, udp.dst_port), (Some(61), Some(53)));
    let v6 = packet(&out[7]);
    assert_eq!(
        (v6.prefix.as_deref(), v6.ttl, v6.protocol.as_deref()),
        (None, Some(255), Some("ICMPv6"))
    );
    assert_eq!(v6.src_ip, s("fe80:0000:0000:0000:0042:acff:fe11:0001"));
    // The packet quoted in an ICMP error is not the logged packet.
    let unreachable = packet(&out[8]);
    assert_eq!(
        (unreachable.src_ip.as_deref(), unreachable.dst_ip.as_deref()),
        (Some("10.244.1.7"), Some("10.96.0.10"))
    );
    assert_eq!(
        (
            unreachable.src_port,
            unreachable.dst_port,
            unreachable.length
        ),
        (None, None, Some(88))
    );
    // `Nov  5` with a space-padded uptime stamp.
    let nov5 = packet(&out[11]);
    assert_eq!(nov5.time, NOV20_9H - 15 * 86_400 * SEC + 10 * SEC);
    assert_eq!(nov5.dst_port, Some(5432));
    // No uptime stamp, an empty MAC=, a protocol number.
    let gre = packet(&out[12]);
    assert_eq!(
        (
            gre.mac.as_deref(),
            gre.protocol.as_deref(),
            gre.prefix.as_deref()
        ),
        (None, Some("47"), None)
    );
    // RFC 3339 stamps, with and without an offset.
    assert_eq!(packet(&out[13]).time, NOV20_9H + 12 * SEC + 123_456_000);
    let v6tcp = packet(&out[14]);
    assert_eq!(v6tcp.time, NOV20_9H + 13 * SEC + 1_000);
    assert_eq!(
        (v6tcp.ttl, v6tcp.tcp_flags.as_deref()),
        (Some(63), Some("ACK PSH"))
    );
    assert_eq!(packet(&out[17]).in_interface, None);
    let latin1 = packet(&out[18]);
    assert!(latin1.raw.ends_with("note=caf\u{fffd}"), "{}", latin1.raw);
    assert_eq!(latin1.tcp_flags, s("RST ACK"));
    match &out[19] {
        Outcome::Error(e) => assert_eq!(
            e,
            &NetfilterError::Value {
                field: "SPT",
                at: 82,
                value: "99999".into(),
                reason: "number out of range"
            }
        ),
        _ => panic!("expected an error"),
    }
}

#[test]
fn kmsg_sample() {
    let boot = NOV20_9H - 12_345 * SEC;
    let lines = testdata::lines("netfilter/kmsg.txt");
    let recs: Vec<_> = lines.iter().map(|l| parse_kmsg(l, boot).unwrap()).collect();
    assert_eq!(
        recs.iter().filter(|r| r.is_none()).count(),
        2,
        "dictionary lines"
    );
    let recs: Vec<KmsgRecord<'_>> = recs.into_iter().flatten().collect();
    assert_eq!(
        recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1001, 1002, 1003, 1004, 1005, 1006]
    );
    assert_eq!(recs[1].time, boot + 12_345_678_901_000);
    assert_eq!((recs[1].level, recs[1].facility), (4, 0));
    assert_eq!((recs[3].level, recs[3].facility), (4, 1));
    assert!(recs[2].text.starts_with("[UFW BLOCK] IN=eth0"));
    let packets: Vec<NetfilterLog> = recs
        .iter()
        .filter_map(|r| parse_packet(&r.text, r.time).unwrap())
        .collect();
    assert_eq!(packets.len(), 3);
    assert_eq!(packets[2].src_ip, s("fd00:10:244:2::f"));
    assert_eq!(packets[2].dst_port, Some(5353));
    // A whole record as one read returns it, dictionary included.
    let whole = b"6,7,1000,-;hello\n SUBSYSTEM=net\n DEVICE=n7\n";
    let r = parse_kmsg(whole, 0).unwrap().unwrap();
    assert_eq!((r.seq, r.time, r.text.as_ref()), (7, 1_000_000, "hello"));
}

#[test]
fn malformed_kmsg() {
    let e = |b: &[u8]| parse_kmsg(b, 0).unwrap_err();
    assert_eq!(e(b""), NetfilterError::Empty);
    assert_eq!(
        e(b"6,7,1000,-"),
        NetfilterError::Header {
            format: "/dev/kmsg",
            at: 10,
            reason: "no `;` before the text"
        }
    );
    assert_eq!(
        e(b"6,x,1000,-;t"),
        NetfilterError::Value {
            field: "sequence",
            at: 2,
            value: "x".into(),
            reason: "expected a number"
        }
    );
    assert_eq!(
        e(b"6,7;t"),
        NetfilterError::Value {
            field: "timestamp",
            at: 4,
            value: "".into(),
            reason: "expected a number"
        }
    );
    assert_eq!(
        e(b"6,7,99999999999999999999,-;t"),
        NetfilterError::Value {
            field: "timestamp",
            at: 4,
            value: "99999999999999999999".into(),
            reason: "number out of range"
        }
    );
    assert_eq!(e(b"6,7,18446744073709551,-;t").kind(), "invalid_header");
}

#[test]
fn malformed_kern_log() {
    let e = |b: &[u8]| parse_kern_log(b, REF, 0).unwrap_err();
    assert_eq!(e(b""), NetfilterError::Empty);
    assert_eq!(e(b"garbage").kind(), "invalid_header");
    assert_eq!(
        e(b"Foo 20 09:00:01 node-1 kernel: x"),
        NetfilterError::Header {
            format: "syslog",
            at: 0,
            reason: "unknown month"
        }
    );
    assert_eq!(
        e(b"Nov 31 09:00:01 node-1 kernel: x").kind(),
        "invalid_header"
    );
    assert_eq!(
        e(b"Nov 20 09:0x:01 node-1 kernel: x").kind(),
        "invalid_header"
    );
    assert!(matches!(
        e(b"2026-11-20T09:00:01 node-1 kernel: x"),
        NetfilterError::Time(_)
    ));
    assert_eq!(
        e(b"Nov 20 09:00:01 node-1"),
        NetfilterError::Header {
            format: "syslog",
            at: 16,
            reason: "no program after the host"
        }
    );
}

#[test]
fn traditional_stamps_get_their_year_and_zone() {
    let jan1 = 1_798_761_600 * SEC; // 2027-01-01T00:00:00Z
    let l = parse_kern_log(b"Dec 31 23:59:59 n kernel: x", jan1, 0)
        .unwrap()
        .unwrap();
    assert_eq!(l.time, jan1 - SEC, "last year's December");
    let l = parse_kern_log(b"Jan  1 00:00:05 n kernel: x", jan1, 0)
        .unwrap()
        .unwrap();
    assert_eq!(l.time, jan1 + 5 * SEC, "a few seconds of clock skew");
    // A node in UTC+2: 02:00 local is midnight UTC.
    let l = parse_kern_log(b"Jan  1 02:00:00 n kernel: x", jan1, 7200)
        .unwrap()
        .unwrap();
    assert_eq!(l.time, jan1);
    // Feb 29 goes back to the last leap year.
    let l = parse_kern_log(b"Feb 29 00:00:00 n kernel: x", jan1, 0)
        .unwrap()
        .unwrap();
    assert_eq!(l.time, 1_709_164_800 * SEC); // 2024-02-29
}

#[test]
fn packet_edge_cases() {
    assert_eq!(parse_packet("", 0), Ok(None));
    assert_eq!(parse_packet("IN=eth0 OUT= MAC=aa", 0), Ok(None));
    assert_eq!(parse_packet("SRC=1.2.3.4 DST=5.6.7.8", 0), Ok(None));
    // `IN=` inside the prefix: the anchor is the one followed by OUT=.
    let p = parse_packet("LOGIN=x IN=eth0 OUT= SRC=1.1.1.1 DST=2.2.2.2 PROTO=TCP", 0)
        .unwrap()
        .unwrap();
    assert_eq!(
        (p.prefix.as_deref(), p.in_interface.as_deref()),
        (Some("LOGIN=x"), Some("eth0"))
    );
    assert_eq!(
        parse_packet("IN=eth0 OUT= SRC=1.1.1.1 DST=2.2.2.2 LEN=x", 0),
        Err(NetfilterError::Value {
            field: "LEN",
            at: 41,
            value: "x".into(),
            reason: "expected a number"
        })
    );
}

proptest! {
    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_kmsg(&bytes, 0);
        let _ = parse_kmsg(&bytes, i64::MAX);
        let _ = parse_kern_log(&bytes, REF, 0);
        let _ = parse_kern_log(&bytes, i64::MIN, -86_400);
        let _ = parse_packet(&String::from_utf8_lossy(&bytes), 0);
    }

    #[test]
    fn never_panics_on_packet_like_text(
        toks in proptest::collection::vec(
            prop_oneof!["(IN|OUT|SRC|DST|LEN|TTL|SPT|DPT|PROTO|MAC)=[0-9a-z.:]{0,6}", "SYN|ACK|\\[|\\]|DF", "[ -~]{0,8}"],
            0..20)
    ) {
        let _ = parse_packet(&toks.join(" "), 0);
    }
}
