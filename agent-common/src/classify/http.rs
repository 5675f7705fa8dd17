//! HTTP/1.x requests and responses, the HTTP/2 prior-knowledge preface,
//! and HTTP/2 frames in a flow picked up mid-stream.
//!
//! Mid-stream HTTP/2 (h2c, gRPC) has no preface: the first bytes are a
//! 9-byte frame header (24-bit length, type, flags, R bit + 31-bit stream
//! id). One header is a weak signature (any binary protocol with a
//! big-endian length can look like one), so a control frame (not DATA) of
//! a plausible shape only claims the flow, and the other side's first
//! segment must be a frame too before the flow is named `http2`.

use super::bytes::Prefix;
use super::credentials::{LOWER, ScanBuf, Step, word_is};
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Http;

/// The client sent a frame header mid-stream: the server's frame confirms.
const H2_FROM_SERVER: u8 = 0;
/// The server sent one: the client's frame confirms.
const H2_FROM_CLIENT: u8 = 1;

impl Dissector for Http {
    const STEPS: u8 = 2;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        if is_h2_preface(d) {
            f.open();
            return Verdict::plaintext(Protocol::Http2);
        }
        if is_request(d) {
            f.open();
            return Verdict::plaintext(Protocol::Http);
        }
        if is_response(d) {
            return Verdict::plaintext(Protocol::Http);
        }
        PENDING
    }

    /// A control frame without the preface claims the flow; `step` names it.
    #[inline(always)]
    fn midstream(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if h2_frame(d) == FRAME_CONTROL {
            let wait = if side == Side::Client {
                H2_FROM_SERVER
            } else {
                H2_FROM_CLIENT
            };
            f.goto::<Self>(wait);
        }
        PENDING
    }

    #[inline(always)]
    fn step(f: &mut FlowClassifier, step: u8, side: Side, d: &Prefix<'_>) -> Verdict {
        let awaited = if step == H2_FROM_SERVER {
            Side::Server
        } else {
            Side::Client
        };
        if side != awaited {
            return PENDING;
        }
        if h2_frame(d) != FRAME_NONE {
            return Verdict::plaintext(Protocol::Http2);
        }
        // Not HTTP/2 after all: nothing is named from the claim.
        f.restart();
        PENDING
    }
}

/// `h2_frame` results: not a frame header, (1: a DATA frame), any other
/// frame.
const FRAME_NONE: u8 = 0;
const FRAME_CONTROL: u8 = 2;

/// SETTINGS_MAX_FRAME_SIZE's initial value: peers rarely raise it.
const MAX_FRAME: u32 = 16_384;

/// An HTTP/2 frame header at the start of `d` (RFC 9113 section 4.1, 6):
/// a known type with the flags, length and stream id its type allows.
/// Arithmetic rather than a `match`: the arms would never merge for the
/// verifier (see the notes in `mod.rs`).
#[inline(always)]
fn h2_frame(d: &Prefix<'_>) -> u8 {
    let len = u32::from(d.at(0)) << 16 | u32::from(d.be16(1));
    let ty = d.at(3);
    let flags = u32::from(d.at(4));
    let stream = d.be32(5);
    let on = 1 ^ zero(stream);
    let off = zero(stream);
    let no_flags = zero(flags);
    let t = |n: u8| zero(u32::from(ty ^ n));
    let only = |mask: u32| zero(flags & !mask);
    let is = |n: u32| zero(len ^ n);
    // SETTINGS: an ACK is empty; settings are 6 bytes each, the first
    // identifier from the registry (1..=9).
    let settings = (zero(flags ^ 1) & zero(len))
        | (no_flags
            & zero(len % 6)
            & zero(u32::from(d.at(9)))
            & below(u32::from(d.at(10)).wrapping_sub(1), 9));
    let ok = (t(0) & on & only(0x09))
        | (t(1) & on & only(0x2d) & (1 ^ zero(len)))
        | (t(2) & on & no_flags & is(5))
        | (t(3) & on & no_flags & is(4))
        | (t(4) & off & settings)
        | (t(5) & on & only(0x0c) & (1 ^ below(len, 4)))
        | (t(6) & off & only(0x01) & is(8))
        | (t(7) & off & no_flags & (1 ^ below(len, 8)))
        | (t(8) & no_flags & is(4) & (1 ^ zero(d.be32(9) & 0x7fff_ffff)))
        | (t(9) & on & only(0x04) & (1 ^ zero(len)));
    let valid = ok & below(len, MAX_FRAME + 1) & (stream >> 31 ^ 1) & u32::from(d.has(9));
    // FRAME_NONE, 1 for DATA, or FRAME_CONTROL.
    #[expect(clippy::cast_possible_truncation, reason = "0..=2")]
    let kind = (valid * (2 - t(0))) as u8;
    kind
}

