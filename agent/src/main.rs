//! `plainsight`: finds unencrypted east-west traffic with eBPF.

mod api;
mod cgroup;
mod datapath;
mod events;
mod interfaces;
mod metrics;
mod policy;
mod run;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Finds unencrypted east-west TCP traffic with eBPF")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attach the kernel programs and serve verdicts on /metrics.
    Run(run::RunArgs),
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(args),
    }
}
