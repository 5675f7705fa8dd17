//! The per-flow state machine: payload prefixes in, one final verdict out.
//!
//! The kernel feeds it the first `PREFIX` bytes of each of the first
//! `MAX_SEGMENTS` payload segments per direction, in sequence order; `replay`
//! does the same from a capture. It keeps four bytes of state so it fits in
//! the flow-table value.
//!
//! Functions that return an `Option` are `#[inline(always)]`: a non-inlined
//! one puts Rust's niche-optimised `Option` layout into the object's BTF,
//! which the kernel rejects ("Invalid member bits_offset"), and the loader
//! then drops BTF for the whole object with a long warning.

pub mod bytes;
pub mod http;
pub mod tls;

use crate::wire::MAX_SEGMENTS;
use crate::{Encryption, Protocol, Reason, TlsVersion, Verdict};
pub use bytes::{Prefix, PrefixBuf};

/// Which end of the connection sent a segment. The client is the SYN
/// sender (or inferred, for flows first seen mid-stream).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client = 0,
    Server = 1,
}

/// Where the state machine stands between segments.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Nothing recognised yet: every segment is tried as an opening message.
    Start = 0,
    /// The client sent a ClientHello; the ServerHello names the version.
    AwaitServerHello = 1,
}

/// Classifier state: four bytes, `#[repr(C)]`, lives in the flow table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowClassifier {
    stage: u8,
    /// Text seen on some side: decides the give-up verdict.
    saw_text: u8,
    /// Segments inspected, per side.
    segs: [u8; 2],
}

impl FlowClassifier {
    /// The all-zero state (the kernel creates it with plain zero stores).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            stage: Stage::Start as u8,
            saw_text: 0,
            segs: [0, 0],
        }
    }

    /// Segments of `side` inspected so far.
    #[must_use]
    pub fn segments(&self, side: Side) -> u8 {
        match side {
            Side::Client => self.segs[0],
            Side::Server => self.segs[1],
        }
    }

    /// Whether `side` may still contribute a segment.
    #[must_use]
    pub fn wants(&self, side: Side) -> bool {
        self.segments(side) < MAX_SEGMENTS
    }

    /// Feeds the prefix of one payload segment. Returns the final verdict
    /// once there is one; after that the caller stops feeding.
    #[inline(always)]
    pub fn on_segment(&mut self, side: Side, data: &Prefix<'_>) -> Option<Verdict> {
        if data.is_empty() || !self.wants(side) {
            return None;
        }
        match side {
            Side::Client => self.segs[0] += 1,
            Side::Server => self.segs[1] += 1,
        }
        let verdict = if self.stage == Stage::AwaitServerHello as u8 {
            self.await_server_hello(side, data)
        } else {
            self.opening(side, data)
        };
        match verdict {
            Some(v) => Some(v),
            None if !self.wants(Side::Client) && !self.wants(Side::Server) => Some(self.give_up()),
            None => None,
        }
    }

    /// The best verdict for a flow that ends (FIN/RST, or the capture runs
    /// out) before a final one. `None` if it never carried payload.
    #[must_use]
    #[inline(always)]
    pub fn on_close(&self) -> Option<Verdict> {
        if self.segs[0] == 0 && self.segs[1] == 0 {
            return None;
        }
        Some(self.give_up())
    }

    #[inline(always)]
    fn give_up(&self) -> Verdict {
        if self.stage == Stage::AwaitServerHello as u8 {
            // A ClientHello with no ServerHello: a TLS client all the same.
            Verdict::new(Protocol::Tls, Encryption::Tls)
        } else if self.saw_text != 0 {
            // Readable bytes from an application we do not name: custom TCP
            // services without TLS are exactly what we must not miss.
            Verdict::plaintext(Protocol::Unknown)
        } else {
            Verdict::new(Protocol::Unknown, Encryption::Unknown)
        }
    }

    #[inline(always)]
    fn opening(&mut self, side: Side, d: &Prefix<'_>) -> Option<Verdict> {
        if let Some(rec) = tls::record(d) {
            return match rec {
                tls::Record::ClientHello if side == Side::Client => {
                    self.stage = Stage::AwaitServerHello as u8;
                    None
                }
                tls::Record::ServerHello(v) => Some(tls_verdict(v)),
                _ => Some(Verdict::new(Protocol::Tls, Encryption::Tls)),
            };
        }
        if http::is_h2_preface(d) {
            return Some(Verdict::plaintext(Protocol::Http2));
        }
        if http::is_request(d) || http::is_response(d) {
            return Some(Verdict::plaintext(Protocol::Http));
        }
        if d.starts_with(b"SSH-") {
            return Some(Verdict::new(Protocol::Ssh, Encryption::Encrypted));
        }
        if d.is_text(2) {
            self.saw_text = 1;
        }
        None
    }

    #[inline(always)]
    fn await_server_hello(&mut self, side: Side, d: &Prefix<'_>) -> Option<Verdict> {
        if side == Side::Client {
            return None;
        }
        Some(match tls::record(d) {
            Some(tls::Record::ServerHello(v)) => tls_verdict(v),
            _ => Verdict::new(Protocol::Tls, Encryption::Tls),
        })
    }
}

#[inline(always)]
fn tls_verdict(version: TlsVersion) -> Verdict {
    let mut v = Verdict::new(Protocol::Tls, Encryption::Tls);
    v.tls_version = version;
    if version.is_weak() {
        v = v.with_reason(Reason::WeakTls);
    }
    v
}

#[cfg(test)]
mod tests;
