//! `plainsight run`: attach, classify, serve, detach on SIGINT/SIGTERM.

use crate::{
    api, datapath, events,
    interfaces::TcAttacher,
    metrics::{self, HookLabels, KernelLabels, Metrics},
};
use agent_common::wire::{DEFAULT_MAX_FLOWS, Stat};
use anyhow::{Context as _, bail};
use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::signal::unix::{SignalKind, signal};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// cgroup v2 directory to attach the cgroup_skb programs to. Default:
    /// the node's cgroup v2 root (every socket on the node), unless only
    /// --interface is given.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,

    /// Attach TC programs to interfaces whose name matches PATTERN (`*` and
    /// `?` globs). Repeatable. Interfaces that appear later are picked up.
    #[arg(long = "interface", value_name = "PATTERN")]
    pub interfaces: Vec<String>,

    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:9477")]
    pub listen: SocketAddr,

    /// Also classify loopback (127.0.0.0/8, ::1) traffic.
    #[arg(long)]
    pub include_loopback: bool,

    /// Capacity of the kernel flow table (connections tracked at once).
    #[arg(long, default_value_t = DEFAULT_MAX_FLOWS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_flows: u32,

    /// Size of the verdict ring buffer in bytes: a power of two, at least 4096.
    #[arg(long, default_value_t = 256 * 1024, value_parser = parse_ring_bytes)]
    pub ring_bytes: u32,
}

fn parse_ring_bytes(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a byte count: {e}"))?;
    if n < 4096 || !n.is_power_of_two() {
        return Err(format!("{n} must be a power of two and at least 4096"));
    }
    Ok(n)
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> anyhow::Result<()> {
    let cgroup = match (&args.cgroup, args.interfaces.is_empty()) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(crate::cgroup::default_root()?),
        (None, false) => None,
    };
    if let Some(p) = &cgroup {
        crate::cgroup::check_v2(p)?;
    }
    // Bind before attaching, so a taken port fails fast with nothing attached.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let ready = Arc::new(AtomicBool::new(false));
    let state = api::ApiState {
        registry: Arc::new(registry),
        ready: ready.clone(),
    };
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, api::router(state)).await {
            log::error!("metrics server stopped: {e}");
        }
    });

    let dp = datapath::load(&datapath::LoadOptions {
        include_loopback: args.include_loopback,
        max_flows: args.max_flows,
        ring_bytes: args.ring_bytes,
    })?;
    let datapath::Datapath {
        mut ebpf,
        events: ring,
        stats,
        mut flow_table,
    } = dp;
    metrics.flow_table_capacity.set(i64::from(args.max_flows));

    if let Some(p) = &cgroup {
        datapath::attach_cgroup(&mut ebpf, p)?;
        metrics
            .programs_attached
            .get_or_create(&HookLabels { hook: "cgroup" })
            .set(2);
        log::info!("attached cgroup_skb ingress+egress to {}", p.display());
    }
    let mut tc = None;
    if !args.interfaces.is_empty() {
        let mut t = TcAttacher::new(&mut ebpf, args.interfaces.clone())?;
        let added = t.sync(&mut ebpf)?;
        if added.is_empty() {
            log::warn!(
                "no interface matches {:?} yet; watching for them",
                args.interfaces
            );
        } else {
            log::info!("attached TC ingress+egress to {}", added.join(", "));
        }
        tc = Some(t);
    }
    ready.store(true, Ordering::Release);
    log::info!(
        "plainsight ready; metrics on http://{}/metrics",
        args.listen
    );

    let mut consumer = tokio::spawn(events::consume(ring, metrics.clone()));
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last = [0u64; Stat::COUNT as usize];
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = tick.tick() => {
                publish_stats(&metrics, &datapath::read_stats(&stats), &mut last);
                flow_table.publish(&stats, &metrics);
                if let Some(t) = tc.as_mut() {
                    match t.sync(&mut ebpf) {
                        Ok(added) if !added.is_empty() => log::info!("attached TC to {}", added.join(", ")),
                        Ok(_) => {}
                        Err(e) => log::warn!("watching interfaces: {e:#}"),
                    }
                    #[expect(clippy::cast_possible_wrap, reason = "interface counts are small")]
                    metrics.programs_attached.get_or_create(&HookLabels { hook: "tc" }).set(2 * t.count() as i64);
                }
            }
            r = &mut consumer => {
                match r {
                    Ok(Ok(())) => bail!("event consumer ended"),
                    Ok(Err(e)) => return Err(e.context("reading verdict events")),
                    Err(e) => bail!("event consumer panicked: {e}"),
                }
            }
        }
    }
    log::info!("shutting down; detaching programs");
    consumer.abort();
    drop(ebpf);
    Ok(())
}

/// Moves kernel counter deltas into the Prometheus counters.
fn publish_stats(
    m: &Metrics,
    now: &[u64; Stat::COUNT as usize],
    last: &mut [u64; Stat::COUNT as usize],
) {
    for s in Stat::ALL {
        let i = s as usize;
        let delta = now[i].saturating_sub(last[i]);
        if delta > 0 {
            m.kernel
                .get_or_create(&KernelLabels {
                    counter: metrics::stat_name(s),
                })
                .inc_by(delta);
            if s == Stat::EventsLost {
                m.events_lost.inc_by(delta);
            }
        }
        last[i] = now[i];
    }
}
