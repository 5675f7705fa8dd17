//! `plainsight run`: check the configuration, attach, drop capabilities,
//! classify and serve, detach on SIGINT/SIGTERM.

use crate::{
    clock,
    config::{self, Config},
    export::{
        api,
        metrics::{HookLabels, Metrics},
    },
    kernel::{caps, cgroup, datapath, events, interfaces::TcAttacher},
    kubernetes::{self, KubeIdentities},
    logging::{self, LogFormat},
    pipeline::{
        Pipeline,
        alerts::Alerter,
        edges::Edges,
        identity::{CidrNames, IdentitySource, Resolver},
    },
};
use agent_common::wire::Stat;
use anyhow::{Context as _, bail};
use aya::{
    maps::{MapData, PerCpuArray, RingBuf},
    util::KernelVersion,
};
use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, atomic::AtomicBool},
    time::Duration,
};
use tokio::signal::unix::{SignalKind, signal};

/// Flags override the configuration file (`--config`), key by key.
#[derive(clap::Args, Debug, Default)]
pub struct RunArgs {
    /// TOML configuration file (see deploy/config/plainsight.toml); checked
    /// completely before anything is attached.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// cgroup v2 directory to attach the cgroup_skb programs to. Default:
    /// the node's cgroup v2 root (every socket on the node), unless only
    /// --interface is given. [config: hooks.cgroup]
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,

    /// Attach TC programs to interfaces whose name matches PATTERN (`*` and
    /// `?` globs). Repeatable. Interfaces that appear later are picked up.
    /// [config: hooks.interfaces]
    #[arg(long = "interface", value_name = "PATTERN")]
    pub interfaces: Vec<String>,

    /// Address for /metrics, /api/v1/edges, /healthz and /readyz.
    /// [config: api.listen; default 127.0.0.1:9477]
    #[arg(long)]
    pub listen: Option<SocketAddr>,

    /// Also classify loopback (127.0.0.0/8, ::1) traffic.
    /// [config: hooks.include_loopback]
    #[arg(long)]
    pub include_loopback: bool,

    /// Capacity of the kernel flow table (connections tracked at once).
    /// [config: datapath.max_flows; default 65536]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_flows: Option<u32>,

    /// Size of the verdict ring buffer in bytes: a power of two, at least
    /// 4096. [config: datapath.ring_bytes; default 262144]
    #[arg(long, value_parser = parse_ring_bytes)]
    pub ring_bytes: Option<u32>,

    /// Log lines as text or one JSON object per line. [config: log.format]
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,

    /// Name peers from the Kubernetes API server this kubeconfig points at
    /// (turns the Kubernetes source on). [config: kubernetes.kubeconfig]
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
}

fn parse_ring_bytes(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|e| format!("{s:?} is not a byte count: {e}"))?;
    config::check_ring_bytes(n).map(|()| n)
}

impl RunArgs {
    /// The file (or the defaults) with the flags applied.
    pub fn settings(&self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => config::load(path)?,
            None => Config::default(),
        };
        if self.cgroup.is_some() || !self.interfaces.is_empty() {
            // The hooks given on the command line replace the file's.
            c.cgroup.clone_from(&self.cgroup);
            c.interfaces.clone_from(&self.interfaces);
        }
        c.listen = self.listen.unwrap_or(c.listen);
        c.include_loopback |= self.include_loopback;
        c.max_flows = self.max_flows.unwrap_or(c.max_flows);
        c.ring_bytes = self.ring_bytes.unwrap_or(c.ring_bytes);
        c.log_format = self.log_format.unwrap_or(c.log_format);
        if let Some(path) = &self.kubeconfig {
            c.kubernetes.kubeconfig = Some(path.clone());
            c.kubernetes.enabled = kubernetes::Enabled::On;
        }
        Ok(c)
    }
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let cfg = args.settings()?;
    logging::init(cfg.log_format);
    for w in config::warnings(&cfg, clock::now_ns()) {
        log::warn!(target: "plainsight::pipeline::policy", "{w}");
    }
    // Attaching happens on this, the only thread, so that dropping
    // capabilities afterwards covers every thread the runtime starts.
    let attached = attach(&cfg)?;
    let kernel_ge_6_5 = KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 5, 0));
    let kept = caps::drop_to(caps::needed_after_attach(
        attached.tc.is_some(),
        kernel_ge_6_5,
    ))
    .context("dropping capabilities after attaching")?;
    log::info!("capabilities kept after attaching: {}", caps::names(kept));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(serve(cfg, attached))
}

