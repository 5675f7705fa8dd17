//! Every metric plainsight exports, declared in one place. Names and labels
//! are the DESIGN.md contract: dashboards and alerts depend on them.

use agent_common::wire::Stat;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, info::Info},
    registry::Registry,
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KernelLabels {
    pub counter: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    pub hook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

pub struct Metrics {
    pub flows: Family<FlowLabels, Counter>,
    pub tls_flows: Family<TlsLabels, Counter>,
    pub flow_reasons: Family<ReasonLabels, Counter>,
    pub events_received: Counter,
    pub events_lost: Counter,
    pub events_malformed: Counter,
    pub kernel: Family<KernelLabels, Counter>,
    pub flow_table_capacity: Gauge,
    pub flow_table_entries: Gauge,
    pub flow_table_evictions: Counter,
    pub programs_attached: Family<HookLabels, Gauge>,
}

impl Metrics {
    pub fn register(reg: &mut Registry) -> Self {
        let m = Self {
            flows: Family::default(),
            tls_flows: Family::default(),
            flow_reasons: Family::default(),
            events_received: Counter::default(),
            events_lost: Counter::default(),
            events_malformed: Counter::default(),
            kernel: Family::default(),
            flow_table_capacity: Gauge::default(),
            flow_table_entries: Gauge::default(),
            flow_table_evictions: Counter::default(),
            programs_attached: Family::default(),
        };
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
            "plainsight_build",
            "Build information",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        m
    }
}

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
    }
}
