//! Whether a TLS flow's client authenticated with a certificate (mutual
//! TLS), read passively from the handshake (README "Mutual TLS").
//!
//! The kernel exports the head of the client's flight after the ServerHello
//! (`wire::HELLO_KIND_CLIENT_FLIGHT`, its first `FLIGHT_MAX` bytes past a
//! lone ChangeCipherSpec):
//!
//! - TLS ≤ 1.2, in clear: a server that asks (CertificateRequest) gets a
//!   Certificate message first, empty when the client has none; a server
//!   that does not ask gets the ClientKeyExchange first. Exact.
//! - TLS 1.3, encrypted: the length of the client's first encrypted record.
//!   Without a certificate it is the Finished (4 + hash + 1 + tag bytes: 69
//!   with SHA-384 and a 16-byte tag), or an empty Certificate (25) when the
//!   server asked; with one it is the Certificate record, which holds a
//!   whole X.509 certificate (hundreds of bytes). A record of
//!   `MIN_CERT_RECORD` bytes or more is `mutual`; any other length is
//!   `unknown`, never a guess.
//!
//! Where the shape could mislead, the answer is `unknown`: a resumed
//! session (no certificates are exchanged; 0-RTT early data needs one, so
//! it is covered), raw public keys (RFC 7250: too small to count). After
//! a HelloRetryRequest both runtimes skip the client's second ClientHello
//! and export the flight after the next ServerHello
//! (`tls::retried_client_hello`). A TLS 1.3
//! client that pads its Finished past `MIN_CERT_RECORD` would read as
//! `mutual`: none of OpenSSL, curl, Python, Go or rustls pads.
//!
//! Service meshes whose ALPN says their proxies talk mutual TLS name the
//! mesh (`mesh`), and give `mutual` when the shape alone cannot tell.

use super::tls_hello::TlsMeta;
use agent_common::{Encryption, TlsVersion, Verdict};

/// How the client of a TLS flow authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientAuth {
    /// The client sent a certificate.
    Mutual,
    /// Only the server has a certificate: not asked, or the client had none.
    ServerOnly,
    /// Not visible (resumption, no flight seen, an unexpected shape).
    Unknown,
}

impl ClientAuth {
    pub const ALL: [Self; 3] = [Self::Mutual, Self::ServerOnly, Self::Unknown];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mutual => "mutual",
            Self::ServerOnly => "server_only",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `None` for a flow that is not TLS; else what its handshake showed.
pub fn of(verdict: &Verdict, meta: &TlsMeta) -> Option<ClientAuth> {
    if verdict.encryption != Encryption::Tls {
        return None;
    }
    let seen = if meta.resumed {
        ClientAuth::Unknown
    } else {
        meta.client_flight
            .as_deref()
            .map_or(ClientAuth::Unknown, |f| {
                from_flight(meta.version, meta.cipher, f)
            })
    };
    Some(match seen {
        ClientAuth::Unknown if mesh(meta).is_some() => ClientAuth::Mutual,
        other => other,
    })
}

/// The service mesh whose ALPN the client offered: its proxies speak
/// mutual TLS to each other (Istio's `istio*` ids, Linkerd's transport).
pub fn mesh(meta: &TlsMeta) -> Option<&'static str> {
    meta.alpn_offered.iter().find_map(|id| {
        if matches!(
            id.as_str(),
            "istio" | "istio-peer-exchange" | "istio-http/1.0" | "istio-http/1.1" | "istio-h2"
        ) {
            Some("istio")
        } else if id == "transport.l5d.io/v1" {
            Some("linkerd")
        } else {
            None
        }
    })
}

const CHANGE_CIPHER_SPEC: u8 = 0x14;
const HANDSHAKE: u8 = 0x16;
const APPLICATION_DATA: u8 = 0x17;
const CERTIFICATE: u8 = 11;
const CLIENT_KEY_EXCHANGE: u8 = 16;
/// A ChangeCipherSpec record, as TLS 1.3 clients in middlebox
/// compatibility mode send it before their flight.
const CCS_RECORD: [u8; 6] = [CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1];
/// The smallest DER certificate counted: an Ed25519 self-signed one is
/// about 300 bytes, P-256 ones 400–600, RSA ones 700 and more.
const MIN_CERT_DER: usize = 128;

