//! The report as one CSV table (RFC 4180): a `section` column says what
//! each row is (`summary`, `plaintext_edge`, `rule`, `tls`), so a
//! spreadsheet filters by it; TLS facts go in `detail` as `key: value ×n`.

use super::Report;
use std::collections::BTreeMap;

const HEADER: [&str; 15] = [
    "section",
    "client",
    "server",
    "server_port",
    "protocol",
    "policy",
    "flows",
    "first_seen",
    "last_seen",
    "reason",
    "owner",
    "rule",
    "expires",
    "state",
    "detail",
];

/// `a ×2, b ×1`, most first.
pub fn counts(m: &BTreeMap<String, u64>) -> String {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    v.iter()
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

pub fn render(r: &Report) -> String {
    let mut out = HEADER.join(",") + "\r\n";
    let mut row = |cells: [&str; 15]| {
        out.push_str(&cells.map(field).join(","));
        out.push_str("\r\n");
    };
    let s = &r.summary;
    let pct = |p: Option<f64>| p.map_or_else(String::new, |p| p.to_string());
    let summary = format!(
        "generated {}; edges {}, encrypted {} ({} %); flows {}, encrypted {} ({} %); violations {}; credentials {}",
        r.generated,
        s.edges,
        s.edges_encrypted,
        pct(s.edges_encrypted_percent),
        s.flows,
        s.flows_encrypted,
        pct(s.flows_encrypted_percent),
        s.violations,
        s.edges_with_credentials
    );
    let flows = s.flows.to_string();
    row([
        "summary", "", "", "", "", "", &flows, "", "", "", "", "", "", "", &summary,
    ]);
    for p in &r.plaintext_edges {
        let (port, flows) = (p.server_port.to_string(), p.flows.to_string());
        row([
            "plaintext_edge",
            &p.client,
            &p.server,
            &port,
            &p.protocol,
            &p.policy,
            &flows,
            &p.first_seen,
            &p.last_seen,
            &p.reason,
            p.owner.as_deref().unwrap_or(""),
            p.rule.as_deref().unwrap_or(""),
            "",
            "",
            "",
        ]);
    }
    for rule in &r.rules {
        let flows = rule
            .flows_allowed
            .map(|n| n.to_string())
            .unwrap_or_default();
        let state = if rule.expired {
            "expired"
        } else if rule.expiring_soon {
            "expiring_soon"
        } else {
            "active"
        };
        row([
            "rule",
            "",
            "",
            "",
            "",
            "allowed",
            &flows,
            "",
            "",
            &rule.reason,
            &rule.owner,
            &rule.name,
            rule.expires.as_deref().unwrap_or(""),
            state,
            "",
        ]);
    }
    for t in &r.tls_inventory {
        let (port, flows) = (t.server_port.to_string(), t.flows.to_string());
        let detail = t
            .seen
            .iter()
            .map(|(k, m)| format!("{k}: {}", counts(m)))
            .collect::<Vec<_>>()
            .join("; ");
        row([
            "tls", "", &t.server, &port, "", "", &flows, "", "", "", "", "", "", "", &detail,
        ]);
    }
    out
}
