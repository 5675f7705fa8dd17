//! `plainsight report`: the evidence an auditor asks for, from an edge list
//! (one agent's API, or the fleet from Prometheus) and the allow-rules:
//! how much is encrypted, every plaintext edge with its reason and owner,
//! every exception with its owner and expiry, the TLS inventory per server,
//! and what the method cannot see. `Report` is the one model; `html` and
//! `csv` render it, JSON is its serde form (a contract: the golden test).

pub mod csv;
pub mod html;

use crate::export::edge_list::{EdgeJson, EdgeList, RuleJson};
use serde::Serialize;
use std::collections::BTreeMap;

/// Rules expiring within this many days are listed as expiring soon.
pub const EXPIRING_DAYS: i64 = 30;
const DAY_NS: i128 = 86_400 * 1_000_000_000;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub generated: String,
    /// Where the edges came from, e.g. `agent http://127.0.0.1:9477` or
    /// `prometheus http://prom:9090, last 7d`.
    pub source: String,
    pub summary: Summary,
    /// Credentials first, then violations, then most flows.
    pub plaintext_edges: Vec<PlaintextEdge>,
    pub rules: Vec<RuleRow>,
    /// One row per server and port seen with TLS.
    pub tls_inventory: Vec<InventoryRow>,
    /// The method and its limits, in plain words.
    pub method: Vec<&'static str>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub edges: u64,
    pub edges_encrypted: u64,
    pub edges_plaintext: u64,
    pub flows: u64,
    pub flows_encrypted: u64,
    /// Percent, one decimal; null with nothing seen.
    pub edges_encrypted_percent: Option<f64>,
    pub flows_encrypted_percent: Option<f64>,
    pub violations: u64,
    pub edges_with_credentials: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlaintextEdge {
    pub client: String,
    pub server: String,
    pub server_port: u16,
    pub protocol: String,
    pub policy: String,
    pub flows: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// `cleartext_credentials` first, then the verdict's other reasons;
    /// `plaintext` when the verdict gave none.
    pub reason: String,
    /// The owner of the rule that allows (or allowed, if expired) it; null
    /// when no rule names an owner: nobody has accepted this edge.
    pub owner: Option<String>,
    pub rule: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleRow {
    pub name: String,
    pub owner: String,
    pub reason: String,
    pub expires: Option<String>,
    /// Flows this rule allowed (edges naming it); null when the source
    /// cannot tell (Prometheus carries no rule names).
    pub flows_allowed: Option<u64>,
    pub expired: bool,
    pub expiring_soon: bool,
}

/// A server's TLS as seen. `seen` maps a column (`tls_versions`,
/// `ciphers`, ...) to flows per value: a new fact about TLS is a new key,
/// and every renderer shows every key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InventoryRow {
    pub server: String,
    pub server_port: u16,
    pub flows: u64,
    pub seen: BTreeMap<&'static str, BTreeMap<String, u64>>,
}

/// A rule as the report lists it.
#[derive(Clone, Debug)]
pub struct RuleFacts {
    pub name: String,
    pub owner: String,
    pub reason: String,
    pub expires_ns: Option<i128>,
    pub expires: Option<String>,
}

pub const METHOD: [&str; 7] = [
    "plainsight watches TCP connections on each node with eBPF programs attached to cgroups or network interfaces and classifies each connection from its first bytes: TLS (version and cipher from the handshake), another encryption (e.g. SSH), a known plaintext protocol, or unknown. Payload never leaves the kernel; only the verdict does.",
    "An edge is one client identity, server identity and server port (identities: Kubernetes workloads, configured network names, else addresses). A flow is one TCP connection.",
    "Each plaintext edge is judged against the allow-rules: allowed (a rule with an owner, a reason and an optional expiry accepts it) or a violation.",
    "Not seen: traffic of nodes without the agent; UDP and QUIC; connections that began before the agent started are judged mid-stream, with less certainty; encryption inside an unknown protocol is reported as unknown, not as encrypted.",
    "TLS is reported as encrypted whatever its version and cipher: weak versions appear in the inventory and as weak_tls, and a certificate's validity is not checked by this report.",
    "Counts are since the agent started (from an agent) or over the stated window (from Prometheus, at the window's step resolution; a connection between two nodes that both run the agent is counted by each). An agent keeps at most edges.max edges; flows beyond it are counted as \"other\".",
    "From Prometheus, addresses, server names, cipher suites and the rule behind each edge are not available (they are not metric labels): use the agent's report for them.",
];

