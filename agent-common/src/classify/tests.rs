//! The core's behaviour on captured bytes: TLS records in every stage,
//! unknown protocols, flows first seen mid-stream, the segment budget.
//! Each protocol's tests are in its own file; the helpers in `testing.rs`.

use super::testing::{classify, classify_midstream, tls, weak_tls};
use super::{FlowClassifier, PrefixBuf, Side};
use crate::wire::MAX_SEGMENTS;
use crate::{Encryption, Protocol, Reason, TlsVersion, Verdict};

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
fn midstream_inside_a_tls_record_is_tls_midstream() {
    // vsftpd's TLS 1.3 records from byte 140: the tail of one record,
    // then an application-data header at offset 20.
    let seg = &fixture!("curl-7.88-ftp-auth-tls-vsftpd-3.0", "s2c.3")[140..];
    let v = classify_midstream(&[(Side::Server, seg)]);
    assert_eq!(
        v,
        Some(tls(TlsVersion::Unknown).with_reason(Reason::Midstream))
    );
    // From the SYN on, a flow never starts inside a record: no guess.
    let v = classify(&[(Side::Server, seg)]);
    assert_ne!(v.map(|v| v.encryption), Some(Encryption::Tls));
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

// --- Flows first seen mid-stream ---------------------------------------------

#[test]
fn midstream_flow_starting_with_a_request_has_no_midstream_reason() {
    let v = classify_midstream(&[(Side::Client, fixture!("curl-7.88-http-nginx-1.22", "c2s.0"))]);
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Http)));
}

#[test]
fn midstream_flow_starting_with_a_response_is_midstream() {
    let v = classify_midstream(&[(Side::Server, fixture!("curl-7.88-http-nginx-1.22", "s2c.0"))]);
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Http).with_reason(Reason::Midstream))
    );
}

#[test]
fn midstream_flow_starting_with_a_client_hello_has_no_midstream_reason() {
    let v = classify_midstream(&[
        (
            Side::Client,
            fixture!("curl-7.88-tls13-nginx-1.22", "c2s.0"),
        ),
        (
            Side::Server,
            fixture!("curl-7.88-tls13-nginx-1.22", "s2c.0"),
        ),
    ]);
    assert_eq!(v, Some(tls(TlsVersion::Tls13)));
}

#[test]
fn midstream_tls_application_data_is_midstream() {
    let v = classify_midstream(&[(Side::Client, fixture!("curl-7.88-tls13-s_server", "c2s.2"))]);
    assert_eq!(
        v,
        Some(tls(TlsVersion::Unknown).with_reason(Reason::Midstream))
    );
}

#[test]
fn midstream_postgres_startup_has_no_midstream_reason() {
    let v = classify_midstream(&[
        (
            Side::Client,
            fixture!("psql-15-cleartext-password", "c2s.0"),
        ),
        (
            Side::Server,
            fixture!("psql-15-cleartext-password", "s2c.0"),
        ),
    ]);
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Postgres).with_reason(Reason::CleartextCredentials))
    );
}

#[test]
fn midstream_unknown_binary_is_unknown_midstream_on_close() {
    let v = classify_midstream(&[(Side::Client, fixture!("python-3.11-mpconn-echo", "c2s.1"))]);
    assert_eq!(
        v,
        Some(Verdict::new(Protocol::Unknown, Encryption::Unknown).with_reason(Reason::Midstream))
    );
}

#[test]
fn classifier_state_words_match_the_struct() {
    // The kernel stores `to_words()` in place of the struct: same bytes.
    for c in [FlowClassifier::new(), FlowClassifier::new_midstream()] {
        let w = c.to_words();
        assert_eq!(
            core::mem::size_of_val(&w),
            core::mem::size_of::<FlowClassifier>()
        );
        // SAFETY: both are 8 plain bytes.
        let back: FlowClassifier = unsafe { core::mem::transmute(w) };
        assert_eq!(back, c);
    }
    assert_eq!(FlowClassifier::new().to_words(), [0, 0]);
}

/// Feeds the same chunk `n` times from `side`; the verdict if one came.
fn feed(flow: &mut FlowClassifier, side: Side, chunk: &[u8], n: u8) -> Option<Verdict> {
    let buf = PrefixBuf::new(chunk);
    (0..n).find_map(|_| flow.on_segment(side, &buf.prefix()))
}

// Segment counting, not signatures: any bytes that decide nothing will do.
const UNDECIDED: &[u8] = &[0x00, 0x9f, 0x13, 0x77, 0xe2, 0x01, 0x88, 0x42];

#[test]
fn one_way_stream_is_decided_when_its_sender_runs_out_of_segments() {
    for side in [Side::Client, Side::Server] {
        let mut flow = FlowClassifier::new();
        assert_eq!(feed(&mut flow, side, UNDECIDED, MAX_SEGMENTS - 1), None);
        let v = feed(&mut flow, side, UNDECIDED, 1).expect("decided without waiting for a close");
        assert_eq!(v.encryption, Encryption::Unknown, "{side:?}");
    }
}

#[test]
fn a_peer_that_has_answered_may_still_decide_after_the_other_side_runs_out() {
    let mut flow = FlowClassifier::new();
    assert_eq!(feed(&mut flow, Side::Server, UNDECIDED, 1), None);
    assert_eq!(feed(&mut flow, Side::Client, UNDECIDED, MAX_SEGMENTS), None);
    assert!(flow.wants(Side::Server));
}

// --- Stages (the kernel's split of a segment, see mod.rs) -------------------

/// The family stages a segment visits, in order, and its final route.
fn stages_visited(flow: &mut FlowClassifier, side: Side, data: &[u8]) -> ([u8; 40], usize) {
    let buf = PrefixBuf::new(data);
    let d = buf.prefix();
    let (mut v, mut route) = flow.begin(side, &d);
    let (mut seen, mut n) = ([0u8; 40], 0);
    while route.stage != 0 {
        seen[n] = route.stage;
        n += 1;
        (v, route) = flow.stage(route.stage, side, &d, route);
    }
    let _ = flow.end(side, v, route);
    (seen, n)
}

#[test]
fn a_search_tries_every_familys_openings_then_every_familys_midstream() {
    let mut flow = FlowClassifier::new();
    let (seen, n) = stages_visited(&mut flow, Side::Client, b"\x00\x01\x02\x03 nobody's");
    let families = super::STAGES;
    assert_eq!(n, 2 * usize::from(families), "{:?}", &seen[..n]);
    for (i, stage) in seen[..n].iter().enumerate() {
        assert_eq!(*stage, (i as u8 % families) + 1, "{:?}", &seen[..n]);
    }
}

#[test]
fn a_search_stops_at_the_family_that_decides() {
    let mut flow = FlowClassifier::new();
    let (seen, n) = stages_visited(&mut flow, Side::Client, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(&seen[..n], &[1], "HTTP is in the first family");
}

#[test]
fn a_claimed_flow_goes_straight_to_its_dissectors_family() {
    // PostgreSQL's SSLRequest moves the flow to a step of the `databases`
    // family; the server's answer goes there alone.
    let databases = super::STAGE_NAMES
        .iter()
        .position(|f| *f == "databases")
        .expect("a databases family") as u8
        + 1;
    let mut flow = FlowClassifier::new();
    let (seen, n) = stages_visited(
        &mut flow,
        Side::Client,
        fixture!("psql-15-sslmode-require", "c2s.0"),
    );
    assert_eq!(*seen[..n].last().expect("searched"), databases);
    let (seen, n) = stages_visited(&mut flow, Side::Server, b"N");
    assert_eq!(&seen[..n], &[databases]);
}
