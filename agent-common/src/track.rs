//! Per-flow tracking rules: plain functions over `FlowState`, called by the
//! kernel's hook programs (agent-ebpf/src/observe.rs) and by replay
//! (agent/src/replay/flows.rs), so both give the same verdicts by
//! construction. Each runtime only adapts its input (a packet in the
//! kernel, a captured segment in replay) and its storage (an LRU map, a
//! `HashMap`). Every function is `inline(always)`: a hook program must make
//! no subprogram calls (see observe.rs `fresh_state`).
//!
//! A segment's way through them:
//! 1. `changes_state`: a pure ACK changes nothing and stops here.
//! 2. No entry: `new_flow` says whether it starts one, and how
//!    (`carries_payload`: in which table).
//!    An entry and a client SYN: `restarts` says whether it is a new
//!    connection on the same ports (then the old flow `close`s).
//! 3. `inspect`: whether to classify its payload, from which byte.
//! 4. `classify` with those bytes; then, on FIN/RST, `finished` and
//!    `close`.

use crate::Verdict;
use crate::classify::{FlowClassifier, Side};
use crate::headers::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::wire::{
    FLIGHT_MAX, FLOW_AWAIT_FLIGHT, FLOW_CLIENT_IS_HI, FLOW_DONE, FLOW_FIN_CLIENT, FLOW_FIN_SERVER,
    FLOW_MIDSTREAM, FLOW_SEQ_CLIENT, FLOW_SEQ_SERVER, FlowState,
};

/// What tracking needs of one TCP segment.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    /// The sender is the flow's "lo" endpoint: whichever endpoint order the
    /// runtime's flow key uses, as long as both directions agree.
    pub from_lo: bool,
    pub sport: u16,
    pub dport: u16,
    /// TCP flags.
    pub flags: u8,
    pub seq: u32,
    /// Payload length from the IP header: the sequence space it takes.
    pub payload_len: u32,
}

impl Segment {
    /// A SYN without ACK: its sender is the client.
    #[must_use]
    #[inline(always)]
    pub const fn is_client_syn(&self) -> bool {
        self.flags & (TCP_SYN | TCP_ACK) == TCP_SYN
    }

    /// FIN or RST.
    #[must_use]
    #[inline(always)]
    pub const fn is_closing(&self) -> bool {
        closes(self.flags)
    }
}

/// False for a pure ACK (no payload, no SYN/FIN/RST): it creates no flow, is
/// not classified and closes nothing, so a runtime may skip the flow table.
#[must_use]
#[inline(always)]
pub const fn changes_state(flags: u8, payload_len: u32) -> bool {
    payload_len != 0 || opens_or_closes(flags)
}

/// FIN or RST: the flow may be over (`finished`).
#[must_use]
#[inline(always)]
pub const fn closes(flags: u8) -> bool {
    flags & (TCP_FIN | TCP_RST) != 0
}

/// SYN, FIN or RST: always worth a flow-table visit, to set up or clean up
/// an entry (the kernel's shortcuts for decided flows never take these).
#[must_use]
#[inline(always)]
pub const fn opens_or_closes(flags: u8) -> bool {
    flags & (TCP_SYN | TCP_FIN | TCP_RST) != 0
}

/// Where a flow is stored: one that has carried no payload yet (a
/// handshake, or a SYN nobody answers) is embryonic, and a runtime with a
/// bounded table keeps it apart, so that a flood of SYNs evicts only other
/// handshakes, never a flow being classified. The first segment that
/// carries payload moves the flow to the main table, state unchanged: the
/// rules below do not depend on where the state lives, and replay (one
/// `HashMap`, no eviction) needs no split.
#[must_use]
#[inline(always)]
pub const fn carries_payload(seg: &Segment) -> bool {
    seg.payload_len != 0
}

/// For a segment with no flow entry: the `FlowState` flags of the flow it
/// starts, or `None` (a lone ACK, FIN or RST starts nothing). A client SYN
/// names the client; payload without a SYN starts a midstream flow whose
/// client is the side with the higher (ephemeral) port, on equal ports the
/// sender.
#[must_use]
#[inline(always)]
pub const fn new_flow(seg: &Segment) -> Option<u8> {
    if seg.is_client_syn() {
        return Some(if seg.from_lo { 0 } else { FLOW_CLIENT_IS_HI });
    }
    if seg.payload_len == 0 || seg.is_closing() {
        return None;
    }
    let sender_is_client = seg.sport >= seg.dport;
    // The sender is "hi" unless it is "lo".
    let client_is_hi = sender_is_client != seg.from_lo;
    Some(FLOW_MIDSTREAM | if client_is_hi { FLOW_CLIENT_IS_HI } else { 0 })
}

