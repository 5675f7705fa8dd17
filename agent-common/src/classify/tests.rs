//! The classifier on bytes captured from real clients and servers.
//!
//! Every payload here was recorded by `tests/fixtures/capture.py` (a
//! recording proxy between real programs on 127.0.0.1; see
//! `tests/fixtures/README.md` and `MANIFEST.txt`). Nothing is hand-typed:
//! a fixture is `<session>.<c2s|s2c>.<n>.bin`, the n-th read() in that
//! direction, and `<session>.order` is the order the proxy read them in.

use super::{FlowClassifier, PrefixBuf, Side};
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
    classify_from(FlowClassifier::new(), segs)
}

/// `classify` for a flow first seen without its SYN.
fn classify_midstream(segs: &[(Side, &[u8])]) -> Option<Verdict> {
    classify_from(FlowClassifier::new_midstream(), segs)
}

fn classify_from(mut flow: FlowClassifier, segs: &[(Side, &[u8])]) -> Option<Verdict> {
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

// --- PostgreSQL (psql 15 against PostgreSQL 15) --------------------------------

const fn upgraded(protocol: Protocol, version: TlsVersion) -> Verdict {
    let mut v = Verdict::new(protocol, Encryption::Tls).with_reason(Reason::StarttlsUpgraded);
    v.tls_version = version;
    v
}

#[test]
fn psql_startup_without_tls_is_plaintext_postgres() {
    // StartupMessage, then the server's SASL (SCRAM) request decides.
    let v = replay!("psql-15-scram-sslmode-disable": "c2s.0", "s2c.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Postgres)));
}

#[test]
fn psql_sslrequest_answered_s_is_postgres_over_tls_1_3() {
    // SSLRequest, `S`, ClientHello, ServerHello: the version comes from TLS.
    let v = replay!("psql-15-sslmode-require": "c2s.0", "s2c.0", "c2s.1", "s2c.1");
    assert_eq!(v, Some(upgraded(Protocol::Postgres, TlsVersion::Tls13)));
}

#[test]
fn psql_sslrequest_answered_s_without_server_hello_is_still_tls() {
    let v = replay!("psql-15-sslmode-require": "c2s.0", "s2c.0");
    assert_eq!(v, Some(upgraded(Protocol::Postgres, TlsVersion::Unknown)));
}

#[test]
fn psql_sslrequest_answered_n_is_plaintext_starttls_refused() {
    // sslmode=prefer against ssl=off: `N`, then the StartupMessage in the
    // clear; the server's authentication request decides.
    let v = replay!("psql-15-sslmode-prefer-refused": "c2s.0", "s2c.0", "c2s.1", "s2c.1");
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Postgres).with_reason(Reason::StarttlsRefused))
    );
}

#[test]
fn postgres_cleartext_password_request_is_cleartext_credentials() {
    // pg_hba `password`: AuthenticationCleartextPassword (R, 8, 3).
    let v = replay!("psql-15-cleartext-password": "c2s.0", "s2c.0");
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Postgres).with_reason(Reason::CleartextCredentials))
    );
}

#[test]
fn postgres_startup_alone_is_plaintext_postgres_on_close() {
    let v = replay!("psql-15-scram-sslmode-disable": "c2s.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Postgres)));
}

// --- MySQL / MariaDB (mariadb 10.11 client and server) --------------------------

#[test]
fn mariadb_ssl_request_is_mysql_over_tls_1_3() {
    // Greeting, the 32-byte SSLRequest with CLIENT_SSL, ClientHello,
    // ServerHello.
    let v = replay!("mariadb-10.11-ssl": "s2c.0", "c2s.0", "c2s.1", "s2c.1");
    assert_eq!(v, Some(upgraded(Protocol::Mysql, TlsVersion::Tls13)));
}

#[test]
fn mariadb_handshake_response_without_ssl_is_plaintext_mysql() {
    // --skip-ssl: a full HandshakeResponse (user name in the clear); the
    // server's OK (no switch to mysql_clear_password) decides.
    let v = replay!("mariadb-10.11-skip-ssl": "s2c.0", "c2s.0", "s2c.1");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Mysql)));
}

