//! The kernel programs on crafted packets (BPF_PROG_TEST_RUN): malformed
//! headers, IPv4 options, IPv6 extension headers, fragments, retransmits,
//! reordering, split hellos, large (GSO-style) packets. Every case must
//! return "pass" and end in the right verdict or a counted parse failure.
//! Each case loads a fresh copy of the programs, so maps start empty.

use agent_common::wire::{DEFAULT_MAX_FLOWS, FLIGHT_MAX, HelloHeader, PREFIX, Stat};
use agent_common::{Encryption, Protocol, TlsVersion};
use aya::programs::{Program, TestRun, TestRunOptions};
use plainsight::kernel::datapath::{self, Datapath, LoadOptions};
use plainsight::{kernel::events::decode, pipeline::flow::Flow};
use plainsight_tests::packets::{ACK, FIN, PSH, RST, SYN, Segment, ext_header, fragment_header};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../agent-common/tests/fixtures/"
);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{name}")).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The hook programs a case runs through.
#[derive(Clone, Copy, Debug)]
enum Hook {
    CgroupEgress,
    TcIngress,
}

impl Hook {
    const ALL: [Hook; 2] = [Hook::CgroupEgress, Hook::TcIngress];

    fn program(self) -> &'static str {
        match self {
            Self::CgroupEgress => "cgroup_egress",
            Self::TcIngress => "tc_ingress",
        }
    }

    /// What the program must return: pass (cgroup) / next (TC, -1).
    fn pass(self) -> u32 {
        match self {
            Self::CgroupEgress => 1,
            Self::TcIngress => u32::MAX,
        }
    }
}

struct Kernel {
    dp: Datapath,
    hook: Hook,
}

impl Kernel {
    fn load(hook: Hook) -> Self {
        Self::load_with(hook, 1 << 16, 1024)
    }

    fn load_with(hook: Hook, ring_bytes: u32, max_flows: u32) -> Self {
        plainsight_tests::require_root();
        let mut dp = datapath::load(&LoadOptions {
            include_loopback: false,
            max_flows,
            ring_bytes,
        })
        .expect("loading the programs");
        match dp
            .ebpf
            .program_mut(hook.program())
            .expect("program present")
        {
            Program::CgroupSkb(p) => p.load().expect("verifier accepts cgroup_egress"),
            Program::SchedClassifier(p) => p.load().expect("verifier accepts tc_ingress"),
            _ => unreachable!("hook programs are cgroup_skb or classifier"),
        }
        Self { dp, hook }
    }

    /// Runs one frame through the hook program; asserts it passed.
    fn send(&mut self, seg: &Segment) {
        self.send_raw(&seg.frame());
    }

    fn send_raw(&mut self, frame: &[u8]) {
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::default()
        };
        let ret = match self
            .dp
            .ebpf
            .program(self.hook.program())
            .expect("program present")
        {
            Program::CgroupSkb(p) => p.test_run(opts),
            Program::SchedClassifier(p) => p.test_run(opts),
            _ => unreachable!(),
        }
        .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on {}: {e}", self.hook.program()))
        .return_value;
        assert_eq!(
            ret,
            self.hook.pass(),
            "{:?} must always pass the packet",
            self.hook
        );
    }

    fn events(&mut self) -> Vec<Flow> {
        let mut out = Vec::new();
        while let Some(item) = self.dp.events.next() {
            out.push(decode(&item).expect("well-formed event"));
        }
        out
    }

    /// Every hello record on the ring: (header, hello bytes).
    fn hellos(&mut self) -> Vec<(HelloHeader, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(item) = self.dp.hellos.next() {
            let (h, bytes) =
                plainsight::kernel::events::decode_hello(&item).expect("well-formed hello");
            out.push((h, bytes.to_vec()));
        }
        out
    }

    fn stat(&self, s: Stat) -> u64 {
        datapath::read_stats(&self.dp.stats)[s as usize]
    }

    /// The single verdict the case must produce.
    fn one_verdict(&mut self) -> Flow {
        let ev = self.events();
        assert_eq!(
            ev.len(),
            1,
            "{:?}: exactly one verdict, got {ev:?}",
            self.hook
        );
        ev.into_iter().next().expect("one")
    }
}

const C: &str = "10.1.0.1";
const S: &str = "10.1.0.2";
const C6: &str = "fd00::1";
const S6: &str = "fd00::2";
const GET: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: example\r\nUser-Agent: curl/7.88.1\r\n\r\n";

/// SYN from the client, SYN-ACK from the server: client data starts at
/// seq 1001, server data at 5001.
fn handshake(k: &mut Kernel, c: &str, s: &str) {
    k.send(&Segment::new(c, 40000, s, 80, 1000, SYN, b""));
    k.send(&Segment::new(s, 80, c, 40000, 5000, SYN | ACK, b""));
}

fn assert_http(f: &Flow) {
    assert_eq!(f.verdict.protocol, Protocol::Http, "{f:?}");
    assert_eq!(f.verdict.encryption, Encryption::Plaintext, "{f:?}");
    assert_eq!(f.server_port, 80, "server is the SYN's destination: {f:?}");
    assert_eq!(f.client_port, 40000, "{f:?}");
}

#[test]
fn tls13_handshake_is_tls_1_3_on_both_hooks() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        let hello = fixture("curl-7.88-tls13-s_server.c2s.0.bin");
        k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, &hello));
        assert!(k.events().is_empty(), "waits for the ServerHello");
        k.send(&Segment::new(
            S,
            80,
            C,
            40000,
            5001,
            ACK | PSH,
            &fixture("curl-7.88-tls13-s_server.s2c.0.bin"),
        ));
        let f = k.one_verdict();
        assert_eq!(f.verdict.encryption, Encryption::Tls);
        assert_eq!(f.verdict.tls_version, TlsVersion::Tls13);
        assert!(!f.midstream);
    }
}

#[test]
fn client_hello_split_across_segments_is_still_tls() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        let hello = fixture("curl-7.88-tls13-s_server.c2s.0.bin");
        let (a, b) = hello.split_at(100);
        k.send(&Segment::new(C, 40000, S, 80, 1001, ACK, a));
        k.send(&Segment::new(C, 40000, S, 80, 1101, ACK | PSH, b));
        k.send(&Segment::new(
            S,
            80,
            C,
            40000,
            5001,
            ACK | PSH,
            &fixture("curl-7.88-tls13-s_server.s2c.0.bin"),
        ));
        let f = k.one_verdict();
        assert_eq!(f.verdict.encryption, Encryption::Tls, "{hook:?}");
        assert_eq!(f.verdict.tls_version, TlsVersion::Tls13, "{hook:?}");
    }
}

