//! IPv4/IPv6 + TCP headers, by the layouts and rules the kernel's parse.rs
//! reads them with (`agent_common::headers`): IPv4 options skipped, IPv6
//! extension headers walked as far as the kernel walks them, non-first
//! fragments dropped (they carry no TCP header).

use agent_common::headers::{
    IPPROTO_TCP, Ipv4Header, Ipv6Header, Ipv6Next, MAX_IPV6_EXT, TcpHeader,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One TCP segment.
#[derive(Debug)]
pub struct Segment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub flags: u8,
    pub seq: u32,
    /// Payload length from the IP header: the sequence space it occupies.
    pub payload_len: u32,
    /// The payload bytes captured: fewer than `payload_len` when the
    /// snaplen cut the packet.
    pub payload: &'a [u8],
}

/// Why a packet is not a TCP segment we track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    NotTcp,
    Fragment,
    /// Headers cut short or inconsistent.
    Malformed,
    /// A link layer replay does not decode (see `link`).
    UnsupportedLink,
}

pub fn ipv4(p: &[u8]) -> Result<Segment<'_>, Skip> {
    let h = Ipv4Header::from_bytes(head(p)?);
    if h.version() != 4 {
        return Err(Skip::Malformed);
    }
    if h.proto != IPPROTO_TCP {
        return Err(Skip::NotTcp);
    }
    if h.is_later_fragment() {
        return Err(Skip::Fragment);
    }
    let ihl = h.header_len();
    if ihl < Ipv4Header::LEN {
        return Err(Skip::Malformed);
    }
    // A total length of 0 is a TSO/GSO packet captured before segmentation:
    // the captured length is then the truth (as in the kernel).
    let total = match usize::from(h.total_len()) {
        0 => p.len(),
        t if t < ihl => return Err(Skip::Malformed),
        t => t,
    };
    let src = IpAddr::V4(Ipv4Addr::from(h.src.to_ne_bytes()));
    let dst = IpAddr::V4(Ipv4Addr::from(h.dst.to_ne_bytes()));
    let captured = p.get(ihl..total.min(p.len())).ok_or(Skip::Malformed)?;
    tcp(src, dst, captured, total - ihl)
}

pub fn ipv6(p: &[u8]) -> Result<Segment<'_>, Skip> {
    let h: &[u8; Ipv6Header::LEN] = head(p)?;
    if h[0] >> 4 != 6 {
        return Err(Skip::Malformed);
    }
    let mut addr = [0u8; 16];
    addr.copy_from_slice(&h[8..24]);
    let src = IpAddr::V6(Ipv6Addr::from(addr));
    addr.copy_from_slice(&h[24..40]);
    let dst = IpAddr::V6(Ipv6Addr::from(addr));
    // Payload length 0: a jumbogram or a GSO packet; trust the capture.
    let end = match usize::from(u16::from_be_bytes([h[4], h[5]])) {
        0 => p.len(),
        n => Ipv6Header::LEN + n,
    };
    let mut next = h[6];
    let mut off = Ipv6Header::LEN;
    for _ in 0..MAX_IPV6_EXT {
        let ext: &[u8; 4] = head(p.get(off..).ok_or(Skip::Malformed)?)?;
        match Ipv6Next::of(next, *ext) {
            Ipv6Next::Tcp => {
                let captured = p.get(off..end.min(p.len())).ok_or(Skip::Malformed)?;
                return tcp(src, dst, captured, end.saturating_sub(off));
            }
            Ipv6Next::Extension { next: n, len } => {
                next = n;
                off += len;
            }
            Ipv6Next::LaterFragment => return Err(Skip::Fragment),
            Ipv6Next::Other => return Err(Skip::NotTcp),
        }
    }
    Err(Skip::Malformed)
}

/// The first `N` bytes of `p`, or malformed.
fn head<const N: usize>(p: &[u8]) -> Result<&[u8; N], Skip> {
    p.get(..N)
        .and_then(|h| h.try_into().ok())
        .ok_or(Skip::Malformed)
}

