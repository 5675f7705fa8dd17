//! Flows aggregated into edges: who talks to whom, on which port, how, and
//! whether policy allows it. Bounded: at most `max` edges are admitted at
//! a time (the same bound holds for the metric series, which are keyed
//! alike); flows of further edges fold into an `other` edge per (protocol,
//! encryption, policy), and are counted. Idle edges (unseen for the idle
//! timeout) leave the live view (the API) but stay admitted, their series
//! still counting, until the cap is full and a new edge needs the place:
//! then the edge idle longest is recycled. Its series leave `/metrics`
//! (those no other admitted edge shares), so a peer that sprays addresses
//! cannot fill the cap for good, nor grow the series without bound; if it
//! comes back it is a new edge, whose counters start again from 0 (a
//! counter reset to Prometheus, which `rate` and `increase` handle), and
//! whose first violating flow alerts again.
//! An edge keeps its metric series' counters, so that a flow on a known edge
//! costs one hash lookup and a few atomic increments.

use super::{
    certificates::CertIssue,
    client_auth::{self, ClientAuth},
    downgrade::{Downgrade, Downgrades, Kind},
    flow::Flow,
    policy::{Policy, Rule},
    tls_hello::TlsMeta,
};
use crate::{
    clock,
    export::{
        edge_list::{EdgeJson, EdgeList, RuleJson},
        metrics::{EdgeLabels, EdgeSeries},
    },
};
use agent_common::{Encryption, Protocol, Reason, TlsVersion};
use hashbrown::{HashMap, hash_map::Entry};
use std::{
    collections::{BTreeMap, VecDeque},
    hash::{Hash, Hasher, RandomState},
    net::IpAddr,
    sync::Arc,
    time::Duration,
};

/// The client and server name of overflow edges.
pub const OTHER: &str = "other";
/// Sample addresses kept per side of an edge: enough to find the pods or
/// hosts behind a name, bounded so an edge costs the same at any scale.
pub const SAMPLE_ADDRS: usize = 4;
/// Server names (SNI) kept per edge, as samples: names are unbounded (one
/// edge to a CDN can carry thousands), so they are never metric labels.
pub const SAMPLE_SNI: usize = 4;
/// Distinct ALPN ids and cipher suites counted per edge; more fold into
/// `other` (both come from the peers, who can send anything).
pub const MAX_TLS_KEYS: usize = 8;

#[derive(Clone, Debug, PartialOrd, Ord)]
pub struct EdgeKey {
    pub policy: Policy,
    pub client: Arc<str>,
    pub server: Arc<str>,
    pub server_port: u16,
    pub protocol: Protocol,
    pub encryption: Encryption,
}

/// Names come from shared `Arc`s (the resolver's address cache, the
/// Kubernetes index, the named CIDRs), so equal names are nearly always one
/// pointer: that is compared first (`Arc<str>`'s own `==` compares bytes).
impl PartialEq for EdgeKey {
    fn eq(&self, o: &Self) -> bool {
        let same = |a: &Arc<str>, b: &Arc<str>| Arc::ptr_eq(a, b) || a == b;
        self.policy == o.policy
            && self.server_port == o.server_port
            && self.protocol == o.protocol
            && self.encryption == o.encryption
            && same(&self.client, &o.client)
            && same(&self.server, &o.server)
    }
}

impl Eq for EdgeKey {}

/// Longest pair of names hashed in one hasher call.
const HASH_BUF: usize = 160;

