//! NATS: text protocol; the server speaks first with `INFO {json}`, the
//! client answers `CONNECT {json}`. Registered before HTTP: `CONNECT {` is
//! not an HTTP CONNECT (whose target is `host:port`, never `{`).
//!
//! With TLS the server still sends its `INFO` in clear (`"tls_required":
//! true`, past the 128-byte prefix), then the client starts a TLS
//! handshake: so `INFO` decides nothing alone. The client's next segment
//! does: a ClientHello (handled by the core: the flow becomes `tls`,
//! `starttls_upgraded`, named `nats`) or anything else (plaintext).

use super::bytes::Prefix;
use super::credentials::{ScanBuf, Step, word_is};
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Nats;

/// `INFO` seen: the client's answer says whether TLS follows.
pub(super) const AFTER_INFO: u8 = 0;

impl Dissector for Nats {
    const STEPS: u8 = 1;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        if d.eq_at(0, b"INFO {") {
            return f.opened::<Self>(Protocol::Nats, AFTER_INFO);
        }
        if is_connect(d) {
            f.open();
            return Verdict::plaintext(Protocol::Nats);
        }
        PENDING
    }

    #[inline(always)]
    fn step(_f: &mut FlowClassifier, _step: u8, side: Side, _d: &Prefix<'_>) -> Verdict {
        // TLS records never get here: whatever else the client sends after
        // `INFO` (its `CONNECT`) is in clear.
        if side == Side::Client {
            return Verdict::plaintext(Protocol::Nats);
        }
        PENDING
    }
}

/// A client's `CONNECT {json}`; its `"pass"` or `"auth_token"` (anywhere
/// in its options, found by the credentials scan, `credentials.rs`) is a
/// secret in the clear; `"user"` alone, or an nkey `"sig"`, is not.
#[inline(always)]
pub(super) fn is_connect(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"CONNECT {")
}

/// The JSON key at `q` (a quote) of a `CONNECT` is `"pass"` or
/// `"auth_token"` (keys are case-sensitive: compared exactly).
#[inline(always)]
pub(super) fn key_is_credential(buf: &ScanBuf, q: usize) -> Step {
    let w = buf.word_at(q);
    let pass = word_is(w, b"\"pass\"");
    let token = word_is(w, b"\"auth_to") && word_is(buf.word_at(q + 8), b"ken\"");
    if pass || token { Step::Found } else { Step::Next }
}

#[cfg(test)]
mod tests {
    use crate::classify::Side;
    use crate::classify::testing::{classify, credentials, upgraded};
    use crate::{Protocol, TlsVersion, Verdict};

    // --- NATS (nats-py 2.16 against nats-server 2.9) -------------------------------

    #[test]
    fn nats_server_info_alone_is_plaintext_nats_at_close() {
        let v = replay!("nats-py-2.16-anonymous-nats-server-2.9": "s2c.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Nats)));
    }

    #[test]
    fn nats_info_then_clear_connect_is_plaintext_nats() {
        let v = replay!("nats-py-2.16-anonymous-nats-server-2.9": "s2c.0", "c2s.0");
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

    #[test]
    fn nats_tls_required_info_then_client_hello_is_nats_over_tls() {
        // INFO {"tls_required":true,...} in clear, then the TLS handshake:
        // not a plaintext flow.
        let v = replay!("nats-py-2.16-tls-nats-server-2.9": "s2c.0", "c2s.0", "s2c.1");
        assert_eq!(v, Some(upgraded(Protocol::Nats, TlsVersion::Tls13)));
    }

    #[test]
    fn nats_tls_flow_cut_after_the_client_hello_is_still_tls() {
        let v = replay!("nats-py-2.16-tls-nats-server-2.9": "s2c.0", "c2s.0");
        assert_eq!(v.map(|v| v.encryption), Some(crate::Encryption::Tls));
    }

    #[test]
    fn nats_connect_with_a_password_after_info_is_cleartext_credentials() {
        // nats-py's `"pass": "nats-pw"` at byte 95 of its CONNECT.
        let v = replay!("nats-py-2.16-userpass-nats-server-2.9": "s2c.0", "c2s.0");
        assert_eq!(v, Some(credentials(Protocol::Nats)));
    }

    #[test]
    fn nats_connect_without_credentials_after_info_is_plaintext_nats() {
        let v = replay!("nats-py-2.16-anonymous-nats-server-2.9": "s2c.0", "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Nats)));
    }

    #[test]
    fn an_auth_token_key_is_found() {
        let connect = b"CONNECT {\"verbose\":false,\"pedantic\":false,\"lang\":\"go\",\"version\":\"1.31.0\",\"protocol\":1,\"auth_token\":\"s3cr3t\"}\r\n";
        let v = classify(&[(Side::Client, connect)]);
        assert_eq!(v, Some(credentials(Protocol::Nats)));
    }
}
