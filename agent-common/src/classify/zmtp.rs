//! ZeroMQ (ZMTP 3.x): each peer opens with a 64-byte greeting, signature
//! `FF` + 8 padding bytes + `7F`, version `03 xx`, then the security
//! mechanism as 20 bytes of NUL-padded ASCII (`NULL`, `PLAIN`, `CURVE`).
//! libzmq sends the greeting in pieces (the signature, the major version,
//! then the rest) so the mechanism usually comes in a later segment.
//! `PLAIN` sends a username and password in the clear (the HELLO command);
//! `CURVE` encrypts the session (CurveZMQ).

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Encryption, Protocol, Reason, Verdict};

pub struct Zmtp;

/// A signature was seen; the mechanism comes next.
const MECHANISM: u8 = 0;

/// Where the mechanism sits in a whole greeting.
const MECHANISM_AT: usize = 12;

impl Dissector for Zmtp {
    const STEPS: u8 = 1;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        if !is_signature(d) {
            return PENDING;
        }
        if d.has(MECHANISM_AT + 6) {
            f.open();
            return by_mechanism(d, MECHANISM_AT);
        }
        f.opened::<Self>(Protocol::Zmtp, MECHANISM)
    }

    /// The rest of a greeting: the mechanism after the version byte(s)
    /// still to come (`minor`, or `major minor`).
    #[inline(always)]
    fn step(_f: &mut FlowClassifier, _step: u8, _side: Side, d: &Prefix<'_>) -> Verdict {
        let v = by_mechanism(d, 1);
        if v != PENDING {
            return v;
        }
        by_mechanism(d, 2)
    }
}

/// `FF`, eight bytes (a ZMTP 1.0 length field, ignored), `7F`.
#[inline(always)]
fn is_signature(d: &Prefix<'_>) -> bool {
    d.has(10) && d.at(0) == 0xff && d.at(9) == 0x7f
}

/// The verdict the mechanism named at `at` implies, `PENDING` if none is.
#[inline(always)]
fn by_mechanism(d: &Prefix<'_>, at: usize) -> Verdict {
    if d.eq_at(at, b"PLAIN\0") {
        return Verdict::plaintext(Protocol::Zmtp).with_reason(Reason::CleartextCredentials);
    }
    if d.eq_at(at, b"CURVE\0") {
        return Verdict::new(Protocol::Zmtp, Encryption::Encrypted);
    }
    if d.eq_at(at, b"NULL\0") {
        return Verdict::plaintext(Protocol::Zmtp);
    }
    PENDING
}

#[cfg(test)]
mod tests {
    use crate::classify::testing::classify;
    use crate::classify::Side;
    use crate::{Encryption, Protocol, Reason, Verdict};

    // Greetings split as libzmq sends them: signature + major version, then
    // the minor version and the mechanism (deepflow's zmtp_plain capture).

    #[test]
    fn zmtp_plain_mechanism_is_cleartext_credentials() {
        let v = replay!("deepflow-zmtp-plain": "s2c.0", "c2s.0", "s2c.1");
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Zmtp).with_reason(Reason::CleartextCredentials))
        );
    }

    #[test]
    fn pyzmq_plain_client_is_cleartext_credentials() {
        // libzmq 4.3 sends its greeting in three pieces: the signature,
        // the major version, the rest.
        let v = replay!("pyzmq-27.3-plain": "c2s.0", "s2c.0", "s2c.1", "c2s.1", "c2s.2");
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Zmtp).with_reason(Reason::CleartextCredentials))
        );
    }

    #[test]
    fn zmtp_signature_alone_is_plaintext_zmtp_on_close() {
        let v = replay!("deepflow-zmtp-plain": "s2c.0", "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Zmtp)));
    }

    #[test]
    fn whole_greetings_name_the_mechanism_at_once() {
        // The server's two pieces as one segment, with the mechanism swapped.
        let (signature, rest) = (
            fixture!("deepflow-zmtp-plain", "s2c.0"),
            fixture!("deepflow-zmtp-plain", "s2c.1"),
        );
        let mut greeting = [0u8; 64];
        greeting[..10].copy_from_slice(signature);
        greeting[10..].copy_from_slice(rest);
        let curve = greeting_with(&greeting, b"CURVE");
        let null = greeting_with(&greeting, b"NULL\0");
        assert_eq!(
            classify(&[(Side::Client, &greeting)]),
            Some(Verdict::plaintext(Protocol::Zmtp).with_reason(Reason::CleartextCredentials))
        );
        assert_eq!(
            classify(&[(Side::Client, &curve)]),
            Some(Verdict::new(Protocol::Zmtp, Encryption::Encrypted))
        );
        assert_eq!(
            classify(&[(Side::Client, &null)]),
            Some(Verdict::plaintext(Protocol::Zmtp))
        );
    }

    fn greeting_with(greeting: &[u8; 64], mechanism: &[u8; 5]) -> [u8; 64] {
        let mut g = *greeting;
        g[12..17].copy_from_slice(mechanism);
        g
    }
}