/// `l4` are the captured bytes from the TCP header on; `l4_len` the length
/// the IP header gives them.
fn tcp(src: IpAddr, dst: IpAddr, l4: &[u8], l4_len: usize) -> Result<Segment<'_>, Skip> {
    let h = TcpHeader::from_bytes(head(l4)?);
    let doff = h.header_len() as usize;
    if doff < TcpHeader::LEN || doff > l4_len {
        return Err(Skip::Malformed);
    }
    let payload_len = u32::try_from(l4_len - doff).map_err(|_| Skip::Malformed)?;
    Ok(Segment {
        src: SocketAddr::new(src, h.sport()),
        dst: SocketAddr::new(dst, h.dport()),
        flags: h.flags,
        seq: h.seq(),
        payload_len,
        // Options cut off by the snaplen leave no payload bytes, not an error.
        payload: l4.get(doff..).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP header (doff 5) from port 40000 to 5432, seq 7, PSH|ACK.
    fn tcp_hdr() -> Vec<u8> {
        let mut t = vec![0x9c, 0x40, 0x15, 0x38, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, 0x18];
        t.extend([0u8; 6]);
        t
    }

    fn v4(options: &[u8], frag: u16, payload: &[u8]) -> Vec<u8> {
        let ihl = 20 + options.len();
        let total = (ihl + 20 + payload.len()) as u16;
        let mut p = vec![0x40 | (ihl / 4) as u8, 0];
        p.extend(total.to_be_bytes());
        p.extend([0, 0]);
        p.extend(frag.to_be_bytes());
        p.extend([64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend(options);
        p.extend(tcp_hdr());
        p.extend(payload);
        p
    }

    fn v6(exts: &[(u8, Vec<u8>)], payload: &[u8]) -> Vec<u8> {
        let first = exts.first().map_or(IPPROTO_TCP, |e| e.0);
        let mut body = Vec::new();
        for (i, (_, e)) in exts.iter().enumerate() {
            let mut e = e.clone();
            e[0] = exts.get(i + 1).map_or(IPPROTO_TCP, |n| n.0);
            body.extend(e);
        }
        body.extend(tcp_hdr());
        body.extend(payload);
        let mut p = vec![0x60, 0, 0, 0];
        p.extend((body.len() as u16).to_be_bytes());
        p.extend([first, 64]);
        p.extend(Ipv6Addr::LOCALHOST.octets());
        p.extend(Ipv6Addr::LOCALHOST.octets());
        p.extend(body);
        p
    }

    #[test]
    fn ipv4_with_options_and_ethernet_padding() {
        let mut p = v4(&[1, 1, 1, 0], 0, b"hello");
        p.extend([0u8; 6]); // Ethernet minimum-frame padding
        let s = ipv4(&p).expect("segment");
        assert_eq!(s.src.to_string(), "10.0.0.1:40000");
        assert_eq!(s.dst.to_string(), "10.0.0.2:5432");
        assert_eq!((s.seq, s.flags, s.payload_len), (7, 0x18, 5));
        assert_eq!(s.payload, b"hello");
    }

    #[test]
    fn ipv4_fragments() {
        // First fragment (MF set, offset 0) has the TCP header; later ones do not.
        assert!(ipv4(&v4(&[], 0x2000, b"x")).is_ok());
        assert_eq!(ipv4(&v4(&[], 0x0010, b"x")).err(), Some(Skip::Fragment));
    }

    #[test]
    fn snaplen_cut_payload_keeps_its_sequence_length() {
        let p = v4(&[], 0, &[b'a'; 100]);
        let s = ipv4(&p[..50]).expect("segment");
        assert_eq!(s.payload_len, 100);
        assert_eq!(s.payload.len(), 10);
    }

    #[test]
    fn ipv6_extension_headers() {
        let hbh = (0u8, vec![0, 0, 1, 4, 0, 0, 0, 0]);
        let routing = (43u8, vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let first_frag = (44u8, vec![0, 0, 0, 1, 0, 0, 0, 9]);
        let dest = (60u8, vec![0, 0, 1, 4, 0, 0, 0, 0]);
        let ah = (51u8, vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let p = v6(&[hbh, routing, first_frag, dest, ah], b"GET /");
        let s = ipv6(&p).expect("segment");
        assert_eq!(s.src.to_string(), "[::1]:40000");
        assert_eq!((s.payload_len, s.payload), (5, &b"GET /"[..]));

        let later_frag = (44u8, vec![0, 0, 0, 0x11, 0, 0, 0, 9]);
        assert_eq!(ipv6(&v6(&[later_frag], b"x")).err(), Some(Skip::Fragment));
        let no_next = (59u8, vec![0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(ipv6(&v6(&[no_next], b"")).err(), Some(Skip::NotTcp));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let hbh = (0u8, vec![0, 0, 1, 4, 0, 0, 0, 0]);
        let p6 = v6(&[hbh], b"abc");
        let p4 = v4(&[1, 1, 1, 0], 0, b"abc");
        for n in 0..p6.len() {
            let _ = ipv6(&p6[..n]);
        }
        for n in 0..p4.len() {
            let _ = ipv4(&p4[..n]);
        }
        // Headers cut inside the TCP header are malformed.
        assert_eq!(ipv4(&p4[..30]).err(), Some(Skip::Malformed));
    }
}
