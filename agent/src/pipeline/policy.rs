//! Policy as code: whether a classified flow is acceptable. Encrypted flows
//! are `ok`; a plaintext flow is `allowed` only when an unexpired
//! allow-rule covers it, else it is a `violation`. A TLS flow that an
//! unexpired require-rule covers and that breaks one of its requirements
//! (client certificate, minimum version, clean server certificate) is a
//! `violation` too, with a reason naming the requirement.

use super::{cidr::Cidr, identity::Identity};
use crate::{clock, glob::glob_match};
use agent_common::{Encryption, Protocol, Reason, TlsVersion, Verdict};
use std::{net::IpAddr, sync::Arc};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Policy {
    /// Plaintext (or unclassifiable) and nothing allows it. First, so that
    /// sorting puts violations on top.
    Violation,
    /// Plaintext, but an allow-rule covers it.
    Allowed,
    /// TLS or another encryption.
    Ok,
}

impl Policy {
    pub const ALL: [Self; 3] = [Self::Violation, Self::Allowed, Self::Ok];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Allowed => "allowed",
            Self::Violation => "violation",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// One side of a rule: anyone, a network, identity names, or a Kubernetes
/// namespace (`*`, `?` globs in names and namespaces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    Any,
    Net(Cidr),
    /// Matches the whole name: `billing/ledger-db` is one workload,
    /// `payments/*` any workload or service of a namespace, `*/ledger-db`
    /// a workload in any namespace.
    Name(String),
    /// Matches peers the Kubernetes source named, by namespace only: a
    /// named CIDR that happens to contain a `/` never matches, and neither
    /// do nodes (`node/NAME`, no namespace).
    Namespace(String),
}

impl Peer {
    fn matches(&self, ip: IpAddr, id: &Identity) -> bool {
        match self {
            Self::Any => true,
            Self::Net(c) => c.contains(ip),
            Self::Name(pattern) => glob_match(pattern, &id.name),
            Self::Namespace(pattern) => id
                .namespace
                .as_deref()
                .is_some_and(|ns| glob_match(pattern, ns)),
        }
    }
}

/// An allow-rule: a known plaintext path someone owns and has a reason for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub owner: String,
    pub reason: String,
    /// When the rule stops matching, Unix nanoseconds. `i128`: a date
    /// after 2262 (`9999-12-31` for "never") does not fit `i64`
    /// nanoseconds, and any TOML date does fit this.
    pub expires_ns: Option<i128>,
    pub client: Peer,
    pub server: Peer,
    /// Empty: any port.
    pub ports: Vec<u16>,
    /// Empty: any protocol.
    pub protocols: Vec<Protocol>,
}

impl Rule {
    pub fn expired(&self, now_ns: i64) -> bool {
        self.expires_ns.is_some_and(|t| t <= i128::from(now_ns))
    }

    pub fn expires(&self) -> Option<String> {
        self.expires_ns.map(clock::rfc3339_wide)
    }

    fn covers(&self, f: &FlowFacts<'_>) -> bool {
        self.covers_peers(f) && (self.protocols.is_empty() || self.protocols.contains(&f.protocol))
    }

    /// Client, server and port match (a require-rule's whole match).
    fn covers_peers(&self, f: &FlowFacts<'_>) -> bool {
        self.client.matches(f.client_ip, f.client)
            && self.server.matches(f.server_ip, f.server)
            && (self.ports.is_empty() || self.ports.contains(&f.server_port))
    }
}

/// What a require-rule asks of the TLS flows it covers (`[[policy.require]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Require {
    /// Name, owner, reason, expiry and the flows covered, as an allow-rule
    /// (its `protocols` unused: the flows are TLS).
    pub rule: Rule,
    /// `client_auth = "mutual"`.
    pub mutual: bool,
    /// `min_tls = "1.2"`.
    pub min_tls: Option<TlsVersion>,
    /// `cert_issues = "none"`.
    pub clean_cert: bool,
}

