//! Telnet (RFC 854): option negotiation in `IAC` (0xFF) commands, `WILL`
//! / `WONT` / `DO` / `DONT` (0xFB-0xFE) or a subnegotiation `SB` (0xFA),
//! then a terminal session in clear. Three bytes of signature are weak
//! alone, so the flow is named only when both sides negotiate.
//!
//! Credentials: telnetd runs login(1), which turns the terminal's echo
//! off to read the password, so the server sends `IAC WILL ECHO` just
//! before the prompts. The typed name and password follow in clear, often
//! past the segment budget (one segment per keystroke), so the server's
//! side decides.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Reason, Verdict};

pub struct Telnet;

/// The server negotiated first: the client's answer must negotiate too.
const SERVER_FIRST: u8 = 0;
/// The client negotiated first: the server's answer must negotiate too.
const CLIENT_FIRST: u8 = 1;
/// Both sides negotiated: a telnet session; watching for the login.
const SESSION: u8 = 2;

/// Where `IAC WILL ECHO` may sit in a server segment: among the first
/// option commands (telnetd: after one subnegotiation). Kept short: each
/// offset costs the verifier a few instructions on every path here.
const SCAN: usize = 16;

/// The segment starts with an option command or a subnegotiation.
#[inline(always)]
fn is_negotiation(d: &Prefix<'_>) -> bool {
    let cmd = d.at(1);
    d.at(0) == 0xff && cmd >= 0xfa && cmd != 0xff
}

/// `IAC WILL ECHO` anywhere in the first `SCAN` bytes; branch-free (bytes
/// past the data are zero, so they never match).
#[inline(always)]
fn will_echo(d: &Prefix<'_>) -> bool {
    let mut found = 0u32;
    let mut i = 0;
    while i < SCAN {
        let diff = (d.at(i) ^ 0xff) | (d.at(i + 1) ^ 0xfb) | (d.at(i + 2) ^ 0x01);
        found |= u32::from(diff).wrapping_sub(1) >> 31;
        i += 1;
    }
    found != 0
}

impl Dissector for Telnet {
    const STEPS: u8 = 3;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if is_negotiation(d) {
            // Not named yet (`Unknown`): the peer's answer decides.
            let step = if side == Side::Server {
                SERVER_FIRST
            } else {
                CLIENT_FIRST
            };
            return f.opened::<Self>(Protocol::Unknown, step);
        }
        PENDING
    }

    #[inline(always)]
    fn step(f: &mut FlowClassifier, step: u8, side: Side, d: &Prefix<'_>) -> Verdict {
        if step != SESSION {
            let peer = if step == SERVER_FIRST {
                Side::Client
            } else {
                Side::Server
            };
            if side != peer {
                return PENDING;
            }
            if !is_negotiation(d) {
                // The peer answers something else: not telnet. Nothing
                // else is tried on this flow; it stays unnamed.
                f.restart();
                return PENDING;
            }
            f.name(Protocol::Telnet);
            f.goto::<Self>(SESSION);
        }
        if side == Side::Server && will_echo(d) {
            return Verdict::plaintext(Protocol::Telnet).with_reason(Reason::CleartextCredentials);
        }
        PENDING
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::Side;
    use crate::classify::testing::{classify, credentials};
    use crate::{Protocol, Verdict};

    // --- telnet (inetutils telnet 2.4 against inetutils telnetd) -------------------

    #[test]
    fn telnet_login_is_cleartext_credentials() {
        // telnetd's `IAC WILL ECHO` (s2c.4) comes just before `login:`.
        let v = replay!("inetutils-telnet-2.4-login-telnetd":
            "s2c.0", "c2s.0", "s2c.1", "c2s.1", "s2c.2", "c2s.2", "s2c.3", "c2s.3", "s2c.4");
        assert_eq!(v, Some(credentials(Protocol::Telnet)));
    }

    #[test]
    fn telnet_negotiation_alone_is_plaintext_telnet() {
        let v = replay!("inetutils-telnet-2.4-login-telnetd": "s2c.0", "c2s.0", "s2c.1", "c2s.1");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Telnet)));
    }

    #[test]
    fn one_side_negotiating_names_nothing() {
        let s2c = fixture!("inetutils-telnet-2.4-login-telnetd", "s2c.0");
        let v = classify(&[(Side::Server, s2c)]);
        assert_eq!(v.map(|v| v.protocol), Some(Protocol::Unknown));
        // Answered by something that does not negotiate: not telnet.
        let v = classify(&[(Side::Server, s2c), (Side::Client, b"GET / HTTP/1.1\r\n\r\n")]);
        assert_ne!(v.map(|v| v.protocol), Some(Protocol::Telnet));
    }
}