/// Hash and AEAD tag lengths of a TLS 1.3 suite.
fn suite_lengths(cipher: u16) -> Option<(usize, usize)> {
    match cipher {
        0x1301 | 0x1303 | 0x1304 => Some((32, 16)),
        0x1302 => Some((48, 16)),
        0x1305 => Some((32, 8)),
        _ => None,
    }
}

/// The verdict the head of the client's flight gives.
fn from_flight(version: TlsVersion, cipher: Option<u16>, flight: &[u8]) -> ClientAuth {
    let b = flight.strip_prefix(&CCS_RECORD[..]).unwrap_or(flight);
    let (Some(&ct), Some(&3), Some(len)) = (b.first(), b.get(1), be(b, 3, 2)) else {
        return ClientAuth::Unknown;
    };
    match version {
        TlsVersion::Tls10 | TlsVersion::Tls11 | TlsVersion::Tls12 if ct == HANDSHAKE => {
            clear_flight(b)
        }
        TlsVersion::Tls13 if ct == APPLICATION_DATA => cipher
            .and_then(suite_lengths)
            .map_or(ClientAuth::Unknown, |(hash, tag)| {
                encrypted_flight(len, hash, tag)
            }),
        _ => ClientAuth::Unknown,
    }
}

/// TLS ≤ 1.2: the first handshake message of the client's flight.
fn clear_flight(b: &[u8]) -> ClientAuth {
    let (Some(&msg), Some(msg_len)) = (b.get(5), be(b, 6, 3)) else {
        return ClientAuth::Unknown;
    };
    match msg {
        CERTIFICATE => match be(b, 9, 3) {
            // The list fills the message (a check that the bytes are the
            // cleartext Certificate, not an encrypted record of a resumed
            // session that happens to start with 11).
            Some(0) if msg_len == 3 => ClientAuth::ServerOnly,
            Some(list) if msg_len == list + 3 && list >= MIN_CERT_DER => ClientAuth::Mutual,
            _ => ClientAuth::Unknown,
        },
        CLIENT_KEY_EXCHANGE => ClientAuth::ServerOnly,
        _ => ClientAuth::Unknown,
    }
}

/// TLS 1.3: the length of the client's first encrypted record (its inner
/// content type and AEAD tag included).
fn encrypted_flight(len: usize, hash: usize, tag: usize) -> ClientAuth {
    // handshake header + body + inner content type + tag
    let record = |body: usize| 4 + body + 1 + tag;
    let finished = record(hash);
    // An empty Certificate: empty request context (1) and list (3).
    let empty_cert = record(4);
    // Both messages in one record (stacks that pack a flight's messages).
    let empty_cert_and_finished = record(4 + 4 + hash);
    // context, list length, one certificate's length, its DER, its
    // (empty) extensions.
    let min_cert = record(1 + 3 + 3 + MIN_CERT_DER + 2);
    if len == finished || len == empty_cert || len == empty_cert_and_finished {
        ClientAuth::ServerOnly
    } else if len >= min_cert {
        ClientAuth::Mutual
    } else {
        ClientAuth::Unknown
    }
}

