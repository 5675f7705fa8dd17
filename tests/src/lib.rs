//! Harness for privileged end-to-end tests (and `cargo xtask demo`): a
//! client and a server network namespace joined by a veth pair, a child
//! cgroup for the cgroup hook, real servers and clients spawned inside them,
//! and the real `plainsight` binary watching. Everything is owned by guards
//! that remove it in `Drop`, also when a test fails. Also what the checks
//! of the deployment artefacts share: the repository's files, the external
//! tools, the rendered manifests, `systemd-analyze` and the granted
//! capabilities.

pub mod agent;
pub mod capabilities;
pub mod chromium;
pub mod clients;
pub mod expect;
pub mod files;
pub mod http;
pub mod manifests;
pub mod packets;
pub mod prometheus;
pub mod servers;
pub mod systemd;
pub mod tools;
pub mod topology;

pub use agent::Agent;
pub use expect::{Checker, Expected};
pub use topology::{Proc, Session, Side, TestCert, Topology, WorkDir};

/// Fails loudly when not root: a privileged test that cannot run must not
/// pass silently.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "plainsight's end-to-end tests need root (network namespaces, cgroups, BPF); \
         run them through `cargo xtask test` as root"
    );
}

/// The `plainsight` binary under test: `PLAINSIGHT_BIN` (relative paths are
/// taken from the workspace root), else the release build in this workspace.
pub fn plainsight_bin() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let p = std::env::var_os("PLAINSIGHT_BIN")
        .map_or_else(|| root.join("target/release/plainsight"), |p| root.join(p));
    assert!(
        p.exists(),
        "{} not found: build it with `cargo build --release -p plainsight` or run `cargo xtask test`",
        p.display()
    );
    p
}

/// Polls `check` every 100 ms until it holds or `secs` pass; returns its
/// last answer (kernel teardown and interface discovery are not instant).
pub fn within(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Pins the calling thread to the CPU it is on: BPF_PROG_TEST_RUN runs on
/// the caller's CPU, and per-CPU map slots must stay the same slots from one
/// run to the next. Returns that CPU.
pub fn pin_to_this_cpu() -> std::io::Result<usize> {
    // SAFETY: sched_getcpu has no preconditions.
    let cpu = unsafe { libc::sched_getcpu() };
    let cpu = usize::try_from(cpu).map_err(|_| std::io::Error::last_os_error())?;
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET stays within it
    // for any CPU the kernel reported.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    };
    // SAFETY: pid 0 is the calling thread; the set is a valid cpu_set_t.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cpu)
}
