//! Where each classified flow goes, in one place: identities -> policy ->
//! edges -> metrics and alerts. The live agent and `replay` share it.

pub mod alerts;
pub mod certificates;
pub(crate) mod cidr;
pub mod client_auth;
pub mod downgrade;
pub mod edges;
pub mod flow;
pub mod ftp_data;
pub mod identity;
pub mod policy;
pub mod tls_hello;

use crate::export::metrics::{
    AlertLabels, CertOutcomeLabels, EdgeSeries, Metrics, PolicyRuleLabels,
};
use agent_common::wire::Hook;
use alerts::{Alert, Alerter, Cause, Outcome};
use client_auth::ClientAuth;
use edges::{EdgeKey, Edges, Observation};
use flow::Flow;
use identity::{Identity, Resolver};
use policy::{Decision, FlowFacts, Policy, PolicySet};
use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

/// How often idle edges are swept out of the live view.
const SWEEP_EVERY_NS: i64 = 1_000_000_000;

pub struct Pipeline {
    resolver: Resolver,
    policy: PolicySet,
    edges: Arc<Mutex<Edges>>,
    metrics: Option<Arc<Metrics>>,
    alerts: Option<Alerter>,
    /// Judge rule expiry at this time instead of the flow's (replay: a
    /// policy is tested as if deployed now, whatever the capture's age).
    judge_at_ns: Option<i64>,
    last_tick_ns: i64,
    last_sweep_ns: i64,
}

/// Who a flow's sides are and what policy says about it.
pub struct Judgement {
    pub client: Identity,
    pub server: Identity,
    pub decision: Decision,
}

impl Pipeline {
    /// The live agent's: metrics, alerts and a shared edge view for the API.
    pub fn live(
        resolver: Resolver,
        policy: PolicySet,
        edges: Arc<Mutex<Edges>>,
        metrics: Arc<Metrics>,
        alerts: Alerter,
        now_ns: i64,
    ) -> Self {
        let p = Self {
            resolver,
            policy,
            edges,
            metrics: Some(metrics),
            alerts: Some(alerts),
            judge_at_ns: None,
            last_tick_ns: now_ns,
            last_sweep_ns: now_ns,
        };
        p.publish_rules(now_ns);
        p
    }

    /// Replay's: the given identities and policy, rules judged at
    /// `judge_at_ns`; no cap, no idle expiry, no metrics or alerts.
    pub fn offline(resolver: Resolver, policy: PolicySet, judge_at_ns: i64) -> Self {
        Self {
            resolver,
            policy,
            edges: Arc::new(Mutex::new(Edges::new(usize::MAX, Duration::MAX))),
            metrics: None,
            alerts: None,
            judge_at_ns: Some(judge_at_ns),
            last_tick_ns: 0,
            last_sweep_ns: 0,
        }
    }

    pub fn edges(&self) -> Arc<Mutex<Edges>> {
        self.edges.clone()
    }

    /// Names both sides and applies the policy, without recording anything.
    pub fn judge(&mut self, f: &Flow, ts_ns: i64) -> Judgement {
        let client = self.resolver.resolve(f.client);
        let server = self.resolver.resolve(f.server);
        let mut facts = FlowFacts::new(
            (f.client, &client),
            (f.server, &server),
            f.server_port,
            &f.verdict,
        );
        if !self.policy.requires().is_empty() {
            facts.tls.mutual = match client_auth::of(&f.verdict, &f.tls) {
                Some(ClientAuth::Mutual) => Some(true),
                Some(ClientAuth::ServerOnly) => Some(false),
                _ => None,
            };
            // Truncated or unparsable: not visible, so not a violation.
            facts.tls.clean_cert = f
                .tls
                .server_cert
                .as_ref()
                .and_then(|c| c.as_ref().ok())
                .map(|c| {
                    c.issues(f.tls.sni.as_deref(), ts_ns.div_euclid(1_000_000_000))
                        .is_empty()
                });
        }
        let decision = self
            .policy
            .evaluate(&facts, self.judge_at_ns.unwrap_or(ts_ns));
        Judgement {
            client,
            server,
            decision,
        }
    }

