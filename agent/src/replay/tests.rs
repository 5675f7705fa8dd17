//! Replay end to end on the committed loopback captures, and on every
//! re-encoding of them: other link layers, IP options and extension
//! headers, reordered and duplicated packets, truncated files.

use super::testutil::{
    Order, Owned, Packets, data_file, frames, pcap, pcapng_section, relink, replay,
};
use super::{CaptureError, FlowRecord, output::Report, replay_reader};

/// What tcpdump recorded (capture.sh): curl over HTTP on IPv4 and IPv6, and
/// over TLS 1.3 and 1.2 to openssl s_server (to an IP: no SNI; curl offers
/// h2 and http/1.1, s_server picks neither).
const LOOPBACK: [&str; 4] = [
    r#"{"client":"127.0.0.1:43138","server":"127.0.0.1:18080","protocol":"http","encryption":"plaintext","tls_version":null,"reason":null,"midstream":false,"client_identity":"127.0.0.1","server_identity":"127.0.0.1","policy":"violation","rule":null,"sni":null,"alpn":null,"cipher":null,"inner_protocol":null,"client_auth":null,"cert_issues":null,"cert_not_after":null}"#,
    r#"{"client":"[::1]:34916","server":"[::1]:18081","protocol":"http","encryption":"plaintext","tls_version":null,"reason":null,"midstream":false,"client_identity":"::1","server_identity":"::1","policy":"violation","rule":null,"sni":null,"alpn":null,"cipher":null,"inner_protocol":null,"client_auth":null,"cert_issues":null,"cert_not_after":null}"#,
    r#"{"client":"127.0.0.1:43764","server":"127.0.0.1:18443","protocol":"tls","encryption":"tls","tls_version":"1.3","reason":null,"midstream":false,"client_identity":"127.0.0.1","server_identity":"127.0.0.1","policy":"ok","rule":null,"sni":null,"alpn":null,"cipher":"TLS_AES_256_GCM_SHA384","inner_protocol":null,"client_auth":"server_only","cert_issues":null,"cert_not_after":null}"#,
    r#"{"client":"127.0.0.1:43770","server":"127.0.0.1:18443","protocol":"tls","encryption":"tls","tls_version":"1.2","reason":null,"midstream":false,"client_identity":"127.0.0.1","server_identity":"127.0.0.1","policy":"ok","rule":null,"sni":null,"alpn":null,"cipher":"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384","inner_protocol":null,"client_auth":"server_only","cert_issues":null,"cert_not_after":null}"#,
];

fn lines(flows: &[FlowRecord]) -> Vec<String> {
    let mut e = Report::default();
    flows.iter().map(|r| e.json(r)).collect()
}

fn loopback() -> Vec<Owned> {
    frames(&data_file("loopback.pcap"))
}

/// Replays frames of one link type written as a pcap.
fn replay_frames(f: &[Owned]) -> Vec<String> {
    let lt = f.first().map_or(1, |p| p.link_type);
    lines(&replay(&pcap(f, lt, Order::Little, false)))
}

#[test]
fn loopback_captures_from_three_writers() {
    assert_eq!(lines(&replay(&data_file("loopback.pcap"))), LOOPBACK);
    assert_eq!(lines(&replay(&data_file("loopback.pcapng"))), LOOPBACK);
    assert_eq!(lines(&replay(&data_file("any-sll2.pcap"))), LOOPBACK[..1]);
}

#[test]
fn same_flows_in_every_file_encoding() {
    let f = loopback();
    for o in [Order::Little, Order::Big] {
        for nanos in [false, true] {
            assert_eq!(lines(&replay(&pcap(&f, 1, o, nanos))), LOOPBACK);
        }
        for p in [Packets::Enhanced, Packets::Simple, Packets::Obsolete] {
            assert_eq!(lines(&replay(&pcapng_section(&f, o, p))), LOOPBACK);
        }
    }
}