#[test]
fn mariadb_greeting_alone_is_plaintext_mysql_on_close() {
    let v = replay!("mariadb-10.11-skip-ssl": "s2c.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Mysql)));
}

// --- Redis (redis-cli 7.0 against redis-server 7.0) ------------------------------

#[test]
fn redis_resp_command_is_plaintext_redis() {
    let v = replay!("redis-cli-7.0-set": "c2s.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Redis)));
}

#[test]
fn redis_auth_is_cleartext_credentials() {
    // redis-cli --user app --pass ...: `AUTH app app-pw` first.
    let v = replay!("redis-cli-7.0-auth": "c2s.0");
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Redis).with_reason(Reason::CleartextCredentials))
    );
}

#[test]
fn redis_resp3_client_auth_is_cleartext_credentials() {
    let v = replay!("redis-cli-7.0-resp3-auth": "c2s.0");
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Redis).with_reason(Reason::CleartextCredentials))
    );
}

#[test]
fn redis_inline_ping_is_plaintext_redis() {
    let v = replay!("redis-cli-7.0-inline-ping": "c2s.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Redis)));
}

#[test]
fn redis_reply_seen_first_midstream_is_redis_midstream() {
    // `+OK\r\n` from the server of a flow picked up mid-stream: a reply,
    // so Redis (a POP3 greeting only comes first on a fresh flow).
    let v = classify_midstream(&[(Side::Server, fixture!("redis-cli-7.0-set", "s2c.0"))]);
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Redis).with_reason(Reason::Midstream))
    );
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

// --- IMAP / POP3 (curl 7.88 against dovecot 2.3) ------------------------------

#[test]
fn imap_authenticate_plain_is_cleartext_credentials() {
    // Greeting, CAPABILITY, then `A002 AUTHENTICATE PLAIN <base64>`.
    let v = replay!("curl-7.88-imap-login-dovecot-2.3": "s2c.0", "c2s.0", "s2c.1", "c2s.1");
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Imap).with_reason(Reason::CleartextCredentials))
    );
}

#[test]
fn imap_starttls_accepted_is_imap_over_tls_1_3() {
    let v = replay!("curl-7.88-imap-starttls-dovecot-2.3":
        "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2", "s2c.3");
    assert_eq!(v, Some(upgraded(Protocol::Imap, TlsVersion::Tls13)));
}

#[test]
fn pop3_auth_plain_is_cleartext_credentials() {
    let v = replay!("curl-7.88-pop3-login-dovecot-2.3": "s2c.0", "c2s.0", "s2c.1", "c2s.1");
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Pop3).with_reason(Reason::CleartextCredentials))
    );
}

#[test]
fn pop3_stls_accepted_is_pop3_over_tls_1_3() {
    let v = replay!("curl-7.88-pop3-starttls-dovecot-2.3":
        "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2", "s2c.3");
    assert_eq!(v, Some(upgraded(Protocol::Pop3, TlsVersion::Tls13)));
}

#[test]
fn pop3_greeting_and_capabilities_alone_are_plaintext_pop3() {
    let v = replay!("curl-7.88-pop3-login-dovecot-2.3": "s2c.0", "c2s.0", "s2c.1");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Pop3)));
}

// --- FTP (curl 7.88 against vsftpd 3.0) -------------------------------------------

#[test]
fn ftp_user_in_the_clear_is_cleartext_credentials() {
    // Even `USER anonymous`: the password follows in the clear.
    let v = replay!("curl-7.88-ftp-anonymous-vsftpd-3.0": "s2c.0", "c2s.0");
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Ftp).with_reason(Reason::CleartextCredentials))
    );
}

#[test]
fn ftp_auth_tls_accepted_is_ftp_over_tls_1_3() {
    // curl sends `AUTH SSL`; vsftpd answers 234, then a TLS 1.3 handshake.
    let v =
        replay!("curl-7.88-ftp-auth-tls-vsftpd-3.0": "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2");
    assert_eq!(v, Some(upgraded(Protocol::Ftp, TlsVersion::Tls13)));
}