#[test]
fn ipv4_options_do_not_hide_the_payload() {
    for hook in Hook::ALL {
        for words in 1..=10u8 {
            let mut k = Kernel::load(hook);
            handshake(&mut k, C, S);
            let mut seg = Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET);
            // NOPs then end-of-options: any content is fine for the parser.
            seg.ip_options = vec![1; usize::from(words) * 4];
            k.send(&seg);
            assert_http(&k.one_verdict());
        }
    }
}

#[test]
fn ipv6_with_zero_to_five_extension_headers_is_classified() {
    for hook in Hook::ALL {
        for n in 0..=5usize {
            let mut k = Kernel::load(hook);
            k.send(&Segment::new(C6, 40000, S6, 80, 1000, SYN, b""));
            let mut seg = Segment::new(C6, 40000, S6, 80, 1001, ACK | PSH, GET);
            // hop-by-hop first (RFC 8200 order), then destination options,
            // routing, a first fragment, destination options again.
            let kinds: [(u8, Vec<u8>); 5] = [
                (0, ext_header(1)),
                (60, ext_header(2)),
                (43, ext_header(1)),
                (44, fragment_header(0, false)),
                (60, ext_header(1)),
            ];
            seg.ext_headers = kinds.into_iter().take(n).collect();
            k.send(&seg);
            let f = k.one_verdict();
            assert_http(&f);
            assert_eq!(
                f.client.to_string(),
                C6,
                "{hook:?} with {n} extension headers"
            );
        }
    }
}

#[test]
fn ipv6_with_too_many_extension_headers_is_a_counted_parse_failure() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        let mut seg = Segment::new(C6, 40000, S6, 80, 1000, SYN, b"");
        seg.ext_headers = (0..7).map(|_| (60, ext_header(1))).collect();
        k.send(&seg);
        assert_eq!(k.stat(Stat::ParseIpv6ExtLimit), 1, "{hook:?}");
        assert_eq!(k.stat(Stat::FlowsCreated), 0);
    }
}

#[test]
fn non_first_fragments_are_counted_and_skipped() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        let mut v4 = Segment::new(C, 40000, S, 80, 1000, SYN, b"");
        v4.frag_offset = 100;
        k.send(&v4);
        let mut v6 = Segment::new(C6, 40000, S6, 80, 1000, SYN, b"");
        v6.ext_headers = vec![(44, fragment_header(100, false))];
        k.send(&v6);
        assert_eq!(k.stat(Stat::ParseFragment), 2, "{hook:?}");
        assert_eq!(k.stat(Stat::FlowsCreated), 0, "{hook:?}");
    }
}

#[test]
fn truncated_headers_are_counted_never_read() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        // BPF_PROG_TEST_RUN itself refuses frames without a whole IP header,
        // so the truncations start inside TCP: a 10-byte TCP header (v4, v6),
        // and IPv4 headers whose IHL claims more than the frame holds or
        // less than the minimum.
        let full = Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET).frame();
        k.send_raw(&full[..14 + 20 + 10]);
        let full6 = Segment::new(C6, 40000, S6, 80, 1001, ACK | PSH, GET).frame();
        k.send_raw(&full6[..14 + 40 + 10]);
        let mut long_ihl = full[..14 + 20 + 20].to_vec();
        long_ihl[14] = 0x4f; // 60-byte IPv4 header in a 40-byte packet
        k.send_raw(&long_ihl);
        let mut short_ihl = full.clone();
        short_ihl[14] = 0x44; // 16-byte IPv4 header: invalid
        k.send_raw(&short_ihl);
        assert_eq!(k.stat(Stat::ParseTruncated), 4, "{hook:?}");
        assert_eq!(k.stat(Stat::TcpPackets), 0, "{hook:?}");
        assert!(k.events().is_empty());
    }
}

#[test]
fn bad_tcp_data_offset_is_counted() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        for doff in 0..5u8 {
            let mut seg = Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET);
            seg.doff = doff;
            k.send(&seg);
        }
        assert_eq!(k.stat(Stat::ParseBadTcpOffset), 5, "{hook:?}");
        assert!(k.events().is_empty());
    }
}

#[test]
fn data_offset_past_the_packet_end_reads_no_payload() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        // Claims a 60-byte TCP header; the packet ends after 20.
        let mut seg = Segment::new(C, 40000, S, 80, 1001, ACK | PSH, b"GET ");
        seg.doff = 15;
        seg.payload.clear();
        let mut frame = seg.frame();
        frame.truncate(14 + 20 + 20);
        k.send_raw(&frame);
        assert_eq!(k.stat(Stat::PayloadSegments), 0, "{hook:?}");
        assert!(k.events().is_empty());
    }
}

#[test]
fn zero_length_segments_and_keepalives_change_nothing() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        // A pure ACK of an unknown flow creates nothing.
        k.send(&Segment::new(C, 40001, S, 80, 77, ACK, b""));
        assert_eq!(k.stat(Stat::FlowsCreated), 0, "{hook:?}");
        handshake(&mut k, C, S);
        k.send(&Segment::new(C, 40000, S, 80, 1001, ACK, b""));
        // Keep-alive: one byte at seq - 1.
        k.send(&Segment::new(C, 40000, S, 80, 1000, ACK, b"\0"));
        assert_eq!(
            k.stat(Stat::PayloadSegments),
            0,
            "{hook:?}: nothing inspected"
        );
        k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET));
        assert_http(&k.one_verdict());
        // The two pure ACKs skipped the flow table; each of the six packets
        // is in the totals exactly once, and nothing failed to parse.
        assert_eq!(k.stat(Stat::PureAcks), 2, "{hook:?}");
        assert_eq!(k.stat(Stat::TcpPackets), 6, "{hook:?}");
        assert_eq!(k.stat(Stat::Packets), 6, "{hook:?}");
        assert_eq!(k.stat(Stat::FlowsCreated), 1, "{hook:?}");
    }
}

#[test]
fn packet_totals_count_parse_failures_once() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        let full = Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET).frame();
        k.send_raw(&full[..14 + 20 + 10]);
        assert_eq!(k.stat(Stat::ParseTruncated), 1, "{hook:?}");
        assert_eq!(k.stat(Stat::TcpPackets), 2, "{hook:?}");
        assert_eq!(k.stat(Stat::Packets), 3, "{hook:?}");
    }
}