    pub fn observe(&mut self, f: &Flow, ts_ns: i64) {
        let Judgement {
            client,
            server,
            decision: d,
        } = self.judge(f, ts_ns);
        // A broken requirement is the flow's reason from here on (metrics,
        // edges, alerts, logs).
        let unmet;
        let f = match &d.unmet {
            Some((_, why)) => {
                unmet = Flow {
                    verdict: f.verdict.with_reason(*why),
                    ..f.clone()
                };
                &unmet
            }
            None => f,
        };
        let v = &f.verdict;
        let key = EdgeKey {
            policy: d.policy,
            client: client.name,
            server: server.name,
            server_port: f.server_port,
            protocol: v.protocol,
            encryption: v.encryption,
        };
        // The new violating edge to alert on, if any, for after the lock;
        // or the edge the cap folded.
        let (alert, folded) = {
            let mut edges = self.edges.lock().unwrap_or_else(PoisonError::into_inner);
            let rec = edges.record(
                key,
                &Observation {
                    flow: f,
                    rule: d.rule.as_ref().or(d.expired.as_ref()),
                    ts_ns,
                },
            );
            if let Some(m) = &self.metrics {
                let labels = rec.key.labels();
                rec.series
                    .get_or_insert_with(|| EdgeSeries::new(m, &labels))
                    .count(
                        m,
                        &labels,
                        v,
                        client_auth::of(v, &f.tls).map(ClientAuth::as_str),
                        f.tls
                            .server_cert
                            .as_ref()
                            .and_then(|c| c.as_ref().ok())
                            .map(|c| c.not_after),
                    );
                if let Some(cert) = &f.tls.server_cert {
                    let outcome = cert.as_ref().map_or_else(|e| e.as_str(), |_| "checked");
                    m.tls_certificates
                        .get_or_create(&CertOutcomeLabels { outcome })
                        .inc();
                }
                if rec.folded.is_some() {
                    m.edges_dropped.inc();
                }
            }
            for dg in &rec.downgrades {
                if let Some(m) = &self.metrics {
                    let labels = rec.key.labels();
                    rec.series
                        .get_or_insert_with(|| EdgeSeries::new(m, &labels))
                        .downgrade(m, &labels, dg.kind.as_str());
                }
                log::warn!(
                    target: "plainsight::pipeline::downgrade",
                    client = rec.key.client.as_ref(),
                    server = rec.key.server.as_ref(),
                    server_port = rec.key.server_port,
                    kind = dg.kind.as_str(),
                    from = dg.from,
                    to = dg.to;
                    "downgrade on {} -> {}:{}: {} went from {} to {} ({}:{} -> {}:{})",
                    rec.key.client,
                    rec.key.server,
                    rec.key.server_port,
                    dg.kind.as_str(),
                    dg.from,
                    dg.to,
                    f.client,
                    f.client_port,
                    f.server,
                    f.server_port
                );
            }
            let violation = d.policy == Policy::Violation && self.alerts.is_some();
            let alert = (violation && rec.first && rec.folded.is_none()).then(|| rec.key.clone());
            let folded = rec.folded.filter(|_| violation);
            // After the new edge took its series: one it shares with the
            // recycled edge keeps counting.
            if let Some(gone) = edges.take_recycled()
                && let Some(m) = &self.metrics
            {
                if let Some(series) = gone.series {
                    series.retire(m, &gone.key.labels());
                }
                m.edges_recycled.inc();
            }
            if let Some(m) = &self.metrics {
                m.edges.set(i64::try_from(edges.len()).unwrap_or(i64::MAX));
            }
            (alert, folded)
        };
        if let Some(alerts) = &mut self.alerts
            && let Some(key) = alert.as_ref().or(folded.as_ref())
        {
            let a = Alert {
                key,
                client_addr: f.client,
                server_addr: f.server,
                reason: v.reason,
                cause: d.expired.as_deref().map_or(Cause::NoRule, Cause::Expired),
            };
            let outcome = if alert.is_some() {
                alerts.violation(&a, ts_ns)
            } else {
                alerts
                    .folded(&a, ts_ns)
                    .map_or(Outcome::Held, |_| Outcome::Logged)
            };
            if let (Some(m), Some(outcome)) = (&self.metrics, outcome.label()) {
                m.alerts.get_or_create(&AlertLabels { outcome }).inc();
            }
        }
        log::debug!(
            "flow {}:{} -> {}:{} {} {} {} {} midstream={} hook={}",
            f.client,
            f.client_port,
            f.server,
            f.server_port,
            v.protocol.as_str(),
            v.encryption.as_str(),
            v.reason.as_str(),
            d.policy.as_str(),
            f.midstream,
            f.hook.map_or("?", Hook::as_str)
        );
    }

