//! The flow table: the kernel's tracking rules (`agent_common::track`, the
//! very functions agent-ebpf/src/observe.rs calls) over captured segments,
//! so replay gives the verdicts the agent would. Only the storage (a
//! `HashMap` for the kernel's LRU map) and two ends are replay's own:
//!
//! - Per direction, only the next new bytes are classified, in capture
//!   order; a segment past a gap is not held for later (the kernel cannot
//!   hold it either).
//! - A flow still without a verdict at the end of the capture gets
//!   `on_close()`'s best guess, as it would at its close. Flows that never
//!   carried payload give nothing.
//! - A TLS flow's row waits for the client's flight after the ServerHello
//!   (`track::client_flight`, as the kernel exports it), or the flow's end,
//!   as the live agent holds it (kernel/events.rs `HeldFlows`).
//! - FTP data connections are named from their control connection's
//!   announcements (`pipeline::ftp_data`): after an `ftp` verdict, the
//!   control flow's segments that `ftp_announces` picks are read, bounded
//!   to the classifier's prefix.

use super::FlowRecord;
use super::packet::Segment;
use crate::pipeline::ftp_data::{self, FtpData};
use crate::pipeline::tls_hello::{self, TlsMeta};
use agent_common::{
    Encryption, Protocol, Side, Verdict,
    classify::{PrefixBuf, mail::ftp_announces, tls},
    track::{self, Inspect},
    wire::{FLIGHT_MAX, FLOW_CLIENT_IS_HI, FLOW_MIDSTREAM, FlowState},
};
use std::{collections::HashMap, net::SocketAddr};

/// Both directions of a connection map to one key: (lo, hi).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key(SocketAddr, SocketAddr);

impl Key {
    fn of(a: SocketAddr, b: SocketAddr) -> Self {
        if a <= b { Self(a, b) } else { Self(b, a) }
    }
}

struct Flow {
    key: Key,
    /// The kernel's per-flow state, moved by `track` alone.
    state: FlowState,
    /// Creation order, so flows still open at the end come out in order.
    created: u64,
    last_ts_ns: i64,
    tls: TlsMeta,
    /// The row of a decided TLS flow waiting for its client's flight.
    held: Option<FlowRecord>,
}

impl Flow {
    /// The flow's row; its hellos may name the version the classifier's
    /// prefix did not reach, as in the live agent (`PendingHellos::attach`).
    fn record(&self, mut verdict: Verdict) -> FlowRecord {
        self.tls.refine(&mut verdict);
        let (client, server) = if self.state.flags & FLOW_CLIENT_IS_HI != 0 {
            (self.key.1, self.key.0)
        } else {
            (self.key.0, self.key.1)
        };
        FlowRecord {
            client,
            server,
            verdict,
            midstream: self.state.flags & FLOW_MIDSTREAM != 0,
            ts_ns: self.last_ts_ns,
            tls: self.tls.clone(),
        }
    }

    /// Classifies the bytes of one segment that `track::inspect` lets
    /// through; the verdict, once there is one.
    fn feed(&mut self, t: &track::Segment, payload: &[u8]) -> Option<Verdict> {
        let side = track::side(&self.state, t.from_lo);
        let Inspect { classify, skip } = track::inspect(&mut self.state, side, t);
        if !classify {
            return None;
        }
        let bytes = usize::try_from(skip)
            .ok()
            .and_then(|s| payload.get(s..))
            .unwrap_or_default();
        // As the kernel: the hello is exported before the segment is
        // classified.
        if let Some(record) = tls_hello::exported(bytes, side) {
            if let Some(hello) = tls_hello::parse(record) {
                self.tls.add(hello);
            }
            if matches!(side, Side::Server) {
                track::await_client_flight(&mut self.state);
            }
        }
        track::classify(&mut self.state, side, bytes)
    }

    /// An FTP control connection's segment: the data connection it
    /// announces, if any.
    fn announcement(&self, t: &track::Segment, payload: &[u8]) -> Option<ftp_data::Announcement> {
        let side = track::side(&self.state, t.from_lo);
        let buf = PrefixBuf::new(payload);
        if !ftp_announces(side, &buf.prefix()) {
            return None;
        }
        ftp_data::parse(&payload[..payload.len().min(agent_common::wire::PREFIX)])
    }

    /// The flow ends: its held row, or its verdict if it has none yet and
    /// carried payload.
    fn close(&mut self) -> Option<FlowRecord> {
        self.held
            .take()
            .or_else(|| track::close(&mut self.state).map(|v| self.record(v)))
    }

