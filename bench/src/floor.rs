//! The bench's cost floor (`plainsight-bench floor`, hidden): programs that
//! return at once (bench/ebpf), attached where plainsight's go, held until
//! the process is killed. Measured like plainsight on the same traffic,
//! they show what the kernel charges for running any program there
//! (dispatch, and the run-time statistics' clock reads), so the bench can
//! tell that apart from plainsight's own work.

use anyhow::{Context as _, bail};
use aya::Ebpf;
use plainsight::kernel::{datapath, interfaces};
use std::path::PathBuf;

/// Printed once every program is attached; the bench waits for it.
pub const READY: &str = "floor attached";

#[derive(clap::Args)]
pub struct Args {
    /// Attach the cgroup_skb floor programs to this cgroup v2 directory.
    #[arg(
        long,
        conflicts_with = "interface",
        required_unless_present = "interface"
    )]
    cgroup: Option<PathBuf>,
    /// Attach the TC floor programs to this interface (TCX); repeatable.
    #[arg(long)]
    interface: Vec<String>,
}

/// Program names in the floor object, and the plainsight program each
/// stands in for (the bench reports both on one row).
pub const PROGRAMS: [(&str, &str); 4] = [
    ("floor_cg_in", "cgroup_ingress"),
    ("floor_cg_eg", "cgroup_egress"),
    ("floor_tc_in", "tc_ingress"),
    ("floor_tc_eg", "tc_egress"),
];

/// The floor object, built by build.rs (empty under AYA_BUILD_SKIP).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/floor"));

/// The floor programs, loaded (not attached).
pub fn load() -> anyhow::Result<Ebpf> {
    if OBJECT.is_empty() {
        bail!("the bench was built with AYA_BUILD_SKIP=1: it has no floor programs");
    }
    Ebpf::load(OBJECT).context("loading the floor object")
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut ebpf = load()?;
    if let Some(path) = &args.cgroup {
        datapath::attach_cgroup_pair(&mut ebpf, path, ["floor_cg_in", "floor_cg_eg"])?;
    } else {
        let names = ["floor_tc_in", "floor_tc_eg"];
        interfaces::load_tc_pair(&mut ebpf, names)?;
        for iface in &args.interface {
            interfaces::attach_tc_pair(&mut ebpf, iface, names)?;
        }
    }
    println!("{READY}");
    // The links live as long as this process: the bench kills it.
    loop {
        std::thread::park();
    }
}
