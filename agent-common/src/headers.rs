//! IPv4, IPv6 and TCP header facts, defined once for the kernel's parser
//! (agent-ebpf/src/parse.rs, direct packet access) and replay's
//! (agent/src/replay/packet.rs, captured bytes): the layouts, the flag
//! bits, and the rules that decide what is a TCP segment we track.

/// TCP header flag bits (the 14th header byte).
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

pub const IPPROTO_TCP: u8 = 6;

/// IPv6 extension headers walked before giving up: in RFC 8200 order at
/// most six precede the upper layer in practice. Replay walks no further
/// than the kernel, so a packet the kernel skips is skipped in replay too.
pub const MAX_IPV6_EXT: usize = 6;

/// The fixed IPv4 header; addresses stay network-order words (`FlowKey`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Header {
    pub ver_ihl: u8,
    pub tos: u8,
    pub tot_len: [u8; 2],
    pub id: [u8; 2],
    pub frag: [u8; 2],
    pub ttl: u8,
    pub proto: u8,
    pub csum: [u8; 2],
    pub src: u32,
    pub dst: u32,
}
const _: () = assert!(core::mem::size_of::<Ipv4Header>() == 20);

impl Ipv4Header {
    pub const LEN: usize = core::mem::size_of::<Self>();

    /// The header of a captured packet's first `LEN` bytes.
    #[must_use]
    pub const fn from_bytes(b: &[u8; Self::LEN]) -> Self {
        Self {
            ver_ihl: b[0],
            tos: b[1],
            tot_len: [b[2], b[3]],
            id: [b[4], b[5]],
            frag: [b[6], b[7]],
            ttl: b[8],
            proto: b[9],
            csum: [b[10], b[11]],
            src: u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
            dst: u32::from_ne_bytes([b[16], b[17], b[18], b[19]]),
        }
    }

    #[must_use]
    #[inline(always)]
    pub const fn version(&self) -> u8 {
        self.ver_ihl >> 4
    }

    /// Header length with options; below `LEN` the header is corrupt.
    #[must_use]
    #[inline(always)]
    pub const fn header_len(&self) -> usize {
        (self.ver_ihl & 0x0f) as usize * 4
    }

    /// Total length; 0 for a GSO packet (BIG TCP) captured before
    /// segmentation, whose true length is the packet's.
    #[must_use]
    #[inline(always)]
    pub const fn total_len(&self) -> u16 {
        u16::from_be_bytes(self.tot_len)
    }

    /// A non-first fragment: it carries no TCP header.
    #[must_use]
    #[inline(always)]
    pub const fn is_later_fragment(&self) -> bool {
        u16::from_be_bytes(self.frag) & 0x1fff != 0
    }
}

/// The fixed IPv6 header.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Header {
    pub vtc_flow: [u8; 4],
    pub payload_len: [u8; 2],
    pub next: u8,
    pub hop: u8,
    pub src: [u32; 4],
    pub dst: [u32; 4],
}
const _: () = assert!(core::mem::size_of::<Ipv6Header>() == 40);

impl Ipv6Header {
    pub const LEN: usize = core::mem::size_of::<Self>();
}

/// What an IPv6 next-header value and the first four bytes at its offset
/// say comes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv6Next {
    Tcp,
    /// An extension header of `len` bytes, followed by `next`.
    Extension {
        next: u8,
        len: usize,
    },
    /// A non-first fragment: no TCP header.
    LaterFragment,
    /// Another upper layer, or an extension header we do not walk.
    Other,
}

impl Ipv6Next {
    /// `ext` are the first four bytes at the header `next` names (only
    /// read for extension headers, all of which are at least 8 bytes).
    #[must_use]
    #[inline(always)]
    pub const fn of(next: u8, ext: [u8; 4]) -> Self {
        match next {
            IPPROTO_TCP => Self::Tcp,
            // hop-by-hop, routing, destination options: (len + 1) * 8 bytes
            0 | 43 | 60 => Self::Extension {
                next: ext[0],
                len: (ext[1] as usize + 1) * 8,
            },
            // fragment: 8 bytes; only the first fragment has the TCP header
            44 => {
                if u16::from_be_bytes([ext[2], ext[3]]) & 0xfff8 != 0 {
                    Self::LaterFragment
                } else {
                    Self::Extension {
                        next: ext[0],
                        len: 8,
                    }
                }
            }
            // authentication header: (len + 2) * 4 bytes
            51 => Self::Extension {
                next: ext[0],
                len: (ext[1] as usize + 2) * 4,
            },
            _ => Self::Other,
        }
    }
}