/// Everything set up before the runtime starts.
struct Attached {
    listener: std::net::TcpListener,
    registry: prometheus_client::registry::Registry,
    metrics: Arc<Metrics>,
    ebpf: aya::Ebpf,
    ring: RingBuf<MapData>,
    hellos: RingBuf<MapData>,
    stats: PerCpuArray<MapData, u64>,
    flow_table: datapath::FlowTableReader,
    tc: Option<TcAttacher>,
    kube: Option<kubernetes::Prepared>,
}

/// The oldest kernel with everything the programs use: BPF ring buffers
/// and cgroup bpf_links both arrived in 5.8.
const MIN_KERNEL: KernelVersion = KernelVersion::new(5, 8, 0);

fn attach(cfg: &Config) -> anyhow::Result<Attached> {
    // Said plainly here rather than as a verifier or map-creation error.
    if let Ok(v) = KernelVersion::current()
        && v < MIN_KERNEL
    {
        bail!(
            "kernel {v} is older than {MIN_KERNEL}: plainsight needs BPF ring buffers and \
             cgroup bpf_links; run it on Linux {MIN_KERNEL} or newer"
        );
    }
    let cgroup = match (&cfg.cgroup, cfg.interfaces.is_empty()) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(cgroup::default_root()?),
        (None, false) => None,
    };
    if let Some(p) = &cgroup {
        cgroup::check_v2(p)?;
    }
    // Bind before attaching, so a taken port fails fast with nothing attached.
    let listener = std::net::TcpListener::bind(cfg.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .with_context(|| format!("listening on {}", cfg.listen))?;

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let kube = prepare_kubernetes(cfg)?;
    if let Some(k) = &kube {
        // plainsight_kubernetes_*, next to the agent's own plainsight_*.
        k.health()
            .register(registry.sub_registry_with_prefix("plainsight"));
    }

    let dp = datapath::load(&datapath::LoadOptions {
        include_loopback: cfg.include_loopback,
        max_flows: cfg.max_flows,
        ring_bytes: cfg.ring_bytes,
    })?;
    let datapath::Datapath {
        mut ebpf,
        events: ring,
        hellos,
        stats,
        flow_table,
    } = dp;
    metrics.flow_table_capacity.set(i64::from(cfg.max_flows));

    if let Some(p) = &cgroup {
        datapath::attach_cgroup(&mut ebpf, p)?;
        metrics
            .programs_attached
            .get_or_create(&HookLabels { hook: "cgroup" })
            .set(2);
        log::info!("attached cgroup_skb ingress+egress to {}", p.display());
    }
    let mut tc = None;
    if !cfg.interfaces.is_empty() {
        let mut t = TcAttacher::new(&mut ebpf, cfg.interfaces.clone())?;
        let added = t.sync(&mut ebpf)?;
        if added.is_empty() {
            log::warn!(
                "no interface matches {:?} yet; watching for them",
                cfg.interfaces
            );
        } else {
            log::info!("attached TC ingress+egress to {}", added.join(", "));
        }
        publish_tc_count(&metrics, &t);
        tc = Some(t);
    }
    Ok(Attached {
        listener,
        registry,
        metrics,
        ebpf,
        ring,
        hellos,
        stats,
        flow_table,
        tc,
        kube,
    })
}

/// Reads the kubeconfig or service account and checks the TLS setup before
/// anything is attached; connecting is the watches' job, in the background.
fn prepare_kubernetes(cfg: &Config) -> anyhow::Result<Option<kubernetes::Prepared>> {
    let Some(kc) = cfg
        .kubernetes
        .resolve()
        .context("kubernetes identities (config section [kubernetes])")?
    else {
        log::info!("kubernetes identities off (not in a pod and no kubeconfig)");
        return Ok(None);
    };
    log::info!("kubernetes identities from {}", kc.server);
    KubeIdentities::prepare(kc)
        .map(Some)
        .context("kubernetes identities: TLS setup")
}

