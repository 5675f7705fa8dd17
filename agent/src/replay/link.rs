//! Link layers: from a captured frame to its IP packet.

/// LINKTYPE_* values (tcpdump.org/linktypes.html) we read.
const NULL: u16 = 0;
const ETHERNET: u16 = 1;
/// DLT_RAW as some BSDs numbered it in files (12; 14 on OpenBSD).
const RAW_BSD: u16 = 12;
const RAW_OPENBSD: u16 = 14;
const RAW: u16 = 101;
/// Like NULL, but the family is always in network byte order.
const LOOP: u16 = 108;
const LINUX_SLL: u16 = 113;
const IPV4: u16 = 228;
const IPV6: u16 = 229;
const LINUX_SLL2: u16 = 276;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// 802.1Q, 802.1ad and the pre-standard QinQ tag.
const VLAN_TAGS: [u16; 3] = [0x8100, 0x88a8, 0x9100];
/// Stacked VLAN tags followed before giving up.
const MAX_VLAN_TAGS: usize = 4;

/// The network layer a frame carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Network<'a> {
    V4(&'a [u8]),
    V6(&'a [u8]),
    /// Not IP (ARP, LLC, ...), or an IP version this code does not know.
    Other,
    /// The link header itself is cut short.
    Truncated,
    /// A link type replay does not decode.
    UnsupportedLink,
}

pub fn network(link_type: u16, frame: &[u8]) -> Network<'_> {
    match link_type {
        ETHERNET => ethernet(frame),
        RAW | RAW_BSD | RAW_OPENBSD => by_version(frame),
        IPV4 => Network::V4(frame),
        IPV6 => Network::V6(frame),
        NULL | LOOP => null(frame),
        LINUX_SLL => match (frame.get(14..16), frame.get(16..)) {
            (Some(t), Some(rest)) => ethertype(be16(t), rest),
            _ => Network::Truncated,
        },
        LINUX_SLL2 => match (frame.get(0..2), frame.get(20..)) {
            (Some(t), Some(rest)) => ethertype(be16(t), rest),
            _ => Network::Truncated,
        },
        _ => Network::UnsupportedLink,
    }
}

fn ethernet(frame: &[u8]) -> Network<'_> {
    match (frame.get(12..14), frame.get(14..)) {
        (Some(t), Some(rest)) => ethertype(be16(t), rest),
        _ => Network::Truncated,
    }
}

/// Follows VLAN tags (4 bytes each: TCI, then the inner ethertype).
fn ethertype(mut t: u16, mut rest: &[u8]) -> Network<'_> {
    for _ in 0..=MAX_VLAN_TAGS {
        match t {
            ETH_P_IP => return Network::V4(rest),
            ETH_P_IPV6 => return Network::V6(rest),
            tag if VLAN_TAGS.contains(&tag) => match (rest.get(2..4), rest.get(4..)) {
                (Some(inner), Some(r)) => {
                    t = be16(inner);
                    rest = r;
                }
                _ => return Network::Truncated,
            },
            _ => return Network::Other,
        }
    }
    Network::Other
}

/// BSD loopback: a 4-byte address family in the capturing host's byte
/// order (network order for LOOP). AF_INET is 2 everywhere; AF_INET6 is 10
/// on Linux, 24, 28 or 30 on the BSDs and macOS.
fn null(frame: &[u8]) -> Network<'_> {
    let (Some(fam), Some(rest)) = (frame.get(..4), frame.get(4..)) else {
        return Network::Truncated;
    };
    let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
    let be = u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]);
    // One of the two readings is a small number: that is the family.
    match le.min(be) {
        2 => Network::V4(rest),
        10 | 24 | 28 | 30 => Network::V6(rest),
        _ => Network::Other,
    }
}

/// Raw IP: the version nibble tells.
fn by_version(frame: &[u8]) -> Network<'_> {
    match frame.first().map(|b| b >> 4) {
        Some(4) => Network::V4(frame),
        Some(6) => Network::V6(frame),
        Some(_) => Network::Other,
        None => Network::Truncated,
    }
}

fn be16(b: &[u8]) -> u16 {
    match b {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: &[u8] = &[0x45, 0, 0, 20];

    #[test]
    fn ethernet_with_stacked_vlan_tags() {
        let mut f = vec![0u8; 12];
        f.extend([0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2, 0x08, 0x00]);
        f.extend(IP);
        assert_eq!(network(ETHERNET, &f), Network::V4(IP));
        // A tag cut short is a truncation, not a panic.
        assert_eq!(network(ETHERNET, &f[..16]), Network::Truncated);
        assert_eq!(network(ETHERNET, &f[..10]), Network::Truncated);
    }

    #[test]
    fn too_many_vlan_tags_is_not_ip() {
        let mut f = vec![0u8; 12];
        for _ in 0..6 {
            f.extend([0x81, 0x00, 0, 1]);
        }
        f.extend([0x08, 0x00]);
        f.extend(IP);
        assert_eq!(network(ETHERNET, &f), Network::Other);
    }

    #[test]
    fn null_family_in_either_byte_order() {
        for fam in [[2, 0, 0, 0], [0, 0, 0, 2]] {
            let f = [&fam[..], IP].concat();
            assert_eq!(network(NULL, &f), Network::V4(IP));
        }
        for fam in [[10, 0, 0, 0], [0, 0, 0, 24], [30, 0, 0, 0], [0, 0, 0, 28]] {
            let f = [&fam[..], IP].concat();
            assert_eq!(network(NULL, &f), Network::V6(IP));
        }
        assert_eq!(network(LOOP, &[0, 0, 0, 7, 0]), Network::Other);
    }

    #[test]
    fn raw_ip_by_version_nibble() {
        for lt in [RAW, RAW_BSD, RAW_OPENBSD] {
            assert_eq!(network(lt, IP), Network::V4(IP));
            assert_eq!(network(lt, &[0x60, 0]), Network::V6(&[0x60, 0]));
            assert_eq!(network(lt, &[]), Network::Truncated);
        }
    }

    #[test]
    fn cooked_headers() {
        let mut sll = vec![0u8; 14];
        sll.extend([0x86, 0xdd]);
        sll.extend(IP);
        assert_eq!(network(LINUX_SLL, &sll), Network::V6(IP));
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend([0u8; 18]);
        sll2.extend(IP);
        assert_eq!(network(LINUX_SLL2, &sll2), Network::V4(IP));
        assert_eq!(network(LINUX_SLL2, &sll2[..19]), Network::Truncated);
    }

    #[test]
    fn unknown_link_types_are_reported() {
        assert_eq!(network(127, IP), Network::UnsupportedLink);
    }
}