    /// Housekeeping, called often (every ring-buffer poll): reports rules
    /// that expired since the last call, sweeps idle edges once a second,
    /// and lets held-back alerts be reported.
    pub fn tick(&mut self, now_ns: i64) {
        let mut expired_any = false;
        for r in self.policy.expiring(self.last_tick_ns, now_ns) {
            expired_any = true;
            log::warn!(
                target: "plainsight::pipeline::policy",
                rule = r.name.as_str(),
                owner = r.owner.as_str();
                "allow-rule {:?} (owner {}) expired at {}; flows it allowed are now violations",
                r.name,
                r.owner,
                r.expires().unwrap_or_default()
            );
        }
        if expired_any {
            self.publish_rules(now_ns);
        }
        self.last_tick_ns = now_ns;
        if now_ns - self.last_sweep_ns >= SWEEP_EVERY_NS {
            self.last_sweep_ns = now_ns;
            let mut edges = self.edges.lock().unwrap_or_else(PoisonError::into_inner);
            edges.expire(now_ns);
            if let Some(m) = &self.metrics {
                m.edges.set(i64::try_from(edges.len()).unwrap_or(i64::MAX));
            }
        }
        if let Some(a) = &mut self.alerts
            && a.tick(now_ns).is_some()
            && let Some(m) = &self.metrics
        {
            m.alerts
                .get_or_create(&AlertLabels { outcome: "logged" })
                .inc();
        }
    }

