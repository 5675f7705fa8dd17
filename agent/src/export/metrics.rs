//! Every metric plainsight exports, declared in one place. Names and labels
//! are the docs/architecture.md contract: dashboards and alerts depend on
//! them. The kernel glue and the pipeline hand over plain readings and
//! labels; only this module knows the metric types.

use agent_common::{Encryption, Reason, TlsVersion, Verdict, wire::Stat};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::{Atomic, Counter},
        family::Family,
        gauge::Gauge,
        info::Info,
    },
    registry::Registry,
};
use std::{
    ops::Deref,
    sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed},
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlowLabels {
    pub client: String,
    pub server: String,
    pub server_port: u16,
    pub protocol: &'static str,
    pub encryption: &'static str,
    pub policy: &'static str,
}

/// Flows whose verdict carries a reason (cleartext credentials, a refused
/// STARTTLS, weak TLS, ...): what alerts page on.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub client: String,
    pub server: String,
    pub server_port: u16,
    pub protocol: &'static str,
    pub encryption: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsLabels {
    pub client: String,
    pub server: String,
    pub server_port: u16,
    pub version: &'static str,
}

/// `plainsight_tls_certificates_total`: what became of the server
/// certificates the handshakes showed (TLS ≤ 1.2): `checked`, `truncated`
/// (longer than the export bound), `unparsable`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertOutcomeLabels {
    pub outcome: &'static str,
}

/// `plainsight_tls_client_auth_total`: three values per edge at most.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientAuthLabels {
    pub client: String,
    pub server: String,
    pub server_port: u16,
    /// `mutual`, `server_only` or `unknown`.
    pub client_auth: &'static str,
}

/// `plainsight_downgrades_total`: three kinds per edge at most.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DowngradeLabels {
    pub client: String,
    pub server: String,
    pub server_port: u16,
    /// `plaintext`, `tls_version` or `client_auth`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KernelLabels {
    pub counter: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    pub hook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyRuleLabels {
    /// `active` or `expired`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    /// `logged` or `suppressed` (by the rate limit).
    pub outcome: &'static str,
}

/// `plainsight_http_connections_total`: which listener (`api` or
/// `metrics`; `api` when one serves both) and what became of the
/// connection: `accepted`, `rejected` (over `api.max_connections`) or
/// `timed_out` (closed by the header-read or request timeout) or
/// `tls_failed` (a failed handshake on an HTTPS listener).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub listener: &'static str,
    pub outcome: &'static str,
}

/// `plainsight_api_tls_reloads_total`: a changed `api.tls_cert_file` /
/// `api.tls_key_file` pair `reloaded`, or `failed` (the previous pair is
/// still served).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsReloadLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

pub struct Metrics {
    pub flows: Family<FlowLabels, EdgeCounter>,
    pub tls_flows: Family<TlsLabels, EdgeCounter>,
    pub tls_client_auth: Family<ClientAuthLabels, EdgeCounter>,
    pub downgrades: Family<DowngradeLabels, EdgeCounter>,
    pub tls_certificates: Family<CertOutcomeLabels, Counter>,
    /// The server certificate's notAfter per edge (the flows series'
    /// labels: one per admitted edge at most, retired with it).
    pub tls_certificate_expiry: Family<FlowLabels, Gauge>,
    pub flow_reasons: Family<ReasonLabels, EdgeCounter>,
    pub events_received: Counter,
    pub events_lost: Counter,
    pub events_malformed: Counter,
    pub kernel: Family<KernelLabels, Counter>,
    pub flow_table_capacity: Gauge,
    pub flow_table_entries: Gauge,
    pub flow_table_evictions: Counter,
    pub programs_attached: Family<HookLabels, Gauge>,
    pub edges: Gauge,
    pub edges_dropped: Counter,
    pub edges_recycled: Counter,
    pub policy_rules: Family<PolicyRuleLabels, Gauge>,
    pub alerts: Family<AlertLabels, Counter>,
    pub http_connections: Family<HttpLabels, Counter>,
    pub api_tls_reloads: Family<TlsReloadLabels, Counter>,
}

