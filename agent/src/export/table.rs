//! The edge table `plainsight edges` and `plainsight replay` print.

use super::edge_list::EdgeJson;
use std::io::{self, Write};

const HEAD: [&str; 9] = [
    "CLIENT",
    "SERVER",
    "PORT",
    "PROTOCOL",
    "ENCRYPTION",
    "AUTH",
    "POLICY",
    "FLOWS",
    "LAST-SEEN",
];
/// FLOWS is a number: right-aligned.
const FLOWS: usize = 7;

/// The AUTH cell: how the clients of the edge's TLS flows authenticated
/// (`mutual`, `server_only`, `unknown`), `mixed` when they differ, `-`
/// for an edge without TLS.
fn auth(e: &EdgeJson) -> String {
    let mut seen = e.client_auth.iter().filter(|(_, n)| **n > 0);
    match (seen.next(), seen.next()) {
        (None, _) => "-".into(),
        (Some((only, _)), None) => only.clone(),
        _ => "mixed".into(),
    }
}

/// Aligned columns, one edge a line, in the order given; `last_seen`
/// renders the last column.
pub fn write(
    w: &mut impl Write,
    edges: &[EdgeJson],
    last_seen: impl Fn(&EdgeJson) -> String,
) -> io::Result<()> {
    let rows: Vec<[String; 9]> = edges
        .iter()
        .map(|e| {
            [
                e.client.clone(),
                e.server.clone(),
                e.server_port.to_string(),
                e.protocol.clone(),
                e.encryption.clone(),
                auth(e),
                e.policy.clone(),
                e.flows.to_string(),
                last_seen(e),
            ]
        })
        .collect();
    let mut width = HEAD.map(str::len);
    for row in &rows {
        for (wd, cell) in width.iter_mut().zip(row) {
            *wd = (*wd).max(cell.chars().count());
        }
    }
    let head = HEAD.map(String::from);
    for row in std::iter::once(&head).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, wd)) in row.iter().zip(width).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if i == FLOWS {
                line.push_str(&format!("{cell:>wd$}"));
            } else {
                line.push_str(&format!("{cell:<wd$}"));
            }
        }
        writeln!(w, "{}", line.trim_end())?;
    }
    Ok(())
}