#[test]
fn one_byte_segments_are_still_plaintext() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        let mut seq = 1001;
        for chunk in GET.chunks(1).take(3) {
            k.send(&Segment::new(C, 40000, S, 80, seq, ACK | PSH, chunk));
            seq += 1;
        }
        k.send(&Segment::new(C, 40000, S, 80, seq, ACK | PSH, &GET[3..]));
        k.send(&Segment::new(
            C,
            40000,
            S,
            80,
            seq + u32::try_from(GET.len() - 3).expect("fits"),
            FIN | ACK,
            b"",
        ));
        k.send(&Segment::new(S, 80, C, 40000, 5001, FIN | ACK, b""));
        let f = k.one_verdict();
        assert_eq!(
            f.verdict.encryption,
            Encryption::Plaintext,
            "{hook:?}: {f:?}"
        );
    }
}

#[test]
fn retransmitted_first_segment_is_classified_once() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        let seg = Segment::new(C, 40000, S, 80, 1001, ACK | PSH, b"\x00\x01binary");
        k.send(&seg);
        k.send(&seg);
        k.send(&seg);
        assert_eq!(
            k.stat(Stat::PayloadSegments),
            1,
            "{hook:?}: retransmits are not inspected"
        );
    }
}

#[test]
fn retransmitted_fin_does_not_end_the_flow_before_the_other_side_closes() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET));
        assert_http(&k.one_verdict());
        // As captured on a veth with openssl s_server: the server closes,
        // retransmits its FIN, then the client's last data (a TLS
        // close_notify) and FIN follow. The late data is the same flow,
        // not a new mid-stream one.
        let fin = Segment::new(S, 80, C, 40000, 5001, ACK | FIN, b"");
        k.send(&fin);
        k.send(&fin);
        let late = 1001 + u32::try_from(GET.len()).expect("fits");
        let close_notify = b"\x15\x03\x03\x00\x02\x01\x00";
        k.send(&Segment::new(
            C,
            40000,
            S,
            80,
            late,
            ACK | PSH,
            close_notify,
        ));
        k.send(&Segment::new(C, 40000, S, 80, late + 7, ACK | FIN, b""));
        let again = k.events();
        assert!(again.is_empty(), "{hook:?}: a second verdict {again:?}");
        assert_eq!(k.stat(Stat::FlowsCreated), 1, "{hook:?}: one flow");
        assert_eq!(k.stat(Stat::FlowsClosed), 1, "{hook:?}: closed once");
    }
}

#[test]
fn tc_decided_flow_skips_the_flow_table_but_a_new_connection_on_its_ports_does_not() {
    // Per-CPU slots (the recent-flow cache) must be the same from run to run.
    plainsight_tests::pin_to_this_cpu().expect("pinning the test thread");
    let mut k = Kernel::load(Hook::TcIngress);
    handshake(&mut k, C, S);
    k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET));
    assert_http(&k.one_verdict());
    // The first segment after the verdict fills the CPU's slot; the ones
    // that continue it exactly skip the flow table.
    let mut seq = 1001 + u32::try_from(GET.len()).expect("fits");
    for _ in 0..4 {
        k.send(&Segment::new(C, 40000, S, 80, seq, ACK | PSH, b"body"));
        seq += 4;
    }
    assert_eq!(k.stat(Stat::RecentFastPath), 3, "continuing segments");
    // A retransmit does not continue the slot: the long way, not
    // classified again.
    k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET));
    assert_eq!(k.stat(Stat::RecentFastPath), 3, "a retransmit is looked up");
    assert_eq!(k.stat(Stat::PayloadSegments), 1, "and not inspected again");
    // Both FINs remove the flow (FINs never take the shortcut).
    k.send(&Segment::new(C, 40000, S, 80, seq, ACK | FIN, b""));
    k.send(&Segment::new(S, 80, C, 40000, 5001, ACK | FIN, b""));
    assert_eq!(k.stat(Stat::FlowsClosed), 1, "closed");
    // A new connection on the same addresses and ports starts at a fresh
    // ISN: its data does not continue the stale slot and is classified.
    k.send(&Segment::new(C, 40000, S, 80, 777_000, SYN, b""));
    k.send(&Segment::new(S, 80, C, 40000, 888_000, SYN | ACK, b""));
    k.send(&Segment::new(C, 40000, S, 80, 777_001, ACK | PSH, GET));
    assert_http(&k.one_verdict());
    assert_eq!(
        k.stat(Stat::RecentFastPath),
        3,
        "the stale slot matched nothing"
    );
    assert_eq!(k.stat(Stat::FlowsCreated), 2, "a second flow");
}

#[test]
fn tc_second_sighting_of_a_decided_flows_segment_skips_the_flow_table() {
    // Between two pods on one node, TC on both pods' veths sees each
    // packet twice, one right after the other.
    plainsight_tests::pin_to_this_cpu().expect("pinning the test thread");
    let mut k = Kernel::load(Hook::TcIngress);
    handshake(&mut k, C, S);
    k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET));
    k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET));
    assert_http(&k.one_verdict());
    let mut seq = 1001 + u32::try_from(GET.len()).expect("fits");
    for _ in 0..4 {
        let body = Segment::new(C, 40000, S, 80, seq, ACK | PSH, b"body");
        k.send(&body);
        k.send(&body);
        seq += 4;
    }
    // The request's second sighting (decided by its first) fills the
    // slot; every body after it, seen once or twice, takes the shortcut.
    assert_eq!(k.stat(Stat::RecentFastPath), 8, "second sightings");
    assert_eq!(k.stat(Stat::PayloadSegments), 1, "the request, once");
    // An older segment is not the one that moved the slot: looked up.
    k.send(&Segment::new(C, 40000, S, 80, seq - 8, ACK | PSH, b"body"));
    assert_eq!(k.stat(Stat::RecentFastPath), 8, "an older retransmit");
    // Both FINs, each seen twice, close the flow once, with no second
    // verdict.
    let fin_c = Segment::new(C, 40000, S, 80, seq, ACK | FIN, b"");
    let fin_s = Segment::new(S, 80, C, 40000, 5001, ACK | FIN, b"");
    for fin in [&fin_c, &fin_c, &fin_s, &fin_s] {
        k.send(fin);
    }
    assert_eq!(k.stat(Stat::FlowsClosed), 1, "closed once");
    assert!(k.events().is_empty(), "no second verdict");
}