/// By hand, in one hasher call when the names are short: the derived impl
/// makes eight, and SipHash (kept: names can be addresses peers choose)
/// pays per call; one call saves a fifth of a known flow's instructions.
/// Each name ends with 0xff, which UTF-8 never contains (as `str`'s own
/// Hash does), then the small fields in one word; a key's name lengths
/// decide the branch, so equal keys hash alike.
impl Hash for EdgeKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let small = u64::from(self.server_port)
            | u64::from(self.policy as u8) << 16
            | u64::from(self.protocol as u8) << 24
            | u64::from(self.encryption as u8) << 32;
        let (client, server) = (self.client.as_bytes(), self.server.as_bytes());
        let (c, s) = (client.len(), server.len());
        let len = c + s + 2 + 8;
        if len <= HASH_BUF {
            let mut buf = [0u8; HASH_BUF];
            buf[..c].copy_from_slice(client);
            buf[c] = 0xff;
            buf[c + 1..c + 1 + s].copy_from_slice(server);
            buf[c + 1 + s] = 0xff;
            buf[c + 2 + s..len].copy_from_slice(&small.to_ne_bytes());
            state.write(&buf[..len]);
        } else {
            state.write(client);
            state.write_u8(0xff);
            state.write(server);
            state.write_u8(0xff);
            state.write_u64(small);
        }
    }
}

impl EdgeKey {
    /// The `other` edge this one folds into; `name` is `OTHER`, shared.
    fn other(&self, name: &Arc<str>) -> Self {
        Self {
            client: name.clone(),
            server: name.clone(),
            server_port: 0,
            ..*self
        }
    }

    /// The labels of the edge's metric series.
    pub fn labels(&self) -> EdgeLabels<'_> {
        EdgeLabels {
            client: &self.client,
            server: &self.server,
            server_port: self.server_port,
            protocol: self.protocol.as_str(),
            encryption: self.encryption.as_str(),
            policy: self.policy.as_str(),
        }
    }
}

/// One flow, with what the pipeline found about it besides its edge's key.
pub struct Observation<'a> {
    pub flow: &'a Flow,
    /// The rule that allowed it, or for a violation an expired one that
    /// would have.
    pub rule: Option<&'a Arc<Rule>>,
    pub ts_ns: i64,
}

/// Where a flow went.
pub struct Recorded<'a> {
    /// The edge it counted on: its own, or an `other` edge.
    pub key: &'a EdgeKey,
    /// First flow on this edge since it was admitted.
    pub first: bool,
    /// Folded into `other` by the cap: the edge's own key.
    pub folded: Option<EdgeKey>,
    /// The edge's metric series, kept with it so that a flow on a known edge
    /// costs one lookup; `None` until the live pipeline fills it in (replay
    /// has no metrics).
    pub series: &'a mut Option<EdgeSeries>,
    /// What this flow showed got worse on its path (pipeline/downgrade.rs).
    pub downgrades: Vec<Downgrade>,
}

/// An idle edge taken out of the cap, with its series for the pipeline to
/// retire.
pub struct Recycled {
    pub key: EdgeKey,
    pub series: Option<EdgeSeries>,
}

/// An admitted (or `other`) edge: kept from its first flow on, like its
/// metric series, until recycled.
#[derive(Default)]
struct Slot {
    /// The aggregate the API shows; `None` while idle. Boxed so that an idle
    /// edge costs no more than its key and series.
    live: Option<Box<Edge>>,
    series: Option<EdgeSeries>,
    /// In `Edges::idle`.
    queued: bool,
}

#[derive(Clone, Debug)]
struct Edge {
    flows: u64,
    first_seen_ns: i64,
    last_seen_ns: i64,
    reasons: BTreeMap<Reason, u64>,
    tls_versions: BTreeMap<TlsVersion, u64>,
    client_auth: BTreeMap<ClientAuth, u64>,
    /// Flows per server-certificate issue (pipeline/certificates.rs).
    cert_issues: BTreeMap<CertIssue, u64>,
    /// The earliest notAfter (Unix seconds) of the certificates seen.
    cert_not_after: Option<i64>,
    /// Downgrade events counted on this edge (the worse flow's).
    downgrades: BTreeMap<Kind, u64>,
    midstream_flows: u64,
    client_addrs: Vec<IpAddr>,
    server_addrs: Vec<IpAddr>,
    rule: Option<Arc<Rule>>,
    tls: EdgeTls,
}

