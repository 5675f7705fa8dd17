//! Who is at each end of a flow. Sources are asked in order and the first
//! answer wins; the IP address itself is the fallback. The Kubernetes
//! source (pods and services from the API server) goes in front of the
//! configured CIDRs.

use super::cidr::Cidr;
use crate::kubernetes::{KubeIdentities, KubeIdentity};
use std::{collections::HashMap, net::IpAddr, sync::Arc};

/// The name a peer goes by in metrics, the API and policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    /// `namespace/workload`, a configured CIDR name, or the IP address.
    pub name: Arc<str>,
    /// Kubernetes namespace and workload, when a Kubernetes source named it.
    pub namespace: Option<Arc<str>>,
    pub workload: Option<Arc<str>>,
}

impl Identity {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.into(),
            namespace: None,
            workload: None,
        }
    }
}

/// Shares the source's interned strings: no allocation per flow.
impl From<&KubeIdentity> for Identity {
    fn from(k: &KubeIdentity) -> Self {
        Self {
            name: Arc::clone(&k.name),
            namespace: k.namespace.clone(),
            workload: Some(Arc::clone(&k.workload)),
        }
    }
}

/// One way of naming an address.
pub trait IdentitySource: Send + Sync {
    fn lookup(&self, ip: IpAddr) -> Option<Identity>;
}

/// Named networks; the longest matching prefix wins.
#[derive(Default)]
pub struct CidrNames {
    /// Prefix lengths in use, longest first, per family; a lookup masks the
    /// address once per length (few lengths in practice) instead of
    /// scanning every network.
    lengths_v4: Vec<u8>,
    lengths_v6: Vec<u8>,
    names: HashMap<Cidr, Identity>,
}

impl CidrNames {
    pub fn new(entries: impl IntoIterator<Item = (Cidr, String)>) -> Self {
        let mut s = Self::default();
        for (cidr, name) in entries {
            let lengths = if cidr.is_v6() {
                &mut s.lengths_v6
            } else {
                &mut s.lengths_v4
            };
            if !lengths.contains(&cidr.prefix_len()) {
                lengths.push(cidr.prefix_len());
            }
            s.names.insert(cidr, Identity::named(&name));
        }
        s.lengths_v4.sort_unstable_by(|a, b| b.cmp(a));
        s.lengths_v6.sort_unstable_by(|a, b| b.cmp(a));
        s
    }
}

impl IdentitySource for CidrNames {
    fn lookup(&self, ip: IpAddr) -> Option<Identity> {
        let lengths = if ip.is_ipv6() {
            &self.lengths_v6
        } else {
            &self.lengths_v4
        };
        lengths
            .iter()
            .find_map(|len| self.names.get(&Cidr::of(ip, *len)))
            .cloned()
    }
}

/// Pods, services and nodes from the API server; answers from the last
/// known state and never waits for the server.
impl IdentitySource for KubeIdentities {
    fn lookup(&self, ip: IpAddr) -> Option<Identity> {
        Self::lookup(self, ip).map(|k| Identity::from(&*k))
    }
}

/// The sources in order, then the address.
#[derive(Default)]
pub struct Resolver {
    sources: Vec<Box<dyn IdentitySource>>,
    addrs: AddrNames,
}

impl Resolver {
    pub fn new(sources: Vec<Box<dyn IdentitySource>>) -> Self {
        Self {
            sources,
            addrs: AddrNames::default(),
        }
    }

    pub fn resolve(&mut self, ip: IpAddr) -> Identity {
        self.sources
            .iter()
            .find_map(|s| s.lookup(ip))
            .unwrap_or_else(|| Identity {
                name: self.addrs.name(ip),
                namespace: None,
                workload: None,
            })
    }
}

/// Slots in `AddrNames` (a power of two): 40 KiB.
const ADDR_NAMES: usize = 1024;

/// The names of addresses no source named, formatted once: naming a flow
/// is then a reference count, not a format and an allocation. Only this
/// fallback is cached, never a source's answer, so the sources are asked
/// every time and a Kubernetes name that changes is never hidden.
///
/// Direct-mapped: one slot per address hash, a new address takes the slot
/// over. Bounded by construction, and a cheap hash is safe although peers
/// choose addresses: colliding addresses only evict each other, which
/// costs what no cache costs (formatting the address).
struct AddrNames {
    slots: Box<[Option<AddrName>]>,
}

type AddrName = (IpAddr, Arc<str>);

impl Default for AddrNames {
    fn default() -> Self {
        Self {
            slots: vec![None; ADDR_NAMES].into_boxed_slice(),
        }
    }
}

impl AddrNames {
    fn name(&mut self, ip: IpAddr) -> Arc<str> {
        let slot = &mut self.slots[slot_of(ip)];
        match slot {
            Some((cached, name)) if *cached == ip => Arc::clone(name),
            _ => {
                let name: Arc<str> = ip.to_string().into();
                *slot = Some((ip, Arc::clone(&name)));
                name
            }
        }
    }
}