#[test]
fn a_node_local_connection_seen_at_both_ends_is_tracked_once() {
    // Each segment twice in a row, as both sockets of a connection
    // between two pods on one node (cgroup) or both pods' veths (TC).
    // Every bare SYN is remembered: its second sighting marks the flow
    // node-local (one lookup); after it every segment's second sighting
    // skips the flow table, and the flow has one entry, one verdict and
    // one close. Per-CPU slots: one CPU throughout.
    plainsight_tests::pin_to_this_cpu().expect("pinning the test thread");
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        let reply = b"HTTP/1.1 200 OK\r\n\r\n";
        let after = 1001 + len(GET);
        let segs = [
            Segment::new(C, 40000, S, 80, 1000, SYN, b""),
            Segment::new(S, 80, C, 40000, 5000, SYN | ACK, b""),
            Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET),
            Segment::new(S, 80, C, 40000, 5001, ACK | PSH, reply),
            Segment::new(C, 40000, S, 80, after, ACK | FIN, b""),
            Segment::new(S, 80, C, 40000, 5001 + len(reply), ACK | FIN, b""),
        ];
        for seg in &segs {
            k.send(seg);
            k.send(seg);
        }
        assert_http(&k.one_verdict());
        // (On TC the reply's second sighting is the recent-flow slot's.)
        let skipped = k.stat(Stat::SecondSightings) + k.stat(Stat::RecentFastPath);
        assert_eq!(skipped, 6, "{hook:?}: every second sighting");
        assert_eq!(k.stat(Stat::EmbryosCreated), 1, "{hook:?}");
        assert_eq!(k.stat(Stat::FlowsCreated), 1, "{hook:?}");
        assert_eq!(k.stat(Stat::FlowsClosed), 1, "{hook:?}");
        assert_eq!(k.stat(Stat::PayloadSegments), 1, "{hook:?}");
        // A third sighting is a retransmit: tracked (the entry is gone,
        // and a lone FIN starts nothing).
        k.send(&segs[5]);
        assert_eq!(
            k.stat(Stat::SecondSightings) + k.stat(Stat::RecentFastPath),
            6
        );
        // The SYN's second sighting after another flow's SYN took its slot
        // (source ports 64 apart share one): the long way, whose failed
        // insert marks the flow node-local just the same.
        let mut k = Kernel::load(hook);
        k.send(&segs[0]);
        k.send(&Segment::new(C, 40064, S, 80, 7000, SYN, b""));
        k.send(&segs[0]);
        assert_eq!(k.stat(Stat::SecondSightings), 0, "{hook:?}");
        k.send(&segs[1]);
        k.send(&segs[1]);
        assert_eq!(k.stat(Stat::SecondSightings), 1, "{hook:?}: the SYN-ACK's");
        assert_eq!(k.stat(Stat::EmbryosCreated), 2, "{hook:?}");
        // A flow whose SYN was seen once is not node-local: its segments
        // seen twice take the long way each time.
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET));
        k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET));
        assert_http(&k.one_verdict());
        assert_eq!(k.stat(Stat::SecondSightings), 0, "{hook:?}");
    }
}

#[test]
fn reordered_first_segments_use_the_one_at_the_stream_start() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        // The second segment (binary) arrives first and is skipped; the
        // first (the request line) decides.
        k.send(&Segment::new(
            C,
            40000,
            S,
            80,
            1001 + 16,
            ACK | PSH,
            b"\x00\x00\x00\x00",
        ));
        k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET));
        assert_http(&k.one_verdict());
    }
}

#[test]
fn fast_open_data_on_the_syn_is_classified() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        k.send(&Segment::new(C, 40000, S, 80, 1000, SYN, GET));
        assert_http(&k.one_verdict());
        // The same SYN again (a retransmit, or the other end of a
        // node-local connection) is the same connection.
        k.send(&Segment::new(C, 40000, S, 80, 1000, SYN, GET));
        assert!(k.events().is_empty(), "{hook:?}: no second verdict");
        assert_eq!(k.stat(Stat::PayloadSegments), 1, "{hook:?}");
    }
}

#[test]
fn a_new_syn_on_reused_ports_ends_the_old_flow_and_starts_a_new_one() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, b"hello"));
        assert!(k.events().is_empty(), "{hook:?}: undecided");
        // The old connection's close was never seen; a SYN at a fresh ISN
        // on the same ports is a new connection.
        k.send(&Segment::new(C, 40000, S, 80, 777_000, SYN, b""));
        let old = k.one_verdict();
        assert_eq!(old.verdict.protocol, Protocol::Unknown, "{hook:?}: {old:?}");
        assert_eq!(old.verdict.encryption, Encryption::Plaintext, "{hook:?}");
        k.send(&Segment::new(S, 80, C, 40000, 888_000, SYN | ACK, b""));
        k.send(&Segment::new(C, 40000, S, 80, 777_001, ACK | PSH, GET));
        assert_http(&k.one_verdict());
    }
}

#[test]
fn a_repacketised_retransmit_is_inspected_from_its_new_bytes() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, b"\x00\x01"));
        // A retransmit that carries the first two bytes again and two new
        // ones: inspected, and the stream continues after it.
        k.send(&Segment::new(
            C,
            40000,
            S,
            80,
            1001,
            ACK | PSH,
            b"\x00\x01\x02\x03",
        ));
        k.send(&Segment::new(C, 40000, S, 80, 1005, ACK | PSH, b"\x04"));
        assert_eq!(k.stat(Stat::PayloadSegments), 3, "{hook:?}");
    }
}

#[test]
fn gso_sized_packet_without_ip_total_length_is_classified() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        let mut body = GET.to_vec();
        body.resize(3000, b'a');
        let mut frame = Segment::new(C, 40000, S, 80, 1001, ACK | PSH, &body).frame();
        // BIG TCP / GSO super-packets carry tot_len 0; the skb length rules.
        frame[16] = 0;
        frame[17] = 0;
        k.send_raw(&frame);
        assert_http(&k.one_verdict());
    }
}

#[test]
fn midstream_flow_infers_the_client_from_the_ephemeral_port() {
    // Either side may be the first seen, and either may hold the lower
    // address (which decides the key order): the ephemeral port wins.
    let cases: [(&str, &str, bool); 4] = [(C, S, true), (C, S, false), (S, C, true), (S, C, false)];
    for hook in Hook::ALL {
        for (client, server, client_first) in cases {
            let mut k = Kernel::load(hook);
            let seg = if client_first {
                Segment::new(client, 40000, server, 80, 9000, ACK | PSH, GET)
            } else {
                Segment::new(
                    server,
                    80,
                    client,
                    40000,
                    9000,
                    ACK | PSH,
                    b"HTTP/1.1 200 OK\r\n\r\n",
                )
            };
            k.send(&seg);
            let f = k.one_verdict();
            let what = format!("{hook:?} client {client} first={client_first}");
            assert_eq!(f.client.to_string(), client, "{what}");
            assert_eq!((f.client_port, f.server_port), (40000, 80), "{what}");
            assert!(f.midstream, "{what}");
            assert_eq!(f.verdict.protocol, Protocol::Http, "{what}");
        }
    }
}

