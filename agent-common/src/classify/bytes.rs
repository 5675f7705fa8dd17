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

    /// At least `n` bytes of data. Arithmetic on a fresh copy of the
    /// length, not a comparison: a compare would narrow the length
    /// register on both paths, and the verifier cannot merge states that
    /// differ in it, so every later signature would be walked once per
    /// length range.
    #[inline(always)]
    pub fn has(&self, n: usize) -> bool {
        // SAFETY: a read of this struct's own field.
        let len = unsafe { core::ptr::read_volatile(&raw const self.len) };
        // `n` through black_box: LLVM would subtract a constant as
        // `len += -n`, and the verifier links such a result to `len` itself
        // (linked registers with an offset), so the comparison below would
        // narrow the length after all. A register operand breaks the link.
        #[expect(clippy::cast_possible_wrap, reason = "both are small")]
        let short = ((len as i64) - (core::hint::black_box(n) as i64)) >> 63;
        short == 0
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Byte `i` at a constant offset; 0 past the data.
    #[inline(always)]
    pub fn at(&self, i: usize) -> u8 {
        // A volatile load: LLVM may not keep a byte in a register across
        // signatures. Otherwise each comparison narrows that register
        // differently on each failing path, and the verifier, which cannot
        // merge states that differ in it, walks every later signature once
        // per combination (the cost multiplies instead of adding up).
        // SAFETY: in bounds of the PREFIX-byte buffer (masked index).
        let b = unsafe { core::ptr::read_volatile(&raw const self.buf[i & MASK]) };
        b & if i < PREFIX { 0xff } else { 0 }
    }

    /// Byte `i` at an offset computed from packet bytes (length fields). The
    /// optimiser proves such offsets in range through comparisons the
    /// verifier cannot follow; hiding the value and masking it gives the
    /// verifier a bound it can see. 0 past the data.
    #[inline(always)]
    pub fn at_var(&self, i: usize) -> u8 {
        // SAFETY: a read of this struct's own field (fresh, as in `has`).
        let len = unsafe { core::ptr::read_volatile(&raw const self.len) };
        // 0xff when i < len, without a branch (see `has`).
        #[expect(
            clippy::cast_possible_wrap,
            reason = "i is masked below; len is at most PREFIX"
        )]
        let inside = (((i as i64) - (len as i64)) >> 63) as u8;
        // SAFETY: in bounds of the PREFIX-byte buffer (masked index).
        let b = unsafe {
            core::ptr::read_volatile(&raw const self.buf[core::hint::black_box(i) & MASK])
        };
        b & inside
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

    /// Little-endian reads (MySQL, MongoDB lengths and opcodes).
    #[inline(always)]
    pub fn le16(&self, i: usize) -> u16 {
        u16::from_le_bytes([self.at(i), self.at(i + 1)])
    }

    #[inline(always)]
    pub fn le24(&self, i: usize) -> u32 {
        u32::from_le_bytes([self.at(i), self.at(i + 1), self.at(i + 2), 0])
    }

    #[inline(always)]
    pub fn le32(&self, i: usize) -> u32 {
        u32::from_le_bytes([self.at(i), self.at(i + 1), self.at(i + 2), self.at(i + 3)])
    }

    /// `pat` sits at constant offset `off`. Branch-free over the pattern.
    #[inline(always)]
    pub fn eq_at(&self, off: usize, pat: &[u8]) -> bool {
        let mut diff = 0u8;
        let mut i = 0;
        while i < pat.len() {
            diff |= self.at(off + i) ^ pat[i];
            i += 1;
        }
        diff == 0 && self.has(off + pat.len())
    }

    /// `pat` (lower case) sits at `off`, ASCII letters compared without
    /// case (both sides are OR-ed with 0x20, so also `\r` matches `-`:
    /// harmless for the command words we look for).
    #[inline(always)]
    pub fn eq_at_ci(&self, off: usize, pat: &[u8]) -> bool {
        let mut diff = 0u8;
        let mut i = 0;
        while i < pat.len() {
            diff |= (self.at(off + i) | 0x20) ^ (pat[i] | 0x20);
            i += 1;
        }
        diff == 0 && self.has(off + pat.len())
    }

    /// `pat` at an offset computed from packet bytes (see `at_var`).
    #[inline(always)]
    pub fn eq_at_var(&self, off: usize, pat: &[u8]) -> bool {
        let mut diff = 0u8;
        let mut i = 0;
        while i < pat.len() {
            diff |= self.at_var(off + i) ^ pat[i];
            i += 1;
        }
        diff == 0 && self.has(off + pat.len())
    }

    /// `pat` (case-insensitive, as `eq_at_ci`) starts at one of the offsets
    /// `0..span`: a tagged command (`a001 LOGIN`) or a word in a banner.
    /// Branch-free: every offset is compared and the results OR-ed.
    #[inline(always)]
    pub fn find_ci(&self, pat: &[u8], span: usize) -> bool {
        let mut found = 0u32;
        let mut off = 0;
        while off < span && off + pat.len() <= PREFIX {
            let mut diff = 0u32;
            let mut i = 0;
            while i < pat.len() {
                diff |= u32::from((self.buf[(off + i) & MASK] | 0x20) ^ (pat[i] | 0x20));
                i += 1;
            }
            // 1 when diff == 0 and the pattern ends inside the data.
            #[expect(clippy::cast_possible_wrap, reason = "both are at most PREFIX")]
            let inside = ((((off + pat.len()) as i64) - (self.len as i64) - 1) >> 63) as u32 & 1;
            found |= (diff.wrapping_sub(1) >> 31) & inside;
            off += 1;
        }
        found != 0
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
        diff == 0 && self.has(pat.len())
    }

    /// Every byte is printable ASCII or common whitespace, and there are at
    /// least `min` of them: what a human-readable protocol sends.
    ///
    /// Pure arithmetic per byte: BPF has no conditional-set instruction, so
    /// every comparison would be a branch the verifier walks 128 times.
    #[inline(always)]
    pub fn is_text(&self, min: usize) -> bool {
        let mut bad = 0u64;
        let mut k = 0;
        // Eight bytes per step (SWAR): 16 steps instead of 128.
        while k < PREFIX / 8 {
            let o = k * 8;
            // SAFETY: o + 8 <= PREFIX; an unaligned read of plain bytes,
            // volatile so no other signature reuses (and narrows) it.
            let x = u64::from_le_bytes(unsafe {
                core::ptr::read_volatile(self.buf.as_ptr().add(o).cast::<[u8; 8]>())
            });
            bad |= not_text_lanes(x) & in_data_lanes(self.len, o);
            k += 1;
        }
        bad == 0 && self.has(min)
    }
}

