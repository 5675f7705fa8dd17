//! `plainsight-bench`, run by `cargo xtask bench` once setup has installed
//! the eBPF toolchain: what plainsight costs, side by side with no agent,
//! with do-nothing floor programs on the same hooks and with a userspace
//! DPI peer (ndpiReader capturing on the same veth), on the bench's own
//! namespaces. Prints a table and writes target/bench/*.json.

mod floor;
mod harness;
mod peer;
mod pod;
mod probe;
mod report;
mod test_run;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "plainsight-bench",
    about = "Measure what plainsight costs (needs root; about 6 min, --quick about 1)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// The plainsight binary to measure.
    #[arg(long, default_value = "target/release/plainsight")]
    plainsight: PathBuf,
    #[command(flatten)]
    opts: harness::Options,
    #[command(subcommand)]
    role: Option<Role>,
}

/// The bench runs itself in these roles inside its namespaces.
#[derive(Subcommand)]
enum Role {
    /// The load generator.
    #[command(hide = true)]
    Peer(peer::Args),
    /// The cost floor: do-nothing programs, attached until killed.
    #[command(hide = true)]
    Floor(floor::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.role {
        None => harness::run(&cli.plainsight, &cli.opts),
        Some(Role::Peer(args)) => peer::run(args),
        Some(Role::Floor(args)) => floor::run(&args),
    }
}
