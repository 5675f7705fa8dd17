//! Alerts: one structured log line the first time an edge violates policy.
//! A token bucket bounds them (a scan or a misconfigured fleet can create
//! thousands of new edges a second); what it holds back is counted and
//! reported when lines flow again.
//!
//! Violations of edges the cap (`edges.max`) folded into `other` are not
//! alerted one by one (the cap is full because there are too many edges),
//! nor only once: a report line names how many violating flows were folded
//! and a few of their edges, at once for the first, then at most once per
//! `FOLDED_REPORT_EVERY_NS` while they go on.

use super::{edges::EdgeKey, policy::Rule};
use agent_common::Reason;
use std::net::IpAddr;

/// At most one folded-violations report a minute: a burst beyond the cap
/// is seen at once, and a sustained one costs a line a minute.
pub const FOLDED_REPORT_EVERY_NS: i64 = 60_000_000_000;
/// Edges a folded-violations report names: enough to find the source.
pub const FOLDED_SAMPLES: usize = 5;

/// At most `per_minute` tokens, refilled continuously; a full bucket lets
/// a burst of `per_minute` through at once.
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_ns: f64,
    last_ns: i64,
}

impl TokenBucket {
    pub fn new(per_minute: u32, now_ns: i64) -> Self {
        let capacity = f64::from(per_minute);
        Self {
            capacity,
            tokens: capacity,
            per_ns: capacity / 60e9,
            last_ns: now_ns,
        }
    }

    #[expect(clippy::cast_precision_loss, reason = "nanosecond gaps far below 2^52")]
    fn refill(&mut self, now_ns: i64) {
        let elapsed = now_ns.saturating_sub(self.last_ns).max(0);
        self.tokens = (self.tokens + elapsed as f64 * self.per_ns).min(self.capacity);
        self.last_ns = self.last_ns.max(now_ns);
    }

    pub fn take(&mut self, now_ns: i64) -> bool {
        self.refill(now_ns);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Why the edge is a violation, in the alert's words.
pub enum Cause<'a> {
    NoRule,
    Expired(&'a Rule),
}

pub struct Alert<'a> {
    pub key: &'a EdgeKey,
    pub client_addr: IpAddr,
    pub server_addr: IpAddr,
    pub reason: Reason,
    pub cause: Cause<'a>,
}

/// What became of one alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Alerts are off (`alerts.max_per_minute = 0`).
    Off,
    Logged,
    /// Over the rate: counted, reported later in one line.
    Suppressed,
    /// A violation the cap folded: counted into the next folded report.
    Held,
}

impl Outcome {
    /// The `outcome` label of `plainsight_alerts_total`; `None` for `Off`
    /// and `Held`.
    pub const fn label(self) -> Option<&'static str> {
        match self {
            Self::Off | Self::Held => None,
            Self::Logged => Some("logged"),
            Self::Suppressed => Some("suppressed"),
        }
    }
}

pub struct Alerter {
    bucket: TokenBucket,
    enabled: bool,
    suppressed: u64,
    folded: FoldedReport,
    folded_reported_ns: Option<i64>,
}

/// Violating flows the cap folded into `other` since the last report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoldedReport {
    pub flows: u64,
    /// Up to `FOLDED_SAMPLES` distinct edges (`client -> server:port
    /// protocol encryption`, with the addresses of its first flow).
    pub samples: Vec<String>,
}

impl Alerter {
    /// `per_minute` 0 turns alerts off.
    pub fn new(per_minute: u32, now_ns: i64) -> Self {
        Self {
            bucket: TokenBucket::new(per_minute, now_ns),
            enabled: per_minute > 0,
            suppressed: 0,
            folded: FoldedReport::default(),
            folded_reported_ns: None,
        }
    }

