//! TLS hello export: the bytes of a ClientHello or ServerHello record go to
//! userspace on their own ring buffer, which reads SNI, ALPN, cipher and
//! version from them (docs/architecture.md: public handshake metadata may
//! leave the kernel, bounded; plaintext never does).
//!
//! Only `export` writes to `HELLOS`, and it takes a `tls::Hello`, which only
//! `tls::hello` makes, from a segment that starts a hello record sent by the
//! side that sends that hello; the copy stops at the end of that record
//! (or, for a TLS 1.2 ServerHello, of the server's Certificate record right
//! after it: `tls::export_len`).
//! Its own ring, not the verdict ring: a burst of hellos can never take
//! the room a verdict needs, and verdict accounting stays exact.
//! Cost: only hello segments pay (two copies of at most `HELLO_MAX` bytes
//! and one ring-buffer write); other segments pay one byte compare.
//!
//! The client's flight after the ServerHello goes on the same ring
//! (`export_flight`): its first `FLIGHT_MAX` bytes, once per TLS flow,
//! which say whether the client sent a certificate (README "Mutual TLS").
//! Cost: one 16-byte copy and ring write per TLS flow; one flag test on
//! the slow path of every other segment.

use crate::maps::{SCRATCH, count, wakeup_flags};
use crate::parse::Packet;
use agent_common::{
    Side,
    classify::{
        Prefix,
        tls::{self, Hello, HelloKind, export_len},
    },
    wire::{
        EXPORT_MAX, FLIGHT_MAX, FlowKey, HELLO_KIND_CLIENT_FLIGHT, HelloEvent, HelloHeader, Stat,
    },
};
use aya_ebpf::{
    bindings::__sk_buff,
    helpers::generated::bpf_skb_load_bytes,
    macros::map,
    maps::{PerCpuArray, RingBuf},
};

/// Hello records (`HelloHeader` + bytes); userspace sizes it at 4× the
/// verdict ring (a hello record averages ~8× a verdict event, and each
/// ring is read every 100 ms or when a quarter full).
#[map]
pub static HELLOS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Where a record is assembled: `HELLO_MAX` bytes do not fit the stack.
#[map]
pub(crate) static HELLO_SCRATCH: PerCpuArray<HelloEvent> = PerCpuArray::with_max_entries(1, 0);

/// Called with every payload segment just staged for the classifier (the
/// prefix and flow key in `SCRATCH`): exports it if, and only if, it starts
/// a hello from the side that sends that hello. `skip`: payload bytes
/// before the staged ones (see `track::Inspect`). True if the segment
/// starts a ServerHello: the flow then awaits the client's flight.
#[inline(always)]
pub fn export_if_hello(
    skb: *mut __sk_buff,
    side: Side,
    p: &Packet,
    skip: u32,
    client_is_hi: bool,
) -> bool {
    let Some(sc) = SCRATCH.get_ptr(0) else {
        return false;
    };
    // SAFETY: this CPU's slot, just filled by `stage_payload`.
    let sc = unsafe { &*sc };
    let staged = Prefix::new(&sc.buf, sc.len as usize);
    let Some(h) = tls::hello(&staged, side) else {
        return false;
    };
    export(skb, h, &staged, &sc.key, client_is_hi, p, skip);
    h.kind() == HelloKind::Server
}

