//! Loading the kernel programs and attaching them. Every attachment is a
//! bpf_link (cgroup links, TCX links) owned by this process: when it exits,
//! even by SIGKILL, the kernel detaches them.

use crate::export::metrics::{KernelLabels, Metrics};
use agent_common::wire::{FlowKey, FlowState, Stat};
use anyhow::{Context as _, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, PerCpuArray, ProgramArray, RingBuf},
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType},
};
use std::{
    fs::File,
    os::fd::{AsFd as _, AsRawFd as _},
    path::Path,
};

/// The kernel programs, built by agent/build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/plainsight"));

/// The kernel object as built (empty with `AYA_BUILD_SKIP=1`), for tools
/// that load other programs from it (`cargo xtask bench`'s cost floor).
pub fn object() -> &'static [u8] {
    OBJECT
}

pub struct LoadOptions {
    pub include_loopback: bool,
    pub max_flows: u32,
    pub ring_bytes: u32,
}

pub struct Datapath {
    pub ebpf: Ebpf,
    pub events: RingBuf<MapData>,
    /// TLS hello records (`HelloHeader` + bytes), see events.rs.
    pub hellos: RingBuf<MapData>,
    pub stats: PerCpuArray<MapData, u64>,
    pub flow_table: FlowTable,
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
        .map_max_entries("HELLOS", hello_ring_bytes(opts.ring_bytes))
        .load(OBJECT)
        .context(
            "loading the eBPF programs (are you root, or do you have CAP_BPF + CAP_PERFMON?)",
        )?;
    install_classifiers(&mut ebpf)?;
    let events = RingBuf::try_from(ebpf.take_map("EVENTS").context("EVENTS map missing")?)
        .context("EVENTS is not a ring buffer")?;
    let hellos = RingBuf::try_from(ebpf.take_map("HELLOS").context("HELLOS map missing")?)
        .context("HELLOS is not a ring buffer")?;
    let stats = PerCpuArray::try_from(ebpf.take_map("STATS").context("STATS map missing")?)
        .context("STATS is not a per-CPU array")?;
    let aya::maps::Map::LruHashMap(map) = ebpf.take_map("FLOWS").context("FLOWS map missing")?
    else {
        bail!("FLOWS is not an LRU hash map");
    };
    let flow_table = FlowTable { map, evicted: 0 };
    Ok(Datapath {
        ebpf,
        events,
        hellos,
        stats,
        flow_table,
    })
}

/// The hello ring is four times the verdict ring (`--ring-bytes`): a hello
/// record (48-byte header + a 100–600 byte hello, rarely up to 2 KiB)
/// averages several verdict events, and a flow has up to two. Capped at
/// 1 GiB; both stay powers of two.
pub fn hello_ring_bytes(ring_bytes: u32) -> u32 {
    u32::try_from((u64::from(ring_bytes) * 4).min(1 << 30)).unwrap_or(1 << 30)
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
    attach_cgroup_pair(ebpf, path, ["cgroup_ingress", "cgroup_egress"])
}

