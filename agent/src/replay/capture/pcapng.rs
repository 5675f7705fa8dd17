//! pcapng: a sequence of blocks (type, total length, body, total length
//! again). Each Section Header Block sets the byte order for its section and
//! forgets the interfaces of the previous one; each Interface Description
//! Block gives one interface's link type and timestamp resolution. Packets
//! come in Enhanced, Simple and (obsolete) Packet Blocks; every other block
//! is skipped.

use super::{CaptureError, Endian, Frame, MAX_RECORD, Source};
use std::io::Read;

pub const SHB_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
/// Largest block accepted: a maximal packet plus generous room for options.
const MAX_BLOCK: u32 = MAX_RECORD + (1 << 20);

struct Interface {
    link_type: u16,
    snaplen: u32,
    /// Timestamp units, from `if_tsresol` (default microseconds).
    resolution: Resolution,
    /// `if_tsoffset`: seconds added to every timestamp.
    offset_s: i64,
}

#[derive(Clone, Copy)]
enum Resolution {
    /// Units of 10^-n seconds.
    Decimal(u8),
    /// Units of 2^-n seconds.
    Binary(u8),
}

impl Interface {
    fn ts_ns(&self, ticks: u64) -> i64 {
        let ticks = u128::from(ticks);
        let ns = match self.resolution {
            Resolution::Decimal(n) if n <= 9 => ticks * 10u128.pow(u32::from(9 - n)),
            Resolution::Decimal(n) => ticks / 10u128.pow(u32::from(n.min(38) - 9)),
            Resolution::Binary(n) => (ticks * 1_000_000_000) >> n.min(127),
        };
        i64::try_from(ns)
            .unwrap_or(i64::MAX)
            .saturating_add(self.offset_s.saturating_mul(1_000_000_000))
    }
}

pub struct Reader<R> {
    src: Source<R>,
    endian: Endian,
    /// False until the first Section Header Block has been read.
    in_section: bool,
    interfaces: Vec<Interface>,
    /// Simple Packet Blocks carry no timestamp: they get the last one seen.
    last_ts_ns: i64,
    buf: Vec<u8>,
}

/// Where a packet's bytes sit in the block body.
struct Packet {
    iface: usize,
    ts_ns: Option<i64>,
    data_at: usize,
    len: usize,
}

