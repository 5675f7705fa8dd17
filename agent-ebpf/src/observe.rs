//! Flow tracking (every packet) and classification (the first payload
//! segments of unclassified flows, in tail-called programs: the core, then
//! the family stages a segment needs, see classify/mod.rs).
//!
//! Splitting them keeps each program small for the verifier: the classifier
//! is verified once, not once per path through the tracker, and each
//! protocol family in its own program.

use crate::hello;
use crate::maps::{
    CLASSIFY_CGROUP_EGRESS, CLASSIFY_CGROUP_INGRESS, CLASSIFY_TC, DECIDED, EMBRYOS, EVENTS, FLOWS,
    RECENT, RECENT_SLOTS, Recent, SCRATCH, SEEN, Scratch, Seen, SocketFlow, count,
    include_loopback, wakeup_flags,
};
use crate::parse::{Packet, parse};
use agent_common::{
    FlowClassifier, Side, Verdict,
    classify::{Prefix, Route, credentials::SCAN_SLOT},
    headers::{TCP_ACK, TCP_SYN},
    track::{self, Inspect, Segment},
    wire::{
        EVENT_MIDSTREAM, FAMILY_V4, FLOW_CLIENT_IS_HI, FLOW_MIDSTREAM, FlowEvent, FlowKey,
        FlowState, Hook, MARK_SOCKET_AFTER, PREFIX, Stat,
    },
};
use aya_ebpf::{
    EbpfContext,
    bindings::{
        __sk_buff, BPF_NOEXIST, BPF_SK_STORAGE_GET_F_CREATE, BPF_TCP_ESTABLISHED, bpf_sock,
    },
    helpers::generated::{bpf_sk_storage_get, bpf_skb_load_bytes},
};

/// Which hook program is running: picks the classifier to tail-call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Program {
    CgroupIngress,
    CgroupEgress,
    Tc,
}

impl Program {
    #[inline(always)]
    const fn hook(self) -> Hook {
        match self {
            Self::CgroupIngress | Self::CgroupEgress => Hook::Cgroup,
            Self::Tc => Hook::Tc,
        }
    }
}

/// Entry of every hook program. Each packet bumps exactly one counter
/// (`Stat::totals` rebuilds the packet totals in userspace): on the paths
/// most packets take, a counter costs as much as the rest of the work.
#[inline(always)]
pub fn observe<C: EbpfContext>(ctx: &C, prog: Program) {
    let hook = prog.hook();
    let skb = ctx.as_ptr().cast::<__sk_buff>();
    match parse(skb, hook) {
        Ok(pkt) => {
            if !track::changes_state(pkt.flags, pkt.payload_len) {
                // A pure ACK changes no flow state (see `track`): no lookup.
                count(Stat::PureAcks);
                return;
            }
            // SYN/FIN/RST always go the long way, to set up or clean up
            // the flow table.
            if !track::opens_or_closes(pkt.flags) {
                if hook == Hook::Cgroup && socket_decided(skb, prog, &pkt) {
                    count(Stat::SocketFastPath);
                    return;
                }
                if hook == Hook::Tc && recent_continues(&pkt) {
                    count(Stat::RecentFastPath);
                    return;
                }
            }
            if !include_loopback() && is_loopback(&pkt) {
                count(Stat::TcpPackets);
                count(Stat::Loopback);
                return;
            }
            if seen_again(&pkt) {
                count(Stat::SecondSightings);
                if is_bare_client_syn(&pkt) {
                    mark_node_local(&pkt);
                }
                return;
            }
            count(Stat::TcpPackets);
            track(ctx, skb, prog, &pkt);
        }
        Err(stat) => count(stat),
    }
}

/// The socket the packet belongs to, if the context carries one.
#[inline(always)]
fn socket(skb: *mut __sk_buff) -> Option<*mut bpf_sock> {
    // SAFETY: reading the context's socket pointer; the verifier checks it.
    let sk = unsafe { (*skb).__bindgen_anon_2.sk };
    (!sk.is_null()).then_some(sk)
}

/// The connection as its socket sees it: ingress packets come from the
/// peer, egress packets go to it.
#[inline(always)]
fn socket_flow(prog: Program, p: &Packet) -> SocketFlow {
    let (peer, peer_port, local_port) = if prog == Program::CgroupIngress {
        (&p.src, p.sport, p.dport)
    } else {
        (&p.dst, p.dport, p.sport)
    };
    SocketFlow {
        peer: peer[0] ^ peer[1] ^ peer[2] ^ peer[3],
        ports: (u32::from(peer_port) << 16) | u32::from(local_port),
    }
}

#[inline(always)]
fn storage_get(sk: *mut bpf_sock, init: *mut SocketFlow, flags: u64) -> *mut SocketFlow {
    let map = core::ptr::from_ref(&DECIDED).cast_mut().cast();
    // SAFETY: a socket pointer from the context, the map's own address; the
    // helper returns null for sockets that cannot carry storage.
    unsafe { bpf_sk_storage_get(map, sk.cast(), init.cast(), flags) }.cast()
}