/// Loads the named cgroup_skb (ingress, egress) programs of `ebpf` and
/// attaches them to `path` (also used by the bench for its do-nothing
/// floor programs).
pub fn attach_cgroup_pair(ebpf: &mut Ebpf, path: &Path, names: [&str; 2]) -> anyhow::Result<()> {
    super::cgroup::check_v2(path)?;
    let [ingress, egress] = names;
    for (name, kind) in [
        (ingress, CgroupSkbAttachType::Ingress),
        (egress, CgroupSkbAttachType::Egress),
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

/// Sums each per-CPU counter, with the packet totals rebuilt (`Stat::totals`).
pub fn read_stats(stats: &PerCpuArray<MapData, u64>) -> [u64; Stat::COUNT as usize] {
    let mut out = [0u64; Stat::COUNT as usize];
    for (i, slot) in out.iter_mut().enumerate() {
        #[expect(clippy::cast_possible_truncation, reason = "Stat::COUNT is small")]
        if let Ok(values) = stats.get(&(i as u32), 0) {
            *slot = values.iter().sum();
        }
    }
    Stat::totals(out)
}

/// `plainsight_kernel_total` label of the derived eviction count.
pub const FLOWS_EVICTED: &str = "flows_evicted";

/// Occupancy of the kernel flow table, and the LRU evictions derived from
/// it. The kernel has no eviction callback for BPF programs, but every
/// entry leaves the table either by our delete (`flows_closed`, counted only
/// when the delete succeeded) or by eviction, so
/// `evicted = flows_created - flows_closed - entries`.
pub struct FlowTable {
    map: MapData,
    /// Highest eviction count derived so far (the published counter).
    evicted: u64,
}

/// One reading of the flow table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTableReading {
    pub entries: u64,
    /// LRU evictions since the programs were loaded.
    pub evicted: u64,
}

/// Entries fetched per BPF_MAP_LOOKUP_BATCH call.
const BATCH: usize = 4096;

impl FlowTable {
    /// Live entries, counted with BPF_MAP_LOOKUP_BATCH: 16 syscalls for a
    /// full default table (65536 entries, 3.8 MiB copied), where walking it
    /// key by key would take 65536.
    pub fn entries(&self) -> std::io::Result<u64> {
        let mut keys = vec![0u8; BATCH * size_of::<FlowKey>()];
        let mut values = vec![0u8; BATCH * size_of::<FlowState>()];
        let (mut token, mut total, mut first) = (0u32, 0u64, true);
        loop {
            let mut out = 0u32;
            let mut attr = BatchAttr {
                in_batch: if first { 0 } else { (&raw const token) as u64 },
                out_batch: (&raw mut out) as u64,
                keys: keys.as_mut_ptr() as u64,
                values: values.as_mut_ptr() as u64,
                #[expect(clippy::cast_possible_truncation, reason = "BATCH is small")]
                count: BATCH as u32,
                #[expect(clippy::cast_sign_loss, reason = "a valid fd is not negative")]
                map_fd: self.map.fd().as_fd().as_raw_fd() as u32,
                elem_flags: 0,
                flags: 0,
            };
            // SAFETY: bpf(BPF_MAP_LOOKUP_BATCH) with an attr whose pointers
            // reach buffers of `count` keys and values; the kernel writes
            // at most that many.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    BPF_MAP_LOOKUP_BATCH,
                    (&raw mut attr).cast::<libc::c_void>(),
                    size_of::<BatchAttr>(),
                )
            };
            let err = (rc < 0).then(std::io::Error::last_os_error);
            total += u64::from(attr.count);
            match err {
                None => {}
                // ENOENT: the walk reached the last bucket.
                Some(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(total),
                Some(e) => return Err(e),
            }
            token = out;
            first = false;
        }
    }

    /// Counts the entries and derives the evictions from the kernel
    /// counters read before and after the walk. The walk is not a snapshot:
    /// flows opened or closed while it runs (a few ms for a full table) make
    /// the derived figure lag by at most that many, never run ahead of the
    /// true count, and it is published as a running maximum, so the counter
    /// stays monotonic and catches up at the next quiet reading.
    pub fn read(&mut self, stats: &PerCpuArray<MapData, u64>) -> std::io::Result<FlowTableReading> {
        let before = read_stats(stats);
        let entries = self.entries()?;
        let after = read_stats(stats);
        let derived = before[Stat::FlowsCreated as usize]
            .saturating_sub(after[Stat::FlowsClosed as usize])
            .saturating_sub(entries);
        self.evicted = self.evicted.max(derived);
        Ok(FlowTableReading {
            entries,
            evicted: self.evicted,
        })
    }

    /// Refreshes `plainsight_flow_table_entries` and
    /// `plainsight_flow_table_evictions_total` (also published as
    /// `plainsight_kernel_total{counter="flows_evicted"}`).
    pub fn publish(&mut self, stats: &PerCpuArray<MapData, u64>, m: &Metrics) {
        let published = self.evicted;
        match self.read(stats) {
            Ok(r) => {
                m.flow_table_entries
                    .set(i64::try_from(r.entries).unwrap_or(i64::MAX));
                let delta = r.evicted - published;
                if delta > 0 {
                    m.flow_table_evictions.inc_by(delta);
                    m.kernel
                        .get_or_create(&KernelLabels {
                            counter: FLOWS_EVICTED,
                        })
                        .inc_by(delta);
                }
            }
            Err(e) => log::warn!("counting flow-table entries: {e}"),
        }
    }
}

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// `union bpf_attr`, the `batch` member.
#[repr(C)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}
