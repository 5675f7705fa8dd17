//! LDAP (BER): every message is `30 len` (SEQUENCE), `02 n id`
//! (messageID), then the protocol op, an application tag. BindRequest
//! (`60`) with simple authentication (`80`, context tag 0) carries the
//! password as is; an ExtendedRequest (`77`) naming the StartTLS OID
//! 1.3.6.1.4.1.1466.20037 asks for TLS, and an ExtendedResponse (`78`)
//! with resultCode success (`0a 01 00`) grants it.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Reason, Verdict};

pub struct Ldap;

/// StartTLS ExtendedRequest sent: the ExtendedResponse decides.
const STARTTLS: u8 = 0;

impl Dissector for Ldap {
    const STEPS: u8 = 1;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        let m = message(d);
        if side == Side::Server {
            if m != Message::Not {
                return Verdict::plaintext(Protocol::Ldap);
            }
            return PENDING;
        }
        match m {
            Message::Not => PENDING,
            Message::SimpleBind => {
                f.open();
                Verdict::plaintext(Protocol::Ldap).with_reason(Reason::CleartextCredentials)
            }
            Message::StartTls => {
                f.opened::<Self>(Protocol::Ldap, STARTTLS)
            }
            Message::Request => {
                f.open();
                Verdict::plaintext(Protocol::Ldap)
            }
            _ => Verdict::plaintext(Protocol::Ldap),
        }
    }

    /// StartTLS asked: success upgrades, anything else refuses.
    #[inline(always)]
    fn step(f: &mut FlowClassifier, _step: u8, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client {
            return PENDING;
        }
        if message(d) == Message::ExtendedSuccess {
            f.upgrade_accepted();
            return PENDING;
        }
        f.upgrade_refused();
        Verdict::plaintext(Protocol::Ldap)
    }
}

/// What a message is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Message {
    Not,
    /// Any other request.
    Request,
    /// A simple bind with a non-empty password.
    SimpleBind,
    StartTls,
    /// A response (server side).
    Response,
    /// An ExtendedResponse with resultCode success.
    ExtendedSuccess,
}

const OP_BIND: u8 = 0x60;
const OP_BIND_RESPONSE: u8 = 0x61;
const OP_SEARCH: u8 = 0x63;
const OP_SEARCH_ENTRY: u8 = 0x64;
const OP_SEARCH_DONE: u8 = 0x65;
const OP_MODIFY: u8 = 0x66;
const OP_ADD: u8 = 0x68;
const OP_UNBIND: u8 = 0x42;
const OP_DELETE: u8 = 0x4a;
const OP_EXTENDED: u8 = 0x77;
const OP_EXTENDED_RESPONSE: u8 = 0x78;
const STARTTLS_OID: &[u8] = b"\x80\x161.3.6.1.4.1.1466.20037";

/// Bytes a BER length at `o` takes: 1 in short form, 1 + n for the long
/// form `0x8n`. Arithmetic, not a branch per form: each branch would
/// multiply the offsets the verifier tracks below.
#[inline(always)]
fn len_size(d: &Prefix<'_>, o: usize) -> usize {
    let l = d.at_var(o) as usize;
    1 + (l >> 7) * (l & 0x7f)
}

#[inline(always)]
fn message(d: &Prefix<'_>) -> Message {
    if !d.has(7) || d.at(0) != 0x30 {
        return Message::Not;
    }
    let n = len_size(d, 1);
    let id = 1 + n;
    let id_len = d.at_var(id + 1) as usize;
    if d.at_var(id) != 0x02 || id_len == 0 || id_len > 4 {
        return Message::Not;
    }
    let op_at = id + 2 + id_len;
    let op = d.at_var(op_at);
    let m = len_size(d, op_at + 1);
    if n > 5 || m > 5 {
        return Message::Not;
    }
    let body = op_at + 1 + m;
    match op {
        OP_BIND => {
            // version 3, then the DN as an OCTET STRING (short length).
            let dn_len = d.at_var(body + 4) as usize;
            if !d.eq_at_var(body, b"\x02\x01") || d.at_var(body + 3) != 0x04 || dn_len >= 0x80 {
                return Message::Not;
            }
            let auth = body + 5 + dn_len;
            if d.at_var(auth) == 0x80 && d.at_var(auth + 1) != 0 {
                Message::SimpleBind
            } else {
                Message::Request
            }
        }
        OP_EXTENDED => {
            if d.eq_at_var(body, STARTTLS_OID) {
                Message::StartTls
            } else {
                Message::Request
            }
        }
        OP_EXTENDED_RESPONSE => {
            if d.eq_at_var(body, b"\x0a\x01\x00") {
                Message::ExtendedSuccess
            } else {
                Message::Response
            }
        }
        OP_SEARCH | OP_MODIFY | OP_ADD | OP_UNBIND | OP_DELETE => Message::Request,
        OP_BIND_RESPONSE | OP_SEARCH_ENTRY | OP_SEARCH_DONE => Message::Response,
        _ => Message::Not,
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::{classify_midstream, upgraded};
    use crate::classify::Side;
    use crate::{Protocol, Reason, TlsVersion, Verdict};

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
}
