//! Cleartext credentials past the prefix: a bounded scan of one segment.
//!
//! The classifier reads `PREFIX` bytes of a segment; real requests put
//! their secrets further in (`Authorization:` after 200-600 bytes of HTTP
//! headers, SASL `PLAIN` after AMQP's client-properties table, `"pass"`
//! after a NATS client's options). Before a segment is classified,
//! `FlowClassifier::credential_scan` says whether it is one of those
//! messages (a client's first HTTP request, an AMQP Start-Ok, a NATS
//! `CONNECT`); only then does the runtime copy up to `SCAN_MAX` bytes of
//! it into a `ScanBuf` and run `step` over it, one 8-byte word per step:
//! the kernel from `bpf_loop` (its callback is verified once, not once per
//! word), `replay` and the unit tests from a plain loop. A step that
//! finds credentials ends the scan, and the runtime calls
//! `FlowClassifier::credentials_found`: the flow's final verdict then
//! carries `cleartext_credentials` (`FlowClassifier::finish`), whatever
//! follows (TLS through a proxy that was sent a password in the clear).
//! The secret is never copied anywhere but the scan buffer, which the
//! kernel zeroes after the scan.
//!
//! Cost: at most one scan per flow, of one segment, never on established
//! flows; about a dozen instructions per word without a line start, a few
//! dozen per header line (docs/benchmarks.md "The credentials scan" has
//! the measured cost per flow).

use super::bytes::Prefix;
use super::dissector::Registered;
use super::{FlowClassifier, Side, Stage, amqp, http, nats};

/// The kernel's scan program's index in each hook's classifier program
/// array: after the core (0) and the family stages (`1..=STAGES`).
pub const SCAN_SLOT: u32 = 1 + super::STAGES as u32;

/// Bytes of a segment the scan reads at most. Lines that start in the
/// last 24 of them are not matched (a match reads 24 bytes on).
pub const SCAN_MAX: usize = 2048;
/// Words of `SCAN_MAX`: a power of two, so a masked index is in bounds.
pub const SCAN_WORDS: usize = SCAN_MAX / 8;

/// Where the runtime copies the segment: zero past the copied length.
#[repr(C, align(8))]
pub struct ScanBuf {
    pub bytes: [u8; SCAN_MAX],
}

impl ScanBuf {
    /// The little-endian word at byte `i`, read as two aligned words
    /// shifted together (the verifier sees every read in bounds, masked);
    /// positions past the end wrap to the start, which no pattern matches
    /// across (see `SCAN_MAX`).
    #[inline(always)]
    pub(super) fn word_at(&self, i: usize) -> u64 {
        let words = self.bytes.as_ptr().cast::<[u8; 8]>();
        let j = (i >> 3) & (SCAN_WORDS - 1);
        #[expect(clippy::cast_possible_truncation, reason = "0..=7")]
        let k = (i & 7) as u32;
        // SAFETY: j and j + 1 masked to the buffer's SCAN_WORDS words.
        let (lo, hi) = unsafe {
            (
                u64::from_le_bytes(core::ptr::read_volatile(words.add(j))),
                u64::from_le_bytes(core::ptr::read_volatile(
                    words.add((j + 1) & (SCAN_WORDS - 1)),
                )),
            )
        };
        // `hi << (64 - 8k)` in two steps: a shift by 64 (k = 0) is not one.
        (lo >> (8 * k)) | ((hi << 1) << (63 - 8 * k))
    }

    /// The byte at `i`, masked into the buffer.
    #[inline(always)]
    pub(super) fn byte_at(&self, i: usize) -> u8 {
        // SAFETY: masked to the buffer's length.
        unsafe { core::ptr::read_volatile(self.bytes.as_ptr().add(i & (SCAN_MAX - 1))) }
    }
}

/// Which scan a segment wants. A plain `u8` enum (see `tls::Record`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    None = 0,
    /// An HTTP/1.x request's header lines (`http::header_has_credentials`).
    HttpHeaders = 1,
    /// AMQP 0-9-1 Connection.Start-Ok: its SASL mechanism, at the offset
    /// its client-properties table's length gives.
    AmqpStartOk = 2,
    /// A NATS `CONNECT {json}`: a `"pass"` or `"auth_token"` key.
    NatsConnect = 3,
}

impl Scan {
    /// From the byte the kernel hands its `bpf_loop` callback; anything
    /// unknown scans nothing.
    #[must_use]
    #[inline(always)]
    pub const fn from_u8(b: u8) -> Self {
        match b {
            1 => Self::HttpHeaders,
            2 => Self::AmqpStartOk,
            3 => Self::NatsConnect,
            _ => Self::None,
        }
    }
}