/// 1 if `x == 0`, else 0; branch-free.
#[inline(always)]
const fn zero(x: u32) -> u32 {
    ((x as u64).wrapping_sub(1) >> 63) as u32
}

/// 1 if `x < n` (both below 2^31), else 0; branch-free.
#[inline(always)]
const fn below(x: u32, n: u32) -> u32 {
    (((x as i64) - (n as i64)) >> 63) as u32 & 1
}

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
];

/// An HTTP/1.x request line starts with a method and a space.
#[inline(always)]
pub(super) fn is_request(d: &Prefix<'_>) -> bool {
    let mut i = 0;
    while i < METHODS.len() {
        if d.starts_with(METHODS[i]) {
            return true;
        }
        i += 1;
    }
    false
}

fn is_response(d: &Prefix<'_>) -> bool {
    d.starts_with(b"HTTP/1.")
}

/// The header line after the newline at `nl` of a request the
/// credentials scan reads (`credentials.rs`) carries a secret in the
/// clear: `Authorization` or `Proxy-Authorization` with the `Basic`
/// (base64 of `user:password`) or `Bearer` scheme (a token, often a JWT:
/// whoever reads it can replay it), or an API-key header (`X-Api-Key`,
/// `X-Auth-Token`, `Api-Key`). `Digest`, `NTLM`, `Negotiate` and
/// signature schemes (`AWS4-HMAC-SHA256`) prove a secret without sending
/// it: not cleartext. Names without case; zero or one space after the
/// colon. A blank line ends the headers, and the scan.
#[inline(always)]
pub(super) fn header_has_credentials(buf: &ScanBuf, nl: usize) -> Step {
    let q = nl + 1;
    let first = buf.byte_at(q);
    if first == b'\r' || first == b'\n' {
        return Step::Done;
    }
    let n0 = buf.word_at(q) | LOWER;
    let n1 = buf.word_at(q + 8) | LOWER;
    let n2 = buf.word_at(q + 16) | LOWER;
    let auth = word_is(n0, b"authoriz") && word_is(n1, b"ation:");
    let proxy = word_is(n0, b"proxy-au") && word_is(n1, b"thorizat") && word_is(n2, b"ion:");
    let key = (word_is(n0, b"x-api-ke") && word_is(n1, b"y:"))
        || (word_is(n0, b"x-auth-t") && word_is(n1, b"oken:"))
        || word_is(n0, b"api-key:");
    if key {
        return Step::Found;
    }
    if !(auth || proxy) {
        return Step::Next;
    }
    // The scheme after `authorization:` (14 bytes) or
    // `proxy-authorization:` (20), after at most one space.
    let at = if proxy { q + 20 } else { q + 14 };
    let s = buf.word_at(at) | LOWER;
    let cleartext = word_is(s, b" basic ")
        || word_is(s, b"basic ")
        || word_is(s, b" bearer ")
        || word_is(s, b"bearer ");
    if cleartext { Step::Found } else { Step::Next }
}