/// Fibonacci hashing: the top bits of the address bits times 2^64/φ.
fn slot_of(ip: IpAddr) -> usize {
    let bits = match ip {
        IpAddr::V4(a) => u64::from(a.to_bits()),
        IpAddr::V6(a) => {
            let b = a.to_bits();
            #[expect(clippy::cast_possible_truncation, reason = "folding halves")]
            let folded = (b as u64) ^ ((b >> 64) as u64);
            folded
        }
    };
    let top = bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - ADDR_NAMES.trailing_zeros());
    usize::try_from(top).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(entries: &[(&str, &str)]) -> Resolver {
        let cidrs = CidrNames::new(
            entries
                .iter()
                .map(|(c, n)| (c.parse().expect("cidr"), (*n).to_owned())),
        );
        Resolver::new(vec![Box::new(cidrs)])
    }

    fn name(r: &mut Resolver, ip: &str) -> String {
        r.resolve(ip.parse().expect("ip")).name.to_string()
    }

    #[test]
    fn longest_prefix_wins_for_v4_and_v6() {
        let mut r = names(&[
            ("10.0.0.0/8", "corp"),
            ("10.0.5.0/24", "rds-billing"),
            ("10.0.5.7", "billing-primary"),
            ("fd00::/16", "corp6"),
            ("fd00:5::/64", "rds-billing"),
        ]);
        assert_eq!(name(&mut r, "10.0.5.7"), "billing-primary");
        assert_eq!(name(&mut r, "10.0.5.8"), "rds-billing");
        assert_eq!(name(&mut r, "10.9.9.9"), "corp");
        assert_eq!(name(&mut r, "fd00:5::99"), "rds-billing");
        assert_eq!(name(&mut r, "fd00:6::1"), "corp6");
    }

    #[test]
    fn unnamed_addresses_are_their_ip() {
        let mut r = names(&[("10.0.5.0/24", "rds-billing")]);
        assert_eq!(name(&mut r, "192.0.2.1"), "192.0.2.1");
        assert_eq!(name(&mut r, "fd77::2"), "fd77::2");
        // An IPv4 network never names an IPv6 address with the same bits.
        assert_eq!(name(&mut r, "::a00:507"), "::a00:507");
        assert_eq!(name(&mut Resolver::default(), "10.0.5.1"), "10.0.5.1");
    }

    struct Fixed;
    impl IdentitySource for Fixed {
        fn lookup(&self, ip: IpAddr) -> Option<Identity> {
            (ip == IpAddr::from([10, 0, 5, 9])).then(|| Identity {
                name: "billing/api".into(),
                namespace: Some("billing".into()),
                workload: Some("api".into()),
            })
        }
    }

    #[test]
    fn earlier_sources_win() {
        let cidrs = CidrNames::new([("10.0.5.0/24".parse().expect("cidr"), "rds".to_owned())]);
        let mut r = Resolver::new(vec![Box::new(Fixed), Box::new(cidrs)]);
        assert_eq!(name(&mut r, "10.0.5.9"), "billing/api");
        assert_eq!(name(&mut r, "10.0.5.8"), "rds");
    }

    #[test]
    fn address_names_are_formatted_once_and_stay_right_when_slots_collide() {
        let mut r = Resolver::default();
        let ip: IpAddr = "10.77.0.1".parse().expect("ip");
        let first = r.resolve(ip).name;
        assert!(Arc::ptr_eq(&first, &r.resolve(ip).name), "cached");
        // Far more addresses than slots, v4 and v6: every name is its own
        // address, whatever evicted what.
        let many: Vec<IpAddr> = (0..4 * ADDR_NAMES as u32)
            .flat_map(|n| {
                [
                    IpAddr::from((0x0a00_0000 + n).to_be_bytes()),
                    IpAddr::from((u128::from(n) << 64 | 0xfd77).to_be_bytes()),
                ]
            })
            .collect();
        for round in 0..2 {
            for ip in &many {
                assert_eq!(*r.resolve(*ip).name, ip.to_string(), "round {round}");
            }
        }
    }

    /// A source whose answer changes, as the Kubernetes source's does when
    /// pods come and go.
    struct Changing(std::sync::Mutex<Option<&'static str>>);
    impl IdentitySource for Changing {
        fn lookup(&self, _: IpAddr) -> Option<Identity> {
            self.0.lock().expect("lock").map(Identity::named)
        }
    }

    #[test]
    fn a_source_that_starts_or_stops_naming_an_address_is_never_hidden_by_the_cache() {
        let source = Arc::new(Changing(std::sync::Mutex::new(None)));
        struct Shared(Arc<Changing>);
        impl IdentitySource for Shared {
            fn lookup(&self, ip: IpAddr) -> Option<Identity> {
                self.0.lookup(ip)
            }
        }
        let mut r = Resolver::new(vec![Box::new(Shared(source.clone()))]);
        assert_eq!(name(&mut r, "10.0.5.9"), "10.0.5.9");
        *source.0.lock().expect("lock") = Some("billing/api");
        assert_eq!(name(&mut r, "10.0.5.9"), "billing/api");
        *source.0.lock().expect("lock") = Some("billing/api-v2");
        assert_eq!(name(&mut r, "10.0.5.9"), "billing/api-v2");
        *source.0.lock().expect("lock") = None;
        assert_eq!(name(&mut r, "10.0.5.9"), "10.0.5.9");
    }

    #[test]
    fn kubernetes_identities_carry_namespace_and_workload_sharing_the_strings() {
        use crate::kubernetes::IdentityKind;
        let k = KubeIdentity::new(IdentityKind::Pod, Some("payments"), "checkout");
        let id = Identity::from(&k);
        assert_eq!(&*id.name, "payments/checkout");
        assert_eq!(id.namespace.as_deref(), Some("payments"));
        assert_eq!(id.workload.as_deref(), Some("checkout"));
        assert!(Arc::ptr_eq(&id.name, &k.name), "no copy per flow");
        let node = Identity::from(&KubeIdentity::new(IdentityKind::Node, None, "ip-10-0-1-23"));
        assert_eq!((&*node.name, node.namespace), ("node/ip-10-0-1-23", None));
    }
}