#[test]
fn same_flows_on_every_link_layer() {
    let f = loopback();
    let family = |ip: &[u8]| if ip[0] >> 4 == 4 { 2u32 } else { 10 };
    let ethertype = |ip: &[u8]| {
        if ip[0] >> 4 == 4 {
            [8u8, 0]
        } else {
            [0x86, 0xdd]
        }
    };
    for raw in [101, 12, 14] {
        assert_eq!(
            replay_frames(&relink(&f, raw, |_| Vec::new())),
            LOOPBACK,
            "{raw}"
        );
    }
    // NULL: the capturing host's byte order; LOOP: network order (BSD values).
    let null = relink(&f, 0, |ip| family(ip).to_le_bytes().to_vec());
    assert_eq!(replay_frames(&null), LOOPBACK);
    let null_be = relink(&f, 0, |ip| family(ip).to_be_bytes().to_vec());
    assert_eq!(replay_frames(&null_be), LOOPBACK);
    let bsd = |ip: &[u8]| if ip[0] >> 4 == 4 { 2u32 } else { 30 };
    let lo = relink(&f, 108, |ip| bsd(ip).to_be_bytes().to_vec());
    assert_eq!(replay_frames(&lo), LOOPBACK);
    let sll = relink(&f, 113, |ip| {
        let mut h = vec![0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0];
        h.extend(ethertype(ip));
        h
    });
    assert_eq!(replay_frames(&sll), LOOPBACK);
    let sll2 = relink(&f, 276, |ip| {
        let mut h = ethertype(ip).to_vec();
        h.extend([0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]);
        h
    });
    assert_eq!(replay_frames(&sll2), LOOPBACK);
    // Ethernet with an 802.1ad outer tag and an 802.1Q inner one.
    let qinq = relink(&f, 1, |ip| {
        let mut h = vec![0u8; 12];
        h.extend([0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20]);
        h.extend(ethertype(ip));
        h
    });
    assert_eq!(replay_frames(&qinq), LOOPBACK);
}

/// Adds IPv4 options (NOP, NOP, NOP, EOL) or an IPv6 hop-by-hop header
/// (Pad1 ... then PadN) before TCP.
fn with_ip_extras(ip: &[u8]) -> Vec<u8> {
    let mut p = ip.to_vec();
    if p[0] >> 4 == 4 {
        let ihl = usize::from(p[0] & 0x0f) * 4;
        p.splice(ihl..ihl, [1, 1, 1, 0]);
        p[0] += 1;
        let total = u16::from_be_bytes([p[2], p[3]]) + 4;
        p[2..4].copy_from_slice(&total.to_be_bytes());
    } else {
        let next = p[6];
        p.splice(40..40, [next, 0, 1, 4, 0, 0, 0, 0]);
        p[6] = 0;
        let plen = u16::from_be_bytes([p[4], p[5]]) + 8;
        p[4..6].copy_from_slice(&plen.to_be_bytes());
    }
    p
}

#[test]
fn same_flows_with_ip_options_and_extension_headers() {
    let f: Vec<Owned> = loopback()
        .iter()
        .map(|p| Owned {
            data: with_ip_extras(super::testutil::ip_of_ethernet(p)),
            link_type: 101,
            ts_ns: p.ts_ns,
        })
        .collect();
    assert_eq!(replay_frames(&f), LOOPBACK);
}

#[test]
fn duplicated_and_reordered_packets_change_nothing() {
    let f = loopback();
    // Every packet twice, as on a node where both ends are captured.
    let twice: Vec<Owned> = f.iter().flat_map(|p| [p.clone(), p.clone()]).collect();
    assert_eq!(replay_frames(&twice), LOOPBACK);
    // Each pair of consecutive packets swapped.
    let mut swapped = f.clone();
    for pair in swapped.chunks_mut(2) {
        pair.reverse();
    }
    let got = replay_frames(&swapped);
    // Swapping may let a SYN-ACK precede its SYN; the flows are still found
    // with their verdicts.
    assert_eq!(got.len(), LOOPBACK.len(), "{got:#?}");
    for want in LOOPBACK {
        assert!(got.iter().any(|g| g == want), "{want} not in {got:#?}");
    }
}

#[test]
fn every_truncation_of_a_real_capture_is_an_error_not_a_panic() {
    for name in ["loopback.pcap", "loopback.pcapng", "any-sll2.pcap"] {
        let file = data_file(name);
        let full = replay(&file);
        for n in 0..file.len() {
            let mut flows = Vec::new();
            match replay_reader(&file[..n], &mut |r| flows.push(r)) {
                Ok(_) => assert!(flows.len() <= full.len()),
                Err(CaptureError::Truncated { offset, got, .. }) => {
                    assert!(offset + got == n as u64, "{name}[..{n}]: {offset} + {got}");
                }
                Err(CaptureError::Empty) => assert_eq!(n, 0),
                Err(e) => panic!("{name}[..{n}]: {e}"),
            }
        }
    }
}

