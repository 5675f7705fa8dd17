//! The edge view as a document: what `GET /api/v1/edges` serves (from the
//! pipeline's edge table), what `plainsight edges` reads back, and what the
//! edge table prints. The shape is a contract (README "JSON API").

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeList {
    pub edges: Vec<EdgeJson>,
    pub dropped_flows: u64,
    /// The serving agent's state, so an empty list can say why it is empty
    /// (absent in replay's list, which has no agent behind it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentJson>,
}

/// `"agent"` of `/api/v1/edges`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentJson {
    pub uptime_secs: u64,
    /// Verdicts received from the kernel since start: one per TCP flow.
    pub flows_classified: u64,
    /// Loopback traffic is watched (`--include-loopback`).
    pub include_loopback: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeJson {
    pub client: String,
    pub server: String,
    pub server_port: u16,
    pub protocol: String,
    pub encryption: String,
    pub policy: String,
    pub flows: u64,
    pub reasons: BTreeMap<String, u64>,
    pub tls_versions: BTreeMap<String, u64>,
    /// TLS flows by how the client authenticated (`mutual`,
    /// `server_only`, `unknown`; README "Mutual TLS").
    #[serde(default)]
    pub client_auth: BTreeMap<String, u64>,
    /// Flows per server-certificate issue (`expired`, `self_signed`, ...;
    /// README "Server certificates"), where TLS ≤ 1.2 showed it.
    #[serde(default)]
    pub cert_issues: BTreeMap<String, u64>,
    /// The earliest notAfter of the server certificates seen (RFC 3339).
    #[serde(default)]
    pub cert_not_after: Option<String>,
    /// Downgrade events on this edge by kind (`plaintext`, `tls_version`,
    /// `client_auth`; README "Downgrades").
    #[serde(default)]
    pub downgrades: BTreeMap<String, u64>,
    pub midstream_flows: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub client_addrs: Vec<String>,
    pub server_addrs: Vec<String>,
    /// The rule that allowed an `allowed` edge; for a `violation`, null.
    pub rule: Option<RuleJson>,
    /// For a `violation`: the expired rule that used to allow it.
    #[serde(default)]
    pub expired_rule: Option<RuleJson>,
    /// Sample server names from the TLS ClientHellos (at most `SAMPLE_SNI`).
    #[serde(default)]
    pub sni: Vec<String>,
    /// Flows per ALPN protocol (the server's choice, else the client's only
    /// offer); at most `MAX_TLS_KEYS` ids, then `other`.
    #[serde(default)]
    pub alpn: BTreeMap<String, u64>,
    /// Flows per cipher suite (IANA name, or `0x` + code), bounded likewise.
    #[serde(default)]
    pub ciphers: BTreeMap<String, u64>,
    /// The protocol inside the TLS, as ALPN names it (`http2` for h2,
    /// `http` for http/1.1, `postgres` for postgresql, ...), from most flows.
    #[serde(default)]
    pub inner_protocol: Option<String>,
}

impl EdgeJson {
    /// An edge with its key and counts only: no reasons, TLS facts,
    /// addresses or rule yet (what a source that knows only the key fills
    /// in, e.g. the fleet view from Prometheus).
    pub fn keyed(
        [client, server, protocol, encryption, policy]: [String; 5],
        server_port: u16,
        flows: u64,
        [first_seen, last_seen]: [String; 2],
    ) -> Self {
        Self {
            client,
            server,
            server_port,
            protocol,
            encryption,
            policy,
            flows,
            reasons: BTreeMap::new(),
            tls_versions: BTreeMap::new(),
            client_auth: BTreeMap::new(),
            cert_issues: BTreeMap::new(),
            cert_not_after: None,
            downgrades: BTreeMap::new(),
            midstream_flows: 0,
            first_seen,
            last_seen,
            client_addrs: Vec::new(),
            server_addrs: Vec::new(),
            rule: None,
            expired_rule: None,
            sni: Vec::new(),
            alpn: BTreeMap::new(),
            ciphers: BTreeMap::new(),
            inner_protocol: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleJson {
    pub name: String,
    pub owner: String,
    pub reason: String,
    pub expires: Option<String>,
}