/// True when this packet's socket is marked decided for this very
/// connection (called for segments that neither open nor close it).
#[inline(always)]
fn socket_decided(skb: *mut __sk_buff, prog: Program, p: &Packet) -> bool {
    let Some(sk) = socket(skb) else {
        return false;
    };
    let mark = storage_get(sk, core::ptr::null_mut(), 0);
    if mark.is_null() {
        return false;
    }
    let want = socket_flow(prog, p);
    // SAFETY: a live storage value of this socket.
    let mark = unsafe { &*mark };
    mark.peer == want.peer && mark.ports == want.ports
}

/// Marks the packet's socket as carrying a decided flow. Only established
/// sockets: a SYN or handshake ACK arrives on the listener, which every
/// later connection shares.
#[inline(always)]
fn mark_decided(skb: *mut __sk_buff, prog: Program, p: &Packet) {
    let Some(sk) = socket(skb) else {
        return;
    };
    // SAFETY: `state` is readable on the context's socket.
    if unsafe { (*sk).state } != BPF_TCP_ESTABLISHED {
        return;
    }
    let mut want = socket_flow(prog, p);
    let mark = storage_get(sk, &raw mut want, u64::from(BPF_SK_STORAGE_GET_F_CREATE));
    if !mark.is_null() {
        // An existing mark (from an earlier connection) is not replaced
        // by the create flag; overwrite it.
        // SAFETY: a live storage value of this socket.
        unsafe {
            (*mark).peer = want.peer;
            (*mark).ports = want.ports;
        }
    }
}

/// This segment's slot index in the CPU's `RECENT` and `SEEN` arrays, by a
/// cheap fold of the 4-tuple (the two directions of a flow differ in the
/// port order).
#[inline(always)]
fn slot_index(p: &Packet) -> u32 {
    let h = p.src[0] ^ p.src[3] ^ p.dst[0].rotate_left(7) ^ p.dst[3] ^ ports_word(p);
    (h ^ (h >> 16)) & (RECENT_SLOTS - 1)
}

#[inline(always)]
fn recent_slot(p: &Packet) -> Option<*mut Recent> {
    RECENT.get_ptr_mut(slot_index(p))
}

/// Two addresses equal, word by word: an array comparison may become a
/// call to memcmp, and a hook program must not make subprogram calls (see
/// `fresh_state`).
#[inline(always)]
fn same_addr(a: &[u32; 4], b: &[u32; 4]) -> bool {
    a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3]
}

#[inline(always)]
fn ports_word(p: &Packet) -> u32 {
    (u32::from(p.sport) << 16) | u32::from(p.dport)
}

/// True when this data segment (no SYN/FIN/RST) continues a decided flow
/// exactly where the CPU's slot for it left off (see `RECENT`), and moves
/// the slot on; or is the very segment that last moved it, seen again:
/// between two pods on one node TC sees each packet on both pods' veths,
/// one right after the other (a retransmit of it needs nothing either).
#[inline(always)]
fn recent_continues(p: &Packet) -> bool {
    let Some(slot) = recent_slot(p) else {
        return false;
    };
    // SAFETY: this CPU's slot; nothing else runs on this CPU meanwhile.
    let slot = unsafe { &mut *slot };
    let end = p.seq.wrapping_add(p.payload_len);
    let continues = slot.next_seq == p.seq;
    let again = p.payload_len != 0 && slot.next_seq == end;
    if !(continues || again)
        || slot.ports != ports_word(p)
        || !same_addr(&slot.src, &p.src)
        || !same_addr(&slot.dst, &p.dst)
    {
        return false;
    }
    slot.next_seq = end;
    true
}

#[inline(always)]
fn seen_slot(p: &Packet) -> Option<*mut Seen> {
    SEEN.get_ptr_mut(slot_index(p))
}

/// TCP flags and payload length, the rest of what makes a segment itself.
#[inline(always)]
fn shape(p: &Packet) -> u32 {
    (u32::from(p.flags) << 24) | (p.payload_len & 0x00ff_ffff)
}

/// True when this segment is the one the connection's other end just left
/// in the CPU's `SEEN` slot (`remember_seen`): its second sighting,
/// which takes the slot (a third is a retransmit, tracked again). One
/// slot lookup and one compare for every other segment.
#[inline(always)]
fn seen_again(p: &Packet) -> bool {
    let Some(slot) = seen_slot(p) else {
        return false;
    };
    // SAFETY: this CPU's slot; nothing else runs on this CPU meanwhile.
    let slot = unsafe { &mut *slot };
    if slot.ports != ports_word(p)
        || slot.seq != p.seq
        || slot.shape != shape(p)
        || !same_addr(&slot.src, &p.src)
        || !same_addr(&slot.dst, &p.dst)
    {
        return false;
    }
    slot.ports = 0;
    true
}

