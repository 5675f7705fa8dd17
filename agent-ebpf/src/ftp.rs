//! FTP data-connection announcements: after an `ftp` verdict, a control
//! connection's segment that `classify::mail::ftp_announces` picks (a
//! `227`/`229` reply, a `PORT`/`EPRT` command) goes to userspace on the
//! hello ring as kind `HELLO_KIND_FTP`, at most `PREFIX` bytes: the line
//! with the data connection's address and port, which
//! `agent/src/pipeline/ftp_data.rs` parses to name that connection. The
//! kernel sees each flow alone; the link between the two is userspace's.
//! Cost: only segments of decided FTP control flows pay (one copy of at
//! most `PREFIX` bytes, a 5-byte compare, a ring write for announcements).

use crate::hello::{HELLO_SCRATCH, HELLOS};
use crate::maps::{count, wakeup_flags};
use crate::parse::Packet;
use agent_common::{
    Side,
    classify::{Prefix, mail::ftp_announces},
    wire::{FlowKey, HELLO_KIND_FTP, HelloHeader, PREFIX, Stat},
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
    // Field by field (see `hello::export`).
    let (ca, cp, sa, sp) = key.endpoints(client_is_hi);
    let h: &mut HelloHeader = &mut ev.header;
    h.client_addr = ca;
    h.server_addr = sa;
    h.client_port = cp;
    h.server_port = sp;
    h.family = key.family;
    h.kind = HELLO_KIND_FTP;
    h._pad0 = 0;
    #[expect(clippy::cast_possible_truncation, reason = "n <= PREFIX")]
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
