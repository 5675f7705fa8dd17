//! `plainsight run`: check the configuration, attach, drop capabilities,
//! classify and serve, detach on SIGINT/SIGTERM.

use crate::{
    clock,
    config::{self, Config},
    export::{
        api, api_tls,
        bearer::BearerToken,
        http_server,
        metrics::{HookLabels, Metrics},
        readiness::{KubeSync, Readiness},
        snapshot,
    },
    kernel::{attachments::CgroupWatch, caps, cgroup, datapath, events, interfaces::TcAttacher},
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
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
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

    /// Address for /api/v1/edges, /healthz and /readyz, and /metrics
    /// unless --metrics-listen is another. [config: api.listen; default
    /// 127.0.0.1:9477]
    #[arg(long)]
    pub listen: Option<SocketAddr>,

    /// Address for /metrics, /healthz and /readyz alone (e.g. 0.0.0.0:9477
    /// for Prometheus, with the edges API left on loopback).
    /// [config: metrics.listen; default: the --listen address]
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

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
        c.metrics_listen = self.metrics_listen.or(c.metrics_listen);
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
    release_freed_heap();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(serve(cfg, attached))
}

/// Start-up (mostly loading and verifying the kernel programs) leaves
/// megabytes of freed heap that glibc's allocator keeps mapped: handed
/// back, the idle agent's RSS is ≈ 6 MiB less (docs/benchmarks.md).
fn release_freed_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: takes only the padding to keep; glibc locks its arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Everything set up before the runtime starts.
struct Attached {
    listeners: Listeners,
    token: Option<Arc<BearerToken>>,
    tls: Option<Arc<rustls::ServerConfig>>,
    registry: prometheus_client::registry::Registry,
    metrics: Arc<Metrics>,
    ebpf: aya::Ebpf,
    ring: RingBuf<MapData>,
    hellos: RingBuf<MapData>,
    stats: PerCpuArray<MapData, u64>,
    flow_table: datapath::FlowTableReader,
    tc: Option<TcAttacher>,
    cgroup_watch: Option<CgroupWatch>,
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
    // Bind and read the token before attaching, so a taken port or a bad
    // file fails fast with nothing attached.
    let listeners = Listeners::bind(cfg)?;
    let token = cfg
        .token_file
        .as_deref()
        .map(BearerToken::load)
        .transpose()
        .map_err(|e| anyhow::anyhow!("api.token_file: {e}"))?
        .map(Arc::new);

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let tls = cfg
        .tls
        .as_ref()
        .map(|(cert, key)| api_tls::server_config(cert, key, Arc::clone(&metrics)))
        .transpose()
        .map_err(anyhow::Error::msg)?;
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

    let mut cgroup_watch = None;
    if let Some(p) = &cgroup {
        datapath::attach_cgroup(&mut ebpf, p)?;
        cgroup_watch =
            Some(CgroupWatch::new(&ebpf, p).context("reading the attached programs' ids")?);
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
        listeners,
        token,
        tls,
        registry,
        metrics,
        ebpf,
        ring,
        hellos,
        stats,
        flow_table,
        tc,
        cgroup_watch,
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
        listeners,
        token,
        tls,
        registry,
        metrics,
        mut ebpf,
        ring,
        hellos,
        stats,
        mut flow_table,
        mut tc,
        cgroup_watch,
        kube,
    } = a;
    let started = Instant::now();
    let now = clock::now_ns();
    let edges = Arc::new(Mutex::new(Edges::new(cfg.edges_max, cfg.idle_timeout)));
    // Kubernetes first, then named CIDRs, then the IP (Resolver).
    let mut sources: Vec<Box<dyn IdentitySource>> = Vec::new();
    let mut kube_sync = None;
    if let Some(k) = kube {
        let k = k.start();
        kube_sync = Some(KubeSync {
            synced: Box::new({
                let k = k.clone();
                move || k.is_synced()
            }),
            timeout: cfg.kubernetes_sync_timeout,
        });
        warn_if_unsynced(k.clone(), cfg.kubernetes_sync_timeout);
        sources.push(Box::new(k));
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
    let readiness = Arc::new(Readiness::new(started, kube_sync));
    // Attached before the runtime started (`attach`).
    readiness.attached();
    let (publisher, snapshots) = snapshot::channel();
    let state = api::ApiState {
        registry: Arc::new(registry),
        edges: snapshots,
        readiness: Arc::clone(&readiness),
        token,
        status: api::AgentStatus {
            started,
            include_loopback: cfg.include_loopback,
            metrics: metrics.clone(),
        },
        page: cfg.page,
    };
    listeners.serve(&state, cfg.http, &metrics, tls);

    let consumer = Consumer {
        pipeline,
        edges,
        publisher,
        readiness: Arc::clone(&readiness),
        metrics: metrics.clone(),
    };
    let mut consumer = tokio::spawn(consumer.run(ring, hellos));
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
                if let Some(w) = &cgroup_watch {
                    check_cgroup_attachment(w, &metrics, &readiness);
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

/// The ring consumer and what it feeds: the pipeline, the edge snapshots
/// the API serves, and readiness.
struct Consumer {
    pipeline: Pipeline,
    edges: Arc<Mutex<Edges>>,
    publisher: snapshot::Publisher,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
}

impl Consumer {
    /// Drains both ring buffers on every wakeup of either and every
    /// `events::POLL`, when the pipeline also does its housekeeping. Only
    /// this task locks the edge table: the API reads the snapshots it
    /// publishes between drains (export/snapshot.rs).
    async fn run(
        mut self,
        events: RingBuf<MapData>,
        hellos: RingBuf<MapData>,
    ) -> Result<(), events::EventsError> {
        let mut rings = events::Rings::new(events, hellos)?;
        let mut tick = tokio::time::interval(events::POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ready = rings.readable() => ready?,
                _ = tick.tick() => self.pipeline.tick(clock::now_ns()),
            }
            let pipeline = &mut self.pipeline;
            let read = rings.drain(|flow, now| pipeline.observe(flow, now));
            self.metrics
                .publish_ring_reading(read.received, read.malformed);
            self.readiness.drained();
            let edges = &self.edges;
            self.publisher.publish_if_wanted(Instant::now(), || {
                edges
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .snapshot(None)
            });
        }
    }
}

/// The API's and the metrics' listeners: one, or two when
/// `metrics.listen` is another address.
struct Listeners {
    api: (SocketAddr, std::net::TcpListener),
    metrics: Option<(SocketAddr, std::net::TcpListener)>,
}

impl Listeners {
    fn bind(cfg: &Config) -> anyhow::Result<Self> {
        let bind = |addr: SocketAddr, key: &str| {
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| (addr, l)))
                .with_context(|| format!("{key}: listening on {addr}"))
        };
        Ok(Self {
            api: bind(cfg.listen, "api.listen")?,
            metrics: match cfg.metrics_listen {
                Some(m) if m != cfg.listen => Some(bind(m, "metrics.listen")?),
                _ => None,
            },
        })
    }