impl Metrics {
    pub fn register(reg: &mut Registry) -> Self {
        let m = Self {
            flows: Family::default(),
            tls_flows: Family::default(),
            tls_client_auth: Family::default(),
            downgrades: Family::default(),
            tls_certificates: Family::default(),
            tls_certificate_expiry: Family::default(),
            flow_reasons: Family::default(),
            events_received: Counter::default(),
            events_lost: Counter::default(),
            events_malformed: Counter::default(),
            kernel: Family::default(),
            flow_table_capacity: Gauge::default(),
            flow_table_entries: Gauge::default(),
            flow_table_evictions: Counter::default(),
            programs_attached: Family::default(),
            edges: Gauge::default(),
            edges_dropped: Counter::default(),
            edges_recycled: Counter::default(),
            policy_rules: Family::default(),
            alerts: Family::default(),
            http_connections: Family::default(),
            api_tls_reloads: Family::default(),
        };
        // Both outcomes from the start, so a rate() over them has data
        // before the first alert.
        for outcome in ["logged", "suppressed"] {
            drop(m.alerts.get_or_create(&AlertLabels { outcome }));
        }
        reg.register(
            "plainsight_flows",
            "Classified TCP flows, one increment per flow",
            m.flows.clone(),
        );
        reg.register(
            "plainsight_tls_flows",
            "TLS flows by negotiated version",
            m.tls_flows.clone(),
        );
        reg.register(
            "plainsight_tls_client_auth",
            "TLS flows by how the client authenticated: mutual, server_only or unknown",
            m.tls_client_auth.clone(),
        );
        reg.register(
            "plainsight_downgrades",
            "Downgrade events per path: plaintext after TLS, a lower TLS version, server_only after mutual",
            m.downgrades.clone(),
        );
        reg.register(
            "plainsight_tls_certificates",
            "Server certificates seen in TLS <= 1.2 handshakes, by outcome: checked, truncated, unparsable",
            m.tls_certificates.clone(),
        );
        reg.register(
            "plainsight_tls_certificate_expiry_timestamp_seconds",
            "notAfter of the server certificate the edge's latest TLS <= 1.2 flow showed, Unix seconds",
            m.tls_certificate_expiry.clone(),
        );
        reg.register(
            "plainsight_flow_reasons",
            "Classified flows whose verdict carries a reason, by reason",
            m.flow_reasons.clone(),
        );
        reg.register(
            "plainsight_events_received",
            "Verdict events read from the kernel ring buffer",
            m.events_received.clone(),
        );
        reg.register(
            "plainsight_events_lost",
            "Verdict events the kernel could not queue because the ring buffer was full",
            m.events_lost.clone(),
        );
        reg.register(
            "plainsight_events_malformed",
            "Ring buffer records that were not a valid verdict event",
            m.events_malformed.clone(),
        );
        reg.register(
            "plainsight_kernel",
            "Kernel datapath counters, summed over CPUs",
            m.kernel.clone(),
        );
        reg.register(
            "plainsight_flow_table_capacity",
            "Maximum entries in the kernel flow table",
            m.flow_table_capacity.clone(),
        );
        reg.register(
            "plainsight_flow_table_entries",
            "Live entries in the kernel flow table",
            m.flow_table_entries.clone(),
        );
        reg.register(
            "plainsight_flow_table_evictions",
            "Flows the kernel flow table evicted (LRU) to make room, derived as flows created - flows closed - entries",
            m.flow_table_evictions.clone(),
        );
        reg.register(
            "plainsight_programs_attached",
            "eBPF programs currently attached, by hook",
            m.programs_attached.clone(),
        );
        reg.register(
            "plainsight_edges",
            "Edges in the live view (/api/v1/edges), after idle expiry",
            m.edges.clone(),
        );
        reg.register(
            "plainsight_edges_dropped",
            "Flows folded into an `other` edge by the cardinality cap (edges.max)",
            m.edges_dropped.clone(),
        );
        reg.register(
            "plainsight_edges_recycled",
            "Idle edges (unseen for edges.idle_timeout) whose place under edges.max went to a new edge; their series left /metrics",
            m.edges_recycled.clone(),
        );
        reg.register(
            "plainsight_policy_rules",
            "Allow-rules in the policy, by state (active or expired)",
            m.policy_rules.clone(),
        );
        reg.register(
            "plainsight_alerts",
            "Policy-violation alerts (first violation of an edge, and reports of violations folded by the cap), logged or suppressed by the rate limit (alerts.max_per_minute)",
            m.alerts.clone(),
        );
        reg.register(
            "plainsight_http_connections",
            "Connections to the HTTP endpoints, by listener and outcome (accepted; rejected over api.max_connections; timed_out by api.header_read_timeout or api.request_timeout; tls_failed handshakes)",
            m.http_connections.clone(),
        );
        reg.register(
            "plainsight_api_tls_reloads",
            "Reloads of a changed api.tls_cert_file/api.tls_key_file pair, by outcome (reloaded; failed: the previous pair is still served)",
            m.api_tls_reloads.clone(),
        );
        reg.register(
            "plainsight_build",
            "Build information",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        reg.register_collector(Box::new(super::process_metrics::ProcessCollector));
        m
    }

    /// One drain of the kernel's rings (`kernel::events::RingReading`).
    pub fn publish_ring_reading(&self, received: u64, malformed: u64) {
        self.events_received.inc_by(received);
        self.events_malformed.inc_by(malformed);
    }

    /// Moves kernel counter deltas (the per-CPU sums
    /// `kernel::datapath::read_stats` gives, since `last`) into the
    /// Prometheus counters.
    pub fn publish_kernel_stats(
        &self,
        now: &[u64; Stat::COUNT as usize],
        last: &mut [u64; Stat::COUNT as usize],
    ) {
        for s in Stat::ALL {
            let i = s as usize;
            let delta = now[i].saturating_sub(last[i]);
            if delta > 0 {
                self.kernel
                    .get_or_create(&KernelLabels {
                        counter: stat_name(s),
                    })
                    .inc_by(delta);
                if s == Stat::EventsLost {
                    self.events_lost.inc_by(delta);
                }
            }
            last[i] = now[i];
        }
    }

    /// Refreshes `plainsight_flow_table_entries` and
    /// `plainsight_flow_table_evictions_total` (also published as
    /// `plainsight_kernel_total{counter="flows_evicted"}`) from one reading
    /// of the kernel flow table (`kernel::datapath::FlowTableReading`):
    /// `evicted` is a running maximum since load, so the counters only
    /// ever take the part they have not published yet.
    pub fn publish_flow_table(&self, entries: u64, evicted: u64) {
        self.flow_table_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        let delta = evicted.saturating_sub(self.flow_table_evictions.get());
        if delta > 0 {
            self.flow_table_evictions.inc_by(delta);
            self.kernel
                .get_or_create(&KernelLabels {
                    counter: FLOWS_EVICTED,
                })
                .inc_by(delta);
        }
    }
}

/// A counter of an edge's series, which knows how many edges hold it: the
/// reason and TLS series have no `policy` label (the TLS one no protocol
/// either), so several edges can share one, and a recycled edge's series
/// leave `/metrics` only when no admitted edge holds them any more.
pub type EdgeCounter = Counter<u64, Held>;

/// The value of an [`EdgeCounter`] and its holders.
#[derive(Debug, Default)]
pub struct Held {
    value: AtomicU64,
    holders: AtomicU32,
}

impl Atomic<u64> for Held {
    fn inc(&self) -> u64 {
        self.inc_by(1)
    }

