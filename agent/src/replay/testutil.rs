//! Test helpers: the committed loopback captures (agent/tests/data, made by
//! capture.sh), and writers that re-encode their packets in every format
//! and link layer the readers claim to handle.

use super::{FlowRecord, capture::Capture};

/// A packet read back from a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owned {
    pub ts_ns: i64,
    pub link_type: u16,
    pub data: Vec<u8>,
}

pub fn data_file(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn frames(bytes: &[u8]) -> Vec<Owned> {
    let mut cap = Capture::open(bytes).expect("a capture");
    let mut out = Vec::new();
    while let Some(f) = cap.next_frame().expect("a whole capture") {
        out.push(Owned {
            ts_ns: f.ts_ns,
            link_type: f.link_type,
            data: f.data.to_vec(),
        });
    }
    out
}

pub fn replay(bytes: &[u8]) -> Vec<FlowRecord> {
    let mut flows = Vec::new();
    super::replay_reader(bytes, &mut |r| flows.push(r)).expect("replay");
    flows
}

#[derive(Clone, Copy)]
pub enum Order {
    Little,
    Big,
}

fn put16(out: &mut Vec<u8>, o: Order, v: u16) {
    out.extend(match o {
        Order::Little => v.to_le_bytes(),
        Order::Big => v.to_be_bytes(),
    });
}

fn put32(out: &mut Vec<u8>, o: Order, v: u32) {
    out.extend(match o {
        Order::Little => v.to_le_bytes(),
        Order::Big => v.to_be_bytes(),
    });
}

/// Classic pcap; every frame must have `link_type`.
pub fn pcap(frames: &[Owned], link_type: u16, o: Order, nanos: bool) -> Vec<u8> {
    let mut out = Vec::new();
    put32(&mut out, o, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    put16(&mut out, o, 2);
    put16(&mut out, o, 4);
    put32(&mut out, o, 0);
    put32(&mut out, o, 0);
    put32(&mut out, o, 65535);
    put32(&mut out, o, u32::from(link_type));
    for f in frames {
        let secs = f.ts_ns / 1_000_000_000;
        let frac = f.ts_ns % 1_000_000_000;
        put32(&mut out, o, secs as u32);
        put32(&mut out, o, if nanos { frac } else { frac / 1000 } as u32);
        put32(&mut out, o, f.data.len() as u32);
        put32(&mut out, o, f.data.len() as u32);
        out.extend(&f.data);
    }
    out
}

/// Which pcapng block carries the packets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Packets {
    Enhanced,
    Simple,
    Obsolete,
}

fn block(out: &mut Vec<u8>, o: Order, kind: u32, body: &[u8]) {
    let len = (12 + body.len().next_multiple_of(4)) as u32;
    put32(out, o, kind);
    put32(out, o, len);
    out.extend(body);
    out.resize(out.len() + body.len().next_multiple_of(4) - body.len(), 0);
    put32(out, o, len);
}

/// One pcapng section: a header, then one interface per distinct link type
/// (timestamps in nanoseconds via `if_tsresol`), then the packets.
pub fn pcapng_section(frames: &[Owned], o: Order, packets: Packets) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = Vec::new();
    put32(&mut shb, o, 0x1a2b_3c4d);
    put16(&mut shb, o, 1);
    put16(&mut shb, o, 0);
    shb.extend((-1i64).to_le_bytes());
    block(&mut out, o, 0x0a0d_0d0a, &shb);
    let mut links: Vec<u16> = Vec::new();
    for f in frames {
        if !links.contains(&f.link_type) {
            links.push(f.link_type);
        }
    }
    for &lt in &links {
        let mut idb = Vec::new();
        put16(&mut idb, o, lt);
        put16(&mut idb, o, 0);
        put32(&mut idb, o, 0);
        // if_tsresol = 9 (nanoseconds), then opt_endofopt.
        put16(&mut idb, o, 9);
        put16(&mut idb, o, 1);
        idb.extend([9, 0, 0, 0]);
        put32(&mut idb, o, 0);
        block(&mut out, o, 1, &idb);
    }
    for f in frames {
        let iface = links.iter().position(|&l| l == f.link_type).unwrap_or(0);
        let ts = f.ts_ns as u64;
        let mut b = Vec::new();
        let kind = match packets {
            Packets::Simple => {
                put32(&mut b, o, f.data.len() as u32);
                b.extend(&f.data);
                3
            }
            Packets::Enhanced | Packets::Obsolete => {
                if packets == Packets::Enhanced {
                    put32(&mut b, o, iface as u32);
                } else {
                    put16(&mut b, o, iface as u16);
                    put16(&mut b, o, 0);
                }
                put32(&mut b, o, (ts >> 32) as u32);
                put32(&mut b, o, ts as u32);
                put32(&mut b, o, f.data.len() as u32);
                put32(&mut b, o, f.data.len() as u32);
                b.extend(&f.data);
                if packets == Packets::Enhanced { 6 } else { 2 }
            }
        };
        block(&mut out, o, kind, &b);
    }
    out
}

/// The IP packet inside an Ethernet frame (as tcpdump -i lo writes them).
pub fn ip_of_ethernet(f: &Owned) -> &[u8] {
    assert_eq!(f.link_type, 1, "an Ethernet frame");
    &f.data[14..]
}

/// Re-wraps every Ethernet frame's IP packet with another link header.
pub fn relink(frames: &[Owned], link_type: u16, header: impl Fn(&[u8]) -> Vec<u8>) -> Vec<Owned> {
    frames
        .iter()
        .map(|f| {
            let ip = ip_of_ethernet(f);
            let mut data = header(ip);
            data.extend(ip);
            Owned {
                ts_ns: f.ts_ns,
                link_type,
                data,
            }
        })
        .collect()
}