/// Leaves a segment (a bare SYN, or a node-local flow's) in the CPU's
/// `SEEN` slot, for its second sighting (`seen_again`).
#[inline(always)]
fn remember_seen(p: &Packet) {
    let Some(slot) = seen_slot(p) else {
        return;
    };
    // SAFETY: as in `seen_again`.
    let slot = unsafe { &mut *slot };
    slot.src = p.src;
    slot.dst = p.dst;
    slot.ports = ports_word(p);
    slot.seq = p.seq;
    slot.shape = shape(p);
}

/// Empties the CPU's slot for this segment's direction if it holds it.
#[inline(always)]
fn forget_recent(p: &Packet) {
    let Some(slot) = recent_slot(p) else {
        return;
    };
    // SAFETY: as in `recent_continues`.
    let slot = unsafe { &mut *slot };
    if slot.ports == ports_word(p) {
        slot.ports = 0;
    }
}

/// Remembers a decided flow's data segment in the CPU's slot (TC only).
#[inline(always)]
fn remember_decided(p: &Packet) {
    if p.payload_len == 0 {
        return;
    }
    let Some(slot) = recent_slot(p) else {
        return;
    };
    // SAFETY: as in `recent_continues`.
    let slot = unsafe { &mut *slot };
    slot.src = p.src;
    slot.dst = p.dst;
    slot.ports = ports_word(p);
    slot.next_seq = p.seq.wrapping_add(p.payload_len);
}

#[inline(always)]
fn is_loopback(p: &Packet) -> bool {
    if p.family == FAMILY_V4 {
        return p.src[0].to_ne_bytes()[0] == 127 || p.dst[0].to_ne_bytes()[0] == 127;
    }
    let one = u32::from_ne_bytes([0, 0, 0, 1]);
    let lo = |a: &[u32; 4]| a[0] | a[1] | a[2] == 0 && a[3] == one;
    lo(&p.src) || lo(&p.dst)
}

/// Word-wise (address, port) order; decides which endpoint is "lo".
#[inline(always)]
fn src_is_lo(p: &Packet) -> bool {
    let mut i = 0;
    while i < 4 {
        if p.src[i] != p.dst[i] {
            return p.src[i] < p.dst[i];
        }
        i += 1;
    }
    p.sport <= p.dport
}

/// Builds the segment's flow key in the scratch slot, not on the stack:
/// the classifier program reads it from there after the tail call, and a
/// tail call from a program with subprogram calls allows only 256 bytes
/// of stack. True when the sender is the key's "lo" endpoint.
#[inline(always)]
fn stage_key(sc: &mut Scratch, p: &Packet) -> bool {
    let lo = src_is_lo(p);
    let (la, lp, ha, hp) = if lo {
        (&p.src, p.sport, &p.dst, p.dport)
    } else {
        (&p.dst, p.dport, &p.src, p.sport)
    };
    sc.key.lo_addr = *la;
    sc.key.hi_addr = *ha;
    sc.key.lo_port = lp;
    sc.key.hi_port = hp;
    sc.key.family = p.family;
    sc.key._pad0 = 0;
    sc.key._pad1 = 0;
    lo
}

/// A SYN without ACK or payload: what opens an embryonic flow.
#[inline(always)]
fn is_bare_client_syn(p: &Packet) -> bool {
    p.flags & (TCP_SYN | TCP_ACK) == TCP_SYN && p.payload_len == 0
}

/// The second sighting of a flow's SYN (`seen_again`): the connection's
/// other end is on this node, and the flow is marked node-local, so that
/// each segment it tracks is remembered for its own second sighting. One
/// lookup, where the SYN's long way would have been a failed insert and a
/// lookup. The flow is embryonic, or in the main table when the SYN
/// restarted an entry on reused ports.
#[inline(always)]
fn mark_node_local(p: &Packet) {
    let Some(sc) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot; nothing else runs on this CPU meanwhile.
    let sc = unsafe { &mut *sc };
    stage_key(sc, p);
    let key = &sc.key;
    let found = match EMBRYOS.get_ptr_mut(key) {
        Some(s) => Some(s),
        None => FLOWS.get_ptr_mut(key),
    };
    if let Some(s) = found {
        // SAFETY: a live map value (see `track`).
        unsafe { (*s).node_local = 1 };
    }
}

