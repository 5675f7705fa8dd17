//! The bench run: configurations measured round-robin (each round in a
//! rotated order) so that noise from a busy machine falls on all of them
//! alike; the report gives medians and min–max.

use crate::{floor, peer, pod::RoutedPod, probe, report, test_run};

use agent_common::wire::Stat;
use anyhow::{Context as _, bail};
use plainsight::export::metrics::stat_name;
use plainsight_tests::{Agent, Proc, Side, Topology};
use report::Results;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const IPERF_PORT: u16 = 5201;
const PEER_PORT: u16 = 7000;
/// The same load generator's server inside the observed cgroup (the
/// same-node configurations).
const SAME_NODE_PEER_PORT: u16 = 7001;
/// The same server in the routed pod (the TC same-node configurations).
const POD_PEER_PORT: u16 = 7002;
/// Edges for the memory measurement: EDGE_SOURCES client addresses ×
/// EDGE_PORTS server ports = 10,000 distinct (client, server, port).
const EDGE_SOURCES: (u16, u16) = (10, 109);
const EDGE_PORTS: (u16, u16) = (20000, 20099);
/// Load generator threads (client side) of the rate phases.
const THREADS: usize = 4;
/// Client threads of the maximum-rate new-connection phase: as many
/// connections in flight as two cores can turn over, to get near the
/// 20,000 new flows/s the events-lost target asks for.
const MAX_THREADS: usize = 16;
/// Offered load of the paced new-connection phase: about 40% of what two
/// cores turn over with no agent, so no configuration saturates and the
/// machine's CPU time per connection is what each one costs.
const PACED_RATE: u32 = 10_000;
/// Time for the agent to drain its ring buffer (it reads every 100 ms).
const DRAIN: Duration = Duration::from_millis(300);
/// Time for the agent to publish its kernel counters (every second).
const PUBLISH: Duration = Duration::from_millis(1100);

#[derive(clap::Args)]
pub struct Options {
    /// Smoke run (about a minute): 2 rounds of 1 s phases.
    #[arg(long)]
    quick: bool,
    /// Rounds over all configurations (default 5, quick 2).
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds per measured phase (default 3, quick 1).
    #[arg(long)]
    secs: Option<u64>,
    /// Only these configurations (repeatable; default all). For focused
    /// reruns: the targets need no-agent and ndpiReader alongside.
    #[arg(long = "config", value_name = "CONFIG")]
    configs: Vec<Config>,
    /// Leave the kernel's eBPF run-time statistics off: rates and CPU as in
    /// production (the statistics' clock reads cost every program run),
    /// without the ns/packet rows.
    #[arg(long)]
    no_stats: bool,
    /// Only these phases (repeatable; default all).
    #[arg(long = "phase", value_name = "PHASE")]
    phases: Vec<Phase>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Config {
    #[value(name = "no-agent")]
    NoAgent,
    /// Do-nothing programs on the cgroup hook: the floor under `Cgroup`.
    #[value(name = "floor-cgroup")]
    FloorCgroup,
    #[value(name = "plainsight-cgroup")]
    Cgroup,
    /// Do-nothing programs on TC: the floor under `Tc`.
    #[value(name = "floor-tc")]
    FloorTc,
    #[value(name = "plainsight-tc")]
    Tc,
    #[value(name = "ndpiReader")]
    Ndpi,
    /// Do-nothing programs on the cgroup hook, both ends in the cgroup: the
    /// floor under `CgroupSameNode`.
    #[value(name = "floor-cgroup-same-node")]
    FloorCgroupSameNode,
    /// The cgroup hook with the server in the observed cgroup too: client
    /// and server on one node (pod to pod, app and sidecar), so every
    /// connection is seen at both sockets. New-connection phases only.
    #[value(name = "plainsight-cgroup-same-node")]
    CgroupSameNode,
    /// No observer, traffic routed to the second pod as in the TC
    /// same-node configurations: their baseline (the extra hop costs
    /// without any program).
    #[value(name = "no-agent-routed")]
    NoAgentRouted,
    /// Do-nothing programs on TC on both of the node's veths a pod-to-pod
    /// connection crosses: the floor under `TcSameNode`.
    #[value(name = "floor-tc-same-node")]
    FloorTcSameNode,
    /// TC on the node's veth to the client and to a second pod the server
    /// runs in (`pod.rs`): every packet is seen twice, as pod-to-pod
    /// traffic on one node is. New-connection phases only.
    #[value(name = "plainsight-tc-same-node")]
    TcSameNode,
}

/// The bench's phases, as `--phase` names them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Phase {
    /// iperf3, offloads on and off.
    Bulk,
    /// Kept-alive request/response.
    Rr,
    /// New connections, 4 client threads.
    Crr,
    /// New connections, 16 client threads.
    CrrMax,
    /// New connections at a fixed offered rate: machine CPU per connection.
    CrrPaced,
    /// Agent RSS idle and with 10,000 edges.
    Memory,
    /// Each program path under BPF_PROG_TEST_RUN, statistics off (once,
    /// before the rounds; no traffic).
    TestRun,
}