/// Builds the report of `list` against `rules` at `now_ns`.
pub fn build(list: &EdgeList, rules: &[RuleFacts], source: String, now_ns: i64) -> Report {
    let edges = &list.edges;
    let encrypted = |e: &EdgeJson| matches!(e.encryption.as_str(), "tls" | "encrypted");
    let sum = |f: &dyn Fn(&EdgeJson) -> bool| -> (u64, u64) {
        edges
            .iter()
            .filter(|e| f(e))
            .fold((0, 0), |(n, fl), e| (n + 1, fl + e.flows))
    };
    let (n_edges, flows) = sum(&|_| true);
    let (edges_encrypted, flows_encrypted) = sum(&encrypted);
    let (edges_plaintext, _) = sum(&|e| e.encryption == "plaintext");
    let (violations, _) = sum(&|e| e.policy == "violation");
    let (edges_with_credentials, _) = sum(&credentials);
    let percent = |part: u64, whole: u64| {
        (whole > 0).then(|| (part as f64 * 1000.0 / whole as f64).round() / 10.0)
    };

    let mut plaintext: Vec<PlaintextEdge> = edges
        .iter()
        .filter(|e| e.encryption == "plaintext")
        .map(|e| {
            let rule: Option<&RuleJson> = e.rule.as_ref().or(e.expired_rule.as_ref());
            PlaintextEdge {
                client: e.client.clone(),
                server: e.server.clone(),
                server_port: e.server_port,
                protocol: e.protocol.clone(),
                policy: e.policy.clone(),
                flows: e.flows,
                first_seen: e.first_seen.clone(),
                last_seen: e.last_seen.clone(),
                reason: reason(e),
                owner: rule.map(|r| r.owner.clone()),
                rule: rule.map(|r| r.name.clone()),
            }
        })
        .collect();
    plaintext.sort_by(|a, b| {
        let key =
            |p: &PlaintextEdge| (p.reason != "cleartext_credentials", p.policy != "violation");
        key(a)
            .cmp(&key(b))
            .then_with(|| b.flows.cmp(&a.flows))
            .then_with(|| {
                (&a.client, &a.server, a.server_port).cmp(&(&b.client, &b.server, b.server_port))
            })
    });

    // Rules from the configuration, else those the edges name.
    let mut facts: Vec<RuleFacts> = rules.to_vec();
    if facts.is_empty() {
        for r in edges
            .iter()
            .filter_map(|e| e.rule.as_ref().or(e.expired_rule.as_ref()))
        {
            if !facts.iter().any(|f| f.name == r.name) {
                facts.push(RuleFacts {
                    name: r.name.clone(),
                    owner: r.owner.clone(),
                    reason: r.reason.clone(),
                    expires_ns: r
                        .expires
                        .as_deref()
                        .and_then(crate::clock::parse_rfc3339_utc)
                        .map(i128::from),
                    expires: r.expires.clone(),
                });
            }
        }
    }
    let names_rules = edges
        .iter()
        .any(|e| e.rule.is_some() || e.expired_rule.is_some())
        || list.agent.is_some();
    let now = i128::from(now_ns);
    let rules = facts
        .iter()
        .map(|r| RuleRow {
            name: r.name.clone(),
            owner: r.owner.clone(),
            reason: r.reason.clone(),
            expires: r.expires.clone(),
            flows_allowed: names_rules.then(|| {
                edges
                    .iter()
                    .filter(|e| e.rule.as_ref().is_some_and(|x| x.name == r.name))
                    .map(|e| e.flows)
                    .sum()
            }),
            expired: r.expires_ns.is_some_and(|t| t <= now),
            expiring_soon: r
                .expires_ns
                .is_some_and(|t| t > now && t <= now + i128::from(EXPIRING_DAYS) * DAY_NS),
        })
        .collect();

    let mut inventory: BTreeMap<(String, u16), InventoryRow> = BTreeMap::new();
    for e in edges.iter().filter(|e| e.encryption == "tls") {
        let row = inventory
            .entry((e.server.clone(), e.server_port))
            .or_insert_with(|| InventoryRow {
                server: e.server.clone(),
                server_port: e.server_port,
                flows: 0,
                seen: BTreeMap::new(),
            });
        row.flows += e.flows;
        for (column, counts) in [("tls_versions", &e.tls_versions), ("ciphers", &e.ciphers)] {
            let into = row.seen.entry(column).or_default();
            for (k, n) in counts {
                *into.entry(k.clone()).or_default() += n;
            }
        }
    }

    Report {
        generated: crate::clock::rfc3339(now_ns),
        source,
        summary: Summary {
            edges: n_edges,
            edges_encrypted,
            edges_plaintext,
            flows,
            flows_encrypted,
            edges_encrypted_percent: percent(edges_encrypted, n_edges),
            flows_encrypted_percent: percent(flows_encrypted, flows),
            violations,
            edges_with_credentials,
        },
        plaintext_edges: plaintext,
        rules,
        tls_inventory: inventory.into_values().collect(),
        method: METHOD.to_vec(),
    }
}

fn credentials(e: &EdgeJson) -> bool {
    e.reasons
        .get("cleartext_credentials")
        .is_some_and(|&n| n > 0)
}

/// What matters most about a plaintext edge, in one word.
fn reason(e: &EdgeJson) -> String {
    if credentials(e) {
        return "cleartext_credentials".into();
    }
    let mut others: Vec<(&String, &u64)> = e.reasons.iter().filter(|(_, n)| **n > 0).collect();
    others.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    others
        .first()
        .map_or_else(|| "plaintext".into(), |(k, _)| (*k).clone())
}

#[cfg(test)]
mod tests;