/// A big-endian number of `n` bytes at `at`.
fn be(b: &[u8], at: usize, n: usize) -> Option<usize> {
    let bytes = b.get(at..at + n)?;
    Some(bytes.iter().fold(0, |acc, &x| acc << 8 | usize::from(x)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::Protocol;

    fn tls() -> Verdict {
        Verdict::new(Protocol::Tls, Encryption::Tls)
    }

    fn meta(version: TlsVersion, cipher: u16, flight: &[u8]) -> TlsMeta {
        TlsMeta {
            version,
            cipher: Some(cipher),
            client_flight: Some(flight.to_vec()),
            ..TlsMeta::default()
        }
    }

    // Heads of flights as OpenSSL 3.0 clients sent them (mtls.pcap).
    const TLS13_FINISHED_ONLY: &[u8] = &[0x14, 3, 3, 0, 1, 1, 0x17, 3, 3, 0, 69, 0xaa, 0xbb];
    const TLS13_EMPTY_CERT: &[u8] = &[0x14, 3, 3, 0, 1, 1, 0x17, 3, 3, 0, 25, 0xaa];
    const TLS13_RSA_CERT: &[u8] = &[0x14, 3, 3, 0, 1, 1, 0x17, 3, 3, 0x06, 0x2f, 0xaa];
    const TLS12_CKE: &[u8] = &[0x16, 3, 3, 0, 0x25, 16, 0, 0, 0x21, 0x20, 1, 2];
    const TLS12_EMPTY_CERT: &[u8] = &[0x16, 3, 3, 0, 7, 11, 0, 0, 3, 0, 0, 0];
    const TLS12_CERT: &[u8] = &[0x16, 3, 3, 0x02, 0x4a, 11, 0, 0x02, 0x46, 0, 0x02, 0x43];

    #[test]
    fn tls13_reads_the_first_encrypted_record_length() {
        let of13 = |f| of(&tls(), &meta(TlsVersion::Tls13, 0x1302, f));
        assert_eq!(of13(TLS13_FINISHED_ONLY), Some(ClientAuth::ServerOnly));
        assert_eq!(of13(TLS13_EMPTY_CERT), Some(ClientAuth::ServerOnly));
        assert_eq!(of13(TLS13_RSA_CERT), Some(ClientAuth::Mutual));
        // SHA-256 suites: Finished is 53 bytes, 69 would be neither.
        let f53 = [0x17, 3, 3, 0, 53];
        assert_eq!(
            of(&tls(), &meta(TlsVersion::Tls13, 0x1301, &f53)),
            Some(ClientAuth::ServerOnly)
        );
        let f69 = [0x17, 3, 3, 0, 69];
        assert_eq!(
            of(&tls(), &meta(TlsVersion::Tls13, 0x1301, &f69)),
            Some(ClientAuth::Unknown)
        );
        // An alert, a second ClientHello after a HelloRetryRequest, an
        // unknown suite: unknown.
        for f in [&[0x17, 3, 3, 0, 19][..], &[0x16, 3, 3, 1, 0, 1][..]] {
            assert_eq!(of13(f), Some(ClientAuth::Unknown), "{f:?}");
        }
        assert_eq!(
            of(&tls(), &meta(TlsVersion::Tls13, 0x1399, TLS13_RSA_CERT)),
            Some(ClientAuth::Unknown)
        );
    }

    #[test]
    fn tls12_reads_the_first_handshake_message() {
        let of12 = |f| of(&tls(), &meta(TlsVersion::Tls12, 0xc030, f));
        assert_eq!(of12(TLS12_CKE), Some(ClientAuth::ServerOnly));
        assert_eq!(of12(TLS12_EMPTY_CERT), Some(ClientAuth::ServerOnly));
        assert_eq!(of12(TLS12_CERT), Some(ClientAuth::Mutual));
        // A Certificate whose lengths disagree is not one.
        let mut bad = TLS12_CERT.to_vec();
        bad[8] ^= 1;
        assert_eq!(of12(&bad), Some(ClientAuth::Unknown));
        // A resumed session's encrypted Finished after its CCS.
        assert_eq!(
            of12(&[0x14, 3, 3, 0, 1, 1, 0x16, 3, 3, 0, 40, 11, 0, 0]),
            Some(ClientAuth::Unknown)
        );
        // Cut short.
        assert_eq!(of12(&TLS12_CERT[..9]), Some(ClientAuth::Unknown));
    }

    #[test]
    fn resumed_sessions_and_missing_flights_are_unknown() {
        let mut m = meta(TlsVersion::Tls13, 0x1302, TLS13_RSA_CERT);
        m.resumed = true;
        assert_eq!(of(&tls(), &m), Some(ClientAuth::Unknown));
        let m = TlsMeta::default();
        assert_eq!(of(&tls(), &m), Some(ClientAuth::Unknown));
        let plain = Verdict::plaintext(Protocol::Http);
        assert_eq!(of(&plain, &m), None, "not TLS");
    }

    #[test]
    fn mesh_alpn_names_the_mesh_and_fills_in_unknown_only() {
        let mut m = TlsMeta {
            alpn_offered: vec!["istio-peer-exchange".into(), "istio".into()],
            ..TlsMeta::default()
        };
        assert_eq!(mesh(&m), Some("istio"));
        assert_eq!(of(&tls(), &m), Some(ClientAuth::Mutual));
        m.version = TlsVersion::Tls12;
        m.cipher = Some(0xc030);
        m.client_flight = Some(TLS12_CKE.to_vec());
        assert_eq!(of(&tls(), &m), Some(ClientAuth::ServerOnly), "seen wins");
        let l5d = TlsMeta {
            alpn_offered: vec!["transport.l5d.io/v1".into()],
            ..TlsMeta::default()
        };
        assert_eq!(mesh(&l5d), Some("linkerd"));
        assert_eq!(mesh(&TlsMeta::default()), None);
    }
}
