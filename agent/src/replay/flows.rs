//! The flow table: the kernel's tracking (agent-ebpf/src/observe.rs) redone
//! over captured segments, so replay gives the verdicts the agent would.
//!
//! - One entry per canonical 5-tuple. The SYN sender (SYN without ACK) is the
//!   client. A flow first seen without a SYN starts only with a payload
//!   segment (a lone ACK, FIN or RST creates nothing) and is midstream; its
//!   client is the side with the higher, ephemeral, port.
//! - Per direction, payload is fed to the classifier in sequence order
//!   (`stream`), until it has a verdict; across directions, in capture order.
//! - FIN from both sides, or RST, ends the flow; a flow still without a
//!   verdict then gets `on_close()`'s best guess, as it does at the end of
//!   the capture. Flows that never carried payload give nothing.

use super::{FlowRecord, stream::Stream};
use super::{packet::Segment, packet::TCP_ACK, packet::TCP_FIN, packet::TCP_RST, packet::TCP_SYN};
use crate::pipeline::tls_hello::{self, TlsMeta};
use agent_common::{FlowClassifier, Side, Verdict, classify::PrefixBuf};
use std::{collections::HashMap, net::SocketAddr};

/// Both directions of a connection map to one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key(SocketAddr, SocketAddr);

impl Key {
    fn of(a: SocketAddr, b: SocketAddr) -> Self {
        if a <= b { Self(a, b) } else { Self(b, a) }
    }
}

struct Flow {
    client: SocketAddr,
    server: SocketAddr,
    /// First seen without a SYN.
    midstream: bool,
    /// The client's initial sequence number, when its SYN was seen: a SYN
    /// with another one is a new connection on the same ports.
    client_isn: Option<u32>,
    classifier: FlowClassifier,
    /// The verdict has been given; later packets only close the flow.
    done: bool,
    streams: [Stream; 2],
    fin: [bool; 2],
    /// Creation order, so flows still open at the end come out in order.
    created: u64,
    last_ts_ns: i64,
    tls: TlsMeta,
}

impl Flow {
    fn new(client: SocketAddr, server: SocketAddr, midstream: bool, created: u64) -> Self {
        Self {
            client,
            server,
            midstream,
            client_isn: None,
            classifier: new_classifier(midstream),
            done: false,
            streams: Default::default(),
            fin: [false; 2],
            created,
            last_ts_ns: 0,
            tls: TlsMeta::default(),
        }
    }

    fn side_of(&self, src: SocketAddr) -> Side {
        if src == self.client {
            Side::Client
        } else {
            Side::Server
        }
    }

    /// The flow's row; its hellos may name the version the classifier's
    /// prefix did not reach, as in the live agent (`PendingHellos::attach`).
    fn record(&self, mut verdict: Verdict) -> FlowRecord {
        self.tls.refine(&mut verdict);
        FlowRecord {
            client: self.client,
            server: self.server,
            verdict,
            midstream: self.midstream,
            ts_ns: self.last_ts_ns,
            tls: self.tls.clone(),
        }
    }

    /// Feeds one segment's in-order payloads; the verdict, once there is one.
    fn feed(&mut self, side: Side, seq: u32, seg: &Segment<'_>) -> Option<Verdict> {
        if self.done || seg.payload_len == 0 || !self.classifier.wants(side) {
            return None;
        }
        let ready = self.streams[side as usize].push(seq, seg.payload_len, seg.payload);
        for bytes in ready {
            // As the kernel: the hello is exported before the segment is
            // classified.
            if let Some(hello) = tls_hello::exported(&bytes, side).and_then(tls_hello::parse) {
                self.tls.add(hello);
            }
            let buf = PrefixBuf::new(&bytes);
            if let Some(v) = self.classifier.on_segment(side, &buf.prefix()) {
                self.done = true;
                return Some(v);
            }
        }
        None
    }

    /// The flow ends: its verdict if it has none yet and carried payload.
    fn close(&mut self) -> Option<FlowRecord> {
        if self.done {
            return None;
        }
        self.done = true;
        self.classifier.on_close().map(|v| self.record(v))
    }
}

/// The classifier decides the `midstream` reason (a flow picked up at an
/// opening message has none), as in the kernel's `fresh_state`. Were it ever
/// left to the tracker again (observe.rs `emit()` once added
/// `Reason::Midstream` to every no-SYN flow), this and `Flow::record` are the
/// two places to change.
fn new_classifier(midstream: bool) -> FlowClassifier {
    if midstream {
        FlowClassifier::new_midstream()
    } else {
        FlowClassifier::new()
    }
}

