//! The cost floor, for the bench only (never part of the agent's object):
//! programs that return at once, attached where plainsight's go, so the
//! bench can tell the kernel's dispatch and run-time statistics from
//! plainsight's own work on the same traffic. Names are the real programs'
//! with `floor_`, shortened to fit the kernel's 15 characters.
#![no_std]
#![no_main]

use aya_ebpf::{
    macros::{cgroup_skb, classifier},
    programs::{SkBuffContext, TcContext},
};

/// cgroup_skb: 1 lets the packet through (as plainsight's programs do).
const CGROUP_PASS: i32 = 1;
/// TC: TC_ACT_UNSPEC, "next program" (as plainsight's programs return).
const TC_NEXT: i32 = -1;

#[cgroup_skb(ingress)]
pub fn floor_cg_in(_ctx: SkBuffContext) -> i32 {
    CGROUP_PASS
}

#[cgroup_skb(egress)]
pub fn floor_cg_eg(_ctx: SkBuffContext) -> i32 {
    CGROUP_PASS
}

#[classifier]
pub fn floor_tc_in(_ctx: TcContext) -> i32 {
    TC_NEXT
}

#[classifier]
pub fn floor_tc_eg(_ctx: TcContext) -> i32 {
    TC_NEXT
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects any path here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
