//! The hello parser on hellos captured from real clients and servers
//! (agent-common/tests/fixtures, recorded by its capture.py).

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../agent-common/tests/fixtures/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn client(name: &str) -> ClientHello {
    match parse(&fixture(name)) {
        Some(Hello::Client(c)) => c,
        other => panic!("{name}: {other:?}"),
    }
}

fn server(name: &str) -> ServerHello {
    match parse(&fixture(name)) {
        Some(Hello::Server(s)) => s,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn curl_by_name_sends_sni_and_offers_h2_then_http11() {
    let c = client("curl-7.88-sni-tls12-nginx-1.22.c2s.0");
    assert_eq!(c.sni.as_deref(), Some("db.example.internal"));
    assert_eq!(c.alpn, ["h2", "http/1.1"]);
    assert_eq!(c.legacy_version, 0x0303);
    assert!(
        c.versions.is_empty(),
        "--tls-max 1.2 sends no supported_versions"
    );
}

#[test]
fn nginx_tls12_server_hello_selects_h2_and_a_cipher() {
    let s = server("curl-7.88-sni-tls12-nginx-1.22.s2c.0");
    assert_eq!(s.alpn.as_deref(), Some("h2"));
    assert_eq!(s.version(), TlsVersion::Tls12);
    assert_eq!(s.selected_version, None);
    assert_eq!(
        cipher_name(s.cipher),
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
    );
}

#[test]
fn s_client_with_one_alpn_offer_names_http2_even_when_tls13_hides_the_choice() {
    let c = client("openssl-3.0-s_client-sni-alpn-h2.c2s.0");
    assert_eq!(c.sni.as_deref(), Some("api.example.internal"));
    assert_eq!(c.alpn, ["h2"]);
    assert_eq!(c.versions, [0x0304]);
    let s = server("openssl-3.0-s_client-sni-alpn-h2.s2c.0");
    assert_eq!(s.version(), TlsVersion::Tls13);
    assert_eq!(s.alpn, None, "TLS 1.3 sends the choice encrypted");
    assert_eq!(cipher_name(s.cipher), "TLS_AES_256_GCM_SHA384");
    let mut meta = TlsMeta::default();
    meta.add(Hello::Client(c));
    meta.add(Hello::Server(s));
    assert_eq!(meta.alpn(), Some("h2"));
    assert_eq!(meta.inner_protocol(), Some(Protocol::Http2));
}

#[test]
fn an_ip_literal_url_sends_no_sni_and_two_offers_name_no_inner_protocol() {
    let c = client("curl-7.88-tls13-s_server.c2s.0");
    assert_eq!(c.sni, None);
    assert_eq!(c.alpn, ["h2", "http/1.1"]);
    assert_eq!(c.versions, [0x0304]);
    let mut meta = TlsMeta::default();
    meta.add(Hello::Client(c));
    meta.add(Hello::Server(server("curl-7.88-tls13-s_server.s2c.0")));
    assert_eq!(meta.alpn(), None);
    assert_eq!(meta.inner_protocol(), None);
    assert_eq!(meta.version, TlsVersion::Tls13);
}

#[test]
fn legacy_versions_come_from_the_legacy_field() {
    for (name, want) in [
        ("openssl-3.0-s_client-tls10.s2c.0", TlsVersion::Tls10),
        ("openssl-3.0-s_client-tls11.s2c.0", TlsVersion::Tls11),
        ("openssl-3.0-s_client-tls12.s2c.0", TlsVersion::Tls12),
    ] {
        assert_eq!(server(name).version(), want, "{name}");
    }
}

#[test]
fn refine_fills_a_missing_version_and_flags_weak_tls() {
    let mut meta = TlsMeta::default();
    meta.add(Hello::Server(server("openssl-3.0-s_client-tls11.s2c.0")));
    let mut v = Verdict::new(Protocol::Tls, agent_common::Encryption::Tls);
    meta.refine(&mut v);
    assert_eq!(v.tls_version, TlsVersion::Tls11);
    assert_eq!(v.reason, Reason::WeakTls);
    // A version the kernel read stays; plaintext verdicts are left alone.
    let mut v = Verdict::new(Protocol::Tls, agent_common::Encryption::Tls);
    v.tls_version = TlsVersion::Tls12;
    meta.refine(&mut v);
    assert_eq!(v.tls_version, TlsVersion::Tls12);
    let mut v = Verdict::plaintext(Protocol::Http);
    meta.refine(&mut v);
    assert_eq!(v, Verdict::plaintext(Protocol::Http));
}

#[test]
fn a_hello_cut_anywhere_gives_what_was_whole_and_never_panics() {
    let full = fixture("curl-7.88-sni-tls12-nginx-1.22.c2s.0");
    let mut last_sni = None;
    for n in 0..=full.len() {
        let got = parse(&full[..n]);
        if let Some(Hello::Client(c)) = &got {
            // Once the SNI is whole it stays; nothing half-read appears.
            if let Some(s) = &c.sni {
                assert_eq!(s, "db.example.internal", "cut at {n}");
            }
            if last_sni.is_some() {
                assert!(c.sni.is_some(), "cut at {n}");
            }
            last_sni.clone_from(&c.sni);
        }
    }
    assert!(last_sni.is_some());
    // Every byte flipped, one at a time: still no panic.
    for i in 0..full.len() {
        let mut b = full.clone();
        b[i] ^= 0xff;
        let _ = parse(&b);
    }
}

#[test]
fn not_a_hello_is_none() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), None);
    assert_eq!(parse(&fixture("curl-7.88-tls13-s_server.c2s.2")), None);
    assert_eq!(parse(&[]), None);
}

#[test]
fn binary_or_spaced_names_are_dropped() {
    assert_eq!(
        host_name(b"db.example.internal"),
        Some("db.example.internal".into())
    );
    assert_eq!(host_name(b"DB.Example"), Some("db.example".into()));
    assert_eq!(host_name(b"bad name"), None);
    assert_eq!(host_name(b"\x00\x01"), None);
    assert_eq!(host_name(&[b'a'; 254]), None);
    assert!(is_grease(0x0a0a) && is_grease(0xfafa) && !is_grease(0x0304));
}

#[test]
fn tds_8_alpn_names_sql_server() {
    // TDS 8.0 ("strict") connections start with TLS offering `tds/8.0`.
    assert_eq!(alpn_protocol("tds/8.0"), Some(Protocol::Mssql));
}
