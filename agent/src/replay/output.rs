//! What replay prints: the edge table of `plainsight edges`, or one JSON
//! object per flow; both named and judged by the live agent's pipeline.

use super::FlowRecord;
use crate::{
    export::{edge_list::EdgeList, table},
    pipeline::{
        Judgement, Pipeline,
        client_auth::{self, ClientAuth},
        flow::Flow,
        identity::Resolver,
        policy::PolicySet,
        tls_hello,
    },
};
use agent_common::{Protocol, Reason, TlsVersion};
use std::{
    borrow::Cow,
    io::{self, Write},
    sync::PoisonError,
};

/// The `--json` line of one flow (docs/architecture.md "CLI"); field order
/// is the contract. The TLS hello fields come after those, null when the flow
/// showed no hello (or the hello not that field).
#[derive(serde::Serialize)]
struct JsonFlow<'a> {
    client: String,
    server: String,
    protocol: &'a str,
    encryption: &'a str,
    tls_version: Option<&'a str>,
    reason: Option<&'a str>,
    midstream: bool,
    /// Identities (`[identities]` names, else the address) and the policy
    /// outcome, with the allow-rule that allowed the flow.
    client_identity: &'a str,
    server_identity: &'a str,
    policy: &'a str,
    rule: Option<&'a str>,
    sni: Option<&'a str>,
    /// The ALPN protocol (server's choice, else the client's only offer).
    alpn: Option<&'a str>,
    cipher: Option<Cow<'static, str>>,
    inner_protocol: Option<&'a str>,
    /// How the client authenticated (pipeline/client_auth.rs); null when
    /// the flow is not TLS.
    client_auth: Option<&'static str>,
    /// The server certificate's problems at the flow's time (`[]` when
    /// clean); null when the certificate was not seen (TLS 1.3, resumption;
    /// README "Server certificates").
    cert_issues: Option<Vec<&'static str>>,
    /// The server certificate's notAfter (RFC 3339), null when not seen.
    cert_not_after: Option<String>,
}

fn json_line(r: &FlowRecord, j: &Judgement) -> String {
    let v = &r.verdict;
    let cert = r.tls.certificate(r.ts_ns);
    let line = JsonFlow {
        // SocketAddr prints IPv6 as "[addr]:port".
        client: r.client.to_string(),
        server: r.server.to_string(),
        protocol: v.protocol.as_str(),
        encryption: v.encryption.as_str(),
        tls_version: (v.tls_version != TlsVersion::Unknown).then(|| v.tls_version.as_str()),
        reason: (v.reason != Reason::None).then(|| v.reason.as_str()),
        midstream: r.midstream,
        client_identity: &j.client.name,
        server_identity: &j.server.name,
        policy: j.decision.policy.as_str(),
        rule: j.decision.rule.as_deref().map(|rule| rule.name.as_str()),
        sni: r.tls.sni.as_deref(),
        alpn: r.tls.alpn(),
        cipher: r.tls.cipher.map(tls_hello::cipher_name),
        inner_protocol: r.tls.inner_protocol().map(Protocol::as_str),
        client_auth: client_auth::of(v, &r.tls).map(ClientAuth::as_str),
        cert_issues: cert
            .as_ref()
            .map(|(issues, _)| issues.iter().map(|i| i.as_str()).collect()),
        cert_not_after: cert.map(|(_, not_after)| not_after),
    };
    // Serialising strings and booleans cannot fail.
    serde_json::to_string(&line).unwrap_or_default()
}

/// What replay prints, from flows run through the live agent's pipeline:
/// named, judged, and (for the table) aggregated into edges without a cap.
pub struct Report {
    pipeline: Pipeline,
}

impl Default for Report {
    /// Addresses as identities, no allow-rules.
    fn default() -> Self {
        Self::new(Resolver::default(), PolicySet::default(), 0)
    }
}

fn flow(r: &FlowRecord) -> Flow {
    Flow {
        client: r.client.ip(),
        client_port: r.client.port(),
        server: r.server.ip(),
        server_port: r.server.port(),
        hook: None,
        verdict: r.verdict,
        midstream: r.midstream,
        tls: r.tls.clone(),
    }
}

impl Report {
    /// Rules expire as of `judge_at_ns`, not the capture's time.
    pub fn new(resolver: Resolver, policy: PolicySet, judge_at_ns: i64) -> Self {
        Self {
            pipeline: Pipeline::offline(resolver, policy, judge_at_ns),
        }
    }

    pub fn add(&mut self, r: &FlowRecord) {
        self.pipeline.observe(&flow(r), r.ts_ns);
    }

    /// The `--json` line of one flow (docs/architecture.md "CLI", then the identity
    /// and policy fields); field order is the contract.
    pub fn json(&mut self, r: &FlowRecord) -> String {
        json_line(r, &self.pipeline.judge(&flow(r), r.ts_ns))
    }

    fn list(&self) -> EdgeList {
        self.pipeline
            .edges()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .snapshot(None)
    }

    pub fn is_empty(&self) -> bool {
        self.list().edges.is_empty()
    }

    /// The table of `plainsight edges`, with capture times as LAST-SEEN.
    pub fn write_table(&self, w: &mut impl Write) -> io::Result<()> {
        table::write(w, &self.list().edges, |e| e.last_seen.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::{Encryption, Verdict};

    fn rec(client: &str, server: &str, v: Verdict, midstream: bool, ts_ns: i64) -> FlowRecord {
        FlowRecord {
            client: client.parse().expect("addr"),
            server: server.parse().expect("addr"),
            verdict: v,
            midstream,
            ts_ns,
            tls: crate::pipeline::tls_hello::TlsMeta::default(),
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
        let mut e = Report::default();
        assert_eq!(
            e.json(&r),
            r#"{"client":"10.0.0.1:51234","server":"10.0.0.2:5432","protocol":"postgres","encryption":"plaintext","tls_version":null,"reason":null,"midstream":false,"client_identity":"10.0.0.1","server_identity":"10.0.0.2","policy":"violation","rule":null,"sni":null,"alpn":null,"cipher":null,"inner_protocol":null,"client_auth":null,"cert_issues":null,"cert_not_after":null}"#
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
            e.json(&r),
            r#"{"client":"[fd00::1]:40000","server":"[fd00::2]:443","protocol":"tls","encryption":"tls","tls_version":"1.3","reason":"midstream","midstream":true,"client_identity":"fd00::1","server_identity":"fd00::2","policy":"ok","rule":null,"sni":null,"alpn":null,"cipher":null,"inner_protocol":null,"client_auth":"unknown","cert_issues":null,"cert_not_after":null}"#
        );
    }

    #[test]
    fn edges_aggregate_by_peer_port_and_verdict() {
        let http = Verdict::plaintext(Protocol::Http);
        let mut e = Report::default();
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
            "CLIENT    SERVER    PORT  PROTOCOL  ENCRYPTION  AUTH  POLICY     FLOWS  LAST-SEEN\n\
             10.0.0.1  10.0.0.2  80    http      plaintext   -     violation      2  1970-01-01T00:00:07Z\n\
             10.0.0.1  10.0.0.2  8080  http      plaintext   -     violation      1  1970-01-01T00:00:01Z\n"
        );
    }
}
