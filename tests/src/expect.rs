//! Exact verdict assertions: one client run in, one flow out, with exactly
//! the expected labels on every series (and, once the agent serves it,
//! exactly the expected change on `/api/v1/edges`).
//!
//! Each check compares what changed across a client run with what the
//! verdict must add, for the edge (client, server, server port) the client
//! used: a missing, wrong or extra series fails, so cases may share a
//! server port as long as they run one after another.

use crate::Agent;
use crate::agent::Sample;
use crate::topology::Topology;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The verdict one client connection must produce.
#[derive(Clone, Debug)]
pub struct Expected {
    pub client: IpAddr,
    pub server: IpAddr,
    pub server_port: u16,
    pub protocol: &'static str,
    pub encryption: &'static str,
    /// The reason label; `None` when the verdict carries none.
    pub reason: Option<&'static str>,
    /// The negotiated version label: every TLS verdict has one (`unknown`
    /// when no ServerHello was seen), no other verdict does.
    pub tls_version: Option<&'static str>,
    /// First seen without its SYN. Only the edges API shows it apart from
    /// the reason (an opening message seen mid-stream carries no reason).
    pub midstream: bool,
    /// How the client of a TLS flow authenticated (README "Mutual TLS"):
    /// `tls` makes it `server_only` (no case here sends a client
    /// certificate), `unknown` without a ServerHello or mid-stream.
    pub client_auth: Option<&'static str>,
}

impl Expected {
    /// A flow over IPv4 between the topology's two ends.
    pub fn new(
        t: &Topology,
        server_port: u16,
        protocol: &'static str,
        encryption: &'static str,
    ) -> Self {
        Self {
            client: t.client_ip.into(),
            server: t.server_ip.into(),
            server_port,
            protocol,
            encryption,
            reason: None,
            tls_version: None,
            midstream: false,
            client_auth: None,
        }
    }

    #[must_use]
    pub fn ipv6(mut self, t: &Topology) -> Self {
        self.client = t.client_ip6.into();
        self.server = t.server_ip6.into();
        self
    }

    #[must_use]
    pub fn reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    #[must_use]
    pub fn tls(mut self, version: &'static str) -> Self {
        self.tls_version = Some(version);
        let seen = version != "unknown" && !self.midstream;
        self.client_auth = Some(if seen { "server_only" } else { "unknown" });
        self
    }

    /// A TLS flow's `client_auth` other than `tls` derives.
    #[must_use]
    pub fn client_auth(mut self, auth: &'static str) -> Self {
        self.client_auth = Some(auth);
        self
    }

    #[must_use]
    pub fn midstream(mut self) -> Self {
        self.midstream = true;
        if self.client_auth.is_some() {
            self.client_auth = Some("unknown");
        }
        self
    }

    /// `ok` for encrypted verdicts, `violation` for the rest (no allow-rules
    /// are configured in these tests).
    pub fn policy(&self) -> &'static str {
        match self.encryption {
            "tls" | "encrypted" => "ok",
            _ => "violation",
        }
    }

    /// The changes this one flow must make, keyed as `changes` keys them.
    fn changes(&self) -> BTreeMap<String, f64> {
        let (p, e) = (self.protocol, self.encryption);
        let mut m = BTreeMap::new();
        m.insert(
            key(
                "plainsight_flows_total",
                &[
                    ("protocol", p),
                    ("encryption", e),
                    ("policy", self.policy()),
                ],
            ),
            1.0,
        );
        if let Some(r) = self.reason {
            m.insert(
                key(
                    "plainsight_flow_reasons_total",
                    &[("protocol", p), ("encryption", e), ("reason", r)],
                ),
                1.0,
            );
        }
        if let Some(v) = self.tls_version {
            m.insert(key("plainsight_tls_flows_total", &[("version", v)]), 1.0);
        }
        if let Some(a) = self.client_auth {
            m.insert(
                key("plainsight_tls_client_auth_total", &[("client_auth", a)]),
                1.0,
            );
        }
        let edge = [
            ("protocol", p),
            ("encryption", e),
            ("policy", self.policy()),
        ];
        m.insert(key("api.flows", &edge), 1.0);
        if let Some(r) = self.reason {
            m.insert(key("api.reasons", &[("protocol", p), ("reason", r)]), 1.0);
        }
        if let Some(v) = self.tls_version {
            m.insert(
                key("api.tls_versions", &[("protocol", p), ("version", v)]),
                1.0,
            );
        }
        if self.midstream {
            m.insert(key("api.midstream_flows", &edge), 1.0);
        }
        m
    }
}

/// Runs cases against one agent and remembers them, so a pass can check
/// that nothing beyond them was classified and hand them to Prometheus.
pub struct Checker<'a> {
    agent: &'a Agent,
    pub cases: Vec<Expected>,
    wait: Duration,
}

impl<'a> Checker<'a> {
    pub fn new(agent: &'a Agent) -> Self {
        Self {
            agent,
            cases: Vec::new(),
            wait: Duration::from_secs(10),
        }
    }