/// What one `step` found.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing in this word: go on.
    Next = 0,
    /// Credentials in the clear: stop.
    Found = 1,
    /// Nothing more to look at (the end of the headers): stop.
    Done = 2,
}

impl FlowClassifier {
    /// Before `on_segment`: whether this segment is a message that may
    /// carry credentials past the prefix, and which scan reads it. A few
    /// byte compares (the kernel asks only for segments `may_scan` lets
    /// through).
    #[must_use]
    #[inline(always)]
    pub fn credential_scan(&self, side: Side, d: &Prefix<'_>) -> Scan {
        // Fresh reads and no early returns: in the kernel this runs before
        // the classifier, and a register narrowed here (the stage, a byte)
        // and reused there would split every path through it (the core's
        // verifier count doubled).
        // SAFETY: reads of this struct's own fields.
        let (stage, sent) = unsafe {
            (
                core::ptr::read_volatile(&raw const self.stage),
                core::ptr::read_volatile(&raw const self.segs[0]),
            )
        };
        let client = side == Side::Client;
        let fresh = (stage == Stage::Start as u8) & (sent == 0);
        let connect = nats::is_connect(d);
        // `CONNECT {` is NATS, not an HTTP CONNECT.
        let nats =
            connect & (fresh | (stage == <nats::Nats as Registered>::BASE + nats::AFTER_INFO));
        let http = !connect & fresh & http::is_request(d);
        let amqp =
            (stage == <amqp::Amqp as Registered>::BASE + amqp::AFTER_HEADER) & amqp::is_start_ok(d);
        let scan = u8::from(client)
            * ((u8::from(http) * Scan::HttpHeaders as u8)
                | (u8::from(amqp) * Scan::AmqpStartOk as u8)
                | (u8::from(nats) * Scan::NatsConnect as u8));
        Scan::from_u8(scan)
    }

    /// Whether `credential_scan` could pick a scan for this segment, from
    /// its first byte alone: what the kernel's hook asks (a handful of
    /// compares, branch-free: `credential_scan`'s signatures there
    /// multiplied the hook's verified instructions by four) before it
    /// hands the segment to the scan program, which asks the real question.
    #[must_use]
    #[inline(always)]
    pub fn may_scan(&self, side: Side, first: u8) -> bool {
        // SAFETY: reads of this struct's own fields.
        let (stage, sent) = unsafe {
            (
                core::ptr::read_volatile(&raw const self.stage),
                core::ptr::read_volatile(&raw const self.segs[0]),
            )
        };
        let fresh = (stage == Stage::Start as u8) & (sent == 0);
        // HTTP methods and NATS' `CONNECT`; AMQP's method frame type.
        let upper = first.wrapping_sub(b'A') < 26;
        let nats = stage == <nats::Nats as Registered>::BASE + nats::AFTER_INFO;
        let amqp = (stage == <amqp::Amqp as Registered>::BASE + amqp::AFTER_HEADER) & (first == 1);
        (side == Side::Client) & ((fresh & upper) | nats | amqp)
    }

    /// A scan of this flow found credentials sent in the clear.
    #[inline(always)]
    pub fn credentials_found(&mut self) {
        self.flags |= super::F_CREDENTIALS;
    }

    /// `credentials_found` when `found` is 1 (0: nothing), branch-free for
    /// the kernel's core, which applies the scan program's finding.
    #[inline(always)]
    pub fn credentials_found_if(&mut self, found: u8) {
        self.flags |= super::F_CREDENTIALS * (found & 1);
    }
}

/// Steps a scan of `len` copied bytes takes: one per word, AMQP's one.
#[must_use]
#[inline(always)]
pub const fn steps(scan: Scan, len: usize) -> u32 {
    let len = if len > SCAN_MAX { SCAN_MAX } else { len };
    #[expect(clippy::cast_possible_truncation, reason = "at most SCAN_WORDS")]
    match scan {
        Scan::None => 0,
        Scan::AmqpStartOk => 1,
        Scan::HttpHeaders | Scan::NatsConnect => len.div_ceil(8) as u32,
    }
}

/// Step `k` of a scan over `buf` (`len` bytes copied, zero after): word
/// `k` for the line scans, the mechanism for AMQP.
#[must_use]
#[inline(always)]
pub fn step(scan: Scan, buf: &ScanBuf, len: usize, k: usize) -> Step {
    match scan {
        Scan::HttpHeaders => lines(buf, len, k, b'\n', http::header_has_credentials),
        Scan::NatsConnect => lines(buf, len, k, b'"', nats::key_is_credential),
        Scan::AmqpStartOk => found(amqp::mechanism_is_cleartext(buf, len)),
        Scan::None => Step::Done,
    }
}

