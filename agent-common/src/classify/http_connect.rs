//! HTTP `CONNECT host:port` (RFC 9110 9.3.6): the client asks a proxy for
//! a tunnel, and after the proxy's `2xx` the same TCP connection carries
//! the tunnelled bytes. Like SOCKS, the tunnel decides the encryption: a
//! ClientHello (the core takes TLS records in every step) makes it `tls`
//! (`starttls_upgraded`); a refusal (`407`, `403`) or cleartext through the
//! tunnel is `http`. A `Proxy-Authorization: Basic` on the request is found
//! by the credentials scan (`credentials.rs`): `plaintext` `http` with
//! `cleartext_credentials`, whatever the tunnel carries (the password
//! crossed the network readable). After NATS in the registry: `CONNECT {` is
//! NATS' client message, never a proxy request (whose target is
//! `host:port`).

use super::bytes::Prefix;
use super::dissector::Dissector;
use super::{FlowClassifier, PENDING, Side};
use crate::{Protocol, Verdict};

pub struct HttpConnect;

/// The request was sent: the proxy's answer, then the tunnel's bytes.
const ASKED: u8 = 0;

impl Dissector for HttpConnect {
    const STEPS: u8 = 1;
    const TUNNEL: bool = true;

    #[inline(always)]
    fn opening(f: &mut FlowClassifier, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Client && d.starts_with(b"CONNECT ") {
            return f.opened::<Self>(Protocol::Http, ASKED);
        }
        PENDING
    }

    /// The proxy's `2xx` keeps the tunnel open; anything else decides.
    #[inline(always)]
    fn step(_f: &mut FlowClassifier, _step: u8, side: Side, d: &Prefix<'_>) -> Verdict {
        if side == Side::Server && d.starts_with(b"HTTP/1.") && d.at(9) == b'2' {
            return PENDING;
        }
        Verdict::plaintext(Protocol::Http)
    }
}

#[cfg(test)]
mod tests {
    use crate::classify::Side;
    use crate::classify::testing::{classify, upgraded};
    use crate::{Protocol, Reason, TlsVersion, Verdict};

    #[test]
    fn a_connect_tunnel_with_proxy_credentials_is_plaintext_http_whatever_it_carries() {
        // curl's CONNECT with -U, the proxy's 200, then TLS 1.3 through the
        // tunnel (curl's hello and s_server's answer, recorded directly).
        let v = classify(&[
            (Side::Client, fixture!("curl-7.88-connect-proxy-user", "c2s.0")),
            (Side::Server, b"HTTP/1.1 200 Connection established\r\n\r\n"),
            (Side::Client, fixture!("curl-7.88-tls13-s_server", "c2s.0")),
            (Side::Server, fixture!("curl-7.88-tls13-s_server", "s2c.0")),
        ]);
        // The proxy's password crossed the network readable: the flow is
        // plaintext (the default policy flags it), named by the tunnel.
        let want = Verdict::plaintext(Protocol::Http).with_reason(Reason::CleartextCredentials);
        assert_eq!(v, Some(want));
    }

    #[test]
    fn tls_through_a_connect_tunnel_is_tls_and_a_refusal_is_http() {
        let connect = b"CONNECT orders.internal:443 HTTP/1.1\r\nHost: orders.internal:443\r\n\r\n";
        let v = classify(&[
            (Side::Client, &connect[..]),
            (Side::Server, b"HTTP/1.1 200 Connection established\r\n\r\n"),
            (Side::Client, fixture!("curl-7.88-tls13-s_server", "c2s.0")),
            (Side::Server, fixture!("curl-7.88-tls13-s_server", "s2c.0")),
        ]);
        assert_eq!(v, Some(upgraded(Protocol::Tls, TlsVersion::Tls13)));
        let v = classify(&[
            (Side::Client, &connect[..]),
            (Side::Server, b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"),
        ]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Http)));
    }

    #[test]
    fn cleartext_through_a_connect_tunnel_is_http() {
        let v = classify(&[
            (Side::Client, b"CONNECT db.internal:6379 HTTP/1.1\r\n\r\n"),
            (Side::Server, b"HTTP/1.1 200 OK\r\n\r\n"),
            (Side::Client, fixture!("redis-cli-7.0-set", "c2s.0")),
        ]);
        assert_eq!(v, Some(Verdict::plaintext(Protocol::Http)));
    }
}
