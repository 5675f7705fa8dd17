//! What replay prints: the edge table of `plainsight edges`, or one JSON
//! object per flow.

use super::FlowRecord;
use crate::policy;
use agent_common::{Reason, TlsVersion};
use std::{
    collections::BTreeMap,
    io::{self, Write},
    net::IpAddr,
};

/// The `--json` line of one flow (DESIGN.md "CLI"); field order is the
/// contract.
#[derive(serde::Serialize)]
struct JsonFlow<'a> {
    client: String,
    server: String,
    protocol: &'a str,
    encryption: &'a str,
    tls_version: Option<&'a str>,
    reason: Option<&'a str>,
    midstream: bool,
}

pub fn json_line(r: &FlowRecord) -> String {
    let v = &r.verdict;
    let line = JsonFlow {
        // SocketAddr prints IPv6 as "[addr]:port".
        client: r.client.to_string(),
        server: r.server.to_string(),
        protocol: v.protocol.as_str(),
        encryption: v.encryption.as_str(),
        tls_version: (v.tls_version != TlsVersion::Unknown).then(|| v.tls_version.as_str()),
        reason: (v.reason != Reason::None).then(|| v.reason.as_str()),
        midstream: r.midstream,
    };
    // Serialising strings and booleans cannot fail.
    serde_json::to_string(&line).unwrap_or_default()
}

/// Flows aggregated into edges, as the live agent aggregates them.
#[derive(Default)]
pub struct Edges {
    edges: BTreeMap<EdgeKey, Edge>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct EdgeKey {
    client: IpAddr,
    server: IpAddr,
    port: u16,
    protocol: &'static str,
    encryption: &'static str,
    policy: &'static str,
}

struct Edge {
    flows: u64,
    last_seen_ns: i64,
}

impl Edges {
    pub fn add(&mut self, r: &FlowRecord) {
        let key = EdgeKey {
            client: r.client.ip(),
            server: r.server.ip(),
            port: r.server.port(),
            protocol: r.verdict.protocol.as_str(),
            encryption: r.verdict.encryption.as_str(),
            policy: policy::evaluate(&r.verdict).as_str(),
        };
        let e = self.edges.entry(key).or_insert(Edge {
            flows: 0,
            last_seen_ns: r.ts_ns,
        });
        e.flows += 1;
        e.last_seen_ns = e.last_seen_ns.max(r.ts_ns);
    }

    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Aligned columns: CLIENT SERVER PORT PROTOCOL ENCRYPTION POLICY FLOWS LAST-SEEN.
    pub fn write_table(&self, w: &mut impl Write) -> io::Result<()> {
        const HEAD: [&str; 8] = [
            "CLIENT",
            "SERVER",
            "PORT",
            "PROTOCOL",
            "ENCRYPTION",
            "POLICY",
            "FLOWS",
            "LAST-SEEN",
        ];
        let rows: Vec<[String; 8]> = self
            .edges
            .iter()
            .map(|(k, e)| {
                [
                    k.client.to_string(),
                    k.server.to_string(),
                    k.port.to_string(),
                    k.protocol.to_string(),
                    k.encryption.to_string(),
                    k.policy.to_string(),
                    e.flows.to_string(),
                    rfc3339(e.last_seen_ns),
                ]
            })
            .collect();
        let mut width = HEAD.map(str::len);
        for row in &rows {
            for (wd, cell) in width.iter_mut().zip(row) {
                *wd = (*wd).max(cell.len());
            }
        }
        let head = HEAD.map(String::from);
        for row in std::iter::once(&head).chain(&rows) {
            let mut line = String::new();
            for (i, (cell, wd)) in row.iter().zip(width).enumerate() {
                match i {
                    0 => {}
                    _ => line.push_str("  "),
                }
                // FLOWS is a number: right-aligned.
                if i == 6 {
                    line.push_str(&format!("{cell:>wd$}"));
                } else {
                    line.push_str(&format!("{cell:<wd$}"));
                }
            }
            writeln!(w, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// RFC 3339 UTC with second precision, e.g. `2024-05-01T12:00:00Z`.
pub fn rfc3339(ts_ns: i64) -> String {
    let secs = ts_ns.div_euclid(1_000_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::{Encryption, Protocol, Verdict};

    fn rec(client: &str, server: &str, v: Verdict, midstream: bool, ts_ns: i64) -> FlowRecord {
        FlowRecord {
            client: client.parse().expect("addr"),
            server: server.parse().expect("addr"),
            verdict: v,
            midstream,
            ts_ns,
        }
    }

    #[test]
    fn json_is_the_documented_shape() {
        let r = rec(
            "10.0.0.1:51234",
            "10.0.0.2:5432",
            Verdict::plaintext(Protocol::Postgres),
            false,
            0,
        );
        assert_eq!(
            json_line(&r),
            r#"{"client":"10.0.0.1:51234","server":"10.0.0.2:5432","protocol":"postgres","encryption":"plaintext","tls_version":null,"reason":null,"midstream":false}"#
        );
        let mut v = Verdict::new(Protocol::Tls, Encryption::Tls);
        v.tls_version = TlsVersion::Tls13;
        let r = rec(
            "[fd00::1]:40000",
            "[fd00::2]:443",
            v.with_reason(Reason::Midstream),
            true,
            0,
        );
        assert_eq!(
            json_line(&r),
            r#"{"client":"[fd00::1]:40000","server":"[fd00::2]:443","protocol":"tls","encryption":"tls","tls_version":"1.3","reason":"midstream","midstream":true}"#
        );
    }

    #[test]
    fn edges_aggregate_by_peer_port_and_verdict() {
        let http = Verdict::plaintext(Protocol::Http);
        let mut e = Edges::default();
        e.add(&rec(
            "10.0.0.1:40000",
            "10.0.0.2:80",
            http,
            false,
            5_000_000_000,
        ));
        e.add(&rec(
            "10.0.0.1:40001",
            "10.0.0.2:80",
            http,
            false,
            7_000_000_000,
        ));
        e.add(&rec(
            "10.0.0.1:40002",
            "10.0.0.2:8080",
            http,
            false,
            1_000_000_000,
        ));
        let mut out = Vec::new();
        e.write_table(&mut out).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(
            text,
            "CLIENT    SERVER    PORT  PROTOCOL  ENCRYPTION  POLICY     FLOWS  LAST-SEEN\n\
             10.0.0.1  10.0.0.2  80    http      plaintext   violation      2  1970-01-01T00:00:07Z\n\
             10.0.0.1  10.0.0.2  8080  http      plaintext   violation      1  1970-01-01T00:00:01Z\n"
        );
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_999_999_999), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