#[test]
fn ftp_greeting_alone_is_plaintext_ftp() {
    let v = replay!("curl-7.88-ftp-anonymous-vsftpd-3.0": "s2c.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Ftp)));
}

// --- MQTT (mosquitto_pub 2.0 against mosquitto 2.0) --------------------------------

#[test]
fn mqtt_connect_without_credentials_is_plaintext_mqtt() {
    let v = replay!("mosquitto_pub-2.0-anonymous": "c2s.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Mqtt)));
}

#[test]
fn mqtt_connect_with_user_and_password_is_cleartext_credentials() {
    let v = replay!("mosquitto_pub-2.0-userpass": "c2s.0");
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Mqtt).with_reason(Reason::CleartextCredentials))
    );
}

// --- LDAP (ldapwhoami 2.5 against slapd 2.5) ---------------------------------------

#[test]
fn ldap_simple_bind_is_cleartext_credentials() {
    let v = replay!("ldapwhoami-2.5-simple-bind": "c2s.0");
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Ldap).with_reason(Reason::CleartextCredentials))
    );
}

#[test]
fn ldap_starttls_accepted_is_ldap_over_tls() {
    // ExtendedRequest (StartTLS OID), ExtendedResponse success, hellos.
    // GnuTLS sends its P-256 key share before supported_versions, which
    // then starts at byte 154, past the 128-byte prefix: TLS 1.3 on the
    // wire, version unknown to us.
    let v = replay!("ldapwhoami-2.5-starttls": "c2s.0", "s2c.0", "c2s.1", "s2c.1");
    assert_eq!(v, Some(upgraded(Protocol::Ldap, TlsVersion::Unknown)));
}

#[test]
fn ldap_bind_response_seen_first_is_ldap_midstream() {
    let v = classify_midstream(&[(
        Side::Server,
        fixture!("ldapwhoami-2.5-simple-bind", "s2c.0"),
    )]);
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Ldap).with_reason(Reason::Midstream))
    );
}

// --- memcached (memcstat 1.1 against memcached 1.6) --------------------------------

#[test]
fn memcached_text_command_is_plaintext_memcached() {
    // `version\r\n`.
    let v = replay!("memcstat-1.1-text": "c2s.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Memcached)));
}

#[test]
fn memcached_binary_request_is_plaintext_memcached() {
    // Magic 0x80, opcode VERSION.
    let v = replay!("memcstat-1.1-binary": "c2s.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Memcached)));
}

#[test]
fn memcached_binary_response_seen_first_is_memcached_midstream() {
    let v = classify_midstream(&[(Side::Server, fixture!("memcstat-1.1-binary", "s2c.0"))]);
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Memcached).with_reason(Reason::Midstream))
    );
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

// --- STARTTLS refused (openssl s_client -starttls asks whether or not the
// server offers it, and starts its handshake whatever the answer) ----------

const fn refused(protocol: Protocol) -> Verdict {
    Verdict::plaintext(protocol).with_reason(Reason::StarttlsRefused)
}

const fn credentials(protocol: Protocol) -> Verdict {
    Verdict::plaintext(protocol).with_reason(Reason::CleartextCredentials)
}

#[test]
fn imap_starttls_refused_then_client_hello_is_plaintext_starttls_refused() {
    // `. BAD TLS support isn't enabled.`, s_client's ClientHello anyway,
    // dovecot's `* BAD` to it: no TLS ever ran.
    let v = replay!("openssl-3.0-s_client-imap-starttls-refused-dovecot-2.3":
        "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2", "s2c.3");
    assert_eq!(v, Some(refused(Protocol::Imap)));
}

#[test]
fn pop3_stls_refused_then_client_hello_is_plaintext_starttls_refused() {
    let v = replay!("openssl-3.0-s_client-pop3-stls-refused-dovecot-2.3":
        "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2");
    assert_eq!(v, Some(refused(Protocol::Pop3)));
}

