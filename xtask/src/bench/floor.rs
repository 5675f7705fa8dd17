//! The bench's cost floor (`cargo xtask bench-floor`, hidden): programs
//! that return at once (agent-ebpf's `floor_*`), attached where plainsight's
//! go, held until the process is killed. Measured like plainsight on the
//! same traffic, they show what the kernel charges for running any program
//! there (dispatch, and the run-time statistics' clock reads), so the
//! bench can tell that apart from plainsight's own work.

use anyhow::{Context as _, bail};
use aya::EbpfLoader;
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
    /// Attach the TC floor programs to this interface (TCX).
    #[arg(long)]
    interface: Option<String>,
}

/// Program names in the object, and the plainsight program each stands in
/// for (the bench reports both on one row).
pub const PROGRAMS: [(&str, &str); 4] = [
    ("floor_cg_in", "cgroup_ingress"),
    ("floor_cg_eg", "cgroup_egress"),
    ("floor_tc_in", "tc_ingress"),
    ("floor_tc_eg", "tc_egress"),
];

pub fn run(args: &Args) -> anyhow::Result<()> {
    let object = datapath::object();
    if object.is_empty() {
        bail!("the agent was built with AYA_BUILD_SKIP=1: no eBPF object to take the floor from");
    }
    // The object's maps come along; keep the flow table tiny.
    let mut ebpf = EbpfLoader::new()
        .map_max_entries("FLOWS", 16)
        .load(object)
        .context("loading the eBPF object")?;
    if let Some(path) = &args.cgroup {
        datapath::attach_cgroup_pair(&mut ebpf, path, ["floor_cg_in", "floor_cg_eg"])?;
    } else if let Some(iface) = &args.interface {
        let names = ["floor_tc_in", "floor_tc_eg"];
        interfaces::load_tc_pair(&mut ebpf, names)?;
        interfaces::attach_tc_pair(&mut ebpf, iface, names)?;
    }
    println!("{READY}");
    // The links live as long as this process: the bench kills it.
    loop {
        std::thread::park();
    }
}