impl Phase {
    const ALL: [Self; 7] = [
        Self::Bulk,
        Self::Rr,
        Self::Crr,
        Self::CrrMax,
        Self::CrrPaced,
        Self::Memory,
        Self::TestRun,
    ];
}

impl Config {
    pub const ALL: [Self; 11] = [
        Self::NoAgent,
        Self::FloorCgroup,
        Self::Cgroup,
        Self::FloorTc,
        Self::Tc,
        Self::Ndpi,
        Self::FloorCgroupSameNode,
        Self::CgroupSameNode,
        Self::NoAgentRouted,
        Self::FloorTcSameNode,
        Self::TcSameNode,
    ];

    /// The do-nothing programs on the same hook.
    pub fn floor(self) -> Option<Self> {
        match self {
            Self::Cgroup => Some(Self::FloorCgroup),
            Self::Tc => Some(Self::FloorTc),
            Self::CgroupSameNode => Some(Self::FloorCgroupSameNode),
            Self::TcSameNode => Some(Self::FloorTcSameNode),
            _ => None,
        }
    }

    /// Both ends of each connection observed (the peer server inside the
    /// cgroup, or in the routed pod for TC): only the new-connection
    /// phases run.
    pub fn same_node(self) -> bool {
        matches!(
            self,
            Self::FloorCgroupSameNode
                | Self::CgroupSameNode
                | Self::NoAgentRouted
                | Self::FloorTcSameNode
                | Self::TcSameNode
        )
    }

    /// The TC configurations whose traffic goes to the routed pod.
    fn routed(self) -> bool {
        matches!(
            self,
            Self::NoAgentRouted | Self::FloorTcSameNode | Self::TcSameNode
        )
    }

    /// The peer server the load generator connects to.
    fn peer_port(self) -> u16 {
        match self {
            Self::FloorCgroupSameNode | Self::CgroupSameNode => SAME_NODE_PEER_PORT,
            Self::NoAgentRouted | Self::FloorTcSameNode | Self::TcSameNode => POD_PEER_PORT,
            _ => PEER_PORT,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::NoAgent => "no-agent",
            Self::FloorCgroup => "floor-cgroup",
            Self::FloorTc => "floor-tc",
            Self::Cgroup => "plainsight-cgroup",
            Self::Tc => "plainsight-tc",
            Self::Ndpi => "ndpiReader",
            Self::FloorCgroupSameNode => "floor-cgroup-same-node",
            Self::CgroupSameNode => "plainsight-cgroup-same-node",
            Self::NoAgentRouted => "no-agent-routed",
            Self::FloorTcSameNode => "floor-tc-same-node",
            Self::TcSameNode => "plainsight-tc-same-node",
        }
    }
}

/// What watches the traffic in one configuration; stopped on drop.
enum Observer {
    Nothing,
    Agent(Agent),
    Floor(Proc),
    Ndpi(Proc),
}

impl Observer {
    fn start(
        cfg: Config,
        t: &Topology,
        pod: Option<&RoutedPod>,
        exe: &Path,
    ) -> anyhow::Result<Self> {
        // TC on both of the node's veths a pod-to-pod connection crosses.
        let both_veths = || -> anyhow::Result<[&str; 4]> {
            let pod = pod.context("the TC same-node configurations need the routed pod")?;
            Ok(["--interface", &t.server_if, "--interface", &pod.node_if])
        };
        Ok(match cfg {
            Config::NoAgent | Config::NoAgentRouted => Self::Nothing,
            Config::FloorCgroup | Config::FloorCgroupSameNode => {
                let cg = t.cgroup.to_str().context("cgroup path is UTF-8")?;
                Self::Floor(start_floor(t, None, exe, &["--cgroup", cg])?)
            }
            Config::FloorTc => Self::Floor(start_floor(
                t,
                Some(Side::Server),
                exe,
                &["--interface", &t.server_if],
            )?),
            Config::Cgroup | Config::CgroupSameNode => Self::Agent(Agent::on_cgroup(t)),
            Config::Tc => Self::Agent(Agent::on_tc(t)),
            Config::FloorTcSameNode => {
                Self::Floor(start_floor(t, Some(Side::Server), exe, &both_veths()?)?)
            }
            Config::TcSameNode => {
                Self::Agent(Agent::start(Some(t.ns(Side::Server)), 9477, &both_veths()?))
            }
            Config::Ndpi => {
                let mut p = t.spawn(
                    Side::Server,
                    false,
                    &["ndpiReader", "-q", "-i", &t.server_if],
                );
                // Give libpcap time to open the capture.
                std::thread::sleep(Duration::from_secs(1));
                if let Some(status) = p.child.try_wait()? {
                    bail!("ndpiReader -i {} exited with {status}", t.server_if);
                }
                Self::Ndpi(p)
            }
        })
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Self::Nothing => None,
            Self::Agent(a) => Some(a.proc.pid()),
            Self::Floor(p) | Self::Ndpi(p) => Some(p.pid()),
        }
    }

    /// The process holding the eBPF programs, if any.
    fn programs_pid(&self) -> Option<u32> {
        match self {
            Self::Agent(a) => Some(a.proc.pid()),
            Self::Floor(p) => Some(p.pid()),
            Self::Nothing | Self::Ndpi(_) => None,
        }
    }

    fn agent(&self) -> Option<&Agent> {
        match self {
            Self::Agent(a) => Some(a),
            _ => None,
        }
    }
}