#[test]
fn loopback_is_skipped_unless_asked() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        k.send(&Segment::new(
            "127.0.0.1",
            40000,
            "127.0.0.1",
            80,
            1000,
            SYN,
            b"",
        ));
        k.send(&Segment::new("::1", 40000, "::1", 80, 1000, SYN, b""));
        assert_eq!(k.stat(Stat::Loopback), 2, "{hook:?}");
        assert_eq!(k.stat(Stat::FlowsCreated), 0);
    }
}

#[test]
fn verdicts_emitted_equal_events_delivered_plus_lost_when_the_ring_overflows() {
    for hook in Hook::ALL {
        // 4096 bytes hold 64 records of 8 + 56 bytes.
        let mut k = Kernel::load_with(hook, 4096, 1024);
        let flows = 100u16;
        for i in 0..flows {
            k.send(&Segment::new(C, 20000 + i, S, 80, 1000, SYN, b""));
            k.send(&Segment::new(C, 20000 + i, S, 80, 1001, ACK | PSH, GET));
        }
        let delivered = k.events().len() as u64;
        let emitted = k.stat(Stat::VerdictsEmitted);
        let lost = k.stat(Stat::EventsLost);
        assert_eq!(emitted, u64::from(flows), "{hook:?}");
        assert!(lost > 0, "{hook:?}: the ring must have overflowed");
        assert_eq!(emitted, delivered + lost, "{hook:?}: conservation");
    }
}

/// The SYN that opens flow `i`, distinct client addresses and ports, with
/// a byte of data (TCP Fast Open): a flow that carries payload, so its
/// entry is in the main flow table (bare SYNs stay in the embryonic one).
fn syn(i: u32) -> Segment {
    let [a, b, c, d] = i.to_be_bytes();
    let client = format!("10.{}.{}.{}", 100 + a, b, c);
    Segment::new(&client, 1024 + u16::from(d), S, 80, 1000, SYN, b"\0")
}

fn rst(i: u32) -> Segment {
    let mut s = syn(i);
    s.flags = RST;
    s.seq = 1002;
    s.payload.clear();
    s
}

#[test]
fn flow_table_entries_are_counted_exactly_and_closes_only_when_removed() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        for i in 0..300 {
            k.send(&syn(i));
        }
        let r = k.dp.flow_table.read(&k.dp.stats).expect("counting entries");
        assert_eq!((r.entries, r.evicted), (300, 0), "{hook:?}: room for all");
        for i in 0..100 {
            k.send(&rst(i));
        }
        // A second RST finds nothing to remove and must not count.
        k.send(&rst(0));
        assert_eq!(k.stat(Stat::FlowsClosed), 100, "{hook:?}");
        let r = k.dp.flow_table.read(&k.dp.stats).expect("counting entries");
        assert_eq!((r.entries, r.evicted), (200, 0), "{hook:?}");
    }
}

#[test]
fn flow_table_evictions_are_created_minus_closed_minus_entries() {
    for hook in Hook::ALL {
        let capacity = 64;
        let mut k = Kernel::load_with(hook, 1 << 16, capacity);
        let flows = 200;
        for i in 0..flows {
            k.send(&syn(i));
        }
        // The newest flows are the live ones; closing them removes entries.
        for i in flows - 10..flows {
            k.send(&rst(i));
        }
        let r = k.dp.flow_table.read(&k.dp.stats).expect("counting entries");
        let closed = k.stat(Stat::FlowsClosed);
        assert_eq!(k.stat(Stat::FlowsCreated), u64::from(flows), "{hook:?}");
        assert!(r.entries <= u64::from(capacity), "{hook:?}: {r:?}");
        assert!(closed > 0, "{hook:?}: recent flows are still in the table");
        assert!(
            r.evicted >= u64::from(flows - capacity) - closed,
            "{hook:?}: {r:?} closed {closed}"
        );
        assert_eq!(
            r.evicted + closed + r.entries,
            u64::from(flows),
            "{hook:?}: every flow is live, closed or evicted"
        );
    }
}

#[test]
fn full_default_flow_table_is_counted_in_one_walk() {
    let mut k = Kernel::load_with(Hook::CgroupEgress, 1 << 16, DEFAULT_MAX_FLOWS);
    for i in 0..DEFAULT_MAX_FLOWS {
        k.send(&syn(i));
    }
    let started = std::time::Instant::now();
    let r = k.dp.flow_table.read(&k.dp.stats).expect("counting entries");
    // Reported, not asserted: speed is `cargo xtask bench`'s business.
    eprintln!(
        "counted {} entries (+{} evicted) in {:?}",
        r.entries,
        r.evicted,
        started.elapsed()
    );
    assert_eq!(r.entries + r.evicted, u64::from(DEFAULT_MAX_FLOWS));
    assert!(r.entries > u64::from(DEFAULT_MAX_FLOWS) * 9 / 10, "{r:?}");
}

/// A ClientHello and a ServerHello go to the hello ring, each exactly its
/// own record's bytes with its flow's endpoints; the verdict ring still gets
/// the one verdict.
#[test]
fn tls_hellos_are_exported_with_exactly_their_record_bytes() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        let ch = fixture("curl-7.88-tls13-s_server.c2s.0.bin");
        let sh = fixture("curl-7.88-tls13-s_server.s2c.0.bin");
        k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, &ch));
        k.send(&Segment::new(S, 80, C, 40000, 5001, ACK | PSH, &sh));
        let hellos = k.hellos();
        assert_eq!(hellos.len(), 2, "{hook:?}");
        let (h, bytes) = &hellos[0];
        assert_eq!((h.kind, h.client_port, h.server_port), (1, 40000, 80));
        assert_eq!(bytes, &ch, "{hook:?}: the whole ClientHello record");
        let (h, bytes) = &hellos[1];
        assert_eq!((h.kind, h.client_port, h.server_port), (2, 40000, 80));
        // The segment's first 512 bytes also hold ChangeCipherSpec and
        // encrypted records after the 127-byte ServerHello: not exported.
        assert_eq!(bytes.as_slice(), &sh[..5 + 0x7a], "{hook:?}");
        assert_eq!(k.stat(Stat::HellosExported), 2, "{hook:?}");
        assert_eq!(k.stat(Stat::HellosLost), 0, "{hook:?}");
        assert_eq!(k.one_verdict().verdict.tls_version, TlsVersion::Tls13);
    }
}

