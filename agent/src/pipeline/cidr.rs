//! IP networks written as CIDRs (`10.0.5.0/24`, `fd00::/64`) or single
//! addresses, for identities and policy rules.

use std::{fmt, net::IpAddr, str::FromStr};

/// A network: an address with its host bits zero, and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    net: u128,
    len: u8,
    v6: bool,
}

impl Cidr {
    pub const fn prefix_len(self) -> u8 {
        self.len
    }

    pub const fn is_v6(self) -> bool {
        self.v6
    }

    pub fn contains(self, ip: IpAddr) -> bool {
        let (bits, v6) = to_bits(ip);
        v6 == self.v6 && mask(bits, self.len, v6) == self.net
    }

    /// The network `ip` falls in for this prefix length (a lookup key).
    pub fn of(ip: IpAddr, len: u8) -> Self {
        let (bits, v6) = to_bits(ip);
        Self {
            net: mask(bits, len, v6),
            len,
            v6,
        }
    }
}

/// IPv4 addresses live in the low 32 bits.
fn to_bits(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), false),
        IpAddr::V6(a) => (u128::from(a), true),
    }
}

fn mask(bits: u128, len: u8, v6: bool) -> u128 {
    let width = if v6 { 128 } else { 32 };
    if len == 0 {
        return 0;
    }
    let host = u32::from(width - len);
    bits & (u128::MAX << host) & if v6 { u128::MAX } else { u128::from(u32::MAX) }
}

impl FromStr for Cidr {
    type Err = String;

    /// Host bits must be zero: `10.0.0.1/24` is more likely a typo than a
    /// network, so it is refused with the network it would mean.
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not a CIDR: {addr:?} is not an IP address"))?;
        let (bits, v6) = to_bits(ip);
        let width = if v6 { 128 } else { 32 };
        let len = match len {
            None => width,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= width => n,
                _ => {
                    return Err(format!(
                        "{s:?} is not a CIDR: the prefix length must be 0..={width}"
                    ));
                }
            },
        };
        let c = Self::of(ip, len);
        if c.net != bits {
            return Err(format!(
                "{s:?} has host bits set; the network is {c} (write that, or the single address)"
            ));
        }
        Ok(c)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        #[expect(clippy::cast_possible_truncation, reason = "IPv4 bits fit u32")]
        let ip = if self.v6 {
            IpAddr::V6(self.net.into())
        } else {
            IpAddr::V4((self.net as u32).into())
        };
        write!(f, "{ip}/{}", self.len)
    }
}

/// Whether `s` is meant as an address or network (it starts with an IP
/// address), as opposed to an identity name such as `billing/api`.
pub fn looks_like_cidr(s: &str) -> bool {
    s.split_once('/')
        .map_or(s, |(a, _)| a)
        .parse::<IpAddr>()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn v4_and_v6_networks_contain_their_addresses() {
        let n: Cidr = "10.0.5.0/24".parse().expect("cidr");
        assert!(n.contains(ip("10.0.5.77")));
        assert!(!n.contains(ip("10.0.6.1")));
        assert!(!n.contains(ip("::ffff:10.0.5.77")), "families never mix");
        let n6: Cidr = "fd00:5::/64".parse().expect("cidr");
        assert!(n6.contains(ip("fd00:5::1")));
        assert!(!n6.contains(ip("fd00:6::1")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains(ip("192.0.2.1")));
        let host: Cidr = "fd77::2".parse().expect("single address");
        assert_eq!(host.prefix_len(), 128);
        assert!(host.contains(ip("fd77::2")));
        assert_eq!(host.to_string(), "fd77::2/128");
    }

    #[test]
    fn bad_cidrs_say_what_is_wrong() {
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>().unwrap_err(),
            r#""10.0.0.0/33" is not a CIDR: the prefix length must be 0..=32"#
        );
        assert_eq!(
            "10.0.0.1/24".parse::<Cidr>().unwrap_err(),
            r#""10.0.0.1/24" has host bits set; the network is 10.0.0.0/24 (write that, or the single address)"#
        );
        assert!("10.0.0/8".parse::<Cidr>().is_err());
        assert!("fd00::/129".parse::<Cidr>().is_err());
        assert!(looks_like_cidr("10.0.0.0/33"));
        assert!(looks_like_cidr("fd00::1"));
        assert!(!looks_like_cidr("billing/api"));
        assert!(!looks_like_cidr("rds-billing"));
    }
}
