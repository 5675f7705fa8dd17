//! Alerts: one structured log line the first time an edge violates policy.
//! A token bucket bounds them (a scan or a misconfigured fleet can create
//! thousands of new edges a second); what it holds back is counted and
//! reported when lines flow again.

use super::{edges::EdgeKey, policy::Rule};
use agent_common::Reason;
use std::net::IpAddr;

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
}

impl Outcome {
    /// The `outcome` label of `plainsight_alerts_total`; `None` for `Off`.
    pub const fn label(self) -> Option<&'static str> {
        match self {
            Self::Off => None,
            Self::Logged => Some("logged"),
            Self::Suppressed => Some("suppressed"),
        }
    }
}

pub struct Alerter {
    bucket: TokenBucket,
    enabled: bool,
    suppressed: u64,
}

impl Alerter {
    /// `per_minute` 0 turns alerts off.
    pub fn new(per_minute: u32, now_ns: i64) -> Self {
        Self {
            bucket: TokenBucket::new(per_minute, now_ns),
            enabled: per_minute > 0,
            suppressed: 0,
        }
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
    /// no new violation comes.
    pub fn tick(&mut self, now_ns: i64) {
        if self.suppressed > 0 && self.bucket.take(now_ns) {
            self.report_suppressed();
        }
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
        Cause::NoRule if k.is_other() => {
            "no allow-rule matches (edge over the cardinality cap: counted as `other`)".to_owned()
        }
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
}