#[inline(always)]
fn track<C: EbpfContext>(ctx: &C, skb: *mut __sk_buff, prog: Program, p: &Packet) {
    let hook = prog.hook();
    let Some(sc) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot; nothing else runs on this CPU meanwhile.
    let sc = unsafe { &mut *sc };
    let lo = stage_key(sc, p);
    let key = &sc.key;
    let seg = Segment {
        from_lo: lo,
        sport: p.sport,
        dport: p.dport,
        flags: p.flags,
        seq: p.seq,
        payload_len: p.payload_len,
    };
    let client_syn = seg.is_client_syn();
    let closing = seg.is_closing();
    if client_syn && !track::carries_payload(&seg) {
        // If the connection's other end is on this node, it sees this SYN
        // next, on this CPU (`seen_again`, `mark_node_local`).
        remember_seen(p);
    }
    let Some((state, mut table, inserted)) = entry(key, &seg) else {
        return;
    };
    // SAFETY: a live map value; concurrent updates of one flow from two CPUs
    // can at worst misclassify that flow, never touch other memory.
    let mut st = unsafe { &mut *state };
    if client_syn && !inserted {
        if track::restarts(st, &seg) {
            // Reused ports: the old connection ends here, the entry starts
            // over.
            if let Some(v) = track::close(st) {
                emit(hook, key, st, v);
            }
            if let Some(flags) = track::new_flow(&seg) {
                write_fresh(&raw mut *st, flags);
            }
        } else {
            // The same SYN again: the connection's other end is on this
            // node (or the SYN was retransmitted).
            st.node_local = 1;
        }
    } else if st.node_local != 0 {
        remember_seen(p);
    }
    let side = track::side(st, lo);

    if track::is_decided(st) {
        // A TLS flow is decided at its ServerHello: the client's flight
        // after it comes this way (hello.rs `export_flight`). Where in this
        // branch is the verifier's cost alone (the hook is a constant per
        // program), measured: first on the cgroup hook (+10k instructions;
        // +26k last), last on TC (+9k; +45k first).
        if hook == Hook::Cgroup {
            export_flight(skb, key, st, side, p);
        }
        // An FTP control connection keeps taking this way: its later
        // lines announce data connections (`ftp`), and it is never busy.
        let ftp = track::is_ftp_control(st);
        if ftp && p.payload_len != 0 {
            crate::ftp::export_if_announced(skb, side, p, key, st.flags & FLOW_CLIENT_IS_HI != 0);
        } else if hook == Hook::Cgroup && !closing {
            if st.after_verdict < MARK_SOCKET_AFTER {
                st.after_verdict += 1;
            } else {
                mark_decided(skb, prog, p);
            }
        } else if hook == Hook::Tc && !track::opens_or_closes(seg.flags) {
            remember_decided(p);
        }
        if hook == Hook::Tc {
            export_flight(skb, key, st, side, p);
        }
        if closing && track::finished(st, side, p.flags) {
            forget(key, table);
        }
        return;
    }
    let Inspect { classify, skip } = track::inspect(st, side, &seg);
    if classify && stage_payload(skb, side, p, skip) {
        if hello::export_if_hello(skb, side, p, skip, st.flags & FLOW_CLIENT_IS_HI != 0) {
            track::await_client_flight(st);
        }
        // The scan program and the core read the flow's state from the
        // scratch: no second lookup until a segment ends, where an
        // embryo's state becomes its main-table entry whole.
        copy_state(&raw const *st, &raw mut sc.flow);
        sc.embryo = u8::from(table == Table::Embryos);
        // A message that may carry credentials past the prefix goes to the
        // scan program first, which then tail-calls the core (if it is not
        // loaded, the core classifies without it).
        if st.classifier.may_scan(side, sc.buf[0]) {
            sc.seg_off = p.payload_off + skip;
            sc.seg_len = p.payload_len - skip;
            try_tail_call(ctx, prog, SCAN_SLOT);
        }
        tail_call(ctx, prog, 0);
        wipe(sc);
    } else if table == Table::Embryos && track::carries_payload(&seg) {
        // Payload not classified (past a gap, or a side the classifier
        // no longer wants): the flow still leaves the embryonic table.
        let Some(moved) = promote(key, st) else {
            return;
        };
        // SAFETY: a live map value, as above.
        st = unsafe { &mut *moved };
        table = Table::Flows;
    }
    if closing {
        on_close(hook, &sc.key, st, side, p.flags, table);
    }
}

/// The client's flight after the ServerHello, once per TLS flow
/// (`track::client_flight`).
#[inline(always)]
fn export_flight(skb: *mut __sk_buff, key: &FlowKey, st: &mut FlowState, side: Side, p: &Packet) {
    let n = track::client_flight(st, side, p.payload_len);
    if n != 0 && hello::export_flight(skb, key, st.flags & FLOW_CLIENT_IS_HI != 0, p, n) {
        // A HelloRetryRequest: the flight follows the next ServerHello, and
        // the client's next segment must take the long way to be seen (on
        // TC this one just filled the recent-flow slot).
        track::await_client_flight(st);
        forget_recent(p);
    }
}

/// Which table holds a flow's entry (see `track::carries_payload`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    /// `FLOWS`: flows that have carried payload.
    Flows,
    /// `EMBRYOS`: flows opened by a bare SYN, no payload yet.
    Embryos,
}