/// The whole scan of one segment, for userspace (`replay`, tests): the
/// kernel runs the same `step`s from `bpf_loop`.
pub fn scan_segment(f: &mut FlowClassifier, side: Side, seg: &[u8]) {
    let scan = f.credential_scan(side, &super::PrefixBuf::new(seg).prefix());
    if scan == Scan::None {
        return;
    }
    let mut buf = ScanBuf {
        bytes: [0; SCAN_MAX],
    };
    let len = seg.len().min(SCAN_MAX);
    buf.bytes[..len].copy_from_slice(&seg[..len]);
    for k in 0..steps(scan, len) as usize {
        match step(scan, &buf, len, k) {
            Step::Next => {}
            Step::Found => {
                f.credentials_found();
                break;
            }
            Step::Done => break,
        }
    }
    buf.bytes.fill(0);
}

#[inline(always)]
const fn found(yes: bool) -> Step {
    if yes { Step::Found } else { Step::Next }
}

/// Word `k`: each `trigger` byte in it (a newline, a quote) inside the
/// copied bytes is tried as the start of a match by `matches`, given the
/// buffer and where the match would start.
#[inline(always)]
fn lines(
    buf: &ScanBuf,
    len: usize,
    k: usize,
    trigger: u8,
    matches: impl Fn(&ScanBuf, usize) -> Step,
) -> Step {
    let at = (k & (SCAN_WORDS - 1)) * 8;
    let hits = byte_lanes(buf.word_at(at), trigger);
    if hits == 0 {
        return Step::Next;
    }
    let mut j = 0;
    while j < 8 {
        let pos = at + j;
        if (hits >> (8 * j + 7)) & 1 != 0 && pos < len {
            let s = matches(buf, pos);
            if s != Step::Next {
                return s;
            }
        }
        j += 1;
    }
    Step::Next
}

/// The high bit of every byte lane of `x` equal to `b`; exact per lane.
#[inline(always)]
const fn byte_lanes(x: u64, b: u8) -> u64 {
    const H: u64 = 0x8080_8080_8080_8080;
    const L7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let y = x ^ (b as u64 * 0x0101_0101_0101_0101);
    !(((y & L7) + L7) | y) & H
}

/// `x` starts with `pat` (at most 8 bytes).
#[inline(always)]
pub(super) const fn word_is(x: u64, pat: &[u8]) -> bool {
    let mut want = 0u64;
    let mut i = 0;
    while i < pat.len() {
        want |= (pat[i] as u64) << (8 * i);
        i += 1;
    }
    let mask = if pat.len() >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * pat.len())) - 1
    };
    x & mask == want
}

/// ASCII letters to lower case in every lane (other bytes may change too:
/// only compare the result with lower-case letters and `-`, `:`, ` `,
/// which it leaves alone).
pub(super) const LOWER: u64 = 0x2020_2020_2020_2020;

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned(side: Side, seg: &[u8]) -> bool {
        let mut f = FlowClassifier::new();
        scan_segment(&mut f, side, seg);
        f.flags & super::super::F_CREDENTIALS != 0
    }

    #[test]
    fn a_header_line_is_found_wherever_it_starts_in_a_word() {
        for pad in 0..300 {
            let mut req = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
            req.extend(core::iter::repeat_n(b'a', pad));
            req.extend(b"\r\nAuthorization: Basic dGVzdDpmYWlsMg==\r\n\r\n");
            assert!(scanned(Side::Client, &req), "pad {pad}");
        }
    }

    #[test]
    fn the_scan_stops_at_its_bound_and_at_the_end_of_the_headers() {
        let mut req = b"GET / HTTP/1.1\r\nCookie: ".to_vec();
        req.extend(core::iter::repeat_n(b'c', SCAN_MAX));
        req.extend(b"\r\nAuthorization: Bearer abc\r\n\r\n");
        assert!(!scanned(Side::Client, &req));
        // In the body, after the blank line: not a header.
        let body = b"POST /x HTTP/1.1\r\nHost: a\r\n\r\nAuthorization: Bearer abc\r\n";
        assert!(!scanned(Side::Client, body));
    }

    #[test]
    fn the_server_side_is_never_scanned() {
        let req = b"GET / HTTP/1.1\r\nAuthorization: Basic dGVzdDpmYWlsMg==\r\n\r\n";
        assert!(scanned(Side::Client, req));
        assert!(!scanned(Side::Server, req));
    }

    #[test]
    fn word_compare_is_exact() {
        let x = u64::from_le_bytes(*b"basic ab");
        assert!(word_is(x, b"basic "));
        assert!(word_is(x, b"basic ab"));
        assert!(!word_is(x, b"basicx"));
        assert_eq!(
            byte_lanes(u64::from_le_bytes(*b"a\nb\n\n\n\nc"), b'\n').count_ones(),
            5
        );
    }
}
