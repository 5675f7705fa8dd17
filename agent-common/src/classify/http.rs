//! HTTP/1.x requests and responses, and the HTTP/2 prior-knowledge preface.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Http;

impl Dissector for Http {
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
fn is_request(d: &Prefix<'_>) -> bool {
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

/// The client connection preface of HTTP/2 over cleartext (h2c, gRPC).
fn is_h2_preface(d: &Prefix<'_>) -> bool {
    d.starts_with(b"PRI * HTTP/2.0\r\n")
}
