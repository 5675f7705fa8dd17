//! STOMP (1.0–1.2): text frames, a command line, `name:value` header
//! lines, a blank line, a body ended by NUL. The client opens with
//! `CONNECT` (or `STOMP`, 1.1+), usually with `login` and `passcode`
//! headers in clear; the broker answers `CONNECTED`. Over TLS the core sees
//! the ClientHello first and the flow is `tls`.
//!
//! HTTP's `CONNECT host:port HTTP/1.1` has a space after the verb, a STOMP
//! frame a line end, so the two never meet.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Reason, Verdict};

pub struct Stomp;

/// How far into a CONNECT frame the `passcode` header is looked for: the
/// whole staged prefix (headers come in any order).
const HEADER_SPAN: usize = 122;

/// The start of a `passcode:` header line. Six bytes, not the whole name:
/// the verifier's work grows with the pattern times the span (this scan
/// is most of STOMP's ≈ 60k verified instructions; the whole `\npasscode:`
/// cost 21k more).
const PASSCODE: &[u8] = b"\npassc";

/// `word` then `\n` or `\r\n` at the frame's start.
#[inline(always)]
fn command(d: &Prefix<'_>, word: &[u8]) -> bool {
    d.eq_at(0, word) && (d.at(word.len()) == b'\n' || (d.at(word.len()) == b'\r' && d.at(word.len() + 1) == b'\n'))
}

impl Dissector for Stomp {
    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && (command(d, b"CONNECT") || command(d, b"STOMP")) {
            f.open();
            // A CONNECT without credentials is the broker's anonymous login.
            let creds = d.find_ci(PASSCODE, HEADER_SPAN);
            return Verdict::plaintext(Protocol::Stomp).with_reason(Reason::CleartextCredentials.when(u32::from(creds)));
        }
        if side == Side::Server && command(d, b"CONNECTED") {
            f.open();
            return Verdict::plaintext(Protocol::Stomp);
        }
        PENDING
    }

    /// A session picked up later: a client's `SEND`/`SUBSCRIBE` or the
    /// broker's `MESSAGE`, each followed by a header name (lower case in
    /// every STOMP version).
    #[inline(always)]
    fn midstream(_f: &mut FlowClassifier, _side: Side, d: &Prefix<'_>) -> Verdict {
        if (d.eq_at(0, b"SEND\n") && d.at(5).is_ascii_lowercase())
            || (d.eq_at(0, b"SUBSCRIBE\n") && d.at(10).is_ascii_lowercase())
            || (d.eq_at(0, b"MESSAGE\n") && d.at(8).is_ascii_lowercase())
        {
            return Verdict::plaintext(Protocol::Stomp);
        }
        PENDING
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::Side;
    use crate::classify::testing::{classify, classify_midstream};
    use crate::{Protocol, Reason, Verdict};

    // --- stomp.py 8.0 (Debian python3-stomp) CONNECT with login/passcode ----------

    #[test]
    fn stomp_connect_with_passcode_is_cleartext_credentials() {
        let v = replay!("stomp.py-7.0-connect-sink": "c2s.0");
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Stomp).with_reason(Reason::CleartextCredentials))
        );
    }

    #[test]
    fn anonymous_connect_is_plaintext_stomp() {
        let v = classify(&[(Side::Client, b"CONNECT\r\naccept-version:1.2\r\nhost:broker\r\n\r\n\0")]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Stomp)));
    }

    #[test]
    fn http_connect_is_not_stomp() {
        let v = classify(&[(Side::Client, b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n")]);
        assert_ne!(v.map(|v| v.protocol), Some(Protocol::Stomp));
    }

    #[test]
    fn midstream_send_is_stomp() {
        let v = classify_midstream(&[(Side::Client, b"SEND\ndestination:/queue/a\ncontent-length:2\n\nhi\0")]);
        assert_eq!(v.map(|v| v.protocol), Some(Protocol::Stomp));
    }
}
