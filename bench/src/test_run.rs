//! `cargo xtask bench --phase test-run`: each program path timed by the
//! kernel with BPF_PROG_TEST_RUN, free of the run-time statistics.
//!
//! The live phases read run_time_ns / run_cnt, and with statistics on every
//! run also pays two sched_clock reads and the accounting: 60–130 ns on a
//! program that does nothing, more than plainsight's own fast-path work. A
//! test run with `repeat` times a whole batch with one pair of clock reads
//! and reports the mean per run (whole ns), so that overhead is gone.
//!
//! Paths whose packet changes the state it runs on (a new flow, a flow's
//! first payload) cannot be repeated: they are single runs over many
//! distinct flows. Each single run is still timed by the kernel, but with
//! one clock read inside it, which the floor's row (the do-nothing program
//! through the same runs) shows.

use crate::harness::Config;
use crate::{floor, probe, report::Results};
use agent_common::wire::{DEFAULT_MAX_FLOWS, Stat};
use anyhow::{Context as _, anyhow, bail};
use aya::programs::{Program, TestRun as _, TestRunOptions};
use plainsight::kernel::datapath::{self, Datapath, LoadOptions};
use plainsight_tests::packets::{ACK, FIN, PSH, RST, SYN, Segment};

/// Runs per repeated batch, and batches per path (median and min–max).
const REPEAT: u32 = 100_000;
const BATCHES: usize = 5;
/// Distinct flows per batch of the single-run paths.
const FLOWS: u16 = 2_000;

/// The hook programs measured, with their configuration's column: the
/// packet-receiving TC program and the sending cgroup program (the others
/// run the same code).
const HOOKS: [(Config, &str); 2] = [
    (Config::Tc, "tc_ingress"),
    (Config::Cgroup, "cgroup_egress"),
];

const C: &str = "10.1.0.1";
const S: &str = "10.1.0.2";
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
const REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
/// curl's request with six common headers (~400 bytes) before a bearer
/// token (agent-common's curl-7.88-http-bearer-after-headers fixture).
const AUTH_REQUEST: &[u8] = include_bytes!(
    "../../agent-common/tests/fixtures/curl-7.88-http-bearer-after-headers.c2s.0.bin"
);

/// Measures every path of the selected configurations into `results`, on a
/// thread of its own pinned to one CPU (the programs keep per-CPU state; the
/// pin must not leak into the processes the bench starts later).
pub fn run(configs: &[Config], results: &mut Results) -> anyhow::Result<()> {
    std::thread::scope(|s| {
        s.spawn(|| {
            plainsight_tests::pin_to_this_cpu().context("pinning the test-run thread")?;
            for (cfg, program) in HOOKS {
                let floor_cfg = cfg.floor().context("plainsight hooks have a floor")?;
                let (floor, _) = floor::PROGRAMS
                    .iter()
                    .find(|(_, real)| *real == program)
                    .with_context(|| format!("no floor program for {program}"))?;
                let progs: Vec<Measured> = [(cfg, program, false), (floor_cfg, *floor, true)]
                    .into_iter()
                    .filter(|(c, _, _)| configs.contains(c))
                    .map(|(cfg, name, is_floor)| Measured {
                        cfg,
                        name,
                        is_floor,
                    })
                    .collect();
                if !progs.is_empty() {
                    measure_hook(&progs, results)
                        .with_context(|| format!("test runs of {program}"))?;
                }
            }
            Ok(())
        })
        .join()
        .map_err(|_| anyhow!("the test-run thread panicked"))?
    })
}

/// One program whose rows go in `cfg`'s column.
struct Measured {
    cfg: Config,
    name: &'static str,
    /// A do-nothing program: it keeps no state, so the flow-state checks
    /// are for the others.
    is_floor: bool,
}