/// The fixed TCP header.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpHeader {
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub seq: [u8; 4],
    pub ack: [u8; 4],
    pub doff: u8,
    pub flags: u8,
    pub win: [u8; 2],
    pub csum: [u8; 2],
    pub urg: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<TcpHeader>() == 20);

impl TcpHeader {
    pub const LEN: usize = core::mem::size_of::<Self>();

    /// The header of a captured segment's first `LEN` bytes.
    #[must_use]
    pub const fn from_bytes(b: &[u8; Self::LEN]) -> Self {
        Self {
            sport: [b[0], b[1]],
            dport: [b[2], b[3]],
            seq: [b[4], b[5], b[6], b[7]],
            ack: [b[8], b[9], b[10], b[11]],
            doff: b[12],
            flags: b[13],
            win: [b[14], b[15]],
            csum: [b[16], b[17]],
            urg: [b[18], b[19]],
        }
    }

    #[must_use]
    #[inline(always)]
    pub const fn sport(&self) -> u16 {
        u16::from_be_bytes(self.sport)
    }

    #[must_use]
    #[inline(always)]
    pub const fn dport(&self) -> u16 {
        u16::from_be_bytes(self.dport)
    }

    #[must_use]
    #[inline(always)]
    pub const fn seq(&self) -> u32 {
        u32::from_be_bytes(self.seq)
    }

    /// Header length with options (the data offset); below `LEN` the
    /// header is corrupt.
    #[must_use]
    #[inline(always)]
    pub const fn header_len(&self) -> u32 {
        (self.doff >> 4) as u32 * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_header_fields_are_big_endian() {
        let mut b = [0u8; 20];
        b[..4].copy_from_slice(&[0x9c, 0x40, 0x15, 0x38]);
        b[4..8].copy_from_slice(&7u32.to_be_bytes());
        b[12] = 0x80;
        b[13] = TCP_PSH | TCP_ACK;
        let h = TcpHeader::from_bytes(&b);
        assert_eq!((h.sport(), h.dport(), h.seq()), (40000, 5432, 7));
        assert_eq!((h.header_len(), h.flags), (32, 0x18));
    }

    #[test]
    fn ipv4_fragment_and_lengths() {
        let mut b = [0u8; 20];
        b[0] = 0x46;
        b[2..4].copy_from_slice(&60u16.to_be_bytes());
        let first = Ipv4Header::from_bytes(&b);
        assert_eq!((first.version(), first.header_len()), (4, 24));
        assert_eq!(first.total_len(), 60);
        assert!(!first.is_later_fragment());
        // More-fragments set at offset 0: the first fragment, with the TCP header.
        b[6] = 0x20;
        assert!(!Ipv4Header::from_bytes(&b).is_later_fragment());
        b[7] = 0x10;
        assert!(Ipv4Header::from_bytes(&b).is_later_fragment());
    }

    #[test]
    fn ipv6_extension_header_lengths() {
        let ext = |next, len| Ipv6Next::Extension { next, len };
        assert_eq!(Ipv6Next::of(IPPROTO_TCP, [0; 4]), Ipv6Next::Tcp);
        assert_eq!(Ipv6Next::of(0, [43, 1, 0, 0]), ext(43, 16));
        assert_eq!(Ipv6Next::of(51, [6, 1, 0, 0]), ext(6, 12));
        assert_eq!(Ipv6Next::of(44, [6, 0, 0, 1]), ext(6, 8), "first fragment");
        assert_eq!(Ipv6Next::of(44, [6, 0, 0, 0x11]), Ipv6Next::LaterFragment);
        assert_eq!(Ipv6Next::of(59, [0; 4]), Ipv6Next::Other, "no next header");
    }
}
