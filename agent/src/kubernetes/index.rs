//! The IP → identity index the watches write and the event path reads.
//!
//! Memory: per object we keep its uid as 16 bytes, its IPs and one pointer
//! to an interned identity; the identity (kind, namespace, workload) exists
//! once per workload however many pods share it, and goes away with the
//! last object that names it.
//!
//! IP reuse: an IP may be claimed by several objects at once — a new pod gets
//! the IP of a pod whose DELETED event has not arrived yet. Each IP keeps its
//! claimants in the order they first claimed it and resolves to the newest;
//! removing the old pod (by uid) removes only its own claim.

use super::KubeIdentity;
use super::owner::Claim;
use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

/// Which watch an object came from: uids are unique per kind, and a re-list
/// replaces one source's objects only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Pods,
    Services,
    Nodes,
}

/// Object uids are UUIDs: 16 bytes instead of a 36-byte string (as bytes,
/// not `u128`, whose 16-byte alignment would pad every key to 32). Anything
/// else (never seen from a real API server) is hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Uid([u8; 16]);

impl Uid {
    fn parse(s: &str) -> Self {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        match u128::from_str_radix(&hex, 16) {
            Ok(v) if hex.len() == 32 => Self(v.to_be_bytes()),
            _ => {
                let mut h = DefaultHasher::new();
                s.hash(&mut h);
                Self(u128::from(h.finish()).to_be_bytes())
            }
        }
    }
}

type Key = (Source, Uid);

struct Object {
    ips: Box<[IpAddr]>,
    identity: Arc<KubeIdentity>,
}

#[derive(Default)]
pub struct IpIndex {
    /// Claimants per IP, oldest first; the last one names the IP.
    ips: HashMap<IpAddr, Vec<(Key, Arc<KubeIdentity>)>>,
    objects: HashMap<Key, Object>,
    /// Objects per source, for the health gauge without a scan.
    counts: HashMap<Source, usize>,
    identities: HashSet<Arc<KubeIdentity>>,
}

impl IpIndex {
    pub fn lookup(&self, ip: IpAddr) -> Option<Arc<KubeIdentity>> {
        self.ips.get(&ip)?.last().map(|(_, id)| Arc::clone(id))
    }

    /// Objects of `source` currently holding at least one IP.
    pub fn count(&self, source: Source) -> usize {
        self.counts.get(&source).copied().unwrap_or(0)
    }

    /// Distinct identities (workloads, services, nodes) held.
    pub fn identities(&self) -> usize {
        self.identities.len()
    }

    /// An ADDED or MODIFIED object: `None` when it holds no IP any more.
    pub fn upsert(&mut self, source: Source, uid: &str, claim: Option<Claim>) {
        let key = (source, Uid::parse(uid));
        let Some(claim) = claim else {
            self.remove_key(key);
            return;
        };
        if let Some(old) = self.objects.get(&key)
            && *old.ips == *claim.ips
            && *old.identity == claim.identity
        {
            return;
        }
        let identity = self.intern(claim.identity);
        let old = self.objects.insert(
            key,
            Object {
                ips: claim.ips.into_boxed_slice(),
                identity: Arc::clone(&identity),
            },
        );
        let new_ips = &self.objects[&key].ips;
        if old.is_none() {
            *self.counts.entry(source).or_default() += 1;
        }
        if let Some(old) = &old {
            for ip in old.ips.iter().filter(|ip| !new_ips.contains(ip)) {
                drop_claim(&mut self.ips, *ip, key);
            }
        }
        for ip in new_ips.iter() {
            // Almost every IP has one claimant: no room for four.
            let claims = self.ips.entry(*ip).or_insert_with(|| Vec::with_capacity(1));
            match claims.iter_mut().find(|(k, _)| *k == key) {
                // Keeps its place: a MODIFIED old pod must not take an IP
                // back from the newer pod that reuses it.
                Some((_, id)) => *id = Arc::clone(&identity),
                None => claims.push((key, Arc::clone(&identity))),
            }
        }
        if let Some(old) = old {
            self.release(old.identity);
        }
    }

    pub fn remove(&mut self, source: Source, uid: &str) {
        self.remove_key((source, Uid::parse(uid)));
    }

    /// A fresh list: `source`'s objects become exactly `claims`.
    pub fn replace(&mut self, source: Source, claims: Vec<(String, Option<Claim>)>) {
        let listed: HashSet<Key> = claims
            .iter()
            .map(|(uid, _)| (source, Uid::parse(uid)))
            .collect();
        let gone: Vec<Key> = self
            .objects
            .keys()
            .filter(|k| k.0 == source && !listed.contains(k))
            .copied()
            .collect();
        for key in gone {
            self.remove_key(key);
        }
        for (uid, claim) in claims {
            self.upsert(source, &uid, claim);
        }
    }

    fn remove_key(&mut self, key: Key) {
        let Some(old) = self.objects.remove(&key) else {
            return;
        };
        if let Some(n) = self.counts.get_mut(&key.0) {
            *n -= 1;
        }
        for ip in &old.ips {
            drop_claim(&mut self.ips, *ip, key);
        }
        self.release(old.identity);
    }

