//! Capture file readers: pcap and pcapng, streamed (a capture may be far
//! larger than memory), with the byte offset of everything they reject.
//!
//! Written here rather than taken from a crate so that every truncation and
//! corruption is reported with its offset and nothing panics on hostile
//! input; both formats are small.

mod pcap;
mod pcapng;

use super::error::CaptureError;
use std::io::{self, Read};

/// Largest packet record accepted. Real records are at most a few hundred
/// KiB (GSO super-packets, BIG TCP); a larger length field is corruption, and
/// trusting it would mean allocating whatever the file says.
const MAX_RECORD: u32 = 16 << 20;

/// One captured packet.
#[derive(Debug)]
pub struct Frame<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// LINKTYPE_* of the interface the packet was captured on.
    pub link_type: u16,
    /// The captured bytes (possibly cut short by the snaplen).
    pub data: &'a [u8],
    /// Where the packet's record starts in the file.
    pub offset: u64,
}

/// A capture being read, whichever its format.
pub enum Capture<R> {
    Pcap(pcap::Reader<R>),
    Pcapng(pcapng::Reader<R>),
}

impl<R: Read> Capture<R> {
    /// Recognises the format from the first bytes and reads the file header.
    pub fn open(reader: R) -> Result<Self, CaptureError> {
        let mut src = Source::new(reader);
        let mut magic = [0u8; 4];
        let got = src.fill(&mut magic)?;
        if got == 0 {
            return Err(CaptureError::Empty);
        }
        let first = magic.get(..got).unwrap_or_default();
        if let Some(format) = pcap::Format::from_magic(first) {
            return Ok(Self::Pcap(pcap::Reader::open(src, format)?));
        }
        if first == pcapng::SHB_MAGIC {
            return Ok(Self::Pcapng(pcapng::Reader::new(src)));
        }
        if got < magic.len() && MAGICS.iter().any(|m| m.starts_with(first)) {
            return Err(CaptureError::Truncated {
                offset: 0,
                what: "file header",
                needed: magic.len() as u64,
                got: got as u64,
            });
        }
        Err(not_a_capture(first))
    }

    /// The next packet, `None` at the clean end of the file.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        match self {
            Self::Pcap(r) => r.next_frame(),
            Self::Pcapng(r) => r.next_frame(),
        }
    }
}

/// Every magic number `open` knows, to tell a cut-off one from garbage.
const MAGICS: [[u8; 4]; 7] = [
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xcd, 0x34],
    [0x34, 0xcd, 0xb2, 0xa1],
    pcapng::SHB_MAGIC,
];

fn not_a_capture(first: &[u8]) -> CaptureError {
    let magic = first
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    let hint = match first {
        [0x1f, 0x8b, ..] => "; it is gzip-compressed: decompress it first",
        [0x28, 0xb5, 0x2f, 0xfd] => "; it is zstd-compressed: decompress it first",
        _ => "",
    };
    CaptureError::NotACapture { magic, hint }
}

/// A reader that knows its byte offset and tells a clean end of file from
/// a truncated structure.
pub struct Source<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> Source<R> {
    fn new(inner: R) -> Self {
        Self { inner, offset: 0 }
    }

    /// Reads until `buf` is full or the file ends; returns the bytes read.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, CaptureError> {
        let mut got = 0;
        while got < buf.len() {
            let Some(rest) = buf.get_mut(got..) else {
                break;
            };
            match self.inner.read(rest) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureError::Io {
                        offset: self.offset + got as u64,
                        source,
                    });
                }
            }
        }
        self.offset += got as u64;
        Ok(got)
    }

    /// Reads exactly `buf.len()` bytes of the structure `what` that starts
    /// at `start`; a short read is a truncation.
    fn exact(
        &mut self,
        buf: &mut [u8],
        start: u64,
        what: &'static str,
        needed: u64,
    ) -> Result<(), CaptureError> {
        let got = self.fill(buf)?;
        if got < buf.len() {
            return Err(CaptureError::Truncated {
                offset: start,
                what,
                needed,
                got: self.offset - start,
            });
        }
        Ok(())
    }

    /// Like `exact`, into `buf` resized to `len`. Memory grows with the
    /// bytes actually read, not with a length field that may be corrupt.
    fn exact_vec(
        &mut self,
        buf: &mut Vec<u8>,
        len: usize,
        start: u64,
        what: &'static str,
        needed: u64,
    ) -> Result<(), CaptureError> {
        buf.clear();
        let got = (&mut self.inner)
            .take(len as u64)
            .read_to_end(buf)
            .map_err(|source| CaptureError::Io {
                offset: self.offset + buf.len() as u64,
                source,
            })?;
        self.offset += got as u64;
        if got < len {
            return Err(CaptureError::Truncated {
                offset: start,
                what,
                needed,
                got: self.offset - start,
            });
        }
        Ok(())
    }

    fn offset(&self) -> u64 {
        self.offset
    }
}

/// Byte order of a section, from its magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: &[u8], at: usize) -> u16 {
        let a = bytes_at(b, at);
        match self {
            Self::Little => u16::from_le_bytes(a),
            Self::Big => u16::from_be_bytes(a),
        }
    }

    fn u32(self, b: &[u8], at: usize) -> u32 {
        let a = bytes_at(b, at);
        match self {
            Self::Little => u32::from_le_bytes(a),
            Self::Big => u32::from_be_bytes(a),
        }
    }

    fn i64(self, b: &[u8], at: usize) -> i64 {
        let a = bytes_at(b, at);
        match self {
            Self::Little => i64::from_le_bytes(a),
            Self::Big => i64::from_be_bytes(a),
        }
    }
}

/// `N` bytes of `b` at `at`, zeros when out of range (callers check lengths
/// before trusting a field).
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    if let Some(s) = at.checked_add(N).and_then(|end| b.get(at..end)) {
        a.copy_from_slice(s);
    }
    a
}

#[cfg(test)]
mod tests;