/// The client connection preface of HTTP/2 over cleartext (h2c, gRPC).
fn is_h2_preface(d: &Prefix<'_>) -> bool {
    d.starts_with(b"PRI * HTTP/2.0\r\n")
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::{classify, classify_midstream, credentials, midstream};
    use crate::classify::Side;
    use crate::{Protocol, Verdict};

    // --- HTTP --------------------------------------------------------------------

    #[test]
    fn curl_http_get_is_plaintext_http() {
        let v = replay!("curl-7.88-http-python-3.11": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Http)));
    }

    #[test]
    fn curl_http_get_to_nginx_is_plaintext_http() {
        let v = replay!("curl-7.88-http-nginx-1.22": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Http)));
    }

    #[test]
    fn python_http_response_is_plaintext_http() {
        // HTTP/1.0 status line from http.server, seen without the request.
        let v = classify(&[(
            Side::Server,
            fixture!("curl-7.88-http-python-3.11", "s2c.0"),
        )]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Http)));
    }

    #[test]
    fn nginx_http_response_is_plaintext_http() {
        let v = classify(&[(Side::Server, fixture!("curl-7.88-http-nginx-1.22", "s2c.0"))]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Http)));
    }

    #[test]
    fn h2c_preface_is_plaintext_http2() {
        // curl --http2-prior-knowledge: preface and SETTINGS in one segment.
        let v = replay!("curl-7.88-h2c-nginx-1.22": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Http2)));
    }

    // --- HTTP/2 mid-stream: nginx's SETTINGS, then curl's SETTINGS ACK ---------------

    #[test]
    fn h2_frames_both_ways_without_preface_are_http2_midstream() {
        let v = classify_midstream(&[
            (Side::Server, fixture!("curl-7.88-h2c-nginx-1.22", "s2c.0")),
            (Side::Client, fixture!("curl-7.88-h2c-nginx-1.22", "c2s.1")),
        ]);
        assert_eq!(v, Some(midstream(Protocol::Http2)));
    }

    #[test]
    fn h2_frame_one_way_only_is_not_named() {
        let v = classify_midstream(&[(Side::Server, fixture!("curl-7.88-h2c-nginx-1.22", "s2c.0"))]);
        assert_eq!(v.map(|v| v.protocol), Some(Protocol::Unknown));
    }

    #[test]
    fn h2_frame_answered_by_something_else_is_not_http2() {
        // The server's SETTINGS, answered by an HTTP/1 request line.
        let v = classify_midstream(&[
            (Side::Server, fixture!("curl-7.88-h2c-nginx-1.22", "s2c.0")),
            (Side::Client, fixture!("curl-7.88-http-nginx-1.22", "c2s.0")),
        ]);
        assert_ne!(v.map(|v| v.protocol), Some(Protocol::Http2));
    }

    // --- Credentials past the prefix (curl 7.88, python requests 2.34) ---------

    #[test]
    fn basic_authorization_after_400_bytes_of_headers_is_cleartext_credentials() {
        let v = replay!("curl-7.88-http-basic-after-headers": "c2s.0");
        assert_eq!(v, Some(credentials(Protocol::Http)));
        let v = replay!("curl-7.88-http-user-basic": "c2s.0");
        assert_eq!(v, Some(credentials(Protocol::Http)));
    }

    #[test]
    fn bearer_token_after_400_bytes_of_headers_is_cleartext_credentials() {
        let v = replay!("curl-7.88-http-bearer-after-headers": "c2s.0");
        assert_eq!(v, Some(credentials(Protocol::Http)));
        let v = replay!("python-requests-2.34-bearer-after-headers": "c2s.0");
        assert_eq!(v, Some(credentials(Protocol::Http)));
    }

    #[test]
    fn api_key_header_is_cleartext_credentials() {
        let v = replay!("curl-7.88-http-x-api-key-after-headers": "c2s.0");
        assert_eq!(v, Some(credentials(Protocol::Http)));
    }

    #[test]
    fn proxy_authorization_is_cleartext_credentials() {
        let v = replay!("curl-7.88-connect-proxy-user": "c2s.0");
        assert_eq!(v.map(|v| v.reason), Some(crate::Reason::CleartextCredentials));
    }

    #[test]
    fn digest_authorization_is_not_cleartext() {
        let v = replay!("curl-7.88-http-digest-after-headers": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Http)));
    }

    #[test]
    fn headers_without_credentials_are_plain_http() {
        let v = replay!("curl-7.88-http-no-credentials-after-headers": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Http)));
    }

    #[test]
    fn only_the_clients_first_request_is_scanned() {
        // The same request sent by the server side: named, never scanned.
        let basic = fixture!("curl-7.88-http-basic-after-headers", "c2s.0");
        let v = classify(&[(Side::Server, basic)]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Http)));
    }
}