fn measure_hook(progs: &[Measured], results: &mut Results) -> anyhow::Result<()> {
    let mut k = Kernel::load(progs)?;
    let mut record = |m: &Measured, key: &str, v: f64| {
        results.push(m.cfg.name(), &format!("test_run.{key}"), v);
    };

    // Skips the flow table on both hooks.
    let ack = Segment::new(C, 40000, S, 80, 1001, ACK, b"").frame();
    k.repeated(progs, &ack, "pure_ack", &mut record)?;

    // A decided flow's client FIN, repeated (the server's never comes, so
    // the entry stays): FINs never take a shortcut, and a repeated data
    // segment would (TC's recent-flow slot takes a segment seen again, as
    // on both pods' veths). The flow-table lookup and the close
    // bookkeeping; the counters confirm no shortcut was taken.
    let before = k.stats();
    for m in progs.iter().filter(|m| !m.is_floor) {
        k.handshake_and_request(m.name, 40000)?;
    }
    let fin = Segment::new(C, 40000, S, 80, 1001 + len(REQUEST), ACK | FIN, b"").frame();
    k.repeated(progs, &fin, "decided_lookup", &mut record)?;
    let plainsight = progs.iter().filter(|m| !m.is_floor).count() as u64;
    k.expect(
        &before,
        Stat::VerdictsEmitted,
        plainsight,
        "a verdict per setup flow",
    )?;
    k.expect(
        &before,
        Stat::RecentFastPath,
        0,
        "no TC recent-flow shortcut",
    )?;
    k.expect(
        &before,
        Stat::SocketFastPath,
        0,
        "no cgroup socket shortcut",
    )?;
    k.expect(&before, Stat::SecondSightings, 0, "no second sighting")?;

    // The same flow's next segments in order, one run each: on TC each
    // continues the recent-flow slot, a decided flow's fast path there. The
    // cgroup hook's fast path, the socket mark, needs an established socket,
    // which test runs never have: it takes the lookup again.
    // One segment first fills the slot (the FIN above took no shortcut).
    let first = 1001 + 2 * len(REQUEST);
    let prime = Segment::new(C, 40000, S, 80, first - len(REQUEST), ACK | PSH, REQUEST).frame();
    for m in progs.iter().filter(|m| !m.is_floor) {
        k.run(m.name, &prime, 1)?;
    }
    let before = k.stats();
    k.singles(progs, ["in_order.ns_per_run"], &mut record, |k, prog, n| {
        let seq = first + n * len(REQUEST);
        let seg = Segment::new(C, 40000, S, 80, seq, ACK | PSH, REQUEST);
        Ok([k.run(prog, &seg.frame(), 1)?])
    })?;
    let tc = progs.iter().any(|m| !m.is_floor && m.cfg == Config::Tc);
    let steps = BATCHES as u64 * u64::from(FLOWS);
    let shortcuts = if tc { steps } else { 0 };
    k.expect(
        &before,
        Stat::RecentFastPath,
        shortcuts,
        "TC: every run continues the slot",
    )?;

    // The same again, each segment seen twice in a row, as TC on both
    // pods' veths sees a node-local flow: the second sighting's run.
    let before = k.stats();
    let first = first + u32::try_from(steps)? * len(REQUEST);
    k.singles(
        progs,
        ["in_order_again.ns_per_run"],
        &mut record,
        |k, prog, n| {
            let seq = first + n * len(REQUEST);
            let frame = Segment::new(C, 40000, S, 80, seq, ACK | PSH, REQUEST).frame();
            k.run(prog, &frame, 1)?;
            Ok([k.run(prog, &frame, 1)?])
        },
    )?;
    k.expect(
        &before,
        Stat::RecentFastPath,
        2 * shortcuts,
        "TC: every run continues the slot or repeats its last segment",
    )?;

    // A SYN, repeated: runs alternate between a retransmit's long way
    // (the embryonic insert fails, but an LRU map takes a node from its
    // free list before it finds the key and gives it back: nearly a new
    // flow's insert, on warm caches; then a lookup) and the second
    // sighting of the SYN the run before left in the CPU's `SEEN` slot
    // (one lookup, to mark the flow node-local). A bare SYN's entry is
    // embryonic (no payload yet): it goes to its own table.
    let before = k.stats();
    let syn = Segment::new(C, 40001, S, 80, 1000, SYN, b"").frame();
    k.repeated(progs, &syn, "syn_insert", &mut record)?;
    k.expect(
        &before,
        Stat::EmbryosCreated,
        plainsight,
        "one embryonic entry per SYN flow",
    )?;

    // New flows, one at a time: SYN, SYN-ACK, request (the classifier's tail
    // call and the verdict event), reply, FIN, FIN (the entry is removed).
    // Each run is also recorded on its own, so every nanosecond of a new
    // flow has an owner (the handshake's entry, the classifier, the close).
    let before = k.stats();
    let keys = [
        "new_flow.ns_per_flow",
        "new_flow_syn.ns_per_run",
        "new_flow_syn_ack.ns_per_run",
        "first_payload.ns_per_run",
        "new_flow_reply.ns_per_run",
        "new_flow_fins.ns_per_flow",
    ];
    k.singles(progs, keys, &mut record, |k, prog, n| {
        let r = k.flow(prog, 10_000 + u16::try_from(n)?, 1)?;
        Ok([r.iter().sum(), r[0], r[1], r[2], r[3], r[4] + r[5]])
    })?;
    let flows = steps * plainsight;
    k.expect(&before, Stat::FlowsCreated, flows, "an entry per new flow")?;
    k.expect(
        &before,
        Stat::VerdictsEmitted,
        flows,
        "a verdict per new flow",
    )?;
    k.expect(&before, Stat::FlowsClosed, flows, "every new flow closed")?;
    k.expect(&before, Stat::EventsLost, 0, "no verdict lost")?;

    // A node-local flow: both its sockets (cgroup) or both of the node's
    // veths (TC) see every segment, one right after the other. The second
    // sightings' sum is what the second end costs; the flow must still
    // make one entry, one verdict and one close.
    let before = k.stats();
    let keys = ["node_local_flow.ns_per_flow", "second_sighting.ns_per_flow"];
    k.singles(progs, keys, &mut record, |k, prog, n| {
        let r = k.flow(prog, 20_000 + u16::try_from(n)?, 2)?;
        let second: f64 = r.iter().skip(1).step_by(2).sum();
        Ok([r.iter().sum(), second])
    })?;
    k.expect(
        &before,
        Stat::FlowsCreated,
        flows,
        "an entry per node-local flow",
    )?;
    k.expect(
        &before,
        Stat::VerdictsEmitted,
        flows,
        "a verdict per node-local flow",
    )?;
    k.expect(
        &before,
        Stat::PayloadSegments,
        flows,
        "the request classified once (the reply comes after the verdict)",
    )?;
    k.expect(
        &before,
        Stat::FlowsClosed,
        flows,
        "every node-local flow closed",
    )?;

    // A first payload no protocol claims (a flow's first segment of an
    // application we do not name): the classifier's longest path, through
    // the core and every family stage twice (openings, then mid-stream),
    // with no verdict yet. Beside `first_payload` (HTTP: the core and the
    // first family, a verdict event), it shows what a stage costs.
    let before = k.stats();
    k.singles(
        progs,
        ["first_payload_unknown.ns_per_run"],
        &mut record,
        |k, prog, n| {
            let port = 30_000 + u16::try_from(n)?;
            Ok([k.unknown_first_payload(prog, port)?])
        },
    )?;
    k.expect(
        &before,
        Stat::PayloadSegments,
        flows,
        "one payload per flow",
    )?;
    k.expect(
        &before,
        Stat::VerdictsEmitted,
        flows,
        "a verdict per flow, at its RST only",
    )?;
    k.expect(&before, Stat::TailCallFailed, 0, "every stage reached")?;

    // A first request with credentials after ~400 bytes of headers, as
    // services send them: beside `first_payload` (a 31-byte request, whose
    // scan reads 4 words), what the credentials scan costs a flow when it
    // has the most to read (docs/benchmarks.md).
    let before = k.stats();
    k.singles(
        progs,
        ["first_payload_credentials.ns_per_run"],
        &mut record,
        |k, prog, n| {
            let port = 50_000 + u16::try_from(n % 10_000)?;
            Ok([k.first_payload_with(prog, port, AUTH_REQUEST)?])
        },
    )?;
    k.expect(
        &before,
        Stat::CredentialScans,
        flows,
        "one credentials scan per flow",
    )?;
    k.expect(
        &before,
        Stat::TailCallFailed,
        0,
        "the scan and the core reached",
    )?;

    // Everything above must have run without statistics, or it measured
    // them too (kernel.bpf_stats_enabled, or someone's BPF_ENABLE_STATS).
    for m in progs {
        let runs = k.program(m.name)?.info()?.run_count();
        if runs > 0 {
            bail!(
                "eBPF run-time statistics were on during the test runs ({runs} runs of {} \
                 counted): kernel.bpf_stats_enabled is 1 or another process holds \
                 BPF_ENABLE_STATS; rerun when they are off, or leave out --phase test-run",
                m.name
            );
        }
    }
    // What the statistics alone add to a run, for comparison.
    let _stats = probe::BpfStats::enable()?;
    k.repeated(progs, &ack, "pure_ack_stats_on", &mut record)
}