/// The TLS facts a require-rule checks; `None` where not visible (TLS 1.3
/// hides the certificate; resumption hides both): not visible is not a
/// violation, since nothing shows the requirement broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsFacts {
    pub version: TlsVersion,
    /// `Some(true)` mutual, `Some(false)` server-only.
    pub mutual: Option<bool>,
    /// `Some(true)` the certificate was seen with no issue.
    pub clean_cert: Option<bool>,
}

impl Require {
    /// The requirement `t` breaks, as the reason named for it.
    fn broken(&self, t: &TlsFacts) -> Option<Reason> {
        if self.mutual && t.mutual == Some(false) {
            return Some(Reason::ClientAuthRequired);
        }
        if let Some(min) = self.min_tls
            && t.version != TlsVersion::Unknown
            && (t.version as u8) < (min as u8)
        {
            return Some(Reason::MinTlsRequired);
        }
        if self.clean_cert && t.clean_cert == Some(false) {
            return Some(Reason::CertIssuesRequired);
        }
        None
    }
}

/// How flows whose encryption could not be determined are judged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownTreatment {
    /// Like plaintext: a violation unless an allow-rule covers it. We cannot
    /// show those bytes are protected, and a custom protocol in the clear
    /// is a real leak.
    #[default]
    Violation,
    /// Always `allowed`: for fleets full of proprietary binary protocols
    /// whose owners vouch for them.
    Allowed,
}

/// What policy needs to know about a flow.
pub struct FlowFacts<'a> {
    pub client_ip: IpAddr,
    pub client: &'a Identity,
    pub server_ip: IpAddr,
    pub server: &'a Identity,
    pub server_port: u16,
    pub protocol: Protocol,
    pub encryption: Encryption,
    /// For TLS flows, what require-rules check.
    pub tls: TlsFacts,
}

impl<'a> FlowFacts<'a> {
    pub fn new(
        client: (IpAddr, &'a Identity),
        server: (IpAddr, &'a Identity),
        server_port: u16,
        v: &Verdict,
    ) -> Self {
        Self {
            client_ip: client.0,
            client: client.1,
            server_ip: server.0,
            server: server.1,
            server_port,
            protocol: v.protocol,
            encryption: v.encryption,
            tls: TlsFacts {
                version: v.tls_version,
                mutual: None,
                clean_cert: None,
            },
        }
    }
}

/// The outcome for one flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub policy: Policy,
    /// The rule that allowed the flow.
    pub rule: Option<Arc<Rule>>,
    /// For a violation: an expired rule that would have allowed it.
    pub expired: Option<Arc<Rule>>,
    /// For a TLS flow's violation: the require-rule it broke, and the
    /// reason naming the requirement.
    pub unmet: Option<(Arc<Require>, Reason)>,
}

#[derive(Default)]
pub struct PolicySet {
    rules: Vec<Arc<Rule>>,
    requires: Vec<Arc<Require>>,
    unknown: UnknownTreatment,
}

impl PolicySet {
    pub fn new(rules: Vec<Rule>, unknown: UnknownTreatment) -> Self {
        Self {
            rules: rules.into_iter().map(Arc::new).collect(),
            requires: Vec::new(),
            unknown,
        }
    }

    #[must_use]
    pub fn with_requires(mut self, requires: Vec<Require>) -> Self {
        self.requires = requires.into_iter().map(Arc::new).collect();
        self
    }

    pub fn requires(&self) -> &[Arc<Require>] {
        &self.requires
    }