/// Exports the first `n` (`track::client_flight`, at most `FLIGHT_MAX`)
/// payload bytes of the client's flight after the ServerHello. True when
/// they start a second ClientHello instead (a HelloRetryRequest): nothing
/// is exported, and the flow awaits the flight again.
#[inline(always)]
pub fn export_flight(
    skb: *mut __sk_buff,
    key: &FlowKey,
    client_is_hi: bool,
    p: &Packet,
    n: u32,
) -> bool {
    let Some(ev) = HELLO_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's slot; nothing else runs on this CPU meanwhile.
    let ev = unsafe { &mut *ev };
    let n = core::hint::black_box(n as usize);
    if n == 0 || n > FLIGHT_MAX {
        return false;
    }
    // SAFETY: `bytes` has room for n <= FLIGHT_MAX bytes.
    let rc = unsafe {
        bpf_skb_load_bytes(
            skb as *const _,
            p.payload_off,
            ev.bytes.as_mut_ptr().cast(),
            n as u32,
        )
    };
    if rc != 0 {
        count(Stat::PayloadLoadFailed);
        return false;
    }
    // A ClientHello is far longer than FLIGHT_MAX: all of the head is its.
    // SAFETY: the first FLIGHT_MAX bytes of the (larger) buffer.
    let head = unsafe { &*ev.bytes.as_ptr().cast::<[u8; FLIGHT_MAX]>() };
    if n == FLIGHT_MAX && tls::retried_client_hello(head) {
        return true;
    }
    // Only bytes that start a TLS record leave (ChangeCipherSpec, alert,
    // handshake, application data): a flow that only looked like TLS
    // keeps its bytes.
    let ct = ev.bytes[0];
    if !(0x14..=0x17).contains(&ct) {
        return false;
    }
    send(ev, key, client_is_hi, HELLO_KIND_CLIENT_FLIGHT, n);
    false
}

/// Copies the hello `staged` (the classifier's prefix of this segment)
/// starts, up to the end of its record (for a TLS 1.2 ServerHello, of the
/// server's Certificate record after it) or the bound (`tls::export_len`),
/// and puts it on `HELLOS` with its flow's endpoints. Counted: exported or
/// lost.
#[inline(always)]
fn export(
    skb: *mut __sk_buff,
    hello: Hello,
    staged: &Prefix<'_>,
    key: &FlowKey,
    client_is_hi: bool,
    p: &Packet,
    skip: u32,
) {
    let (payload_off, payload_len) = (p.payload_off + skip, p.payload_len - skip);
    let Some(ev) = HELLO_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot; nothing else runs on this CPU meanwhile.
    let ev = unsafe { &mut *ev };
    let mut n = payload_len as usize;
    let end = export_len(staged, hello);
    if n > end {
        n = end;
    }
    // The check the verifier needs, on the register passed to the helpers
    // (see `stage_payload`).
    let n = core::hint::black_box(n);
    if n == 0 || n > EXPORT_MAX {
        return;
    }
    // SAFETY: `bytes` has room for n <= EXPORT_MAX bytes.
    let rc = unsafe {
        bpf_skb_load_bytes(
            skb as *const _,
            payload_off,
            ev.bytes.as_mut_ptr().cast(),
            n as u32,
        )
    };
    if rc != 0 {
        count(Stat::PayloadLoadFailed);
        return;
    }
    send(ev, key, client_is_hi, hello.kind() as u8, n);
}

/// Puts the record assembled in `ev` (its first `n` bytes loaded) on
/// `HELLOS` with its flow's endpoints and `kind`. Counted: exported or
/// lost. `n` is at most `EXPORT_MAX`, checked by the caller.
#[inline(always)]
pub(crate) fn send(ev: &mut HelloEvent, key: &FlowKey, client_is_hi: bool, kind: u8, n: usize) {
    // Field by field: a struct literal becomes a memcpy call, and the hook
    // programs must not make subprogram calls.
    let (ca, cp, sa, sp) = key.endpoints(client_is_hi);
    let h: &mut HelloHeader = &mut ev.header;
    h.client_addr = ca;
    h.server_addr = sa;
    h.client_port = cp;
    h.server_port = sp;
    h.family = key.family;
    h.kind = kind;
    h._pad0 = 0;
    #[expect(clippy::cast_possible_truncation, reason = "n <= EXPORT_MAX")]
    {
        h.len = n as u32;
    }
    h._pad1 = 0;
    // SAFETY: header and the n bytes loaded, inside the scratch value.
    let record = unsafe {
        core::slice::from_raw_parts(
            core::ptr::from_ref(ev).cast::<u8>(),
            size_of::<HelloHeader>() + n,
        )
    };
    if HELLOS.output::<[u8]>(record, wakeup_flags(&HELLOS)).is_ok() {
        count(Stat::HellosExported);
    } else {
        count(Stat::HellosLost);
    }
}
