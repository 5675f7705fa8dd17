//! Maps and load-time settings shared by every program.

use agent_common::classify::credentials::{SCAN_SLOT, ScanBuf};
use agent_common::wire::{DEFAULT_MAX_FLOWS, FlowKey, FlowState, PREFIX, Stat, embryonic_capacity};
use aya_ebpf::{
    btf_maps::SkStorage,
    macros::{btf_map, map},
    maps::{LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};

/// Per-flow state of flows that have carried payload; userspace resizes it
/// with `--max-flows`.
#[map]
pub static FLOWS: LruHashMap<FlowKey, FlowState> =
    LruHashMap::with_max_entries(DEFAULT_MAX_FLOWS, 0);

/// Flows opened by a bare SYN that have carried no payload yet (see
/// `track::carries_payload`): their own LRU, so a SYN flood evicts only
/// other handshakes. Userspace sizes it with `embryonic_capacity`.
#[map]
pub static EMBRYOS: LruHashMap<FlowKey, FlowState> =
    LruHashMap::with_max_entries(embryonic_capacity(DEFAULT_MAX_FLOWS), 0);

/// The cgroup hook's shortcut for decided flows: a socket whose flow has its
/// final verdict carries this mark, and its later packets skip the flow
/// table (one socket-storage lookup, no key hashing; freed with the socket,
/// nothing to evict). TC sees forwarded packets without a socket and always
/// uses `FLOWS`.
#[btf_map]
pub static DECIDED: SkStorage<SocketFlow> = SkStorage::new();

/// Which connection a socket's mark belongs to, as seen from the socket:
/// a socket can be disconnected and connected elsewhere, and its new flow
/// must not inherit the old verdict.
#[repr(C)]
pub struct SocketFlow {
    /// The peer's address words, XOR-folded.
    pub peer: u32,
    /// Peer port << 16 | local port.
    pub ports: u32,
}

/// The TC hook's shortcut for decided flows (TC sees forwarded packets, with
/// no socket to mark): per CPU, a few slots each remembering one decided
/// flow's direction and the sequence number its next segment must carry.
/// A segment that continues exactly there is the same connection's (a new
/// connection on the same addresses and ports starts at a fresh ISN), so
/// it skips the flow table. Anything else (a retransmit, another flow in
/// the slot, SYN/FIN/RST) goes the long way, which refills the slot.
#[map]
pub static RECENT: PerCpuArray<Recent> = PerCpuArray::with_max_entries(RECENT_SLOTS, 0);

/// Slots per CPU; a power of two (the slot is a hash of the 4-tuple).
pub const RECENT_SLOTS: u32 = 64;

#[repr(C)]
pub struct Recent {
    pub src: [u32; 4],
    pub dst: [u32; 4],
    /// Source port << 16 | destination port.
    pub ports: u32,
    pub next_seq: u32,
}

/// The segment each CPU's hook last left here, per slot (a hash of the
/// 4-tuple, as `RECENT`): every bare SYN that takes the long way, and each
/// segment a node-local flow (`FlowState::node_local`) tracks. On one node
/// both sockets of a connection (cgroup) or both pods' veths (TC) see each
/// segment, one right after the other on the same CPU: the SYN's second
/// sighting marks the flow node-local, the others have nothing left to
/// do. A match empties the slot, so a later retransmit takes the long way
/// again. Other flows pay one slot compare per segment that takes the long
/// way, and one write at their SYN.
#[map]
pub static SEEN: PerCpuArray<Seen> = PerCpuArray::with_max_entries(RECENT_SLOTS, 0);

#[repr(C)]
pub struct Seen {
    pub src: [u32; 4],
    pub dst: [u32; 4],
    /// Source port << 16 | destination port; 0 for an empty slot.
    pub ports: u32,
    pub seq: u32,
    /// TCP flags << 24 | payload length.
    pub shape: u32,
}

/// One `FlowEvent` per classified flow; userspace resizes it.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Counters indexed by `Stat`.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Stat::COUNT, 0);

/// What the flow tracker hands the classifier programs across the tail
/// calls, and each classifier stage the next. Per-CPU: a tail call runs on
/// the same CPU, and nothing preempts it.
#[repr(C, align(8))]
pub struct Scratch {
    /// Payload prefix, zero past `len`.
    pub buf: [u8; PREFIX],
    pub key: FlowKey,
    pub len: u32,
    /// `Side` of the sender.
    pub side: u8,
    /// TCP flags of the segment, for the close handling after classifying.
    pub tcp_flags: u8,
    /// `classify::Route` between the classifier's stages.
    pub stage: u8,
    pub pass: u8,
    /// The flow's state while a segment goes through the scan, the core and
    /// the family stages: the hook copies it here, the program the segment
    /// ends in writes it back (one more flow-table operation per segment,
    /// not one per program). Map memory, as the flow table is: the
    /// verifier then merges the verdicts' paths the same way
    /// (`FlowClassifier::settle`).
    pub flow: FlowState,
    /// Where the staged segment's bytes start in the packet, and how many
    /// there are (not only the prefix): set by the hook only for the
    /// credentials scan.
    pub seg_off: u32,
    pub seg_len: u32,
    /// 1 when the credentials scan found a secret in this segment: the
    /// core marks the flow's staged state.
    pub credentials: u8,
    /// 1 when `flow` is an embryonic flow's (its first payload): where the
    /// segment ends, the whole state becomes its main-table entry, one
    /// insert, and the embryo goes (`observe::end_first_payload`).
    pub embryo: u8,
}

#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// The classifier programs of each hook: the core at index 0 (which the
/// hook program tail-calls), each family stage at its number
/// (`1..=STAGES`, see classify/mod.rs). One array per (program type,
/// expected attach type): the kernel only allows a tail call between
/// programs that agree on both.
#[map]
pub static CLASSIFY_CGROUP_INGRESS: ProgramArray = ProgramArray::with_max_entries(CLASSIFIERS, 0);
#[map]
pub static CLASSIFY_CGROUP_EGRESS: ProgramArray = ProgramArray::with_max_entries(CLASSIFIERS, 0);
#[map]
pub static CLASSIFY_TC: ProgramArray = ProgramArray::with_max_entries(CLASSIFIERS, 0);

/// Classifier programs per hook: the core, the family stages and the
/// credentials scan.
const CLASSIFIERS: u32 = SCAN_SLOT + 1;

/// Where the credentials scan copies the segment it reads (per CPU; too
/// big for the stack). Zeroed after each scan.
#[map]
pub static SCAN_BUF: PerCpuArray<ScanBuf> = PerCpuArray::with_max_entries(1, 0);

/// Submit flags for a record on `ring` (verdicts, hellos). Waking the reader costs a self-IPI
/// (irq_work), about 13 µs per event on a virtualised node — more than
/// everything else we do for a flow. So events are queued silently and the
/// reader polls every 100 ms; only a ring a quarter full forces a wakeup, so
/// bursts cannot overflow it between polls.
#[inline(always)]
pub fn wakeup_flags(ring: &RingBuf) -> u64 {
    use aya_ebpf::bindings::{
        BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE,
    };
    let queued = ring.query(u64::from(BPF_RB_AVAIL_DATA));
    let size = ring.query(u64::from(BPF_RB_RING_SIZE));
    if queued.saturating_mul(4) >= size {
        u64::from(BPF_RB_FORCE_WAKEUP)
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    }
}

/// Set by userspace at load time (`--include-loopback`).
#[unsafe(no_mangle)]
static INCLUDE_LOOPBACK: u8 = 0;

#[inline(always)]
pub fn include_loopback() -> bool {
    // SAFETY: a plain read of a global the loader rewrote before loading;
    // volatile so the compiler does not fold the default.
    unsafe { core::ptr::read_volatile(&raw const INCLUDE_LOOPBACK) != 0 }
}

#[inline(always)]
pub fn count(stat: Stat) {
    if let Some(p) = STATS.get_ptr_mut(stat as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}