    fn publish_rules(&self, now_ns: i64) {
        let Some(m) = &self.metrics else { return };
        let (active, expired) = self.policy.counts(now_ns);
        for (state, n) in [("active", active), ("expired", expired)] {
            m.policy_rules
                .get_or_create(&PolicyRuleLabels { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        export::metrics::{openmetrics_text, prometheus_text},
        pipeline::{
            identity::CidrNames,
            policy::{Peer, Rule, UnknownTreatment},
        },
    };
    use agent_common::{Encryption, Protocol, Reason, TlsVersion, Verdict};
    use std::net::IpAddr;

    const S: i64 = 1_000_000_000;

    fn flow(client: &str, server: &str, port: u16) -> Flow {
        Flow {
            client: client.parse().expect("ip"),
            client_port: 40000,
            server: server.parse().expect("ip"),
            server_port: port,
            hook: None,
            verdict: Verdict::plaintext(Protocol::Postgres),
            midstream: false,
            tls: crate::pipeline::tls_hello::TlsMeta::default(),
        }
    }

    fn live(max: usize) -> (Pipeline, prometheus_client::registry::Registry) {
        live_alerting(max, 10)
    }

    fn live_alerting(
        max: usize,
        alerts_per_minute: u32,
    ) -> (Pipeline, prometheus_client::registry::Registry) {
        let mut reg = prometheus_client::registry::Registry::default();
        let metrics = Arc::new(Metrics::register(&mut reg));
        let names = CidrNames::new([("10.0.5.0/24".parse().expect("cidr"), "rds".to_owned())]);
        let rule = Rule {
            name: "db".into(),
            owner: "o".into(),
            reason: "r".into(),
            expires_ns: Some((100 * S).into()),
            client: Peer::Any,
            server: Peer::Name("rds".into()),
            ports: vec![5432],
            protocols: vec![],
        };
        let p = Pipeline::live(
            Resolver::new(vec![Box::new(names)]),
            PolicySet::new(vec![rule], UnknownTreatment::Violation),
            Arc::new(Mutex::new(Edges::new(max, Duration::from_secs(60)))),
            metrics,
            Alerter::new(alerts_per_minute, 0),
            0,
        );
        (p, reg)
    }

    fn value(reg: &prometheus_client::registry::Registry, series: &str) -> Option<f64> {
        let text = prometheus_text(&openmetrics_text(reg).expect("encode"));
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    /// A TLS 1.2 flow whose client sent a certificate and whose server's
    /// certificate was seen: counted by client_auth and certificate outcome,
    /// its notAfter on the edge's gauge, and the series go with the edge.
    #[test]
    fn tls_flows_count_client_auth_and_certificates() {
        use crate::pipeline::certificates::ServerCert;
        use agent_common::{Encryption, Protocol, TlsVersion};
        let (mut p, reg) = live(1);
        let mut f = flow("10.0.1.1", "10.0.6.1", 8443);
        f.verdict = agent_common::Verdict::new(Protocol::Tls, Encryption::Tls);
        f.verdict.tls_version = TlsVersion::Tls12;
        f.tls.version = TlsVersion::Tls12;
        f.tls.cipher = Some(0xc030);
        // A Certificate of 0x243 bytes of list (client_auth.rs tests).
        f.tls.client_flight = Some(vec![0x16, 3, 3, 2, 0x4a, 11, 0, 2, 0x46, 0, 2, 0x43]);
        f.tls.server_cert = Some(Ok(ServerCert {
            not_before: 0,
            not_after: 2_000_000_000,
            self_signed: false,
            names: vec![],
            weak_key: false,
            weak_signature: false,
        }));
        p.observe(&f, S);
        let edge = r#"client="10.0.1.1",server="10.0.6.1",server_port="8443""#;
        let auth = format!(r#"plainsight_tls_client_auth_total{{{edge},client_auth="mutual"}}"#);
        assert_eq!(value(&reg, &auth), Some(1.0));
        let expiry = format!(
            r#"plainsight_tls_certificate_expiry_timestamp_seconds{{{edge},protocol="tls",encryption="tls",policy="ok"}}"#
        );
        assert_eq!(value(&reg, &expiry), Some(2e9));
        assert_eq!(
            value(
                &reg,
                r#"plainsight_tls_certificates_total{outcome="checked"}"#
            ),
            Some(1.0)
        );
        // Idle, then recycled for another edge (cap 1): its series leave.
        p.tick(200 * S);
        p.observe(&flow("10.0.1.2", "10.0.6.2", 5432), 200 * S);
        assert_eq!(value(&reg, &auth), None);
        assert_eq!(value(&reg, &expiry), None);
    }

    #[test]
    fn flows_become_named_judged_edges_and_series() {
        let (mut p, reg) = live(10);
        p.observe(&flow("10.0.1.1", "10.0.5.7", 5432), S);
        p.observe(&flow("10.0.1.1", "10.0.5.7", 5432), 2 * S);
        p.observe(&flow("10.0.1.1", "10.0.6.1", 5432), 2 * S);
        let allowed = r#"plainsight_flows_total{client="10.0.1.1",server="rds",server_port="5432",protocol="postgres",encryption="plaintext",policy="allowed"}"#;
        let violation = r#"plainsight_flows_total{client="10.0.1.1",server="10.0.6.1",server_port="5432",protocol="postgres",encryption="plaintext",policy="violation"}"#;
        assert_eq!(value(&reg, allowed), Some(2.0));
        assert_eq!(value(&reg, violation), Some(1.0));
        assert_eq!(value(&reg, "plainsight_edges "), Some(2.0));
        assert_eq!(
            value(&reg, r#"plainsight_policy_rules{state="active"}"#),
            Some(1.0)
        );
        let list = p.edges().lock().expect("lock").snapshot(None);
        assert_eq!(list.edges[1].rule.as_ref().expect("rule").name, "db");

        // The rule expires: same path, now a violation, the rule named.
        p.tick(101 * S);
        assert_eq!(
            value(&reg, r#"plainsight_policy_rules{state="expired"}"#),
            Some(1.0)
        );
        p.observe(&flow("10.0.1.1", "10.0.5.7", 5432), 101 * S);
        let list = p
            .edges()
            .lock()
            .expect("lock")
            .snapshot(Some(Policy::Violation));
        let e = list
            .edges
            .iter()
            .find(|e| e.server == "rds")
            .expect("rds violation");
        assert_eq!(e.expired_rule.as_ref().expect("expired rule").name, "db");
    }

    #[test]
    fn counters_stay_monotonic_when_edges_go_idle_and_the_cap_bounds_series() {
        let (mut p, reg) = live(1);
        p.observe(&flow("10.0.1.1", "10.0.6.1", 80), 0);
        p.tick(61 * S);
        assert_eq!(
            value(&reg, "plainsight_edges "),
            Some(0.0),
            "idle edge left the API"
        );
        p.observe(&flow("10.0.1.1", "10.0.6.1", 80), 62 * S);
        let series = r#"plainsight_flows_total{client="10.0.1.1",server="10.0.6.1",server_port="80",protocol="postgres",encryption="plaintext",policy="violation"}"#;
        assert_eq!(value(&reg, series), Some(2.0), "the counter kept counting");
        for i in 2..50u8 {
            let ip = IpAddr::from([10, 0, 1, i]).to_string();
            p.observe(&flow(&ip, "10.0.6.1", 80), 62 * S);
        }
        let other = r#"plainsight_flows_total{client="other",server="other",server_port="0",protocol="postgres",encryption="plaintext",policy="violation"}"#;
        assert_eq!(value(&reg, other), Some(48.0));
        assert_eq!(value(&reg, "plainsight_edges_dropped_total "), Some(48.0));
        let text = prometheus_text(&openmetrics_text(&reg).expect("encode"));
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("plainsight_flows_total{"))
                .count(),
            2,
            "one admitted series and one `other`"
        );
    }

    fn tls_flow(client: &str, version: TlsVersion) -> Flow {
        let mut f = flow(client, "10.0.6.1", 443);
        f.verdict = Verdict::new(Protocol::Tls, Encryption::Tls);
        f.verdict.tls_version = version;
        f
    }

    #[test]
    fn series_held_by_edges_keep_counting_across_idle_expiry_rule_expiry_and_the_cap() {
        let (mut p, reg) = live(3);
        let creds = |client: &str, server: &str| {
            let mut f = flow(client, server, 5432);
            f.verdict = f.verdict.with_reason(Reason::CleartextCredentials);
            f
        };
        // TLS versions and reasons vary per flow on one edge.
        p.observe(&tls_flow("10.0.1.1", TlsVersion::Tls13), S);
        p.observe(&tls_flow("10.0.1.1", TlsVersion::Tls12), S);
        p.observe(&creds("10.0.1.1", "10.0.5.7"), S);
        // Idle: the edges leave the view; back, they count on their series.
        p.tick(70 * S);
        assert_eq!(value(&reg, "plainsight_edges "), Some(0.0));
        p.observe(&tls_flow("10.0.1.1", TlsVersion::Tls13), 71 * S);
        // (The allowed edge is seen too, with no reason: no edge is idle
        // when the cap fills below, so none is recycled.)
        p.observe(&flow("10.0.1.1", "10.0.5.7", 5432), 71 * S);
        let tls13 = r#"plainsight_tls_flows_total{client="10.0.1.1",server="10.0.6.1",server_port="443",version="1.3"}"#;
        let tls12 = r#"plainsight_tls_flows_total{client="10.0.1.1",server="10.0.6.1",server_port="443",version="1.2"}"#;
        assert_eq!(value(&reg, tls13), Some(2.0));
        assert_eq!(value(&reg, tls12), Some(1.0));
        // The rule expires: a new (violation) edge whose reason series has
        // no policy label, so it is the allowed edge's series.
        p.tick(101 * S);
        p.observe(&creds("10.0.1.1", "10.0.5.7"), 101 * S);
        let reason = r#"plainsight_flow_reasons_total{client="10.0.1.1",server="rds",server_port="5432",protocol="postgres",encryption="plaintext",reason="cleartext_credentials"}"#;
        assert_eq!(value(&reg, reason), Some(2.0));
        // The cap (3 edges) is reached: further edges count on `other`.
        for i in 2..5u8 {
            let ip = IpAddr::from([10, 0, 1, i]).to_string();
            p.observe(&creds(&ip, "10.0.6.9"), 102 * S);
            p.observe(&tls_flow(&ip, TlsVersion::Tls13), 102 * S);
        }
        let other_reason = r#"plainsight_flow_reasons_total{client="other",server="other",server_port="0",protocol="postgres",encryption="plaintext",reason="cleartext_credentials"}"#;
        let other_tls = r#"plainsight_tls_flows_total{client="other",server="other",server_port="0",version="1.3"}"#;
        assert_eq!(value(&reg, other_reason), Some(3.0));
        assert_eq!(value(&reg, other_tls), Some(3.0));
        assert_eq!(value(&reg, "plainsight_edges_dropped_total "), Some(6.0));
        assert_eq!(value(&reg, tls13), Some(2.0), "admitted edges unchanged");
    }

    #[test]
    fn a_recycled_edge_takes_its_own_series_off_metrics_and_shared_ones_keep_counting() {
        let (mut p, reg) = live(2);
        let creds = |client: &str| {
            let mut f = flow(client, "10.0.5.7", 5432);
            f.verdict = f.verdict.with_reason(Reason::CleartextCredentials);
            f
        };
        // One path, allowed until the rule expires (100 s), then a
        // violation: two edges sharing the reason series (no policy label).
        p.observe(&creds("10.0.1.1"), S);
        p.tick(101 * S);
        p.observe(&creds("10.0.1.1"), 101 * S);
        let reason = r#"plainsight_flow_reasons_total{client="10.0.1.1",server="rds",server_port="5432",protocol="postgres",encryption="plaintext",reason="cleartext_credentials"}"#;
        let allowed = r#"plainsight_flows_total{client="10.0.1.1",server="rds",server_port="5432",protocol="postgres",encryption="plaintext",policy="allowed"}"#;
        let newcomer = r#"plainsight_flows_total{client="10.0.1.9",server="10.0.6.1",server_port="80",protocol="postgres",encryption="plaintext",policy="violation"}"#;
        assert_eq!(value(&reg, reason), Some(2.0));
        // The allowed edge goes idle; the violation is still seen.
        p.observe(&flow("10.0.1.1", "10.0.5.7", 5432), 150 * S);
        p.tick(162 * S);
        // The cap is full: a new edge takes the idle one's place.
        p.observe(&flow("10.0.1.9", "10.0.6.1", 80), 163 * S);
        assert_eq!(value(&reg, newcomer), Some(1.0), "admitted, not `other`");
        assert_eq!(
            value(&reg, allowed),
            None,
            "the recycled edge's series left"
        );
        assert_eq!(value(&reg, "plainsight_edges_recycled_total "), Some(1.0));
        assert_eq!(value(&reg, "plainsight_edges_dropped_total "), Some(0.0));
        p.observe(&creds("10.0.1.1"), 164 * S);
        assert_eq!(
            value(&reg, reason),
            Some(3.0),
            "the violation edge still holds the shared series"
        );
    }

    #[test]
    fn a_burst_of_violating_peers_over_the_cap_is_reported_at_once_then_once_a_minute() {
        let (mut p, reg) = live_alerting(2, 10);
        let logged = r#"plainsight_alerts_total{outcome="logged"}"#;
        for i in 1..=2u8 {
            p.observe(
                &flow(&IpAddr::from([10, 0, 1, i]).to_string(), "10.0.6.1", 80),
                S,
            );
        }
        assert_eq!(value(&reg, logged), Some(2.0));
        // 10,000 new violating peers (IPv6 makes it trivial) past the cap.
        let burst = |p: &mut Pipeline, from: u16, at_ns: i64| {
            for i in from..from + 5_000 {
                p.observe(&flow(&format!("fd00::{i:x}"), "10.0.6.1", 80), at_ns);
            }
        };
        burst(&mut p, 0, 2 * S);
        assert_eq!(value(&reg, logged), Some(3.0), "one report at once");
        p.tick(30 * S);
        burst(&mut p, 5_000, 40 * S);
        p.tick(61 * S);
        assert_eq!(value(&reg, logged), Some(3.0), "at most one a minute");
        p.tick(62 * S);
        assert_eq!(value(&reg, logged), Some(4.0), "the rest, a minute later");
        p.tick(600 * S);
        assert_eq!(value(&reg, logged), Some(4.0), "nothing more folded");
        assert_eq!(
            value(&reg, r#"plainsight_alerts_total{outcome="suppressed"}"#),
            Some(0.0),
            "folded violations never spend the per-edge alert budget"
        );
        assert_eq!(
            value(&reg, "plainsight_edges_dropped_total "),
            Some(10_000.0)
        );
    }

    #[test]
    fn alerts_are_counted_logged_or_suppressed_once_per_new_violating_edge() {
        let (mut p, reg) = live_alerting(100, 2);
        let logged = r#"plainsight_alerts_total{outcome="logged"}"#;
        let suppressed = r#"plainsight_alerts_total{outcome="suppressed"}"#;
        assert_eq!(value(&reg, logged), Some(0.0), "present before any alert");
        assert_eq!(value(&reg, suppressed), Some(0.0));
        for i in 1..=5u8 {
            let ip = IpAddr::from([10, 0, 1, i]).to_string();
            p.observe(&flow(&ip, "10.0.6.1", 80), S);
            // The same edge again is no new alert.
            p.observe(&flow(&ip, "10.0.6.1", 80), S);
        }
        // Allowed edges never alert.
        p.observe(&flow("10.0.1.1", "10.0.5.7", 5432), S);
        assert_eq!(value(&reg, logged), Some(2.0), "the burst of 2");
        assert_eq!(value(&reg, suppressed), Some(3.0));
    }
}