/// The client's flight after the ServerHello: its first `FLIGHT_MAX`
/// bytes go to the hello ring once (kind 3), nothing after them, and
/// nothing that does not start a TLS record.
#[test]
fn the_client_flight_head_is_exported_once_after_the_server_hello() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        let ch = fixture("curl-7.88-tls13-s_server.c2s.0.bin");
        let sh = fixture("curl-7.88-tls13-s_server.s2c.0.bin");
        let flight = fixture("curl-7.88-tls13-s_server.c2s.1.bin");
        let data = fixture("curl-7.88-tls13-s_server.c2s.2.bin");
        let len = |b: &[u8]| u32::try_from(b.len()).expect("small");
        k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, &ch));
        k.send(&Segment::new(S, 80, C, 40000, 5001, ACK | PSH, &sh));
        let at = 1001 + len(&ch);
        k.send(&Segment::new(C, 40000, S, 80, at, ACK | PSH, &flight));
        let at = at + len(&flight);
        k.send(&Segment::new(C, 40000, S, 80, at, ACK | PSH, &data));
        let hellos = k.hellos();
        assert_eq!(hellos.len(), 3, "{hook:?}");
        let (h, bytes) = &hellos[2];
        assert_eq!((h.kind, h.client_port, h.server_port), (3, 40000, 80));
        assert_eq!(bytes.as_slice(), &flight[..FLIGHT_MAX], "{hook:?}");
        assert_eq!(k.stat(Stat::HellosExported), 3, "{hook:?}");

        // A flow that only looked like TLS: its client's bytes stay.
        k.send(&Segment::new(C, 40001, S, 81, 1000, SYN, b""));
        k.send(&Segment::new(S, 81, C, 40001, 5000, SYN | ACK, b""));
        k.send(&Segment::new(C, 40001, S, 81, 1001, ACK | PSH, &ch));
        k.send(&Segment::new(S, 81, C, 40001, 5001, ACK | PSH, &sh));
        k.send(&Segment::new(
            C,
            40001,
            S,
            81,
            1001 + len(&ch),
            ACK | PSH,
            GET,
        ));
        let hellos = k.hellos();
        assert_eq!(hellos.len(), 2, "{hook:?}: only the two hellos");
        assert!(hellos.iter().all(|(h, _)| h.kind != 3), "{hook:?}");
    }
}

/// TLS 1.2: the server's Certificate record after the ServerHello in the
/// same segment goes to the hello ring with it (up to the Certificate
/// record's end, here the segment's); TLS 1.3's encrypted records there
/// never do (`tls_hellos_are_exported_with_exactly_their_record_bytes`).
#[test]
fn the_tls12_server_certificate_is_exported_after_the_server_hello() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        let ch = fixture("curl-7.88-tls12-s_server.c2s.0.bin");
        let sh = fixture("curl-7.88-tls12-s_server.s2c.0.bin");
        k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, &ch));
        k.send(&Segment::new(S, 80, C, 40000, 5001, ACK | PSH, &sh));
        let hellos = k.hellos();
        assert_eq!(hellos.len(), 2, "{hook:?}");
        let (h, bytes) = &hellos[1];
        assert_eq!((h.kind, h.client_port, h.server_port), (2, 40000, 80));
        // The 98-byte ServerHello record, then the Certificate record,
        // whose 796 bytes go past this 512-byte segment.
        assert_eq!(&sh[98..104], &[0x16, 3, 3, 3, 0x17, 11]);
        assert_eq!(bytes.as_slice(), &sh[..], "{hook:?}");
    }
}

/// Plaintext never reaches the hello ring: not HTTP, not a PostgreSQL
/// StartupMessage, not TLS records that are no hello, not a ClientHello
/// sent by the server.
#[test]
fn only_hellos_reach_the_hello_ring() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET));
        k.send(&Segment::new(
            S,
            80,
            C,
            40000,
            5001,
            ACK | PSH,
            b"HTTP/1.1 200 OK\r\n\r\n",
        ));
        // A ClientHello sent by the server's side.
        k.send(&Segment::new(C, 40001, S, 443, 1000, SYN, b""));
        let ch = fixture("curl-7.88-tls13-s_server.c2s.0.bin");
        k.send(&Segment::new(S, 443, C, 40001, 1, ACK | PSH, &ch));
        // TLS application data, no hello.
        k.send(&Segment::new(C, 40003, S, 443, 1000, SYN, b""));
        let data = fixture("curl-7.88-tls13-s_server.c2s.2.bin");
        k.send(&Segment::new(C, 40003, S, 443, 1001, ACK | PSH, &data));
        let pg = fixture("psql-15-scram-sslmode-disable.c2s.0.bin");
        k.send(&Segment::new(C, 40002, S, 5432, 1000, SYN, b""));
        k.send(&Segment::new(C, 40002, S, 5432, 1001, ACK | PSH, &pg));
        assert_eq!(k.stat(Stat::PayloadSegments), 4, "{hook:?}: all inspected");
        assert!(k.hellos().is_empty(), "{hook:?}");
        assert_eq!(k.stat(Stat::HellosExported), 0, "{hook:?}");
    }
}

/// Reports the verifier's work per program (`cargo test -- --nocapture`)
/// and fails if one is near the 1M limit, where the next classifier change
/// would stop the agent from loading.
#[test]
fn verified_instructions_stay_below_the_limit() {
    plainsight_tests::require_root();
    let mut dp = datapath::load(&LoadOptions {
        include_loopback: false,
        max_flows: 1024,
        ring_bytes: 1 << 16,
    })
    .expect("loading the programs");
    // The bench's do-nothing floor programs live in their own object
    // (bench/ebpf): nothing but the agent's programs ships in the agent's.
    let foreign: Vec<&str> = dp
        .ebpf
        .programs()
        .map(|(name, _)| name)
        .filter(|n| n.starts_with("floor_"))
        .collect();
    assert!(
        foreign.is_empty(),
        "bench programs in the agent's object: {foreign:?}"
    );
    for name in ["cgroup_ingress", "cgroup_egress", "tc_ingress", "tc_egress"] {
        match dp.ebpf.program_mut(name).expect("program present") {
            Program::CgroupSkb(p) => p.load().expect("verifier accepts"),
            Program::SchedClassifier(p) => p.load().expect("verifier accepts"),
            _ => unreachable!(),
        }
    }
    for (name, prog) in dp.ebpf.programs() {
        let info = match prog {
            Program::CgroupSkb(p) => p.info(),
            Program::SchedClassifier(p) => p.info(),
            _ => unreachable!(),
        }
        .expect("program info");
        let n = info
            .verified_instruction_count()
            .expect("kernel reports verified_insns");
        // A classifier family stage is `<core>_<n>`: named after its family.
        let family = name
            .rsplit_once('_')
            .and_then(|(_, n)| n.parse::<usize>().ok())
            .and_then(|n| agent_common::classify::STAGE_NAMES.get(n - 1))
            .map(|f| format!(" (family {f})"))
            .unwrap_or_default();
        eprintln!("{name}{family}: {n} verified instructions");
        assert!(n < 900_000, "{name} at {n} of 1M verified instructions");
    }
}