    pub const fn unknown(&self) -> UnknownTreatment {
        self.unknown
    }

    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    pub fn evaluate(&self, f: &FlowFacts<'_>, now_ns: i64) -> Decision {
        let decision = |policy, rule| Decision {
            policy,
            rule,
            expired: None,
            unmet: None,
        };
        match (f.encryption, self.unknown) {
            (Encryption::Tls, _) => {
                let unmet = self
                    .requires
                    .iter()
                    .filter(|r| !r.rule.expired(now_ns) && r.rule.covers_peers(f))
                    .find_map(|r| r.broken(&f.tls).map(|why| (r.clone(), why)));
                return Decision {
                    policy: if unmet.is_some() {
                        Policy::Violation
                    } else {
                        Policy::Ok
                    },
                    rule: None,
                    expired: None,
                    unmet,
                };
            }
            (Encryption::Encrypted, _) => return decision(Policy::Ok, None),
            (Encryption::Unknown, UnknownTreatment::Allowed) => {
                return decision(Policy::Allowed, None);
            }
            (Encryption::Plaintext | Encryption::Unknown, _) => {}
        }
        let mut expired = None;
        for r in self.rules.iter().filter(|r| r.covers(f)) {
            if !r.expired(now_ns) {
                return decision(Policy::Allowed, Some(r.clone()));
            }
            expired.get_or_insert_with(|| r.clone());
        }
        Decision {
            policy: Policy::Violation,
            rule: None,
            expired,
            unmet: None,
        }
    }

    /// (active, expired) rule counts.
    pub fn counts(&self, now_ns: i64) -> (usize, usize) {
        let expired = self.rules.iter().filter(|r| r.expired(now_ns)).count();
        (self.rules.len() - expired, expired)
    }