/// The segment's flow entry, its table, and whether this segment created
/// it; `None` if there is nothing more to do: it starts no flow, or it
/// opened one whose embryo the insert wrote whole (`create`). A flow that
/// has carried payload lives in the main table: an embryonic flow moves
/// there at its first payload (`end_first_payload`, `promote`), so a SYN
/// flood, which fills only `EMBRYOS`, evicts no flow that is being
/// classified. A bare client SYN looks in `FLOWS` first only for
/// reused ports (the old connection's entry, see `track::restarts`).
#[inline(always)]
fn entry(key: &FlowKey, seg: &Segment) -> Option<(*mut FlowState, Table, bool)> {
    let payload = track::carries_payload(seg);
    if seg.is_client_syn() {
        if payload {
            // TCP Fast Open: straight to the insert, which leaves an
            // existing entry (a retransmitted SYN, reused ports) alone.
            return create(key, seg, Table::Flows);
        }
        if let Some(s) = FLOWS.get_ptr_mut(key) {
            return Some((s, Table::Flows, false));
        }
        return create(key, seg, Table::Embryos);
    }
    // A bare SYN-ACK answers a SYN: its flow is nearly always embryonic,
    // so that table first (one lookup, not two, on each end of a
    // connection; reused ports have no embryo and fall through).
    if seg.flags & TCP_SYN != 0
        && !payload
        && let Some(s) = EMBRYOS.get_ptr_mut(key)
    {
        return Some((s, Table::Embryos, false));
    }
    if let Some(s) = FLOWS.get_ptr_mut(key) {
        return Some((s, Table::Flows, false));
    }
    if let Some(s) = EMBRYOS.get_ptr_mut(key) {
        // At its first payload an embryo moves to the main table: where
        // the segment's classification ends, or in `track` if it is not
        // classified.
        return Some((s, Table::Embryos, false));
    }
    // Payload of an unknown flow (mid-stream), or nothing to track.
    create(key, seg, Table::Flows)
}

/// Inserts a new flow's entry in `table` unless one exists (a retransmitted
/// SYN, reused ports, another CPU), and returns the entry; `None` also when
/// the insert wrote a bare SYN's embryo whole (below).
#[expect(
    clippy::needless_borrows_for_generic_args,
    reason = "pass a pointer, not a 20-byte copy, to the helper"
)]
#[inline(always)]
fn create(key: &FlowKey, seg: &Segment, table: Table) -> Option<(*mut FlowState, Table, bool)> {
    let flags = track::new_flow(seg)?;
    let mut fresh = fresh_state(flags);
    // All a bare SYN does to its new flow (the only kind that opens an
    // embryo) is note where the side's stream starts: done here, before
    // the insert, the embryo needs no lookup after it.
    let opened = table == Table::Embryos;
    if opened {
        let side = track::side(&fresh, seg.from_lo);
        track::inspect(&mut fresh, side, seg);
    }
    let flag = u64::from(BPF_NOEXIST);
    // Each table spelled out at its call: one helper call site per map.
    let inserted = match table {
        Table::Flows => FLOWS.insert(key, &fresh, flag).is_ok(),
        Table::Embryos => EMBRYOS.insert(key, &fresh, flag).is_ok(),
    };
    if inserted {
        count(match table {
            Table::Flows => Stat::FlowsCreated,
            Table::Embryos => Stat::EmbryosCreated,
        });
        if opened {
            return None;
        }
    }
    let found = match table {
        Table::Flows => FLOWS.get_ptr_mut(key),
        Table::Embryos => EMBRYOS.get_ptr_mut(key),
    };
    let Some(s) = found else {
        count(Stat::FlowTableFull);
        return None;
    };
    Some((s, table, inserted))
}

/// Moves an embryonic flow, state unchanged, to the main table at an
/// unclassified first payload (a classified one moves where it ends,
/// `end_first_payload`).
#[inline(always)]
fn promote(key: &FlowKey, embryo: *mut FlowState) -> Option<*mut FlowState> {
    let mut st = core::mem::MaybeUninit::<FlowState>::uninit();
    copy_state(embryo, st.as_mut_ptr());
    // SAFETY: every byte copied.
    let st = unsafe { st.assume_init() };
    move_to_flows(key, &st);
    let found = FLOWS.get_ptr_mut(key);
    if found.is_none() {
        count(Stat::FlowTableFull);
    }
    found
}

/// Inserts an embryonic flow's state into the main table and removes its
/// embryo; false if the main table had its entry already (another CPU
/// moved it first). Each count follows its own map operation's success,
/// so both tables' conservation laws stay exact.
#[inline(always)]
fn move_to_flows(key: &FlowKey, st: &FlowState) -> bool {
    let inserted = FLOWS.insert(key, st, u64::from(BPF_NOEXIST)).is_ok();
    if inserted {
        count(Stat::FlowsCreated);
    }
    if EMBRYOS.remove(key).is_ok() {
        count(Stat::EmbryosPromoted);
    }
    inserted
}

