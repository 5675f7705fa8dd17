//! Classic pcap: a 24-byte file header, then records of a 16-byte header
//! and the packet bytes. Either byte order; micro- or nanosecond stamps; the
//! "modified" (Kuznetsov) variant with 24-byte record headers too.

use super::{CaptureError, Endian, Frame, MAX_RECORD, Source};
use std::io::Read;

const FILE_HEADER: usize = 24;

/// What the magic number says about the file.
#[derive(Clone, Copy, Debug)]
pub struct Format {
    endian: Endian,
    /// Units of the sub-second timestamp field, in nanoseconds.
    frac_ns: i64,
    record_header: usize,
}

impl Format {
    /// `first` are the file's first bytes.
    pub fn from_magic(first: &[u8]) -> Option<Self> {
        let (endian, magic) = match first {
            [0xa1, 0xb2, a, b] => (Endian::Big, [*a, *b]),
            [a, b, 0xb2, 0xa1] => (Endian::Little, [*b, *a]),
            _ => return None,
        };
        let (frac_ns, record_header) = match magic {
            [0xc3, 0xd4] => (1_000, 16),
            [0x3c, 0x4d] => (1, 16),
            [0xcd, 0x34] => (1_000, 24),
            _ => return None,
        };
        Some(Self {
            endian,
            frac_ns,
            record_header,
        })
    }
}

pub struct Reader<R> {
    src: Source<R>,
    format: Format,
    link_type: u16,
    buf: Vec<u8>,
}

impl<R: Read> Reader<R> {
    /// `src` has consumed the 4-byte magic that gave `format`.
    pub(super) fn open(mut src: Source<R>, format: Format) -> Result<Self, CaptureError> {
        let mut rest = [0u8; FILE_HEADER - 4];
        src.exact(&mut rest, 0, "pcap file header", FILE_HEADER as u64)?;
        let e = format.endian;
        let major = e.u16(&rest, 0);
        let minor = e.u16(&rest, 2);
        if major != 2 {
            return Err(CaptureError::Unsupported {
                offset: 4,
                what: format!("pcap version {major}.{minor} (only 2.x exists in practice)"),
            });
        }
        // The link-type field's upper bits may carry FCS information.
        let link_type = (e.u32(&rest, 16) & 0xffff) as u16;
        Ok(Self {
            src,
            format,
            link_type,
            buf: Vec::new(),
        })
    }

    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        let start = self.src.offset();
        let hl = self.format.record_header;
        let mut hdr = [0u8; 24];
        let Some(hdr) = hdr.get_mut(..hl) else {
            return Ok(None);
        };
        match self.src.fill(hdr)? {
            0 => return Ok(None),
            n if n < hl => {
                return Err(CaptureError::Truncated {
                    offset: start,
                    what: "packet record header",
                    needed: hl as u64,
                    got: n as u64,
                });
            }
            _ => {}
        }
        let e = self.format.endian;
        let secs = i64::from(e.u32(hdr, 0));
        let frac = i64::from(e.u32(hdr, 4));
        let incl = e.u32(hdr, 8);
        if incl > MAX_RECORD {
            return Err(CaptureError::Corrupt {
                offset: start,
                what: "packet record",
                problem: format!("captured length {incl} is larger than any real packet"),
            });
        }
        self.src.exact_vec(
            &mut self.buf,
            incl as usize,
            start,
            "packet record",
            hl as u64 + u64::from(incl),
        )?;
        Ok(Some(Frame {
            ts_ns: secs
                .saturating_mul(1_000_000_000)
                .saturating_add(frac.saturating_mul(self.format.frac_ns)),
            link_type: self.link_type,
            data: &self.buf,
            offset: start,
        }))
    }
}
