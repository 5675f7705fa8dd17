//! The report as one self-contained HTML file: inline style, no script,
//! no external resource; laid out for print (tables repeat their header on
//! each page, sections start on a new page only when long).

use super::{InventoryRow, Report};
use std::fmt::Write as _;

const STYLE: &str = "
body { font: 11pt/1.4 system-ui, sans-serif; color: #1c2833; margin: 2rem; }
h1 { font-size: 18pt; margin-bottom: 0; } h2 { font-size: 13pt; margin-top: 1.6rem; border-bottom: 1px solid #aab7b8; }
.meta { color: #566573; } .bad { color: #a93226; font-weight: bold; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; } .card { border: 1px solid #aab7b8; padding: .4rem .8rem; min-width: 8rem; }
.card b { display: block; font-size: 16pt; }
table { border-collapse: collapse; width: 100%; font-size: 9.5pt; } thead { display: table-header-group; }
th, td { border-bottom: 1px solid #d5d8dc; padding: .2rem .4rem; text-align: left; vertical-align: top; }
th { background: #eaeded; } td.num { text-align: right; }
tr.credentials td { background: #fadbd8; } tr { break-inside: avoid; }
ol li { margin-bottom: .3rem; }
@page { margin: 14mm; } @media print { body { margin: 0; } }
";

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn percent(p: Option<f64>) -> String {
    p.map_or_else(|| "–".into(), |p| format!("{p} %"))
}

pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let s = &r.summary;
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>plainsight encryption report {gen}</title><style>{STYLE}</style></head><body>\
         <h1>Encryption of internal traffic</h1>\
         <p class=\"meta\">plainsight report, generated {gen}; source: {src}</p>\
         <h2>Summary</h2><div class=\"cards\">\
         <div class=\"card\"><b>{fe}</b>of flows encrypted ({fen} of {f})</div>\
         <div class=\"card\"><b>{ee}</b>of edges encrypted ({een} of {e})</div>\
         <div class=\"card\"><b>{pt}</b>plaintext edges</div>\
         <div class=\"card\"><b class=\"{vc}\">{v}</b>violations</div>\
         <div class=\"card\"><b class=\"{cc}\">{c}</b>edges with cleartext credentials</div></div>",
        gen = esc(&r.generated),
        src = esc(&r.source),
        fe = percent(s.flows_encrypted_percent),
        fen = s.flows_encrypted,
        f = s.flows,
        ee = percent(s.edges_encrypted_percent),
        een = s.edges_encrypted,
        e = s.edges,
        pt = s.edges_plaintext,
        v = s.violations,
        vc = if s.violations > 0 { "bad" } else { "" },
        c = s.edges_with_credentials,
        cc = if s.edges_with_credentials > 0 { "bad" } else { "" },
    );

    h.push_str("<h2>Plaintext edges</h2>");
    if r.plaintext_edges.is_empty() {
        h.push_str("<p>None seen.</p>");
    } else {
        h.push_str(
            "<table><thead><tr><th>client</th><th>server</th><th>port</th><th>protocol</th>\
             <th>reason</th><th>policy</th><th>owner</th><th>rule</th><th>flows</th>\
             <th>first seen</th><th>last seen</th></tr></thead><tbody>",
        );
        for p in &r.plaintext_edges {
            let class = if p.reason == "cleartext_credentials" {
                " class=\"credentials\""
            } else {
                ""
            };
            let _ = write!(
                h,
                "<tr{class}><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.client),
                esc(&p.server),
                p.server_port,
                esc(&p.protocol),
                esc(&p.reason),
                esc(&p.policy),
                esc(p.owner.as_deref().unwrap_or("none")),
                esc(p.rule.as_deref().unwrap_or("")),
                p.flows,
                esc(&p.first_seen),
                esc(&p.last_seen),
            );
        }
        h.push_str("</tbody></table>");
    }

    h.push_str("<h2>Allow-rules (exceptions)</h2>");
    if r.rules.is_empty() {
        h.push_str("<p>No allow-rule.</p>");
    } else {
        h.push_str(
            "<table><thead><tr><th>rule</th><th>owner</th><th>reason</th><th>expires</th>\
             <th>state</th><th>flows allowed</th></tr></thead><tbody>",
        );
        for rule in &r.rules {
            let state = if rule.expired {
                "<span class=\"bad\">expired</span>"
            } else if rule.expiring_soon {
                "<span class=\"bad\">expires within 30 days</span>"
            } else {
                "active"
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{state}</td><td class=\"num\">{}</td></tr>",
                esc(&rule.name),
                esc(&rule.owner),
                esc(&rule.reason),
                esc(rule.expires.as_deref().unwrap_or("never")),
                rule.flows_allowed
                    .map_or_else(|| "n/a".into(), |n| n.to_string()),
            );
        }
        h.push_str("</tbody></table>");
    }

    h.push_str("<h2>TLS inventory (per server)</h2>");
    inventory(&mut h, &r.tls_inventory);

    h.push_str("<h2>Method and limits</h2><ol>");
    for m in &r.method {
        let _ = write!(h, "<li>{}</li>", esc(m));
    }
    h.push_str("</ol></body></html>\n");
    h
}

/// Every column any row has, so a new kind of TLS fact needs no change here.
fn inventory(h: &mut String, rows: &[InventoryRow]) {
    if rows.is_empty() {
        h.push_str("<p>No TLS seen.</p>");
        return;
    }
    let mut columns: Vec<&str> = rows.iter().flat_map(|r| r.seen.keys().copied()).collect();
    columns.sort_unstable();
    columns.dedup();
    h.push_str("<table><thead><tr><th>server</th><th>port</th><th>flows</th>");
    for c in &columns {
        let _ = write!(h, "<th>{}</th>", esc(&c.replace('_', " ")));
    }
    h.push_str("</tr></thead><tbody>");
    for r in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
            esc(&r.server),
            r.server_port,
            r.flows
        );
        for c in &columns {
            let cell = r.seen.get(c).map(super::csv::counts).unwrap_or_default();
            let _ = write!(h, "<td>{}</td>", esc(&cell));
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>");
}