    /// Spawns the servers; `tls` is for the API listener (and `/metrics`
    /// when it shares it). One failing must not stop classification.
    fn serve(
        self,
        state: &api::ApiState,
        limits: http_server::Limits,
        metrics: &Arc<Metrics>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) {
        let (api_addr, api) = self.api;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut servers = vec![];
        match self.metrics {
            None => {
                servers.push(("api", api, api::Serves::Everything, tls));
                log::info!(
                    "metrics on {scheme}://{api_addr}/metrics; edges API on {scheme}://{api_addr}"
                );
            }
            Some((metrics_addr, m)) => {
                servers.push(("api", api, api::Serves::Api, tls));
                servers.push(("metrics", m, api::Serves::Metrics { api: api_addr }, None));
                log::info!(
                    "metrics on http://{metrics_addr}/metrics; edges API on {scheme}://{api_addr}"
                );
            }
        }
        for (name, listener, serves, tls) in servers {
            let app = api::router(state.clone(), serves);
            let metrics = Arc::clone(metrics);
            match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => {
                    tokio::spawn(async move {
                        if let Err(e) = http_server::serve(l, app, limits, name, metrics, tls).await
                        {
                            log::error!(
                                "the HTTP {name} listener stopped: {e}; classification continues"
                            );
                        }
                    });
                }
                Err(e) => log::error!(
                    "the HTTP {name} listener cannot start: {e}; classification continues"
                ),
            }
        }
    }
}

/// Logs once if the Kubernetes lists have not all completed in `timeout`
/// (`/readyz` then says ready, and says this).
fn warn_if_unsynced(k: KubeIdentities, timeout: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        if !k.is_synced() {
            log::warn!(
                "kubernetes identities not synced after {} s (kubernetes.sync_timeout): \
                 ready anyway, peers named by CIDR or IP until the lists complete",
                timeout.as_secs()
            );
        }
    });
}

/// Says in `/readyz` and `plainsight_programs_attached{hook="cgroup"}`
/// whether the cgroup programs are still on their cgroup; logs changes.
fn check_cgroup_attachment(w: &CgroupWatch, m: &Metrics, readiness: &Readiness) {
    let missing = w.missing();
    #[expect(clippy::cast_possible_wrap, reason = "0..=2")]
    m.programs_attached
        .get_or_create(&HookLabels { hook: "cgroup" })
        .set(2 - missing.len() as i64);
    let lost = (!missing.is_empty()).then(|| {
        format!(
            "{} detached from {}",
            missing.join(" and "),
            w.path().display()
        )
    });
    if readiness.lost() != lost {
        match &lost {
            Some(what) => {
                log::error!("{what}: nothing is observed there until plainsight restarts")
            }
            None => log::info!("the cgroup programs are attached again"),
        }
        readiness.set_lost(lost);
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
