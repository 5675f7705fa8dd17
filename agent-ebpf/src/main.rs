//! Kernel programs: thin entry points over one parse-and-classify path.
//! They observe and never decide a packet's fate.
#![no_std]
#![no_main]

mod ftp;
mod hello;
mod maps;
mod observe;
mod parse;

use agent_common::wire::Hook;
use aya_ebpf::{
    macros::{cgroup_skb, classifier},
    programs::{SkBuffContext, TcContext},
};
use observe::Program;

/// cgroup_skb: 1 lets the packet through.
const CGROUP_PASS: i32 = 1;
/// TC: TC_ACT_UNSPEC, which TCX reads as "next program": we never end the
/// chain early for programs attached after us (Cilium, VPC CNI, ...).
const TC_NEXT: i32 = -1;

#[cgroup_skb(ingress)]
pub fn cgroup_ingress(ctx: SkBuffContext) -> i32 {
    observe::observe(&ctx, Program::CgroupIngress);
    CGROUP_PASS
}

#[cgroup_skb(egress)]
pub fn cgroup_egress(ctx: SkBuffContext) -> i32 {
    observe::observe(&ctx, Program::CgroupEgress);
    CGROUP_PASS
}

#[classifier]
pub fn tc_ingress(ctx: TcContext) -> i32 {
    observe::observe(&ctx, Program::Tc);
    TC_NEXT
}

#[classifier]
pub fn tc_egress(ctx: TcContext) -> i32 {
    observe::observe(&ctx, Program::Tc);
    TC_NEXT
}

/// Tail-called by `cgroup_ingress` for payload of unclassified flows.
#[cgroup_skb(ingress)]
pub fn cgroup_classify_ingress(_ctx: SkBuffContext) -> i32 {
    observe::classify(Hook::Cgroup);
    CGROUP_PASS
}

/// Tail-called by `cgroup_egress` for payload of unclassified flows.
#[cgroup_skb(egress)]
pub fn cgroup_classify_egress(_ctx: SkBuffContext) -> i32 {
    observe::classify(Hook::Cgroup);
    CGROUP_PASS
}

/// Tail-called by the TC programs for payload of unclassified flows.
#[classifier]
pub fn tc_classify(_ctx: TcContext) -> i32 {
    observe::classify(Hook::Tc);
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
