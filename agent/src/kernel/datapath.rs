//! Loading the kernel programs and attaching them to cgroups. The cgroup
//! attachments are bpf_links owned by this process: when it exits, even by
//! SIGKILL, the kernel detaches them (TC, in interfaces.rs, is the same with
//! TCX, but before 6.6 attaches clsact filters that outlive the process).

use super::cgroup::{self, CgroupError};
use agent_common::wire::{FlowKey, FlowState, Stat, embryonic_capacity};
use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{MapData, MapError, PerCpuArray, ProgramArray, RingBuf},
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, ProgramError, ProgramFd},
};
use std::{
    fs::File,
    os::fd::{AsFd as _, AsRawFd as _},
    path::{Path, PathBuf},
};

/// What went wrong loading or attaching, naming the program, map or path;
/// the cause (an errno, the verifier's log) is the error's source.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error(
        "this plainsight binary was built with AYA_BUILD_SKIP=1 and carries no eBPF \
         programs; rebuild it without that variable (cargo xtask setup installs what the \
         build needs)"
    )]
    NoPrograms,
    #[error("loading the eBPF programs (are you root, or do you have CAP_BPF + CAP_PERFMON?)")]
    Load(#[source] Box<EbpfError>),
    #[error("{0} map missing")]
    MapMissing(&'static str),
    #[error("{map} is not {kind}")]
    MapType {
        map: &'static str,
        kind: &'static str,
        #[source]
        error: Option<Box<MapError>>,
    },
    #[error("program {0} missing")]
    ProgramMissing(String),
    #[error("program {0} has an unexpected type")]
    ProgramType(String),
    #[error("verifier rejected {name}")]
    Verifier {
        name: String,
        #[source]
        error: Box<ProgramError>,
    },
    #[error("program {name}")]
    Program {
        name: String,
        #[source]
        error: Box<ProgramError>,
    },
    #[error("installing {prog} in {map}")]
    Install {
        prog: String,
        map: &'static str,
        #[source]
        error: Box<MapError>,
    },
    #[error("duplicating the file descriptor of {name}")]
    Fd {
        name: String,
        #[source]
        error: std::io::Error,
    },
    #[error("opening cgroup {}", path.display())]
    OpenCgroup {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("attaching {name} to {}", path.display())]
    Attach {
        name: String,
        path: PathBuf,
        #[source]
        error: Box<ProgramError>,
    },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

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
    /// TLS hello records (`HelloHeader` + bytes), see events.rs.
    pub hellos: RingBuf<MapData>,
    pub stats: PerCpuArray<MapData, u64>,
    pub flow_table: FlowTableReader,
}

pub fn load(opts: &LoadOptions) -> Result<Datapath, DatapathError> {
    if OBJECT.is_empty() {
        return Err(DatapathError::NoPrograms);
    }
    raise_memlock();
    let include_loopback = u8::from(opts.include_loopback);
    let mut ebpf = EbpfLoader::new()
        .override_global("INCLUDE_LOOPBACK", &include_loopback, true)
        .map_max_entries("FLOWS", opts.max_flows)
        .map_max_entries("EMBRYOS", embryonic_capacity(opts.max_flows))
        .map_max_entries("EVENTS", opts.ring_bytes)
        .map_max_entries("HELLOS", hello_ring_bytes(opts.ring_bytes))
        .load(OBJECT)
        .map_err(|e| DatapathError::Load(Box::new(e)))?;
    install_classifiers(&mut ebpf)?;
    let mut take = |map| ebpf.take_map(map).ok_or(DatapathError::MapMissing(map));
    let typed = |map, kind| {
        move |error| DatapathError::MapType {
            map,
            kind,
            error: Some(Box::new(error)),
        }
    };
    let events = RingBuf::try_from(take("EVENTS")?).map_err(typed("EVENTS", "a ring buffer"))?;
    let hellos = RingBuf::try_from(take("HELLOS")?).map_err(typed("HELLOS", "a ring buffer"))?;
    let stats = PerCpuArray::try_from(take("STATS")?).map_err(typed("STATS", "a per-CPU array"))?;
    let aya::maps::Map::LruHashMap(map) = take("FLOWS")? else {
        return Err(DatapathError::MapType {
            map: "FLOWS",
            kind: "an LRU hash map",
            error: None,
        });
    };
    let flow_table = FlowTableReader { map, evicted: 0 };
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
/// and the classifier's own stages tail-call them: per hook, the core at
/// index 0 and family stage `n` (named `<core>_<n>`) at index `n`.
fn install_classifiers(ebpf: &mut Ebpf) -> Result<(), DatapathError> {
    for (core, map) in [
        ("cgroup_classify_ingress", "CLASSIFY_CGROUP_INGRESS"),
        ("cgroup_classify_egress", "CLASSIFY_CGROUP_EGRESS"),
        ("tc_classify", "CLASSIFY_TC"),
    ] {
        for index in 0..=u32::from(agent_common::classify::STAGES) {
            let prog = if index == 0 {
                core.to_owned()
            } else {
                format!("{core}_{index}")
            };
            let fd = load_classifier(ebpf, &prog)?;
            install(ebpf, map, index, &prog, &fd)?;
        }
    }
    install_scans(ebpf)
}

/// The credentials scan programs (agent-ebpf/src/credentials.rs), at
/// `SCAN_SLOT` of each hook's array. They need `bpf_loop` (Linux 5.17):
/// where the kernel rejects them, the slot stays empty, the core
/// classifies without the scan, and the agent says what is not seen.
fn install_scans(ebpf: &mut Ebpf) -> Result<(), DatapathError> {
    use agent_common::classify::credentials::SCAN_SLOT;
    for (prog, map) in [
        ("cgroup_scan_ingress", "CLASSIFY_CGROUP_INGRESS"),
        ("cgroup_scan_egress", "CLASSIFY_CGROUP_EGRESS"),
        ("tc_scan", "CLASSIFY_TC"),
    ] {
        let fd = match load_classifier(ebpf, prog) {
            Ok(fd) => fd,
            Err(e @ DatapathError::Verifier { .. }) => {
                log::warn!(
                    "the credentials scan did not load ({}); this kernel may lack bpf_loop \
                     (Linux 5.17+): credentials past a segment's first {} bytes (HTTP \
                     Authorization after long headers, AMQP PLAIN, a NATS CONNECT's password) \
                     are not reported",
                    // The verifier's log can run to megabytes: its start says why.
                    crate::logging::chain(&e)
                        .chars()
                        .take(400)
                        .collect::<String>(),
                    agent_common::wire::PREFIX
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        install(ebpf, map, SCAN_SLOT, prog, &fd)?;
    }
    Ok(())
}

/// Puts program `prog` (loaded: `fd`) at `index` of program array `map`.
fn install(
    ebpf: &mut Ebpf,
    map: &'static str,
    index: u32,
    prog: &str,
    fd: &ProgramFd,
) -> Result<(), DatapathError> {
    let error = |error| DatapathError::Install {
        prog: prog.into(),
        map,
        error: Box::new(error),
    };
    let mut table =
        ProgramArray::try_from(ebpf.map_mut(map).ok_or(DatapathError::MapMissing(map))?)
            .map_err(error)?;
    table.set(index, fd, 0).map_err(error)
}

/// Loads one classifier program; its fd, for a program array.
fn load_classifier(ebpf: &mut Ebpf, prog: &str) -> Result<ProgramFd, DatapathError> {
    let program = ebpf
        .program_mut(prog)
        .ok_or_else(|| DatapathError::ProgramMissing(prog.into()))?;
    let verifier = |error| DatapathError::Verifier {
        name: prog.into(),
        error: Box::new(error),
    };
    let no_fd = |error| DatapathError::Program {
        name: prog.into(),
        error: Box::new(error),
    };
    match program {
        aya::programs::Program::CgroupSkb(p) => {
            p.load().map_err(verifier)?;
            p.fd().map_err(no_fd)?
        }
        aya::programs::Program::SchedClassifier(p) => {
            p.load().map_err(verifier)?;
            p.fd().map_err(no_fd)?
        }
        _ => return Err(DatapathError::ProgramType(prog.into())),
    }
    .try_clone()
    .map_err(|error| DatapathError::Fd {
        name: prog.into(),
        error,
    })
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
pub fn attach_cgroup(ebpf: &mut Ebpf, path: &Path) -> Result<(), DatapathError> {
    attach_cgroup_pair(ebpf, path, ["cgroup_ingress", "cgroup_egress"])
}

/// Loads the named cgroup_skb (ingress, egress) programs of `ebpf` and
/// attaches them to `path` (also used by the bench for its do-nothing
/// floor programs).
pub fn attach_cgroup_pair(
    ebpf: &mut Ebpf,
    path: &Path,
    names: [&str; 2],
) -> Result<(), DatapathError> {
    cgroup::check_v2(path)?;
    let [ingress, egress] = names;
    for (name, kind) in [
        (ingress, CgroupSkbAttachType::Ingress),
        (egress, CgroupSkbAttachType::Egress),
    ] {
        let cgroup = File::open(path).map_err(|error| DatapathError::OpenCgroup {
            path: path.to_owned(),
            error,
        })?;
        let prog: &mut CgroupSkb = ebpf
            .program_mut(name)
            .ok_or_else(|| DatapathError::ProgramMissing(name.into()))?
            .try_into()
            .map_err(|error| DatapathError::Program {
                name: name.into(),
                error: Box::new(error),
            })?;
        prog.load().map_err(|error| DatapathError::Verifier {
            name: name.into(),
            error: Box::new(error),
        })?;
        prog.attach(cgroup, kind, CgroupAttachMode::Single)
            .map_err(|error| DatapathError::Attach {
                name: name.into(),
                path: path.to_owned(),
                error: Box::new(error),
            })?;
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

/// Reads the occupancy of the kernel flow table (the `FLOWS` map), and
/// the LRU evictions derived from it (replay's `FlowTable` is the other
/// one: the kernel's tracking redone in userspace). The kernel has no eviction callback for BPF programs, but every
/// entry leaves the table either by our delete (`flows_closed`, counted only
/// when the delete succeeded) or by eviction, so
/// `evicted = flows_created - flows_closed - entries`.
pub struct FlowTableReader {
    map: MapData,
    /// Highest eviction count derived so far.
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

impl FlowTableReader {
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
