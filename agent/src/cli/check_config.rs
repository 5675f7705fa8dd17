//! `plainsight check-config FILE`: every problem with where it is, or a
//! summary of what the agent would run with (and which rules expired).

use crate::{clock, config, kubernetes::KubeIdentities};
use anyhow::Context as _;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct CheckConfigArgs {
    /// The TOML configuration file.
    pub file: PathBuf,
}

pub fn run(args: &CheckConfigArgs) -> anyhow::Result<()> {
    let c = config::load(&args.file)?;
    let now = clock::now_ns();
    let (active, expired) = c.policy.counts(now);
    println!(
        "{}: ok: {} identities, {active} active and {expired} expired allow-rules, \
         {} require-rules, unknown encryption judged as {}, edges.max {}, listen {}",
        args.file.display(),
        c.identities.len(),
        c.policy.requires().len(),
        match c.policy.unknown() {
            crate::pipeline::policy::UnknownTreatment::Violation => "violation",
            crate::pipeline::policy::UnknownTreatment::Allowed => "allowed",
        },
        c.edges_max,
        c.listen
    );
    // The API's certificate and key are read and paired as `run` would.
    if let Some((cert, key)) = &c.tls {
        crate::export::api_tls::check_pair(cert, key).map_err(anyhow::Error::msg)?;
        println!("api: https with {}", cert.display());
    }
    // What `run` would do with [kubernetes]: the kubeconfig or service
    // account is read and the TLS setup built; the server is not contacted.
    match c.kubernetes.resolve().context("[kubernetes]")? {
        None => println!("kubernetes identities: off here (not in a pod, no kubeconfig)"),
        Some(kc) => {
            let server = kc.server.to_string();
            KubeIdentities::prepare(kc).context("[kubernetes]: TLS setup")?;
            println!("kubernetes identities: from {server}");
        }
    }
    for w in config::warnings(&c, now) {
        println!("warning: {w}");
    }
    Ok(())
}