/// A short HTTP flow from C to S's port 80: SYN, SYN-ACK, request,
/// reply, FIN, FIN.
fn flow(port: u16) -> [Segment; 6] {
    let (c_fin, s_fin) = (1001 + len(REQUEST), 5001 + len(REPLY));
    [
        Segment::new(C, port, S, 80, 1000, SYN, b""),
        Segment::new(S, 80, C, port, 5000, SYN | ACK, b""),
        Segment::new(C, port, S, 80, 1001, ACK | PSH, REQUEST),
        Segment::new(S, 80, C, port, 5001, ACK | PSH, REPLY),
        Segment::new(C, port, S, 80, c_fin, FIN | ACK, b""),
        Segment::new(S, 80, C, port, s_fin, FIN | ACK, b""),
    ]
}

fn len(payload: &[u8]) -> u32 {
    u32::try_from(payload.len()).expect("a short payload")
}

/// The programs, loaded with their maps as the agent loads them, and the
/// floor programs from their own object.
struct Kernel {
    dp: Datapath,
    floor: aya::Ebpf,
}

impl Kernel {
    fn load(progs: &[Measured]) -> anyhow::Result<Self> {
        let mut dp = datapath::load(&LoadOptions {
            include_loopback: false,
            max_flows: DEFAULT_MAX_FLOWS,
            ring_bytes: plainsight::config::DEFAULT_RING_BYTES,
        })?;
        let mut floor = floor::load()?;
        for m in progs {
            let ebpf = if m.is_floor { &mut floor } else { &mut dp.ebpf };
            match ebpf.program_mut(m.name) {
                Some(Program::CgroupSkb(p)) => p.load(),
                Some(Program::SchedClassifier(p)) => p.load(),
                _ => bail!("{} is not a cgroup_skb or TC program in the object", m.name),
            }
            .with_context(|| format!("loading {}", m.name))?;
        }
        Ok(Self { dp, floor })
    }

