//! rsync daemon protocol (`rsync://`, TCP 873): both sides open with a
//! version greeting, `@RSYNCD: <major>.<minor>` (rsync 3.2 and later add
//! the checksum names they support), then a newline; the client names a
//! module, the server answers `@RSYNCD: OK` or `@RSYNCD: AUTHREQD
//! <challenge>`. Everything after, file lists and data included, is in
//! the clear. The password never crosses the wire (the client answers the
//! challenge with a digest of it), so a login is not
//! `cleartext_credentials`. rsync over SSH or `rsync-ssl` starts with an
//! SSH banner or a ClientHello instead, never with this greeting.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct Rsync;

impl Dissector for Rsync {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        if is_greeting(d) {
            f.open();
            return Verdict::plaintext(Protocol::Rsync);
        }
        PENDING
    }
}

/// `@RSYNCD: ` and a protocol version's first digit (`@RSYNCD: OK` and
/// the other replies come later, never first).
#[inline(always)]
fn is_greeting(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"@RSYNCD: ") && d.at(9).is_ascii_digit()
}

#[cfg(test)]
mod tests {
    // --- rsync 3.5 against rsync 3.5 --daemon --------------------------------------
    use crate::classify::Side;
    use crate::classify::testing::{classify, classify_midstream};
    use crate::{Protocol, Verdict};

    #[test]
    fn rsync_client_greeting_is_plaintext_rsync() {
        let v = replay!("rsync-3.5-list-rsyncd": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Rsync)));
    }

    #[test]
    fn rsyncd_greeting_is_plaintext_rsync() {
        // The daemon spoke first in this session.
        let v = replay!("rsync-3.5-auth-rsyncd": "s2c.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Rsync)));
    }

    #[test]
    fn rsync_greeting_seen_first_midstream_is_an_opening() {
        let v = classify_midstream(&[(Side::Server, fixture!("rsync-3.5-auth-rsyncd", "s2c.0"))]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Rsync)));
    }

    #[test]
    fn rsyncd_later_replies_alone_are_not_named_rsync() {
        // `@RSYNCD: OK` and `@RSYNCD: AUTHREQD <challenge>` never open a
        // flow: alone they are readable text of no named protocol.
        for chunk in [
            fixture!("rsync-3.5-list-rsyncd", "s2c.1"),
            fixture!("rsync-3.5-auth-rsyncd", "s2c.1"),
        ] {
            let v = classify(&[(Side::Server, chunk)]);
            assert_eq!(v, Some(Verdict::plaintext(Protocol::Unknown)));
        }
    }

    #[test]
    fn rsync_login_answer_is_not_cleartext_credentials() {
        // The module name, then `app <digest of the challenge>`: the
        // password itself never crosses the wire.
        let v = classify(&[
            (Side::Client, fixture!("rsync-3.5-auth-rsyncd", "c2s.1")),
            (Side::Client, fixture!("rsync-3.5-auth-rsyncd", "c2s.2")),
        ]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Unknown)));
    }
}
