//! Loading the kernel programs and attaching them. Every attachment is a
//! bpf_link (cgroup links, TCX links) owned by this process: when it exits,
//! even by SIGKILL, the kernel detaches them.

use agent_common::wire::Stat;
use anyhow::{Context as _, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, ProgramArray, RingBuf},
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType},
};
use std::{fs::File, path::Path};

/// The kernel programs, built by agent/build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/plainsight"));

pub struct LoadOptions {
    pub include_loopback: bool,
    pub max_flows: u32,
    pub ring_bytes: u32,
}

pub struct Datapath {
    pub ebpf: Ebpf,
    pub events: RingBuf<MapData>,
    pub stats: PerCpuArray<MapData, u64>,
}

pub fn load(opts: &LoadOptions) -> anyhow::Result<Datapath> {
    if OBJECT.is_empty() {
        bail!(
            "this plainsight binary was built with AYA_BUILD_SKIP=1 and carries no eBPF \
             programs; rebuild it without that variable (cargo xtask setup installs what the \
             build needs)"
        );
    }
    raise_memlock();
    let include_loopback = u8::from(opts.include_loopback);
    let mut ebpf = EbpfLoader::new()
        .override_global("INCLUDE_LOOPBACK", &include_loopback, true)
        .map_max_entries("FLOWS", opts.max_flows)
        .map_max_entries("EVENTS", opts.ring_bytes)
        .load(OBJECT)
        .context(
            "loading the eBPF programs (are you root, or do you have CAP_BPF + CAP_PERFMON?)",
        )?;
    install_classifiers(&mut ebpf)?;
    let events = RingBuf::try_from(ebpf.take_map("EVENTS").context("EVENTS map missing")?)
        .context("EVENTS is not a ring buffer")?;
    let stats = PerCpuArray::try_from(ebpf.take_map("STATS").context("STATS map missing")?)
        .context("STATS is not a per-CPU array")?;
    Ok(Datapath {
        ebpf,
        events,
        stats,
    })
}

/// Loads the classifier programs and puts them where the hook programs
/// tail-call them.
fn install_classifiers(ebpf: &mut Ebpf) -> anyhow::Result<()> {
    for (prog, map) in [
        ("cgroup_classify_ingress", "CLASSIFY_CGROUP_INGRESS"),
        ("cgroup_classify_egress", "CLASSIFY_CGROUP_EGRESS"),
        ("tc_classify", "CLASSIFY_TC"),
    ] {
        let program = ebpf
            .program_mut(prog)
            .with_context(|| format!("program {prog} missing"))?;
        let fd = match program {
            aya::programs::Program::CgroupSkb(p) => {
                p.load()
                    .with_context(|| format!("verifier rejected {prog}"))?;
                p.fd()?.try_clone()?
            }
            aya::programs::Program::SchedClassifier(p) => {
                p.load()
                    .with_context(|| format!("verifier rejected {prog}"))?;
                p.fd()?.try_clone()?
            }
            _ => bail!("program {prog} has an unexpected type"),
        };
        let mut table = ProgramArray::try_from(
            ebpf.map_mut(map)
                .with_context(|| format!("{map} map missing"))?,
        )?;
        table
            .set(0, &fd, 0)
            .with_context(|| format!("installing {prog} in {map}"))?;
    }
    Ok(())
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
fn raise_memlock() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        log::debug!("could not raise RLIMIT_MEMLOCK; fine on kernels >= 5.11");
    }
}

/// Attaches the cgroup_skb ingress and egress programs to a cgroup v2 path.
/// Through bpf_link (kernel >= 5.7) the attachment always coexists with
/// other cgroup programs (systemd IP accounting, CNIs) and the kernel
/// rejects any mode flag, so `Single` (no flag) is the right mode here.
pub fn attach_cgroup(ebpf: &mut Ebpf, path: &Path) -> anyhow::Result<()> {
    crate::cgroup::check_v2(path)?;
    for (name, kind) in [
        ("cgroup_ingress", CgroupSkbAttachType::Ingress),
        ("cgroup_egress", CgroupSkbAttachType::Egress),
    ] {
        let cgroup =
            File::open(path).with_context(|| format!("opening cgroup {}", path.display()))?;
        let prog: &mut CgroupSkb = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing"))?
            .try_into()?;
        prog.load()
            .with_context(|| format!("verifier rejected {name}"))?;
        prog.attach(cgroup, kind, CgroupAttachMode::Single)
            .with_context(|| format!("attaching {name} to {}", path.display()))?;
    }
    Ok(())
}

/// Sums each per-CPU counter.
pub fn read_stats(stats: &PerCpuArray<MapData, u64>) -> [u64; Stat::COUNT as usize] {
    let mut out = [0u64; Stat::COUNT as usize];
    for (i, slot) in out.iter_mut().enumerate() {
        #[expect(clippy::cast_possible_truncation, reason = "Stat::COUNT is small")]
        if let Ok(values) = stats.get(&(i as u32), 0) {
            *slot = values.iter().sum();
        }
    }
    out
}
