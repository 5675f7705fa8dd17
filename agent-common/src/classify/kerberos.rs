//! Kerberos 5 over TCP (RFC 4120 7.2.2): a 4-byte big-endian length, then
//! one DER message whose APPLICATION tag names it: AS-REQ `0x6a`, AS-REP
//! `0x6b`, TGS-REQ `0x6c`, TGS-REP `0x6d`, KRB-ERROR `0x7e`. Inside its
//! SEQUENCE come `pvno` (5) and `msg-type` (the tag's number again): the
//! tag, both fields and their agreement are 12 fixed bytes, enough to
//! decide on one message.
//!
//! `encrypted`: what protects the session (keys, tickets, authenticators,
//! the pre-authentication timestamp) is encrypted with the principals'
//! keys; only names and times travel in clear, and no password does.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Encryption, Protocol, Verdict};

pub struct Kerberos;

/// `pvno [1] INTEGER 5, msg-type [2] INTEGER` in a KDC-REQ; the type's value
/// follows.
const REQ_FIELDS: &[u8] = b"\xa1\x03\x02\x01\x05\xa2\x03\x02\x01";
/// `pvno [0] INTEGER 5, msg-type [1] INTEGER` in a KDC-REP or KRB-ERROR.
const REP_FIELDS: &[u8] = b"\xa0\x03\x02\x01\x05\xa1\x03\x02\x01";

/// The fields at `body` (after the tag's and the SEQUENCE's headers), with
/// the message type the tag implies.
#[inline(always)]
fn fields_at(d: &Prefix<'_>, body: usize, request: bool, msg_type: u8) -> bool {
    let fields = if request {
        d.eq_at(body, REQ_FIELDS)
    } else {
        d.eq_at(body, REP_FIELDS)
    };
    fields && d.at(body + REQ_FIELDS.len()) == msg_type
}

impl Dissector for Kerberos {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        let tag = d.at(4);
        let request = tag == 0x6a || tag == 0x6c;
        let reply = tag == 0x6b || tag == 0x6d || tag == 0x7e;
        if d.at(0) != 0 || !(request || reply) {
            return PENDING;
        }
        let msg_type = tag - 0x60;
        // DER lengths: short (1 byte), 0x81 (2) or 0x82 (3), for the
        // application tag and for the SEQUENCE inside it.
        let body = if d.at(5) == 0x81 && d.at(7) == 0x30 && d.at(8) == 0x81 {
            10
        } else if d.at(5) == 0x82 && d.at(8) == 0x30 && d.at(9) == 0x82 {
            12
        } else {
            8
        };
        if fields_at(d, body, request, msg_type) {
            f.open();
            return Verdict::new(Protocol::Kerberos, Encryption::Encrypted);
        }
        PENDING
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::Side;
    use crate::classify::testing::classify;
    use crate::{Encryption, Protocol, Verdict};

    // --- Kerberos (MIT kinit 1.20 against MIT krb5kdc 1.20, TCP) --------------------

    const KERBEROS: Verdict = Verdict::new(Protocol::Kerberos, Encryption::Encrypted);

    #[test]
    fn as_req_is_kerberos() {
        let v = replay!("kinit-1.20-as-krb5kdc": "c2s.0");
        assert_eq!(v, Some(KERBEROS));
    }

    #[test]
    fn as_rep_and_krb_error_are_kerberos() {
        // Each seen alone (the request missed): a reply, 0x82 lengths.
        let rep = fixture!("kinit-1.20-as-krb5kdc", "s2c.0");
        assert_eq!(classify(&[(Side::Server, rep)]), Some(KERBEROS));
        let err = fixture!("kinit-1.20-unknown-principal-krb5kdc", "s2c.0");
        assert_eq!(classify(&[(Side::Server, err)]), Some(KERBEROS));
    }

    #[test]
    fn a_tag_whose_message_type_disagrees_is_not_kerberos() {
        // The AS-REQ with its tag changed to AS-REP's: msg-type 10 no
        // longer matches, and the field layout is a request's.
        let mut req = fixture!("kinit-1.20-as-krb5kdc", "c2s.0").to_vec();
        req[4] = 0x6b;
        let v = classify(&[(Side::Client, &req)]);
        assert_ne!(v.map(|v| v.protocol), Some(Protocol::Kerberos));
    }
}
