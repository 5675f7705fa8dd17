//! What the bench reads from the kernel: softirq time, a process's CPU time
//! and memory, and per-program eBPF run time.

use anyhow::{Context as _, bail};
use std::collections::BTreeMap;
use std::os::fd::{FromRawFd as _, OwnedFd};

/// Clock ticks per second of /proc's time fields (USER_HZ).
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// Machine-wide CPU time (all CPUs, /proc/stat), in seconds, and when it
/// was read.
#[derive(Clone, Copy, Debug)]
pub struct CpuTimes {
    pub softirq: f64,
    /// Idle, iowait and steal (time the hypervisor took).
    not_ours: f64,
    cpus: f64,
    at: std::time::Instant,
}

impl CpuTimes {
    /// CPU time the machine was busy since `before` (all CPUs). Taken as
    /// wall time × CPUs less idle, not as the sum of user, system, irq and
    /// softirq: on a tickless kernel those are sampled at the tick, and a
    /// load that sleeps between short bursts (the paced phase) aliases with
    /// it (we saw 4–200 µs per connection for the same load), while idle
    /// time is measured exactly.
    pub fn busy_since(&self, before: &Self) -> f64 {
        let wall = self.at.duration_since(before.at).as_secs_f64();
        (wall * self.cpus - (self.not_ours - before.not_ours)).max(0.0)
    }
}

pub fn cpu_times() -> anyhow::Result<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let at = std::time::Instant::now();
    let cpu = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("/proc/stat has no cpu line")?;
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    // cpu user nice system idle iowait irq softirq steal ...
    let f: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().unwrap_or(f64::NAN))
        .collect();
    if f.len() < 8 || f.iter().any(|v| v.is_nan()) || cpus == 0 {
        bail!("/proc/stat cpu line {cpu:?} lacks the first eight fields");
    }
    let secs = |v: f64| v / ticks_per_sec();
    Ok(CpuTimes {
        softirq: secs(f[6]),
        not_ours: secs(f[3] + f[4] + f[7]),
        cpus: cpus as f64,
        at,
    })
}

/// CPU time of a process (all its threads), in seconds, to the
/// nanosecond: the sum of its threads' run time (`/proc/PID/task/*/
/// schedstat`, first field). `/proc/PID/stat`'s utime and stime count
/// clock ticks (10 ms here), too coarse for an agent that spends tens of
/// milliseconds on a phase. The agent's threads live as long as it does;
/// one that ended within a phase would be missed.
pub fn process_cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let dir = format!("/proc/{pid}/task");
    let mut ns = 0u64;
    for task in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = task
            .with_context(|| format!("reading {dir}"))?
            .path()
            .join("schedstat");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // The thread ended since the listing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        ns += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("{} has no run time", path.display()))?;
    }
    Ok(ns as f64 / 1e9)
}

/// (VmRSS, VmHWM) of a process, in MiB.
pub fn memory_mib(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = |key: &str| -> anyhow::Result<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .with_context(|| format!("/proc/{pid}/status has no {key}"))
    };
    Ok((kib("VmRSS:")? / 1024.0, kib("VmHWM:")? / 1024.0))
}

/// eBPF run-time statistics, on while this is held. BPF_ENABLE_STATS is
/// refcounted by the kernel and ends with our fd, so it never turns off
/// statistics someone else enabled (kernel.bpf_stats_enabled stays as is).
pub struct BpfStats(#[allow(dead_code)] OwnedFd);

impl BpfStats {
    pub fn enable() -> anyhow::Result<Self> {
        const BPF_ENABLE_STATS: libc::c_long = 32;
        const BPF_STATS_RUN_TIME: u32 = 0;
        let attr: u32 = BPF_STATS_RUN_TIME;
        // SAFETY: bpf(BPF_ENABLE_STATS) reads a 4-byte attr we own.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_ENABLE_STATS,
                (&raw const attr).cast::<libc::c_void>(),
                size_of::<u32>(),
            )
        };
        if fd < 0 {
            bail!(
                "bpf(BPF_ENABLE_STATS): {} (kernel ≥ 5.8 and root needed)",
                std::io::Error::last_os_error()
            );
        }
        // SAFETY: the kernel returned a new descriptor that we now own.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }
}

/// Cumulative run time and run count of one program.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProgRun {
    pub ns: u64,
    pub count: u64,
}

/// The run statistics of every eBPF program a process holds, by program id,
/// read from its file descriptors' fdinfo (exact even when other agents run
/// on the machine).
pub fn prog_runs(pid: u32) -> anyhow::Result<BTreeMap<u32, ProgRun>> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let Ok(text) = std::fs::read_to_string(entry?.path()) else {
            continue;
        };
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let (Some(id), Some(ns), Some(count)) =
            (field("prog_id:"), field("run_time_ns:"), field("run_cnt:"))
        {
            out.insert(id as u32, ProgRun { ns, count });
        }
    }
    Ok(out)
}

/// Program names by id (`bpftool prog show`), for the programs in `ids`.
pub fn prog_names(ids: impl Iterator<Item = u32>) -> BTreeMap<u32, String> {
    ids.map(|id| {
        let name = std::process::Command::new("bpftool")
            .args(["-j", "prog", "show", "id", &id.to_string()])
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .and_then(|v| Some(v.get("name")?.as_str()?.to_owned()))
            .unwrap_or_else(|| format!("prog{id}"));
        // A floor program is reported on its plainsight program's row.
        let name = crate::floor::PROGRAMS
            .iter()
            .find(|(floor, _)| *floor == name)
            .map_or(name, |(_, real)| (*real).to_owned());
        (id, name)
    })
    .collect()
}

/// Per-program (name → run time, runs) between two snapshots; programs
/// that did not run are left out.
pub fn prog_delta(
    names: &BTreeMap<u32, String>,
    before: &BTreeMap<u32, ProgRun>,
    after: &BTreeMap<u32, ProgRun>,
) -> BTreeMap<String, ProgRun> {
    after
        .iter()
        .filter_map(|(id, a)| {
            let b = before.get(id).copied().unwrap_or_default();
            let d = ProgRun {
                ns: a.ns.saturating_sub(b.ns),
                count: a.count.saturating_sub(b.count),
            };
            let name = names
                .get(id)
                .cloned()
                .unwrap_or_else(|| format!("prog{id}"));
            (d.count > 0).then_some((name, d))
        })
        .collect()
}

/// The machine the numbers come from.
pub fn machine() -> serde_json::Value {
    let out = |p: &str, a: &[&str]| {
        std::process::Command::new(p)
            .args(a)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    serde_json::json!({
        "commit": out("git", &["rev-parse", "HEAD"]),
        "dirty": !out("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty(),
        "kernel": out("uname", &["-r"]),
        "cpu_model": cpu_model,
        "cpus": std::thread::available_parallelism().map_or(0, usize::from),
        "load_avg": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    })
}
