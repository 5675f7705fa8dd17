//! FTP data-connection announcements: after an `ftp` verdict, a control
//! connection's segment that `classify::mail::ftp_announces` picks (a
//! `227`/`229` reply, a `PORT`/`EPRT` command) goes to userspace on the
//! hello ring as kind `HELLO_KIND_FTP`, at most `PREFIX` bytes: the line
//! with the data connection's address and port, which
//! `agent/src/pipeline/ftp_data.rs` parses to name that connection. The
//! kernel sees each flow alone; the link between the two is userspace's.
//! Cost: only segments of decided FTP control flows pay (one copy of at
//! most `PREFIX` bytes, a 5-byte compare, a ring write for announcements).

use crate::hello::HELLO_SCRATCH;
use crate::maps::count;
use crate::parse::Packet;
use agent_common::{
    Side,
    classify::{Prefix, mail::ftp_announces},
    wire::{FlowKey, HELLO_KIND_FTP, PREFIX, Stat},
};
use aya_ebpf::{bindings::__sk_buff, helpers::generated::bpf_skb_load_bytes};

/// Called for each payload segment of a decided `ftp` flow.
#[inline(always)]
pub fn export_if_announced(
    skb: *mut __sk_buff,
    side: Side,
    p: &Packet,
    key: &FlowKey,
    client_is_hi: bool,
) {
    let Some(ev) = HELLO_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot; nothing else runs on this CPU meanwhile.
    let ev = unsafe { &mut *ev };
    let len = p.payload_len as usize;
    let n = if len > PREFIX { PREFIX } else { len };
    // The check the verifier needs, on the register passed to the helper
    // (see `observe::stage_payload`).
    let n = core::hint::black_box(n);
    if n == 0 || n > PREFIX {
        return;
    }
    // SAFETY: `bytes` has room for n <= PREFIX bytes.
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
        return;
    }
    // Bytes past n are stale (an earlier record), but `ftp_announces`
    // compares only within the first n (`Prefix::eq_at` checks `has`).
    // SAFETY: the first PREFIX bytes of the HELLO_MAX-byte buffer.
    let buf = unsafe { &*ev.bytes.as_ptr().cast::<[u8; PREFIX]>() };
    if !ftp_announces(side, &Prefix::new(buf, n)) {
        return;
    }
    crate::hello::send(ev, key, client_is_hi, HELLO_KIND_FTP, n);
}