/// A new flow's state as native-endian words (next_seq[0], next_seq[1], the
/// classifier's two, then flags, after_verdict and padding), for the kernel
/// to store without a memset call. Flows first seen without a SYN get the
/// classifier's midstream start, which decides the `midstream` reason.
#[must_use]
#[inline(always)]
pub const fn fresh_words(flags: u8) -> [u32; 5] {
    const FRESH: [u32; 2] = FlowClassifier::new().to_words();
    const MIDSTREAM: [u32; 2] = FlowClassifier::new_midstream().to_words();
    let cl = if flags & FLOW_MIDSTREAM != 0 {
        MIDSTREAM
    } else {
        FRESH
    };
    [0, 0, cl[0], cl[1], u32::from_ne_bytes([flags, 0, 0, 0])]
}

/// A new flow's state (what `fresh_words` holds).
#[must_use]
pub const fn fresh(flags: u8) -> FlowState {
    FlowState {
        next_seq: [0, 0],
        classifier: if flags & FLOW_MIDSTREAM != 0 {
            FlowClassifier::new_midstream()
        } else {
            FlowClassifier::new()
        },
        flags,
        after_verdict: 0,
        node_local: 0,
        _pad1: 0,
    }
}

/// Which side sent a segment of this flow.
#[must_use]
#[inline(always)]
pub const fn side(st: &FlowState, from_lo: bool) -> Side {
    let client_is_hi = st.flags & FLOW_CLIENT_IS_HI != 0;
    if from_lo == client_is_hi {
        Side::Server
    } else {
        Side::Client
    }
}

/// The flow has its verdict: later segments only close it.
#[must_use]
#[inline(always)]
pub const fn is_decided(st: &FlowState) -> bool {
    st.flags & FLOW_DONE != 0
}

/// A decided flow whose verdict is `ftp`: a control connection, whose
/// later segments may announce a data connection
/// (`classify::mail::ftp_announces`); it keeps taking the long way.
#[must_use]
#[inline(always)]
pub fn is_ftp_control(st: &FlowState) -> bool {
    is_decided(st) && st.classifier.names(crate::Protocol::Ftp)
}

/// For a client SYN on an existing entry: true if it opens a new connection
/// on the same addresses and ports (reused ports whose old connection's
/// close was not seen), false for a retransmitted SYN or a second sighting
/// of it. The same SYN comes from the client side and starts right where
/// the client's tracked sequence stands (up to its own payload, with TCP
/// Fast Open); after the handshake the client has moved on, and a new
/// connection starts at a fresh ISN.
#[must_use]
#[inline(always)]
pub const fn restarts(st: &FlowState, seg: &Segment) -> bool {
    if !matches!(side(st, seg.from_lo), Side::Client) || st.flags & FLOW_SEQ_CLIENT == 0 {
        return true;
    }
    st.next_seq[0].wrapping_sub(seg.seq.wrapping_add(1)) > seg.payload_len
}

/// What to do with a segment's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inspect {
    /// Hand the payload to the classifier.
    pub classify: bool,
    /// Bytes at the payload's start already classified (a retransmit
    /// repacketised with new data): the classifier gets the rest.
    pub skip: u32,
}

impl Inspect {
    const NO: Self = Self {
        classify: false,
        skip: 0,
    };
}