    fn intern(&mut self, identity: KubeIdentity) -> Arc<KubeIdentity> {
        if let Some(existing) = self.identities.get(&identity) {
            return Arc::clone(existing);
        }
        let new = Arc::new(identity);
        self.identities.insert(Arc::clone(&new));
        new
    }

    /// Forgets an identity once no object names it (the interner's copy and
    /// `identity` are the last two; a lookup result held elsewhere keeps it
    /// alive a little longer, and a later upsert re-interns it).
    fn release(&mut self, identity: Arc<KubeIdentity>) {
        if Arc::strong_count(&identity) <= 2 {
            self.identities.remove(&*identity);
        }
    }
}

fn drop_claim(ips: &mut HashMap<IpAddr, Vec<(Key, Arc<KubeIdentity>)>>, ip: IpAddr, key: Key) {
    if let Entry::Occupied(mut e) = ips.entry(ip) {
        e.get_mut().retain(|(k, _)| *k != key);
        if e.get().is_empty() {
            e.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubernetes::IdentityKind;

    const OLD: &str = "11111111-1111-1111-1111-111111111111";
    const NEW: &str = "22222222-2222-2222-2222-222222222222";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn claim(ips: &[&str], workload: &str) -> Option<Claim> {
        Some(Claim {
            ips: ips.iter().map(|s| ip(s)).collect(),
            identity: KubeIdentity::new(IdentityKind::Pod, Some("ns"), workload),
        })
    }

    fn name(ix: &IpIndex, addr: &str) -> Option<String> {
        ix.lookup(ip(addr)).map(|i| i.to_string())
    }

    #[test]
    fn late_delete_of_old_pod_keeps_the_new_pods_ip() {
        let mut ix = IpIndex::default();
        ix.upsert(Source::Pods, OLD, claim(&["10.0.0.9"], "old"));
        ix.upsert(Source::Pods, NEW, claim(&["10.0.0.9"], "new"));
        assert_eq!(name(&ix, "10.0.0.9").as_deref(), Some("ns/new"));
        // The old pod's last status update still lists the IP.
        ix.upsert(Source::Pods, OLD, claim(&["10.0.0.9"], "old"));
        assert_eq!(name(&ix, "10.0.0.9").as_deref(), Some("ns/new"));
        ix.remove(Source::Pods, OLD);
        assert_eq!(name(&ix, "10.0.0.9").as_deref(), Some("ns/new"));
        ix.remove(Source::Pods, NEW);
        assert_eq!(name(&ix, "10.0.0.9"), None);
    }

    #[test]
    fn new_pod_deleted_first_hands_the_ip_back_to_the_live_one() {
        let mut ix = IpIndex::default();
        ix.upsert(Source::Pods, OLD, claim(&["10.0.0.9"], "old"));
        ix.upsert(Source::Pods, NEW, claim(&["10.0.0.9"], "new"));
        ix.remove(Source::Pods, NEW);
        assert_eq!(name(&ix, "10.0.0.9").as_deref(), Some("ns/old"));
    }

    #[test]
    fn modified_ips_move_and_finished_pods_release() {
        let mut ix = IpIndex::default();
        ix.upsert(Source::Pods, OLD, claim(&["10.0.0.1"], "a"));
        ix.upsert(Source::Pods, OLD, claim(&["10.0.0.2", "fd00::2"], "a"));
        assert_eq!(name(&ix, "10.0.0.1"), None);
        assert_eq!(name(&ix, "fd00::2").as_deref(), Some("ns/a"));
        ix.upsert(Source::Pods, OLD, None);
        assert_eq!(name(&ix, "10.0.0.2"), None);
        assert_eq!(ix.count(Source::Pods), 0);
    }

    #[test]
    fn identities_are_shared_and_forgotten_with_their_last_object() {
        let mut ix = IpIndex::default();
        ix.upsert(Source::Pods, OLD, claim(&["10.0.0.1"], "web"));
        ix.upsert(Source::Pods, NEW, claim(&["10.0.0.2"], "web"));
        assert_eq!(ix.identities(), 1);
        assert!(Arc::ptr_eq(
            &ix.lookup(ip("10.0.0.1")).unwrap(),
            &ix.lookup(ip("10.0.0.2")).unwrap()
        ));
        ix.remove(Source::Pods, OLD);
        assert_eq!(ix.identities(), 1);
        ix.remove(Source::Pods, NEW);
        assert_eq!(ix.identities(), 0);
    }

    #[test]
    fn replace_drops_unlisted_objects_of_that_source_only() {
        let mut ix = IpIndex::default();
        ix.upsert(Source::Pods, OLD, claim(&["10.0.0.1"], "a"));
        ix.upsert(Source::Services, OLD, claim(&["10.96.0.1"], "svc"));
        ix.replace(Source::Pods, vec![(NEW.into(), claim(&["10.0.0.2"], "b"))]);
        assert_eq!(name(&ix, "10.0.0.1"), None);
        assert_eq!(name(&ix, "10.0.0.2").as_deref(), Some("ns/b"));
        assert_eq!(name(&ix, "10.96.0.1").as_deref(), Some("ns/svc"));
    }

    #[test]
    fn uuid_uids_are_compact_and_others_still_distinct() {
        assert_eq!(Uid::parse(OLD).0, [0x11; 16]);
        assert_ne!(Uid::parse("a"), Uid::parse("b"));
    }
}