/// Copies a flow's state between map values or the stack, word by word
/// (see `write_fresh`).
#[inline(always)]
fn copy_state(src: *const FlowState, dst: *mut FlowState) {
    let (from, to) = (src.cast::<u32>(), dst.cast::<u32>());
    let mut i = 0;
    while i < size_of::<FlowState>() / 4 {
        // SAFETY: five u32 words of a 20-byte, 4-aligned struct each side.
        unsafe { core::ptr::write_volatile(to.add(i), core::ptr::read_volatile(from.add(i))) };
        i += 1;
    }
}

/// A new flow's state (`track::fresh_words`), written word by word: the
/// struct literal compiles to a memset call, and any subprogram call in
/// this program would cut the stack a tail call allows to 256 bytes.
#[inline(always)]
fn fresh_state(flags: u8) -> FlowState {
    let mut st = core::mem::MaybeUninit::<FlowState>::uninit();
    write_fresh(st.as_mut_ptr(), flags);
    // SAFETY: `write_fresh` initialised every byte.
    unsafe { st.assume_init() }
}

/// Writes a new flow's state over `dst` (a stack slot or a map value).
#[inline(always)]
fn write_fresh(dst: *mut FlowState, flags: u8) {
    const _: () = assert!(size_of::<FlowState>() == 20 && align_of::<FlowState>() == 4);
    let words = track::fresh_words(flags);
    let w = dst.cast::<u32>();
    // SAFETY: five u32 stores cover the 20-byte, 4-aligned struct.
    unsafe {
        core::ptr::write_volatile(w, words[0]);
        core::ptr::write_volatile(w.add(1), words[1]);
        core::ptr::write_volatile(w.add(2), words[2]);
        core::ptr::write_volatile(w.add(3), words[3]);
        core::ptr::write_volatile(w.add(4), words[4]);
    }
}

/// Copies the payload prefix, from `skip` bytes in (see `track::Inspect`),
/// and what the classifier needs into the per-CPU scratch (the key is
/// there already). False if the payload could not be read.
#[inline(always)]
fn stage_payload(skb: *mut __sk_buff, side: Side, p: &Packet, skip: u32) -> bool {
    let Some(sc) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's slot; nothing else runs on this CPU meanwhile.
    let sc = unsafe { &mut *sc };
    let len = (p.payload_len - skip) as usize;
    let n = if len > PREFIX { PREFIX } else { len };
    // Re-check on the very register passed to the helper: the verifier
    // rejects a length it cannot see as >= 1, and the optimiser likes to
    // test a copy instead.
    let n = core::hint::black_box(n);
    if n == 0 || n > PREFIX {
        return false;
    }
    count(Stat::PayloadSegments);
    // The classifier reads all PREFIX bytes and relies on zeros past n:
    // the buffer is all zeros here, as every use ends with `wipe` (and a
    // failed load zeroes what it was to fill).
    // SAFETY: buf has room for n <= PREFIX bytes.
    let rc = unsafe {
        bpf_skb_load_bytes(
            skb as *const _,
            p.payload_off + skip,
            sc.buf.as_mut_ptr().cast(),
            n as u32,
        )
    };
    if rc != 0 {
        count(Stat::PayloadLoadFailed);
        return false;
    }
    #[expect(clippy::cast_possible_truncation, reason = "n <= PREFIX")]
    {
        sc.len = n as u32;
    }
    sc.side = side as u8;
    sc.tcp_flags = p.flags;
    sc.credentials = 0;
    true
}

/// Tail-calls the hook's classifier program at `index` (0: the core;
/// `1..=STAGES`: the family stages). Returns only on failure, counted.
#[inline(always)]
fn tail_call<C: EbpfContext>(ctx: &C, prog: Program, index: u32) {
    try_tail_call(ctx, prog, index);
    count(Stat::TailCallFailed);
}

/// `tail_call` to the core, for the credentials scan program.
#[inline(always)]
pub fn tail_call_core<C: EbpfContext>(ctx: &C, prog: Program) {
    tail_call(ctx, prog, 0);
}

/// A tail call that may fail without counting: the credentials scan's slot
/// stays empty on kernels without `bpf_loop` (see credentials.rs).
#[inline(always)]
fn try_tail_call<C: EbpfContext>(ctx: &C, prog: Program, index: u32) {
    // SAFETY: ctx is this program's context; the classifier programs have
    // the same type. Returns only on failure.
    unsafe {
        match prog {
            Program::CgroupIngress => CLASSIFY_CGROUP_INGRESS.tail_call(ctx, index),
            Program::CgroupEgress => CLASSIFY_CGROUP_EGRESS.tail_call(ctx, index),
            Program::Tc => CLASSIFY_TC.tail_call(ctx, index),
        }
    };
}