    fn inc_by(&self, v: u64) -> u64 {
        self.value.fetch_add(v, Relaxed)
    }

    fn get(&self) -> u64 {
        self.value.load(Relaxed)
    }
}

/// One more edge holds `c`.
fn hold<G: Deref<Target = EdgeCounter>>(c: G) -> EdgeCounter {
    c.inner().holders.fetch_add(1, Relaxed);
    EdgeCounter::clone(&c)
}

/// One edge fewer holds `c`; true when it was the last. Only the pipeline
/// thread holds and releases, so nothing comes between this and the
/// series' removal.
fn release(c: &EdgeCounter) -> bool {
    c.inner().holders.fetch_sub(1, Relaxed) == 1
}

/// The series one edge's flows count on, held with the edge (pipeline/edges.rs) so
/// that a flow costs atomic increments instead of hashing label strings.
/// `Counter`s are shared handles: the family exports these same values, and
/// an edge whose labels coincide with another's (the reason and TLS series
/// have no `policy` label) gets the existing series from `get_or_create`.
/// Reason and TLS-version series are created when a flow first has the
/// value, as without the cache. The series live as long as an admitted edge
/// holds them ([`EdgeSeries::retire`]).
pub struct EdgeSeries {
    flows: EdgeCounter,
    /// At most one per `Reason` and `TlsVersion`; an edge sees few.
    reasons: Vec<(Reason, EdgeCounter)>,
    tls_versions: Vec<(TlsVersion, EdgeCounter)>,
    /// At most one per client-authentication value (three).
    client_auth: Vec<(&'static str, EdgeCounter)>,
    /// At most one per downgrade kind (three).
    downgrades: Vec<(&'static str, EdgeCounter)>,
    /// The edge's own (same labels as `flows`), once a certificate is seen.
    cert_expiry: Option<Gauge>,
}

/// An edge's labels, as the pipeline's edge key gives them
/// (`pipeline::edges::EdgeKey::labels`); borrowed, so that a flow on a
/// known edge copies no names.
pub struct EdgeLabels<'a> {
    pub client: &'a str,
    pub server: &'a str,
    pub server_port: u16,
    pub protocol: &'static str,
    pub encryption: &'static str,
    pub policy: &'static str,
}

impl EdgeSeries {
    pub fn new(m: &Metrics, k: &EdgeLabels<'_>) -> Self {
        let flows = hold(m.flows.get_or_create(&flow_labels(k)));
        Self {
            flows,
            reasons: Vec::new(),
            tls_versions: Vec::new(),
            client_auth: Vec::new(),
            downgrades: Vec::new(),
            cert_expiry: None,
        }
    }