impl Edge {
    fn new(ts_ns: i64) -> Self {
        Self {
            flows: 0,
            first_seen_ns: ts_ns,
            last_seen_ns: ts_ns,
            reasons: BTreeMap::new(),
            tls_versions: BTreeMap::new(),
            client_auth: BTreeMap::new(),
            cert_issues: BTreeMap::new(),
            cert_not_after: None,
            downgrades: BTreeMap::new(),
            midstream_flows: 0,
            client_addrs: Vec::new(),
            server_addrs: Vec::new(),
            rule: None,
            tls: EdgeTls::default(),
        }
    }

    fn add(&mut self, o: &Observation<'_>) {
        self.flows += 1;
        self.first_seen_ns = self.first_seen_ns.min(o.ts_ns);
        self.last_seen_ns = self.last_seen_ns.max(o.ts_ns);
        let f = o.flow;
        let v = &f.verdict;
        if v.reason != Reason::None {
            *self.reasons.entry(v.reason).or_default() += 1;
        }
        if v.encryption == Encryption::Tls {
            *self.tls_versions.entry(v.tls_version).or_default() += 1;
        }
        if let Some(auth) = client_auth::of(v, &f.tls) {
            *self.client_auth.entry(auth).or_default() += 1;
        }
        if let Some(Ok(cert)) = &f.tls.server_cert {
            let now = o.ts_ns.div_euclid(1_000_000_000);
            for issue in cert.issues(f.tls.sni.as_deref(), now) {
                *self.cert_issues.entry(issue).or_default() += 1;
            }
            self.cert_not_after = Some(
                self.cert_not_after
                    .map_or(cert.not_after, |t| t.min(cert.not_after)),
            );
        }
        self.midstream_flows += u64::from(f.midstream);
        self.tls.add(&f.tls);
        sample(&mut self.client_addrs, f.client);
        sample(&mut self.server_addrs, f.server);
        if let Some(r) = o.rule {
            self.rule = Some(r.clone());
        }
    }
}

/// TLS hello metadata aggregated over an edge's flows.
#[derive(Clone, Debug, Default)]
struct EdgeTls {
    sni: Vec<String>,
    alpn: BTreeMap<String, u64>,
    ciphers: BTreeMap<String, u64>,
    inner: BTreeMap<Protocol, u64>,
}

impl EdgeTls {
    fn add(&mut self, m: &TlsMeta) {
        if let Some(name) = &m.sni
            && self.sni.len() < SAMPLE_SNI
            && !self.sni.contains(name)
        {
            self.sni.push(name.clone());
        }
        if let Some(id) = m.alpn() {
            count_bounded(&mut self.alpn, id);
        }
        if let Some(c) = m.cipher {
            count_bounded(
                &mut self.ciphers,
                &crate::pipeline::tls_hello::cipher_name(c),
            );
        }
        if let Some(p) = m.inner_protocol() {
            *self.inner.entry(p).or_default() += 1;
        }
    }

    /// The inner protocol most of the edge's flows named (ties: the first
    /// in `Protocol` order).
    fn inner_protocol(&self) -> Option<Protocol> {
        let top = self.inner.values().copied().max()?;
        self.inner.iter().find(|(_, n)| **n == top).map(|(p, _)| *p)
    }
}

fn count_bounded(map: &mut BTreeMap<String, u64>, key: &str) {
    // Known keys (nearly every flow) are counted without a new String.
    if let Some(n) = map.get_mut(key) {
        *n += 1;
        return;
    }
    let key = if map.len() < MAX_TLS_KEYS { key } else { OTHER };
    *map.entry(key.to_owned()).or_default() += 1;
}

pub struct Edges {
    /// Non-`other` edges, at most `max`. `RandomState`: names can be
    /// addresses peers choose.
    admitted: HashMap<EdgeKey, Slot, RandomState>,
    /// Admitted edges that went idle, in the order they did (oldest
    /// first): the ones to recycle. Each at most once (`Slot::queued`); an
    /// entry whose edge was seen again since is skipped when it comes up.
    idle: VecDeque<EdgeKey>,
    /// The idle edge the last `record` took out of the cap, until taken
    /// (`take_recycled`): kept here, not returned, so that the common case
    /// (no recycling) moves nothing.
    recycled: Option<Recycled>,
    /// `other` edges ever seen (bounded by protocols × encryptions ×
    /// policies).
    others: HashMap<EdgeKey, Slot, RandomState>,
    /// Slots with a live aggregate.
    live: usize,
    /// The `other` names, shared by every `other` key.
    other: Arc<str>,
    max: usize,
    idle_ns: i64,
    dropped: u64,
    /// Paths' best protection within the idle window.
    downgrades: Downgrades,
}