    /// How long a check waits for the expected changes (10 s by default).
    #[must_use]
    pub fn waiting(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Runs `client` (which opens exactly one connection) and asserts the
    /// exact verdict of its flow: panics with what changed instead.
    pub fn expect_edge(&mut self, expected: Expected, client: impl FnOnce()) {
        let before = Snapshot::take(self.agent);
        client();
        self.wait_for(&before, &expected);
        self.cases.push(expected);
    }

    fn wait_for(&self, before: &Snapshot, expected: &Expected) {
        let deadline = Instant::now() + self.wait;
        loop {
            let now = Snapshot::take(self.agent);
            let want = expected.changes();
            let got = now.changes_since(before, expected);
            if got == want {
                return;
            }
            if Instant::now() > deadline {
                let log = self.agent.log_text();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                panic!(
                    "verdict for {expected:?}:\n expected changes {want:#?}\n got {got:#?}\n\
                     agent log (last lines, newest first):\n{}",
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Nothing but the checked cases was classified: as many flows in total
    /// as cases (one flow each).
    pub fn assert_no_other_flows(&self) {
        let total: f64 = self
            .agent
            .metrics()
            .iter()
            .filter(|s| s.name == "plainsight_flows_total")
            .map(|s| s.value)
            .sum();
        #[expect(clippy::cast_precision_loss, reason = "a few dozen cases")]
        let cases = self.cases.len() as f64;
        assert!(
            (total - cases).abs() < f64::EPSILON,
            "{total} flows classified for {cases} cases: some client opened an extra connection \
             or a verdict arrived late\n{}",
            self.agent
                .get("/metrics")
                .map(|(_, b)| b)
                .unwrap_or_default()
        );
    }
}

/// Metrics and edges at one moment.
struct Snapshot {
    metrics: Vec<Sample>,
    edges: serde_json::Value,
}

impl Snapshot {
    fn take(agent: &Agent) -> Self {
        let edges = match agent.get("/api/v1/edges") {
            Ok((200, body)) => serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("/api/v1/edges is not JSON ({e}): {body}")),
            Ok((status, body)) => panic!("/api/v1/edges answered {status}: {body}"),
            Err(e) => panic!("GET /api/v1/edges: {e}"),
        };
        Self {
            metrics: agent.metrics(),
            edges,
        }
    }

    /// Every value of `e`'s edge that differs from `before`, keyed without
    /// the edge's own labels.
    fn changes_since(&self, before: &Self, e: &Expected) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let (now, then) = (self.values(e), before.values(e));
        for (k, v) in &now {
            let d = v - then.get(k).copied().unwrap_or(0.0);
            if d != 0.0 {
                out.insert(k.clone(), d);
            }
        }
        out
    }

    fn values(&self, e: &Expected) -> BTreeMap<String, f64> {
        let (client, server, port) = (
            e.client.to_string(),
            e.server.to_string(),
            e.server_port.to_string(),
        );
        let mut out = BTreeMap::new();
        for s in &self.metrics {
            let l = &s.labels;
            let ours = l.get("client") == Some(&client)
                && l.get("server") == Some(&server)
                && l.get("server_port") == Some(&port);
            // The certificate-expiry gauge holds a time, not a count of
            // flows (tests/tests/mutual_tls.rs checks it); downgrades
            // depend on the path's earlier flows, not on this one alone
            // (matrix.rs expects them as TLSDowngrade alerts).
            if !ours
                || !s.name.starts_with("plainsight_")
                || s.name == "plainsight_tls_certificate_expiry_timestamp_seconds"
                || s.name == "plainsight_downgrades_total"
            {
                continue;
            }
            let rest: Vec<(&str, &str)> = l
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "client" | "server" | "server_port"))
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            *out.entry(key(&s.name, &rest)).or_default() += s.value;
        }
        for edge in edges(&self.edges) {
            let field = |k: &str| edge.get(k).map(json_str).unwrap_or_default();
            if field("client") != client
                || field("server") != server
                || field("server_port") != port
            {
                continue;
            }
            let (p, enc, pol) = (field("protocol"), field("encryption"), field("policy"));
            let labels = [("protocol", &*p), ("encryption", &*enc), ("policy", &*pol)];
            let num = |k: &str| {
                edge.get(k)
                    .and_then(serde_json::Value::as_f64)
                    .unwrap_or(0.0)
            };
            *out.entry(key("api.flows", &labels)).or_default() += num("flows");
            *out.entry(key("api.midstream_flows", &labels)).or_default() += num("midstream_flows");
            for (map, label) in [("reasons", "reason"), ("tls_versions", "version")] {
                for (k, v) in edge
                    .get(map)
                    .and_then(|m| m.as_object())
                    .into_iter()
                    .flatten()
                {
                    let name = format!("api.{map}");
                    let entry = out.entry(key(&name, &[("protocol", &p), (label, k)]));
                    *entry.or_default() += v.as_f64().unwrap_or(0.0);
                }
            }
        }
        out
    }
}

fn edges(v: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    v.get("edges")
        .and_then(|e| e.as_array())
        .unwrap_or_else(|| panic!("/api/v1/edges without an `edges` array: {v}"))
        .iter()
}

/// A JSON string or number as text (ports are numbers).
fn json_str(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// `name{k="v",...}`, labels sorted so any order gives the same key.
fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    l.sort();
    format!("{name}{{{}}}", l.join(","))
}