    /// A violating flow of an edge the cap folded into `other` (`own` is
    /// the edge it would have been): counted and named in the next report.
    /// Returns the report if it is logged now.
    pub fn folded(&mut self, a: &Alert<'_>, now_ns: i64) -> Option<FoldedReport> {
        if !self.enabled {
            return None;
        }
        self.folded.flows += 1;
        if self.folded.samples.len() < FOLDED_SAMPLES {
            let k = a.key;
            let sample = format!(
                "{} -> {}:{} {} {} ({} -> {})",
                k.client,
                k.server,
                k.server_port,
                k.protocol.as_str(),
                k.encryption.as_str(),
                a.client_addr,
                a.server_addr
            );
            if !self.folded.samples.contains(&sample) {
                self.folded.samples.push(sample);
            }
        }
        self.report_folded(now_ns)
    }

    /// Logs the folded-violations report when one is due.
    fn report_folded(&mut self, now_ns: i64) -> Option<FoldedReport> {
        let due = self.folded.flows > 0
            && self
                .folded_reported_ns
                .is_none_or(|t| now_ns.saturating_sub(t) >= FOLDED_REPORT_EVERY_NS);
        if !due {
            return None;
        }
        self.folded_reported_ns = Some(now_ns);
        let r = std::mem::take(&mut self.folded);
        log::warn!(
            target: "plainsight::alert",
            event = "policy_violations_folded",
            flows = r.flows,
            samples = r.samples.join("; ");
            "policy violations over the edge cap (edges.max): {} violating flows of edges \
             not admitted were counted as `other`, among them {}; \
             /api/v1/edges?violations=true shows the `other` edges",
            r.flows,
            r.samples.join("; ")
        );
        Some(r)
    }

    /// Logs the alert, or counts it when over the rate.
    pub fn violation(&mut self, a: &Alert<'_>, now_ns: i64) -> Outcome {
        if !self.enabled {
            return Outcome::Off;
        }
        if !self.bucket.take(now_ns) {
            self.suppressed += 1;
            return Outcome::Suppressed;
        }
        self.report_suppressed();
        log_alert(a);
        Outcome::Logged
    }

    /// Reports held-back alerts once the rate allows a line again, even if
    /// no new violation comes; likewise folded violations. Returns the
    /// folded-violations report if it logged one.
    pub fn tick(&mut self, now_ns: i64) -> Option<FoldedReport> {
        if self.suppressed > 0 && self.bucket.take(now_ns) {
            self.report_suppressed();
        }
        self.report_folded(now_ns)
    }