async fn serve(cfg: Config, a: Attached) -> anyhow::Result<()> {
    let Attached {
        listener,
        registry,
        metrics,
        mut ebpf,
        ring,
        hellos,
        stats,
        mut flow_table,
        mut tc,
        kube,
    } = a;
    let started = std::time::Instant::now();
    let now = clock::now_ns();
    let edges = Arc::new(Mutex::new(Edges::new(cfg.edges_max, cfg.idle_timeout)));
    // Kubernetes first, then named CIDRs, then the IP (Resolver).
    let mut sources: Vec<Box<dyn IdentitySource>> = Vec::new();
    if let Some(k) = kube {
        sources.push(Box::new(k.start()));
    }
    sources.push(Box::new(CidrNames::new(cfg.identities)));
    let pipeline = Pipeline::live(
        Resolver::new(sources),
        cfg.policy,
        edges.clone(),
        metrics.clone(),
        Alerter::new(cfg.alerts_per_minute, now),
        now,
    );
    let ready = Arc::new(AtomicBool::new(true));
    let state = api::ApiState {
        registry: Arc::new(registry),
        edges,
        ready,
        status: api::AgentStatus {
            started,
            include_loopback: cfg.include_loopback,
            metrics: metrics.clone(),
        },
    };
    // The API failing must not stop classification: log and carry on.
    match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, api::router(state)).await {
                    log::error!("the HTTP API stopped: {e}; classification continues");
                }
            });
        }
        Err(e) => log::error!("the HTTP API cannot start: {e}; classification continues"),
    }
    log::info!("plainsight ready; metrics on http://{}/metrics", cfg.listen);

    let mut consumer = tokio::spawn(consume(ring, hellos, pipeline, metrics.clone()));
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last = [0u64; Stat::COUNT as usize];
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = tick.tick() => {
                metrics.publish_kernel_stats(&datapath::read_stats(&stats), &mut last);
                match flow_table.read(&stats) {
                    Ok(r) => metrics.publish_flow_table(r.entries, r.evicted),
                    Err(e) => log::warn!("counting flow-table entries: {e}"),
                }
                if let Some(t) = tc.as_mut() {
                    match t.sync(&mut ebpf) {
                        Ok(added) if !added.is_empty() => log::info!("attached TC to {}", added.join(", ")),
                        Ok(_) => {}
                        Err(e) => log::warn!("watching interfaces: {}", logging::chain(&e)),
                    }
                    publish_tc_count(&metrics, t);
                }
            }
            r = &mut consumer => {
                match r {
                    Ok(Ok(())) => bail!("event consumer ended"),
                    Ok(Err(e)) => return Err(anyhow::Error::new(e).context("reading verdict events")),
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

/// Drains both ring buffers on every wakeup of either and every
/// `events::POLL`, when the pipeline also does its housekeeping.
async fn consume(
    events: RingBuf<MapData>,
    hellos: RingBuf<MapData>,
    mut pipeline: Pipeline,
    metrics: Arc<Metrics>,
) -> Result<(), events::EventsError> {
    let mut rings = events::Rings::new(events, hellos)?;
    let mut tick = tokio::time::interval(events::POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ready = rings.readable() => ready?,
            _ = tick.tick() => pipeline.tick(clock::now_ns()),
        }
        let read = rings.drain(|flow, now| pipeline.observe(flow, now));
        metrics.publish_ring_reading(read.received, read.malformed);
    }
}

/// Two programs (ingress, egress) per attached interface; set at attach
/// time too, so the gauge is right as soon as /readyz says ready.
fn publish_tc_count(m: &Metrics, t: &TcAttacher) {
    #[expect(clippy::cast_possible_wrap, reason = "interface counts are small")]
    m.programs_attached
        .get_or_create(&HookLabels { hook: "tc" })
        .set(2 * t.count() as i64);
}
