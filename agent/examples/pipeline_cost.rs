//! CPU the agent spends in userspace per classified flow, without the
//! kernel or the network: a live `Pipeline` (real `Metrics`, real
//! `Alerter`, the default config's policy, edge cap and idle timeout) fed
//! synthetic flows the way the `run` command's ring consumer (cli/run.rs) feeds
//! verdicts.
//!
//! ```sh
//! cargo run -p plainsight --example pipeline_cost --release   # [-- FLOWS]
//! # instructions, deterministic (the noise-free number to compare):
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     --collect-atstart=no --toggle-collect='pipeline_cost::measure' \
//!     target/release/examples/pipeline_cost 200000
//! ```
//!
//! The mix, per 20 flows: 18 plaintext HTTP flows on 50 edges (10 clients
//! × 5 servers, port 80), one TLS 1.3 flow with its hellos' metadata (SNI,
//! ALPN h2, TLS_AES_128_GCM_SHA256) and one PostgreSQL flow with
//! `cleartext_credentials`; client ports all differ. Timestamps advance as
//! at 23,000 new connections/s and `tick` runs every 100 ms, as in the
//! agent. A warm-up pass first creates every edge and series, so the
//! measured pass is the steady state of a busy node: known edges.

use agent_common::{Encryption, Protocol, Reason, TlsVersion, Verdict};
use plainsight::{
    config::Config,
    export::metrics::Metrics,
    pipeline::flow::Flow,
    pipeline::{Pipeline, alerts::Alerter, edges::Edges, identity::Resolver, tls_hello::TlsMeta},
};
use std::{
    hint::black_box,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

/// 23,000 new connections/s, as `cargo xtask bench` drives the agent.
const FLOW_GAP_NS: i64 = 1_000_000_000 / 23_000;
/// The ring consumer drains and ticks every 100 ms (`events::POLL`).
const TICK_NS: i64 = 100_000_000;
const START_NS: i64 = 1_800_000_000_000_000_000;

fn flow(i: u64) -> Flow {
    let client = IpAddr::from([10, 1, 0, 1 + u8::try_from(i % 10).expect("< 10")]);
    let server = |n: u64| IpAddr::from([10, 2, 0, u8::try_from(n).expect("< 256")]);
    let client_port = 32_768 + u16::try_from(i % 28_000).expect("< 28,000");
    let (server, server_port, verdict, tls) = match i % 20 {
        0 => {
            let mut v = Verdict::new(Protocol::Tls, Encryption::Tls);
            v.tls_version = TlsVersion::Tls13;
            let tls = TlsMeta {
                sni: Some("api.payments.internal".into()),
                alpn_offered: vec!["h2".into()],
                cipher: Some(0x1301),
                version: TlsVersion::Tls13,
                ..TlsMeta::default()
            };
            (server(100), 443, v, tls)
        }
        1 => (
            server(101),
            5432,
            Verdict::plaintext(Protocol::Postgres).with_reason(Reason::CleartextCredentials),
            TlsMeta::default(),
        ),
        _ => (
            server(1 + (i / 10) % 5),
            80,
            Verdict::plaintext(Protocol::Http),
            TlsMeta::default(),
        ),
    };
    Flow {
        client,
        client_port,
        server,
        server_port,
        hook: None,
        verdict,
        midstream: false,
        tls,
    }
}

/// The measured loop: what callgrind's `--toggle-collect` counts.
#[inline(never)]
fn measure(p: &mut Pipeline, flows: &[Flow], mut ts_ns: i64) -> i64 {
    let mut last_tick = ts_ns;
    for f in flows {
        ts_ns += FLOW_GAP_NS;
        p.observe(black_box(f), ts_ns);
        if ts_ns - last_tick >= TICK_NS {
            p.tick(ts_ns);
            last_tick = ts_ns;
        }
    }
    ts_ns
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().expect("FLOWS must be a number"));
    let cfg = Config::default();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let edges = Arc::new(Mutex::new(Edges::new(cfg.edges_max, cfg.idle_timeout)));
    let mut p = Pipeline::live(
        Resolver::default(),
        cfg.policy,
        edges.clone(),
        metrics,
        Alerter::new(cfg.alerts_per_minute, START_NS),
        START_NS,
    );
    let warm: Vec<Flow> = (0..1_000).map(flow).collect();
    let ts = measure(&mut p, &warm, START_NS);
    // Built before the clock starts: decoding events is not the pipeline's.
    let flows: Vec<Flow> = (0..n).map(flow).collect();
    let start = Instant::now();
    measure(&mut p, &flows, ts);
    let elapsed = start.elapsed();
    let live = edges.lock().expect("edges").len();
    #[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
    let ns = elapsed.as_nanos() as f64 / n as f64;
    println!("{n} flows, {live} edges: {ns:.0} ns/flow");
}