/// Bytes of the kernel's per-CPU `Scratch` value (agent-ebpf/src/maps.rs):
/// the payload prefix, the flow key, length, side, flags, stage pass,
/// padding, the flow state carried between stages, the segment's offset
/// and length, the scan's finding (for the credentials scan) and whether
/// the state is an embryo's.
const SCRATCH_BYTES: usize = (PREFIX
    + size_of::<agent_common::wire::FlowKey>()
    + 8
    + size_of::<agent_common::wire::FlowState>()
    + 8
    + 2)
.next_multiple_of(8);

/// The staged payload prefix of every CPU's scratch slot.
fn scratch_prefixes(k: &Kernel) -> Vec<Vec<u8>> {
    let map = k.dp.ebpf.map("SCRATCH").expect("SCRATCH map");
    let scratch = aya::maps::PerCpuArray::<_, [u8; SCRATCH_BYTES]>::try_from(map)
        .expect("SCRATCH is a per-CPU array of Scratch");
    let values = scratch.get(&0, 0).expect("slot 0");
    values.iter().map(|v| v[..PREFIX].to_vec()).collect()
}

#[test]
fn classified_payload_leaves_no_copy_in_the_scratch_buffer() {
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        // Undecided after this segment (it went through every family
        // stage, openings and mid-stream), then decided by the request (in
        // the first family stage): every classifier program wipes what it
        // was given, wherever the segment stops.
        k.send(&Segment::new(
            C,
            40000,
            S,
            80,
            1001,
            ACK | PSH,
            b"\x00\x01binary",
        ));
        assert!(k.events().is_empty(), "{hook:?}: still undecided");
        assert_eq!(k.stat(Stat::PayloadSegments), 1, "{hook:?}");
        for (cpu, buf) in scratch_prefixes(&k).iter().enumerate() {
            assert!(
                buf.iter().all(|b| *b == 0),
                "{hook:?}: CPU {cpu} keeps {buf:?}"
            );
        }
        let mut k = Kernel::load(hook);
        handshake(&mut k, C, S);
        k.send(&Segment::new(C, 40000, S, 80, 1001, ACK | PSH, GET));
        assert_http(&k.one_verdict());
        for (cpu, buf) in scratch_prefixes(&k).iter().enumerate() {
            assert!(
                buf.iter().all(|b| *b == 0),
                "{hook:?}: CPU {cpu} keeps {:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }
}

#[test]
fn bare_syns_do_not_evict_flows_that_carry_payload() {
    for hook in Hook::ALL {
        // A 1024-flow table; bare SYNs go to the 256-entry embryonic one.
        let mut k = Kernel::load_with(hook, 1 << 16, 1024);
        handshake(&mut k, C, S);
        k.send(&Segment::new(
            C,
            40000,
            S,
            80,
            1001,
            ACK | PSH,
            b"\x00\x01binary",
        ));
        assert_eq!(
            k.stat(Stat::EmbryosPromoted),
            1,
            "{hook:?}: moved at its payload"
        );
        assert_eq!(k.stat(Stat::FlowsCreated), 1, "{hook:?}");
        // Four times the main table in unanswered SYNs, each its own flow.
        let syns = 4096u32;
        for i in 0..syns {
            let port = 1024 + u16::try_from(i).expect("fits");
            k.send(&Segment::new("10.9.0.1", port, S, 9, i, SYN, b""));
        }
        assert_eq!(
            k.stat(Stat::EmbryosCreated),
            1 + u64::from(syns),
            "{hook:?}"
        );
        // The flow being classified still has its entry: its next segment
        // continues it (no new mid-stream flow), and its close gives one
        // verdict that is not `midstream`.
        k.send(&Segment::new(C, 40000, S, 80, 1009, ACK | PSH, GET));
        k.send(&Segment::new(C, 40000, S, 80, 1009 + len(GET), RST, b""));
        assert_eq!(k.stat(Stat::FlowsCreated), 1, "{hook:?}: no new flow");
        let f = k.one_verdict();
        assert!(!f.midstream, "{hook:?}: {f:?}");
        assert_eq!(k.stat(Stat::FlowsClosed), 1, "{hook:?}");
        // The handshakes' table is full and nothing else moved.
        assert_eq!(k.stat(Stat::EmbryosPromoted), 1, "{hook:?}");
        assert_eq!(k.stat(Stat::EmbryosClosed), 0, "{hook:?}");
    }
}

fn len(payload: &[u8]) -> u32 {
    u32::try_from(payload.len()).expect("a short payload")
}

/// The kernel runs the classifier in stages (a core, then one program per
/// protocol family, see agent-common/src/classify/mod.rs); `replay` and
/// the unit tests run the same parts in one call. Every recorded session
/// (real clients and servers, every family, steps and upgrades included)
/// must get the same verdict both ways, on both hooks.
#[test]
fn staged_kernel_verdicts_equal_the_classifier_on_every_recorded_session() {
    use agent_common::FlowClassifier;
    use agent_common::classify::Side;
    let mut sessions: Vec<String> = std::fs::read_dir(FIXTURES)
        .expect("fixtures directory")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().into_string().expect("utf-8");
            name.strip_suffix(".order").map(str::to_owned)
        })
        .collect();
    sessions.sort();
    assert!(sessions.len() > 40, "recorded sessions: {}", sessions.len());
    for hook in Hook::ALL {
        let mut k = Kernel::load(hook);
        let mut expected = std::collections::HashMap::new();
        for (i, session) in sessions.iter().enumerate() {
            let port = 20000 + u16::try_from(i).expect("few sessions");
            k.send(&Segment::new(C, port, S, 80, 1000, SYN, b""));
            k.send(&Segment::new(S, 80, C, port, 5000, SYN | ACK, b""));
            let (mut cseq, mut sseq) = (1001u32, 5001u32);
            let mut flow = FlowClassifier::new();
            let mut verdict = None;
            let order =
                std::fs::read_to_string(format!("{FIXTURES}{session}.order")).expect("order file");
            for chunk in order.split_whitespace() {
                let bytes = fixture(&format!("{session}.{chunk}.bin"));
                // The classifier reads PREFIX bytes: a packet-sized piece
                // carries them all.
                let bytes = &bytes[..bytes.len().min(1400)];
                let side = if chunk.starts_with("c2s") {
                    Side::Client
                } else {
                    Side::Server
                };
                if verdict.is_none() {
                    verdict = flow.on_payload(side, bytes);
                }
                let len = u32::try_from(bytes.len()).expect("short");
                if side == Side::Client {
                    k.send(&Segment::new(C, port, S, 80, cseq, ACK | PSH, bytes));
                    cseq += len;
                } else {
                    k.send(&Segment::new(S, 80, C, port, sseq, ACK | PSH, bytes));
                    sseq += len;
                }
            }
            k.send(&Segment::new(C, port, S, 80, cseq, RST, b""));
            if let Some(v) = verdict.or_else(|| flow.on_close()) {
                expected.insert(port, (session, v));
            }
        }
        let got: std::collections::HashMap<u16, agent_common::Verdict> = k
            .events()
            .into_iter()
            .map(|f| (f.client_port, f.verdict))
            .collect();
        let protocols: std::collections::HashSet<_> =
            expected.values().map(|(_, v)| v.protocol).collect();
        assert!(
            protocols.len() >= 12,
            "sessions of every family: {protocols:?}"
        );
        assert_eq!(
            got.len(),
            expected.len(),
            "{hook:?}: one verdict per session"
        );
        for (port, (session, want)) in &expected {
            assert_eq!(got.get(port), Some(want), "{hook:?}: {session}");
        }
    }
}