    /// One flow with verdict `v` on the edge `k` (the edge these series are
    /// of); `client_auth` for a TLS flow (pipeline/client_auth.rs), and
    /// the notAfter (Unix seconds) of the server certificate it showed.
    pub fn count(
        &mut self,
        m: &Metrics,
        k: &EdgeLabels<'_>,
        v: &Verdict,
        client_auth: Option<&'static str>,
        cert_not_after: Option<i64>,
    ) {
        self.flows.inc();
        if v.reason != Reason::None {
            series(&mut self.reasons, v.reason, || {
                m.flow_reasons.get_or_create(&reason_labels(k, v.reason))
            })
            .inc();
        }
        if v.encryption == Encryption::Tls {
            series(&mut self.tls_versions, v.tls_version, || {
                m.tls_flows.get_or_create(&tls_labels(k, v.tls_version))
            })
            .inc();
        }
        if let Some(auth) = client_auth {
            series(&mut self.client_auth, auth, || {
                m.tls_client_auth
                    .get_or_create(&client_auth_labels(k, auth))
            })
            .inc();
        }
        if let Some(t) = cert_not_after {
            self.cert_expiry
                .get_or_insert_with(|| {
                    m.tls_certificate_expiry
                        .get_or_create(&flow_labels(k))
                        .clone()
                })
                .set(t);
        }
    }

    /// A downgrade event of `kind` on the edge `k` (pipeline/downgrade.rs).
    pub fn downgrade(&mut self, m: &Metrics, k: &EdgeLabels<'_>, kind: &'static str) {
        series(&mut self.downgrades, kind, || {
            m.downgrades.get_or_create(&downgrade_labels(k, kind))
        })
        .inc();
    }