#[test]
fn ftp_auth_tls_refused_then_client_hello_is_plaintext_starttls_refused() {
    // vsftpd with ssl_enable=NO answers AUTH TLS `530`.
    let v = replay!("openssl-3.0-s_client-ftp-auth-tls-refused-vsftpd-3.0":
        "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2");
    assert_eq!(v, Some(refused(Protocol::Ftp)));
}

#[test]
fn smtp_starttls_refused_then_client_hello_is_plaintext_starttls_refused() {
    // aiosmtpd without a TLS context: `454 TLS not available`.
    let v = replay!("openssl-3.0-s_client-smtp-starttls-refused-aiosmtpd-1.4":
        "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2", "s2c.3");
    assert_eq!(v, Some(refused(Protocol::Smtp)));
}

#[test]
fn ftp_auth_refused_then_user_in_the_clear_is_cleartext_credentials() {
    // curl --ssl (TLS if possible): AUTH SSL and AUTH TLS refused, then
    // USER/PASS in the clear; the credentials outrank the refusal.
    let v = replay!("curl-7.88-ftp-ssl-try-refused-vsftpd-3.0":
        "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2");
    assert_eq!(v, Some(credentials(Protocol::Ftp)));
}

// --- STARTTLS not offered: the client never asks ---------------------------

#[test]
fn imap_without_starttls_offered_login_is_cleartext_credentials() {
    // dovecot with ssl = no; curl --ssl does not ask when CAPABILITY lacks it.
    let v = replay!("curl-7.88-imap-ssl-try-not-offered-dovecot-2.3": "s2c.0", "c2s.0", "s2c.1", "c2s.1");
    assert_eq!(v, Some(credentials(Protocol::Imap)));
}

#[test]
fn pop3_without_stls_offered_login_is_cleartext_credentials() {
    let v = replay!("curl-7.88-pop3-ssl-try-not-offered-dovecot-2.3": "s2c.0", "c2s.0", "s2c.1", "c2s.1");
    assert_eq!(v, Some(credentials(Protocol::Pop3)));
}

// --- SMTP (curl 7.88, swaks, s_client against aiosmtpd 1.4) ------------------
// aiosmtpd writes each EHLO line on its own: when the proxy reads them one
// by one, the server's six segments are spent before it answers STARTTLS.

#[test]
fn smtp_starttls_accepted_is_smtp_over_tls_version_past_the_budget() {
    // The `220 Ready` and the ServerHello come after the server's sixth
    // segment: the client's ClientHello after STARTTLS decides TLS, and
    // the version stays unknown.
    let v = replay!("curl-7.88-smtp-starttls-aiosmtpd-1.4":
        "s2c.0", "c2s.0", "s2c.1", "s2c.2", "s2c.3", "s2c.4", "s2c.5",
        "c2s.1", "c2s.2", "c2s.3", "c2s.4", "c2s.5");
    assert_eq!(v, Some(upgraded(Protocol::Smtp, TlsVersion::Unknown)));
}

#[test]
fn smtp_starttls_offered_but_unused_is_plaintext_smtp_without_reason() {
    // The EHLO reply offers STARTTLS; curl without --ssl sends MAIL FROM.
    let v = replay!("curl-7.88-smtp-starttls-offered-unused-aiosmtpd-1.4":
        "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2", "s2c.3", "c2s.3",
        "s2c.4", "c2s.4", "c2s.5", "s2c.5");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Smtp)));
}

#[test]
fn smtp_starttls_not_offered_is_plaintext_smtp_without_reason() {
    // curl --ssl does not ask when the EHLO reply lacks STARTTLS.
    let v = replay!("curl-7.88-smtp-ssl-try-not-offered-aiosmtpd-1.4":
        "s2c.0", "c2s.0", "s2c.1", "s2c.2", "s2c.3", "s2c.4", "s2c.5",
        "c2s.1", "c2s.2", "c2s.3", "c2s.4", "c2s.5");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Smtp)));
}

#[test]
fn smtp_auth_plain_is_cleartext_credentials() {
    let v = replay!("curl-7.88-smtp-auth-plain-aiosmtpd-1.4": "s2c.0", "c2s.0", "s2c.1", "c2s.1");
    assert_eq!(v, Some(credentials(Protocol::Smtp)));
}

