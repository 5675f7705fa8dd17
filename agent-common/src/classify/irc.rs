//! IRC (RFC 1459/2812, IRCv3): the client registers with `PASS` (a server
//! password, in clear), `NICK` and `USER`, often after `CAP LS`; the server
//! answers with prefixed lines, `:irc.example.net NOTICE * :...` or the
//! `001` welcome. `USER ` and `NICK ` alone are weak (FTP and POP3 have a
//! `USER` command), so the flow is named only when the server's answer is
//! an IRC line too. A server that speaks first (`NOTICE`) is not an
//! opening here: the scan for its command word costs the verifier on every
//! flow's first segment, so only a registration opens the flow.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Reason, Verdict};

pub struct Irc;

/// Registration commands sent, without a password.
const REGISTERING: u8 = 0;
/// Registration commands sent with `PASS`.
const REGISTERING_PASS: u8 = 1;
/// Where the command word of a server line may start (after `:server.name`).
const PREFIX_SPAN: usize = 40;

#[inline(always)]
fn is_pass(d: &Prefix<'_>) -> bool {
    d.eq_at(0, b"PASS ")
}

#[inline(always)]
fn is_registration(d: &Prefix<'_>) -> bool {
    is_pass(d)
        || d.eq_at(0, b"NICK ")
        || d.eq_at(0, b"USER ")
        || d.eq_at(0, b"CAP LS")
        || d.eq_at(0, b"CAP REQ ")
}

/// A prefixed server line: a notice, or the welcome.
#[inline(always)]
fn is_server_line(d: &Prefix<'_>) -> bool {
    d.at(0) == b':' && (d.find_ci(b" notice ", PREFIX_SPAN) || d.find_ci(b" 001 ", PREFIX_SPAN))
}

#[inline(always)]
fn irc(pass: bool) -> Verdict {
    let v = Verdict::plaintext(Protocol::Irc);
    if pass {
        v.with_reason(Reason::CleartextCredentials)
    } else {
        v
    }
}

impl Dissector for Irc {
    const STEPS: u8 = 2;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && is_registration(d) {
            // Not named yet: the server's answer decides.
            let step = if is_pass(d) {
                REGISTERING_PASS
            } else {
                REGISTERING
            };
            return f.opened::<Self>(Protocol::Unknown, step);
        }
        PENDING
    }

    #[inline(always)]
    fn step(f: &mut FlowClassifier, step: u8, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client {
            if is_pass(d) {
                f.goto::<Self>(REGISTERING_PASS);
            }
            return PENDING;
        }
        if is_server_line(d) {
            return irc(step == REGISTERING_PASS);
        }
        // Not an IRC server: its own greeting may name it.
        f.restart();
        PENDING
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::Side;
    use crate::classify::testing::{classify, credentials};
    use crate::Protocol;

    // --- IRC (python3-irc against ngircd 26.1) -------------------------------------

    #[test]
    fn irc_registration_with_pass_is_cleartext_credentials() {
        let v = replay!("python3-irc-pass-ngircd-26.1": "c2s.0", "s2c.0");
        assert_eq!(v, Some(credentials(Protocol::Irc)));
    }

    #[test]
    fn registration_answered_by_something_else_is_not_irc() {
        let c2s = fixture!("python3-irc-pass-ngircd-26.1", "c2s.0");
        let v = classify(&[(Side::Client, c2s), (Side::Server, b"-ERR unknown command\r\n")]);
        assert_ne!(v.map(|v| v.protocol), Some(Protocol::Irc));
        // Unanswered: nothing names it.
        let v = classify(&[(Side::Client, c2s)]);
        assert_eq!(v.map(|v| v.protocol), Some(Protocol::Unknown));
    }
}