    fn program(&self, name: &str) -> anyhow::Result<&Program> {
        self.dp
            .ebpf
            .program(name)
            .or_else(|| self.floor.program(name))
            .with_context(|| format!("program {name} missing"))
    }

    /// Runs `frame` through `prog` `repeat` times; the mean ns per run.
    fn run(&self, prog: &str, frame: &[u8], repeat: u32) -> anyhow::Result<f64> {
        let opts = TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::default()
        };
        // What the programs return for every packet: pass (cgroup_skb) and
        // TC_ACT_UNSPEC, "next program" (TC).
        let (r, pass) = match self.program(prog)? {
            Program::CgroupSkb(p) => (p.test_run(opts), 1),
            Program::SchedClassifier(p) => (p.test_run(opts), u32::MAX),
            _ => bail!("{prog} is not a cgroup_skb or TC program"),
        };
        let r = r.with_context(|| format!("BPF_PROG_TEST_RUN on {prog}"))?;
        if r.return_value != pass {
            bail!("{prog} returned {} instead of {pass}", r.return_value);
        }
        Ok(r.duration.as_nanos() as f64)
    }

    /// `BATCHES` batches of `REPEAT` runs of `frame`, the programs in turn.
    fn repeated(
        &self,
        progs: &[Measured],
        frame: &[u8],
        path: &str,
        record: &mut impl FnMut(&Measured, &str, f64),
    ) -> anyhow::Result<()> {
        let key = format!("{path}.ns_per_run");
        for _ in 0..BATCHES {
            for m in progs {
                record(m, &key, self.run(m.name, frame, REPEAT)?);
            }
        }
        Ok(())
    }

    /// `BATCHES` batches of `FLOWS` steps, the programs in turn: `step(k,
    /// prog, n)` makes step n (counted across batches) of single runs and
    /// returns ns for each of `keys`; each batch records their typical mean.
    fn singles<const N: usize>(
        &mut self,
        progs: &[Measured],
        keys: [&str; N],
        record: &mut impl FnMut(&Measured, &str, f64),
        mut step: impl FnMut(&mut Self, &str, u32) -> anyhow::Result<[f64; N]>,
    ) -> anyhow::Result<()> {
        let per_batch = u32::from(FLOWS);
        for batch in 0..u32::try_from(BATCHES)? {
            for m in progs {
                let mut ns = vec![Vec::new(); N];
                for i in 0..per_batch {
                    let runs = step(self, m.name, batch * per_batch + i)?;
                    for (col, v) in ns.iter_mut().zip(runs) {
                        col.push(v);
                    }
                }
                for (key, col) in keys.iter().zip(&ns) {
                    record(m, key, typical_mean(col));
                }
            }
        }
        Ok(())
    }

    /// Makes the flow on `port` decided: handshake, then an HTTP request.
    fn handshake_and_request(&mut self, prog: &str, port: u16) -> anyhow::Result<()> {
        for seg in &flow(port)[..3] {
            self.run(prog, &seg.frame(), 1)?;
        }
        self.drain();
        Ok(())
    }

    /// The whole flow on `port`, as single runs, each segment `sightings`
    /// times in a row; ns of each run.
    fn flow(&mut self, prog: &str, port: u16, sightings: usize) -> anyhow::Result<Vec<f64>> {
        let mut ns = Vec::with_capacity(6 * sightings);
        for seg in &flow(port) {
            let frame = seg.frame();
            for _ in 0..sightings {
                ns.push(self.run(prog, &frame, 1)?);
            }
        }
        // Read the verdict at once: a ring a quarter full makes the next
        // verdict wake the reader (a self-IPI inside the timed run).
        self.drain();
        Ok(ns)
    }

    /// SYN, SYN-ACK, then (timed) a first payload nothing recognises
    /// (undecided); then an RST removes the flow with its best guess. ns of
    /// the payload's run.
    fn unknown_first_payload(&mut self, prog: &str, port: u16) -> anyhow::Result<f64> {
        const UNKNOWN: &[u8] = b"\x00\x01\x02\x03binary payload of no known protocol\xff\xfe";
        self.first_payload_with(prog, port, UNKNOWN)
    }

    /// SYN, SYN-ACK, then (timed) the client's first segment `payload`,
    /// then an RST; ns of the payload's run.
    fn first_payload_with(&mut self, prog: &str, port: u16, payload: &[u8]) -> anyhow::Result<f64> {
        let [syn, syn_ack, ..] = flow(port);
        self.run(prog, &syn.frame(), 1)?;
        self.run(prog, &syn_ack.frame(), 1)?;
        let data = Segment::new(C, port, S, 80, 1001, ACK | PSH, payload);
        let ns = self.run(prog, &data.frame(), 1)?;
        let rst = Segment::new(C, port, S, 80, 1001 + len(payload), RST, b"");
        self.run(prog, &rst.frame(), 1)?;
        self.drain();
        Ok(ns)
    }

    fn drain(&mut self) {
        while self.dp.events.next().is_some() {}
    }

    fn stats(&self) -> [u64; Stat::COUNT as usize] {
        datapath::read_stats(&self.dp.stats)
    }

    /// Fails unless counter `s` moved by exactly `want` since `before`: the
    /// runs took the path the row names.
    fn expect(
        &self,
        before: &[u64; Stat::COUNT as usize],
        s: Stat,
        want: u64,
        what: &str,
    ) -> anyhow::Result<()> {
        let got = self.stats()[s as usize] - before[s as usize];
        if got != want {
            bail!("expected {what}: {s:?} moved by {got}, not {want}");
        }
        Ok(())
    }
}

/// The mean of the single runs within twice the median. A single run is
/// timed by one pair of clock reads, and this VM's clock moves in ≈ 10 ns
/// steps: the mean of many runs resolves finer than a median stuck on a
/// step. A run an interrupt landed in (µs) is not the program's cost.
fn typical_mean(ns: &[f64]) -> f64 {
    let cap = 2.0 * crate::report::median(ns);
    let kept: Vec<f64> = ns.iter().copied().filter(|v| *v <= cap).collect();
    kept.iter().sum::<f64>() / kept.len() as f64
}
