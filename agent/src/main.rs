//! `plainsight`: finds unencrypted east-west traffic with eBPF.

use clap::{Parser, Subcommand};
use plainsight::{replay, run};

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
    /// Classify every TCP flow of a pcap/pcapng capture, as the agent would.
    Replay(replay::ReplayArgs),
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Replay(args) => replay::run(&args),
    }
}