/// Tracks the sequence of one segment of an undecided flow and says
/// whether its payload goes to the classifier: only the next new bytes of
/// a side the classifier still wants. A retransmit or duplicate (also the
/// same packet seen at both ends of a node-local connection) has been
/// classified once; a segment past a gap (loss or reordering) does not
/// start where the classifier left off, and is not held for later: the
/// kernel cannot buffer, and replay follows it.
#[inline(always)]
pub fn inspect(st: &mut FlowState, side: Side, seg: &Segment) -> Inspect {
    if is_decided(st) {
        return Inspect::NO;
    }
    let (seq_flag, idx) = match side {
        Side::Client => (FLOW_SEQ_CLIENT, 0),
        Side::Server => (FLOW_SEQ_SERVER, 1),
    };
    let mut seq = seg.seq;
    if seg.flags & TCP_SYN != 0 {
        // The SYN takes one sequence number; data (TCP Fast Open data on
        // the SYN itself) starts after it. A retransmitted SYN changes
        // nothing.
        seq = seq.wrapping_add(1);
        if st.flags & seq_flag == 0 {
            st.next_seq[idx] = seq;
            st.flags |= seq_flag;
        }
    }
    if seg.payload_len == 0 || !st.classifier.wants(side) {
        return Inspect::NO;
    }
    let end = seq.wrapping_add(seg.payload_len);
    let mut skip = 0;
    if st.flags & seq_flag != 0 {
        let next = st.next_seq[idx];
        // Signed distances in sequence space (RFC 1982): a gap before
        // the segment, or nothing after `next` in it.
        #[expect(clippy::cast_possible_wrap, reason = "sequence arithmetic")]
        if seq.wrapping_sub(next) as i32 > 0 || end.wrapping_sub(next) as i32 <= 0 {
            return Inspect::NO;
        }
        skip = next.wrapping_sub(seq);
    }
    st.next_seq[idx] = end;
    st.flags |= seq_flag;
    Inspect {
        classify: true,
        skip,
    }
}

/// Classifies the bytes `inspect` let through (userspace: the kernel runs
/// the same parts in its scan and classifier programs); the final verdict,
/// once there is one, after which the flow is decided.
pub fn classify(st: &mut FlowState, side: Side, payload: &[u8]) -> Option<Verdict> {
    if is_decided(st) {
        return None;
    }
    let v = st.classifier.on_payload(side, payload)?;
    decide(st);
    Some(v)
}

/// A ServerHello of this flow was exported: the client's next flight is
/// worth a look (`client_flight`).
#[inline(always)]
pub fn await_client_flight(st: &mut FlowState) {
    st.flags |= FLOW_AWAIT_FLIGHT;
}

/// Lone ChangeCipherSpec record: `14 03 03 00 01 01`.
const LONE_CCS: u32 = 6;

/// For any segment (the flow is usually decided by now): how many bytes
/// of its payload to export as the client's flight (`FLIGHT_MAX` at
/// most), 0 for none. Only once per flow, for the client's first segment
/// after the ServerHello that carries more than a lone ChangeCipherSpec
/// (a client that flushes it apart from its flight). Costs one flag test
/// on every other segment of the slow path.
#[must_use]
#[inline(always)]
pub fn client_flight(st: &mut FlowState, side: Side, payload_len: u32) -> u32 {
    if st.flags & FLOW_AWAIT_FLIGHT == 0 || !matches!(side, Side::Client) || payload_len <= LONE_CCS
    {
        return 0;
    }
    st.flags &= !FLOW_AWAIT_FLIGHT;
    #[expect(clippy::cast_possible_truncation, reason = "FLIGHT_MAX is 16")]
    let max = FLIGHT_MAX as u32;
    if payload_len > max { max } else { payload_len }
}

/// Marks the flow decided: its classifier gave the final verdict (the
/// kernel runs the classifier in stages, see agent-ebpf/src/observe.rs,
/// and calls this where a segment's verdict comes).
#[inline(always)]
pub fn decide(st: &mut FlowState) {
    st.flags |= FLOW_DONE;
}

/// Records a FIN from `side`; true once the flow is over: an RST, or both
/// sides' FINs. Kept per side so that a retransmitted FIN (common on veth
/// under load) is not taken for the other side's, and late data from the
/// other side is not mistaken for a new mid-stream flow.
#[inline(always)]
pub fn finished(st: &mut FlowState, side: Side, tcp_flags: u8) -> bool {
    if tcp_flags & TCP_FIN != 0 {
        st.flags |= match side {
            Side::Client => FLOW_FIN_CLIENT,
            Side::Server => FLOW_FIN_SERVER,
        };
    }
    let fins = FLOW_FIN_CLIENT | FLOW_FIN_SERVER;
    tcp_flags & TCP_RST != 0 || st.flags & fins == fins
}

/// A flow that ends (closed, restarted, or at the end of a capture): its
/// best verdict if it has none yet and carried payload.
#[inline(always)]
pub fn close(st: &mut FlowState) -> Option<Verdict> {
    if is_decided(st) {
        return None;
    }
    st.flags |= FLOW_DONE;
    st.classifier.on_close()
}

#[cfg(test)]
mod tests;
