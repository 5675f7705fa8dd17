//! The credentials scan (agent-common `classify::credentials`): a program
//! of its own, tail-called by the hook before the core classifier for the
//! few segments that may carry a secret past the prefix
//! (`FlowClassifier::may_scan`). It asks `credential_scan` which scan the
//! segment wants, copies up to `SCAN_MAX`
//! bytes of the segment into `SCAN_BUF`, runs `credentials::step` over
//! them from `bpf_loop` (the callback is verified once, not once per
//! word: an unrolled or bounded loop went past the verifier's 1M
//! instructions), tells the core if a step found credentials (the core
//! marks the flow: it looks the flow up anyway), zeroes the copy and
//! tail-calls the core.
//!
//! `bpf_loop` needs Linux 5.17: on older kernels this program does not
//! load, the agent says so, and the core classifies without the scan
//! (credentials in the prefix are still found).

use crate::maps::{SCAN_BUF, SCRATCH, count};
use crate::observe::{Program, staged_side, tail_call_core, wipe_staged};
use agent_common::{
    classify::{
        Prefix,
        credentials::{self, SCAN_MAX, SCAN_WORDS, Scan, Step},
    },
    wire::Stat,
};
use aya_ebpf::{
    EbpfContext,
    bindings::__sk_buff,
    helpers::generated::{bpf_loop, bpf_skb_load_bytes},
};

/// What the loop's steps share (on this program's stack).
#[repr(C)]
struct Walk {
    scan: u8,
    found: u8,
    len: u32,
}

/// Entry of the scan program of `prog`'s hook.
#[inline(always)]
pub fn scan<C: EbpfContext>(ctx: &C, prog: Program) {
    run(ctx.as_ptr().cast::<__sk_buff>());
    tail_call_core(ctx, prog);
    // Only if that failed (counted): the staged prefix goes too.
    wipe_staged();
}

#[inline(always)]
fn run(skb: *mut __sk_buff) {
    let Some(sc_ptr) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot, filled by the hook.
    let sc = unsafe { &*sc_ptr };
    // The flow's state, copied here by the hook.
    let scan = sc
        .flow
        .classifier
        .credential_scan(staged_side(sc), &Prefix::new(&sc.buf, sc.len as usize));
    if scan == Scan::None {
        return;
    }
    let Some(buf) = SCAN_BUF.get_ptr_mut(0) else {
        return;
    };
    let seg_len = sc.seg_len as usize;
    let n = if seg_len > SCAN_MAX {
        SCAN_MAX
    } else {
        seg_len
    };
    // The check the verifier needs, on the register passed to the helper.
    let n = core::hint::black_box(n);
    if n == 0 || n > SCAN_MAX {
        return;
    }
    // SAFETY: the buffer has room for n <= SCAN_MAX bytes.
    let rc = unsafe {
        bpf_skb_load_bytes(
            skb as *const _,
            sc.seg_off,
            (*buf).bytes.as_mut_ptr().cast(),
            n as u32,
        )
    };
    if rc != 0 {
        count(Stat::PayloadLoadFailed);
        return;
    }
    count(Stat::CredentialScans);
    #[expect(clippy::cast_possible_truncation, reason = "n <= SCAN_MAX")]
    let mut walk = Walk {
        scan: scan as u8,
        found: 0,
        len: n as u32,
    };
    let steps = credentials::steps(scan, n);
    // SAFETY: `step` has the callback signature bpf_loop expects; `walk`
    // outlives the call.
    unsafe {
        bpf_loop(
            steps,
            step as *mut core::ffi::c_void,
            (&raw mut walk).cast(),
            0,
        )
    };
    // SAFETY: this CPU's slot; the core marks the flow.
    unsafe { (*sc_ptr).credentials = walk.found };
    wipe(buf, n);
}

/// One step of the scan: 0 goes on, 1 stops the loop.
extern "C" fn step(k: u32, walk: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer `run` gave it.
    let walk = unsafe { &mut *walk.cast::<Walk>() };
    let Some(buf) = SCAN_BUF.get_ptr(0) else {
        return 1;
    };
    // SAFETY: this CPU's slot, filled by `run`.
    let buf = unsafe { &*buf };
    let s = credentials::step(Scan::from_u8(walk.scan), buf, walk.len as usize, k as usize);
    walk.found = u8::from(s == Step::Found);
    i64::from(s != Step::Next)
}

/// Zeroes the first `n` copied bytes (whole words): the scanned segment is
/// a request with its credentials, and must not stay in map memory.
#[inline(always)]
fn wipe(buf: *mut credentials::ScanBuf, n: usize) {
    // SAFETY: this CPU's slot.
    let words = unsafe { (*buf).bytes.as_mut_ptr().cast::<u64>() };
    let mut i = 0;
    while i < SCAN_WORDS {
        if i * 8 >= n {
            break;
        }
        // SAFETY: i < SCAN_WORDS words of the 8-aligned buffer.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
        i += 1;
    }
}