/// `plainsight-bench floor`, once it says its programs are attached: in `side`'s
/// namespace for TC (the interface lives there), in ours for the cgroup
/// hook (`ip netns exec` remounts /sys, hiding the cgroup; as for the agent).
fn start_floor(
    t: &Topology,
    side: Option<Side>,
    exe: &Path,
    args: &[&str],
) -> anyhow::Result<Proc> {
    let log =
        std::env::temp_dir().join(format!("plainsight-bench-floor-{}.log", std::process::id()));
    let exe_s = exe.to_str().context("bench path is UTF-8")?;
    let mut argv = vec![exe_s, "floor"];
    argv.extend(args);
    let mut p = match side {
        Some(side) => t.spawn_logged(side, &argv, &log),
        None => {
            let out = std::fs::File::create(&log)
                .with_context(|| format!("creating {}", log.display()))?;
            let child = std::process::Command::new(exe)
                .args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .context("starting the floor")?;
            Proc::from_child(child, "floor")
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        if said.contains(floor::READY) {
            return Ok(p);
        }
        if let Some(status) = p.child.try_wait()? {
            bail!(
                "floor {} exited with {status}: {}",
                args.join(" "),
                said.trim()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "floor {} did not attach within 10 s: {}",
                args.join(" "),
                said.trim()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Counters read before and after a phase.
struct Snapshot {
    cpu: probe::CpuTimes,
    process_cpu: Option<f64>,
    progs: std::collections::BTreeMap<u32, probe::ProgRun>,
    /// What the agent reports (plainsight only).
    events: Option<AgentCounters>,
}

#[derive(Clone, Copy)]
struct AgentCounters {
    received: f64,
    lost: f64,
    kernel_lost: f64,
    /// Payload segments staged for the classifier: one classifier program
    /// run (tail call) each.
    inspected: f64,
    /// Segments that took the long way (the flow table), and node-local
    /// segments whose second sighting skipped it (`SEEN`).
    long_way: f64,
    second_sightings: f64,
}

impl Snapshot {
    /// At the start of a phase: the agent's CPU is read after its /metrics
    /// scrape, so the scrape is not charged to the phase.
    fn take(obs: &Observer) -> anyhow::Result<Self> {
        let events = Self::scrape(obs);
        let process_cpu = obs.pid().map(probe::process_cpu_secs).transpose()?;
        Self::with(obs, events, process_cpu)
    }

    /// At the end of a phase: the agent's CPU is read before the scrape.
    fn take_end(obs: &Observer) -> anyhow::Result<Self> {
        let process_cpu = obs.pid().map(probe::process_cpu_secs).transpose()?;
        let events = Self::scrape(obs);
        Self::with(obs, events, process_cpu)
    }

    fn with(
        obs: &Observer,
        events: Option<AgentCounters>,
        process_cpu: Option<f64>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            cpu: probe::cpu_times()?,
            process_cpu,
            progs: match obs.programs_pid() {
                Some(pid) => probe::prog_runs(pid)?,
                None => Default::default(),
            },
            events,
        })
    }

    fn scrape(obs: &Observer) -> Option<AgentCounters> {
        obs.agent().map(|a| {
            let m = a.metrics();
            let sum = |name: &str, counter: Option<&str>| -> f64 {
                m.iter()
                    .filter(|s| {
                        s.name == name
                            && counter.is_none_or(|c| {
                                s.labels.get("counter").map(String::as_str) == Some(c)
                            })
                    })
                    .map(|s| s.value)
                    .sum()
            };
            AgentCounters {
                received: sum("plainsight_events_received_total", None),
                lost: sum("plainsight_events_lost_total", None),
                kernel_lost: sum("plainsight_kernel_total", Some("events_lost")),
                inspected: sum(
                    "plainsight_kernel_total",
                    Some("payload_segments_inspected"),
                ),
                // The TCP total counts every segment once: those that
                // took a shortcut are in their own counters.
                long_way: sum("plainsight_kernel_total", Some(stat_name(Stat::TcpPackets)))
                    - Stat::SHORTCUTS
                        .iter()
                        .map(|s| sum("plainsight_kernel_total", Some(stat_name(*s))))
                        .sum::<f64>(),
                second_sightings: sum(
                    "plainsight_kernel_total",
                    Some(stat_name(Stat::SecondSightings)),
                ),
            }
        })
    }
}

struct Bench<'a> {
    t: &'a Topology,
    /// The second pod of the TC same-node configurations, if they run.
    pod: Option<&'a RoutedPod>,
    exe: PathBuf,
    secs: u64,
    stop: Arc<AtomicBool>,
    results: Results,
    /// The round phases to run (`--phase`).
    phases: Vec<Phase>,
    /// eBPF run-time statistics on (not `--no-stats`).
    stats: bool,
    /// The veth ends whose offloads the offloads-off phases turn off.
    offloads: Vec<(Side, String)>,
    /// The peer server of the configuration in its round.
    peer_addr: std::net::Ipv4Addr,
    peer_port: u16,
}

pub fn run(bin: &Path, opts: &Options) -> anyhow::Result<()> {
    let rounds = opts.rounds.unwrap_or(if opts.quick { 2 } else { 5 });
    let secs = opts.secs.unwrap_or(if opts.quick { 1 } else { 3 });
    if rounds == 0 || secs == 0 {
        bail!("--rounds and --secs must be at least 1");
    }
    let configs: Vec<Config> = Config::ALL
        .into_iter()
        .filter(|c| opts.configs.is_empty() || opts.configs.contains(c))
        .collect();
    let phases = |p: Phase| opts.phases.is_empty() || opts.phases.contains(&p);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // Ctrl-C must unwind through the guards (namespaces, cgroup, agents,
    // servers), not kill us where we stand.
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    // SAFETY: no other thread reads the environment yet; the harness reads
    // these to find the binary and to run the agent at its production log
    // level (the tests' per-flow debug lines would be measured as its CPU).
    unsafe {
        std::env::set_var("PLAINSIGHT_BIN", bin);
        std::env::set_var(plainsight_tests::agent::RUST_LOG_VAR, "info");
    }
    let machine = probe::machine();
    eprintln!(
        "bench: {rounds} rounds × {} configurations, {secs} s phases, on {} ({} CPUs, load {})",
        configs.len(),
        machine["cpu_model"].as_str().unwrap_or("?"),
        machine["cpus"],
        machine["load_avg"].as_str().unwrap_or("?")
    );
    let started = Instant::now();
    let mut results = Results::default();
    if phases(Phase::TestRun) {
        // Before the live phases turn the run-time statistics on: they are
        // what this phase leaves out.
        eprintln!("bench: test runs (BPF_PROG_TEST_RUN, run-time statistics off)");
        test_run::run(&configs, &mut results)?;
    }
    let live: Vec<Phase> = Phase::ALL
        .into_iter()
        .filter(|p| *p != Phase::TestRun && phases(*p))
        .collect();
    if !live.is_empty() {
        results = on_veth(&configs, live, rounds, secs, !opts.no_stats, stop, results)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let settings = serde_json::json!({
        "rounds": rounds,
        "phase_secs": secs,
        "quick": opts.quick,
        "bpf_stats": !opts.no_stats,
        "configs": configs.iter().map(|c| c.name()).collect::<Vec<_>>(),
        "elapsed_secs": elapsed,
    });
    report::finish(&results, machine, settings)
}

/// The live phases: real traffic between the bench's namespaces, each
/// configuration in turn, run-time statistics on unless `stats` is false.
fn on_veth(
    configs: &[Config],
    phases: Vec<Phase>,
    rounds: usize,
    secs: u64,
    stats: bool,
    stop: Arc<AtomicBool>,
    results: Results,
) -> anyhow::Result<Results> {
    let _stats = if stats {
        Some(probe::BpfStats::enable()?)
    } else {
        None
    };
    let t = Topology::new();
    prepare(&t)?;
    let exe = std::env::current_exe().context("finding the bench binary")?;
    let exe_s = exe.to_str().context("bench path is UTF-8")?.to_owned();
    let server_threads = (2 * MAX_THREADS).to_string();
    let _servers = [
        t.spawn(
            Side::Server,
            false,
            &["iperf3", "-s", "-p", &IPERF_PORT.to_string()],
        ),
        t.spawn(
            Side::Server,
            false,
            &[
                &exe_s,
                "peer",
                "server",
                "--port",
                &PEER_PORT.to_string(),
                "--threads",
                &server_threads,
                "--extra",
                &format!("{}-{}", EDGE_PORTS.0, EDGE_PORTS.1),
            ],
        ),
        // In the cgroup: a connection to it is seen at both its sockets.
        t.spawn(
            Side::Server,
            true,
            &[
                &exe_s,
                "peer",
                "server",
                "--port",
                &SAME_NODE_PEER_PORT.to_string(),
                "--threads",
                &server_threads,
            ],
        ),
    ];
    t.wait_listening(IPERF_PORT);
    t.wait_listening(PEER_PORT);
    t.wait_listening(SAME_NODE_PEER_PORT);
    t.wait_listening(EDGE_PORTS.1);
    // The second pod (and its server) only when a TC same-node
    // configuration runs: it turns forwarding on in the server namespace.
    let pod = if configs.iter().any(|c| c.routed()) {
        let pod = RoutedPod::new(&t)?;
        let server = pod.spawn(&[
            &exe_s,
            "peer",
            "server",
            "--port",
            &POD_PEER_PORT.to_string(),
            "--threads",
            &server_threads,
        ])?;
        pod.wait_listening(POD_PEER_PORT)?;
        Some((pod, server))
    } else {
        None
    };

    let memory = phases.contains(&Phase::Memory);
    let mut b = Bench {
        t: &t,
        pod: pod.as_ref().map(|(p, _)| p),
        exe,
        secs,
        stop,
        results,
        phases,
        stats,
        offloads: vec![
            (Side::Client, t.client_if.clone()),
            (Side::Server, t.server_if.clone()),
        ],
        peer_addr: t.server_ip,
        peer_port: PEER_PORT,
    };
    for round in 0..rounds {
        for i in 0..configs.len() {
            let cfg = configs[(round + i) % configs.len()];
            b.check()?;
            eprintln!("bench: round {}/{rounds}: {}", round + 1, cfg.name());
            b.round(cfg)
                .with_context(|| format!("round {} of {}", round + 1, cfg.name()))?;
        }
    }
    let hooks = [Config::Cgroup, Config::Tc].into_iter();
    for cfg in hooks.filter(|c| memory && configs.contains(c)) {
        b.check()?;
        eprintln!("bench: memory with 10,000 edges: {}", cfg.name());
        b.memory(cfg)
            .with_context(|| format!("memory of {}", cfg.name()))?;
    }
    Ok(b.results)
}

/// Client-side addresses for the edge workload, and a wide ephemeral port
/// range for the connection-rate runs (both per namespace).
fn prepare(t: &Topology) -> anyhow::Result<()> {
    let batch: String = (EDGE_SOURCES.0..=EDGE_SOURCES.1)
        .map(|o| format!("addr add 10.77.0.{o}/32 dev {}\n", t.client_if))
        .collect();
    let mut child = std::process::Command::new("ip")
        .args(["-n", &t.client_ns, "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("running ip -batch")?;
    use std::io::Write as _;
    child
        .stdin
        .take()
        .context("ip stdin")?
        .write_all(batch.as_bytes())?;
    if !child.wait()?.success() {
        bail!("adding the edge client addresses failed");
    }
    sysctl(t, Side::Client, "net.ipv4.ip_local_port_range=1024 65535")?;
    // The server closes first, so its sockets would sit in TIME_WAIT for
    // 60 s and be reaped (timer, unhash, free) during whichever
    // configuration runs a minute later: one configuration's connections
    // would be paid for in another's phase. Without TIME_WAIT in the
    // server namespace each phase pays for its own.
    sysctl(t, Side::Server, "net.ipv4.tcp_max_tw_buckets=0")
}

/// Sets one sysctl (`key=value`) in `side`'s namespace.
fn sysctl(t: &Topology, side: Side, setting: &str) -> anyhow::Result<()> {
    let out = t.run(side, false, &["sysctl", "-qw", setting]);
    if !out.status.success() {
        bail!(
            "sysctl {setting}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Bench<'_> {
    fn check(&self) -> anyhow::Result<()> {
        if self.stop.load(Ordering::SeqCst) {
            bail!("interrupted; cleaned up");
        }
        Ok(())
    }

    fn record(&mut self, cfg: Config, key: &str, value: f64) {
        self.results.push(cfg.name(), key, value);
    }

    /// One configuration through every phase.
    fn round(&mut self, cfg: Config) -> anyhow::Result<()> {
        let obs = Observer::start(cfg, self.t, self.pod, &self.exe)?;
        std::thread::sleep(Duration::from_millis(500));
        let names = probe::prog_names(Snapshot::take(&obs)?.progs.into_keys());
        self.peer_port = cfg.peer_port();
        self.peer_addr = match (cfg.routed(), self.pod) {
            (true, Some(pod)) => pod.ip,
            _ => self.t.server_ip,
        };
        let phases = self.phases.clone();
        let runs = move |p: Phase| {
            phases.contains(&p)
                && (!cfg.same_node() || matches!(p, Phase::Crr | Phase::CrrMax | Phase::CrrPaced))
        };
        let bulk = if runs(Phase::Bulk) {
            &[(true, "bulk_offload_on"), (false, "bulk_offload_off")][..]
        } else {
            &[]
        };
        for &(offloads_on, phase) in bulk {
            self.set_offloads(offloads_on)?;
            let before = Snapshot::take(&obs)?;
            let gbit = self.iperf();
            self.set_offloads(true)?;
            let gbit = gbit?;
            let after = Snapshot::take(&obs)?;
            self.record(cfg, &format!("{phase}_gbit_s"), gbit);
            let bpf_secs = self.record_progs(cfg, phase, &names, &before, &after, None);
            // One long-lived flow: what watching it costs per GB moved
            // (plainsight: its programs and its process; ndpiReader: its
            // process, capture softirq not included).
            if let (Some(b), Some(a), true) = (
                before.process_cpu,
                after.process_cpu,
                self.observer_cpu_known(cfg),
            ) {
                let gb = (gbit * self.secs as f64 / 8.0).max(1e-9);
                self.record(
                    cfg,
                    &format!("cpu_observer_ms_per_gb.{phase}"),
                    (a - b + bpf_secs) * 1e3 / gb,
                );
            }
            self.check()?;
        }

        let mut said = Vec::new();
        if runs(Phase::Rr) {
            let rr = self.peer("rr", THREADS)?.rate();
            self.record(cfg, "rr_per_s", rr);
            said.push(format!("{rr:.0} req/s"));
            self.check()?;
        }
        if self.phases.contains(&Phase::Crr) {
            let crr = self.new_connections(cfg, &obs, &names, "crr", THREADS)?;
            said.push(format!("{crr:.0} new connections/s ({THREADS} threads)"));
            self.check()?;
        }
        if self.phases.contains(&Phase::CrrMax) {
            let max = self.new_connections(cfg, &obs, &names, "crr_max", MAX_THREADS)?;
            said.push(format!("{max:.0}/s ({MAX_THREADS} threads)"));
            self.check()?;
        }
        if self.phases.contains(&Phase::CrrPaced) {
            let us = self.paced_connections(cfg, &obs, &names)?;
            said.push(format!(
                "{us:.1} µs machine CPU per connection at {PACED_RATE}/s"
            ));
        }
        if let Some(pid) = obs.pid() {
            let (_, hwm) = probe::memory_mib(pid)?;
            self.record(cfg, "peak_rss_mib", hwm);
        }
        eprintln!("bench:   {}", said.join(", "));
        Ok(())
    }

    /// One new-connection phase with `threads` clients: the rate, the eBPF
    /// cost per flow, the observer's CPU per 10,000 flows (`crr` only: the
    /// phase compared with ndpiReader), and the verdicts read and lost.
    /// Returns the connection rate.
    fn new_connections(
        &mut self,
        cfg: Config,
        obs: &Observer,
        names: &std::collections::BTreeMap<u32, String>,
        phase: &str,
        threads: usize,
    ) -> anyhow::Result<f64> {
        let before = Snapshot::take(obs)?;
        let crr = self.peer("crr", threads)?;
        // Verdicts are read within DRAIN, the kernel counters (classifier
        // runs, kernel events lost) published within PUBLISH.
        std::thread::sleep(PUBLISH);
        let after = Snapshot::take_end(obs)?;
        let flows = crr.ops as f64;
        self.record(cfg, &format!("{phase}_per_s"), crr.rate());
        self.record(cfg, &format!("{phase}_errors"), crr.errors as f64);
        let bpf_secs = self.record_progs(cfg, phase, names, &before, &after, Some(flows));
        if let (Some(b), Some(a)) = (before.events, after.events) {
            let per_flow = |v: f64| v / flows.max(1.0);
            self.record(
                cfg,
                &format!("flows_classified_pct.{phase}"),
                100.0 * per_flow(a.received - b.received),
            );
            self.record(
                cfg,
                &format!("classifier_runs_per_flow.{phase}"),
                per_flow(a.inspected - b.inspected),
            );
            self.record(
                cfg,
                &format!("long_way_per_flow.{phase}"),
                per_flow(a.long_way - b.long_way),
            );
            self.record(
                cfg,
                &format!("second_sightings_per_flow.{phase}"),
                per_flow(a.second_sightings - b.second_sightings),
            );
            self.record(cfg, &format!("events_lost.{phase}"), a.lost - b.lost);
            self.record(
                cfg,
                &format!("kernel_events_lost.{phase}"),
                a.kernel_lost - b.kernel_lost,
            );
        }
        if phase != "crr" {
            return Ok(crr.rate());
        }
        let per_10k = |secs: f64| secs * 1e3 * 10_000.0 / flows.max(1.0);
        let softirq = after.cpu.softirq - before.cpu.softirq;
        let process = match (before.process_cpu, after.process_cpu) {
            (Some(b), Some(a)) => {
                self.record(cfg, "cpu_process_ms_per_10k_flows", per_10k(a - b));
                a - b
            }
            _ => 0.0,
        };
        self.record(cfg, "cpu_softirq_ms_per_10k_flows", per_10k(softirq));
        self.record(
            cfg,
            "cpu_softirq_plus_process_ms_per_10k_flows",
            per_10k(softirq + process),
        );
        if !matches!(cfg, Config::NoAgent | Config::NoAgentRouted) && self.observer_cpu_known(cfg) {
            // What the observer itself costs: its process, plus (for
            // plainsight) its kernel programs' run time, which the kernel
            // measures exactly. ndpiReader's capture cost in the kernel is
            // not included, so this favours ndpiReader.
            self.record(
                cfg,
                "cpu_observer_ms_per_10k_flows",
                per_10k(process + bpf_secs),
            );
        }
        Ok(crr.rate())
    }

    /// Whether the observer's whole cost is measured: plainsight's (and the
    /// floor's) programs run in the kernel, where only the run-time
    /// statistics see them.
    fn observer_cpu_known(&self, cfg: Config) -> bool {
        self.stats
            || !matches!(
                cfg,
                Config::Cgroup
                    | Config::Tc
                    | Config::FloorCgroup
                    | Config::FloorTc
                    | Config::CgroupSameNode
                    | Config::FloorCgroupSameNode
                    | Config::TcSameNode
                    | Config::FloorTcSameNode
            )
    }

    /// New connections offered at `PACED_RATE`: the machine's busy CPU time
    /// per connection (all processes, softirq, eBPF). Below saturation, so
    /// unlike the rate phases it is not bent by how two busy cores happen
    /// to schedule client, server and observer. Returns µs/connection.
    fn paced_connections(
        &mut self,
        cfg: Config,
        obs: &Observer,
        names: &std::collections::BTreeMap<u32, String>,
    ) -> anyhow::Result<f64> {
        let before = Snapshot::take(obs)?;
        let o = self.peer_with("crr", THREADS, &["--rate", &PACED_RATE.to_string()])?;
        // The observer finishes its share (reading the last verdicts).
        std::thread::sleep(DRAIN);
        let after = Snapshot::take_end(obs)?;
        let conns = (o.ops as f64).max(1.0);
        let us = after.cpu.busy_since(&before.cpu) * 1e6 / conns;
        self.record(cfg, "crr_paced_per_s", o.rate());
        self.record(cfg, "cpu_us_per_conn.crr_paced", us);
        self.record_progs(cfg, "crr_paced", names, &before, &after, Some(conns));
        Ok(us)
    }

    /// Records ns/run per program and, summed over the programs, ns per
    /// packet (and per flow when `flows` is given); returns the programs'
    /// total run time in seconds.
    fn record_progs(
        &mut self,
        cfg: Config,
        phase: &str,
        names: &std::collections::BTreeMap<u32, String>,
        before: &Snapshot,
        after: &Snapshot,
        flows: Option<f64>,
    ) -> f64 {
        let delta = probe::prog_delta(names, &before.progs, &after.progs);
        if delta.is_empty() {
            return 0.0;
        }
        let (mut ns, mut count) = (0u64, 0u64);
        for (name, d) in &delta {
            self.record(
                cfg,
                &format!("prog.{phase}.{name}.ns_per_run"),
                d.ns as f64 / d.count as f64,
            );
            ns += d.ns;
            count += d.count;
        }
        self.record(
            cfg,
            &format!("bpf_ns_per_packet.{phase}"),
            ns as f64 / count as f64,
        );
        if let Some(flows) = flows {
            self.record(
                cfg,
                &format!("bpf_ns_per_flow.{phase}"),
                ns as f64 / flows.max(1.0),
            );
            self.record(
                cfg,
                &format!("bpf_packets_per_flow.{phase}"),
                count as f64 / flows.max(1.0),
            );
        }
        ns as f64 / 1e9
    }

    /// TSO, GSO and GRO off on both veth ends, or back to the defaults.
    fn set_offloads(&self, on: bool) -> anyhow::Result<()> {
        for (side, dev) in &self.offloads {
            // veth defaults: TSO and GSO on, GRO off (it needs NAPI/XDP).
            let (tso, gro) = if on { ("on", "off") } else { ("off", "off") };
            let out = self.t.run(
                *side,
                false,
                &["ethtool", "-K", dev, "tso", tso, "gso", tso, "gro", gro],
            );
            if !out.status.success() {
                bail!(
                    "ethtool -K {dev}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Ok(())
    }

    /// One iperf3 stream from the client (in the cgroup); Gbit/s received.
    fn iperf(&self) -> anyhow::Result<f64> {
        let server = self.t.server_ip.to_string();
        let out = self.t.run(
            Side::Client,
            true,
            &[
                "iperf3",
                "-c",
                &server,
                "-p",
                &IPERF_PORT.to_string(),
                "-t",
                &self.secs.to_string(),
                "-J",
            ],
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "iperf3 output: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })?;
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .map(|bps| bps / 1e9)
            .with_context(|| format!("iperf3 reported no throughput: {}", v["error"]))
    }

    /// Runs the load generator's `mode` in the client namespace (in the
    /// cgroup) for the phase time.
    fn peer(&self, mode: &str, threads: usize) -> anyhow::Result<peer::Outcome> {
        self.peer_with(mode, threads, &[])
    }

    /// A `--secs` client run against the peer server, with `extra` flags.
    fn peer_with(
        &self,
        mode: &str,
        threads: usize,
        extra: &[&str],
    ) -> anyhow::Result<peer::Outcome> {
        let (server, port) = (self.peer_addr.to_string(), self.peer_port.to_string());
        let (threads, secs) = (threads.to_string(), self.secs.to_string());
        let mut args = vec![
            mode,
            "--server",
            &server,
            "--port",
            &port,
            "--threads",
            &threads,
            "--secs",
            &secs,
        ];
        args.extend(extra);
        self.peer_args(&args)
    }

    fn peer_args(&self, args: &[&str]) -> anyhow::Result<peer::Outcome> {
        let exe = self.exe.to_str().context("bench path is UTF-8")?;
        let argv: Vec<&str> = [exe, "peer"]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let out = self.t.run(Side::Client, true, &argv);
        if !out.status.success() {
            bail!(
                "peer {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let o = peer::Outcome::parse(&String::from_utf8_lossy(&out.stdout))?;
        if o.ops == 0 {
            bail!("peer {args:?} completed no requests ({} errors)", o.errors);
        }
        Ok(o)
    }

    /// Agent memory idle and with 10,000 live edges (one fresh agent).
    fn memory(&mut self, cfg: Config) -> anyhow::Result<()> {
        let obs = Observer::start(cfg, self.t, None, &self.exe)?;
        let agent = obs.agent().context("memory is measured for plainsight")?;
        let pid = agent.proc.pid();
        std::thread::sleep(Duration::from_secs(1));
        let (rss, hwm) = probe::memory_mib(pid)?;
        self.record(cfg, "idle_rss_mib", rss);
        self.record(cfg, "idle_hwm_mib", hwm);
        let before = Snapshot::take(&obs)?;
        let sources = format!("{}-{}", EDGE_SOURCES.0, EDGE_SOURCES.1);
        let ports = format!("{}-{}", EDGE_PORTS.0, EDGE_PORTS.1);
        let o = self.peer_args(&[
            "edges",
            "--server",
            &self.t.server_ip.to_string(),
            "--source-net",
            "10.77.0.0",
            "--sources",
            &sources,
            "--ports",
            &ports,
            "--threads",
            &THREADS.to_string(),
        ])?;
        // Wait for the agent to have read every verdict.
        let deadline = Instant::now() + Duration::from_secs(10);
        let after = loop {
            std::thread::sleep(DRAIN);
            let s = Snapshot::take(&obs)?;
            let got =
                s.events.map_or(0.0, |e| e.received) - before.events.map_or(0.0, |e| e.received);
            if got >= o.ops as f64 || Instant::now() > deadline {
                break s;
            }
        };
        let edges = agent
            .metrics()
            .iter()
            .filter(|s| s.name == "plainsight_flows_total")
            .count();
        let (rss, hwm) = probe::memory_mib(pid)?;
        self.record(cfg, "edges", edges as f64);
        self.record(cfg, "edge_connections", o.ops as f64);
        self.record(cfg, "edges_rss_mib", rss);
        self.record(cfg, "edges_hwm_mib", hwm);
        if let (Some(b), Some(a)) = (before.events, after.events) {
            self.record(cfg, "edges_events_lost", a.lost - b.lost);
        }
        eprintln!(
            "bench:   {edges} edges from {} connections ({} errors): RSS {rss:.1} MiB, peak {hwm:.1} MiB",
            o.ops, o.errors
        );
        Ok(())
    }
}