/// Entry of the core classifier program (index 0): counts the staged
/// segment and decides what needs no dissector (TLS records, the
/// classifier's own stages); a segment that needs a family goes on to its
/// stage. The flow's state travels in the scratch (the hook copied it
/// there), so the flow table is visited once per segment, where it ends.
#[inline(always)]
pub fn classify<C: EbpfContext>(ctx: &C, prog: Program) {
    let Some(sc) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot, filled by the tracker just before the call.
    let sc = unsafe { &mut *sc };
    let side = staged_side(sc);
    // SAFETY: a byte of this CPU's slot (the scan program's finding).
    let found = unsafe { core::ptr::read_volatile(&raw const sc.credentials) };
    sc.flow.classifier.credentials_found_if(found);
    let data = Prefix::new(&sc.buf, sc.len as usize);
    let (v, route) = sc.flow.classifier.begin(side, &data);
    let route = carry(sc, route);
    if route.stage != 0 {
        tail_call(ctx, prog, u32::from(route.stage));
    } else {
        let verdict = sc.flow.classifier.end(side, v, route);
        end_segment(prog.hook(), sc, side, verdict);
    }
    wipe(sc);
}

/// Entry of family stage `F`'s program: its part of the segment (a step of
/// one of its dissectors, or its openings / mid-stream signatures in a
/// search), then the next stage, or the end of the segment here.
#[inline(always)]
pub fn classify_stage<C: EbpfContext, const F: u8>(ctx: &C, prog: Program) {
    let Some(sc) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot, filled by the previous stage.
    let sc = unsafe { &mut *sc };
    let side = staged_side(sc);
    let route = Route {
        stage: F,
        pass: sc.pass,
    };
    let data = Prefix::new(&sc.buf, sc.len as usize);
    let (v, next) = sc.flow.classifier.stage(F, side, &data, route);
    let next = carry(sc, next);
    if next.stage != 0 {
        tail_call(ctx, prog, u32::from(next.stage));
    } else {
        let verdict = sc.flow.classifier.end(side, v, next);
        end_segment(prog.hook(), sc, side, verdict);
    }
    wipe(sc);
}

/// Where a segment's classification ends (in the core or a stage): the
/// classifier state goes back to the flow's entry, unless another CPU
/// decided the flow meanwhile, then the verdict and the close handling.
/// An embryo's first payload instead moves the whole state to the main
/// table (`end_first_payload`).
#[inline(always)]
fn end_segment(hook: Hook, sc: &mut Scratch, side: Side, verdict: Option<Verdict>) {
    if sc.embryo != 0 && end_first_payload(hook, sc, side, verdict) {
        return;
    }
    if let Some(state) = FLOWS.get_ptr_mut(sc.key) {
        // SAFETY: see `track`.
        let st = unsafe { &mut *state };
        if !track::is_decided(st) {
            copy_classifier(&raw const sc.flow.classifier, &raw mut st.classifier);
            conclude(hook, &sc.key, sc.tcp_flags, st, side, verdict);
        }
    }
}

/// An embryonic flow's classified first payload: its state, concluded in
/// the scratch, becomes its main-table entry in one insert (no lookup
/// before or after), and the embryo goes. False, with nothing emitted, if
/// another CPU moved the flow first: then the segment ends as one of a
/// main-table flow.
#[inline(always)]
fn end_first_payload(hook: Hook, sc: &mut Scratch, side: Side, verdict: Option<Verdict>) -> bool {
    let Scratch {
        key,
        flow,
        tcp_flags,
        ..
    } = sc;
    if verdict.is_some() {
        track::decide(flow);
    }
    // Recorded before the insert, so the entry carries the FIN.
    let finished = track::closes(*tcp_flags) && track::finished(flow, side, *tcp_flags);
    if !move_to_flows(key, flow) {
        return false;
    }
    if let Some(v) = verdict {
        emit(hook, key, flow, v);
    }
    if finished {
        if let Some(v) = track::close(flow) {
            emit(hook, key, flow, v);
        }
        forget(key, Table::Flows);
    }
    true
}

/// The staged segment's side, without a branch: the verifier would
/// otherwise walk the rest of the program once per side.
#[inline(always)]
pub fn staged_side(sc: &Scratch) -> Side {
    const _: () = assert!(Side::Client as u8 == 0 && Side::Server as u8 == 1);
    // SAFETY: a byte of this CPU's slot; masked to 0 or 1, both `Side`s.
    unsafe { core::mem::transmute::<u8, Side>(core::ptr::read_volatile(&raw const sc.side) & 1) }
}

/// Stores where the segment goes next in the scratch, for the next stage,
/// and reads it back: the value the verifier then sees is map memory it
/// does not track, so the paths that chose different routes meet here
/// instead of each walking the rest of the program (the core: 277k
/// verified instructions without, 94k with; see `FlowClassifier::settle`).
#[inline(always)]
fn carry(sc: &mut Scratch, route: Route) -> Route {
    sc.stage = route.stage;
    sc.pass = route.pass;
    // SAFETY: bytes of this CPU's slot.
    unsafe {
        Route {
            stage: core::ptr::read_volatile(&raw const sc.stage),
            pass: core::ptr::read_volatile(&raw const sc.pass),
        }
    }
}