/// Every CPU's credentials-scan buffer (agent-ebpf/src/maps.rs `SCAN_BUF`).
fn scan_buffers(k: &Kernel) -> Vec<Vec<u8>> {
    use agent_common::classify::credentials::SCAN_MAX;
    let map = k.dp.ebpf.map("SCAN_BUF").expect("SCAN_BUF map");
    let bufs = aya::maps::PerCpuArray::<_, [u8; SCAN_MAX]>::try_from(map)
        .expect("SCAN_BUF is a per-CPU array of ScanBuf");
    let values = bufs.get(&0, 0).expect("slot 0");
    values.iter().map(|v| v.to_vec()).collect()
}

/// Sends `segs` (client or server, fixture file) on one fresh flow; the
/// flow's verdict.
fn verdict_of(k: &mut Kernel, segs: &[(bool, &str)]) -> Flow {
    handshake(k, C, S);
    let (mut cseq, mut sseq) = (1001u32, 5001u32);
    for (client, name) in segs {
        let bytes = fixture(name);
        let n = u32::try_from(bytes.len()).expect("small fixture");
        if *client {
            k.send(&Segment::new(C, 40000, S, 80, cseq, ACK | PSH, &bytes));
            cseq += n;
        } else {
            k.send(&Segment::new(S, 80, C, 40000, sseq, ACK | PSH, &bytes));
            sseq += n;
        }
    }
    k.one_verdict()
}

#[test]
fn credentials_past_the_prefix_are_found_and_the_scan_leaves_no_copy() {
    use agent_common::Reason;
    let creds = Reason::CleartextCredentials;
    for hook in Hook::ALL {
        for (segs, reason) in [
            (
                &[(true, "curl-7.88-http-basic-after-headers.c2s.0.bin")][..],
                creds,
            ),
            (
                &[(true, "curl-7.88-http-bearer-after-headers.c2s.0.bin")][..],
                creds,
            ),
            (
                &[(true, "python-requests-2.34-bearer-after-headers.c2s.0.bin")][..],
                creds,
            ),
            (
                &[(true, "curl-7.88-http-x-api-key-after-headers.c2s.0.bin")][..],
                creds,
            ),
            (
                &[(true, "curl-7.88-http-digest-after-headers.c2s.0.bin")][..],
                Reason::None,
            ),
            (
                &[(
                    true,
                    "curl-7.88-http-no-credentials-after-headers.c2s.0.bin",
                )][..],
                Reason::None,
            ),
            (
                &[
                    (true, "pika-1.4-publish-rabbitmq-3.10.c2s.0.bin"),
                    (false, "pika-1.4-publish-rabbitmq-3.10.s2c.0.bin"),
                    (true, "pika-1.4-publish-rabbitmq-3.10.c2s.1.bin"),
                ][..],
                creds,
            ),
            (
                &[
                    (false, "nats-py-2.16-userpass-nats-server-2.9.s2c.0.bin"),
                    (true, "nats-py-2.16-userpass-nats-server-2.9.c2s.0.bin"),
                ][..],
                creds,
            ),
            (
                &[
                    (false, "nats-py-2.16-anonymous-nats-server-2.9.s2c.0.bin"),
                    (true, "nats-py-2.16-anonymous-nats-server-2.9.c2s.0.bin"),
                ][..],
                Reason::None,
            ),
        ] {
            let mut k = Kernel::load(hook);
            let f = verdict_of(&mut k, segs);
            assert_eq!(
                f.verdict.encryption,
                Encryption::Plaintext,
                "{hook:?} {segs:?}: {f:?}"
            );
            assert_eq!(f.verdict.reason, reason, "{hook:?} {segs:?}: {f:?}");
            // Exactly the one segment that can carry them was read.
            assert_eq!(k.stat(Stat::CredentialScans), 1, "{hook:?} {segs:?}");
            assert_eq!(k.stat(Stat::TailCallFailed), 0, "{hook:?} {segs:?}");
            for (cpu, buf) in scan_buffers(&k).iter().enumerate() {
                assert!(
                    buf.iter().all(|b| *b == 0),
                    "{hook:?}: CPU {cpu} keeps {:?}",
                    String::from_utf8_lossy(buf)
                );
            }
        }
        // A TLS hello is never scanned.
        let mut k = Kernel::load(hook);
        let f = verdict_of(
            &mut k,
            &[
                (true, "curl-7.88-tls13-s_server.c2s.0.bin"),
                (false, "curl-7.88-tls13-s_server.s2c.0.bin"),
            ],
        );
        assert_eq!(f.verdict.encryption, Encryption::Tls, "{hook:?}: {f:?}");
        assert_eq!(k.stat(Stat::CredentialScans), 0, "{hook:?}");
    }
}