impl Edges {
    pub fn new(max: usize, idle: Duration) -> Self {
        Self {
            admitted: HashMap::default(),
            idle: VecDeque::new(),
            recycled: None,
            others: HashMap::default(),
            live: 0,
            other: OTHER.into(),
            max,
            idle_ns: i64::try_from(idle.as_nanos()).unwrap_or(i64::MAX),
            dropped: 0,
            downgrades: Downgrades::new(max, i64::try_from(idle.as_nanos()).unwrap_or(i64::MAX)),
        }
    }

    /// Counts one flow on its edge, or on an `other` edge past the cap
    /// when no idle edge can make room. A flow on a known edge costs one
    /// hash lookup (two once the cap is full).
    pub fn record(&mut self, key: EdgeKey, o: &Observation<'_>) -> Recorded<'_> {
        let f = o.flow;
        let downgrades = self.downgrades.observe(
            (&key.client, &key.server, key.server_port),
            &f.verdict,
            client_auth::of(&f.verdict, &f.tls),
            o.ts_ns,
        );
        if self.admitted.len() >= self.max && !self.admitted.contains_key(&key) {
            self.recycled = self.recycle();
        }
        let full = self.admitted.len() >= self.max;
        let (key, slot, first, folded) = match self.admitted.entry(key) {
            Entry::Occupied(e) => {
                let (k, slot) = e.into_entry();
                (k, slot, false, None)
            }
            Entry::Vacant(e) if !full => {
                let (k, slot) = e.insert_entry(Slot::default()).into_entry();
                (k, slot, true, None)
            }
            Entry::Vacant(e) => {
                self.dropped += 1;
                let own = e.into_key();
                let (k, slot, first) = match self.others.entry(own.other(&self.other)) {
                    Entry::Occupied(e) => {
                        let (k, slot) = e.into_entry();
                        (k, slot, false)
                    }
                    Entry::Vacant(e) => {
                        let (k, slot) = e.insert_entry(Slot::default()).into_entry();
                        (k, slot, true)
                    }
                };
                (k, slot, first, Some(own))
            }
        };
        let live = &mut self.live;
        let edge = slot.live.get_or_insert_with(|| {
            *live += 1;
            Box::new(Edge::new(o.ts_ns))
        });
        edge.add(o);
        for d in &downgrades {
            *edge.downgrades.entry(d.kind).or_default() += 1;
        }
        Recorded {
            key,
            first,
            folded,
            series: &mut slot.series,
            downgrades,
        }
    }

    /// The idle edge that gave up its place under the cap to the edge of
    /// the last `record`, if one did.
    pub fn take_recycled(&mut self) -> Option<Recycled> {
        self.recycled.take()
    }

    /// Takes the admitted edge idle longest out of the cap, if one is.
    fn recycle(&mut self) -> Option<Recycled> {
        while let Some(k) = self.idle.pop_front() {
            match self.admitted.entry(k) {
                Entry::Occupied(e) if e.get().live.is_none() => {
                    let (key, slot) = e.remove_entry();
                    return Some(Recycled {
                        key,
                        series: slot.series,
                    });
                }
                // Seen again since: queued again when it next goes idle.
                Entry::Occupied(mut e) => e.get_mut().queued = false,
                Entry::Vacant(_) => {}
            }
        }
        None
    }

    /// Drops edges unseen for the idle timeout from the live view, and
    /// queues the admitted ones for recycling; returns how many.
    pub fn expire(&mut self, now_ns: i64) -> usize {
        let idle = self.idle_ns;
        let is_idle = |e: &mut Box<Edge>| now_ns.saturating_sub(e.last_seen_ns) >= idle;
        let mut expired = 0;
        let mut newly_idle = Vec::new();
        for (k, slot) in &mut self.admitted {
            if let Some(e) = slot.live.take_if(is_idle) {
                expired += 1;
                if !slot.queued {
                    slot.queued = true;
                    newly_idle.push((e.last_seen_ns, k.clone()));
                }
            }
        }
        newly_idle.sort_unstable_by_key(|(t, _)| *t);
        self.idle.extend(newly_idle.into_iter().map(|(_, k)| k));
        for slot in self.others.values_mut() {
            if slot.live.take_if(is_idle).is_some() {
                expired += 1;
            }
        }
        self.live -= expired;
        expired
    }

    /// Live edges.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Flows folded into `other` edges since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The API view, violations first; `only` keeps one policy.
    pub fn snapshot(&self, only: Option<Policy>) -> EdgeList {
        let mut rows: Vec<(&EdgeKey, &Edge)> = self
            .admitted
            .iter()
            .chain(&self.others)
            .filter(|(k, _)| only.is_none_or(|p| k.policy == p))
            .filter_map(|(k, slot)| Some((k, slot.live.as_deref()?)))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        EdgeList {
            edges: rows.into_iter().map(|(k, e)| edge_json(k, e)).collect(),
            dropped_flows: self.dropped,
            agent: None,
        }
    }
}

fn sample(addrs: &mut Vec<IpAddr>, ip: IpAddr) {
    if addrs.len() < SAMPLE_ADDRS && !addrs.contains(&ip) {
        addrs.push(ip);
    }
}

/// An edge's row of the API view.
fn edge_json(k: &EdgeKey, e: &Edge) -> EdgeJson {
    let strs = |a: &[IpAddr]| a.iter().map(ToString::to_string).collect();
    let rule = e.rule.as_deref().map(rule_json);
    let (rule, expired_rule) = match k.policy {
        Policy::Violation => (None, rule),
        _ => (rule, None),
    };
    EdgeJson {
        client: k.client.to_string(),
        server: k.server.to_string(),
        server_port: k.server_port,
        protocol: k.protocol.as_str().into(),
        encryption: k.encryption.as_str().into(),
        policy: k.policy.as_str().into(),
        flows: e.flows,
        reasons: e
            .reasons
            .iter()
            .map(|(r, n)| (r.as_str().into(), *n))
            .collect(),
        tls_versions: e
            .tls_versions
            .iter()
            .map(|(v, n)| (v.as_str().into(), *n))
            .collect(),
        client_auth: e
            .client_auth
            .iter()
            .map(|(a, n)| (a.as_str().into(), *n))
            .collect(),
        cert_issues: e
            .cert_issues
            .iter()
            .map(|(i, n)| (i.as_str().into(), *n))
            .collect(),
        cert_not_after: e
            .cert_not_after
            .map(|t| clock::rfc3339_wide(i128::from(t) * 1_000_000_000)),
        downgrades: e
            .downgrades
            .iter()
            .map(|(k, n)| (k.as_str().into(), *n))
            .collect(),
        midstream_flows: e.midstream_flows,
        first_seen: clock::rfc3339(e.first_seen_ns),
        last_seen: clock::rfc3339(e.last_seen_ns),
        client_addrs: strs(&e.client_addrs),
        server_addrs: strs(&e.server_addrs),
        rule,
        expired_rule,
        sni: e.tls.sni.clone(),
        alpn: e.tls.alpn.clone(),
        ciphers: e.tls.ciphers.clone(),
        inner_protocol: e.tls.inner_protocol().map(|p| p.as_str().to_owned()),
    }
}

fn rule_json(r: &Rule) -> RuleJson {
    RuleJson {
        name: r.name.clone(),
        owner: r.owner.clone(),
        reason: r.reason.clone(),
        expires: r.expires(),
    }
}

#[cfg(test)]
mod tests;