#[test]
fn flows_read_before_a_truncation_are_returned() {
    let file = data_file("loopback.pcap");
    let mut flows = Vec::new();
    let err = replay_reader(&file[..file.len() - 10], &mut |r| flows.push(r));
    assert!(matches!(err, Err(CaptureError::Truncated { .. })));
    assert_eq!(lines(&flows), LOOPBACK);
}

/// Real clients with and without certificates against servers requiring,
/// requesting and not asking for one (mtls-capture.sh), also through a
/// HelloRetryRequest: every flow's `client_auth` is what its client really
/// did, none unknown.
#[test]
fn client_auth_of_real_clients_with_and_without_certificates() {
    use crate::pipeline::client_auth::{self, ClientAuth};
    let tsv = String::from_utf8(data_file("mtls.tsv")).expect("utf-8");
    let expected: std::collections::HashMap<u16, (String, ClientAuth)> = tsv
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let want = match f[5] {
                "mutual" => ClientAuth::Mutual,
                "server_only" => ClientAuth::ServerOnly,
                other => panic!("mtls.tsv: {other}"),
            };
            (f[0].parse().expect("port"), (l.to_owned(), want))
        })
        .collect();
    let pcap = data_file("mtls.pcap");
    // The `1.3+hrr` cases really went through a HelloRetryRequest: its
    // ServerHello carries this fixed random (RFC 8446 4.1.3).
    const HRR_RANDOM: [u8; 32] = [
        0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8,
        0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8,
        0x33, 0x9c,
    ];
    let retries = pcap.windows(32).filter(|w| *w == HRR_RANDOM).count();
    let hrr_cases = tsv.lines().filter(|l| l.contains("\t1.3+hrr\t")).count();
    assert_eq!(
        (retries, hrr_cases),
        (18, 18),
        "one HelloRetryRequest per hrr case"
    );
    let flows = replay(&pcap);
    assert_eq!(flows.len(), expected.len(), "one flow per case");
    let mut mutual = 0;
    for r in &flows {
        let (case, want) = &expected[&r.server.port()];
        let got = client_auth::of(&r.verdict, &r.tls);
        assert_eq!(got, Some(*want), "{case}");
        mutual += usize::from(*want == ClientAuth::Mutual);
    }
    assert_eq!(
        mutual, 34,
        "TLS 1.2 and 1.3, RSA and ECDSA client and server keys, and TLS 1.3 \
         through a HelloRetryRequest"
    );
}

/// Server certificates with every problem the check names, served by real
/// `openssl s_server`s to `s_client` and curl asking for `good.test`
/// (certs-capture.sh): TLS 1.2 names each problem, TLS 1.3 hides them.
#[test]
fn server_certificate_issues_of_real_handshakes() {
    let tsv = String::from_utf8(data_file("certs.tsv")).expect("utf-8");
    let expected: std::collections::HashMap<u16, (String, Option<Vec<String>>)> = tsv
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let want = match f[4] {
                "null" => None,
                "-" => Some(Vec::new()),
                list => Some(list.split(',').map(str::to_owned).collect()),
            };
            (f[0].parse().expect("port"), (l.to_owned(), want))
        })
        .collect();
    let flows = replay(&data_file("certs.pcap"));
    assert_eq!(flows.len(), expected.len(), "one flow per case");
    for r in &flows {
        let (case, want) = &expected[&r.server.port()];
        let got = r.tls.certificate(r.ts_ns).map(|(issues, _)| {
            issues
                .iter()
                .map(|i| i.as_str().to_owned())
                .collect::<Vec<_>>()
        });
        assert_eq!(&got, want, "{case}");
    }
    // The expired one's notAfter, as the JSON line gives it.
    let expired = flows
        .iter()
        .find(|r| r.server.port() == 19504)
        .and_then(|r| r.tls.certificate(r.ts_ns));
    assert_eq!(
        expired.map(|(_, t)| t).as_deref(),
        Some("2021-01-01T00:00:00Z")
    );
}
