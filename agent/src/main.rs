//! `plainsight`: finds unencrypted east-west traffic with eBPF.

use clap::{Parser, Subcommand};
use plainsight::{
    cli::{check_config, edges, report, run},
    logging, replay,
};

#[derive(Parser)]
#[command(version, about = "Finds unencrypted east-west TCP traffic with eBPF")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attach the kernel programs; serve verdicts on /metrics and
    /// /api/v1/edges.
    Run(run::RunArgs),
    /// Print the live edge table of a running agent.
    Edges(edges::EdgesArgs),
    /// The evidence report: encryption share, plaintext edges and their
    /// owners, allow-rules and expiries, TLS inventory (HTML, JSON, CSV).
    Report(report::ReportArgs),
    /// Check a configuration file and list every problem in it.
    CheckConfig(check_config::CheckConfigArgs),
    /// Classify every TCP flow of a pcap/pcapng capture, as the agent would.
    Replay(replay::ReplayArgs),
}

/// Errors as one plain message (with their causes), exit status 1.
fn main() -> std::process::ExitCode {
    match dispatch(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plainsight: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        // `run` installs the logger in the configured format.
        Command::Run(args) => run::run(&args),
        Command::Edges(args) => edges::run(&args),
        Command::Report(args) => report::run(&args),
        Command::CheckConfig(args) => check_config::run(&args),
        Command::Replay(args) => {
            logging::init(logging::LogFormat::Text);
            replay::run(&args)
        }
    }
}