    /// The edge `k` these series are of left the cap (recycled): each
    /// series no other admitted edge holds leaves `/metrics`. Should the
    /// edge come back, its series start again from 0, which Prometheus
    /// reads as a counter reset (`rate` and `increase` stay right).
    pub fn retire(self, m: &Metrics, k: &EdgeLabels<'_>) {
        if release(&self.flows) {
            m.flows.remove(&flow_labels(k));
        }
        for (reason, c) in &self.reasons {
            if release(c) {
                m.flow_reasons.remove(&reason_labels(k, *reason));
            }
        }
        for (version, c) in &self.tls_versions {
            if release(c) {
                m.tls_flows.remove(&tls_labels(k, *version));
            }
        }
        for (auth, c) in &self.client_auth {
            if release(c) {
                m.tls_client_auth.remove(&client_auth_labels(k, auth));
            }
        }
        for (kind, c) in &self.downgrades {
            if release(c) {
                m.downgrades.remove(&downgrade_labels(k, kind));
            }
        }
        if self.cert_expiry.is_some() {
            m.tls_certificate_expiry.remove(&flow_labels(k));
        }
    }
}

fn flow_labels(k: &EdgeLabels<'_>) -> FlowLabels {
    FlowLabels {
        client: k.client.to_string(),
        server: k.server.to_string(),
        server_port: k.server_port,
        protocol: k.protocol,
        encryption: k.encryption,
        policy: k.policy,
    }
}

fn reason_labels(k: &EdgeLabels<'_>, reason: Reason) -> ReasonLabels {
    ReasonLabels {
        client: k.client.to_string(),
        server: k.server.to_string(),
        server_port: k.server_port,
        protocol: k.protocol,
        encryption: k.encryption,
        reason: reason.as_str(),
    }
}

fn client_auth_labels(k: &EdgeLabels<'_>, client_auth: &'static str) -> ClientAuthLabels {
    ClientAuthLabels {
        client: k.client.to_string(),
        server: k.server.to_string(),
        server_port: k.server_port,
        client_auth,
    }
}

fn downgrade_labels(k: &EdgeLabels<'_>, kind: &'static str) -> DowngradeLabels {
    DowngradeLabels {
        client: k.client.to_string(),
        server: k.server.to_string(),
        server_port: k.server_port,
        kind,
    }
}

fn tls_labels(k: &EdgeLabels<'_>, version: TlsVersion) -> TlsLabels {
    TlsLabels {
        client: k.client.to_string(),
        server: k.server.to_string(),
        server_port: k.server_port,
        version: version.as_str(),
    }
}

/// The counter cached for `value`, from the family on first use (and then
/// held).
fn series<V: PartialEq, G: Deref<Target = EdgeCounter>>(
    cache: &mut Vec<(V, EdgeCounter)>,
    value: V,
    create: impl FnOnce() -> G,
) -> &EdgeCounter {
    let i = match cache.iter().position(|(v, _)| *v == value) {
        Some(i) => i,
        None => {
            cache.push((value, hold(create())));
            cache.len() - 1
        }
    };
    &cache[i].1
}

/// Content type of `prometheus_text`.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of the registry's own encoding.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry in OpenMetrics text.
pub fn openmetrics_text(reg: &Registry) -> Result<String, std::fmt::Error> {
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, reg)?;
    Ok(body)
}

/// OpenMetrics text rewritten as Prometheus text format 0.0.4, for
/// scrapers that do not ask for OpenMetrics (and `promtool check metrics`):
/// family names carry the sample suffix (`_total`, `_info`), `info`
/// becomes a gauge, and `# EOF`/`# UNIT` go.
pub fn prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').map_or("", |(_, text)| text));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "histogram" | "summary" => (name.to_owned(), kind),
                _ => (name.to_owned(), "untyped"),
            };
            if let Some(text) = help.take() {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if !line.starts_with('#') {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `plainsight_kernel_total` label of the derived eviction count.
pub const FLOWS_EVICTED: &str = "flows_evicted";

/// The label value of each kernel counter.
pub const fn stat_name(s: Stat) -> &'static str {
    match s {
        Stat::Packets => "packets",
        Stat::TcpPackets => "tcp_packets",
        Stat::PayloadSegments => "payload_segments_inspected",
        Stat::FlowsCreated => "flows_created",
        Stat::VerdictsEmitted => "verdicts_emitted",
        Stat::EventsLost => "events_lost",
        Stat::ParseTruncated => "parse_truncated",
        Stat::ParseFragment => "parse_fragment",
        Stat::ParseIpv6ExtLimit => "parse_ipv6_ext_limit",
        Stat::FlowTableFull => "flow_table_full",
        Stat::PayloadLoadFailed => "payload_load_failed",
        Stat::FlowsClosed => "flows_closed",
        Stat::Loopback => "loopback_skipped",
        Stat::ParseBadTcpOffset => "parse_bad_tcp_offset",
        Stat::NotTcp => "not_tcp",
        Stat::TailCallFailed => "tail_call_failed",
        Stat::SocketFastPath => "socket_fast_path",
        Stat::HellosExported => "tls_hellos_exported",
        Stat::HellosLost => "tls_hellos_lost",
        Stat::PureAcks => "pure_acks",
        Stat::RecentFastPath => "recent_fast_path",
        Stat::EmbryosCreated => "embryos_created",
        Stat::EmbryosPromoted => "embryos_promoted",
        Stat::EmbryosClosed => "embryos_closed",
        Stat::CredentialScans => "credential_scans",
        Stat::SecondSightings => "second_sightings",
    }
}

#[cfg(test)]
mod tests;
