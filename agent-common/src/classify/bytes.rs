//! The bounded payload prefix the classifier reads, and panic-free,
//! verifier-friendly access to it.
//!
//! The buffer is always `PREFIX` bytes with everything past `len` zero, so a
//! read never needs a length branch: per-byte branches multiply the paths the
//! verifier walks (the first version hit its 1M-instruction limit). Checks
//! against `len` happen once per signature, not once per byte.

use crate::wire::PREFIX;

const _: () = assert!(PREFIX.is_power_of_two());
const MASK: usize = PREFIX - 1;

/// The first bytes of one payload segment: `len` real bytes, zero after.
#[derive(Clone, Copy)]
pub struct Prefix<'a> {
    buf: &'a [u8; PREFIX],
    len: usize,
}

impl<'a> Prefix<'a> {
    /// `buf` must be zero past `len` (the kernel zeroes its scratch buffer
    /// before each copy; `PrefixBuf` does it in userspace).
    #[inline(always)]
    pub fn new(buf: &'a [u8; PREFIX], len: usize) -> Self {
        let len = if len > PREFIX { PREFIX } else { len };
        Self { buf, len }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Byte `i` at a constant offset; 0 past the data.
    #[inline(always)]
    pub fn at(&self, i: usize) -> u8 {
        self.buf[i & MASK] & if i < PREFIX { 0xff } else { 0 }
    }

    /// Byte `i` at an offset computed from packet bytes (length fields). The
    /// optimiser proves such offsets in range through comparisons the
    /// verifier cannot follow; hiding the value and masking it gives the
    /// verifier a bound it can see. 0 past the data.
    #[inline(always)]
    pub fn at_var(&self, i: usize) -> u8 {
        if i >= self.len {
            return 0;
        }
        self.buf[core::hint::black_box(i) & MASK]
    }

    #[inline(always)]
    pub fn be16(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.at(i), self.at(i + 1)])
    }

    #[inline(always)]
    pub fn be32(&self, i: usize) -> u32 {
        u32::from_be_bytes([self.at(i), self.at(i + 1), self.at(i + 2), self.at(i + 3)])
    }

    /// `be16` at a computed offset (see `at_var`).
    #[inline(always)]
    pub fn be16_var(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.at_var(i), self.at_var(i + 1)])
    }

    /// The data starts with `pat`. Branch-free over the pattern.
    #[inline(always)]
    pub fn starts_with(&self, pat: &[u8]) -> bool {
        let mut diff = 0u8;
        let mut i = 0;
        while i < pat.len() && i < PREFIX {
            diff |= self.buf[i] ^ pat[i];
            i += 1;
        }
        diff == 0 && self.len >= pat.len()
    }

    /// Every byte is printable ASCII or common whitespace, and there are at
    /// least `min` of them: what a human-readable protocol sends.
    ///
    /// Pure arithmetic per byte: BPF has no conditional-set instruction, so
    /// every comparison would be a branch the verifier walks 128 times.
    #[inline(always)]
    pub fn is_text(&self, min: usize) -> bool {
        let mut bad = 0u32;
        let mut i = 0;
        while i < PREFIX {
            // 1 while i < len: the sign bit of i - len.
            #[expect(clippy::cast_possible_wrap, reason = "both are at most PREFIX")]
            let in_data = (((i as i64) - (self.len as i64)) >> 63) as u32 & 1;
            bad |= not_text(self.buf[i]) & in_data;
            i += 1;
        }
        bad == 0 && self.len >= min
    }
}

/// 1 unless `b` is printable ASCII (0x20..=0x7e) or tab/LF/CR; branch-free.
#[inline(always)]
const fn not_text(b: u8) -> u32 {
    let b = b as u32;
    // b - 0x20 wraps to >= 0x5f for anything outside 0x20..=0x7e.
    let not_printable = ((b.wrapping_sub(0x20) & 0xff) + 0xa1) >> 8;
    let below_32 = 1 ^ (((b >> 5) + 7) >> 3);
    let whitespace = (0x2600 >> (b & 31)) & 1 & below_32;
    not_printable & (1 ^ whitespace)
}

/// Printable ASCII or tab/CR/LF.
#[inline(always)]
pub const fn is_text_byte(b: u8) -> bool {
    matches!(b, 0x20..=0x7e | b'\t' | b'\r' | b'\n')
}

/// An owned, zero-padded prefix for userspace callers (tests, replay).
pub struct PrefixBuf {
    buf: [u8; PREFIX],
    len: usize,
}

impl PrefixBuf {
    /// Copies at most `PREFIX` bytes of `data`.
    #[must_use]
    pub fn new(data: &[u8]) -> Self {
        let mut buf = [0u8; PREFIX];
        let len = data.len().min(PREFIX);
        buf[..len].copy_from_slice(&data[..len]);
        Self { buf, len }
    }

    #[must_use]
    pub fn prefix(&self) -> Prefix<'_> {
        Prefix::new(&self.buf, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_free_text_test_matches_the_plain_one() {
        for b in 0..=255u8 {
            assert_eq!(not_text(b) == 0, is_text_byte(b), "byte {b:#04x}");
        }
    }

    #[test]
    fn text_respects_length_and_padding() {
        assert!(PrefixBuf::new(b"GET / HTTP/1.1\r\n").prefix().is_text(2));
        assert!(!PrefixBuf::new(b"ab\x00cd").prefix().is_text(2));
        assert!(!PrefixBuf::new(b"a").prefix().is_text(2));
        // A zero byte inside the data is binary; the zero padding is not.
        let long = [b'a'; PREFIX + 10];
        assert!(PrefixBuf::new(&long).prefix().is_text(2));
    }

    #[test]
    fn starts_with_needs_the_whole_pattern() {
        let p = PrefixBuf::new(b"SSH");
        assert!(!p.prefix().starts_with(b"SSH-"));
        assert!(PrefixBuf::new(b"SSH-2.0-x").prefix().starts_with(b"SSH-"));
    }

    #[test]
    fn var_reads_past_the_data_are_zero() {
        let p = PrefixBuf::new(b"\x01\x02");
        assert_eq!(p.prefix().at_var(1), 2);
        assert_eq!(p.prefix().at_var(2), 0);
        assert_eq!(p.prefix().at_var(10_000), 0);
        assert_eq!(p.prefix().at(10_000), 0);
    }
}