#[derive(Default)]
pub struct FlowTable {
    flows: HashMap<Key, Flow>,
    created: u64,
}

impl FlowTable {
    /// Tracks one segment; every flow it finishes goes to `out`.
    pub fn segment(&mut self, seg: &Segment<'_>, ts_ns: i64, out: &mut impl FnMut(FlowRecord)) {
        let key = Key::of(seg.src, seg.dst);
        let syn = seg.flags & TCP_SYN != 0;
        let ack = seg.flags & TCP_ACK != 0;
        let closing = seg.flags & (TCP_FIN | TCP_RST) != 0;

        // A client SYN on ports still in use by another connection (reused
        // ports; the old one's FIN was not captured) ends the old one.
        if syn
            && !ack
            && let Some(old) = self.flows.get(&key)
            && (old.client != seg.src || old.client_isn != Some(seg.seq))
            && let Some(mut old) = self.flows.remove(&key)
            && let Some(r) = old.close()
        {
            out(r);
        }

        let created = self.created;
        let flow = match self.flows.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let flow = if syn && !ack {
                    let mut f = Flow::new(seg.src, seg.dst, false, created);
                    f.client_isn = Some(seg.seq);
                    f
                } else if seg.payload_len > 0 && !closing {
                    let (client, server) = ephemeral_client(seg.src, seg.dst);
                    Flow::new(client, server, true, created)
                } else {
                    return;
                };
                self.created += 1;
                e.insert(flow)
            }
        };
        flow.last_ts_ns = ts_ns;
        let side = flow.side_of(seg.src);
        let mut seq = seg.seq;
        if syn {
            // The SYN takes one sequence number; data starts after it (and
            // TCP Fast Open data rides on the SYN itself).
            seq = seq.wrapping_add(1);
            flow.streams[side as usize].start_at(seq);
        }
        if let Some(v) = flow.feed(side, seq, seg) {
            out(flow.record(v));
        }
        if closing {
            flow.fin[side as usize] |= seg.flags & TCP_FIN != 0;
            if seg.flags & TCP_RST != 0 || flow.fin == [true, true] {
                if let Some(r) = flow.close() {
                    out(r);
                }
                self.flows.remove(&key);
            }
        }
    }

    /// End of the capture: every open flow gets its best verdict.
    pub fn finish(&mut self, out: &mut impl FnMut(FlowRecord)) {
        let mut open: Vec<Flow> = self.flows.drain().map(|(_, f)| f).collect();
        open.sort_by_key(|f| f.created);
        for mut f in open {
            if let Some(r) = f.close() {
                out(r);
            }
        }
    }
}