impl<R: Read> Reader<R> {
    /// `src` has consumed the first Section Header Block's type field.
    pub(super) fn new(src: Source<R>) -> Self {
        Self {
            src,
            endian: Endian::Little,
            in_section: false,
            interfaces: Vec::new(),
            last_ts_ns: 0,
            buf: Vec::new(),
        }
    }

    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        loop {
            let Some((start, block_type)) = self.read_block()? else {
                return Ok(None);
            };
            let packet = match block_type {
                SHB => {
                    self.section_header(start)?;
                    None
                }
                IDB => {
                    self.interface(start)?;
                    None
                }
                EPB => Some(self.enhanced_packet(start)?),
                SPB => Some(self.simple_packet(start)?),
                PB => Some(self.obsolete_packet(start)?),
                _ => None,
            };
            if let Some(p) = packet {
                let iface = self.interfaces.get(p.iface).ok_or(CaptureError::Corrupt {
                    offset: start,
                    what: "packet block",
                    problem: format!(
                        "it names interface {}, but the section describes {}",
                        p.iface,
                        self.interfaces.len()
                    ),
                })?;
                let ts_ns = p.ts_ns.unwrap_or(self.last_ts_ns);
                self.last_ts_ns = ts_ns;
                let data = self
                    .buf
                    .get(p.data_at..p.data_at + p.len)
                    .unwrap_or_default();
                return Ok(Some(Frame {
                    ts_ns,
                    link_type: iface.link_type,
                    data,
                    offset: start,
                }));
            }
        }
    }

    /// Reads one whole block into `buf` (the body, without the type, length
    /// and trailing length). Returns its offset and type; `None` at the end.
    fn read_block(&mut self) -> Result<Option<(u64, u32)>, CaptureError> {
        let start;
        let mut head = [0u8; 12];
        if self.in_section {
            start = self.src.offset();
            match self.src.fill(&mut head[..8])? {
                0 => return Ok(None),
                n if n < 8 => {
                    return Err(truncated(start, 12, n as u64));
                }
                _ => {}
            }
        } else {
            // The file's first block: `open` has read its type already.
            start = 0;
            head[..4].copy_from_slice(&SHB_MAGIC);
            self.src.exact(&mut head[4..8], start, "pcapng block", 12)?;
        }
        let mut block_type = self.endian.u32(&head, 0);
        if head[..4] == SHB_MAGIC {
            // The byte order of a section, and so of this very block's
            // length, is given by the magic that follows the length.
            block_type = SHB;
            self.src
                .exact(&mut head[8..12], start, "section header block", 28)?;
            self.endian = match self.endian.u32(&head, 8) {
                BYTE_ORDER_MAGIC => self.endian,
                m if m.swap_bytes() == BYTE_ORDER_MAGIC => match self.endian {
                    Endian::Little => Endian::Big,
                    Endian::Big => Endian::Little,
                },
                m => {
                    return Err(CaptureError::Corrupt {
                        offset: start,
                        what: "section header block",
                        problem: format!("byte-order magic {m:#010x} is not 0x1a2b3c4d"),
                    });
                }
            };
            self.in_section = true;
        }
        let len = self.endian.u32(&head, 4);
        let min = if block_type == SHB { 28 } else { 12 };
        if len < min || !len.is_multiple_of(4) || len > MAX_BLOCK {
            return Err(CaptureError::Corrupt {
                offset: start,
                what: "pcapng block",
                problem: format!(
                    "block length {len} is not a multiple of 4 between {min} and {MAX_BLOCK}"
                ),
            });
        }
        let already = if block_type == SHB { 12 } else { 8 };
        // Body (after what was read) plus the trailing length.
        self.src.exact_vec(
            &mut self.buf,
            len as usize - already,
            start,
            "pcapng block",
            u64::from(len),
        )?;
        let tail = self.buf.len() - 4;
        let trailer = self.endian.u32(&self.buf, tail);
        if trailer != len {
            return Err(CaptureError::Corrupt {
                offset: start,
                what: "pcapng block",
                problem: format!("length {len} at its start but {trailer} at its end"),
            });
        }
        self.buf.truncate(tail);
        if block_type == SHB {
            // Keep body offsets uniform: put the byte-order magic back.
            self.buf.splice(0..0, head[8..12].iter().copied());
        }
        Ok(Some((start, block_type)))
    }

    fn section_header(&mut self, start: u64) -> Result<(), CaptureError> {
        let major = self.endian.u16(&self.buf, 4);
        if major != 1 {
            return Err(CaptureError::Unsupported {
                offset: start,
                what: format!("pcapng version {major}.x (only 1.x exists)"),
            });
        }
        self.interfaces.clear();
        Ok(())
    }

    fn interface(&mut self, start: u64) -> Result<(), CaptureError> {
        if self.buf.len() < 8 {
            return Err(short_body(start, "interface description block", 8));
        }
        let e = self.endian;
        let mut iface = Interface {
            link_type: e.u16(&self.buf, 0),
            snaplen: e.u32(&self.buf, 4),
            resolution: Resolution::Decimal(6),
            offset_s: 0,
        };
        for (code, value) in options(e, self.buf.get(8..).unwrap_or_default()) {
            match (code, value) {
                (9, [r, ..]) if r & 0x80 == 0 => iface.resolution = Resolution::Decimal(*r),
                (9, [r, ..]) => iface.resolution = Resolution::Binary(r & 0x7f),
                (14, v) if v.len() >= 8 => iface.offset_s = e.i64(v, 0),
                _ => {}
            }
        }
        self.interfaces.push(iface);
        Ok(())
    }

    fn enhanced_packet(&self, start: u64) -> Result<Packet, CaptureError> {
        self.timestamped_packet(start, "enhanced packet block", false)
    }

    fn obsolete_packet(&self, start: u64) -> Result<Packet, CaptureError> {
        self.timestamped_packet(start, "packet block", true)
    }

    /// Enhanced and obsolete Packet Blocks differ only in the width of the
    /// interface id (the obsolete one has a drop counter beside it).
    fn timestamped_packet(
        &self,
        start: u64,
        what: &'static str,
        short_iface: bool,
    ) -> Result<Packet, CaptureError> {
        const HEAD: usize = 20;
        if self.buf.len() < HEAD {
            return Err(short_body(start, what, HEAD));
        }
        let e = self.endian;
        let iface = if short_iface {
            usize::from(e.u16(&self.buf, 0))
        } else {
            e.u32(&self.buf, 0) as usize
        };
        let ticks = (u64::from(e.u32(&self.buf, 4)) << 32) | u64::from(e.u32(&self.buf, 8));
        let cap = e.u32(&self.buf, 12) as usize;
        if cap > self.buf.len() - HEAD {
            return Err(CaptureError::Corrupt {
                offset: start,
                what,
                problem: format!(
                    "captured length {cap} exceeds the {} bytes the block holds",
                    self.buf.len() - HEAD
                ),
            });
        }
        let ts_ns = self.interfaces.get(iface).map(|i| i.ts_ns(ticks));
        Ok(Packet {
            iface,
            ts_ns,
            data_at: HEAD,
            len: cap,
        })
    }

    fn simple_packet(&self, start: u64) -> Result<Packet, CaptureError> {
        if self.buf.len() < 4 {
            return Err(short_body(start, "simple packet block", 4));
        }
        // The captured length is implied: the original length, cut by the
        // first interface's snaplen and by what the block holds.
        let orig = self.endian.u32(&self.buf, 0) as usize;
        let snap = match self.interfaces.first() {
            Some(i) if i.snaplen > 0 => i.snaplen as usize,
            _ => usize::MAX,
        };
        Ok(Packet {
            iface: 0,
            ts_ns: None,
            data_at: 4,
            len: orig.min(snap).min(self.buf.len() - 4),
        })
    }
}

/// The options of a block body: (code, value) until `opt_endofopt` or the
/// end. A malformed option ends the list: options only refine timestamps,
/// and the packets are still worth reading.
fn options(e: Endian, mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let code = e.u16(b, 0);
        let len = usize::from(e.u16(b, 2));
        let value = b.get(4..4 + len)?;
        if code == 0 {
            return None;
        }
        b = b.get(4 + len.next_multiple_of(4)..).unwrap_or_default();
        Some((code, value))
    })
}

fn truncated(offset: u64, needed: u64, got: u64) -> CaptureError {
    CaptureError::Truncated {
        offset,
        what: "pcapng block",
        needed,
        got,
    }
}

fn short_body(offset: u64, what: &'static str, needed: usize) -> CaptureError {
    CaptureError::Corrupt {
        offset,
        what,
        problem: format!("the block is too short for its {needed}-byte fixed fields"),
    }
}