/// Copies a classifier state between map values, word by word (see
/// `write_fresh`; both sit at 4-aligned offsets).
#[inline(always)]
fn copy_classifier(src: *const FlowClassifier, dst: *mut FlowClassifier) {
    const _: () = assert!(size_of::<FlowClassifier>() == 8);
    let (from, to) = (src.cast::<u32>(), dst.cast::<u32>());
    // SAFETY: two u32 words of an 8-byte state, 4-aligned in both maps.
    unsafe {
        core::ptr::write_volatile(to, core::ptr::read_volatile(from));
        core::ptr::write_volatile(to.add(1), core::ptr::read_volatile(from.add(1)));
    }
}

/// The end of a classified segment: its verdict, if final, is emitted, then
/// the segment's close handling.
#[inline(always)]
fn conclude(
    hook: Hook,
    key: &FlowKey,
    tcp_flags: u8,
    st: &mut FlowState,
    side: Side,
    verdict: Option<Verdict>,
) {
    if let Some(v) = verdict {
        track::decide(st);
        emit(hook, key, st, v);
    }
    if track::closes(tcp_flags) {
        // Classified segments have payload: the flow is in `FLOWS`.
        on_close(hook, key, st, side, tcp_flags, Table::Flows);
    }
}

/// `wipe` of this CPU's scratch, for a program that ends a segment
/// without classifying it (the credentials scan, on a failed tail call).
#[inline(always)]
pub fn wipe_staged() {
    if let Some(sc) = SCRATCH.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; nothing else runs on this CPU meanwhile.
        wipe(unsafe { &mut *sc });
    }
}

/// Zeroes the staged payload: it is often a flow's opening message, with
/// its credentials, and would otherwise stay in the map until the CPU's next
/// classified segment (readable by anyone who can read maps). Costs 16
/// stores, and `stage_payload` relies on it to skip zeroing before a load.
/// Volatile word stores: a plain fill becomes a call to memset, and a
/// subprogram call shrinks the stack a tail call allows.
#[inline(always)]
fn wipe(sc: &mut Scratch) {
    let words = sc.buf.as_mut_ptr().cast::<u64>();
    let mut i = 0;
    while i < PREFIX / 8 {
        // SAFETY: in bounds of the 8-aligned, PREFIX-byte buffer.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
        i += 1;
    }
}

/// FIN/RST on a flow still being classified: the entry goes once the flow
/// is over (`track::finished`), with the best verdict so far.
#[inline(always)]
fn on_close(
    hook: Hook,
    key: &FlowKey,
    st: &mut FlowState,
    side: Side,
    tcp_flags: u8,
    table: Table,
) {
    if track::finished(st, side, tcp_flags) {
        if let Some(v) = track::close(st) {
            emit(hook, key, st, v);
        }
        forget(key, table);
    }
}

/// Removes a closed flow's entry. Counted only when this call removed it
/// (not when the LRU evicted it first or another CPU won the race), so
/// `flows_created - flows_closed - entries` is exactly the evictions (and
/// likewise for the embryonic table, with its promotions).
#[inline(always)]
fn forget(key: &FlowKey, table: Table) {
    match table {
        Table::Flows => {
            if FLOWS.remove(key).is_ok() {
                count(Stat::FlowsClosed);
            }
        }
        Table::Embryos => {
            if EMBRYOS.remove(key).is_ok() {
                count(Stat::EmbryosClosed);
            }
        }
    }
}

/// Sends a flow's verdict to userspace (`track` has marked it decided).
#[inline(always)]
fn emit(hook: Hook, key: &FlowKey, st: &FlowState, v: Verdict) {
    // The classifier decides the `midstream` reason (a flow picked up at
    // an opening message has none); the flag still says how it was seen.
    let midstream = st.flags & FLOW_MIDSTREAM != 0;
    let (ca, cp, sa, sp) = key.endpoints(st.flags & FLOW_CLIENT_IS_HI != 0);
    count(Stat::VerdictsEmitted);
    let Some(mut entry) = EVENTS.reserve::<FlowEvent>(0) else {
        count(Stat::EventsLost);
        return;
    };
    entry.write(FlowEvent {
        client_addr: ca,
        server_addr: sa,
        client_port: cp,
        server_port: sp,
        family: key.family,
        hook: hook as u8,
        protocol: v.protocol as u8,
        encryption: v.encryption as u8,
        reason: v.reason as u8,
        tls_version: v.tls_version as u8,
        flags: if midstream { EVENT_MIDSTREAM } else { 0 },
        _pad0: 0,
    });
    entry.submit(wakeup_flags(&EVENTS));
}
