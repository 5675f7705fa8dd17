//! Helpers for the classifier's tests, which run it on bytes captured
//! from real clients and servers: the core's in `tests.rs`, each
//! protocol's in its own file.
//!
//! Every payload was recorded by `tests/fixtures/capture.py` (a
//! recording proxy between real programs on 127.0.0.1; see
//! `tests/fixtures/README.md` and `MANIFEST.txt`). Nothing is hand-typed:
//! a fixture is `<session>.<c2s|s2c>.<n>.bin`, the n-th read() in that
//! direction, and `<session>.order` is the order the proxy read them in.

use super::{FlowClassifier, Side};
use crate::wire::MAX_SEGMENTS;
use crate::{Encryption, Protocol, Reason, TlsVersion, Verdict};

/// One captured chunk, by session and chunk name (`"c2s.0"`, `"s2c.1"`...).
macro_rules! fixture {
    ($session:literal, $chunk:literal) => {
        include_bytes!(concat!(
            "../../tests/fixtures/",
            $session,
            ".",
            $chunk,
            ".bin"
        ))
        .as_slice()
    };
}

/// Replays the first chunks of a captured session, checked against the
/// order the proxy saw them in.
macro_rules! replay {
    ($session:literal: $($chunk:literal),+ $(,)?) => {
        $crate::classify::testing::replay(
            include_str!(concat!("../../tests/fixtures/", $session, ".order")),
            &[$(($chunk, fixture!($session, $chunk))),+],
        )
    };
}

/// Feeds `segs` in order through a fresh classifier and returns the first
/// verdict, or `on_close()` if none came. The verdict must come on the last
/// segment given (or not at all): each test names the segment that decides.
pub(super) fn classify(segs: &[(Side, &[u8])]) -> Option<Verdict> {
    classify_from(FlowClassifier::new(), segs)
}

/// `classify` for a flow first seen without its SYN.
pub(super) fn classify_midstream(segs: &[(Side, &[u8])]) -> Option<Verdict> {
    classify_from(FlowClassifier::new_midstream(), segs)
}

fn classify_from(mut flow: FlowClassifier, segs: &[(Side, &[u8])]) -> Option<Verdict> {
    let mut segs = segs.iter().enumerate().peekable();
    while let Some((i, &(side, data))) = segs.next() {
        if let Some(v) = flow.on_payload(side, data) {
            assert!(
                segs.peek().is_none(),
                "verdict {v:?} already at segment {i}; later segments are never fed"
            );
            return Some(v);
        }
    }
    flow.on_close()
}

/// `classify` for the leading chunks of a session, which must be named in
/// the order they crossed the proxy (`order` is the session's `.order`).
pub(super) fn replay(order: &str, chunks: &[(&str, &[u8])]) -> Option<Verdict> {
    let mut real = order.split_whitespace();
    let mut segs = [(Side::Client, &[][..]); 2 * MAX_SEGMENTS as usize];
    assert!(
        chunks.len() <= segs.len(),
        "at most 2 * MAX_SEGMENTS chunks"
    );
    for (slot, &(name, data)) in segs.iter_mut().zip(chunks) {
        assert_eq!(Some(name), real.next(), "chunks out of capture order");
        let side = match name.split('.').next() {
            Some("c2s") => Side::Client,
            Some("s2c") => Side::Server,
            _ => panic!("bad chunk name {name}"),
        };
        *slot = (side, data);
    }
    classify(segs.get(..chunks.len()).unwrap_or_default())
}

pub(super) const fn tls(version: TlsVersion) -> Verdict {
    let mut v = Verdict::new(Protocol::Tls, Encryption::Tls);
    v.tls_version = version;
    v
}

pub(super) const fn weak_tls(version: TlsVersion) -> Verdict {
    tls(version).with_reason(Reason::WeakTls)
}

pub(super) const fn upgraded(protocol: Protocol, version: TlsVersion) -> Verdict {
    let mut v = Verdict::new(protocol, Encryption::Tls).with_reason(Reason::StarttlsUpgraded);
    v.tls_version = version;
    v
}

pub(super) const fn refused(protocol: Protocol) -> Verdict {
    Verdict::plaintext(protocol).with_reason(Reason::StarttlsRefused)
}

pub(super) const fn credentials(protocol: Protocol) -> Verdict {
    Verdict::plaintext(protocol).with_reason(Reason::CleartextCredentials)
}

/// A plaintext verdict for a flow named from mid-session bytes.
pub(super) const fn midstream(protocol: Protocol) -> Verdict {
    Verdict::plaintext(protocol).with_reason(Reason::Midstream)
}
