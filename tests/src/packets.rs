//! Crafted packets for BPF_PROG_TEST_RUN: Ethernet + IPv4/IPv6 (+ options,
//! extension headers, fragments) + TCP, with exact control over every field
//! so malformed and edge cases can be built on purpose.

pub use agent_common::headers::{
    TCP_ACK as ACK, TCP_FIN as FIN, TCP_PSH as PSH, TCP_RST as RST, TCP_SYN as SYN,
};

/// One TCP segment between two endpoints.
#[derive(Clone, Debug)]
pub struct Segment {
    pub src: std::net::IpAddr,
    pub dst: std::net::IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub flags: u8,
    pub payload: Vec<u8>,
    /// TCP data offset in 32-bit words (5 = no options). Values < 5 are
    /// malformed on purpose.
    pub doff: u8,
    /// IPv4 options (padded to 4 bytes by the caller).
    pub ip_options: Vec<u8>,
    /// IPv6 extension headers as (next-header value of this header, bytes).
    pub ext_headers: Vec<(u8, Vec<u8>)>,
    /// IPv4 fragment offset in 8-byte units (non-zero = non-first fragment).
    pub frag_offset: u16,
}

impl Segment {
    pub fn new(
        src: &str,
        sport: u16,
        dst: &str,
        dport: u16,
        seq: u32,
        flags: u8,
        payload: &[u8],
    ) -> Self {
        Self {
            src: src.parse().expect("address literal"),
            dst: dst.parse().expect("address literal"),
            sport,
            dport,
            seq,
            flags,
            payload: payload.to_vec(),
            doff: 5,
            ip_options: Vec::new(),
            ext_headers: Vec::new(),
            frag_offset: 0,
        }
    }

    fn tcp(&self) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend(self.sport.to_be_bytes());
        t.extend(self.dport.to_be_bytes());
        t.extend(self.seq.to_be_bytes());
        t.extend(0u32.to_be_bytes()); // ack
        t.push(self.doff << 4);
        t.push(self.flags);
        t.extend(65535u16.to_be_bytes()); // window
        t.extend([0, 0, 0, 0]); // checksum (not checked by the programs), urgent
        // TCP options to reach the data offset (when > 5).
        let opt_len = usize::from(self.doff.max(5) - 5) * 4;
        t.extend(std::iter::repeat_n(1u8, opt_len)); // NOPs
        t.extend(&self.payload);
        t
    }

    /// Ethernet frame: what BPF_PROG_TEST_RUN takes for both hook types
    /// (for cgroup_skb the kernel strips the link header before the run).
    pub fn frame(&self) -> Vec<u8> {
        let tcp = self.tcp();
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        match (self.src, self.dst) {
            (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
                f.extend(0x0800u16.to_be_bytes());
                let ihl = 20 + self.ip_options.len();
                let total = u16::try_from(ihl + tcp.len()).expect("fits");
                f.push(0x40 | u8::try_from(ihl / 4).expect("ihl fits"));
                f.push(0);
                f.extend(total.to_be_bytes());
                f.extend([0, 1]); // id
                f.extend(self.frag_offset.to_be_bytes());
                f.push(64);
                f.push(6);
                f.extend([0, 0]); // checksum
                f.extend(s.octets());
                f.extend(d.octets());
                f.extend(&self.ip_options);
            }
            (std::net::IpAddr::V6(s), std::net::IpAddr::V6(d)) => {
                f.extend(0x86ddu16.to_be_bytes());
                let ext: usize = self.ext_headers.iter().map(|(_, b)| b.len()).sum();
                let plen = u16::try_from(ext + tcp.len()).expect("fits");
                f.extend([0x60, 0, 0, 0]);
                f.extend(plen.to_be_bytes());
                f.push(self.ext_headers.first().map_or(6, |(nh, _)| *nh));
                f.push(64);
                f.extend(s.octets());
                f.extend(d.octets());
                for (i, (_, bytes)) in self.ext_headers.iter().enumerate() {
                    let mut b = bytes.clone();
                    // Each header's first byte names the next one.
                    b[0] = self.ext_headers.get(i + 1).map_or(6, |(nh, _)| *nh);
                    f.extend(b);
                }
            }
            _ => panic!("mixed address families"),
        }
        f.extend(tcp);
        f
    }
}

/// A generic IPv6 extension header of `len8` 8-byte units (hop-by-hop,
/// routing, destination options share this format).
pub fn ext_header(len8: u8) -> Vec<u8> {
    let mut b = vec![0u8; usize::from(len8) * 8];
    b[1] = len8 - 1;
    // PadN option filling the rest, so it is well-formed.
    b[2] = 1;
    b[3] = u8::try_from(b.len() - 4).expect("fits");
    b
}

/// An IPv6 fragment header; `offset` in 8-byte units.
pub fn fragment_header(offset: u16, more: bool) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    let v = (offset << 3) | u16::from(more);
    b[2..4].copy_from_slice(&v.to_be_bytes());
    b
}
