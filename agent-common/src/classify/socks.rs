//! SOCKS 4, 4a and 5 (RFC 1928, RFC 1929): the client asks a proxy for a
//! connection, then the same TCP connection carries the proxied bytes.
//!
//! SOCKS4: `04 cmd port ip userid\0` (4a: ip `0.0.0.x`, then `host\0`),
//! answered `00 5a..5d port ip`. SOCKS5: a greeting `05 n methods[n]`, the
//! server picks one (`05 m`); method 2 is a user name and password sent as
//! is (`01 ulen user plen pass`, RFC 1929); then a request `05 cmd 00 atyp
//! addr port` and its reply `05 rep 00 atyp addr port`. The flow is named
//! `socks` from the client's first message; what the tunnel carries
//! decides the encryption: a ClientHello (the core takes TLS records in
//! every step) makes it `tls` (`starttls_upgraded`, as TLS through an HTTP
//! CONNECT tunnel), anything else is the proxied protocol in the clear. Registered after every other client-first binary signature: a
//! three-byte greeting is a short signature, so it gets the last word.

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Reason, Verdict};

pub struct Socks;

/// The client's first message was seen: handshake messages until the
/// tunnel carries something else.
const HANDSHAKE: u8 = 0;

impl Dissector for Socks {
    const STEPS: u8 = 1;
    const TUNNEL: bool = true;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && (is_greeting5(d) || is_request4(d)) {
            return f.opened::<Self>(Protocol::Socks, HANDSHAKE);
        }
        PENDING
    }

    #[inline(always)]
    fn step(_f: &mut FlowClassifier, _step: u8, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Server {
            if is_reply(d) {
                return PENDING;
            }
        } else {
            if is_password(d) {
                return Verdict::plaintext(Protocol::Socks)
                    .with_reason(Reason::CleartextCredentials);
            }
            if is_request5(d) {
                return PENDING;
            }
        }
        // Not a handshake message: the tunnel's own bytes, not TLS.
        Verdict::plaintext(Protocol::Socks)
    }
}

/// `05 n methods[n]`, exactly that long; the first method one of those
/// RFC 1928 names (none, GSSAPI, user name/password, CHAP).
#[inline(always)]
fn is_greeting5(d: &Prefix<'_>) -> bool {
    let n = d.at(1) as usize;
    d.at(0) == 5 && (1..=9).contains(&n) && d.has(2 + n) && !d.has(3 + n) && d.at(2) <= 3
}

/// `04 01|02 port ip userid\0` (4a: then `host\0`): short, seen whole, the
/// user id printable, NUL at the end.
#[inline(always)]
fn is_request4(d: &Prefix<'_>) -> bool {
    let user = d.at(8);
    d.at(0) == 4
        && (d.at(1) == 1 || d.at(1) == 2)
        && d.has(9)
        && !d.has(crate::wire::PREFIX)
        && (user == 0 || user.is_ascii_graphic())
        && d.at_var(d.len() - 1) == 0
}

/// `05 cmd 00 atyp`: CONNECT, BIND or UDP ASSOCIATE to an IPv4 address, a
/// name or an IPv6 address.
#[inline(always)]
fn is_request5(d: &Prefix<'_>) -> bool {
    let atyp = d.at(3);
    d.has(7) && d.at(0) == 5 && (1..=3).contains(&d.at(1)) && d.at(2) == 0 && is_atyp(atyp)
}

/// The proxy's answers: a method choice (`05 m`) or an authentication
/// status (`01 s`), a SOCKS5 reply (`05 rep 00 atyp ...`), a SOCKS4 reply
/// (`00 5a..5d port ip`).
#[inline(always)]
fn is_reply(d: &Prefix<'_>) -> bool {
    let first = d.at(0);
    let short = d.has(2) && !d.has(3) && (first == 5 || first == 1);
    let reply5 = d.has(10) && first == 5 && d.at(1) <= 8 && d.at(2) == 0 && is_atyp(d.at(3));
    let reply4 = d.has(8) && !d.has(9) && first == 0 && (0x5a..=0x5d).contains(&d.at(1));
    short || reply5 || reply4
}

/// RFC 1929 `01 ulen user plen pass`, exactly that long.
#[inline(always)]
fn is_password(d: &Prefix<'_>) -> bool {
    let ulen = d.at(1) as usize;
    let plen = d.at_var(2 + ulen) as usize;
    let end = 3 + ulen + plen;
    d.at(0) == 1 && ulen != 0 && plen != 0 && d.has(end) && !d.has(end + 1)
}

#[inline(always)]
fn is_atyp(atyp: u8) -> bool {
    atyp == 1 || atyp == 3 || atyp == 4
}

#[cfg(test)]
mod tests {
    // --- curl 7.88 through microsocks 1.0 (SOCKS5); SOCKS4/4a to a sink ---------
    use crate::classify::Side;
    use crate::classify::testing::{classify, upgraded};
    use crate::{Encryption, Protocol, Reason, TlsVersion, Verdict};

    #[test]
    fn socks5_then_http_is_plaintext_socks() {
        let v = replay!("curl-7.88-socks5-http-microsocks-1.0":
            "c2s.0", "s2c.0", "c2s.1", "s2c.1", "c2s.2");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Socks)));
    }

    #[test]
    fn socks5_user_and_password_are_cleartext_credentials() {
        let v = replay!("curl-7.88-socks5-userpass-http-microsocks-1.0": "c2s.0", "s2c.0", "c2s.1");
        assert_eq!(
            v,
            Some(Verdict::plaintext(Protocol::Socks).with_reason(Reason::CleartextCredentials))
        );
    }

    #[test]
    fn socks5_then_tls13_is_tls_through_the_tunnel() {
        let v = replay!("curl-7.88-socks5-tls13-microsocks-1.0":
            "c2s.0", "s2c.0", "c2s.1", "s2c.1", "c2s.2", "s2c.2");
        assert_eq!(v, Some(upgraded(Protocol::Tls, TlsVersion::Tls13)));
    }

    #[test]
    fn socks4_request_alone_is_plaintext_socks_on_close() {
        let v = replay!("curl-7.88-socks4-sink": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Socks)));
    }

    #[test]
    fn socks4a_request_with_a_host_name_is_plaintext_socks_on_close() {
        let v = replay!("curl-7.88-socks4a-sink": "c2s.0");
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Socks)));
    }

    #[test]
    fn socks5_proxy_answers_alone_are_not_named_socks() {
        // `05 00`, `05 00 00 01 ...`: a proxy's replies never open a flow.
        let v = classify(&[
            (Side::Server, fixture!("curl-7.88-socks5-http-microsocks-1.0", "s2c.0")),
            (Side::Server, fixture!("curl-7.88-socks5-http-microsocks-1.0", "s2c.1")),
        ]);
        assert_eq!(v, Some(Verdict::new(Protocol::Unknown, Encryption::Unknown)));
    }
}