    /// The kernel's client-flight export (agent-ebpf hello.rs): the held
    /// row, with the flight's head, once the client's flight shows.
    fn flight(&mut self, t: &track::Segment, payload: &[u8]) -> Option<FlowRecord> {
        // As the kernel: only decided flows (a TLS flow is decided at its
        // ServerHello).
        if !track::is_decided(&self.state) {
            return None;
        }
        let side = track::side(&self.state, t.from_lo);
        let n = track::client_flight(&mut self.state, side, t.payload_len);
        let head = payload.get(..usize::try_from(n).ok()?)?;
        // As the kernel: a second ClientHello (a HelloRetryRequest) means
        // the flight follows the next ServerHello.
        if let Ok(full) = <&[u8; FLIGHT_MAX]>::try_from(head)
            && tls::retried_client_hello(full)
        {
            track::await_client_flight(&mut self.state);
            return None;
        }
        // As the kernel, only bytes that start a TLS record.
        if n == 0 || !(0x14..=0x17).contains(head.first()?) {
            return None;
        }
        let hello = tls_hello::Hello::ClientFlight(head.to_vec());
        self.tls.add(hello.clone());
        let mut row = self.held.take()?;
        row.tls.add(hello);
        Some(row)
    }
}

#[derive(Default)]
pub struct FlowTable {
    flows: HashMap<Key, Flow>,
    created: u64,
    ftp: FtpData,
}

impl FlowTable {
    /// Tracks one segment; every flow it finishes goes to `out`.
    pub fn segment(&mut self, seg: &Segment<'_>, ts_ns: i64, out: &mut impl FnMut(FlowRecord)) {
        let mut done = Vec::new();
        self.track(seg, ts_ns, &mut |r| done.push(r));
        for mut r in done {
            self.ftp.name([r.client, r.server], &mut r.verdict, r.ts_ns);
            out(r);
        }
    }

    fn track(&mut self, seg: &Segment<'_>, ts_ns: i64, out: &mut impl FnMut(FlowRecord)) {
        let key = Key::of(seg.src, seg.dst);
        let t = track::Segment {
            from_lo: seg.src == key.0,
            sport: seg.src.port(),
            dport: seg.dst.port(),
            flags: seg.flags,
            seq: seg.seq,
            payload_len: seg.payload_len,
        };
        // Reused ports whose old connection's close was not seen: the old
        // flow ends, the SYN starts a new one.
        if t.is_client_syn()
            && self
                .flows
                .get(&key)
                .is_some_and(|old| track::restarts(&old.state, &t))
            && let Some(mut old) = self.flows.remove(&key)
            && let Some(r) = old.close()
        {
            out(r);
        }
        let flow = match self.flows.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let Some(flags) = track::new_flow(&t) else {
                    return;
                };
                self.created += 1;
                e.insert(Flow {
                    key,
                    state: track::fresh(flags),
                    created: self.created,
                    last_ts_ns: 0,
                    tls: TlsMeta::default(),
                    held: None,
                })
            }
        };
        flow.last_ts_ns = ts_ns;
        if let Some(r) = flow.flight(&t, seg.payload) {
            out(r);
        }
        if track::is_ftp_control(&flow.state)
            && !seg.payload.is_empty()
            && let Some(a) = flow.announcement(&t, seg.payload)
        {
            let r = flow.record(Verdict::plaintext(Protocol::Ftp));
            self.ftp.announce(r.client, r.server, a, ts_ns);
        }
        if let Some(v) = flow.feed(&t, seg.payload) {
            let r = flow.record(v);
            if r.verdict.encryption == Encryption::Tls && r.tls.awaits_client_flight() {
                flow.held = Some(r);
            } else {
                out(r);
            }
        }
        let side = track::side(&flow.state, t.from_lo);
        if t.is_closing() && track::finished(&mut flow.state, side, t.flags) {
            if let Some(r) = flow.close() {
                out(r);
            }
            self.flows.remove(&key);
        }
    }

    /// End of the capture: every open flow gets its best verdict.
    pub fn finish(&mut self, out: &mut impl FnMut(FlowRecord)) {
        let mut open: Vec<Flow> = self.flows.drain().map(|(_, f)| f).collect();
        open.sort_by_key(|f| f.created);
        for mut f in open {
            if let Some(mut r) = f.close() {
                self.ftp.name([r.client, r.server], &mut r.verdict, r.ts_ns);
                out(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::headers::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
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
    fn a_segment_past_a_gap_is_skipped_and_the_next_bytes_classified() {
        let mut segs = handshake();
        // "TP/1.1 ..." arrives before "GET / HT": as in the kernel, it is
        // past a gap and skipped (not held for later); the request line,
        // when it comes, is what the classifier sees.
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