    fn report_suppressed(&mut self) {
        if self.suppressed > 0 {
            log::warn!(
                target: "plainsight::alert",
                suppressed = self.suppressed;
                "{} policy-violation alerts were suppressed by the rate limit (alerts.max_per_minute); \
                 /api/v1/edges?violations=true lists every violating edge",
                self.suppressed
            );
            self.suppressed = 0;
        }
    }

    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

fn log_alert(a: &Alert<'_>) {
    let k = a.key;
    let (rule, rule_owner, rule_expired) = match &a.cause {
        Cause::NoRule => (
            "no allow-rule matches".to_owned(),
            String::new(),
            String::new(),
        ),
        Cause::Expired(r) => (
            r.name.clone(),
            r.owner.clone(),
            r.expires().unwrap_or_default(),
        ),
    };
    let why = match &a.cause {
        Cause::NoRule => "no allow-rule matches".to_owned(),
        Cause::Expired(r) => format!("allow-rule {:?} expired at {rule_expired}", r.name),
    };
    log::warn!(
        target: "plainsight::alert",
        event = "policy_violation",
        client = &*k.client,
        server = &*k.server,
        server_port = k.server_port,
        protocol = k.protocol.as_str(),
        encryption = k.encryption.as_str(),
        reason = a.reason.as_str(),
        client_addr = a.client_addr.to_string(),
        server_addr = a.server_addr.to_string(),
        rule = rule,
        rule_owner = rule_owner,
        rule_expired = rule_expired;
        "policy violation: {} -> {}:{} {} {}: {why}",
        k.client,
        k.server,
        k.server_port,
        k.protocol.as_str(),
        k.encryption.as_str()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let mut b = TokenBucket::new(3, 0);
        assert!(b.take(0) && b.take(0) && b.take(0), "a burst of 3");
        assert!(!b.take(0), "then empty");
        assert!(!b.take(MIN / 6), "half a token after 10 s");
        assert!(b.take(MIN / 3), "one token per 20 s");
        assert!(!b.take(MIN / 3));
        // Refill is capped at the capacity.
        let later = 100 * MIN;
        assert!(b.take(later) && b.take(later) && b.take(later));
        assert!(!b.take(later));
    }

    #[test]
    fn alerts_over_the_rate_are_counted_then_reported() {
        use crate::pipeline::policy::Policy;
        use agent_common::{Encryption, Protocol};
        let key = EdgeKey {
            policy: Policy::Violation,
            client: "checkout".into(),
            server: "orders-db".into(),
            server_port: 5432,
            protocol: Protocol::Postgres,
            encryption: Encryption::Plaintext,
        };
        let a = Alert {
            key: &key,
            client_addr: [10, 0, 0, 1].into(),
            server_addr: [10, 0, 0, 2].into(),
            reason: Reason::None,
            cause: Cause::NoRule,
        };
        let mut al = Alerter::new(2, 0);
        assert_eq!(al.violation(&a, 0), Outcome::Logged);
        assert_eq!(al.violation(&a, 0), Outcome::Logged);
        assert_eq!(al.violation(&a, 0), Outcome::Suppressed);
        assert_eq!(al.violation(&a, 1), Outcome::Suppressed);
        assert_eq!(al.suppressed(), 2);
        al.tick(MIN / 2);
        assert_eq!(al.suppressed(), 0, "reported once a token is back");
        let mut off = Alerter::new(0, 0);
        assert_eq!(off.violation(&a, 0), Outcome::Off);
        assert_eq!(off.suppressed(), 0, "off is not suppressed");
    }

    #[test]
    fn folded_violations_are_reported_at_once_then_once_a_minute_with_samples() {
        use crate::pipeline::policy::Policy;
        use agent_common::{Encryption, Protocol};
        let mut al = Alerter::new(20, 0);
        let report = |al: &mut Alerter, i: u16, now_ns: i64| {
            let key = EdgeKey {
                policy: Policy::Violation,
                client: format!("fd00::{i:x}").into(),
                server: "orders-db".into(),
                server_port: 5432,
                protocol: Protocol::Postgres,
                encryption: Encryption::Plaintext,
            };
            let a = Alert {
                key: &key,
                client_addr: format!("fd00::{i:x}").parse().expect("ip"),
                server_addr: [10, 0, 0, 2].into(),
                reason: Reason::None,
                cause: Cause::NoRule,
            };
            al.folded(&a, now_ns)
        };
        let first = report(&mut al, 1, 0).expect("the first is reported at once");
        assert_eq!(first.flows, 1);
        assert_eq!(
            first.samples,
            ["fd00::1 -> orders-db:5432 postgres plaintext (fd00::1 -> 10.0.0.2)"]
        );
        // A burst of 10,000 new peers: no line until a minute has passed.
        for i in 2..=10_001 {
            assert_eq!(report(&mut al, i, 1 + i64::from(i)), None);
        }
        assert_eq!(al.tick(MIN - 1), None, "not before a minute");
        let burst = al.tick(MIN).expect("reported a minute after the first");
        assert_eq!(burst.flows, 10_000);
        assert_eq!(burst.samples.len(), FOLDED_SAMPLES);
        assert!(burst.samples[0].starts_with("fd00::2 -> orders-db:5432"));
        assert_eq!(al.tick(10 * MIN), None, "nothing more to report");
        let mut off = Alerter::new(0, 0);
        assert_eq!(report(&mut off, 1, 0), None, "alerts off");
    }
}
