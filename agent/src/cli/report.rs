//! `plainsight report`: the evidence report (report/) of one agent or, with
//! `--prometheus`, of the fleet over a window; HTML, JSON or CSV.

use super::edges::{AgentAddr, agent_list, fleet_list};
use crate::{clock, config, export::edge_list::EdgeList, report};
use anyhow::Context as _;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub agent: AgentAddr,

    /// The whole fleet from this Prometheus instead of one agent.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,

    /// With --prometheus: the window, e.g. 7d.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "7d",
        requires = "prometheus"
    )]
    pub since: String,

    /// The agent's configuration: every allow-rule is listed, also those
    /// that allowed nothing (else only the rules the edges name).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// html (one self-contained, printable file), json or csv.
    #[arg(long, value_enum, default_value = "html")]
    pub format: Format,

    /// Write here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    Html,
    Json,
    Csv,
}

pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let rules = match &args.config {
        Some(path) => config::load(path)?
            .policy
            .rules()
            .iter()
            .map(|r| report::RuleFacts {
                name: r.name.clone(),
                owner: r.owner.clone(),
                reason: r.reason.clone(),
                expires_ns: r.expires_ns,
                expires: r.expires(),
            })
            .collect(),
        None => Vec::new(),
    };
    let (list, source): (EdgeList, String) = match &args.prometheus {
        Some(url) => (
            fleet_list(url, &args.since)?,
            format!("Prometheus {url}, the last {}", args.since),
        ),
        None => (
            agent_list(&args.agent, false)?,
            format!("the agent at {}", args.agent.addr),
        ),
    };
    let r = report::build(&list, &rules, source, clock::now_ns());
    let text = match args.format {
        Format::Html => report::html::render(&r),
        Format::Json => serde_json::to_string_pretty(&r)? + "\n",
        Format::Csv => report::csv::render(&r),
    };
    match &args.output {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display())),
        None => {
            use std::io::Write as _;
            match std::io::stdout().lock().write_all(text.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => r.context("writing the report"),
            }
        }
    }
}
