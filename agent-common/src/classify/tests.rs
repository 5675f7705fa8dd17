//! The classifier on bytes captured from real clients and servers.
//!
//! Every payload here was recorded by `tests/fixtures/capture.py` (a
//! recording proxy between real programs on 127.0.0.1; see
//! `tests/fixtures/README.md` and `MANIFEST.txt`). Nothing is hand-typed:
//! a fixture is `<session>.<c2s|s2c>.<n>.bin`, the n-th read() in that
//! direction, and `<session>.order` is the order the proxy read them in.

use super::{FlowClassifier, PrefixBuf, Side};
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
        replay(
            include_str!(concat!("../../tests/fixtures/", $session, ".order")),
            &[$(($chunk, fixture!($session, $chunk))),+],
        )
    };
}

/// Feeds `segs` in order through a fresh classifier and returns the first
/// verdict, or `on_close()` if none came. The verdict must come on the last
/// segment given (or not at all): each test names the segment that decides.
fn classify(segs: &[(Side, &[u8])]) -> Option<Verdict> {
    let mut flow = FlowClassifier::new();
    let mut segs = segs.iter().enumerate().peekable();
    while let Some((i, &(side, data))) = segs.next() {
        let buf = PrefixBuf::new(data);
        if let Some(v) = flow.on_segment(side, &buf.prefix()) {
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
fn replay(order: &str, chunks: &[(&str, &[u8])]) -> Option<Verdict> {
    let mut real = order.split_whitespace();
    let mut segs = [(Side::Client, &[][..]); 8];
    assert!(chunks.len() <= segs.len(), "at most 8 chunks");
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

const fn tls(version: TlsVersion) -> Verdict {
    let mut v = Verdict::new(Protocol::Tls, Encryption::Tls);
    v.tls_version = version;
    v
}

const fn weak_tls(version: TlsVersion) -> Verdict {
    tls(version).with_reason(Reason::WeakTls)
}

// --- TLS 1.3 ---------------------------------------------------------------

#[test]
fn curl_tls13_handshake_is_tls_1_3() {
    let v = replay!("curl-7.88-tls13-s_server": "c2s.0", "s2c.0");
    assert_eq!(v, Some(tls(TlsVersion::Tls13)));
}

#[test]
fn curl_tls13_handshake_with_nginx_is_tls_1_3() {
    let v = replay!("curl-7.88-tls13-nginx-1.22": "c2s.0", "s2c.0");
    assert_eq!(v, Some(tls(TlsVersion::Tls13)));
}

#[test]
fn openssl_s_client_tls13_handshake_is_tls_1_3() {
    let v = replay!("openssl-3.0-s_client-tls13": "c2s.0", "s2c.0");
    assert_eq!(v, Some(tls(TlsVersion::Tls13)));
}

#[test]
fn tls13_server_hello_alone_names_the_version() {
    // A flow seen only from the server side: the ServerHello decides alone.
    let v = classify(&[(
        Side::Server,
        fixture!("curl-7.88-tls13-nginx-1.22", "s2c.0"),
    )]);
    assert_eq!(v, Some(tls(TlsVersion::Tls13)));
}

// --- TLS 1.2 ---------------------------------------------------------------

#[test]
fn tls12_server_hello_is_weak_free_1_2() {
    let v = replay!("curl-7.88-tls12-s_server": "c2s.0", "s2c.0");
    assert_eq!(v, Some(tls(TlsVersion::Tls12)));
    assert_eq!(v.map(|v| v.reason), Some(Reason::None));
}

#[test]
fn curl_tls12_handshake_with_nginx_alpn_is_tls_1_2() {
    // nginx answers ALPN (h2): one more extension before the list ends.
    let v = replay!("curl-7.88-tls12-nginx-1.22": "c2s.0", "s2c.0");
    assert_eq!(v, Some(tls(TlsVersion::Tls12)));
}

#[test]
fn openssl_s_client_tls12_handshake_is_tls_1_2() {
    let v = replay!("openssl-3.0-s_client-tls12": "c2s.0", "s2c.0");
    assert_eq!(v, Some(tls(TlsVersion::Tls12)));
}

// --- TLS 1.0 / 1.1 (OpenSSL at SECLEVEL=0) -----------------------------------

#[test]
fn tls10_is_weak_tls() {
    let v = replay!("openssl-3.0-s_client-tls10": "c2s.0", "s2c.0");
    assert_eq!(v, Some(weak_tls(TlsVersion::Tls10)));
}

#[test]
fn tls11_is_weak_tls() {
    let v = replay!("openssl-3.0-s_client-tls11": "c2s.0", "s2c.0");
    assert_eq!(v, Some(weak_tls(TlsVersion::Tls11)));
}

// --- TLS without a full handshake --------------------------------------------

#[test]
fn client_hello_then_close_is_tls() {
    // curl against a listener that never answers: no ServerHello, no version.
    let v = replay!("curl-7.88-tls13-sink": "c2s.0");
    assert_eq!(v, Some(tls(TlsVersion::Unknown)));
}

#[test]
fn client_hello_waits_for_the_server_hello() {
    // The client's second flight (change_cipher_spec) does not decide: only
    // the server's answer does.
    let mut flow = FlowClassifier::new();
    for (side, data) in [
        (Side::Client, fixture!("curl-7.88-tls13-s_server", "c2s.0")),
        (Side::Client, fixture!("curl-7.88-tls13-s_server", "c2s.1")),
    ] {
        assert_eq!(flow.on_segment(side, &PrefixBuf::new(data).prefix()), None);
    }
    let hello = PrefixBuf::new(fixture!("curl-7.88-tls13-s_server", "s2c.0"));
    assert_eq!(
        flow.on_segment(Side::Server, &hello.prefix()),
        Some(tls(TlsVersion::Tls13))
    );
}

#[test]
fn midstream_tls_application_data_is_tls_without_version() {
    let v = classify(&[(Side::Client, fixture!("curl-7.88-tls13-s_server", "c2s.2"))]);
    assert_eq!(v, Some(tls(TlsVersion::Unknown)));
}

#[test]
fn midstream_tls12_new_session_ticket_is_tls_without_version() {
    // A handshake record that is not a hello (type 4) still means TLS.
    let v = classify(&[(
        Side::Server,
        fixture!("openssl-3.0-s_client-tls12", "s2c.1"),
    )]);
    assert_eq!(v, Some(tls(TlsVersion::Unknown)));
}

#[test]
fn midstream_tls_alert_is_tls_without_version() {
    let v = classify(&[(
        Side::Client,
        fixture!("openssl-3.0-s_client-tls10", "c2s.2"),
    )]);
    assert_eq!(v, Some(tls(TlsVersion::Unknown)));
}

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

// --- SSH -----------------------------------------------------------------------

#[test]
fn ssh_banner_is_encrypted_ssh() {
    let v = replay!("openssh-9.2-banner-sink": "c2s.0");
    assert_eq!(v, Some(Verdict::new(Protocol::Ssh, Encryption::Encrypted)));
}

// --- Unknown protocols ---------------------------------------------------------

#[test]
fn printable_unknown_protocol_is_plaintext_unknown() {
    // A line-based custom service: nothing named, but readable. Both
    // segments are fed; the verdict comes from on_close().
    let v = replay!("bash-5.2-text-echo": "c2s.0", "s2c.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Unknown)));
}

#[test]
fn binary_unknown_is_unknown_after_budget() {
    // multiprocessing.connection: length-prefixed frames (authkey challenge,
    // then pickles). The verdict comes when both sides have spent their
    // four segments, on the server's fourth.
    let v = replay!("python-3.11-mpconn-echo":
        "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2", "c2s.3", "s2c.3");
    assert_eq!(
        v,
        Some(Verdict::new(Protocol::Unknown, Encryption::Unknown))
    );
}

#[test]
fn empty_flow_has_no_verdict_on_close() {
    // A connection that closes without payload (a port probe, a failed
    // client): empty segments are pure ACKs and are not counted.
    let mut flow = FlowClassifier::new();
    let empty = PrefixBuf::new(&[]);
    assert_eq!(flow.on_segment(Side::Client, &empty.prefix()), None);
    assert_eq!(flow.on_segment(Side::Server, &empty.prefix()), None);
    assert_eq!(flow.on_close(), None);
    assert_eq!(classify(&[]), None);
}