#[test]
fn smtp_starttls_refused_then_mail_in_the_clear_is_starttls_refused() {
    // swaks --tls-optional: STARTTLS offered, answered 454, and the mail
    // goes on in the clear: the downgrade the reason is for.
    let v = replay!("swaks-20201014-smtp-tls-optional-refused-aiosmtpd-1.4":
        "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2", "s2c.3", "c2s.3",
        "s2c.4", "c2s.4", "s2c.5", "c2s.5");
    assert_eq!(v, Some(refused(Protocol::Smtp)));
}

#[test]
fn smtp_starttls_unanswered_within_the_budget_then_close_is_starttls_refused() {
    // swaks --tls: the 454 comes after the server's sixth segment, then
    // swaks hangs up. STARTTLS asked, no TLS followed.
    let v = replay!("swaks-20201014-smtp-tls-required-refused-aiosmtpd-1.4":
        "s2c.0", "c2s.0", "s2c.1", "s2c.2", "s2c.3", "s2c.4", "s2c.5", "c2s.1");
    assert_eq!(v, Some(refused(Protocol::Smtp)));
}

// --- DNS over TCP (dig 9.18 +tcp against dnsmasq 2.90) -----------------------

#[test]
fn dig_tcp_query_is_plaintext_dns() {
    let v = replay!("dig-9.18-tcp-dnsmasq-2.90": "c2s.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Dns)));
}

#[test]
fn dns_tcp_answer_seen_first_is_dns_midstream() {
    let v = classify_midstream(&[(Side::Server, fixture!("dig-9.18-tcp-dnsmasq-2.90", "s2c.0"))]);
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Dns).with_reason(Reason::Midstream))
    );
}

// --- NATS (nats-py 2.16 against nats-server 2.9) -------------------------------

#[test]
fn nats_server_info_is_plaintext_nats() {
    let v = replay!("nats-py-2.16-anonymous-nats-server-2.9": "s2c.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Nats)));
}

#[test]
fn nats_client_connect_seen_first_is_plaintext_nats() {
    // `CONNECT {...}`: NATS, not an HTTP CONNECT.
    let v = classify(&[(
        Side::Client,
        fixture!("nats-py-2.16-anonymous-nats-server-2.9", "c2s.0"),
    )]);
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Nats)));
}

// --- AMQP 0-9-1 (pika 1.4 against rabbitmq-server 3.10) ------------------------

#[test]
fn amqp_protocol_header_is_plaintext_amqp() {
    let v = replay!("pika-1.4-publish-rabbitmq-3.10": "c2s.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Amqp)));
}

#[test]
fn amqp_connection_start_seen_first_is_amqp_midstream() {
    let v = classify_midstream(&[(
        Side::Server,
        fixture!("pika-1.4-publish-rabbitmq-3.10", "s2c.0"),
    )]);
    assert_eq!(
        v,
        Some(Verdict::plaintext(Protocol::Amqp).with_reason(Reason::Midstream))
    );
}

// --- Kafka and MongoDB: real clients' opening requests (no broker/server in
// Debian; the fixtures' server is a silent listener) -----------------------------

#[test]
fn librdkafka_api_versions_request_is_plaintext_kafka() {
    let v = replay!("confluent-kafka-2.16.1-librdkafka-2.16.0-sink": "c2s.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Kafka)));
}

#[test]
fn pymongo_op_msg_hello_is_plaintext_mongodb() {
    // pymongo 4.20 opens with OP_MSG (2013) `hello` even without a
    // declared server API; no current driver here sends OP_QUERY.
    let v = replay!("pymongo-4.20-hello-sink": "c2s.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Mongodb)));
}

#[test]
fn pymongo_op_msg_hello_with_server_api_is_plaintext_mongodb() {
    let v = replay!("pymongo-4.20-server-api-sink": "c2s.0");
    assert_eq!(v, Some(Verdict::plaintext(Protocol::Mongodb)));
}