/// A flow first seen mid-stream: the higher (ephemeral) port is most likely
/// the client's. On equal ports, the sender of the first segment.
fn ephemeral_client(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    if src.port() >= dst.port() {
        (src, dst)
    } else {
        (dst, src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::{Encryption, Protocol, Reason};

    const C: &str = "10.0.0.1:40000";
    const S: &str = "10.0.0.2:8080";
    const SYN: u8 = TCP_SYN;
    const SYN_ACK: u8 = TCP_SYN | TCP_ACK;
    const ACK: u8 = TCP_ACK;
    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    /// Runs segments (src, dst, flags, seq, payload) through a table and
    /// returns every flow it reports, the end of the capture included.
    fn run(segs: &[(&str, &str, u8, u32, &[u8])]) -> Vec<FlowRecord> {
        let mut t = FlowTable::default();
        let mut out = Vec::new();
        for (i, (src, dst, flags, seq, payload)) in segs.iter().enumerate() {
            let seg = Segment {
                src: src.parse().expect("addr"),
                dst: dst.parse().expect("addr"),
                flags: *flags,
                seq: *seq,
                payload_len: payload.len() as u32,
                payload,
            };
            t.segment(&seg, i as i64, &mut |r| out.push(r));
        }
        t.finish(&mut |r| out.push(r));
        out
    }

    fn handshake() -> Vec<(&'static str, &'static str, u8, u32, &'static [u8])> {
        vec![
            (C, S, SYN, 100, b""),
            (S, C, SYN_ACK, 500, b""),
            (C, S, ACK, 101, b""),
        ]
    }

    #[test]
    fn syn_sender_is_the_client() {
        let mut segs = handshake();
        segs.push((C, S, ACK, 101, GET));
        let got = run(&segs);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].client.to_string(), C);
        assert_eq!(got[0].server.to_string(), S);
        assert_eq!(got[0].verdict, Verdict::plaintext(Protocol::Http));
        assert!(!got[0].midstream);
        assert_eq!(got[0].ts_ns, 3, "the time of the deciding segment");
    }

    #[test]
    fn no_syn_flow_starts_at_payload_and_picks_the_higher_port() {
        // The server speaks first here; a lone ACK before it creates nothing.
        let got = run(&[
            (C, S, ACK, 1, b""),
            (S, C, ACK, 9000, b"HTTP/1.1 200 OK\r\n\r\n"),
        ]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].client.to_string(), C, "40000 > 8080");
        assert!(got[0].midstream);
        assert_eq!(got[0].verdict.protocol, Protocol::Http);
    }

    #[test]
    fn midstream_reason_unless_the_flow_opens_with_a_first_message() {
        // Mid-stream text that is no opening message gives up as midstream.
        let got = run(&[(C, S, ACK, 1, b"some text in the middle")]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].verdict.encryption, Encryption::Plaintext);
        assert_eq!(got[0].verdict.reason, Reason::Midstream);
        // An HTTP request is where a connection starts: no midstream reason.
        let got = run(&[(C, S, ACK, 1, GET)]);
        assert_eq!(got[0].verdict.reason, Reason::None);
        assert!(got[0].midstream);
    }

    #[test]
    fn out_of_order_segments_are_fed_in_sequence_order() {
        let mut segs = handshake();
        // "GET / HT" arrives after "TP/1.1 ...": the classifier still sees
        // the request line first.
        segs.push((C, S, ACK, 109, &GET[8..]));
        segs.push((C, S, ACK, 101, &GET[..8]));
        let got = run(&segs);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].verdict.protocol, Protocol::Http);
    }

    #[test]
    fn retransmits_are_not_classified_twice() {
        // Text the classifier cannot name: it gives up after MAX_SEGMENTS
        // segments per side. Retransmits of the first must not count.
        let mut segs = handshake();
        for _ in 0..10 {
            segs.push((C, S, ACK, 101, b"hello"));
        }
        let got = run(&segs);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].ts_ns, 12, "decided at the end of the capture");
    }

    #[test]
    fn rst_or_both_fins_close_with_the_best_verdict() {
        let mut segs = handshake();
        segs.push((C, S, ACK, 101, b"hello"));
        segs.push((S, C, TCP_RST | ACK, 501, b""));
        segs.push((C, S, ACK, 106, b"late"));
        let got = run(&segs);
        // The RST ends the flow; the late segment starts a midstream one.
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].verdict, Verdict::plaintext(Protocol::Unknown));
        assert_eq!(got[0].ts_ns, 4);
        assert!(got[1].midstream);

        let mut segs = handshake();
        segs.push((C, S, ACK, 101, b"hello"));
        segs.push((C, S, TCP_FIN | ACK, 106, b""));
        segs.push((S, C, TCP_FIN | ACK, 501, b""));
        segs.push((C, S, ACK, 107, b""));
        let got = run(&segs);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].ts_ns, 5);
    }

    #[test]
    fn flows_without_payload_give_no_row() {
        let mut segs = handshake();
        segs.push((C, S, TCP_FIN | ACK, 101, b""));
        segs.push((S, C, TCP_FIN | ACK, 501, b""));
        assert!(run(&segs).is_empty());
        assert!(run(&[(C, S, SYN, 1, b"")]).is_empty());
    }

    #[test]
    fn a_new_syn_on_reused_ports_is_a_new_flow() {
        let mut segs = handshake();
        segs.push((C, S, ACK, 101, b"hello"));
        segs.push((C, S, SYN, 7000, b""));
        segs.push((C, S, ACK, 7001, GET));
        let got = run(&segs);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].verdict, Verdict::plaintext(Protocol::Unknown));
        assert_eq!(got[1].verdict.protocol, Protocol::Http);
        // A retransmitted SYN is the same connection.
        let mut segs = handshake();
        segs.push((C, S, SYN, 100, b""));
        segs.push((C, S, ACK, 101, GET));
        assert_eq!(run(&segs).len(), 1);
    }

    #[test]
    fn payload_on_the_syn_is_the_first_data() {
        // TCP Fast Open: the request rides on the SYN.
        let got = run(&[(C, S, SYN, 100, GET), (S, C, SYN_ACK, 500, b"")]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].verdict.protocol, Protocol::Http);
    }
}
