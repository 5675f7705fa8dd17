//! XMPP (RFC 6120): both sides open an XML stream (`<stream:stream ...>`,
//! often after an `<?xml ...?>` declaration). The client may ask for TLS
//! with `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`; the server
//! answers `<proceed/>` (a TLS handshake follows on the same connection)
//! or `<failure/>` (the stream is closed, or goes on in clear). SASL
//! `PLAIN` sends the password (base64 only) in an `<auth>` element;
//! SCRAM does not.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Reason, Verdict};

pub struct Xmpp;

/// Streams open: watching the client's elements.
const STREAM: u8 = 0;
/// `<starttls/>` sent: the server's answer decides.
const UPGRADE: u8 = 1;

/// The stream header, bare or after the declaration clients send:
/// `<?xml version='1.0'?>` (21 bytes) or with `encoding='UTF-8'` (38
/// bytes), either quote. Fixed offsets, not a scan: a scan costs the
/// verifier an instruction per offset and pattern byte.
#[inline(always)]
fn is_stream_header(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"<stream:stream ")
        || (d.eq_at(0, b"<?xml version=")
            && (d.eq_at(21, b"<stream:stream ") || d.eq_at(38, b"<stream:stream ")))
}

/// `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">`, or
/// `mechanism` first (either quote): the mechanism name at a fixed offset.
#[inline(always)]
fn is_sasl_plain(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"<auth ")
        && ((d.eq_at(47, b"mechanism=") && d.eq_at(58, b"PLAIN"))
            || (d.eq_at(6, b"mechanism=") && d.eq_at(17, b"PLAIN")))
}

impl Dissector for Xmpp {
    const STEPS: u8 = 2;
    const AWAITS_UPGRADE_ANSWER: Option<u8> = Some(UPGRADE);

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        if is_stream_header(d) {
            return f.opened::<Self>(Protocol::Xmpp, STREAM);
        }
        PENDING
    }

    #[inline(always)]
    fn step(f: &mut FlowClassifier, step: u8, side: Side, d: &Prefix<'_>) -> Verdict {
        if step == UPGRADE {
            if side == Side::Server {
                if d.eq_at(0, b"<proceed") {
                    f.upgrade_accepted();
                } else if d.eq_at(0, b"<failure") {
                    f.upgrade_refused();
                    f.goto::<Self>(STREAM);
                }
            }
            return PENDING;
        }
        if side == Side::Server {
            return PENDING;
        }
        if d.eq_at(0, b"<starttls") {
            f.goto::<Self>(UPGRADE);
            return PENDING;
        }
        if is_sasl_plain(d) {
            return Verdict::plaintext(Protocol::Xmpp).with_reason(Reason::CleartextCredentials);
        }
        PENDING
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::Side;
    use crate::classify::testing::{classify, credentials, refused, upgraded};
    use crate::{Protocol, TlsVersion, Verdict};

    // --- XMPP (slixmpp 1.8 against prosody 0.12) -----------------------------------

    #[test]
    fn xmpp_starttls_proceed_then_tls_is_xmpp_over_tls() {
        let v = replay!("slixmpp-1.8-starttls-prosody-0.12":
            "c2s.0", "s2c.0", "c2s.1", "s2c.1", "c2s.2", "s2c.2");
        assert_eq!(v, Some(upgraded(Protocol::Xmpp, TlsVersion::Tls13)));
    }

    #[test]
    fn xmpp_without_tls_and_scram_is_plaintext_xmpp() {
        // SCRAM-SHA-256 sends a proof, not the password: no credentials reason.
        let v = replay!("slixmpp-1.8-plain-prosody-0.12":
            "c2s.0", "s2c.0", "c2s.1", "s2c.1", "c2s.2", "s2c.2",
            "c2s.3", "s2c.3", "c2s.4", "s2c.4", "c2s.5", "s2c.5");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Xmpp)));
    }

    #[test]
    fn xmpp_sasl_plain_in_clear_is_cleartext_credentials() {
        let v = replay!("slixmpp-1.8-sasl-plain-prosody-0.12": "c2s.0", "s2c.0", "c2s.1");
        assert_eq!(v, Some(credentials(Protocol::Xmpp)));
    }

    #[test]
    fn xmpp_starttls_failure_is_refused() {
        // No Debian server refuses a STARTTLS it offered; the answer is
        // RFC 6120 5.4.2.2's `<failure/>`, after slixmpp's real request.
        let s = "slixmpp-1.8-starttls-prosody-0.12";
        let v = classify(&[
            (Side::Client, fixture!("slixmpp-1.8-starttls-prosody-0.12", "c2s.0")),
            (Side::Server, fixture!("slixmpp-1.8-starttls-prosody-0.12", "s2c.0")),
            (Side::Client, fixture!("slixmpp-1.8-starttls-prosody-0.12", "c2s.1")),
            (Side::Server, b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>"),
        ]);
        assert_eq!(v, Some(refused(Protocol::Xmpp)), "{s}");
    }

    #[test]
    fn xmpp_starttls_unanswered_is_refused() {
        let v = replay!("slixmpp-1.8-starttls-prosody-0.12": "c2s.0", "s2c.0", "c2s.1");
        assert_eq!(v, Some(refused(Protocol::Xmpp)));
    }
}
