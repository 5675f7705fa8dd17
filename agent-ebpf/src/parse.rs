//! IPv4/IPv6 + TCP header parsing over the header layouts and rules in
//! `agent_common::headers` (replay reads captures by the same ones). The
//! fixed headers are read by direct packet access (free, see
//! docs/architecture.md "Costs"); the rare variable parts (IPv6 extension
//! headers) go through the load helper.

use agent_common::headers::{
    IPPROTO_TCP, Ipv4Header, Ipv6Header, Ipv6Next, MAX_IPV6_EXT, TcpHeader,
};
use agent_common::wire::{FAMILY_V4, FAMILY_V6, Hook, Stat};
use aya_ebpf::{bindings::__sk_buff, programs::sk_buff::SkBuff};
use core::mem::size_of;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// The parts of a TCP segment the flow tracker needs.
pub struct Packet {
    /// Network-order address words (see `FlowKey`).
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub sport: u16,
    pub dport: u16,
    pub family: u8,
    pub flags: u8,
    pub seq: u32,
    /// Offset of the TCP payload from the start of the skb data.
    pub payload_off: u32,
    pub payload_len: u32,
}

/// Bounds-checked pointer into the linear packet data; the comparison is
/// what the verifier needs to allow the read.
#[inline(always)]
fn ptr_at<T>(data: usize, end: usize, off: usize) -> Result<*const T, Stat> {
    if data + off + size_of::<T>() > end {
        return Err(Stat::ParseTruncated);
    }
    Ok((data + off) as *const T)
}

#[inline(always)]
pub fn parse(skb: *mut __sk_buff, hook: Hook) -> Result<Packet, Stat> {
    // SAFETY: the kernel hands us a valid __sk_buff for the program's run.
    let (data, end, len) = unsafe { ((*skb).data as usize, (*skb).data_end as usize, (*skb).len) };
    let (l3, ethertype) = match hook {
        // cgroup_skb data starts at the network header.
        Hook::Cgroup => {
            // SAFETY: as above.
            let proto = u16::from_be(unsafe { (*skb).protocol } as u16);
            (0usize, proto)
        }
        Hook::Tc => {
            let eth = ptr_at::<[u8; 14]>(data, end, 0)?;
            // SAFETY: bounds checked by ptr_at.
            let eth = unsafe { &*eth };
            let t = u16::from_be_bytes([eth[12], eth[13]]);
            if t == ETH_P_8021Q || t == ETH_P_8021AD {
                let tag = ptr_at::<[u8; 4]>(data, end, 14)?;
                // SAFETY: bounds checked by ptr_at.
                let tag = unsafe { &*tag };
                (18, u16::from_be_bytes([tag[2], tag[3]]))
            } else {
                (14, t)
            }
        }
    };
    match ethertype {
        ETH_P_IP => parse_v4(data, end, len, l3),
        ETH_P_IPV6 => parse_v6(skb, data, end, len, l3),
        _ => Err(Stat::NotTcp),
    }
}

#[inline(always)]
fn parse_v4(data: usize, end: usize, skb_len: u32, l3: usize) -> Result<Packet, Stat> {
    let ip = ptr_at::<Ipv4Header>(data, end, l3)?;
    // SAFETY: bounds checked by ptr_at.
    let ip = unsafe { &*ip };
    if ip.version() != 4 {
        return Err(Stat::ParseTruncated);
    }
    if ip.proto != IPPROTO_TCP {
        return Err(Stat::NotTcp);
    }
    if ip.is_later_fragment() {
        return Err(Stat::ParseFragment);
    }
    let ihl = ip.header_len();
    if ihl < Ipv4Header::LEN {
        return Err(Stat::ParseTruncated);
    }
    let src = [ip.src, 0, 0, 0];
    let dst = [ip.dst, 0, 0, 0];
    let tot = u32::from(ip.total_len());
    let l4 = l3 + ihl;
    let tcp = ptr_at::<TcpHeader>(data, end, l4)?;
    // SAFETY: bounds checked by ptr_at.
    let tcp = unsafe { *tcp };
    // GSO packets may carry tot_len 0 (BIG TCP); the skb length is then the
    // truth. Ethernet padding makes skb_len larger than tot_len otherwise.
    let ip_end = if tot == 0 { skb_len } else { l3 as u32 + tot };
    finish(tcp, src, dst, FAMILY_V4, l4 as u32, ip_end, skb_len)
}

#[inline(always)]
fn parse_v6(
    skb: *mut __sk_buff,
    data: usize,
    end: usize,
    skb_len: u32,
    l3: usize,
) -> Result<Packet, Stat> {
    let ip = ptr_at::<Ipv6Header>(data, end, l3)?;
    // SAFETY: bounds checked by ptr_at.
    let ip = unsafe { &*ip };
    let src = ip.src;
    let dst = ip.dst;
    let plen = u16::from_be_bytes(ip.payload_len) as u32;
    let ip_end = if plen == 0 {
        skb_len
    } else {
        (l3 + Ipv6Header::LEN) as u32 + plen
    };
    let mut next = ip.next;
    let mut l4 = l3 + Ipv6Header::LEN;
    if next == IPPROTO_TCP {
        let tcp = ptr_at::<TcpHeader>(data, end, l4)?;
        // SAFETY: bounds checked by ptr_at.
        let tcp = unsafe { *tcp };
        return finish(tcp, src, dst, FAMILY_V6, l4 as u32, ip_end, skb_len);
    }
    // Extension headers: rare, so the helper's cost is fine here.
    let sk = SkBuff::new(skb);
    let mut i = 0;
    while i < MAX_IPV6_EXT {
        if next == IPPROTO_TCP {
            let tcp: TcpHeader = sk.load(l4).map_err(|_| Stat::ParseTruncated)?;
            return finish(tcp, src, dst, FAMILY_V6, l4 as u32, ip_end, skb_len);
        }
        let ext: [u8; 4] = sk.load(l4).map_err(|_| Stat::ParseTruncated)?;
        match Ipv6Next::of(next, ext) {
            Ipv6Next::Extension { next: n, len } => {
                next = n;
                l4 += len;
            }
            Ipv6Next::LaterFragment => return Err(Stat::ParseFragment),
            Ipv6Next::Tcp | Ipv6Next::Other => return Err(Stat::NotTcp),
        }
        i += 1;
    }
    Err(Stat::ParseIpv6ExtLimit)
}

#[inline(always)]
fn finish(
    tcp: TcpHeader,
    src: [u32; 4],
    dst: [u32; 4],
    family: u8,
    l4: u32,
    ip_end: u32,
    skb_len: u32,
) -> Result<Packet, Stat> {
    let doff = tcp.header_len();
    if doff < TcpHeader::LEN as u32 {
        return Err(Stat::ParseBadTcpOffset);
    }
    let payload_off = l4 + doff;
    let end = if ip_end < skb_len { ip_end } else { skb_len };
    let payload_len = end.saturating_sub(payload_off);
    Ok(Packet {
        src,
        dst,
        sport: tcp.sport(),
        dport: tcp.dport(),
        family,
        flags: tcp.flags,
        seq: tcp.seq(),
        payload_off,
        payload_len,
    })
}