/// The high bit of every byte lane of `x` that is not printable ASCII or
/// tab/LF/CR. Exact per lane: no borrow crosses a lane.
#[inline(always)]
fn not_text_lanes(x: u64) -> u64 {
    const H: u64 = 0x8080_8080_8080_8080;
    const L: u64 = 0x0101_0101_0101_0101;
    let x7 = x & !H;
    // High bit set where the lane (without its high bit) is >= 0x20.
    let ge20 = (x7 | H).wrapping_sub(L * 0x20) & H;
    // High bit set where the lane differs from c.
    let ne = |c: u64| ((x7 ^ (L * c)) | H).wrapping_sub(L) & H;
    let control = (H ^ ge20) & ne(9) & ne(10) & ne(13);
    (x & H) | control | (H ^ ne(0x7f))
}

/// High bits of the byte lanes of the word at `off` that lie before `len`.
#[inline(always)]
const fn in_data_lanes(len: usize, off: usize) -> u64 {
    // Bytes of this word inside the data, clamped to 0..=8 with sign masks
    // (a `min` would be a branch: BPF has no conditional move).
    #[expect(clippy::cast_possible_wrap, reason = "both are at most PREFIX")]
    let n = len as i64 - off as i64;
    let n = n & !(n >> 63);
    let big = (8 - n) >> 63;
    #[expect(clippy::cast_sign_loss, reason = "clamped to 0..=8")]
    let n = ((n & !big) | (8 & big)) as u64;
    // Lanes 0..n: shift an all-ones word right by 8 * (8 - n), in two
    // halves so a shift of 64 never happens.
    let sh = (8 * (8 - n)) as u32;
    ((u64::MAX >> (sh / 2)) >> (sh - sh / 2)) & 0x8080_8080_8080_8080
}

/// 1 unless `b` is printable ASCII (0x20..=0x7e) or tab/LF/CR; branch-free.
/// The per-byte reference for `not_text_lanes`.
#[cfg(test)]
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
    fn eight_byte_text_test_matches_the_byte_one() {
        // Every byte value at every lane, and the lanes past the data.
        for b in 0..=255u8 {
            for pos in 0..16 {
                let mut data = [b'a'; 16];
                data[pos] = b;
                let want = is_text_byte(b);
                assert_eq!(
                    PrefixBuf::new(&data).prefix().is_text(2),
                    want,
                    "byte {b:#04x} at {pos}"
                );
                // The same byte just past the data is padding, not data.
                assert!(PrefixBuf::new(&data[..pos]).prefix().is_text(0) || pos == 0);
            }
        }
    }

    #[test]
    fn has_counts_the_data() {
        let p = PrefixBuf::new(b"abc");
        assert!(p.prefix().has(3));
        assert!(!p.prefix().has(4));
        assert!(p.prefix().has(0));
    }

    #[test]
    fn find_ci_sees_every_offset_inside_the_data() {
        let p = PrefixBuf::new(b"A001 login x");
        assert!(p.prefix().find_ci(b" LOGIN ", 12));
        assert!(!p.prefix().find_ci(b" LOGIN ", 4));
        assert!(!PrefixBuf::new(b"A001 logi").prefix().find_ci(b" login", 12));
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
