//! Kernel programs: thin entry points over one parse-and-classify path.
//! They observe and never decide a packet's fate.
#![no_std]
#![no_main]

mod credentials;
mod ftp;
mod hello;
mod maps;
mod observe;
mod parse;

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

/// The core classifier, tail-called by `cgroup_ingress` for payload of
/// unclassified flows.
#[cgroup_skb(ingress)]
pub fn cgroup_classify_ingress(ctx: SkBuffContext) -> i32 {
    observe::classify(&ctx, Program::CgroupIngress);
    CGROUP_PASS
}

/// The core classifier, tail-called by `cgroup_egress`.
#[cgroup_skb(egress)]
pub fn cgroup_classify_egress(ctx: SkBuffContext) -> i32 {
    observe::classify(&ctx, Program::CgroupEgress);
    CGROUP_PASS
}

/// The core classifier, tail-called by the TC programs.
#[classifier]
pub fn tc_classify(ctx: TcContext) -> i32 {
    observe::classify(&ctx, Program::Tc);
    TC_NEXT
}

/// The credentials scan (credentials.rs), tail-called by each hook program
/// at `SCAN_SLOT`, before the core classifier, for a segment that may
/// carry a secret past the prefix.
#[cgroup_skb(ingress)]
pub fn cgroup_scan_ingress(ctx: SkBuffContext) -> i32 {
    credentials::scan(&ctx, Program::CgroupIngress);
    CGROUP_PASS
}

#[cgroup_skb(egress)]
pub fn cgroup_scan_egress(ctx: SkBuffContext) -> i32 {
    credentials::scan(&ctx, Program::CgroupEgress);
    CGROUP_PASS
}

#[classifier]
pub fn tc_scan(ctx: TcContext) -> i32 {
    credentials::scan(&ctx, Program::Tc);
    TC_NEXT
}

/// The family stages of the classifier (classify/mod.rs), one program per
/// hook each, named `<core>_<stage>`: the loader installs them at their
/// stage number in the hook's `CLASSIFY_*` array.
macro_rules! classifier_stages {
    ($($stage:literal: $ingress:ident, $egress:ident, $tc:ident;)+) => {
        $(
            #[cgroup_skb(ingress)]
            pub fn $ingress(ctx: SkBuffContext) -> i32 {
                observe::classify_stage::<_, $stage>(&ctx, Program::CgroupIngress);
                CGROUP_PASS
            }

            #[cgroup_skb(egress)]
            pub fn $egress(ctx: SkBuffContext) -> i32 {
                observe::classify_stage::<_, $stage>(&ctx, Program::CgroupEgress);
                CGROUP_PASS
            }

            #[classifier]
            pub fn $tc(ctx: TcContext) -> i32 {
                observe::classify_stage::<_, $stage>(&ctx, Program::Tc);
                TC_NEXT
            }
        )+
        const _: () = assert!(
            [$($stage,)+].len() == agent_common::classify::STAGES as usize,
            "one line per classifier family (classify/mod.rs `dissectors!`)"
        );
    };
}

classifier_stages! {
    1: cgroup_classify_ingress_1, cgroup_classify_egress_1, tc_classify_1;
    2: cgroup_classify_ingress_2, cgroup_classify_egress_2, tc_classify_2;
    3: cgroup_classify_ingress_3, cgroup_classify_egress_3, tc_classify_3;
    4: cgroup_classify_ingress_4, cgroup_classify_egress_4, tc_classify_4;
    5: cgroup_classify_ingress_5, cgroup_classify_egress_5, tc_classify_5;
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