    /// Rules whose expiry falls in (after_ns, until_ns].
    pub fn expiring(&self, after_ns: i64, until_ns: i64) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(AsRef::as_ref).filter(move |r| {
            r.expires_ns
                .is_some_and(|t| i128::from(after_ns) < t && t <= i128::from(until_ns))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000_000_000;

    fn rule(name: &str, server: Peer, ports: &[u16], expires_ns: Option<i64>) -> Rule {
        Rule {
            name: name.into(),
            owner: "team-billing".into(),
            reason: "legacy driver".into(),
            expires_ns: expires_ns.map(i128::from),
            client: Peer::Any,
            server,
            ports: ports.to_vec(),
            protocols: vec![Protocol::Postgres],
        }
    }

    fn judge(set: &PolicySet, server: &str, port: u16, v: Verdict) -> Decision {
        let (cip, sip): (IpAddr, IpAddr) =
            ("10.0.1.5".parse().unwrap(), "10.0.5.7".parse().unwrap());
        let (c, s) = (Identity::named("checkout"), Identity::named(server));
        set.evaluate(&FlowFacts::new((cip, &c), (sip, &s), port, &v), NOW)
    }

    fn pg() -> Verdict {
        Verdict::plaintext(Protocol::Postgres)
    }

    #[test]
    fn a_tls_flow_breaking_a_requirement_is_a_violation_naming_it() {
        let payments = |expires_ns: Option<i64>| Require {
            rule: Rule {
                protocols: Vec::new(),
                ..rule(
                    "payments-mtls",
                    Peer::Name("payments/*".into()),
                    &[],
                    expires_ns,
                )
            },
            mutual: true,
            min_tls: Some(TlsVersion::Tls12),
            clean_cert: true,
        };
        let set = PolicySet::new(Vec::new(), UnknownTreatment::Violation)
            .with_requires(vec![payments(None)]);
        let (cip, sip): (IpAddr, IpAddr) =
            ("10.0.1.5".parse().unwrap(), "10.0.5.7".parse().unwrap());
        let c = Identity::named("checkout");
        let judge = |set: &PolicySet, server: &str, version, mutual, clean_cert| {
            let s = Identity::named(server);
            let v = Verdict {
                tls_version: version,
                ..Verdict::new(Protocol::Tls, Encryption::Tls)
            };
            let mut f = FlowFacts::new((cip, &c), (sip, &s), 8443, &v);
            f.tls.mutual = mutual;
            f.tls.clean_cert = clean_cert;
            let d = set.evaluate(&f, NOW);
            (d.policy, d.unmet.map(|(r, why)| (r.rule.name.clone(), why)))
        };
        let v12 = TlsVersion::Tls12;
        let unmet = |why| (Policy::Violation, Some(("payments-mtls".to_owned(), why)));
        assert_eq!(
            judge(&set, "payments/api", v12, Some(true), Some(true)),
            (Policy::Ok, None)
        );
        assert_eq!(
            judge(&set, "payments/api", v12, Some(false), Some(true)),
            unmet(Reason::ClientAuthRequired)
        );
        assert_eq!(
            judge(
                &set,
                "payments/api",
                TlsVersion::Tls10,
                Some(true),
                Some(true)
            ),
            unmet(Reason::MinTlsRequired)
        );
        assert_eq!(
            judge(&set, "payments/api", v12, Some(true), Some(false)),
            unmet(Reason::CertIssuesRequired)
        );
        // Not visible (TLS 1.3 certificate, resumption): nothing broken.
        assert_eq!(
            judge(&set, "payments/api", TlsVersion::Tls13, None, None),
            (Policy::Ok, None)
        );
        // Another server; an expired rule.
        assert_eq!(
            judge(&set, "web", v12, Some(false), Some(false)),
            (Policy::Ok, None)
        );
        let expired = PolicySet::new(Vec::new(), UnknownTreatment::Violation)
            .with_requires(vec![payments(Some(NOW - 1))]);
        assert_eq!(
            judge(&expired, "payments/api", v12, Some(false), None),
            (Policy::Ok, None)
        );
    }

    #[test]
    fn encrypted_is_ok_plaintext_needs_a_rule() {
        let set = PolicySet::new(
            vec![rule("db", Peer::Name("rds-*".into()), &[5432], None)],
            UnknownTreatment::Violation,
        );
        let tls = Verdict::new(Protocol::Tls, Encryption::Tls);
        assert_eq!(judge(&set, "rds-billing", 5432, tls).policy, Policy::Ok);
        let ssh = Verdict::new(Protocol::Ssh, Encryption::Encrypted);
        assert_eq!(judge(&set, "rds-billing", 22, ssh).policy, Policy::Ok);

        let d = judge(&set, "rds-billing", 5432, pg());
        assert_eq!(d.policy, Policy::Allowed);
        assert_eq!(d.rule.expect("rule").name, "db");
        assert_eq!(
            judge(&set, "rds-billing", 5433, pg()).policy,
            Policy::Violation
        );
        assert_eq!(
            judge(&set, "orders-db", 5432, pg()).policy,
            Policy::Violation
        );
        let http = Verdict::plaintext(Protocol::Http);
        assert_eq!(
            judge(&set, "rds-billing", 5432, http).policy,
            Policy::Violation,
            "the rule names postgres only"
        );
    }

    #[test]
    fn cidr_peers_match_addresses() {
        let set = PolicySet::new(
            vec![rule(
                "net",
                Peer::Net("10.0.5.0/24".parse().unwrap()),
                &[],
                None,
            )],
            UnknownTreatment::Violation,
        );
        assert_eq!(judge(&set, "whatever", 6000, pg()).policy, Policy::Allowed);
    }

    #[test]
    fn expired_rules_stop_matching_and_are_named() {
        let set = PolicySet::new(
            vec![rule("old", Peer::Any, &[5432], Some(NOW - 1))],
            UnknownTreatment::Violation,
        );
        let d = judge(&set, "rds-billing", 5432, pg());
        assert_eq!(d.policy, Policy::Violation);
        assert!(d.rule.is_none());
        assert_eq!(d.expired.expect("expired rule").name, "old");
        assert_eq!(set.counts(NOW), (0, 1));
        assert_eq!(set.counts(NOW - 10), (1, 0));
        assert_eq!(set.expiring(NOW - 10, NOW).count(), 1);
        assert_eq!(set.expiring(NOW, NOW + 10).count(), 0);
    }

    #[test]
    fn an_active_rule_wins_over_an_expired_one() {
        let set = PolicySet::new(
            vec![
                rule("old", Peer::Any, &[5432], Some(NOW - 1)),
                rule("new", Peer::Any, &[5432], Some(NOW + 1)),
            ],
            UnknownTreatment::Violation,
        );
        let d = judge(&set, "x", 5432, pg());
        assert_eq!(d.policy, Policy::Allowed);
        assert_eq!(d.rule.expect("rule").name, "new");
    }

    #[test]
    fn unknown_encryption_has_its_own_treatment() {
        let unknown = Verdict::new(Protocol::Postgres, Encryption::Unknown);
        let strict = PolicySet::new(vec![], UnknownTreatment::Violation);
        assert_eq!(judge(&strict, "x", 5432, unknown).policy, Policy::Violation);
        let covered = PolicySet::new(
            vec![rule("db", Peer::Any, &[5432], None)],
            UnknownTreatment::Violation,
        );
        assert_eq!(
            judge(&covered, "x", 5432, unknown).policy,
            Policy::Allowed,
            "judged like plaintext: a rule can allow it"
        );
        let lenient = PolicySet::new(vec![], UnknownTreatment::Allowed);
        let d = judge(&lenient, "x", 5432, unknown);
        assert_eq!((d.policy, d.rule), (Policy::Allowed, None));
        assert_eq!(
            judge(&lenient, "x", 5432, pg()).policy,
            Policy::Violation,
            "plaintext still needs a rule"
        );
    }

    fn kube(ns: Option<&str>, workload: &str) -> Identity {
        use crate::kubernetes::{IdentityKind, KubeIdentity};
        let kind = if ns.is_some() {
            IdentityKind::Pod
        } else {
            IdentityKind::Node
        };
        Identity::from(&KubeIdentity::new(kind, ns, workload))
    }

    fn judge_ids(set: &PolicySet, client: &Identity, server: &Identity) -> Policy {
        let (cip, sip): (IpAddr, IpAddr) =
            ("10.0.1.5".parse().unwrap(), "10.0.5.7".parse().unwrap());
        set.evaluate(
            &FlowFacts::new((cip, client), (sip, server), 5432, &pg()),
            NOW,
        )
        .policy
    }

    #[test]
    fn rules_match_kubernetes_namespaces_and_workloads() {
        let set = PolicySet::new(
            vec![Rule {
                client: Peer::Namespace("pay*".into()),
                ..rule("ledger", Peer::Name("billing/ledger-db".into()), &[], None)
            }],
            UnknownTreatment::Violation,
        );
        let checkout = kube(Some("payments"), "checkout");
        let ledger = kube(Some("billing"), "ledger-db");
        assert_eq!(judge_ids(&set, &checkout, &ledger), Policy::Allowed);
        assert_eq!(
            judge_ids(&set, &kube(Some("shop"), "web"), &ledger),
            Policy::Violation,
            "another namespace"
        );
        assert_eq!(
            judge_ids(&set, &checkout, &kube(Some("billing"), "ledger-api")),
            Policy::Violation,
            "another workload"
        );
        assert_eq!(
            judge_ids(&set, &Identity::named("payments/checkout"), &ledger),
            Policy::Violation,
            "a CIDR name that looks like namespace/workload has no namespace"
        );
        assert_eq!(
            judge_ids(&set, &kube(None, "payments"), &ledger),
            Policy::Violation,
            "nodes have no namespace"
        );

        let any_in_ns = PolicySet::new(
            vec![rule("billing", Peer::Name("billing/*".into()), &[], None)],
            UnknownTreatment::Violation,
        );
        assert_eq!(judge_ids(&any_in_ns, &checkout, &ledger), Policy::Allowed);
        assert_eq!(
            judge_ids(&any_in_ns, &checkout, &kube(Some("billing-dev"), "x")),
            Policy::Violation
        );
    }
}
